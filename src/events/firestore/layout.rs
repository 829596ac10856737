//! The Firestore audit document layout, as upstream's
//! `lib/events/firestoreevents` writes it, plus one field of ours, and the
//! search cursor.
//!
//! One document per event in the collection `<collection>`:
//! - document id: the event's `uid` when it is a plain id (1 to 128
//!   characters of `A-Z a-z 0-9 - _`, which every uuid is), otherwise
//!   `sha256-` and the hex SHA-256 of the uid. Upstream uses a random uuid;
//!   a deterministic id makes re-emitting (importing) an event idempotent;
//! - `sessionID` (string): the event's `sid`, empty when it has none;
//! - `eventIndex` (integer): `ei`;
//! - `eventType` (string): `event`;
//! - `createdAt` (integer): the event's `time`, unix seconds (floor);
//! - `createdAtNanos` (integer, ours): the nanoseconds within that second,
//!   so that searches order events within a second as upstream's file log
//!   and every other store here do (time, then `ei`, then id);
//! - `fields` (string): the event as JSON;
//! - `eventNamespace` (string): `default`.

use std::collections::HashMap;
use std::time::SystemTime;

use base64::Engine;
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use fs::value::ValueType;
use sha2::Digest;

use crate::events::{Event, EventsError, Result};

/// Field holding the session id.
pub const SESSION_ID_FIELD: &str = "sessionID";
/// Field holding the index within the session.
pub const EVENT_INDEX_FIELD: &str = "eventIndex";
/// Field holding the event type.
pub const EVENT_TYPE_FIELD: &str = "eventType";
/// Field holding the event time, unix seconds.
pub const CREATED_AT_FIELD: &str = "createdAt";
/// Field holding the nanoseconds within `createdAt` (ours; upstream has none).
pub const CREATED_AT_NANOS_FIELD: &str = "createdAtNanos";
/// Field holding the event JSON.
pub const FIELDS_FIELD: &str = "fields";
/// Field holding the namespace.
pub const NAMESPACE_FIELD: &str = "eventNamespace";
/// The only namespace (upstream `apidefaults.Namespace`).
pub const NAMESPACE: &str = "default";
/// The pseudo-field naming a document, for orders and cursors.
pub const NAME_FIELD: &str = "__name__";

/// Largest document by Firestore's storage-size rules
/// (<https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields>,
/// "Maximum size for a document: 1 MiB (1,048,576 bytes)").
pub const MAX_DOCUMENT_BYTES: usize = 1_048_576;
/// Largest event JSON this store writes: a document less room for its
/// name and other fields; larger events are trimmed.
pub const MAX_EVENT_BYTES: usize = MAX_DOCUMENT_BYTES - 64 * 1024;
/// Most writes in one Commit
/// (<https://firebase.google.com/docs/firestore/quotas#writes_and_transactions>).
pub const MAX_WRITES_PER_COMMIT: usize = 500;
/// Largest API request; answers are read up to twice this.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The document id of the event with `uid`.
pub fn document_id(uid: &str) -> String {
    let plain =
        (1..=128).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain { uid.to_string() } else { format!("sha256-{}", hex::encode(sha2::Sha256::digest(uid.as_bytes()))) }
}

/// A string value.
pub fn string(s: &str) -> fs::Value {
    fs::Value { value_type: Some(ValueType::StringValue(s.to_string())) }
}

/// An integer value.
pub fn integer(i: i64) -> fs::Value {
    fs::Value { value_type: Some(ValueType::IntegerValue(i)) }
}

/// A reference value (a document name).
pub fn reference(name: &str) -> fs::Value {
    fs::Value { value_type: Some(ValueType::ReferenceValue(name.to_string())) }
}

/// Unix seconds (floor) and the nanoseconds within that second.
pub fn split_time(t: SystemTime) -> (i64, i64) {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    (dt.timestamp(), i64::from(dt.timestamp_subsec_nanos()))
}

/// The fields of `event`'s document (the event must have passed
/// [`Event::check`]).
pub fn fields(event: &Event) -> HashMap<String, fs::Value> {
    let (secs, nanos) = split_time(event.time().unwrap_or(SystemTime::UNIX_EPOCH));
    HashMap::from([
        (SESSION_ID_FIELD.to_string(), string(event.sid().unwrap_or_default())),
        (EVENT_INDEX_FIELD.to_string(), integer(event.index())),
        (EVENT_TYPE_FIELD.to_string(), string(event.event_type())),
        (CREATED_AT_FIELD.to_string(), integer(secs)),
        (CREATED_AT_NANOS_FIELD.to_string(), integer(nanos)),
        (FIELDS_FIELD.to_string(), string(&event.to_json())),
        (NAMESPACE_FIELD.to_string(), string(NAMESPACE)),
    ])
}

/// The storage size of a document named `name` with `fields`, by
/// Firestore's rules (<https://firebase.google.com/docs/firestore/storage-size>):
/// the name's segments (+1 each) + 16, each field's name + 1 and value,
/// + 32. Only the value types this layout writes are counted exactly.
pub fn document_size(name: &str, fields: &HashMap<String, fs::Value>) -> usize {
    let path = name.split("/documents/").nth(1).unwrap_or(name);
    let name_size: usize = path.split('/').map(|s| s.len() + 1).sum::<usize>() + 16;
    let values: usize = fields
        .iter()
        .map(|(k, v)| {
            k.len()
                + 1
                + match &v.value_type {
                    Some(ValueType::StringValue(s)) => s.len() + 1,
                    _ => 8,
                }
        })
        .sum();
    name_size + values + 32
}

pub fn int_field(doc: &fs::Document, field: &str) -> Option<i64> {
    match doc.fields.get(field).and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::IntegerValue(i)) => Some(*i),
        Some(ValueType::DoubleValue(d)) => Some(*d as i64),
        _ => None,
    }
}

/// The event a document holds.
pub fn decode(doc: &fs::Document) -> Result<Event> {
    let json = match doc.fields.get(FIELDS_FIELD).and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::StringValue(s)) => s,
        _ => return Err(EventsError::internal(format!("document {} has no `fields` string", doc.name))),
    };
    serde_json::from_str::<Event>(json)
        .map_err(|e| EventsError::internal(format!("document {}: `fields` is not an event JSON object: {e}", doc.name)))
}

/// Where a document sits in the search order: `createdAt`,
/// `createdAtNanos`, `eventIndex`, document id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// `createdAt`.
    pub secs: i64,
    /// `createdAtNanos`.
    pub nanos: i64,
    /// `eventIndex`.
    pub index: i64,
    /// The document id.
    pub id: String,
}

impl Position {
    /// The position of a document; None when it lacks an ordered field.
    pub fn of(doc: &fs::Document) -> Option<Position> {
        Some(Position {
            secs: int_field(doc, CREATED_AT_FIELD)?,
            nanos: int_field(doc, CREATED_AT_NANOS_FIELD)?,
            index: int_field(doc, EVENT_INDEX_FIELD).unwrap_or(0),
            id: doc.name.rsplit('/').next().unwrap_or_default().to_string(),
        })
    }

    /// The opaque cursor handed to callers.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(&(self.secs, self.nanos, self.index, &self.id)).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor made by [`Position::encode`].
    pub fn decode(cursor: &str) -> Result<Position> {
        let bad = || EventsError::bad(format!("search cursor {cursor:?} was not made by the firestore event store"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let (secs, nanos, index, id): (i64, i64, i64, String) = serde_json::from_slice(&json).map_err(|_| bad())?;
        if id.is_empty() || id.contains('/') {
            return Err(bad());
        }
        Ok(Position { secs, nanos, index, id })
    }

    /// The cursor values for a query ordered by the search order, in
    /// collection `collection_path` (`.../documents/<collection>`).
    pub fn values(&self, collection_path: &str) -> Vec<fs::Value> {
        vec![
            integer(self.secs),
            integer(self.nanos),
            integer(self.index),
            reference(&format!("{collection_path}/{}", self.id)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_cursors() {
        let u = "0b6f7a8e-7d3c-4a1f-9a7e-1c2d3e4f5a6b";
        assert_eq!(document_id(u), u);
        let odd = document_id("a/b");
        assert!(odd.starts_with("sha256-") && odd.len() == 7 + 64);
        assert_eq!(document_id("a/b"), odd);
        assert!(document_id(&"x".repeat(200)).starts_with("sha256-"));
        let p = Position { secs: -5, nanos: 7, index: 3, id: u.into() };
        assert_eq!(Position::decode(&p.encode()).unwrap(), p);
        assert!(Position::decode("nope").is_err());
    }

    #[test]
    fn times_split_at_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_500_000_001);
        assert_eq!(split_time(t), (1, 500_000_001));
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_millis(500);
        assert_eq!(split_time(before), (-1, 500_000_000));
    }
}
