//! The DynamoDB audit store (`audit_events_uri: dynamodb://<table>?...`),
//! table-compatible with upstream's `lib/events/dynamoevents`, so either
//! implementation reads the other's events. This room talks only to its own
//! table through the AWS SDK (set up by `crate::aws`); it never uses
//! `backend`, `resources`, `cluster` or the CLI.
//!
//! What it writes, one item per event (see [`table`] for the schema):
//! - `SessionID` (S, partition key): the event's `sid`; for an event
//!   without one, a UUID derived from its `uid` ([`session_id_for`]);
//! - `EventIndex` (N, sort key): the event's `ei`; after a conflict, the
//!   write time in nanoseconds (as upstream);
//! - `EventType` (S), `CreatedAt` (N, unix seconds of `time`),
//!   `CreatedAtDate` (S, `yyyy-mm-dd` UTC of `time`), `Expires` (N, write
//!   time + `retention_period`, the TTL attribute; as upstream, NOT event
//!   time + retention, so imported old events are kept a full period),
//!   `FieldsMap` (M, the whole event, see [`attr`]), `EventNamespace`
//!   (`default`).
//!
//! Writes are PutItem with `attribute_not_exists(SessionID) AND
//! attribute_not_exists(EventIndex)`. Imports are idempotent, which upstream
//! is not: upstream gives sid-less events a random SessionID, so re-emitting
//! one stores it again. Here their SessionID is derived from the `uid`, so a
//! re-emit hits the condition; on any conflict the store looks for the
//! `uid` in that partition (a strongly consistent Query) and skips the write
//! when it is there, else retries at a fresh nanosecond index. Events over
//! the 400 KB item limit are trimmed ([`Event::trimmed`], `trimmed: true`),
//! never refused. Searches: [`search`]. Session reads: Query on
//! `SessionID`, strongly consistent, by `EventIndex`.

mod attr;
mod config;
mod error;
mod search;
mod table;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

pub use self::attr::{from_attr, item_size, to_attr};
pub use self::config::{DEFAULT_RETENTION, DynamoEventsConfig};
use self::error::{is_condition_failed, sdk};
use self::search::{Row, day_of, split};
use crate::events::{AuditLog, Event, EventsError, EventsUri, Result, SearchPage, SearchParams};

/// Partition key attribute.
pub const SESSION_ID: &str = "SessionID";
/// Sort key attribute.
pub const EVENT_INDEX: &str = "EventIndex";
/// Event type attribute.
pub const EVENT_TYPE: &str = "EventType";
/// Unix seconds of the event's time (the index's range key).
pub const CREATED_AT: &str = "CreatedAt";
/// `yyyy-mm-dd` (UTC) of the event's time (the index's hash key).
pub const CREATED_AT_DATE: &str = "CreatedAtDate";
/// TTL attribute.
pub const EXPIRES: &str = "Expires";
/// The whole event as a map.
pub const FIELDS_MAP: &str = "FieldsMap";
/// The event as a JSON string (older upstream items; read, never written).
pub const FIELDS: &str = "Fields";
/// Namespace attribute.
pub const EVENT_NAMESPACE: &str = "EventNamespace";
/// The only namespace.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The global secondary index searches query.
pub const INDEX_TIME_SEARCH: &str = "timesearchV2";
/// DynamoDB's item size limit.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// The largest event (as JSON) kept whole: the item limit less room for the
/// other attributes and the map's overhead.
pub const MAX_EVENT_SIZE: usize = MAX_ITEM_SIZE - 8 * 1024;
/// Conditional-put attempts per event (each conflict moves the index).
pub const MAX_PUT_ATTEMPTS: u32 = 16;

type Attrs = HashMap<String, AttributeValue>;

/// How events sort: time (seconds, nanoseconds), `ei`, `uid`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    secs: i64,
    nanos: u32,
    ei: i64,
    uid: String,
}

/// The `SessionID` of an event: its `sid`, else a UUID (version 8) made
/// from the SHA-256 of its `uid`, so the same event always lands on the
/// same item.
pub fn session_id_for(event: &Event) -> String {
    if let Some(sid) = event.sid() {
        return sid.to_string();
    }
    let digest = Sha256::digest(format!("teleport audit event uid:{}", event.uid()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

/// A handle on an audit events table.
pub struct DynamoEvents {
    client: Client,
    cfg: DynamoEventsConfig,
    store: String,
}

impl std::fmt::Debug for DynamoEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoEvents").field("store", &self.store).finish_non_exhaustive()
    }
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or_default()
}

impl DynamoEvents {
    /// Opens (creating when missing) the table of a `dynamodb://` URI.
    pub async fn open(uri: &EventsUri) -> Result<DynamoEvents> {
        DynamoEvents::open_config(DynamoEventsConfig::from_uri(uri)?).await
    }

    /// The same from parsed settings.
    pub async fn open_config(cfg: DynamoEventsConfig) -> Result<DynamoEvents> {
        let settings = crate::aws::AwsSettings {
            region: cfg.region.as_deref(),
            endpoint: cfg.endpoint.as_deref(),
            access_key: cfg.access_key.as_deref(),
            secret_key: cfg.secret_key.as_deref(),
            use_fips: cfg.use_fips,
        };
        let aws = crate::aws::load(&settings).await.map_err(|e| {
            EventsError::bad(format!(
                "dynamodb audit events table {}: {e}: add ?region=<region> to audit_events_uri or set AWS_REGION",
                cfg.table
            ))
        })?;
        let store = format!(
            "dynamodb audit events table {} (region {}, endpoint {})",
            cfg.table,
            aws.region,
            cfg.endpoint.as_deref().unwrap_or("AWS default")
        );
        let client = aws.dynamodb();
        tracing::debug!(store = %store, "opening");
        table::prepare(&client, &cfg.table, &store).await?;
        Ok(DynamoEvents { client, cfg, store })
    }

    /// The raw SDK client (for tests and tools that inspect the table).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The settings in use.
    pub fn config(&self) -> &DynamoEventsConfig {
        &self.cfg
    }

    /// The item for `event` at `index` in partition `sid`.
    fn item(&self, event: &Event, sid: &str, index: i64) -> Attrs {
        let (secs, _) = split(event.time().unwrap_or(UNIX_EPOCH));
        let expires = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
            + self.cfg.retention.as_secs();
        HashMap::from([
            (SESSION_ID.to_string(), AttributeValue::S(sid.to_string())),
            (EVENT_INDEX.to_string(), AttributeValue::N(index.to_string())),
            (EVENT_TYPE.to_string(), AttributeValue::S(event.event_type().to_string())),
            (CREATED_AT.to_string(), AttributeValue::N(secs.to_string())),
            (CREATED_AT_DATE.to_string(), AttributeValue::S(day_of(secs).format("%Y-%m-%d").to_string())),
            (EXPIRES.to_string(), AttributeValue::N(expires.to_string())),
            (FIELDS_MAP.to_string(), AttributeValue::M(attr::to_map(&event.0))),
            (EVENT_NAMESPACE.to_string(), AttributeValue::S(DEFAULT_NAMESPACE.to_string())),
        ])
    }

    /// The event of an item (`FieldsMap`, else the older `Fields` JSON).
    fn event_of(&self, item: &Attrs) -> Option<Event> {
        if let Some(AttributeValue::M(m)) = item.get(FIELDS_MAP) {
            return Some(Event(attr::from_map(m)));
        }
        if let Some(AttributeValue::S(s)) = item.get(FIELDS) {
            return serde_json::from_str(s).ok().map(Event);
        }
        tracing::warn!(store = %self.store, "skipping an item without FieldsMap or Fields");
        None
    }

    /// An item as a search row, sorted by `CreatedAt` and, within it, the
    /// event's own sub-second time.
    fn row(&self, item: &Attrs) -> Option<Row> {
        let event = self.event_of(item)?;
        let created = item.get(CREATED_AT).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
        let (secs, nanos) = match (created, event.time().map(split)) {
            (Some(c), Some((s, n))) if s == c => (s, n),
            (Some(c), _) => (c, 0),
            (None, Some(t)) => t,
            (None, None) => (0, 0),
        };
        let key = SortKey { secs, nanos, ei: event.index(), uid: event.uid().to_string() };
        Some(Row { key, event })
    }

    /// Whether an event with `uid` is stored in partition `sid`.
    async fn stored(&self, sid: &str, uid: &str) -> Result<bool> {
        let mut start: Option<Attrs> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.cfg.table)
                .key_condition_expression("#s = :s")
                .filter_expression("#f.#u = :u")
                .projection_expression("#s, #i")
                .expression_attribute_names("#s", SESSION_ID)
                .expression_attribute_names("#i", EVENT_INDEX)
                .expression_attribute_names("#f", FIELDS_MAP)
                .expression_attribute_names("#u", "uid")
                .expression_attribute_values(":s", AttributeValue::S(sid.to_string()))
                .expression_attribute_values(":u", AttributeValue::S(uid.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk(e, &self.store, "look for an event's uid in its session"))?;
            if !out.items().is_empty() {
                return Ok(true);
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(false),
            }
        }
    }

    /// The event trimmed so that its item fits DynamoDB's limit.
    fn fitted(&self, event: Event, sid: &str) -> (Event, Attrs) {
        let mut e = event.trimmed(MAX_EVENT_SIZE);
        let mut item = self.item(&e, sid, e.index());
        let mut max = MAX_EVENT_SIZE;
        for _ in 0..8 {
            let size = item_size(&item);
            if size <= MAX_ITEM_SIZE {
                break;
            }
            max = max.saturating_sub(size - MAX_ITEM_SIZE + 1024);
            e = event.trimmed(max);
            item = self.item(&e, sid, e.index());
        }
        if e.0.contains_key(crate::events::TRIMMED_FIELD) && !event.0.contains_key(crate::events::TRIMMED_FIELD) {
            tracing::info!(store = %self.store, uid = %e.uid(), from = event.size(), to = e.size(), "trimmed an oversized event");
        }
        (e, item)
    }
}

#[async_trait]
impl AuditLog for DynamoEvents {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn describe(&self) -> String {
        self.store.clone()
    }

    fn max_event_size(&self) -> usize {
        MAX_EVENT_SIZE
    }

    async fn emit(&self, event: Event) -> Result<()> {
        event.check()?;
        let sid = session_id_for(&event);
        let (event, mut item) = self.fitted(event, &sid);
        let mut last_index = event.index();
        for _ in 0..MAX_PUT_ATTEMPTS {
            let mut req = self.client.put_item().table_name(&self.cfg.table).set_item(Some(item.clone()));
            if !self.cfg.disable_conflict_check {
                req = req
                    .condition_expression("attribute_not_exists(#s) AND attribute_not_exists(#i)")
                    .expression_attribute_names("#s", SESSION_ID)
                    .expression_attribute_names("#i", EVENT_INDEX);
            }
            match req.send().await {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failed(&e) => {
                    if self.stored(&sid, event.uid()).await? {
                        tracing::debug!(store = %self.store, uid = %event.uid(), "event already stored; skipping");
                        return Ok(());
                    }
                    let index = now_nanos().max(last_index + 1);
                    tracing::debug!(store = %self.store, session = %sid, from = last_index, to = index, "event index taken; retrying");
                    last_index = index;
                    item.insert(EVENT_INDEX.to_string(), AttributeValue::N(index.to_string()));
                }
                Err(e) => return Err(sdk(e, &self.store, "put an event")),
            }
        }
        Err(EventsError::new(
            crate::events::EventsErrorKind::ConnectionProblem,
            format!(
                "{}: event {} kept conflicting with other writes to session {sid} after {MAX_PUT_ATTEMPTS} attempts; retry",
                self.store,
                event.uid()
            ),
        ))
    }

    async fn search(&self, params: &SearchParams) -> Result<SearchPage> {
        self.search_page(params).await
    }

    async fn session_events(&self, sid: &str) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.cfg.table)
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", SESSION_ID)
                .expression_attribute_values(":s", AttributeValue::S(sid.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk(e, &self.store, "query a session's events"))?;
            out.extend(page.items().iter().filter_map(|i| self.event_of(i)));
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(out),
            }
        }
    }
}
