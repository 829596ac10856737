//! Streaming uploads: a resumable upload session fed one chunk at a time
//! (multiples of 256 KiB, sized by [`PartSizer`]), finalized by the request
//! that carries the total size, which is when the object appears. While a
//! chunk is on the wire the next one is filled, so at most two chunks are
//! in memory. An upload that ends before its first chunk is full is sent as
//! one `uploadType=multipart` request instead (object resource and bytes).
//!
//! A chunk that fails transiently is resumed: the session is asked how many
//! bytes it persisted (`Content-Range: bytes */*`) and the rest of the chunk,
//! still in memory, is sent again. Abort (and drop, in the background)
//! cancels the session with a DELETE.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::api::{Api, ObjectResource, SessionState};
use crate::blob::{
    BlobError, BlobInfo, BlobWriter, Checksum, PartSizer, PutOptions, Result, SHA256_METADATA, check_expected,
};

/// What one chunk needs to reach the session.
struct Chunk {
    api: Arc<Api>,
    session: Arc<str>,
    /// Offset of `data[0]` in the object.
    offset: u64,
    data: Bytes,
    /// The object's size, on the final request.
    total: Option<u64>,
    what: String,
}

impl Chunk {
    fn content_range(&self, start: u64) -> String {
        let end = self.offset + self.data.len() as u64;
        let total = self.total.map_or_else(|| "*".to_string(), |t| t.to_string());
        if start >= end { format!("bytes */{total}") } else { format!("bytes {start}-{}/{total}", end - 1) }
    }

    /// Sends the chunk, resuming after transient failures from what the
    /// session says it persisted.
    async fn send(self) -> Result<SessionState> {
        let end = self.offset + self.data.len() as u64;
        let policy = self.api.policy;
        let mut start = self.offset;
        let mut attempt = 1;
        let mut ask_status = false;
        loop {
            let result = if ask_status {
                self.api.session_put(&self.session, "bytes */*", Bytes::new(), &self.what).await
            } else {
                let body = self.data.slice(usize::try_from(start - self.offset).unwrap_or(0)..);
                self.api.session_put(&self.session, &self.content_range(start), body, &self.what).await
            };
            match result {
                Ok(SessionState::Done(obj)) => return Ok(SessionState::Done(obj)),
                Ok(SessionState::Incomplete(persisted)) => {
                    if persisted < self.offset || persisted > end {
                        return Err(BlobError::internal(format!(
                            "{}: the session persisted {persisted} bytes, this chunk covers {}..{end}",
                            self.what, self.offset
                        )));
                    }
                    if persisted == end && self.total.is_none() {
                        return Ok(SessionState::Incomplete(persisted));
                    }
                    // The server kept less than sent (or the status query
                    // answered): send the rest.
                    let progressed = persisted > start || ask_status;
                    start = persisted;
                    ask_status = false;
                    if !progressed {
                        attempt += 1;
                        if attempt > policy.attempts {
                            return Err(BlobError::connection(format!(
                                "{}: the session keeps answering 308 at {persisted} of {end} bytes",
                                self.what
                            )));
                        }
                    }
                }
                Err(e) if e.is_transient() && attempt < policy.attempts => {
                    let wait = policy.backoff(attempt);
                    tracing::debug!(request = %self.what, attempt, error = %e, "chunk failed; resuming");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    ask_status = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// An upload in progress.
pub struct GcsWriter {
    api: Arc<Api>,
    key: String,
    name: String,
    options: PutOptions,
    sizer: PartSizer,
    /// Chunks handed to the session so far.
    parts: u32,
    buf: BytesMut,
    sum: Checksum,
    session: Option<Arc<str>>,
    /// Bytes handed to the session (acknowledged, or in the chunk in flight).
    sent: u64,
    inflight: Option<JoinHandle<Result<SessionState>>>,
    /// The session is finalized or cancelled: nothing to clean up.
    closed: bool,
}

impl GcsWriter {
    /// A writer of object `name` (`key` under the store's prefix).
    pub fn new(api: Arc<Api>, key: String, name: String, options: PutOptions, sizer: PartSizer) -> GcsWriter {
        GcsWriter {
            api,
            key,
            name,
            options,
            sizer,
            parts: 0,
            buf: BytesMut::new(),
            sum: Checksum::default(),
            session: None,
            sent: 0,
            inflight: None,
            closed: false,
        }
    }

    fn what(&self) -> String {
        format!("{}: {}", self.api.describe, self.key)
    }

    /// The object resource sent when the upload starts.
    fn resource(&self, sha256: Option<String>) -> serde_json::Value {
        let mut r = serde_json::json!({ "name": self.name });
        if let Some(ct) = &self.options.content_type {
            r["contentType"] = serde_json::Value::String(ct.clone());
        }
        if let Some(sha) = sha256 {
            r["metadata"] = serde_json::json!({ SHA256_METADATA: sha.to_ascii_lowercase() });
        }
        r
    }

    async fn wait_inflight(&mut self) -> Result<()> {
        let Some(handle) = self.inflight.take() else { return Ok(()) };
        let state = handle.await.map_err(|e| BlobError::internal(format!("{}: chunk upload: {e}", self.what())))??;
        match state {
            SessionState::Incomplete(n) if n == self.sent => Ok(()),
            SessionState::Incomplete(n) => Err(BlobError::internal(format!(
                "{}: the session persisted {n} bytes, {} were sent",
                self.what(),
                self.sent
            ))),
            SessionState::Done(_) => {
                Err(BlobError::internal(format!("{}: the session finished before its last chunk", self.what())))
            }
        }
    }

    async fn session(&mut self) -> Result<Arc<str>> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let resource = self.resource(self.options.expected_sha256.clone());
        let what = format!("{}: start a resumable upload", self.what());
        let uri: Arc<str> = self.api.start_session(&resource, &what).await?.into();
        self.session = Some(uri.clone());
        Ok(uri)
    }

    /// Hands the next full chunk to the session (after the previous one is acknowledged).
    async fn send_part(&mut self, size: usize) -> Result<()> {
        let data = self.buf.split_to(size).freeze();
        self.wait_inflight().await?;
        let session = self.session().await?;
        self.parts += 1;
        let chunk = Chunk {
            api: self.api.clone(),
            session,
            offset: self.sent,
            total: None,
            what: format!("{}: chunk {}", self.what(), self.parts),
            data,
        };
        self.sent += chunk.data.len() as u64;
        self.inflight = Some(tokio::spawn(chunk.send()));
        Ok(())
    }

    fn info(&self, obj: &ObjectResource) -> BlobInfo {
        let mut info = obj.info(self.key.clone());
        info.sha256 = Some(self.sum.hex());
        info
    }

    async fn cancel(&mut self) -> Result<()> {
        if let Some(h) = self.inflight.take() {
            h.abort();
            let _ = h.await;
        }
        self.closed = true;
        if let Some(session) = self.session.take() {
            let what = format!("{}: cancel the resumable upload", self.what());
            self.api.cancel_session(&session, &what).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for GcsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.closed {
            return Err(BlobError::internal(format!("{}: upload already finished", self.what())));
        }
        self.sum.update(&data);
        self.buf.extend_from_slice(&data);
        loop {
            let size = self.sizer.size_of(self.parts + 1);
            if self.buf.len() < size {
                break;
            }
            self.send_part(size).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BlobInfo> {
        if self.closed {
            return Err(BlobError::internal(format!("{}: upload already finished", self.what())));
        }
        let describe = self.api.describe.clone();
        let sha = self.sum.hex();
        let Some(session) = self.session.clone() else {
            // Smaller than one chunk: one multipart request, checksum included.
            check_expected(&describe, &self.key, &self.options, &self.sum)?;
            let data = self.buf.split().freeze();
            let what = format!("{}: upload", self.what());
            let obj = self.api.multipart_upload(&self.resource(Some(sha)), data, &what).await?;
            self.closed = true;
            return Ok(self.info(&obj));
        };
        self.wait_inflight().await?;
        if let Err(e) = check_expected(&describe, &self.key, &self.options, &self.sum) {
            if let Err(c) = self.cancel().await {
                tracing::warn!(error = %c, "cancelling a resumable upload whose checksum did not match");
            }
            return Err(e);
        }
        let total = self.sent + self.buf.len() as u64;
        let chunk = Chunk {
            api: self.api.clone(),
            session,
            offset: self.sent,
            total: Some(total),
            what: format!("{}: final chunk", self.what()),
            data: self.buf.split().freeze(),
        };
        let obj = match chunk.send().await? {
            SessionState::Done(obj) => obj,
            SessionState::Incomplete(n) => {
                return Err(BlobError::internal(format!(
                    "{}: the session did not finish: {n} of {total} bytes persisted",
                    self.what()
                )));
            }
        };
        self.closed = true;
        self.session = None;
        if obj.size() != total {
            return Err(BlobError::internal(format!(
                "{}: published {} bytes, {total} were written",
                self.what(),
                obj.size()
            )));
        }
        if obj.sha256().as_deref() == Some(sha.as_str()) {
            return Ok(self.info(&obj));
        }
        // The checksum was not known when the session started: set it now,
        // on this generation only (a newer object is left alone).
        let what = format!("{}: set the sha256 metadata", self.what());
        let metadata = serde_json::json!({ SHA256_METADATA: sha });
        let patched = self.api.patch_metadata(&obj.name, obj.generation(), metadata, &what).await.map_err(|e| {
            BlobError::new(e.kind, format!("{} (the object was published without its checksum)", e.message))
        })?;
        Ok(self.info(&patched))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.cancel().await
    }
}

impl Drop for GcsWriter {
    fn drop(&mut self) {
        if let Some(h) = self.inflight.take() {
            h.abort();
        }
        if self.closed {
            return;
        }
        let Some(session) = self.session.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(key = %self.key, "upload dropped outside a runtime; the session expires in a week");
            return;
        };
        let api = self.api.clone();
        let what = format!("{}: cancel the dropped upload", self.what());
        rt.spawn(async move {
            if let Err(e) = api.cancel_session(&session, &what).await {
                tracing::debug!(error = %e, "cancelling a dropped upload; the session expires in a week");
            }
        });
    }
}
