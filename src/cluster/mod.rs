//! THE RUNTIME: what `teleport start` is made of: the process
//! ([`process`]: data-dir lock, services, signals), the auth service
//! ([`auth`]), the API client its tools and components use ([`client`]),
//! identity files ([`identity`]), the data-dir lock ([`datadir`]), shutdown
//! signals ([`signals`]), and the diagnostics HTTP server with health and
//! metrics ([`diag`], [`metrics`]).
//!
//! This room may use `config`, `backend`, `resources` and `crypto`; it never
//! uses `cli` (the CLI calls in here, not the other way round).

pub mod auth;
pub mod client;
pub mod datadir;
pub mod diag;
pub mod identity;
pub mod metrics;
pub mod process;
pub mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use datadir::DataDirLock;
pub use diag::{Health, serve};
pub use metrics::{Counter, Gauge, Metrics};
pub use signals::{Signal, cancel_on_signal, shutdown_signal};

/// An error of the runtime, naming what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The data directory could not be created, opened or written.
    #[error("data dir {path}: {action}: {source}")]
    DataDir {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, as a short verb phrase.
        action: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Another process holds the data dir's lock.
    #[error(
        "another teleport process ({}) is using data dir {}; stop it first or use a different --data-dir",
        pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}")),
        data_dir.display()
    )]
    DataDirLocked {
        /// The data directory.
        data_dir: PathBuf,
        /// The pid written in the lock file by the holder, if it could be read.
        pid: Option<u32>,
    },
    /// A listener could not be bound.
    #[error("{what}: cannot listen on {addr}: {source}")]
    Listen {
        /// Which server (e.g. "diagnostics server").
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("{what}: {source}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        /// The signal name.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A metric was registered with a bad name or inconsistently.
    #[error("metric {name}: {message}")]
    Metric {
        /// The metric name.
        name: String,
        /// What is wrong.
        message: String,
    },
}
