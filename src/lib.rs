//! An access cluster (auth, proxy and node services) built around disaster
//! recovery. See DESIGN.md at the repository root for the map of the house:
//! `cli` drives `cluster` (the runtime of `teleport start`), `clone` and
//! `backend` (cluster state), reading `config`.
//!
//! Data flows one way: `cli -> (cluster | clone) -> resources -> backend`, with
//! `events` (audit) and `recordings -> blob` (object storage) as sibling store rooms; nothing
//! below `cli` points up, and `config`, `crypto`, `aws` and `gcp` (the AWS SDK and Google
//! Cloud connections shared by the stores) are leaves that any layer may use.

#[cfg(any(feature = "dynamodb", feature = "s3"))]
pub mod aws;
pub mod backend;
pub mod blob;
pub mod cli;
pub mod clone;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod events;
pub mod gcp;
pub mod recordings;
pub mod resources;

/// The version of this build, as printed by `teleport version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
