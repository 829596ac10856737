//! The Azure Blob store (`azblob://<account>.blob.core.windows.net[/prefix]`,
//! `azblob-http://<host:port>/<account>[/prefix]` for emulators; options in
//! the fragment: `#session_container=session&inprogress_container=inprogress`).
//! Objects are block blobs named `<prefix>/<key>` in the session container,
//! created on open when missing (as upstream).
//!
//! A small client of the Blob service REST API (version
//! [`client::API_VERSION`]) over reqwest, with the eight operations the
//! store needs: List Blobs (also the container check), Create Container,
//! Put Block, Put Block List, Put Blob, Get Blob, Get Blob Properties and
//! Delete Blob. Requests are authorized with Shared Key signatures, a SAS
//! token or a Microsoft Entra ID bearer token ([`config::select_credential`]
//! gives the order). Why not an SDK: `azure_storage_blobs` 0.21 is the
//! unmaintained legacy SDK, and the official `azure_storage_blob` 1.x has
//! no Shared Key authorization (Azure/azure-sdk-for-rust#2975), so it can
//! use neither account keys nor Azurite's account without SAS tokens
//! minted by hand; the REST API is stable and versioned.
//!
//! - **Atomic publish:** blocks stay uncommitted (invisible) until Put Block
//!   List; no in-progress container is needed (`inprogress_container` is
//!   accepted for upstream's URIs and unused). Abandoned blocks are
//!   discarded by the service after 7 days.
//! - **Checksums:** the SHA-256 goes in the `sha256` metadata at commit,
//!   returned by Get Blob, Get Blob Properties and List Blobs
//!   (`include=metadata`).
//! - **Limits:** 50,000 blocks of up to 4000 MiB; 8 MiB blocks at first,
//!   doubling every 5,000 blocks ([`PartSizer`]).

pub mod auth;
mod client;
pub mod config;
mod entra;
mod writer;
pub mod xml;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::{Method, Response};

use self::auth::Auth;
pub use self::client::{API_VERSION, http_client, percent_encode};
use self::client::{Call, Failure, Inner, header, transport_error};
use self::config::{Env, Secret};
use self::writer::AzureWriter;
use super::retry::RetryPolicy;
use super::{
    BlobError, BlobErrorKind, BlobInfo, BlobRead, BlobStore, BlobUri, BlobWriter, ByteRange, ListPage, PartSizer,
    PutOptions, Result, check_key, check_prefix,
};

/// The header carrying the object's SHA-256 (metadata `sha256`).
pub(crate) const SHA256_HEADER: &str = "x-ms-meta-sha256";
/// Default block size.
pub const DEFAULT_BLOCK_SIZE: usize = 8 << 20;
/// Smallest block size [`AzureStore::with_block_size`] takes.
pub const MIN_BLOCK_SIZE: usize = 64 << 10;
/// Largest block (service version 2019-12-12 and later).
pub const MAX_BLOCK_SIZE: usize = 4000 << 20;
/// Most blocks in a blob.
pub const MAX_BLOCKS: u32 = 50_000;
/// Most results List Blobs returns per request.
pub const MAX_LIST_RESULTS: usize = 5000;

/// An Azure Blob container (and key prefix) as a [`BlobStore`].
#[derive(Clone)]
pub struct AzureStore {
    inner: Arc<Inner>,
    block_size: usize,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStore")
            .field("store", &self.inner.describe)
            .field("credential", &self.inner.credential)
            .finish_non_exhaustive()
    }
}

impl AzureStore {
    /// Opens the store of an `azblob`/`azblob-http` URI with the process's
    /// environment's credentials, creating the container when missing.
    pub async fn open(u: &BlobUri) -> Result<AzureStore> {
        AzureStore::open_with_env(u, &|k| std::env::var(k).ok()).await
    }

    /// [`open`](Self::open) with credentials looked up in `env`.
    pub async fn open_with_env(u: &BlobUri, env: Env<'_>) -> Result<AzureStore> {
        let describe = u.redacted();
        let loc = config::location(u)?;
        let spec = config::select_credential(&loc, env).map_err(|e| BlobError::bad(format!("{describe}: {e}")))?;
        let credential = spec.kind();
        let secrets: Vec<Secret> = spec.secrets().into_iter().map(Secret::new).collect();
        let auth = Auth::new(&loc, spec).map_err(|e| BlobError::bad(format!("{describe}: {credential}: {e}")))?;
        let http = http_client().map_err(|e| BlobError::internal(format!("{describe}: {e}")))?;
        let inner = Inner { http, loc, auth, credential, describe, retry: RetryPolicy::default(), secrets };
        let store = AzureStore { inner: Arc::new(inner), block_size: DEFAULT_BLOCK_SIZE };
        store.ensure_container().await?;
        tracing::info!(store = %store.inner.describe, credential, "opened the Azure Blob store");
        Ok(store)
    }

    /// The same store with blocks of `size` bytes at first (at least
    /// [`MIN_BLOCK_SIZE`]); for tests and benchmarks.
    pub fn with_block_size(mut self, size: usize) -> AzureStore {
        self.block_size = size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
        self
    }

    /// The container objects go to.
    pub fn container(&self) -> &str {
        &self.inner.loc.container
    }

    /// The full blob name of a key (the URI's prefix applied).
    pub fn blob_name(&self, key: &str) -> String {
        self.inner.blob_name(key)
    }

    fn what(&self, key: &str, op: &str) -> String {
        format!("{}: {key}: {op}", self.inner.describe)
    }

    /// Checks the container with a one-result List Blobs (the permission
    /// the store needs anyway); creates it when missing.
    async fn ensure_container(&self) -> Result<()> {
        let container = &self.inner.loc.container;
        let what = format!("{}: container {container}", self.inner.describe);
        let probe = Call::new(Method::GET, None)
            .query("restype", "container")
            .query("comp", "list")
            .query("maxresults", "1")
            .accept(&[404]);
        let resp = self.inner.send(probe, &format!("{what}: list")).await?;
        if resp.status().as_u16() != 404 {
            return Ok(());
        }
        let create = Call::new(Method::PUT, None).query("restype", "container").accept(&[403, 409]);
        let resp = self.inner.send(create, &format!("{what}: create")).await?;
        match resp.status().as_u16() {
            409 => Ok(()),
            403 => {
                let f = Failure::read(resp).await;
                Err(BlobError::new(
                    BlobErrorKind::AccessDenied,
                    self.inner.scrub(format!(
                        "{}: container {container:?} does not exist and the {} may not create it (HTTP 403 {}): create it (az storage container create --account-name {} --name {container}) or use a credential allowed to create containers",
                        self.inner.describe, self.inner.credential, f.code, self.inner.loc.account
                    )),
                ))
            }
            _ => {
                tracing::info!(store = %self.inner.describe, container = %container, "created the container");
                Ok(())
            }
        }
    }

    /// What a Get Blob / Get Blob Properties answer says about the object.
    fn info_of(&self, key: &str, resp: &Response) -> Result<BlobInfo> {
        let size = match header(resp, "content-range").and_then(|r| r.rsplit_once('/')) {
            Some((_, total)) => total.trim().parse().ok(),
            None => header(resp, "content-length").and_then(|l| l.trim().parse().ok()),
        };
        let size = size.ok_or_else(|| {
            BlobError::internal(format!("{}: the answer has no Content-Length", self.what(key, "read")))
        })?;
        Ok(BlobInfo {
            key: key.to_string(),
            size,
            sha256: header(resp, SHA256_HEADER).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            etag: header(resp, "etag").map(|e| e.trim_matches('"').to_string()),
            modified: header(resp, "last-modified").and_then(xml::http_date),
        })
    }

    fn not_found(&self, key: &str) -> BlobError {
        BlobError::not_found(format!("{}: no such object", self.what(key, "get")))
    }
}

#[async_trait]
impl BlobStore for AzureStore {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn part_size(&self) -> usize {
        self.block_size
    }

    async fn put(&self, key: &str, options: PutOptions) -> Result<Box<dyn BlobWriter>> {
        check_key(key)?;
        let sizer = PartSizer::new(MIN_BLOCK_SIZE, self.block_size, 1, MAX_BLOCK_SIZE, MAX_BLOCKS, options.size_hint);
        Ok(Box::new(AzureWriter::new(self.inner.clone(), key, options, sizer)))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead> {
        check_key(key)?;
        let empty = || Box::pin(futures::stream::empty()) as super::ByteStream;
        if let Some(r) = range
            && r.is_empty()
        {
            let info = self.head(key).await?.ok_or_else(|| self.not_found(key))?;
            return Ok(BlobRead::ranged(info, empty()));
        }
        let mut call = Call::new(Method::GET, Some(self.blob_name(key))).accept(&[404, 416]).streamed();
        if let Some(h) = range.and_then(|r| r.http_header()) {
            call = call.header("x-ms-range", h);
        }
        let what = self.what(key, "get");
        let resp = self.inner.send(call, &what).await?;
        match resp.status().as_u16() {
            404 => return Err(self.not_found(key)),
            // A range starting past the end: no bytes.
            416 => {
                let info = self.head(key).await?.ok_or_else(|| self.not_found(key))?;
                return Ok(BlobRead::ranged(info, empty()));
            }
            _ => {}
        }
        let info = self.info_of(key, &resp)?;
        let body = futures::stream::unfold(Some((resp, what)), |state| async move {
            let (mut resp, what) = state?;
            match resp.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some((resp, what)))),
                Ok(None) => None,
                Err(e) => Some((Err(BlobError::connection(format!("{what}: {}", transport_error(e)))), None)),
            }
        })
        .boxed();
        Ok(match range {
            None => BlobRead::full(&self.inner.describe, info, body),
            Some(_) => BlobRead::ranged(info, body),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        check_key(key)?;
        let call = Call::new(Method::HEAD, Some(self.blob_name(key))).accept(&[404]);
        let resp = self.inner.send(call, &self.what(key, "head")).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        self.info_of(key, &resp).map(Some)
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        check_prefix(prefix)?;
        let full = self.blob_name(prefix);
        // The store's own prefix ends with '/': strip it from the names.
        let strip = if self.inner.loc.prefix.is_empty() { 0 } else { self.inner.loc.prefix.len() + 1 };
        let mut call = Call::new(Method::GET, None)
            .query("restype", "container")
            .query("comp", "list")
            .query("prefix", full)
            .query("include", "metadata")
            .query("maxresults", limit.clamp(1, MAX_LIST_RESULTS).to_string());
        if let Some(marker) = after {
            call = call.query("marker", marker);
        }
        let what = self.what(prefix, "list");
        let resp = self.inner.send(call, &what).await?;
        let body = resp.text().await.map_err(|e| BlobError::connection(format!("{what}: {}", transport_error(e))))?;
        let parsed = xml::parse_list(&body).map_err(|e| BlobError::internal(format!("{what}: {e}")))?;
        let items = parsed
            .blobs
            .into_iter()
            .filter_map(|b| {
                let key = b.name.get(strip..)?.to_string();
                Some(BlobInfo { key, size: b.size, sha256: b.sha256, etag: b.etag, modified: b.modified })
            })
            .collect();
        Ok(ListPage { items, next: parsed.next_marker })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let call = Call::new(Method::DELETE, Some(self.blob_name(key)))
            .header("x-ms-delete-snapshots", "include")
            .accept(&[404]);
        self.inner.send(call, &self.what(key, "delete")).await.map(drop)
    }
}
