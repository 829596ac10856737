//! AUDIT EVENTS: the event model, the [`AuditLog`] trait every store
//! implements (emit one event; search a time range page by page; read one
//! session's events), the `audit_events_uri` form ([`EventsUri`]) and
//! trimming of oversized events.
//!
//! Stores live in their own files (`file.rs`, `stdout.rs`, `multi.rs`,
//! `dynamodb/`, `firestore/`) behind their cargo features, are opened by
//! `registry`, and pass the compliance suite in `suite`. This room may use
//! `config` (and `aws`, for the DynamoDB store); it never uses `backend`,
//! `resources`, `cluster` or the CLI.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod export;
pub mod file;
#[cfg(feature = "firestore")]
pub mod firestore;
pub mod multi;
pub mod registry;
pub mod stdout;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Events larger than this are trimmed by the file log (upstream: the
/// scanner buffer, 64 KiB).
pub const FILE_MAX_EVENT_SIZE: usize = 64 * 1024;

/// The field marking an event whose large fields were cut to fit a store.
pub const TRIMMED_FIELD: &str = "trimmed";

/// What went wrong, in terms callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsErrorKind {
    /// Malformed URI, event or search.
    BadParameter,
    /// The store could not be reached; retrying may help.
    ConnectionProblem,
    /// Something is missing (a table, a session).
    NotFound,
    /// Anything else.
    Internal,
}

/// An audit store error: a kind and a message naming the store.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EventsError {
    /// The kind.
    pub kind: EventsErrorKind,
    /// What failed, where.
    pub message: String,
}

impl EventsError {
    /// An error of `kind`.
    pub fn new(kind: EventsErrorKind, message: impl Into<String>) -> EventsError {
        EventsError { kind, message: message.into() }
    }

    /// A bad parameter.
    pub fn bad(message: impl Into<String>) -> EventsError {
        EventsError::new(EventsErrorKind::BadParameter, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> EventsError {
        EventsError::new(EventsErrorKind::Internal, message)
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, EventsError>;

/// One audit event: a JSON object with upstream's common fields (`event`,
/// `uid`, `code`, `time`, `ei`, `cluster_name`, `user`, `login`, `sid`,
/// `server_id`, `addr.remote`, ...) and any others, kept as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event(pub Map<String, Value>);

/// `time` as upstream writes it: RFC 3339 UTC with the sub-seconds.
pub fn format_time(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}

impl Event {
    /// A new event of `event_type` with `code`, a fresh `uid`, `time` now and
    /// `ei` 0.
    pub fn new(event_type: &str, code: &str) -> Event {
        Event::at(event_type, code, SystemTime::now())
    }

    /// The same at time `t`.
    pub fn at(event_type: &str, code: &str, t: SystemTime) -> Event {
        let mut m = Map::new();
        m.insert("event".into(), Value::String(event_type.into()));
        m.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        m.insert("code".into(), Value::String(code.into()));
        m.insert("time".into(), Value::String(format_time(t)));
        m.insert("ei".into(), Value::from(0));
        Event(m)
    }

    /// Sets a field.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Event {
        self.0.insert(field.to_string(), value.into());
        self
    }

    /// A string field.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    /// `event`: the type (`user.login`, `session.start`, ...).
    pub fn event_type(&self) -> &str {
        self.str("event").unwrap_or_default()
    }

    /// `uid`, the unique id.
    pub fn uid(&self) -> &str {
        self.str("uid").unwrap_or_default()
    }

    /// `sid`, the session id, if the event belongs to a session.
    pub fn sid(&self) -> Option<&str> {
        self.str("sid").filter(|s| !s.is_empty())
    }

    /// `ei`, the index within a session (0 when absent).
    pub fn index(&self) -> i64 {
        self.0.get("ei").and_then(Value::as_i64).unwrap_or(0)
    }

    /// `time`, parsed.
    pub fn time(&self) -> Option<SystemTime> {
        self.str("time").and_then(parse_time)
    }

    /// Checks what every store needs: a type, a uid and a parseable time.
    pub fn check(&self) -> Result<()> {
        if self.event_type().is_empty() {
            return Err(EventsError::bad("event has no `event` (type) field"));
        }
        if self.uid().is_empty() {
            return Err(EventsError::bad(format!("{} event has no `uid`", self.event_type())));
        }
        if self.time().is_none() {
            return Err(EventsError::bad(format!(
                "event {} has no RFC 3339 `time` (got {:?})",
                self.uid(),
                self.0.get("time")
            )));
        }
        Ok(())
    }

    /// The event as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_string())
    }

    /// Size of its JSON form in bytes.
    pub fn size(&self) -> usize {
        self.to_json().len()
    }

    /// The event cut to at most `max` bytes of JSON: the largest string
    /// fields (never `event`, `uid`, `code`, `time`, `sid`) are shortened
    /// until it fits, and `trimmed: true` is set. Never fails: an event
    /// that cannot fit keeps only its identifying fields.
    pub fn trimmed(&self, max: usize) -> Event {
        if self.size() <= max {
            return self.clone();
        }
        const KEEP: [&str; 6] = ["event", "uid", "code", "time", "sid", "ei"];
        let mut e = self.clone();
        e.0.insert(TRIMMED_FIELD.into(), Value::Bool(true));
        for _ in 0..64 {
            let over = e.size().saturating_sub(max);
            if over == 0 {
                return e;
            }
            let largest =
                e.0.iter()
                    .filter(|(k, _)| !KEEP.contains(&k.as_str()) && k.as_str() != TRIMMED_FIELD)
                    .map(|(k, v)| (k.clone(), serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)))
                    .max_by_key(|(_, n)| *n);
            let Some((field, len)) = largest else { break };
            match e.0.get(&field) {
                Some(Value::String(s)) if len > over + 16 => {
                    let mut keep = s.len().saturating_sub(over + 16);
                    while keep > 0 && !s.is_char_boundary(keep) {
                        keep -= 1;
                    }
                    let cut = s[..keep].to_string();
                    e.0.insert(field, Value::String(cut));
                }
                _ => {
                    e.0.remove(&field);
                }
            }
        }
        if e.size() > max {
            let mut min = Map::new();
            for k in KEEP {
                if let Some(v) = self.0.get(k) {
                    min.insert(k.to_string(), v.clone());
                }
            }
            min.insert(TRIMMED_FIELD.into(), Value::Bool(true));
            return Event(min);
        }
        e
    }
}

/// Order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Order {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// A search: events with `from <= time < to`, of `event_types` (all when
/// empty), in `order`, at most `limit` per page, continuing after `cursor`.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// Start, inclusive.
    pub from: SystemTime,
    /// End, exclusive.
    pub to: SystemTime,
    /// Event types to keep; all when empty.
    pub event_types: Vec<String>,
    /// Order.
    pub order: Order,
    /// Page size (> 0).
    pub limit: usize,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl SearchParams {
    /// All events in `[from, to)`, ascending, pages of 1000.
    pub fn range(from: SystemTime, to: SystemTime) -> SearchParams {
        SearchParams { from, to, event_types: Vec::new(), order: Order::Ascending, limit: 1000, cursor: None }
    }
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// The events, in the asked order (by `time`, then `ei`, then `uid`).
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next page; `None` when this was the last.
    pub next: Option<String>,
}

/// An audit event store.
#[async_trait]
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// The scheme (`file`, `stdout`, `dynamodb`, `firestore`, `multi`).
    fn name(&self) -> &'static str;

    /// Where the events go, for messages (never with credentials).
    fn describe(&self) -> String;

    /// The largest event the store takes; larger ones are trimmed.
    fn max_event_size(&self) -> usize;

    /// Writes one event (trimmed to [`AuditLog::max_event_size`] if needed).
    /// Writing an event whose `uid` is already stored does not store it
    /// twice (imports are idempotent).
    async fn emit(&self, event: Event) -> Result<()>;

    /// One page of a search.
    async fn search(&self, params: &SearchParams) -> Result<SearchPage>;

    /// Every event of session `sid`, by `ei`.
    async fn session_events(&self, sid: &str) -> Result<Vec<Event>>;

    /// Releases resources.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// A parsed `audit_events_uri`: `scheme://host/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsUri {
    /// The URI as given.
    pub raw: String,
    /// `file`, `stdout`, `dynamodb`, `firestore`, ...
    pub scheme: String,
    /// The host part (the table or collection for cloud stores).
    pub host: String,
    /// The path (the directory for `file://`).
    pub path: String,
    /// Query parameters (percent-decoded).
    pub query: BTreeMap<String, String>,
}

fn percent_decode(s: &str) -> String {
    crate::config::uri::percent_decode(s, true)
}

impl EventsUri {
    /// Parses `scheme://host/path?k=v&...`; a bare path is `file://<path>`.
    pub fn parse(s: &str) -> Result<EventsUri> {
        let raw = s.trim().to_string();
        if raw.is_empty() {
            return Err(EventsError::bad("audit_events_uri is empty"));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            if raw.starts_with('/') {
                return Ok(EventsUri {
                    raw: raw.clone(),
                    scheme: "file".into(),
                    host: String::new(),
                    path: raw.clone(),
                    query: BTreeMap::new(),
                });
            }
            return Err(EventsError::bad(format!(
                "audit_events_uri {raw:?} is not a URI; use file:///path, stdout://, dynamodb://<table>, firestore://<collection>"
            )));
        };
        let scheme = scheme.to_ascii_lowercase();
        let (before_query, query_str) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        let mut query = BTreeMap::new();
        for pair in query_str.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.insert(percent_decode(k), percent_decode(v));
        }
        Ok(EventsUri { raw: raw.clone(), scheme, host: percent_decode(host), path: percent_decode(path), query })
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// A duration parameter (Go form, `8766h`), naming the URI in errors.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => crate::config::duration::parse(v)
                .map(Some)
                .map_err(|e| EventsError::bad(format!("audit_events_uri {}: {name}={v:?}: {e}", self.redacted()))),
        }
    }

    /// The URI without query values that may be secrets.
    pub fn redacted(&self) -> String {
        let q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("secret") || k.to_ascii_lowercase().contains("key");
                format!("{k}={}", if secret { "REDACTED" } else { v })
            })
            .collect();
        let base = format!("{}://{}{}", self.scheme, self.host, self.path);
        if q.is_empty() { base } else { format!("{base}?{}", q.join("&")) }
    }
}

/// Sorts events as every search returns them: by time, then `ei`, then
/// `uid`; reversed for descending.
pub fn sort_events(events: &mut [Event], order: Order) {
    events.sort_by(|a, b| {
        (a.time(), a.index(), a.uid()).partial_cmp(&(b.time(), b.index(), b.uid())).unwrap_or(std::cmp::Ordering::Equal)
    });
    if order == Order::Descending {
        events.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = EventsUri::parse("dynamodb://events_table?region=us-east-1&endpoint=http%3A%2F%2F127.0.0.1%3A5000")
            .unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str()), ("dynamodb", "events_table"));
        assert_eq!(u.param("endpoint"), Some("http://127.0.0.1:5000"));
        let f = EventsUri::parse("file:///var/lib/teleport/log").unwrap();
        assert_eq!((f.scheme.as_str(), f.host.as_str(), f.path.as_str()), ("file", "", "/var/lib/teleport/log"));
        assert_eq!(EventsUri::parse("/var/log/x").unwrap().scheme, "file");
        assert!(EventsUri::parse("nonsense").is_err());
        let s = EventsUri::parse("firestore://events?projectID=p&credentialsPath=/k&secretKey=abc").unwrap();
        assert!(s.redacted().contains("secretKey=REDACTED") && !s.redacted().contains("abc"));
        assert_eq!(EventsUri::parse("stdout://").unwrap().scheme, "stdout");
    }

    #[test]
    fn trimming_keeps_identity_and_marks() {
        let big = "x".repeat(100_000);
        let e = Event::new("exec", "T3002I").with("command", big.clone()).with("user", "alice");
        let t = e.trimmed(4096);
        assert!(t.size() <= 4096, "{}", t.size());
        assert_eq!(t.uid(), e.uid());
        assert_eq!(t.0.get(TRIMMED_FIELD), Some(&Value::Bool(true)));
        assert_eq!(t.str("user"), Some("alice"));
        let small = Event::new("exec", "T3002I");
        assert_eq!(small.trimmed(4096), small);
        // Unicode is cut on a character boundary.
        let u = Event::new("exec", "X").with("command", "é".repeat(50_000)).trimmed(1000);
        assert!(u.size() <= 1000);
    }
}
