//! Opens the audit log `teleport.storage.audit_events_uri` names: no URI is
//! the file log in `<data_dir>/log`, one URI its store, several a
//! [`MultiLog`] (writes to all, searches the first). A new store adds one
//! arm in [`open_one`] behind its cargo feature and nothing else changes.

use std::path::Path;
use std::sync::Arc;

use super::file::FileLog;
use super::multi::MultiLog;
use super::stdout::StdoutLog;
use super::{AuditLog, EventsError, EventsUri, Result};

/// The schemes this build knows (some may be compiled out).
pub const SCHEMES: &str = "file://, stdout://, dynamodb://, firestore://";

/// The default log directory: `<data_dir>/log`.
pub fn default_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("log")
}

/// Opens the audit log for `uris` (empty: the file log in `<data_dir>/log`),
/// writing file logs as host `host_uuid`.
pub async fn open(uris: &[String], data_dir: &Path, host_uuid: &str) -> Result<Arc<dyn AuditLog>> {
    match uris {
        [] => Ok(Arc::new(FileLog::open(&default_dir(data_dir), host_uuid)?)),
        [one] => open_one(one, host_uuid).await,
        many => {
            let mut logs = Vec::with_capacity(many.len());
            for u in many {
                logs.push(open_one(u, host_uuid).await?);
            }
            Ok(Arc::new(MultiLog::new(logs)?))
        }
    }
}

/// Opens the store of one URI.
pub async fn open_one(uri: &str, host_uuid: &str) -> Result<Arc<dyn AuditLog>> {
    let u = EventsUri::parse(uri)?;
    match u.scheme.as_str() {
        "file" => {
            if !u.host.is_empty() && u.host != "localhost" {
                return Err(EventsError::bad(format!(
                    "audit_events_uri {}: a file:// URI takes no host (got {:?}); use file:///absolute/path",
                    u.redacted(),
                    u.host
                )));
            }
            if u.path.is_empty() || u.path == "/" {
                return Err(EventsError::bad(format!(
                    "audit_events_uri {}: file:// needs a directory, as in file:///var/lib/teleport/log",
                    u.redacted()
                )));
            }
            Ok(Arc::new(FileLog::open(Path::new(&u.path), host_uuid)?))
        }
        "stdout" => Ok(Arc::new(StdoutLog)),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => Ok(Arc::new(super::dynamodb::DynamoEvents::open(&u).await?)),
        #[cfg(not(feature = "dynamodb"))]
        "dynamodb" => Err(not_compiled(&u, "dynamodb")),
        #[cfg(feature = "firestore")]
        "firestore" => Ok(Arc::new(super::firestore::FirestoreEvents::open(&u).await?)),
        #[cfg(not(feature = "firestore"))]
        "firestore" => Err(not_compiled(&u, "firestore")),
        other => Err(EventsError::bad(format!(
            "audit_events_uri {}: unsupported scheme {other:?}; supported: {SCHEMES}",
            u.redacted()
        ))),
    }
}

#[cfg(not(all(feature = "dynamodb", feature = "firestore")))]
fn not_compiled(u: &EventsUri, feature: &str) -> EventsError {
    EventsError::bad(format!(
        "audit_events_uri {}: the {feature} audit store is not compiled into this build (cargo feature `{feature}`)",
        u.redacted()
    ))
}
