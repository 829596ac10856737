//! Real backend servers for tests: each fixture starts one server, waits until
//! it answers a real protocol request, and stops it when dropped.
//!
//! | function | server (local provider) | container provider image |
//! |---|---|---|
//! | [`etcd()`] | etcd (Debian `etcd-server`) | `gcr.io/etcd-development/etcd` |
//! | [`dynamodb()`] | moto server | `amazon/dynamodb-local` |
//! | [`s3()`] | s3s-fs (checks SigV4) | `minio/minio` |
//! | [`s3_versioned()`] | moto server (S3 with versioning) | `minio/minio` |
//! | [`gcs()`], [`gcs_with()`] | gcp-storage-emulator through `launchers/gcs_emulator.py` | `fsouza/fake-gcs-server` |
//! | [`azure()`] | Azurite (blob only) | `mcr.microsoft.com/azure-storage/azurite` |
//! | [`firestore()`] | this crate's Firestore-protocol test server, in-process (never missing) | `gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators` |
//! | [`postgres()`] | PostgreSQL (initdb + postgres, as the `postgres` user when root) | `postgres` |
//!
//! Each `xxx()` returns `Result<Fixture, Error>`. Each `xxx_or_skip()` is the
//! form for tests: it returns `None` and prints the install command when the
//! server is not installed, unless `TELEPORT_TEST_REQUIRE_SERVICES=1` or `CI`
//! is set, in which case a missing server panics (CI never skips).
//!
//! ```no_run
//! # async fn demo() {
//! let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
//! println!("etcd answers at {}", etcd.endpoint);
//! # }
//! ```
//!
//! Which provider runs the servers is chosen by `TELEPORT_TEST_PROVIDER`
//! (`local`, the default, or `container`); see [`Provider`]. Where the local
//! provider finds binaries: [`services_dir`]. docs/testing.md has the whole story.
#![deny(missing_docs)]

pub mod azure;
pub mod cli;
#[cfg(feature = "containers")]
pub mod container;
pub mod dynamodb;
mod error;
pub mod etcd;
pub mod firestore;
pub mod gcs;
mod local;
pub mod postgres;
mod probe;
mod provider;
pub mod s3;
mod server;

pub use azure::Azurite;
pub use dynamodb::DynamoDb;
pub use error::Error;
pub use etcd::{Etcd, EtcdTls};
pub use firestore::Firestore;
pub use gcs::{Gcs, GcsOptions};
pub use local::{find_binary, services_dir, workspace_root};
pub use postgres::Postgres;
pub use provider::{Provider, docker_engine_reachable};
pub use s3::{S3, S3Server};
pub use server::Server;

use std::future::Future;
use std::path::Path;

/// What every fixture offers, for code that handles any of them (the CLI).
pub trait Fixture: Send {
    /// Which server this is.
    fn server(&self) -> Server;
    /// `(NAME, value)` pairs describing how to reach the server, named
    /// `TELEPORT_TEST_<SERVER>_<FIELD>` (the CLI prints them as `export` lines).
    fn exports(&self) -> Vec<(String, String)>;
    /// The server's process id (local provider only).
    fn pid(&self) -> Option<u32>;
    /// The server's log file (local provider only; deleted with the temp dir).
    fn log_path(&self) -> Option<&Path>;
    /// The container's id (container provider only).
    fn container_id(&self) -> Option<&str>;
}

/// Implements the process/container accessors of [`Fixture`] for a fixture
/// whose `backing` field holds its server.
#[macro_export]
#[doc(hidden)]
macro_rules! delegate_to_backing {
    () => {
        fn pid(&self) -> Option<u32> {
            self.backing.pid()
        }

        fn log_path(&self) -> Option<&std::path::Path> {
            self.backing.log_path()
        }

        fn container_id(&self) -> Option<&str> {
            self.backing.container_id()
        }
    };
}

/// Starts `server` with the provider chosen by the environment.
pub async fn start(server: Server) -> Result<Box<dyn Fixture>, Error> {
    Ok(match server {
        Server::Etcd => Box::new(etcd().await?),
        Server::DynamoDb => Box::new(dynamodb().await?),
        Server::S3 => Box::new(s3().await?),
        Server::S3Versioned => Box::new(s3_versioned().await?),
        Server::Gcs => Box::new(gcs().await?),
        Server::Azure => Box::new(azure().await?),
        Server::Firestore => Box::new(firestore().await?),
        Server::Postgres => Box::new(postgres().await?),
    })
}

/// Prefixes each field name with the server's `TELEPORT_TEST_<SERVER>_`.
fn prefixed(server: Server, vars: Vec<(&str, String)>) -> Vec<(String, String)> {
    let prefix = server.env_prefix();
    vars.into_iter().map(|(name, value)| (format!("{prefix}{name}"), value)).collect()
}

/// Starts etcd. See [`etcd`](mod@etcd).
pub async fn etcd() -> Result<Etcd, Error> {
    etcd::start(None).await
}

/// Starts etcd requiring mutual TLS with the given certificates (local
/// provider only).
pub async fn etcd_tls(tls: EtcdTls) -> Result<Etcd, Error> {
    etcd::start(Some(tls)).await
}

/// Starts a DynamoDB-compatible server (moto). See [`dynamodb`](mod@dynamodb).
pub async fn dynamodb() -> Result<DynamoDb, Error> {
    dynamodb::start().await
}

/// Starts an S3 server that checks SigV4 signatures (s3s-fs). See [`s3`](mod@s3).
pub async fn s3() -> Result<S3, Error> {
    s3::start().await
}

/// Starts an S3 server that supports bucket versioning (moto). See [`s3`](mod@s3).
pub async fn s3_versioned() -> Result<S3, Error> {
    s3::start_versioned().await
}

/// Starts the GCS emulator on a free loopback port. See [`gcs`](mod@gcs).
pub async fn gcs() -> Result<Gcs, Error> {
    gcs::start(GcsOptions::default()).await
}

/// Starts the GCS emulator on the host and port given in `options`.
pub async fn gcs_with(options: GcsOptions) -> Result<Gcs, Error> {
    gcs::start(options).await
}

/// Starts Azurite (Blob service). See [`azure`](mod@azure).
pub async fn azure() -> Result<Azurite, Error> {
    azure::start().await
}

/// Starts a Firestore-protocol server: the in-process test server (local
/// provider) or the official emulator (container provider). See
/// [`firestore`](mod@firestore) for what the test server covers.
pub async fn firestore() -> Result<Firestore, Error> {
    firestore::start().await
}

/// Starts a private PostgreSQL instance. See [`postgres`](mod@postgres).
pub async fn postgres() -> Result<Postgres, Error> {
    postgres::start().await
}

/// [`etcd()`], or `None` (with a message) when etcd is not installed; see [`or_skip`].
pub async fn etcd_or_skip() -> Option<Etcd> {
    or_skip(etcd()).await
}

/// [`dynamodb()`], or `None` when moto is not installed; see [`or_skip`].
pub async fn dynamodb_or_skip() -> Option<DynamoDb> {
    or_skip(dynamodb()).await
}

/// [`s3()`], or `None` when s3s-fs is not installed; see [`or_skip`].
pub async fn s3_or_skip() -> Option<S3> {
    or_skip(s3()).await
}

/// [`s3_versioned()`], or `None` when moto is not installed; see [`or_skip`].
pub async fn s3_versioned_or_skip() -> Option<S3> {
    or_skip(s3_versioned()).await
}

/// [`gcs()`], or `None` when gcp-storage-emulator is not installed; see [`or_skip`].
pub async fn gcs_or_skip() -> Option<Gcs> {
    or_skip(gcs()).await
}

/// [`azure()`], or `None` when Azurite is not installed; see [`or_skip`].
pub async fn azure_or_skip() -> Option<Azurite> {
    or_skip(azure()).await
}

/// [`firestore()`]; see [`or_skip`]. The local provider's server is built
/// in, so this never skips (it returns `None` only if the container provider
/// was chosen and reports a missing server, which it does not).
pub async fn firestore_or_skip() -> Option<Firestore> {
    or_skip(firestore()).await
}

/// [`postgres()`], or `None` when PostgreSQL is not installed; see [`or_skip`].
pub async fn postgres_or_skip() -> Option<Postgres> {
    or_skip(postgres()).await
}

/// Whether a missing server must fail the test instead of skipping it:
/// true when `TELEPORT_TEST_REQUIRE_SERVICES` is set to anything but `0` or
/// empty, or when `CI` is set to anything but `false`, `0` or empty.
pub fn services_required() -> bool {
    required_by(std::env::var("TELEPORT_TEST_REQUIRE_SERVICES").ok().as_deref(), std::env::var("CI").ok().as_deref())
}

fn required_by(require: Option<&str>, ci: Option<&str>) -> bool {
    let on = |v: Option<&str>| matches!(v, Some(v) if !matches!(v.trim(), "" | "0" | "false"));
    on(require) || on(ci)
}

/// The missing-server policy for tests. Awaits `start` and:
/// - returns `Some(fixture)` when the server started;
/// - returns `None` after printing which server is missing and the command
///   that installs it, when the server's binary is not installed and
///   [`services_required`] is false;
/// - panics with that message when the binary is missing and services are
///   required (CI), and on every other error (a server that is installed but
///   does not start is a failure everywhere).
pub async fn or_skip<T>(start: impl Future<Output = Result<T, Error>>) -> Option<T> {
    or_skip_if(services_required(), start).await
}

async fn or_skip_if<T>(required: bool, start: impl Future<Output = Result<T, Error>>) -> Option<T> {
    match start.await {
        Ok(fixture) => Some(fixture),
        Err(err) if err.is_missing() && !required => {
            eprintln!("SKIPPED: {err}");
            eprintln!("(set TELEPORT_TEST_REQUIRE_SERVICES=1 to make a missing server fail the test; CI does)");
            None
        }
        Err(err) if err.is_missing() => {
            panic!("{err}\n(a missing server is a failure because TELEPORT_TEST_REQUIRE_SERVICES or CI is set)")
        }
        Err(err) => panic!("{err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Error {
        Error::Missing {
            server: Server::Etcd,
            program: "etcd",
            binary: "etcd".into(),
            searched: "PATH".into(),
            install: Server::Etcd.install_command(),
        }
    }

    #[tokio::test]
    async fn a_missing_server_skips_on_a_developer_machine() {
        assert!(or_skip_if(false, async { Err::<(), _>(missing()) }).await.is_none());
        assert_eq!(or_skip_if(false, async { Ok::<_, Error>(7) }).await, Some(7));
    }

    #[tokio::test]
    #[should_panic(expected = "etcd: etcd is not installed")]
    async fn a_missing_server_fails_when_services_are_required() {
        or_skip_if(true, async { Err::<(), _>(missing()) }).await;
    }

    #[tokio::test]
    #[should_panic(expected = "exited before it was ready")]
    async fn a_server_that_fails_to_start_fails_everywhere() {
        let err = Error::Exited {
            server: Server::Etcd,
            status: "exit status: 1".into(),
            log: "/x".into(),
            tail: String::new(),
        };
        or_skip_if(false, async { Err::<(), _>(err) }).await;
    }

    #[test]
    fn ci_or_require_flag_makes_missing_servers_fail() {
        assert!(!required_by(None, None));
        assert!(!required_by(Some("0"), Some("")));
        assert!(!required_by(None, Some("false")));
        assert!(required_by(Some("1"), None));
        assert!(required_by(None, Some("true")));
        assert!(required_by(None, Some("1")));
    }
}
