//! Streaming uploads as block blobs: bytes are cut into blocks sized by
//! [`PartSizer`] and sent with Put Block, up to [`BLOCKS_IN_FLIGHT`] at a
//! time; `finish` commits them with Put Block List, which is when the blob
//! appears (with `x-ms-meta-sha256` and its content type). An object no
//! larger than one block goes up as a single Put Blob. Uncommitted blocks
//! are invisible, so abort and drop need nothing server-side: the service
//! discards them after 7 days (or at the next commit of that blob).
//!
//! Block ids are base64 of `<32 hex chars of a per-upload uuid><8-digit
//! block number>`: all of a blob's ids have the same length, as Azure
//! requires, and two writers of the same key never overwrite each other's
//! blocks (the second commit fails instead of mixing their bytes).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use reqwest::Method;
use tokio::task::JoinSet;

use super::client::{Call, Inner, header};
use super::xml;
use crate::blob::{BlobError, BlobInfo, BlobWriter, Checksum, PartSizer, PutOptions, Result, check_expected};

/// Blocks uploading at once per writer (memory: this many blocks plus the
/// one being filled).
pub const BLOCKS_IN_FLIGHT: usize = 4;
/// The content type of blobs put without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// An upload in progress.
pub(crate) struct AzureWriter {
    inner: Arc<Inner>,
    key: String,
    name: String,
    options: PutOptions,
    sizer: PartSizer,
    tag: String,
    buf: BytesMut,
    sum: Checksum,
    /// Ids of the blocks sent or being sent, in order.
    blocks: Vec<String>,
    inflight: JoinSet<Result<()>>,
}

impl AzureWriter {
    pub(crate) fn new(inner: Arc<Inner>, key: &str, options: PutOptions, sizer: PartSizer) -> AzureWriter {
        AzureWriter {
            name: inner.blob_name(key),
            inner,
            key: key.to_string(),
            options,
            sizer,
            tag: uuid::Uuid::new_v4().simple().to_string(),
            buf: BytesMut::new(),
            sum: Checksum::default(),
            blocks: Vec::new(),
            inflight: JoinSet::new(),
        }
    }

    fn what(&self, op: &str) -> String {
        format!("{}: {}: {op}", self.inner.describe, self.key)
    }

    /// The size of the block being filled.
    fn current_block_size(&self) -> usize {
        self.sizer.size_of(u32::try_from(self.blocks.len() + 1).unwrap_or(u32::MAX))
    }

    /// Waits for one block in flight; its error, if it failed.
    async fn join_one(&mut self) -> Result<()> {
        match self.inflight.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(BlobError::internal(format!("{}: {e}", self.what("put block")))),
            None => Ok(()),
        }
    }

    /// Sends a block (after waiting for a free slot).
    async fn send_block(&mut self, data: Bytes) -> Result<()> {
        while self.inflight.len() >= BLOCKS_IN_FLIGHT {
            self.join_one().await?;
        }
        let n = self.blocks.len() + 1;
        let id = base64::engine::general_purpose::STANDARD.encode(format!("{}{n:08}", self.tag));
        self.blocks.push(id.clone());
        let inner = self.inner.clone();
        let name = self.name.clone();
        let what = self.what(&format!("put block {n}"));
        self.inflight.spawn(async move {
            let call = Call::new(Method::PUT, Some(name)).query("comp", "block").query("blockid", id).body(data);
            inner.send(call, &what).await.map(drop)
        });
        Ok(())
    }

    fn metadata_headers(&self, call: Call) -> Call {
        let content_type = self.options.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
        call.header("x-ms-blob-content-type", content_type).header(super::SHA256_HEADER, self.sum.hex())
    }

    fn info(&self, resp: &reqwest::Response) -> BlobInfo {
        BlobInfo {
            key: self.key.clone(),
            size: self.sum.size(),
            sha256: Some(self.sum.hex()),
            etag: header(resp, "etag").map(|e| e.trim_matches('"').to_string()),
            modified: header(resp, "last-modified").and_then(xml::http_date),
        }
    }
}

#[async_trait]
impl BlobWriter for AzureWriter {
    async fn write(&mut self, mut data: Bytes) -> Result<()> {
        self.sum.update(&data);
        while !data.is_empty() {
            let size = self.current_block_size();
            // A full block is sent once more bytes follow it, so that an
            // object of at most one block goes up as a single Put Blob.
            if self.buf.len() >= size {
                let block = self.buf.split_to(size).freeze();
                self.send_block(block).await?;
                continue;
            }
            if self.buf.is_empty() && data.len() > size {
                let block = data.split_to(size);
                self.send_block(block).await?;
                continue;
            }
            let take = (size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data.split_to(take));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BlobInfo> {
        // Every byte is in: a mismatch publishes nothing (the blocks sent
        // stay uncommitted).
        check_expected(&self.inner.describe, &self.key, &self.options, &self.sum)?;
        if self.blocks.is_empty() {
            let body = std::mem::take(&mut self.buf).freeze();
            let call = Call::new(Method::PUT, Some(self.name.clone())).header("x-ms-blob-type", "BlockBlob").body(body);
            let call = self.metadata_headers(call);
            let resp = self.inner.send(call, &self.what("put blob")).await?;
            return Ok(self.info(&resp));
        }
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf).freeze();
            self.send_block(last).await?;
        }
        while !self.inflight.is_empty() {
            self.join_one().await?;
        }
        let body = Bytes::from(xml::block_list(&self.blocks));
        let call = Call::new(Method::PUT, Some(self.name.clone()))
            .query("comp", "blocklist")
            .header("content-type", "application/xml")
            .body(body);
        let call = self.metadata_headers(call);
        let what = self.what(&format!("put block list ({} blocks)", self.blocks.len()));
        let resp = self.inner.send(call, &what).await?;
        tracing::debug!(store = %self.inner.describe, key = %self.key, blocks = self.blocks.len(), size = self.sum.size(), "committed");
        Ok(self.info(&resp))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Nothing to delete: blocks never committed are invisible and
        // discarded by the service.
        self.inflight.abort_all();
        Ok(())
    }
}
