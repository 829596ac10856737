//! OBJECT STORAGE: one [`BlobStore`] trait over a local directory (`fs`),
//! S3 (`s3`), Google Cloud Storage (`gcs`) and Azure Blob (`azure`), used by
//! session recordings (`recordings/`) and backups.
//!
//! The contract every store keeps (checked by `blob::suite` on real servers):
//! - **Streaming puts of any size.** [`BlobStore::put`] returns a
//!   [`BlobWriter`] that buffers at most one part (plus the parts in flight)
//!   and uploads it as the store's multipart / resumable / block upload, the
//!   part size chosen by [`PartSizer`] from the store's limits.
//! - **Atomic publish.** An object is visible (get, head, list) only once
//!   [`BlobWriter::finish`] returned; a writer dropped or aborted earlier
//!   leaves nothing listed.
//! - **Checksums.** The SHA-256 of the whole object is computed while
//!   streaming, returned by `finish`, stored with the object where the store
//!   allows (object metadata `sha256`, an extended attribute on files) and
//!   checked at the end of every full read ([`BlobRead`]).
//! - **Listing** in byte order of keys, in pages, with an opaque cursor.
//! - **Keys** are `/`-separated relative names ([`check_key`]), under the
//!   store's prefix (the URI's path).
//!
//! Errors name the store (its URI without secrets) and the key.

#[cfg(feature = "azure")]
pub mod azure;
pub mod fs;
#[cfg(feature = "gcs")]
pub mod gcs;
pub mod registry;
pub mod retry;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
pub mod uri;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

pub use registry::{SCHEMES, open};
pub use uri::BlobUri;

/// The metadata key the SHA-256 (lowercase hex) of an object is stored under.
pub const SHA256_METADATA: &str = "sha256";

/// Longest key accepted (S3's and GCS's limit, in bytes of UTF-8).
pub const MAX_KEY_LEN: usize = 1024;

/// What went wrong, in terms callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobErrorKind {
    /// No object at the key (or no bucket / container).
    NotFound,
    /// A malformed key, URI or option.
    BadParameter,
    /// The store could not be reached or failed transiently; retrying may help.
    ConnectionProblem,
    /// The store refused our credentials or permissions.
    AccessDenied,
    /// The bytes read do not match the checksum stored with the object.
    ChecksumMismatch,
    /// Anything else: unexpected answers, local I/O errors.
    Internal,
}

impl fmt::Display for BlobErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobErrorKind::NotFound => "not found",
            BlobErrorKind::BadParameter => "bad parameter",
            BlobErrorKind::ConnectionProblem => "connection problem",
            BlobErrorKind::AccessDenied => "access denied",
            BlobErrorKind::ChecksumMismatch => "checksum mismatch",
            BlobErrorKind::Internal => "internal error",
        })
    }
}

/// An object store error: a kind and a message naming the store and key.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BlobError {
    /// The kind.
    pub kind: BlobErrorKind,
    /// What failed, where.
    pub message: String,
}

impl BlobError {
    /// An error of `kind`.
    pub fn new(kind: BlobErrorKind, message: impl Into<String>) -> BlobError {
        BlobError { kind, message: message.into() }
    }

    /// A bad parameter.
    pub fn bad(message: impl Into<String>) -> BlobError {
        BlobError::new(BlobErrorKind::BadParameter, message)
    }

    /// A missing object.
    pub fn not_found(message: impl Into<String>) -> BlobError {
        BlobError::new(BlobErrorKind::NotFound, message)
    }

    /// A transient failure.
    pub fn connection(message: impl Into<String>) -> BlobError {
        BlobError::new(BlobErrorKind::ConnectionProblem, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> BlobError {
        BlobError::new(BlobErrorKind::Internal, message)
    }

    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == BlobErrorKind::ConnectionProblem
    }

    /// Whether the object (or its bucket) is missing.
    pub fn is_not_found(&self) -> bool {
        self.kind == BlobErrorKind::NotFound
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, BlobError>;

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The key, relative to the store's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole object (lowercase hex), when stored with it.
    pub sha256: Option<String>,
    /// The store's entity tag or generation, when it has one.
    pub etag: Option<String>,
    /// Last modification time, when known.
    pub modified: Option<DateTime<Utc>>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in byte order of their keys.
    pub items: Vec<BlobInfo>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// Bytes `start..end` of an object (`end` exclusive; `None`: to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte, or the end of the object.
    pub end: Option<u64>,
}

impl ByteRange {
    /// The HTTP `Range` header value (`bytes=a-b`, inclusive), or `None` for
    /// an empty range (nothing to request).
    pub fn http_header(&self) -> Option<String> {
        match self.end {
            Some(end) if end <= self.start => None,
            Some(end) => Some(format!("bytes={}-{}", self.start, end - 1)),
            None => Some(format!("bytes={}-", self.start)),
        }
    }

    /// Whether the range is empty whatever the object.
    pub fn is_empty(&self) -> bool {
        self.end.is_some_and(|e| e <= self.start)
    }
}

/// Options of one put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The size, when the caller knows it; lets the store pick a part size
    /// (the default suits streams of unknown size).
    pub size_hint: Option<u64>,
    /// `Content-Type` where the store keeps one.
    pub content_type: Option<String>,
    /// The SHA-256 (lowercase hex) the caller expects the object to have
    /// (a copy knows its source's). Stores that must set metadata before the
    /// last byte (S3 multipart, GCS resumable) store it up front; every store
    /// refuses to publish an object whose bytes hash otherwise
    /// ([`BlobErrorKind::ChecksumMismatch`], nothing published).
    pub expected_sha256: Option<String>,
}

/// Checks the checksum of a finished upload against the expected one, for
/// stores to call in `finish` before publishing.
pub fn check_expected(store: &str, key: &str, options: &PutOptions, sum: &Checksum) -> Result<()> {
    match &options.expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&sum.hex()) => Err(BlobError::new(
            BlobErrorKind::ChecksumMismatch,
            format!(
                "{store}: {key}: the {} bytes written hash to SHA-256 {}, the expected is {expected}; not published",
                sum.size(),
                sum.hex()
            ),
        )),
        _ => Ok(()),
    }
}

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// An object being read: what the store said about it and its bytes.
pub struct BlobRead {
    /// The object (size is the whole object's, even for a ranged read).
    pub info: BlobInfo,
    /// The bytes (of the range, for a ranged read).
    pub body: ByteStream,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead").field("info", &self.info).finish_non_exhaustive()
    }
}

impl BlobRead {
    /// A full read: the bytes are checked against `info.sha256` (when known)
    /// and `info.size` at the end of the stream; a mismatch ends the stream
    /// with a [`BlobErrorKind::ChecksumMismatch`] error naming `store`.
    pub fn full(store: &str, info: BlobInfo, body: ByteStream) -> BlobRead {
        let check = Verify {
            inner: body,
            hasher: Sha256::new(),
            seen: 0,
            expected_size: info.size,
            expected_sha: info.sha256.clone(),
            what: format!("{store}: {}", info.key),
            done: false,
        };
        BlobRead { info, body: Box::pin(check) }
    }

    /// A ranged read (nothing to check it against).
    pub fn ranged(info: BlobInfo, body: ByteStream) -> BlobRead {
        BlobRead { info, body }
    }

    /// Reads everything into memory (small objects, tests).
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

struct Verify {
    inner: ByteStream,
    hasher: Sha256,
    seen: u64,
    expected_size: u64,
    expected_sha: Option<String>,
    what: String,
    done: bool,
}

impl Stream for Verify {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                self.hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                if self.seen != self.expected_size {
                    return Poll::Ready(Some(Err(BlobError::new(
                        BlobErrorKind::ChecksumMismatch,
                        format!("{}: read {} bytes, the object has {}", self.what, self.seen, self.expected_size),
                    ))));
                }
                if let Some(expected) = self.expected_sha.take() {
                    let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
                    if !got.eq_ignore_ascii_case(&expected) {
                        return Poll::Ready(Some(Err(BlobError::new(
                            BlobErrorKind::ChecksumMismatch,
                            format!("{}: SHA-256 of the bytes read is {got}, the object's is {expected}", self.what),
                        ))));
                    }
                }
                Poll::Ready(None)
            }
        }
    }
}

/// An object store.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// The store for messages: its URI without secrets.
    fn describe(&self) -> String;

    /// The size of the first part of an upload of unknown size (the suite
    /// writes objects just under and over it); stores without parts say how
    /// much they buffer.
    fn part_size(&self) -> usize;

    /// Starts a streaming upload of `key`. Nothing is visible under `key`
    /// until [`BlobWriter::finish`]; an existing object is replaced then.
    async fn put(&self, key: &str, options: PutOptions) -> Result<Box<dyn BlobWriter>>;

    /// Reads `key`, whole (checked, see [`BlobRead::full`]) or a range.
    /// A range past the end yields no bytes.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead>;

    /// The object at `key`, or `None`.
    async fn head(&self, key: &str) -> Result<Option<BlobInfo>>;

    /// Up to `limit` objects whose keys start with `prefix`, after the
    /// cursor `after` (from a previous page's `next`).
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage>;

    /// Deletes `key`; a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
}

/// An upload in progress.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes; uploads a part whenever one is full.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Uploads what is left and publishes the object under its key.
    async fn finish(self: Box<Self>) -> Result<BlobInfo>;

    /// Gives the upload up; nothing is published and the parts are removed
    /// (best effort: a store may keep them until its own cleanup).
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Checks a key: non-empty, at most [`MAX_KEY_LEN`] bytes, no leading or
/// trailing `/`, no empty, `.` or `..` segment, no control characters, and
/// not under the local store's staging directory.
pub fn check_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(BlobError::bad(format!("object key {key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad(&format!("longer than {MAX_KEY_LEN} bytes"));
    }
    if key.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("empty path segment (leading, trailing or double '/')"),
            "." | ".." => return bad("'.' and '..' segments are not allowed"),
            _ => {}
        }
    }
    if key == fs::STAGING_DIR || key.starts_with(&format!("{}/", fs::STAGING_DIR)) {
        return bad(&format!("{} is reserved for uploads in progress", fs::STAGING_DIR));
    }
    Ok(())
}

/// Checks a listing prefix: empty, or a key prefix (a trailing `/` is fine).
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.trim_end_matches('/')).map_err(|e| BlobError::bad(format!("listing prefix: {}", e.message)))
}

/// Part sizes of a multipart upload: `base` bytes (a multiple of `align`)
/// for the first `grow_every` parts, then doubled every `grow_every` parts up
/// to `max`, so that a stream of unknown size never runs out of part numbers
/// (S3 allows 10,000 parts, Azure 50,000 blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizer {
    /// Size of the first parts.
    pub base: usize,
    /// Every part size is a multiple of this (GCS: 256 KiB).
    pub align: usize,
    /// Parts before each doubling.
    pub grow_every: u32,
    /// Largest part.
    pub max: usize,
}

impl PartSizer {
    /// A sizer for a store whose parts must be at least `min`, at most `max`,
    /// multiples of `align`, with at most `max_parts` parts; `size_hint`
    /// (when known) picks a base that needs at most a tenth of the parts.
    pub fn new(min: usize, default: usize, align: usize, max: usize, max_parts: u32, size_hint: Option<u64>) -> Self {
        let align = align.max(1);
        let mut base = default.max(min);
        if let Some(size) = size_hint {
            let wanted = size.div_ceil(u64::from((max_parts / 10).max(1)));
            base = base.max(usize::try_from(wanted).unwrap_or(max));
        }
        let base = base.min(max).div_ceil(align) * align;
        PartSizer { base, align, grow_every: (max_parts / 10).max(1), max }
    }

    /// The size of part number `n` (1-based).
    pub fn size_of(&self, n: u32) -> usize {
        let doublings = (n.saturating_sub(1) / self.grow_every).min(20);
        let size = self.base.saturating_mul(1usize << doublings).min(self.max);
        (size / self.align).max(1) * self.align
    }
}

/// Computes the SHA-256 of a stream as it is written.
#[derive(Clone, Default)]
pub struct Checksum {
    hasher: Sha256,
    size: u64,
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checksum").field("size", &self.size).finish_non_exhaustive()
    }
}

impl Checksum {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.size += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The lowercase hex SHA-256 of everything seen.
    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Writes `data` as the object `key` in one call.
pub async fn put_bytes(store: &dyn BlobStore, key: &str, data: Bytes) -> Result<BlobInfo> {
    let options = PutOptions { size_hint: Some(data.len() as u64), ..PutOptions::default() };
    let mut w = store.put(key, options).await?;
    if !data.is_empty() {
        w.write(data).await?;
    }
    w.finish().await
}

/// Reads the whole object `key` into memory, checked.
pub async fn get_bytes(store: &dyn BlobStore, key: &str) -> Result<Vec<u8>> {
    store.get(key, None).await?.bytes().await
}

/// Every object under `prefix`, page after page (`page` objects per request).
pub fn list_all<'a>(
    store: &'a dyn BlobStore,
    prefix: &'a str,
    page: usize,
) -> impl Stream<Item = Result<BlobInfo>> + 'a {
    futures::stream::try_unfold((None::<String>, false), move |(cursor, finished)| async move {
        if finished {
            return Ok(None);
        }
        let page = store.list(prefix, cursor.as_deref(), page).await?;
        let next_state = match page.next {
            Some(c) => (Some(c), false),
            None => (None, true),
        };
        Ok(Some((futures::stream::iter(page.items.into_iter().map(Ok)), next_state)))
    })
    .try_flatten()
}

use futures::TryStreamExt;

/// The SHA-256 of an object: the stored one, or computed by reading it.
pub async fn sha256_of(store: &dyn BlobStore, info: &BlobInfo) -> Result<String> {
    if let Some(sha) = &info.sha256 {
        return Ok(sha.clone());
    }
    let mut read = store.get(&info.key, None).await?;
    let mut sum = Checksum::default();
    while let Some(chunk) = read.body.next().await {
        sum.update(&chunk?);
    }
    Ok(sum.hex())
}

/// What [`copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The object was written; its checksum.
    Copied(BlobInfo),
    /// The destination already held the same bytes (same size and SHA-256).
    Identical,
}

/// Copies `src_key` of `src` to `dst_key` of `dst` as a stream: skipped
/// when the destination already holds an object of the same size and
/// SHA-256; else written with the source's checksum expected, so a
/// mismatch publishes nothing.
pub async fn copy(src: &dyn BlobStore, src_key: &str, dst: &dyn BlobStore, dst_key: &str) -> Result<CopyOutcome> {
    let Some(info) = src.head(src_key).await? else {
        return Err(BlobError::not_found(format!("{}: {src_key}: no such object", src.describe())));
    };
    copy_object(src, &info, dst, dst_key).await
}

/// [`copy`] of an object a listing already described: no second request
/// for it when the listing carried its checksum (S3 listings do not, so
/// the object is asked for its stored one then, rather than read).
pub async fn copy_object(
    src: &dyn BlobStore,
    listed: &BlobInfo,
    dst: &dyn BlobStore,
    dst_key: &str,
) -> Result<CopyOutcome> {
    let src_key = listed.key.as_str();
    let info = match listed.sha256 {
        Some(_) => listed.clone(),
        None => src
            .head(src_key)
            .await?
            .ok_or_else(|| BlobError::not_found(format!("{}: {src_key}: no such object", src.describe())))?,
    };
    let src_sha = sha256_of(src, &info).await?;
    if let Some(existing) = dst.head(dst_key).await?
        && existing.size == info.size
        && sha256_of(dst, &existing).await? == src_sha
    {
        return Ok(CopyOutcome::Identical);
    }
    let mut read = src.get(src_key, None).await?;
    let options =
        PutOptions { size_hint: Some(info.size), expected_sha256: Some(src_sha.clone()), ..PutOptions::default() };
    let mut w = dst.put(dst_key, options).await?;
    while let Some(chunk) = read.body.next().await {
        match chunk {
            Ok(c) => w.write(c).await?,
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        }
    }
    let written = w.finish().await?;
    if written.sha256.as_deref() != Some(src_sha.as_str()) {
        return Err(BlobError::new(
            BlobErrorKind::ChecksumMismatch,
            format!(
                "copy {} {src_key} to {} {dst_key}: wrote SHA-256 {}, the source's is {src_sha}",
                src.describe(),
                dst.describe(),
                written.sha256.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    Ok(CopyOutcome::Copied(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["a", "a/b/c.tar", "日本/語.tar", "x y", "a.b"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a\nb", ".staging/x", ".staging"] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.kind, BlobErrorKind::BadParameter, "{bad}");
        }
        assert!(check_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn part_sizes_grow_and_align() {
        // S3: min 5 MiB, 10,000 parts, max 5 GiB.
        let s = PartSizer::new(5 << 20, 8 << 20, 1, 5 << 30, 10_000, None);
        assert_eq!(s.size_of(1), 8 << 20);
        assert_eq!(s.size_of(1000), 8 << 20);
        assert_eq!(s.size_of(1001), 16 << 20);
        let total: u64 = (1..=10_000).map(|n| s.size_of(n) as u64).sum();
        assert!(total > 5 << 40, "10,000 parts hold more than 5 TiB: {total}");
        // GCS: multiples of 256 KiB.
        let g = PartSizer::new(256 << 10, 1000 << 10, 256 << 10, 1 << 30, u32::MAX, Some(3 << 30));
        for n in [1, 2, 50_000] {
            assert_eq!(g.size_of(n) % (256 << 10), 0);
        }
        // A size hint raises the base so the object fits in a tenth of the parts.
        let h = PartSizer::new(5 << 20, 8 << 20, 1, 5 << 30, 10_000, Some(100 << 30));
        assert!(h.size_of(1) as u64 * 1000 >= 100 << 30);
    }

    #[test]
    fn ranges() {
        assert_eq!(ByteRange { start: 0, end: Some(10) }.http_header().as_deref(), Some("bytes=0-9"));
        assert_eq!(ByteRange { start: 5, end: None }.http_header().as_deref(), Some("bytes=5-"));
        assert!(ByteRange { start: 5, end: Some(5) }.is_empty());
    }

    #[tokio::test]
    async fn full_reads_are_checked() {
        let info = BlobInfo {
            key: "k".into(),
            size: 3,
            sha256: Some(hex::encode(Sha256::digest(b"abc"))),
            etag: None,
            modified: None,
        };
        let ok = BlobRead::full("mem", info.clone(), Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"abc"))])));
        assert_eq!(ok.bytes().await.unwrap(), b"abc");
        let bad = BlobRead::full("mem", info, Box::pin(futures::stream::iter([Ok(Bytes::from_static(b"abd"))])));
        let e = bad.bytes().await.unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch);
        assert!(e.message.contains("mem: k"), "{e}");
    }
}
