//! SESSION RECORDINGS: upstream's recording format ([`format`], the
//! messages in [`proto`]), a streaming writer that uploads while the session
//! runs ([`writer`]), playback ([`play`]), copying between stores
//! ([`transfer`]), and the recording store: the object store
//! `teleport.storage.audit_sessions_uri` names (default
//! `<data_dir>/log/records`), with upstream's names: `<prefix>/<sid>.tar`
//! on files, S3 and GCS, `<sid>` in the session container on Azure.

pub mod format;
pub mod play;
pub mod proto;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
pub mod transfer;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::blob::{self, BlobError, BlobErrorKind, BlobInfo, BlobStore, BlobUri};
pub use format::{ReadStats, RecordingReader};
pub use writer::{SessionInfo, SessionRecorder};

/// What went wrong, in terms callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingErrorKind {
    /// No such recording.
    NotFound,
    /// A malformed session id, URI or option.
    BadParameter,
    /// The bytes are not a readable recording.
    Corrupt,
    /// The store could not be reached; retrying may help.
    ConnectionProblem,
    /// Anything else (store errors, checksum mismatches).
    Internal,
}

/// A recording error: a kind and a message naming the store and session.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RecordingError {
    /// The kind.
    pub kind: RecordingErrorKind,
    /// What failed, where.
    pub message: String,
}

impl RecordingError {
    /// An error of `kind`.
    pub fn new(kind: RecordingErrorKind, message: impl Into<String>) -> RecordingError {
        RecordingError { kind, message: message.into() }
    }

    /// A bad parameter.
    pub fn bad(message: impl Into<String>) -> RecordingError {
        RecordingError::new(RecordingErrorKind::BadParameter, message)
    }

    /// Unreadable bytes.
    pub fn corrupt(message: impl Into<String>) -> RecordingError {
        RecordingError::new(RecordingErrorKind::Corrupt, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> RecordingError {
        RecordingError::new(RecordingErrorKind::Internal, message)
    }
}

impl From<BlobError> for RecordingError {
    fn from(e: BlobError) -> RecordingError {
        let kind = match e.kind {
            BlobErrorKind::NotFound => RecordingErrorKind::NotFound,
            BlobErrorKind::BadParameter => RecordingErrorKind::BadParameter,
            BlobErrorKind::ConnectionProblem => RecordingErrorKind::ConnectionProblem,
            _ => RecordingErrorKind::Internal,
        };
        RecordingError { kind, message: e.message }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, RecordingError>;

/// Checks a session id: 1 to 128 ASCII letters, digits, `-` or `_`
/// (upstream's are UUIDs).
pub fn check_session_id(sid: &str) -> Result<()> {
    if sid.is_empty() || sid.len() > 128 || !sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(RecordingError::bad(format!(
            "session id {sid:?}: expected 1 to 128 letters, digits, '-' or '_' (a UUID)"
        )));
    }
    Ok(())
}

/// How a store names recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `<sid>.tar` (files, S3, GCS).
    Tar,
    /// `<sid>` (Azure's session container).
    Bare,
}

/// One recording in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The session id.
    pub sid: String,
    /// The object.
    pub object: BlobInfo,
}

impl RecordingInfo {
    /// When the upload completed, when the store knows.
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        self.object.modified
    }
}

/// The default recordings directory: `<data_dir>/log/records`.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log").join("records")
}

/// A recording store: an object store and its naming.
#[derive(Debug, Clone)]
pub struct RecordingStore {
    blob: Arc<dyn BlobStore>,
    layout: Layout,
}

impl RecordingStore {
    /// Opens the store `uri` names (`None`: `<data_dir>/log/records`);
    /// `what` names the setting in errors.
    pub async fn open(uri: Option<&str>, data_dir: &Path, what: &str) -> Result<RecordingStore> {
        let uri = match uri {
            Some(u) => u.to_string(),
            None => default_dir(data_dir).display().to_string(),
        };
        let parsed = BlobUri::parse(&uri, what)?;
        let layout = if parsed.scheme.starts_with("azblob") { Layout::Bare } else { Layout::Tar };
        Ok(RecordingStore { blob: blob::registry::open_uri(&parsed, what).await?, layout })
    }

    /// A store over an open object store.
    pub fn new(blob: Arc<dyn BlobStore>, layout: Layout) -> RecordingStore {
        RecordingStore { blob, layout }
    }

    /// The object store.
    pub fn blob(&self) -> &Arc<dyn BlobStore> {
        &self.blob
    }

    /// The naming.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The store for messages.
    pub fn describe(&self) -> String {
        self.blob.describe()
    }

    /// The object key of a session's recording.
    pub fn key_of(&self, sid: &str) -> String {
        match self.layout {
            Layout::Tar => format!("{sid}.tar"),
            Layout::Bare => sid.to_string(),
        }
    }

    /// The session id an object key names, if it is a recording (a
    /// top-level object named as this layout names them).
    pub fn sid_of(&self, key: &str) -> Option<String> {
        let sid = match self.layout {
            Layout::Tar => key.strip_suffix(".tar")?,
            Layout::Bare => key,
        };
        check_session_id(sid).ok().map(|()| sid.to_string())
    }

    /// Every recording, in session id order, page by page.
    pub fn list(&self) -> impl Stream<Item = Result<RecordingInfo>> + '_ {
        blob::list_all(self.blob.as_ref(), "", 1000).map_err(RecordingError::from).try_filter_map(move |object| {
            let found = self.sid_of(&object.key).map(|sid| RecordingInfo { sid, object });
            futures::future::ready(Ok(found))
        })
    }

    /// The recording of `sid`, or a NotFound error naming the store.
    pub async fn head(&self, sid: &str) -> Result<RecordingInfo> {
        check_session_id(sid)?;
        match self.blob.head(&self.key_of(sid)).await? {
            Some(object) => Ok(RecordingInfo { sid: sid.to_string(), object }),
            None => Err(RecordingError::new(
                RecordingErrorKind::NotFound,
                format!("{}: no recording of session {sid}", self.describe()),
            )),
        }
    }

    /// The recording's bytes, checked against its stored checksum.
    pub async fn open_bytes(&self, sid: &str) -> Result<blob::BlobRead> {
        check_session_id(sid)?;
        self.blob.get(&self.key_of(sid), None).await.map_err(|e| {
            if e.is_not_found() {
                RecordingError::new(
                    RecordingErrorKind::NotFound,
                    format!("{}: no recording of session {sid}", self.describe()),
                )
            } else {
                e.into()
            }
        })
    }

    /// A reader of the recording's events.
    pub async fn open_events(&self, sid: &str) -> Result<RecordingReader<impl tokio::io::AsyncRead + Unpin + use<>>> {
        let read = self.open_bytes(sid).await?;
        let body = read.body.map_err(|e| std::io::Error::other(e.message));
        let what = format!("{}: session {sid}", self.describe());
        Ok(RecordingReader::new(tokio_util::io::StreamReader::new(body), what))
    }

    /// Writes the recording of `sid` to the file `to` (0600; via a
    /// temporary file renamed into place, so a failed download leaves
    /// nothing); returns the bytes written.
    pub async fn download(&self, sid: &str, to: &Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut read = self.open_bytes(sid).await?;
        let dir = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(|e| RecordingError::internal(format!("{}: create a file: {e}", dir.display())))?;
        let (file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut n = 0u64;
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| RecordingError::internal(format!("{}: {e}", to.display())))?;
        }
        file.sync_all().await.map_err(|e| RecordingError::internal(format!("{}: {e}", to.display())))?;
        temp_path.persist(to).map_err(|e| RecordingError::internal(format!("{}: {e}", to.display())))?;
        Ok(n)
    }
}
