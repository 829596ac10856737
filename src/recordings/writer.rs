//! The streaming recording writer: events are framed and compressed into
//! parts as they come, and each finished part is handed to the object
//! store's streaming upload at once, so a session's recording is uploaded
//! while it runs and only the current part (about [`PART_TARGET`] bytes) is
//! held in memory. [`SessionRecorder::end`] writes `session.end` and
//! completes the upload; until then the recording is not visible.
//!
//! Fields are filled as upstream's session writer does: the index counts
//! every event of the session from 0; a print's time is rounded to the
//! millisecond, its `DelayMilliseconds` counts from the first print, its
//! `Offset` is the output bytes before it and its `ChunkIndex` counts
//! prints; output is cut into prints of at most [`MAX_PRINT_DATA`] bytes.

use bytes::Bytes;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::format::PartEncoder;
use super::proto::{
    ConnectionMetadata, Event, Metadata, OneOf, Resize, ServerMetadata, SessionEnd, SessionMetadata, SessionPrint,
    SessionStart, Timestamp, UserMetadata, codes,
};
use super::{RecordingError, RecordingStore, Result, check_session_id};
use crate::blob::{BlobInfo, BlobWriter, PutOptions};

/// Compressed bytes per part before it is uploaded.
pub const PART_TARGET: usize = 1 << 20;
/// Largest output chunk in one print event (keeps each event well under
/// the 64 KiB record limit).
pub const MAX_PRINT_DATA: usize = 32 * 1024;

/// Who, where and how big: what `session.start` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The cluster.
    pub cluster: String,
    /// The Teleport user.
    pub user: String,
    /// The OS login.
    pub login: String,
    /// The node's UUID.
    pub server_id: String,
    /// The node's hostname.
    pub server_hostname: String,
    /// The node's address.
    pub server_addr: String,
    /// The client's address.
    pub remote_addr: String,
    /// Terminal width and height.
    pub terminal: (u16, u16),
}

/// Writes one session's recording.
pub struct SessionRecorder {
    upload: Option<Box<dyn BlobWriter>>,
    part: PartEncoder,
    sid: String,
    info: SessionInfo,
    what: String,
    index: i64,
    started: Option<DateTime<Utc>>,
    /// (time, delay, offset after it, chunk index) of the last print.
    last_print: Option<(DateTime<Utc>, i64, i64, i64)>,
    parts: u64,
    bytes: u64,
}

impl std::fmt::Debug for SessionRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecorder").field("what", &self.what).field("index", &self.index).finish_non_exhaustive()
    }
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_round(TimeDelta::milliseconds(1)).unwrap_or(t)
}

impl SessionRecorder {
    /// Starts the upload of `sid`'s recording into `store`.
    pub async fn create(store: &RecordingStore, sid: &str, info: SessionInfo) -> Result<SessionRecorder> {
        check_session_id(sid)?;
        let key = store.key_of(sid);
        let options = PutOptions { content_type: Some("application/octet-stream".into()), ..PutOptions::default() };
        let upload = store.blob().put(&key, options).await?;
        Ok(SessionRecorder {
            upload: Some(upload),
            part: PartEncoder::new(),
            sid: sid.to_string(),
            info,
            what: format!("{}: session {sid}", store.describe()),
            index: 0,
            started: None,
            last_print: None,
            parts: 0,
            bytes: 0,
        })
    }

    fn metadata(&mut self, (kind, code): (&str, &str), at: DateTime<Utc>) -> Metadata {
        let index = self.index;
        self.index += 1;
        Metadata {
            index,
            r#type: kind.to_string(),
            id: if code.is_empty() { String::new() } else { uuid::Uuid::new_v4().to_string() },
            code: code.to_string(),
            time: Some(Timestamp::from_datetime(ms(at))),
            cluster_name: self.info.cluster.clone(),
        }
    }

    fn user(&self) -> Option<UserMetadata> {
        Some(UserMetadata { user: self.info.user.clone(), login: self.info.login.clone() })
    }

    fn session(&self) -> Option<SessionMetadata> {
        Some(SessionMetadata { session_id: self.sid.clone() })
    }

    fn server(&self) -> Option<ServerMetadata> {
        Some(ServerMetadata {
            server_namespace: "default".into(),
            server_id: self.info.server_id.clone(),
            server_hostname: self.info.server_hostname.clone(),
            server_addr: self.info.server_addr.clone(),
        })
    }

    fn connection(&self) -> Option<ConnectionMetadata> {
        Some(ConnectionMetadata {
            local_addr: self.info.server_addr.clone(),
            remote_addr: self.info.remote_addr.clone(),
            protocol: "ssh".into(),
        })
    }

    async fn push(&mut self, event: Event) -> Result<()> {
        self.part.push(&OneOf { event: Some(event) })?;
        if self.part.compressed_len() >= PART_TARGET {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<()> {
        if self.part.records() == 0 {
            return Ok(());
        }
        let part = std::mem::take(&mut self.part).finish()?;
        self.parts += 1;
        self.bytes += part.len() as u64;
        let upload = self.upload.as_mut().ok_or_else(|| RecordingError::internal(format!("{}: closed", self.what)))?;
        upload.write(Bytes::from(part)).await?;
        Ok(())
    }

    /// `session.start`, at `at`.
    pub async fn start(&mut self, at: DateTime<Utc>) -> Result<()> {
        self.started = Some(at);
        let (w, h) = self.info.terminal;
        let event = SessionStart {
            metadata: Some(self.metadata(codes::SESSION_START, at)),
            user: self.user(),
            session: self.session(),
            server: self.server(),
            connection: self.connection(),
            terminal_size: format!("{w}:{h}"),
        };
        self.push(Event::SessionStart(event)).await
    }

    /// Terminal output at `at`, cut into prints of at most [`MAX_PRINT_DATA`].
    pub async fn print(&mut self, at: DateTime<Utc>, data: &[u8]) -> Result<()> {
        let at = ms(at);
        for chunk in data.chunks(MAX_PRINT_DATA) {
            let (delay, offset, chunk_index) = match self.last_print {
                None => (0, 0, 0),
                Some((last_at, last_delay, end_offset, last_chunk)) => {
                    (last_delay + (at - last_at).num_milliseconds().max(0), end_offset, last_chunk + 1)
                }
            };
            let len = chunk.len() as i64;
            self.last_print = Some((at, delay, offset + len, chunk_index));
            let event = SessionPrint {
                metadata: Some(self.metadata((codes::PRINT, ""), at)),
                chunk_index,
                data: chunk.to_vec(),
                bytes: len,
                delay_milliseconds: delay,
                offset,
            };
            self.push(Event::SessionPrint(event)).await?;
        }
        Ok(())
    }

    /// The terminal was resized at `at`.
    pub async fn resize(&mut self, at: DateTime<Utc>, width: u16, height: u16) -> Result<()> {
        self.info.terminal = (width, height);
        let event = Resize {
            metadata: Some(self.metadata(codes::RESIZE, at)),
            user: self.user(),
            session: self.session(),
            connection: self.connection(),
            server: self.server(),
            terminal_size: format!("{width}:{height}"),
        };
        self.push(Event::Resize(event)).await
    }

    /// `session.end` at `at`, then completes the upload: the recording
    /// becomes visible. Returns the object written.
    pub async fn end(mut self, at: DateTime<Utc>) -> Result<BlobInfo> {
        let event = SessionEnd {
            metadata: Some(self.metadata(codes::SESSION_END, at)),
            user: self.user(),
            session: self.session(),
            connection: self.connection(),
            server: self.server(),
            enhanced_recording: false,
            interactive: true,
            participants: vec![self.info.user.clone()],
            start_time: self.started.map(Timestamp::from_datetime),
            end_time: Some(Timestamp::from_datetime(at)),
        };
        self.push(Event::SessionEnd(event)).await?;
        self.flush_part().await?;
        let upload = self.upload.take().ok_or_else(|| RecordingError::internal(format!("{}: closed", self.what)))?;
        let info = upload.finish().await?;
        tracing::debug!(recording = %self.what, parts = self.parts, bytes = self.bytes, events = self.index, "recording uploaded");
        Ok(info)
    }

    /// Gives the recording up: nothing is published.
    pub async fn abort(mut self) -> Result<()> {
        match self.upload.take() {
            Some(u) => Ok(u.abort().await?),
            None => Ok(()),
        }
    }

    /// Events written so far.
    pub fn events(&self) -> i64 {
        self.index
    }
}
