//! The local directory store (`file:///path`): an object is a file at
//! `<root>/<key>`. An upload is written to `<root>/.staging/<uuid>.upload`
//! (0600), synced, then renamed into place and its directory synced, so an
//! object is either whole or absent. Its SHA-256 goes in the extended
//! attribute `user.teleport.sha256` where the file system has user xattrs
//! (ext4, xfs, btrfs, tmpfs on Linux 6.6+); elsewhere reads are checked by
//! size only. New directories are 0700, files 0600: recordings and backups
//! hold secrets.
//!
//! Listing walks the directory under the prefix and sorts the keys: cheap
//! for the thousands of objects a recordings directory holds, and bounded
//! by the size of that directory.

use std::io::{ErrorKind as IoKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::io::AsyncSeekExt;

use super::{
    BlobError, BlobErrorKind, BlobInfo, BlobRead, BlobStore, BlobWriter, ByteRange, Checksum, ListPage, PutOptions,
    Result, check_expected, check_key, check_prefix,
};

/// The directory uploads in progress are written to, under the root.
pub const STAGING_DIR: &str = ".staging";

/// Staged uploads older than this are a crashed writer's leftovers and are
/// removed when the store is opened.
pub const STALE_UPLOAD_AGE: Duration = Duration::from_secs(24 * 3600);

/// The extended attribute holding an object's SHA-256.
const SHA_XATTR: &str = "user.teleport.sha256";

/// Bytes per chunk of a read.
const READ_CHUNK: usize = 1 << 20;

/// A directory of objects.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> BlobError {
    let kind = match e.kind() {
        IoKind::NotFound => BlobErrorKind::NotFound,
        IoKind::PermissionDenied => BlobErrorKind::AccessDenied,
        _ => BlobErrorKind::Internal,
    };
    BlobError::new(kind, format!("{what}: {e}"))
}

#[cfg(unix)]
fn create_dirs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

#[cfg(not(unix))]
fn create_dirs(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

fn modified(meta: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

#[cfg(target_os = "linux")]
mod xattr {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    /// Sets `name` on an open file; false where the file system has no user
    /// extended attributes.
    pub fn set(file: &std::fs::File, name: &str, value: &[u8]) -> bool {
        let Ok(name) = CString::new(name) else { return false };
        // SAFETY: the fd is open for the duration of the call, the name is
        // NUL-terminated and the value pointer/length describe a live slice.
        let rc = unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        rc == 0
    }

    /// Reads `name` of a path (up to 128 bytes), or None.
    pub fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let p = CString::new(path.as_os_str().as_bytes()).ok()?;
        let name = CString::new(name).ok()?;
        let mut buf = [0u8; 128];
        // SAFETY: both strings are NUL-terminated and the buffer pointer and
        // length describe a live, writable array.
        let n = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return None;
        }
        Some(buf[..usize::try_from(n).ok()?].to_vec())
    }
}

#[cfg(not(target_os = "linux"))]
mod xattr {
    use std::path::Path;

    pub fn set(_file: &std::fs::File, _name: &str, _value: &[u8]) -> bool {
        false
    }

    pub fn get(_path: &Path, _name: &str) -> Option<Vec<u8>> {
        None
    }
}

fn stored_sha(path: &Path) -> Option<String> {
    let v = xattr::get(path, SHA_XATTR)?;
    let s = String::from_utf8(v).ok()?;
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

impl FsStore {
    /// Opens (creating it, 0700, when missing) the directory `root`, and
    /// removes staged uploads older than [`STALE_UPLOAD_AGE`].
    pub fn open(root: &Path) -> Result<FsStore> {
        if root.as_os_str().is_empty() || !root.is_absolute() {
            return Err(BlobError::bad(format!(
                "file store {}: needs an absolute directory, as in file:///var/lib/teleport/log/records",
                root.display()
            )));
        }
        if root.exists() && !root.is_dir() {
            return Err(BlobError::bad(format!("file store {}: exists and is not a directory", root.display())));
        }
        create_dirs(root).map_err(|e| io_err(format!("file store {}: create", root.display()), e))?;
        let store = FsStore { root: root.to_path_buf() };
        store.remove_stale_uploads();
        Ok(store)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn remove_stale_uploads(&self) {
        let Ok(dir) = std::fs::read_dir(self.root.join(STAGING_DIR)) else { return };
        let now = SystemTime::now();
        for entry in dir.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_UPLOAD_AGE));
            if old {
                tracing::info!(path = %entry.path().display(), "removing an upload left by a crashed writer");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn info_of(&self, key: &str, path: &Path, meta: &std::fs::Metadata) -> BlobInfo {
        BlobInfo {
            key: key.to_string(),
            size: meta.len(),
            sha256: stored_sha(path),
            etag: None,
            modified: modified(meta),
        }
    }

    fn what(&self, key: &str) -> String {
        format!("{}: {key}", self.describe())
    }

    /// Up to `limit` objects under `prefix` after `after` (blocking).
    fn page_under(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let mut items = Vec::new();
        let mut next = None;
        for key in self.keys_under(prefix)?.into_iter().filter(|k| after.is_none_or(|a| k.as_str() > a)) {
            if items.len() == limit {
                next = items.last().map(|i: &BlobInfo| i.key.clone());
                break;
            }
            let path = self.path_of(&key);
            // A file deleted between the walk and now is simply not listed.
            if let Ok(meta) = std::fs::metadata(&path) {
                items.push(self.info_of(&key, &path, &meta));
            }
        }
        Ok(ListPage { items, next })
    }

    /// Every key under `prefix`, sorted (blocking).
    fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        // Walk only the directory the prefix names; filter its last segment.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = if dir_part.is_empty() { self.root.clone() } else { self.root.join(dir_part) };
        let mut keys = Vec::new();
        let mut stack = vec![(start, dir_part.to_string())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == IoKind::NotFound || e.kind() == IoKind::NotADirectory => continue,
                Err(e) => return Err(io_err(format!("{}: list {}", self.describe(), dir.display()), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(format!("{}: list {}", self.describe(), dir.display()), e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                    continue;
                };
                let key = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                if rel.is_empty() && name == STAGING_DIR {
                    continue;
                }
                let ft = entry.file_type().map_err(|e| io_err(self.what(&key), e))?;
                if ft.is_dir() {
                    // Descend only where keys under it can match the prefix.
                    if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                        stack.push((entry.path(), key));
                    }
                } else if ft.is_file() && key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

#[async_trait]
impl BlobStore for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn part_size(&self) -> usize {
        READ_CHUNK
    }

    async fn put(&self, key: &str, options: PutOptions) -> Result<Box<dyn BlobWriter>> {
        check_key(key)?;
        let staging = self.root.join(STAGING_DIR);
        create_dirs(&staging).map_err(|e| io_err(format!("{}: create {}", self.describe(), staging.display()), e))?;
        let temp = staging.join(format!("{}.upload", uuid::Uuid::new_v4()));
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open.open(&temp).map_err(|e| io_err(format!("{}: create {}", self.what(key), temp.display()), e))?;
        Ok(Box::new(FsWriter::start(self.clone(), key.to_string(), temp, file, options)))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead> {
        check_key(key)?;
        let path = self.path_of(key);
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| io_err(self.what(key), e))?;
        let meta = file.metadata().await.map_err(|e| io_err(self.what(key), e))?;
        if !meta.is_file() {
            return Err(BlobError::not_found(format!("{}: not an object (a directory)", self.what(key))));
        }
        let info = self.info_of(key, &path, &meta);
        let size = meta.len();
        let (start, end) = match range {
            None => (0, size),
            Some(r) => (r.start.min(size), r.end.map_or(size, |e| e.min(size)).max(r.start.min(size))),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await.map_err(|e| io_err(self.what(key), e))?;
        }
        let what = self.what(key);
        let body =
            tokio_util::io::ReaderStream::with_capacity(tokio::io::AsyncReadExt::take(file, end - start), READ_CHUNK)
                .map(move |r| r.map_err(|e| io_err(&what, e)));
        Ok(match range {
            None => BlobRead::full(&self.describe(), info, Box::pin(body)),
            Some(_) => BlobRead::ranged(info, Box::pin(body)),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        check_key(key)?;
        let path = self.path_of(key);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(self.info_of(key, &path, &meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == IoKind::NotFound || e.kind() == IoKind::NotADirectory => Ok(None),
            Err(e) => Err(io_err(self.what(key), e)),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        check_prefix(prefix)?;
        let store = self.clone();
        let prefix = prefix.to_string();
        let after = after.map(str::to_string);
        // The walk and each listed file's metadata and checksum attribute are
        // file system calls: all of them off the async threads.
        tokio::task::spawn_blocking(move || store.page_under(&prefix, after.as_deref(), limit.max(1)))
            .await
            .map_err(|e| BlobError::internal(format!("{}: list: {e}", self.describe())))?
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(self.what(key), e)),
        }
        // Remove directories the key leaves empty (deep prefixes), up to the root.
        let mut dir = self.path_of(key);
        while dir.pop() && dir != self.root && dir.starts_with(&self.root) {
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Chunks queued to the writing thread (bounds an upload's memory to this
/// many caller writes).
const WRITE_QUEUE: usize = 4;

/// An upload: the caller's task hashes each chunk and hands it through a
/// bounded queue to a dedicated blocking thread that writes it, so hashing
/// and disk writes run side by side and file I/O never blocks the async
/// threads.
struct FsWriter {
    store: FsStore,
    key: String,
    temp: Option<PathBuf>,
    queue: Option<tokio::sync::mpsc::Sender<Bytes>>,
    thread: Option<tokio::task::JoinHandle<Result<std::fs::File>>>,
    sum: Checksum,
    options: PutOptions,
}

impl FsWriter {
    fn start(store: FsStore, key: String, temp: PathBuf, file: std::fs::File, options: PutOptions) -> FsWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        let what = store.what(&key);
        let thread = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = file;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk).map_err(|e| io_err(&what, e))?;
            }
            Ok(file)
        });
        FsWriter {
            store,
            key,
            temp: Some(temp),
            queue: Some(tx),
            thread: Some(thread),
            sum: Checksum::default(),
            options,
        }
    }

    /// Closes the queue and waits for the thread: the file with everything
    /// written, or the thread's error.
    async fn drain(&mut self) -> Result<std::fs::File> {
        let what = self.store.what(&self.key);
        self.queue = None;
        let thread =
            self.thread.take().ok_or_else(|| BlobError::internal(format!("{what}: upload already finished")))?;
        thread.await.map_err(|e| BlobError::internal(format!("{what}: writer thread: {e}")))?
    }
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let what = self.store.what(&self.key);
        let queue =
            self.queue.as_ref().ok_or_else(|| BlobError::internal(format!("{what}: upload already finished")))?;
        self.sum.update(&data);
        if queue.send(data).await.is_err() {
            // The thread stopped: it failed; its error says why.
            return match self.drain().await {
                Err(e) => Err(e),
                Ok(_) => Err(BlobError::internal(format!("{what}: writer thread stopped"))),
            };
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BlobInfo> {
        let what = self.store.what(&self.key);
        let file = self.drain().await?;
        // A mismatch drops the writer, which removes the staged file.
        check_expected(&self.store.describe(), &self.key, &self.options, &self.sum)?;
        let sha = self.sum.hex();
        let temp = self.temp.clone().ok_or_else(|| BlobError::internal(format!("{what}: no staged file")))?;
        let target = self.store.path_of(&self.key);
        let what2 = what.clone();
        let sha2 = sha.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            xattr::set(&file, SHA_XATTR, sha2.as_bytes());
            file.sync_all().map_err(|e| io_err(&what2, e))?;
            drop(file);
            let parent = target.parent().map(Path::to_path_buf).unwrap_or_default();
            create_dirs(&parent).map_err(|e| io_err(format!("{what2}: create {}", parent.display()), e))?;
            std::fs::rename(&temp, &target).map_err(|e| io_err(format!("{what2}: publish {}", target.display()), e))?;
            if let Ok(dir) = std::fs::File::open(&parent) {
                let _ = dir.sync_all();
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::internal(format!("{what}: {e}")))??;
        self.temp = None;
        let path = self.store.path_of(&self.key);
        let meta = std::fs::metadata(&path).map_err(|e| io_err(&what, e))?;
        let mut info = self.store.info_of(&self.key, &path, &meta);
        info.sha256 = Some(sha);
        Ok(info)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // The thread's outcome does not matter: the file goes.
        let _ = self.drain().await;
        if let Some(temp) = self.temp.take() {
            match tokio::fs::remove_file(&temp).await {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(io_err(self.store.what(&self.key), e)),
            }
        }
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}
