//! Google Cloud Storage (`gs://bucket/prefix?projectID=&credentialsPath=&endpoint=&keyName=`):
//! an object is `<prefix>/<key>` in the bucket, its SHA-256 in the custom
//! metadata `sha256`.
//!
//! The client is a small one of the JSON API v1 (`api`) over reqwest,
//! with google-cloud-auth for the credentials: the official
//! `google-cloud-storage` crate does its metadata calls (list, delete,
//! get) through the gRPC StorageControl API, which emulators do not serve,
//! ignores `STORAGE_EMULATOR_HOST`, and sends `Host` without the port; the
//! JSON API is stable and versioned, and the store needs ten of its calls.
//!
//! - **Uploads** (`upload`): a resumable session fed chunks of 16 MiB (the
//!   Go client's default; multiples of 256 KiB as GCS requires), the object
//!   published by the final request. Smaller objects go in one multipart
//!   request. The SHA-256 is in the object resource when known up front
//!   (`PutOptions::expected_sha256`, or an object smaller than a chunk);
//!   otherwise it is patched onto the new generation right after the final
//!   request (`ifGenerationMatch`), so for a moment the object has no checksum.
//! - **Reads** (`download`): the object resource, then `alt=media` of that
//!   generation, resumed after a broken connection.
//! - **Listing**: `objects.list` by prefix from `startOffset`, cut to the
//!   limit here (the cursor is the last key returned), following
//!   `nextPageToken` as long as the page is not full.
//! - **Endpoint**: `endpoint`, else `STORAGE_EMULATOR_HOST`, else Google. A
//!   plain `http://` endpoint is an emulator and gets no credentials;
//!   otherwise the key file `credentialsPath`, else the application default
//!   credentials.
//! - **Bucket**: checked when opened; a missing one is created in
//!   `projectID` (versioning on, project-private ACLs, as upstream), or the
//!   open fails saying to create it or pass `projectID`.

mod api;
mod download;
mod upload;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use api::Api;
pub use api::GOOGLE_ENDPOINT;
use upload::GcsWriter;

use super::{
    BlobError, BlobInfo, BlobRead, BlobStore, BlobUri, BlobWriter, ByteRange, ListPage, PartSizer, PutOptions, Result,
    check_key, check_prefix,
};
use crate::gcp::auth::GoogleCredentials;

/// Chunks of a resumable upload are multiples of this (GCS's rule).
pub const CHUNK_ALIGN: usize = 256 << 10;
/// The first chunk of an upload of unknown size.
pub const DEFAULT_CHUNK: usize = 16 << 20;
/// The largest chunk (chunks grow for very long streams of unknown size).
pub const MAX_CHUNK: usize = 128 << 20;
/// Chunks before each doubling of the chunk size.
const GROW_EVERY_PARTS: u32 = 10_000;
/// GCS answers at most this many objects per list request.
const LIST_PAGE_MAX: usize = 1000;
/// The variable Google's clients read an emulator's address from.
pub const EMULATOR_HOST_VAR: &str = "STORAGE_EMULATOR_HOST";
/// The URI parameters this store reads (upstream's names).
pub const PARAMS: &[&str] = &["projectID", "credentialsPath", "endpoint", "keyName", "path"];

/// A bucket (and key prefix) in Google Cloud Storage.
#[derive(Clone)]
pub struct GcsStore {
    api: Arc<Api>,
    prefix: String,
    chunk: usize,
}

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.api.describe)
    }
}

/// The URL of an endpoint setting: `host:port` means plain http; a
/// trailing `/storage/v1` (the Go client's form) is dropped.
fn endpoint_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    let e = e.strip_suffix("/storage/v1").unwrap_or(e);
    if e.contains("://") { e.to_string() } else { format!("http://{e}") }
}

/// The endpoint: the `endpoint` parameter, else `STORAGE_EMULATOR_HOST`,
/// else Google's.
fn endpoint_for(param: Option<&str>, emulator_host: Option<&str>) -> String {
    match param.or(emulator_host).map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => endpoint_url(e),
        None => GOOGLE_ENDPOINT.to_string(),
    }
}

fn check_bucket(describe: &str, bucket: &str) -> Result<()> {
    let ok_chars = bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    let ends_ok = bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=222).contains(&bucket.len()) && ok_chars && ends_ok {
        return Ok(());
    }
    Err(BlobError::bad(format!(
        "{describe}: {bucket:?} is not a bucket name (3 to 222 lowercase letters, digits, '-', '_' and '.'); \
         use gs://bucket/prefix"
    )))
}

impl GcsStore {
    /// Opens the store of a `gs://` URI: checks the parameters, builds the
    /// credentials, and checks (or creates) the bucket.
    pub async fn open(u: &BlobUri) -> Result<GcsStore> {
        let describe = u.redacted();
        if let Some(unknown) = u.query.keys().find(|k| !PARAMS.contains(&k.as_str())) {
            return Err(BlobError::bad(format!(
                "{describe}: unknown parameter {unknown:?}; gs:// takes {} (names are case-sensitive)",
                PARAMS.join(", ")
            )));
        }
        check_bucket(&describe, &u.host)?;
        let mut prefix = u.prefix();
        if prefix.is_empty()
            && let Some(p) = u.param("path")
        {
            prefix = p.trim_matches('/').to_string();
        }
        if !prefix.is_empty() {
            check_key(&prefix).map_err(|e| BlobError::bad(format!("{describe}: the prefix: {}", e.message)))?;
        }
        let endpoint = endpoint_for(u.param("endpoint"), std::env::var(EMULATOR_HOST_VAR).ok().as_deref());
        let auth = if endpoint.starts_with("http://") {
            None
        } else {
            let creds = GoogleCredentials::new(u.param("credentialsPath").map(Path::new)).map_err(|e| {
                BlobError::new(super::BlobErrorKind::AccessDenied, format!("{describe}: credentials: {}", e.message))
            })?;
            Some(creds)
        };
        let mut api = Api::new(&endpoint, auth, &u.host, &describe)?;
        api.kms_key = u.param("keyName").map(str::to_string);
        let store = GcsStore { api: Arc::new(api), prefix, chunk: DEFAULT_CHUNK };
        store.ensure_bucket(u.param("projectID")).await?;
        tracing::debug!(store = %describe, endpoint = %endpoint, "opened the GCS object store");
        Ok(store)
    }

    async fn ensure_bucket(&self, project: Option<&str>) -> Result<()> {
        let d = &self.api.describe;
        let bucket = &self.api.bucket;
        match self.api.bucket_exists().await? {
            Some(true) => Ok(()),
            None => {
                tracing::warn!(store = %d, "the credentials may not read the bucket's metadata; going on");
                Ok(())
            }
            Some(false) => match project {
                Some(p) => {
                    tracing::info!(store = %d, project = p, "creating the bucket");
                    self.api.create_bucket(p).await
                }
                None => Err(BlobError::not_found(format!(
                    "{d}: the bucket {bucket} does not exist; create it (gcloud storage buckets create gs://{bucket}) \
                     or add ?projectID=<project> to the URI to have it created"
                ))),
            },
        }
    }

    /// The same store with chunks of `bytes` (rounded up to 256 KiB), for
    /// tests and benchmarks.
    pub fn with_chunk_size(mut self, bytes: usize) -> GcsStore {
        self.chunk = bytes.max(CHUNK_ALIGN).div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.api.bucket
    }

    /// The object name of `key`.
    pub fn name_of(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    fn key_of(&self, name: &str) -> Option<String> {
        let key = if self.prefix.is_empty() { name } else { name.strip_prefix(&self.prefix)?.strip_prefix('/')? };
        match check_key(key) {
            Ok(()) => Some(key.to_string()),
            Err(e) => {
                tracing::debug!(store = %self.api.describe, object = name, error = %e, "not listing an object");
                None
            }
        }
    }

    fn what(&self, key: &str) -> String {
        format!("{}: {key}", self.api.describe)
    }

    fn sizer(&self, size_hint: Option<u64>) -> PartSizer {
        PartSizer::new(CHUNK_ALIGN, self.chunk, CHUNK_ALIGN, MAX_CHUNK, GROW_EVERY_PARTS * 10, size_hint)
    }
}

#[async_trait]
impl BlobStore for GcsStore {
    fn describe(&self) -> String {
        self.api.describe.clone()
    }

    fn part_size(&self) -> usize {
        self.sizer(None).size_of(1)
    }

    async fn put(&self, key: &str, options: PutOptions) -> Result<Box<dyn BlobWriter>> {
        check_key(key)?;
        let sizer = self.sizer(options.size_hint);
        Ok(Box::new(GcsWriter::new(self.api.clone(), key.to_string(), self.name_of(key), options, sizer)))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead> {
        check_key(key)?;
        let what = self.what(key);
        let Some(obj) = self.api.get_object(&self.name_of(key), &what).await? else {
            return Err(BlobError::not_found(format!("{what}: no such object")));
        };
        let info = obj.info(key.to_string());
        let size = info.size;
        let (start, end) = match range {
            None => (0, size),
            Some(r) => {
                let start = r.start.min(size);
                (start, r.end.map_or(size, |e| e.min(size)).max(start))
            }
        };
        let body =
            download::stream(self.api.clone(), obj.name.clone(), obj.generation(), start, end, size, what.clone());
        Ok(match range {
            None => BlobRead::full(&self.api.describe, info, body),
            Some(_) => BlobRead::ranged(info, body),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        check_key(key)?;
        let obj = self.api.get_object(&self.name_of(key), &self.what(key)).await?;
        Ok(obj.map(|o| o.info(key.to_string())))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        check_prefix(prefix)?;
        let limit = limit.max(1);
        // With a store prefix and an empty listing prefix: "<prefix>/".
        let name_prefix = self.name_of(prefix);
        let after_name = after.map(|a| self.name_of(a));
        let what = format!("{}: list {prefix:?}", self.api.describe);
        let mut items: Vec<BlobInfo> = Vec::new();
        let mut token: Option<String> = None;
        let mut more = false;
        'pages: loop {
            // One more than the limit tells whether another page exists.
            let want = (limit + 1 - items.len()).min(LIST_PAGE_MAX);
            let (objects, next) =
                self.api.list_page(&name_prefix, after_name.as_deref(), token.as_deref(), want, &what).await?;
            for o in objects {
                if !o.name.starts_with(&name_prefix) || after_name.as_ref().is_some_and(|a| o.name <= *a) {
                    continue;
                }
                let Some(key) = self.key_of(&o.name) else { continue };
                if items.len() == limit {
                    more = true;
                    break 'pages;
                }
                items.push(o.info(key));
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let next = if more { items.last().map(|i| i.key.clone()) } else { None };
        Ok(ListPage { items, next })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.api.delete_object(&self.name_of(key), &self.what(key)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_buckets() {
        assert_eq!(endpoint_url("127.0.0.1:9023"), "http://127.0.0.1:9023");
        assert_eq!(endpoint_url("https://storage.example/"), "https://storage.example");
        assert_eq!(endpoint_url("http://localhost:9023/storage/v1/"), "http://localhost:9023");
        assert_eq!(endpoint_for(None, None), GOOGLE_ENDPOINT);
        assert_eq!(endpoint_for(None, Some(" ")), GOOGLE_ENDPOINT);
        assert_eq!(endpoint_for(None, Some("localhost:9023")), "http://localhost:9023");
        assert_eq!(endpoint_for(Some("https://gcs.example"), Some("localhost:9023")), "https://gcs.example");
        for ok in ["abc", "my-bucket_1", "a.b.c"] {
            assert!(check_bucket("d", ok).is_ok(), "{ok}");
        }
        for bad in ["", "ab", "Upper", "-x-", "a/b", "x y"] {
            assert!(check_bucket("d", bad).is_err(), "{bad}");
        }
    }
}
