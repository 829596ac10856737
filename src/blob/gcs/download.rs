//! Media downloads as a byte stream: `alt=media` of one generation (so
//! every byte comes from the object whose metadata was read), with `Range`
//! for partial reads. A connection that breaks mid-stream is resumed from
//! the next byte with a new ranged request, within the retry policy.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Response, StatusCode};

use super::api::Api;
use crate::blob::{BlobError, ByteStream, Result};

struct Download {
    api: Arc<Api>,
    name: String,
    generation: Option<u64>,
    /// Next byte to read.
    pos: u64,
    /// One past the last byte to read.
    end: u64,
    /// The object's size.
    size: u64,
    resp: Option<Response>,
    /// Failures so far (reset by progress).
    failures: u32,
    what: String,
}

impl Download {
    async fn open(&mut self) -> Result<Response> {
        let range = (self.pos > 0 || self.end < self.size).then(|| format!("bytes={}-{}", self.pos, self.end - 1));
        let resp = self.api.download(&self.name, self.generation, range.as_deref(), &self.what).await?;
        match resp.status() {
            StatusCode::OK if self.pos == 0 => Ok(resp),
            StatusCode::PARTIAL_CONTENT if range.is_some() => Ok(resp),
            StatusCode::OK => Err(BlobError::internal(format!("{}: the server ignored the Range", self.what))),
            StatusCode::NOT_FOUND => {
                Err(BlobError::not_found(format!("{}: the object was deleted or replaced while being read", self.what)))
            }
            _ => Err(self.api.status_error(resp, &self.what).await),
        }
    }

    /// The next chunk; None at the end.
    async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let step = match self.resp.as_mut() {
                None => self.open().await.map(|r| {
                    self.resp = Some(r);
                    None
                }),
                Some(resp) => match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
                        let chunk = if chunk.len() > room { chunk.slice(..room) } else { chunk };
                        self.pos += chunk.len() as u64;
                        self.failures = 0;
                        Ok(Some(chunk))
                    }
                    Ok(None) => Err(BlobError::connection(format!(
                        "{}: the connection ended at byte {} of {}",
                        self.what, self.pos, self.end
                    ))),
                    Err(e) => Err(BlobError::connection(format!("{}: reading: {}", self.what, e.without_url()))),
                },
            };
            match step {
                Ok(Some(chunk)) if !chunk.is_empty() => return Ok(Some(chunk)),
                Ok(_) => {}
                Err(e) if e.is_transient() && self.failures + 1 < self.api.policy.attempts => {
                    self.failures += 1;
                    self.resp = None;
                    let wait = self.api.policy.backoff(self.failures);
                    tracing::debug!(request = %self.what, pos = self.pos, error = %e, "download failed; resuming");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Bytes `start..end` of generation `generation` of `name` (`size` bytes).
pub fn stream(
    api: Arc<Api>,
    name: String,
    generation: Option<u64>,
    start: u64,
    end: u64,
    size: u64,
    what: String,
) -> ByteStream {
    let d = Download { api, name, generation, pos: start, end, size, resp: None, failures: 0, what };
    futures::stream::unfold(Some(d), |state| async move {
        let mut d = state?;
        match d.next().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(d))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}
