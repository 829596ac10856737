//! Reads: one GetObject streamed to the caller. A body that breaks or stalls
//! for [`READ_IDLE`] midway is resumed with a ranged GetObject from the
//! next byte, conditional on the same ETag (an object replaced meanwhile
//! fails the read instead of splicing two objects), up to
//! [`crate::aws::MAX_ATTEMPTS`] tries in all.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream as SdkStream;
use bytes::{Buf, Bytes};

use super::{Inner, len_of, sha_of, time_of};
use crate::aws::{ATTEMPT_TIMEOUT, MAX_ATTEMPTS};
use crate::blob::retry::RetryPolicy;
use crate::blob::{BlobError, BlobErrorKind, BlobInfo, BlobRead, ByteRange, Result};

/// How long a body may go without a byte before the read is resumed.
pub const READ_IDLE: Duration = ATTEMPT_TIMEOUT;

/// Reads `key` whole or a range of it.
pub(super) async fn get(inner: Arc<Inner>, key: &str, range: Option<ByteRange>) -> Result<BlobRead> {
    if range.is_some_and(|r| r.is_empty()) {
        return empty(&inner, key).await;
    }
    let header = range.and_then(|r| r.http_header());
    let request = inner.client.get_object().bucket(&inner.cfg.bucket).key(inner.cfg.object_key(key)).set_range(header);
    let out = match request.send().await {
        Ok(out) => out,
        Err(e) => {
            let past_end = e.raw_response().is_some_and(|r| r.status().as_u16() == 416)
                || aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("InvalidRange");
            if range.is_some() && past_end {
                return empty(&inner, key).await;
            }
            return Err(inner.error("get", key, e));
        }
    };
    let (body_start, size) = match out.content_range().and_then(parse_content_range) {
        Some((start, total)) => (start, total),
        // No Content-Range: the whole object (a server ignoring Range too).
        None => match out.content_length() {
            Some(n) => (0, len_of(Some(n))),
            None => {
                return Err(BlobError::internal(format!("{}: get: the answer has no Content-Length", inner.what(key))));
            }
        },
    };
    let info = info_of(key, &out, size);
    let from = range.map_or(0, |r| r.start);
    let end = range.and_then(|r| r.end).map_or(size, |e| e.min(size));
    let download = Download {
        inner: inner.clone(),
        key: key.to_string(),
        etag: info.etag.clone(),
        body: out.body,
        pos: body_start,
        from,
        end,
        resumes: 0,
    };
    let body = Box::pin(futures::stream::try_unfold(download, Download::next));
    Ok(match range {
        None => BlobRead::full(&inner.describe, info, body),
        Some(_) => BlobRead::ranged(info, body),
    })
}

/// An empty read of an existing object (an empty range, or one past the end).
async fn empty(inner: &Arc<Inner>, key: &str) -> Result<BlobRead> {
    let store = super::S3Store { inner: inner.clone() };
    match crate::blob::BlobStore::head(&store, key).await? {
        Some(info) => Ok(BlobRead::ranged(info, Box::pin(futures::stream::empty()))),
        None => Err(BlobError::not_found(format!("{}: no such object", inner.what(key)))),
    }
}

fn info_of(key: &str, out: &GetObjectOutput, size: u64) -> BlobInfo {
    BlobInfo {
        key: key.to_string(),
        size,
        sha256: sha_of(out.metadata()),
        etag: out.e_tag().map(str::to_string),
        modified: time_of(out.last_modified()),
    }
}

/// `bytes a-b/total` as (a, total).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// A body being streamed: `pos` is the offset of the next byte it yields;
/// bytes before `from` are dropped (a server that ignored Range), the read
/// stops at `end`.
struct Download {
    inner: Arc<Inner>,
    key: String,
    etag: Option<String>,
    body: SdkStream,
    pos: u64,
    from: u64,
    end: u64,
    resumes: u32,
}

impl Download {
    async fn next(mut self) -> Result<Option<(Bytes, Download)>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let why = match tokio::time::timeout(READ_IDLE, self.body.next()).await {
                Ok(Some(Ok(mut chunk))) => {
                    let start = self.pos;
                    self.pos += chunk.len() as u64;
                    if start < self.from {
                        chunk.advance(usize::try_from(self.from - start).unwrap_or(usize::MAX).min(chunk.len()));
                    }
                    if self.pos > self.end {
                        let extra = usize::try_from(self.pos - self.end).unwrap_or(usize::MAX).min(chunk.len());
                        chunk.truncate(chunk.len() - extra);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    return Ok(Some((chunk, self)));
                }
                Ok(Some(Err(e))) => e.to_string(),
                Ok(None) => format!("the body ended at byte {} of {}", self.pos, self.end),
                Err(_) => format!("no data for {} s", READ_IDLE.as_secs()),
            };
            self.resume(&why).await?;
        }
    }

    /// Starts a ranged GetObject at the next byte wanted.
    async fn resume(&mut self, why: &str) -> Result<()> {
        let s = &self.inner;
        let what = s.what(&self.key);
        let Some(etag) = self.etag.clone() else {
            return Err(BlobError::connection(format!("{what}: read broken ({why}); no ETag to resume on")));
        };
        loop {
            self.resumes += 1;
            if self.resumes >= MAX_ATTEMPTS {
                return Err(BlobError::connection(format!(
                    "{what}: read broken at byte {} ({why}); gave up after {} resumes",
                    self.pos,
                    self.resumes - 1
                )));
            }
            let wait = RetryPolicy::default().backoff(self.resumes);
            tracing::debug!(store = %s.describe, key = %self.key, pos = self.pos, reason = why, "resuming a read");
            tokio::time::sleep(wait).await;
            let start = self.pos.max(self.from);
            let sent = s
                .client
                .get_object()
                .bucket(&s.cfg.bucket)
                .key(s.cfg.object_key(&self.key))
                .range(format!("bytes={start}-{}", self.end - 1))
                .if_match(&etag)
                .send()
                .await;
            match sent {
                Ok(out) => {
                    self.pos = out.content_range().and_then(parse_content_range).map_or(0, |(a, _)| a);
                    self.body = out.body;
                    return Ok(());
                }
                Err(e) => {
                    let e = s.error("resume read", &self.key, e);
                    if e.is_transient() {
                        continue;
                    }
                    if e.message.contains("PreconditionFailed") {
                        return Err(BlobError::new(
                            BlobErrorKind::Internal,
                            format!("{what}: the object was replaced while being read; read it again"),
                        ));
                    }
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_ranges() {
        assert_eq!(super::parse_content_range("bytes 0-9/300000"), Some((0, 300_000)));
        assert_eq!(super::parse_content_range("bytes 299990-299999/300000"), Some((299_990, 300_000)));
        assert_eq!(super::parse_content_range("bytes */300000"), None);
        assert_eq!(super::parse_content_range("items 1-2/3"), None);
    }
}
