//! Uploads: bytes fill one part at a time; a full part starts the multipart
//! upload (CreateMultipartUpload, with `expected_sha256` as metadata when
//! known) and is sent in the background, at most [`PARTS_IN_FLIGHT`] at
//! once, so a writer holds at most that many parts plus the one filling.
//! `finish` sends the rest, checks the checksum, completes the upload and,
//! when the SHA-256 was not known up front, copies the object onto itself
//! with the `sha256` metadata. A writer that never filled a part sends one
//! PutObject at finish. Abort and drop abort the multipart upload.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream as SdkStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::task::JoinSet;

use super::{Inner, MAX_COPY, MAX_PART, MAX_PARTS, MIN_PART, PARTS_IN_FLIGHT, timeouts_for};
use crate::blob::{
    BlobError, BlobErrorKind, BlobInfo, BlobWriter, Checksum, PartSizer, PutOptions, Result, SHA256_METADATA,
    check_expected,
};

/// An upload in progress.
pub(super) struct S3Writer {
    inner: Arc<Inner>,
    key: String,
    object_key: String,
    options: PutOptions,
    sizer: PartSizer,
    buf: BytesMut,
    /// The number of the next part.
    next_part: u32,
    /// The multipart upload, once a part filled.
    upload_id: Option<String>,
    inflight: JoinSet<Result<(CompletedPart, u64)>>,
    parts: Vec<CompletedPart>,
    /// Bytes in the parts sent and acknowledged.
    sent: u64,
    sum: Checksum,
    /// A part failed: the upload can only be aborted.
    failed: bool,
}

/// Content-MD5 (base64) of a part, off the async threads.
async fn content_md5(data: Bytes) -> Result<String> {
    tokio::task::spawn_blocking(move || base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data)))
        .await
        .map_err(|e| BlobError::internal(format!("Content-MD5: {e}")))
}

impl S3Writer {
    pub(super) fn start(inner: Arc<Inner>, key: &str, mut options: PutOptions) -> Result<S3Writer> {
        if let Some(sha) = &options.expected_sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BlobError::bad(format!(
                    "{}: expected SHA-256 {sha:?} is not 64 hex digits",
                    inner.what(key)
                )));
            }
            options.expected_sha256 = Some(sha.to_ascii_lowercase());
        }
        let sizer = PartSizer::new(MIN_PART, inner.part_size, 1, MAX_PART, MAX_PARTS, options.size_hint);
        Ok(S3Writer {
            object_key: inner.cfg.object_key(key),
            key: key.to_string(),
            inner,
            options,
            sizer,
            buf: BytesMut::new(),
            next_part: 1,
            upload_id: None,
            inflight: JoinSet::new(),
            parts: Vec::new(),
            sent: 0,
            sum: Checksum::default(),
            failed: false,
        })
    }

    fn what(&self) -> String {
        self.inner.what(&self.key)
    }

    /// Metadata set when the upload starts: the SHA-256 if known.
    fn metadata(&self, sha: Option<&str>) -> Option<HashMap<String, String>> {
        sha.map(|s| HashMap::from([(SHA256_METADATA.to_string(), s.to_string())]))
    }

    async fn create(&mut self) -> Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let s = &self.inner;
        let (sse, kms_key) = s.sse();
        let out = s
            .client
            .create_multipart_upload()
            .bucket(&s.cfg.bucket)
            .key(&self.object_key)
            .set_content_type(self.options.content_type.clone())
            .set_metadata(self.metadata(self.options.expected_sha256.as_deref()))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_acl(s.acl())
            .send()
            .await
            .map_err(|e| s.error("start the multipart upload", &self.key, e))?;
        let id = out
            .upload_id()
            .ok_or_else(|| BlobError::internal(format!("{}: the server returned no upload id", self.what())))?
            .to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Waits for one part in flight; a failure poisons the writer.
    async fn reap_one(&mut self) -> Result<()> {
        let Some(joined) = self.inflight.join_next().await else { return Ok(()) };
        let r = match joined {
            Ok(r) => r,
            Err(e) => Err(BlobError::internal(format!("{}: part upload task: {e}", self.what()))),
        };
        match r {
            Ok((part, len)) => {
                self.parts.push(part);
                self.sent += len;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Sends `data` as the next part, in the background.
    async fn send_part(&mut self, data: Bytes) -> Result<()> {
        if self.next_part > MAX_PARTS {
            return Err(BlobError::bad(format!(
                "{}: more than {MAX_PARTS} parts ({} bytes): larger than S3 allows",
                self.what(),
                self.sum.size()
            )));
        }
        let upload_id = self.create().await?;
        while self.inflight.len() >= PARTS_IN_FLIGHT {
            self.reap_one().await?;
        }
        let n = self.next_part;
        self.next_part += 1;
        let inner = self.inner.clone();
        let key = self.key.clone();
        let object_key = self.object_key.clone();
        self.inflight.spawn(async move {
            let len = data.len() as u64;
            let md5 = content_md5(data.clone()).await?;
            let out = inner
                .client
                .upload_part()
                .bucket(&inner.cfg.bucket)
                .key(object_key)
                .upload_id(upload_id)
                .part_number(i32::try_from(n).unwrap_or(i32::MAX))
                .content_md5(md5)
                .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                .body(SdkStream::from(data))
                .customize()
                .config_override(timeouts_for(len))
                .send()
                .await
                .map_err(|e| inner.error(&format!("upload part {n}"), &key, e))?;
            let part =
                CompletedPart::builder().part_number(n as i32).set_e_tag(out.e_tag().map(str::to_string)).build();
            Ok((part, len))
        });
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(BlobError::internal(format!(
                "{}: a part failed earlier; the upload can only be aborted",
                self.what()
            )));
        }
        Ok(())
    }

    /// One PutObject of everything (an object smaller than a part).
    async fn put_whole(&mut self) -> Result<BlobInfo> {
        let data = self.buf.split().freeze();
        let sha = self.sum.hex();
        let len = data.len() as u64;
        let md5 = content_md5(data.clone()).await?;
        let s = &self.inner;
        let (sse, kms_key) = s.sse();
        let out = s
            .client
            .put_object()
            .bucket(&s.cfg.bucket)
            .key(&self.object_key)
            .content_md5(md5)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .set_content_type(self.options.content_type.clone())
            .set_metadata(self.metadata(Some(&sha)))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_acl(s.acl())
            .body(SdkStream::from(data))
            .customize()
            .config_override(timeouts_for(len))
            .send()
            .await
            .map_err(|e| s.error("put", &self.key, e))?;
        Ok(self.info(out.e_tag(), sha))
    }

    fn info(&self, etag: Option<&str>, sha: String) -> BlobInfo {
        BlobInfo {
            key: self.key.clone(),
            size: self.sum.size(),
            sha256: Some(sha),
            etag: etag.map(str::to_string),
            modified: None,
        }
    }

    /// Sends the last part, waits for all, checks, completes.
    async fn complete(&mut self) -> Result<BlobInfo> {
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.send_part(last).await?;
        }
        while !self.inflight.is_empty() {
            self.reap_one().await?;
        }
        check_expected(&self.inner.describe, &self.key, &self.options, &self.sum)?;
        self.parts.sort_by_key(|p| p.part_number());
        let contiguous = self.parts.iter().enumerate().all(|(i, p)| p.part_number() == Some(i as i32 + 1));
        if !contiguous || self.parts.len() as u32 != self.next_part - 1 || self.sent != self.sum.size() {
            return Err(BlobError::internal(format!(
                "{}: {} parts of {} bytes acknowledged for {} parts of {} bytes written; not published",
                self.what(),
                self.parts.len(),
                self.sent,
                self.next_part - 1,
                self.sum.size()
            )));
        }
        let s = self.inner.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build();
        let out = s
            .client
            .complete_multipart_upload()
            .bucket(&s.cfg.bucket)
            .key(&self.object_key)
            .upload_id(&upload_id)
            .multipart_upload(parts)
            .customize()
            .config_override(timeouts_for(self.sum.size()))
            .send()
            .await
            .map_err(|e| s.error("complete the multipart upload", &self.key, e))?;
        // Published: nothing left to abort.
        self.upload_id = None;
        let sha = self.sum.hex();
        let mut etag = out.e_tag().map(str::to_string);
        if self.options.expected_sha256.is_none() {
            etag = self.add_checksum(etag, out.version_id(), &sha).await;
        }
        Ok(self.info(etag.as_deref(), sha))
    }

    /// Sets the `sha256` metadata of the object just completed by copying
    /// it onto itself (CopyObject, MetadataDirective REPLACE, conditional on
    /// its ETag), then removes the version the copy superseded where the
    /// bucket keeps versions. Failures leave the object published without
    /// the metadata (reads are then checked by size only) and are logged.
    /// Returns the object's ETag.
    async fn add_checksum(&self, etag: Option<String>, version: Option<&str>, sha: &str) -> Option<String> {
        let s = &self.inner;
        let size = self.sum.size();
        let Some(current) = etag.clone() else {
            tracing::warn!(store = %s.describe, key = %self.key, "no ETag from CompleteMultipartUpload; no checksum metadata");
            return etag;
        };
        if size > MAX_COPY {
            tracing::debug!(store = %s.describe, key = %self.key, size,
                "larger than one CopyObject (5 GiB): published without sha256 metadata");
            return etag;
        }
        let (sse, kms_key) = s.sse();
        let source = format!("{}/{}", s.cfg.bucket, encode_key(&self.object_key));
        let copied = s
            .client
            .copy_object()
            .bucket(&s.cfg.bucket)
            .key(&self.object_key)
            .copy_source(source)
            .copy_source_if_match(&current)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(self.metadata(Some(sha)))
            .set_content_type(self.options.content_type.clone())
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .set_acl(s.acl())
            .customize()
            .config_override(timeouts_for(size))
            .send()
            .await;
        match copied {
            Ok(out) => {
                if let Some(v) = version.filter(|v| !v.is_empty() && *v != "null") {
                    let r =
                        s.client.delete_object().bucket(&s.cfg.bucket).key(&self.object_key).version_id(v).send().await;
                    if let Err(e) = r {
                        tracing::debug!(store = %s.describe, key = %self.key, error = %s.error("remove the superseded version", &self.key, e),
                            "the version without checksum metadata stays");
                    }
                }
                out.copy_object_result().and_then(|r| r.e_tag()).map(str::to_string).or(etag)
            }
            Err(e) => {
                let e = s.error("set the sha256 metadata (self-copy)", &self.key, e);
                if e.message.contains("PreconditionFailed") {
                    tracing::debug!(store = %s.describe, key = %self.key, "replaced by another writer before the checksum copy");
                } else {
                    tracing::warn!(store = %s.describe, key = %self.key, error = %e, "published without sha256 metadata");
                }
                etag
            }
        }
    }

    async fn write_inner(&mut self, mut data: Bytes) -> Result<()> {
        self.sum.update(&data);
        while !data.is_empty() {
            let want = self.sizer.size_of(self.next_part);
            if self.buf.is_empty() && data.len() >= want {
                // A whole part in the caller's buffer: no copy.
                let part = data.split_to(want);
                self.send_part(part).await?;
                continue;
            }
            if self.buf.capacity() < want {
                self.buf.reserve(want - self.buf.len());
            }
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data.split_to(take));
            if self.buf.len() == want {
                let part = self.buf.split().freeze();
                self.send_part(part).await?;
            }
        }
        // Surface a failed part early.
        while let Some(joined) = self.inflight.try_join_next() {
            match joined {
                Ok(Ok((part, len))) => {
                    self.parts.push(part);
                    self.sent += len;
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Err(e) => {
                    self.failed = true;
                    return Err(BlobError::internal(format!("{}: part upload task: {e}", self.what())));
                }
            }
        }
        Ok(())
    }

    /// Aborts the multipart upload (after stopping the parts in flight).
    async fn abort_upload(&mut self) -> Result<()> {
        self.inflight.shutdown().await;
        let Some(id) = self.upload_id.take() else { return Ok(()) };
        let s = &self.inner;
        match s.client.abort_multipart_upload().bucket(&s.cfg.bucket).key(&self.object_key).upload_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => match s.error("abort the multipart upload", &self.key, e) {
                e if e.kind == BlobErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }
}

/// A key for `x-amz-copy-source`: percent-encoded but for `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.check_usable()?;
        let r = self.write_inner(data).await;
        // Bytes counted but not sent: the upload can only be aborted now.
        self.failed = r.is_err();
        r
    }

    async fn finish(mut self: Box<Self>) -> Result<BlobInfo> {
        self.check_usable()?;
        if self.upload_id.is_none() {
            check_expected(&self.inner.describe, &self.key, &self.options, &self.sum)?;
            return self.put_whole().await;
        }
        match self.complete().await {
            Ok(info) => Ok(info),
            Err(e) => {
                if let Err(a) = self.abort_upload().await {
                    tracing::warn!(error = %a, "aborting the failed upload");
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_upload().await
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let Some(id) = self.upload_id.take() else { return };
        // The parts in flight are stopped first, then the upload aborted.
        let mut inflight = std::mem::take(&mut self.inflight);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(key = %self.key, "writer dropped outside a runtime; the lifecycle rule cleans its parts");
            return;
        };
        let inner = self.inner.clone();
        let (key, object_key) = (self.key.clone(), self.object_key.clone());
        handle.spawn(async move {
            inflight.shutdown().await;
            let r = inner
                .client
                .abort_multipart_upload()
                .bucket(&inner.cfg.bucket)
                .key(object_key)
                .upload_id(id)
                .send()
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %inner.error("abort the dropped upload", &key, e), "abort after drop");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_sources_are_encoded() {
        assert_eq!(super::encode_key("a/b c/ü+%.tar"), "a/b%20c/%C3%BC%2B%25.tar");
    }
}
