//! Opens a [`Backend`] from a storage config. A new store adds one arm here
//! (behind its cargo feature) and nothing else changes for callers.

use std::sync::Arc;

use super::memory::MemoryStore;
use super::sqlite::SqliteBackend;
use super::{Backend, Clock, Error, ErrorKind, Result};
use crate::config::StorageConfig;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The clock used for expiry.
    pub clock: Arc<dyn Clock>,
    /// Create the store (database file, table) if it does not exist. Tools
    /// that only read or repair (`backend ls/get/rm/edit`, a clone source)
    /// pass false, so a wrong path is an error instead of a new empty store.
    pub create: bool,
}

impl OpenOptions {
    /// Open an existing store only; never create one.
    pub fn existing() -> OpenOptions {
        OpenOptions { clock: super::clock::system(), create: false }
    }

    /// Open the store, creating it if needed (what a service does on start).
    pub fn create() -> OpenOptions {
        OpenOptions { clock: super::clock::system(), create: true }
    }

    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> OpenOptions {
        self.clock = clock;
        self
    }
}

/// Opens the store `cfg` describes.
pub async fn open(cfg: &StorageConfig, opts: OpenOptions) -> Result<Arc<dyn Backend>> {
    match cfg {
        StorageConfig::Sqlite(c) => Ok(Arc::new(SqliteBackend::open(c, opts).await?)),
        StorageConfig::Memory(_) => {
            Ok(Arc::new(MemoryStore::new().open_with(opts.clock, super::memory::DEFAULT_SWEEP_INTERVAL)?))
        }
        #[cfg(feature = "etcd")]
        StorageConfig::Etcd(c) => Ok(Arc::new(super::etcd::EtcdBackend::open(c, opts).await?)),
        #[cfg(feature = "dynamodb")]
        StorageConfig::DynamoDb(c) => Ok(Arc::new(super::dynamodb::DynamoDbBackend::open(c, opts).await?)),
        #[cfg(feature = "firestore")]
        StorageConfig::Firestore(c) => Ok(Arc::new(super::firestore::FirestoreBackend::open(c, opts).await?)),
        #[cfg(feature = "postgres")]
        StorageConfig::Postgres(c) => Ok(Arc::new(super::postgres::PostgresBackend::open(c, opts).await?)),
        // Reachable when a store's feature is off.
        #[allow(unreachable_patterns)]
        other => Err(Error::new(
            ErrorKind::BadParameter,
            format!(
                "storage type {:?} cannot be opened by this build of teleport; it opens: {}",
                other.type_name(),
                supported_types().join(", ")
            ),
        )),
    }
}

/// The storage types this build can open.
pub fn supported_types() -> Vec<&'static str> {
    let mut types = vec!["sqlite", "memory"];
    if cfg!(feature = "etcd") {
        types.push("etcd");
    }
    if cfg!(feature = "dynamodb") {
        types.push("dynamodb");
    }
    if cfg!(feature = "firestore") {
        types.push("firestore");
    }
    if cfg!(feature = "postgres") {
        types.push("postgres");
    }
    types
}
