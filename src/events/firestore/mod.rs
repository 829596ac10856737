//! The Firestore audit event store, `firestore://<collection>?projectID=..`,
//! document-compatible with upstream's `lib/events/firestoreevents` (see
//! [`layout`]): one document per event in `<collection>`.
//!
//! Map of what it touches:
//! - emit: one Commit per event, a create-if-absent write (precondition
//!   `exists: false`) of the document named after the event's `uid`, so a
//!   re-emitted event is stored once (ALREADY_EXISTS means "stored");
//!   events over the 1 MiB document limit are trimmed, never rejected;
//! - search: RunQuery `eventNamespace == "default"` and a `createdAt` range,
//!   ordered by `createdAt` and `__name__` only (fields every document has,
//!   upstream's included), each second read whole and ordered here by the
//!   event's time, `ei` and document id, so pages never split a second
//!   wrongly; a cursor inside a second re-reads that second and skips what
//!   was returned; event types are filtered here, not by Firestore (so
//!   upstream's `(eventNamespace, createdAt)` indexes suffice);
//! - session_events: RunQuery `sessionID == sid` ordered by `eventIndex`;
//! - purge: documents with `createdAt` older than the retention deleted in
//!   the background ([`purge`]) unless `disableExpiredDocumentPurge`;
//! - nothing else: no index or collection is created, and opening sends one
//!   read query.
//!
//! This module may use `config` (durations) and `gcp` (the connection); it
//! never uses `backend`, `resources`, `cluster` or the CLI.

mod client;
pub mod layout;
mod purge;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::tonic::Code;
use fs::structured_query::field_filter::Operator;
use tokio_util::sync::CancellationToken;

use self::client::Client;
use self::layout::Position;
use super::{AuditLog, Event, EventsError, EventsErrorKind, EventsUri, Order, Result, SearchPage, SearchParams};
use crate::gcp::firestore::{ConnectErrorKind, ConnectParams, Connection};

pub use purge::DEFAULT_INTERVAL as DEFAULT_PURGE_INTERVAL;

/// Default retention (upstream `defaultEventRetentionPeriod`, 8766 h ≈ a year).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8766 * 3600);
/// Most documents one search call reads before it returns a (possibly
/// short) page with a cursor, when an event-type filter skips many.
pub const MAX_SCAN_PER_PAGE: usize = 10_000;
/// Documents read per query.
pub const QUERY_BATCH: usize = 1000;

/// The query parameters this store reads (upstream's names).
pub const PARAMS: [&str; 8] = [
    "projectID",
    "endpoint",
    "credentialsPath",
    "databaseID",
    "eventRetentionPeriod",
    "purgeInterval",
    "disableExpiredDocumentPurge",
    "retryPeriod",
];

/// The store's settings, from the URI.
#[derive(Clone, PartialEq, Eq)]
pub struct FirestoreEventsConfig {
    /// The collection (the URI host). Required.
    pub collection: String,
    /// `projectID`. Required.
    pub project_id: String,
    /// `endpoint`: an emulator or test server (default: Google).
    pub endpoint: Option<String>,
    /// `credentialsPath`: a service-account key file (default: application
    /// default credentials).
    pub credentials_path: Option<PathBuf>,
    /// `databaseID` (default `(default)`).
    pub database_id: Option<String>,
    /// `eventRetentionPeriod` (default 8766h).
    pub retention: Duration,
    /// `purgeInterval` (default 24h).
    pub purge_interval: Duration,
    /// `disableExpiredDocumentPurge` (default false).
    pub disable_purge: bool,
}

impl std::fmt::Debug for FirestoreEventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreEventsConfig")
            .field("collection", &self.collection)
            .field("project_id", &self.project_id)
            .field("endpoint", &self.endpoint)
            .field("credentials_path", &self.credentials_path.as_ref().map(|_| "<set>"))
            .field("database_id", &self.database_id)
            .field("retention", &self.retention)
            .field("purge_interval", &self.purge_interval)
            .field("disable_purge", &self.disable_purge)
            .finish()
    }
}

/// Go's `strconv.ParseBool`, as upstream reads the flag.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl FirestoreEventsConfig {
    /// Reads `firestore://<collection>?projectID=..&...`. Parameters it does
    /// not know are ignored with a warning, as upstream ignores them.
    pub fn from_uri(uri: &EventsUri) -> Result<FirestoreEventsConfig> {
        let name = uri.redacted();
        if uri.scheme != "firestore" {
            return Err(EventsError::bad(format!("audit_events_uri {name}: not a firestore:// URI")));
        }
        if uri.host.is_empty() || uri.host.contains('/') {
            return Err(EventsError::bad(format!(
                "audit_events_uri {name}: name the collection: firestore://<collection>?projectID=<project>"
            )));
        }
        let project_id = uri.param("projectID").ok_or_else(|| {
            EventsError::bad(format!(
                "audit_events_uri {name}: projectID is required: firestore://{}?projectID=<project>",
                uri.host
            ))
        })?;
        for k in uri.query.keys() {
            if !PARAMS.contains(&k.as_str()) {
                tracing::warn!(uri = %name, param = %k, known = ?PARAMS, "unknown firestore audit_events_uri parameter ignored");
            }
        }
        let disable_purge = match uri.param("disableExpiredDocumentPurge") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                EventsError::bad(format!(
                    "audit_events_uri {name}: disableExpiredDocumentPurge={v:?} is not a boolean (true or false)"
                ))
            })?,
        };
        let retention = uri.duration("eventRetentionPeriod")?.unwrap_or(DEFAULT_RETENTION);
        let purge_interval = uri.duration("purgeInterval")?.unwrap_or(purge::DEFAULT_INTERVAL);
        if retention.is_zero() || purge_interval.is_zero() {
            return Err(EventsError::bad(format!(
                "audit_events_uri {name}: eventRetentionPeriod and purgeInterval must be positive"
            )));
        }
        Ok(FirestoreEventsConfig {
            collection: uri.host.clone(),
            project_id: project_id.to_string(),
            endpoint: uri.param("endpoint").map(str::to_string),
            credentials_path: uri.param("credentialsPath").map(PathBuf::from),
            database_id: uri.param("databaseID").map(str::to_string),
            retention,
            purge_interval,
            disable_purge,
        })
    }
}

/// A Firestore audit event store.
pub struct FirestoreEvents {
    client: Arc<Client>,
    config: FirestoreEventsConfig,
    closed: CancellationToken,
}

impl std::fmt::Debug for FirestoreEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreEvents").field("store", &self.client.describe).finish()
    }
}

impl FirestoreEvents {
    /// Opens the store a `firestore://` URI names.
    pub async fn open(uri: &EventsUri) -> Result<FirestoreEvents> {
        FirestoreEvents::open_with(FirestoreEventsConfig::from_uri(uri)?).await
    }

    /// Opens the store `config` describes: connects, proves the collection
    /// can be queried, and starts the purge loop unless it is disabled.
    pub async fn open_with(config: FirestoreEventsConfig) -> Result<FirestoreEvents> {
        let what = format!("events collection {}", config.collection);
        let conn = Connection::connect(ConnectParams {
            project: &config.project_id,
            database_id: config.database_id.as_deref(),
            endpoint: config.endpoint.as_deref(),
            credentials_path: config.credentials_path.as_deref(),
            what: &what,
            endpoint_option: "endpoint",
            credentials_option: "credentialsPath",
        })
        .await
        .map_err(|e| match e.kind {
            ConnectErrorKind::BadParameter => EventsError::bad(e.message),
            ConnectErrorKind::ConnectionProblem => EventsError::new(EventsErrorKind::ConnectionProblem, e.message),
        })?;
        let client = Arc::new(Client::new(conn, &config.collection));
        let probe = client.query(namespace_filter(), &[], None, 1);
        client.run_query(probe).await.map_err(|e| EventsError::new(e.kind, format!("open: {e}")))?;
        let closed = CancellationToken::new();
        if !config.disable_purge {
            tokio::spawn(purge::run(client.clone(), config.retention, config.purge_interval, closed.clone()));
        }
        Ok(FirestoreEvents { client, config, closed })
    }

    /// The settings.
    pub fn config(&self) -> &FirestoreEventsConfig {
        &self.config
    }

    /// The full name of the document of the event with `uid`.
    pub fn document_name(&self, uid: &str) -> String {
        self.client.doc_name(&layout::document_id(uid))
    }

    /// Runs one purge pass now (as of `now`); returns how many events it deleted.
    pub async fn purge_expired(&self, now: SystemTime) -> Result<usize> {
        self.check_open()?;
        purge::purge_once(&self.client, self.config.retention, now).await
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(EventsError::internal(format!("{}: the store is closed", self.client.describe)));
        }
        Ok(())
    }

    /// The create-if-absent write of `event`'s document.
    fn write(&self, event: &Event) -> fs::Write {
        fs::Write {
            operation: Some(fs::write::Operation::Update(fs::Document {
                name: self.document_name(event.uid()),
                fields: layout::fields(event),
                ..Default::default()
            })),
            current_document: Some(fs::Precondition {
                condition_type: Some(fs::precondition::ConditionType::Exists(false)),
            }),
            ..Default::default()
        }
    }
}

fn namespace_filter() -> fs::structured_query::Filter {
    Client::filter(layout::NAMESPACE_FIELD, Operator::Equal, layout::string(layout::NAMESPACE))
}

#[async_trait]
impl AuditLog for FirestoreEvents {
    fn name(&self) -> &'static str {
        "firestore"
    }

    fn describe(&self) -> String {
        self.client.describe.to_string()
    }

    fn max_event_size(&self) -> usize {
        layout::MAX_EVENT_BYTES
    }

    async fn emit(&self, event: Event) -> Result<()> {
        event.check()?;
        self.check_open()?;
        let mut event = event.trimmed(layout::MAX_EVENT_BYTES);
        // The other fields and the name count toward the document limit too
        // (a huge `sid`): trim further to what is left.
        let name = self.document_name(event.uid());
        let others = layout::document_size(&name, &layout::fields(&event)) - event.size();
        if event.size() + others > layout::MAX_DOCUMENT_BYTES {
            event = event.trimmed(layout::MAX_DOCUMENT_BYTES.saturating_sub(others + 1024));
        }
        if event.0.contains_key(super::TRIMMED_FIELD) {
            tracing::debug!(store = %self.client.describe, uid = event.uid(), "event trimmed to fit a document");
        }
        match self.client.commit("emit event", vec![self.write(&event)]).await {
            Ok(_) => Ok(()),
            // Already stored (a re-emit, an import, or a retry that arrived).
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(self.client.error(&format!("emit {} event {}", event.event_type(), event.uid()), &s)),
        }
    }

    async fn search(&self, params: &SearchParams) -> Result<SearchPage> {
        self.check_open()?;
        if params.limit == 0 {
            return Err(EventsError::bad("search limit must be positive"));
        }
        let from = layout::split_time(params.from);
        let to = layout::split_time(params.to);
        if from >= to {
            return Ok(SearchPage::default());
        }
        let desc = params.order == Order::Descending;
        let cursor = params.cursor.as_deref().map(Position::decode).transpose()?;
        // The query orders by `createdAt` and the document name only, fields
        // every document has (upstream's too); the order within a second
        // (time, `ei`, id) is made here, so a page is cut only after a
        // second has been read whole. A cursor inside a second re-reads that
        // second and skips what was returned.
        let mut filters = vec![
            namespace_filter(),
            Client::filter(layout::CREATED_AT_FIELD, Operator::GreaterThanOrEqual, layout::integer(from.0)),
            Client::filter(layout::CREATED_AT_FIELD, Operator::LessThanOrEqual, layout::integer(to.0)),
        ];
        if let Some(c) = &cursor {
            let op = if desc { Operator::LessThanOrEqual } else { Operator::GreaterThanOrEqual };
            filters.push(Client::filter(layout::CREATED_AT_FIELD, op, layout::integer(c.secs)));
        }
        let filter = Client::and(filters);
        let orders = [(layout::CREATED_AT_FIELD, desc), (layout::NAME_FIELD, desc)];
        let mut after: Option<Vec<fs::Value>> = None;
        let mut events: Vec<Event> = Vec::new();
        let mut second: Option<i64> = None;
        let mut bucket: Vec<(Position, Event)> = Vec::new();
        let mut scanned = 0usize;
        let mut last_seen: Option<Position> = None;
        loop {
            let docs =
                self.client.run_query(self.client.query(filter.clone(), &orders, after.take(), QUERY_BATCH)).await?;
            let full = docs.len() == QUERY_BATCH;
            for doc in &docs {
                let Some(secs) = layout::int_field(doc, layout::CREATED_AT_FIELD) else { continue };
                if second.is_some_and(|s| s != secs) {
                    let done = flush(&mut bucket, &mut events, &mut last_seen, params, &cursor, (from, to), desc);
                    if let Some((page, _)) = done {
                        // More documents follow: keep the cursor.
                        return Ok(page);
                    }
                    if scanned >= MAX_SCAN_PER_PAGE {
                        return Ok(SearchPage { events, next: last_seen.map(|p| p.encode()) });
                    }
                }
                second = Some(secs);
                scanned += 1;
                let event =
                    layout::decode(doc).map_err(|e| EventsError::internal(format!("{}: {e}", self.client.describe)))?;
                let nanos = event.time().map(|t| layout::split_time(t).1).unwrap_or(0);
                let id = doc.name.rsplit('/').next().unwrap_or_default().to_string();
                bucket.push((Position { secs, nanos, index: event.index(), id }, event));
            }
            match docs.last() {
                Some(last) if full => {
                    let secs = layout::int_field(last, layout::CREATED_AT_FIELD).unwrap_or(0);
                    after = Some(vec![layout::integer(secs), layout::reference(&last.name)]);
                }
                _ => {
                    if let Some((mut page, second_done)) =
                        flush(&mut bucket, &mut events, &mut last_seen, params, &cursor, (from, to), desc)
                    {
                        // Nothing follows: this is the last page unless it
                        // ended inside the last second.
                        if second_done {
                            page.next = None;
                        }
                        return Ok(page);
                    }
                    return Ok(SearchPage { events, next: None });
                }
            }
        }
    }

    async fn session_events(&self, sid: &str) -> Result<Vec<Event>> {
        self.check_open()?;
        if sid.is_empty() {
            return Err(EventsError::bad("session id is empty"));
        }
        let filter = Client::filter(layout::SESSION_ID_FIELD, Operator::Equal, layout::string(sid));
        let orders = [(layout::EVENT_INDEX_FIELD, false), (layout::NAME_FIELD, false)];
        let mut out = Vec::new();
        let mut after: Option<Vec<fs::Value>> = None;
        loop {
            let docs =
                self.client.run_query(self.client.query(filter.clone(), &orders, after.take(), QUERY_BATCH)).await?;
            for doc in &docs {
                out.push(
                    layout::decode(doc).map_err(|e| EventsError::internal(format!("{}: {e}", self.client.describe)))?,
                );
            }
            match docs.last() {
                Some(last) if docs.len() == QUERY_BATCH => {
                    let ei = match last.fields.get(layout::EVENT_INDEX_FIELD) {
                        Some(v) => v.clone(),
                        None => layout::integer(0),
                    };
                    after = Some(vec![ei, layout::reference(&last.name)]);
                }
                _ => break,
            }
        }
        // A session without events is empty, as upstream answers.
        Ok(out)
    }

    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        Ok(())
    }
}

impl Drop for FirestoreEvents {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// Sorts one second's documents into the search order and appends the ones
/// in range, past the cursor and of a wanted type to `events`. When the page
/// fills, returns it (its cursor is the last event returned) and whether that
/// event was the second's last.
fn flush(
    bucket: &mut Vec<(Position, Event)>,
    events: &mut Vec<Event>,
    last_seen: &mut Option<Position>,
    params: &SearchParams,
    cursor: &Option<Position>,
    range: ((i64, i64), (i64, i64)),
    desc: bool,
) -> Option<(SearchPage, bool)> {
    let (from, to) = range;
    bucket.sort_by(|a, b| a.0.cmp(&b.0));
    if desc {
        bucket.reverse();
    }
    let items = std::mem::take(bucket);
    let total = items.len();
    for (k, (pos, event)) in items.into_iter().enumerate() {
        *last_seen = Some(pos.clone());
        if let Some(c) = cursor {
            let passed = if desc { pos >= *c } else { pos <= *c };
            if passed {
                continue;
            }
        }
        let t = (pos.secs, pos.nanos);
        if t < from || t >= to {
            continue;
        }
        if !params.event_types.is_empty() && !params.event_types.iter().any(|ty| ty == event.event_type()) {
            continue;
        }
        events.push(event);
        if events.len() == params.limit {
            let page = SearchPage { events: std::mem::take(events), next: Some(pos.encode()) };
            return Some((page, k + 1 == total));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parameters() {
        let u = EventsUri::parse("firestore://events?projectID=p&endpoint=localhost:8618&eventRetentionPeriod=2h&purgeInterval=1m&disableExpiredDocumentPurge=true").unwrap();
        let c = FirestoreEventsConfig::from_uri(&u).unwrap();
        assert_eq!((c.collection.as_str(), c.project_id.as_str()), ("events", "p"));
        assert_eq!(c.endpoint.as_deref(), Some("localhost:8618"));
        assert_eq!(
            (c.retention, c.purge_interval, c.disable_purge),
            (Duration::from_secs(7200), Duration::from_secs(60), true)
        );
        let d = FirestoreEventsConfig::from_uri(&EventsUri::parse("firestore://events?projectID=p").unwrap()).unwrap();
        assert_eq!(
            (d.retention, d.purge_interval, d.disable_purge),
            (DEFAULT_RETENTION, DEFAULT_PURGE_INTERVAL, false)
        );
        let missing =
            FirestoreEventsConfig::from_uri(&EventsUri::parse("firestore://events?endpoint=x").unwrap()).unwrap_err();
        assert!(missing.message.contains("projectID") && missing.message.contains("firestore://events"), "{missing}");
        assert!(
            FirestoreEventsConfig::from_uri(
                &EventsUri::parse("firestore://e?projectID=p&disableExpiredDocumentPurge=maybe").unwrap()
            )
            .is_err()
        );
        assert!(
            FirestoreEventsConfig::from_uri(
                &EventsUri::parse("firestore://e?projectID=p&eventRetentionPeriod=soon").unwrap()
            )
            .is_err()
        );
    }
}
