//! The protobuf messages of a recording, as upstream's `events.proto`
//! (`package events`) defines them: the `OneOf` envelope and the session
//! events playback needs. Only the fields we read or write are declared;
//! protobuf skips the others when decoding, and recordings are copied
//! between stores as bytes, never re-encoded, so nothing is lost.
//!
//! Field numbers are upstream's (note that `SessionEnd` and `Resize` put
//! Connection at 4 and Server at 5, the reverse of `SessionStart`).

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `events.Metadata`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Metadata {
    /// Strictly increasing within a session (readers drop repeats).
    #[prost(int64, tag = "1")]
    pub index: i64,
    /// The event type (`print`, `session.start`, ...).
    #[prost(string, tag = "2")]
    pub r#type: String,
    /// A unique id (empty for prints).
    #[prost(string, tag = "3")]
    pub id: String,
    /// The event code (empty for prints).
    #[prost(string, tag = "4")]
    pub code: String,
    /// When it happened (millisecond precision).
    #[prost(message, optional, tag = "5")]
    pub time: Option<Timestamp>,
    /// The cluster.
    #[prost(string, tag = "6")]
    pub cluster_name: String,
}

/// `events.SessionMetadata`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionMetadata {
    /// The session id.
    #[prost(string, tag = "1")]
    pub session_id: String,
}

/// `events.UserMetadata` (the fields we use).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct UserMetadata {
    /// The Teleport user.
    #[prost(string, tag = "1")]
    pub user: String,
    /// The OS login.
    #[prost(string, tag = "2")]
    pub login: String,
}

/// `events.ServerMetadata` (the fields we use).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ServerMetadata {
    /// Namespace (`default`).
    #[prost(string, tag = "1")]
    pub server_namespace: String,
    /// The node's UUID.
    #[prost(string, tag = "2")]
    pub server_id: String,
    /// The node's hostname.
    #[prost(string, tag = "3")]
    pub server_hostname: String,
    /// The node's address.
    #[prost(string, tag = "4")]
    pub server_addr: String,
}

/// `events.ConnectionMetadata`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ConnectionMetadata {
    /// Address on the host.
    #[prost(string, tag = "1")]
    pub local_addr: String,
    /// The client's address.
    #[prost(string, tag = "2")]
    pub remote_addr: String,
    /// `ssh`, `kube`, ...
    #[prost(string, tag = "3")]
    pub protocol: String,
}

/// `events.SessionStart`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionStart {
    /// Common metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// Who.
    #[prost(message, optional, tag = "2")]
    pub user: Option<UserMetadata>,
    /// Which session.
    #[prost(message, optional, tag = "3")]
    pub session: Option<SessionMetadata>,
    /// Where.
    #[prost(message, optional, tag = "4")]
    pub server: Option<ServerMetadata>,
    /// From where.
    #[prost(message, optional, tag = "5")]
    pub connection: Option<ConnectionMetadata>,
    /// `W:H`.
    #[prost(string, tag = "6")]
    pub terminal_size: String,
}

/// `events.SessionPrint`: terminal output.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionPrint {
    /// Common metadata (type `print`, no code, no id).
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// 0 for the first print, +1 for each next.
    #[prost(int64, tag = "2")]
    pub chunk_index: i64,
    /// The output bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    /// `data.len()`.
    #[prost(int64, tag = "4")]
    pub bytes: i64,
    /// Milliseconds since the first print.
    #[prost(int64, tag = "5")]
    pub delay_milliseconds: i64,
    /// Output bytes before this chunk.
    #[prost(int64, tag = "6")]
    pub offset: i64,
}

/// `events.SessionEnd`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionEnd {
    /// Common metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// Who.
    #[prost(message, optional, tag = "2")]
    pub user: Option<UserMetadata>,
    /// Which session.
    #[prost(message, optional, tag = "3")]
    pub session: Option<SessionMetadata>,
    /// From where (4 here, unlike SessionStart).
    #[prost(message, optional, tag = "4")]
    pub connection: Option<ConnectionMetadata>,
    /// Where (5 here).
    #[prost(message, optional, tag = "5")]
    pub server: Option<ServerMetadata>,
    /// Whether enhanced recording was on.
    #[prost(bool, tag = "6")]
    pub enhanced_recording: bool,
    /// Whether the session had a terminal.
    #[prost(bool, tag = "7")]
    pub interactive: bool,
    /// Users who took part.
    #[prost(string, repeated, tag = "8")]
    pub participants: Vec<String>,
    /// When it started.
    #[prost(message, optional, tag = "9")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[prost(message, optional, tag = "10")]
    pub end_time: Option<Timestamp>,
}

/// `events.Resize`: the terminal changed size.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Resize {
    /// Common metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// Who.
    #[prost(message, optional, tag = "2")]
    pub user: Option<UserMetadata>,
    /// Which session.
    #[prost(message, optional, tag = "3")]
    pub session: Option<SessionMetadata>,
    /// From where (4, as SessionEnd).
    #[prost(message, optional, tag = "4")]
    pub connection: Option<ConnectionMetadata>,
    /// Where (5).
    #[prost(message, optional, tag = "5")]
    pub server: Option<ServerMetadata>,
    /// `W:H`.
    #[prost(string, tag = "6")]
    pub terminal_size: String,
}

/// `events.SessionJoin` / `events.SessionLeave` (same first five fields).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SessionJoinLeave {
    /// Common metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// Who.
    #[prost(message, optional, tag = "2")]
    pub user: Option<UserMetadata>,
    /// Which session.
    #[prost(message, optional, tag = "3")]
    pub session: Option<SessionMetadata>,
}

/// `events.OneOf`: one record of a recording.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct OneOf {
    /// The event; `None` for event types playback does not use (they are
    /// skipped, counted by the reader).
    #[prost(oneof = "Event", tags = "5, 6, 7, 9, 10, 15")]
    pub event: Option<Event>,
}

/// The events of a recording playback uses, at upstream's `OneOf` numbers.
#[derive(Clone, PartialEq, ::prost::Oneof)]
pub enum Event {
    /// `session.start` (T2000I).
    #[prost(message, tag = "5")]
    SessionStart(SessionStart),
    /// `session.join` (T2001I).
    #[prost(message, tag = "6")]
    SessionJoin(SessionJoinLeave),
    /// `print`.
    #[prost(message, tag = "7")]
    SessionPrint(SessionPrint),
    /// `resize` (T2002I).
    #[prost(message, tag = "9")]
    Resize(Resize),
    /// `session.end` (T2004I).
    #[prost(message, tag = "10")]
    SessionEnd(SessionEnd),
    /// `session.leave` (T2003I).
    #[prost(message, tag = "15")]
    SessionLeave(SessionJoinLeave),
}

impl Event {
    /// The event's common metadata.
    pub fn metadata(&self) -> Option<&Metadata> {
        match self {
            Event::SessionStart(e) => e.metadata.as_ref(),
            Event::SessionJoin(e) | Event::SessionLeave(e) => e.metadata.as_ref(),
            Event::SessionPrint(e) => e.metadata.as_ref(),
            Event::Resize(e) => e.metadata.as_ref(),
            Event::SessionEnd(e) => e.metadata.as_ref(),
        }
    }
}

/// Event types and codes, as upstream.
pub mod codes {
    /// `session.start`.
    pub const SESSION_START: (&str, &str) = ("session.start", "T2000I");
    /// `session.join`.
    pub const SESSION_JOIN: (&str, &str) = ("session.join", "T2001I");
    /// `resize`.
    pub const RESIZE: (&str, &str) = ("resize", "T2002I");
    /// `session.leave`.
    pub const SESSION_LEAVE: (&str, &str) = ("session.leave", "T2003I");
    /// `session.end`.
    pub const SESSION_END: (&str, &str) = ("session.end", "T2004I");
    /// `print` (no code).
    pub const PRINT: &str = "print";
}

impl Timestamp {
    /// From a UTC time.
    pub fn from_datetime(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
        Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
    }

    /// As a UTC time (None when out of range).
    pub fn to_datetime(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(self.seconds, u32::try_from(self.nanos).ok()?)
    }
}
