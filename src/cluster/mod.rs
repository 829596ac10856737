//! CLUSTER: the runtime. The auth service (`auth`), the API client its
//! tools and components use (`client`), identity files (`identity`).
//! This room may use `config`, `backend`, `resources` and `crypto`; it never
//! reaches into the CLI.

pub mod auth;
pub mod client;
pub mod identity;
