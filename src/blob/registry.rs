//! Opens the object store a URI names. A new store adds one arm in
//! [`open_uri`] behind its cargo feature and nothing else changes.

use std::path::Path;
use std::sync::Arc;

use super::fs::FsStore;
use super::{BlobError, BlobStore, BlobUri, Result};

/// The schemes this build knows (some may be compiled out).
pub const SCHEMES: &str = "file://, s3://, gs://, azblob://, azblob-http://";

/// Opens the store `uri` names; `what` names the setting in errors
/// (`audit_sessions_uri`, `--to`).
pub async fn open(uri: &str, what: &str) -> Result<Arc<dyn BlobStore>> {
    open_uri(&BlobUri::parse(uri, what)?, what).await
}

/// Opens the store of a parsed URI.
pub async fn open_uri(u: &BlobUri, what: &str) -> Result<Arc<dyn BlobStore>> {
    match u.scheme.as_str() {
        "file" => {
            if !u.host.is_empty() && u.host != "localhost" {
                return Err(BlobError::bad(format!(
                    "{what} {}: a file:// URI takes no host (got {:?}); use file:///absolute/path",
                    u.redacted(),
                    u.host
                )));
            }
            if u.path.is_empty() || u.path == "/" {
                return Err(BlobError::bad(format!(
                    "{what} {}: file:// needs a directory, as in file:///var/lib/teleport/log/records",
                    u.redacted()
                )));
            }
            Ok(Arc::new(FsStore::open(Path::new(&u.path))?))
        }
        // Each store has its arm here behind its feature.
        #[cfg(feature = "s3")]
        "s3" => Ok(Arc::new(super::s3::S3Store::open(u).await.map_err(|e| in_setting(e, what))?)),
        #[cfg(not(feature = "s3"))]
        "s3" => Err(not_compiled(u, what, "s3")),
        #[cfg(feature = "gcs")]
        "gs" => Ok(Arc::new(super::gcs::GcsStore::open(u).await.map_err(|e| in_setting(e, what))?)),
        #[cfg(not(feature = "gcs"))]
        "gs" => Err(not_compiled(u, what, "gcs")),
        #[cfg(feature = "azure")]
        "azblob" | "azblob-http" => {
            Ok(Arc::new(super::azure::AzureStore::open(u).await.map_err(|e| in_setting(e, what))?))
        }
        #[cfg(not(feature = "azure"))]
        "azblob" | "azblob-http" => Err(not_compiled(u, what, "azure")),
        other => {
            Err(BlobError::bad(format!("{what} {}: unsupported scheme {other:?}; supported: {SCHEMES}", u.redacted())))
        }
    }
}

/// Prefixes a store's error with the setting that named it.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn in_setting(e: BlobError, what: &str) -> BlobError {
    BlobError::new(e.kind, format!("{what} {}", e.message))
}

#[cfg(not(all(feature = "s3", feature = "gcs", feature = "azure")))]
fn not_compiled(u: &BlobUri, what: &str, feature: &str) -> BlobError {
    BlobError::bad(format!(
        "{what} {}: the {feature} object store is not compiled into this build (cargo feature `{feature}`)",
        u.redacted()
    ))
}
