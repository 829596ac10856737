//! The Firestore document layout, as upstream's `lib/backend/firestore`
//! writes it, and the limits that follow from it.
//!
//! One document per item in the collection `collection_name`:
//! - document id: `base64.URLEncoding` of the key bytes (RFC 4648 §5 URL-safe
//!   alphabet WITH `=` padding), so ids never contain `/` or `.`;
//! - `key` (bytes): the key; older upstream versions wrote it as a string,
//!   and some v16/v17 versions as an array of integers (one per byte): all
//!   three are read, only bytes are written;
//! - `timestamp` (integer): unix seconds of the write, by the writer's clock;
//! - `expires` (integer): unix seconds of expiry, 0 for none (a missing field
//!   reads as 0: upstream's `omitempty` writes leave it out);
//! - `value` (bytes): the value; legacy documents hold a string;
//! - `revision` (string): `"f2:" + uuid` for every new write; legacy
//!   documents have none and their revision is their update time in unix
//!   nanoseconds (decimal), as upstream derives it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::prost_types::Timestamp;
use fs::value::ValueType;

use crate::backend::{Error, ErrorKind, Item, Key, Result};

/// Field holding the key.
pub const KEY_FIELD: &str = "key";
/// Field holding the write time (unix seconds).
pub const TIMESTAMP_FIELD: &str = "timestamp";
/// Field holding the expiry (unix seconds; 0 = never).
pub const EXPIRES_FIELD: &str = "expires";
/// Field holding the value.
pub const VALUE_FIELD: &str = "value";
/// Field holding the revision.
pub const REVISION_FIELD: &str = "revision";
/// Prefix of every revision this layout writes (upstream `revisionV2Prefix`).
pub const REVISION_V2_PREFIX: &str = "f2:";

/// Most writes in one Commit (upstream batches at this size;
/// <https://firebase.google.com/docs/firestore/quotas#writes_and_transactions>).
pub const MAX_WRITES_PER_COMMIT: usize = 500;
/// Largest API request
/// (<https://firebase.google.com/docs/firestore/quotas#limits>, "Maximum API request size").
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// What this store puts in one Commit, leaving room for the request's framing.
pub const COMMIT_BUDGET_BYTES: usize = MAX_REQUEST_BYTES - 512 * 1024;
/// Largest document by Firestore's storage-size rules
/// (<https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields>,
/// "Maximum size for a document: 1 MiB (1,048,576 bytes)";
/// <https://firebase.google.com/docs/firestore/storage-size>).
pub const MAX_DOCUMENT_BYTES: usize = 1_048_576;
/// Longest document id
/// (<https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields>,
/// "Maximum size of a document ID: 1,500 bytes").
pub const MAX_DOCUMENT_ID_BYTES: usize = 1500;
/// Longest key: its padded base64url form must fit in a document id.
pub const MAX_KEY_BYTES: usize = MAX_DOCUMENT_ID_BYTES / 4 * 3;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE;

/// A new revision (upstream `createRevisionV2`).
pub fn new_revision() -> String {
    format!("{REVISION_V2_PREFIX}{}", uuid::Uuid::new_v4())
}

/// The document id of `key`.
pub fn document_id(key: &Key) -> String {
    B64.encode(key.as_bytes())
}

/// The key a document id encodes, if it is one of ours.
pub fn key_of_document_id(id: &str) -> Option<Key> {
    B64.decode(id).ok().map(Key::from)
}

/// The revision of a legacy document: its update time in unix nanoseconds.
pub fn legacy_revision(update_time: &Timestamp) -> String {
    (i128::from(update_time.seconds) * 1_000_000_000 + i128::from(update_time.nanos)).to_string()
}

/// Unix seconds of an expiry (floored, as Go's `Unix()`); 0 for none.
pub fn expires_secs(expires: Option<SystemTime>) -> i64 {
    match expires {
        None => 0,
        // An expiry at or before the epoch is already past; 0 would mean never.
        Some(t) => t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0).max(1),
    }
}

/// Unix seconds of `t` (floored).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn int(i: i64) -> fs::Value {
    fs::Value { value_type: Some(ValueType::IntegerValue(i)) }
}

/// A bytes value.
pub fn bytes(b: &[u8]) -> fs::Value {
    fs::Value { value_type: Some(ValueType::BytesValue(b.to_vec())) }
}

/// A string value.
pub fn string(s: &str) -> fs::Value {
    fs::Value { value_type: Some(ValueType::StringValue(s.to_string())) }
}

/// An integer value.
pub fn integer(i: i64) -> fs::Value {
    int(i)
}

/// An array of integers, one per byte: the v16/v17 key form.
pub fn byte_array(b: &[u8]) -> fs::Value {
    fs::Value {
        value_type: Some(ValueType::ArrayValue(fs::ArrayValue {
            values: b.iter().map(|x| int(i64::from(*x))).collect(),
        })),
    }
}

/// The fields of `item` written now with `revision`.
pub fn fields(
    key: &Key,
    value: &[u8],
    expires: Option<SystemTime>,
    revision: &str,
    now: SystemTime,
) -> HashMap<String, fs::Value> {
    HashMap::from([
        (KEY_FIELD.to_string(), bytes(key.as_bytes())),
        (TIMESTAMP_FIELD.to_string(), int(unix_secs(now))),
        (EXPIRES_FIELD.to_string(), int(expires_secs(expires))),
        (VALUE_FIELD.to_string(), bytes(value)),
        (REVISION_FIELD.to_string(), string(revision)),
    ])
}

/// How a document stores its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// Bytes: what this store and current upstream write.
    Bytes,
    /// A string: upstream before bytes keys.
    String,
    /// An array of integers: some upstream v16/v17 versions.
    Array,
}

/// A decoded document.
#[derive(Debug, Clone)]
pub struct Record {
    /// The key.
    pub key: Key,
    /// How the document stores it.
    pub key_form: KeyForm,
    /// The value.
    pub value: Vec<u8>,
    /// Expiry in unix seconds, 0 for none.
    pub expires: i64,
    /// The `revision` field, if the document has one.
    pub revision: Option<String>,
    /// The document's update time (the legacy revision and the precondition
    /// for writes that must not race).
    pub update_time: Option<Timestamp>,
}

fn bad(doc: &str, what: &str) -> Error {
    Error::new(ErrorKind::Internal, format!("document {doc} is not a cluster-state item: {what}"))
}

impl Record {
    /// Decodes a document; the key comes from the `key` field, or from the
    /// document id when the field is missing.
    pub fn decode(doc: &fs::Document) -> Result<Record> {
        let id = doc.name.rsplit('/').next().unwrap_or_default();
        let (key, key_form) = match doc.fields.get(KEY_FIELD).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::BytesValue(b)) => (Key::from(b.clone()), KeyForm::Bytes),
            Some(ValueType::StringValue(s)) => (Key::from(s.as_str()), KeyForm::String),
            Some(ValueType::ArrayValue(a)) => {
                let mut b = Vec::with_capacity(a.values.len());
                for v in &a.values {
                    match v.value_type {
                        Some(ValueType::IntegerValue(i)) if (0..=255).contains(&i) => b.push(i as u8),
                        _ => return Err(bad(id, "`key` is an array of something other than bytes")),
                    }
                }
                (Key::from(b), KeyForm::Array)
            }
            None => (key_of_document_id(id).ok_or_else(|| bad(id, "no `key` field"))?, KeyForm::Bytes),
            Some(_) => return Err(bad(id, "`key` has an unexpected type")),
        };
        let value = match doc.fields.get(VALUE_FIELD).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::BytesValue(b)) => b.clone(),
            Some(ValueType::StringValue(s)) => s.clone().into_bytes(),
            None | Some(ValueType::NullValue(_)) => Vec::new(),
            Some(_) => return Err(bad(id, "`value` has an unexpected type")),
        };
        let expires = match doc.fields.get(EXPIRES_FIELD).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::IntegerValue(i)) => *i,
            Some(ValueType::DoubleValue(d)) => *d as i64,
            None | Some(ValueType::NullValue(_)) => 0,
            Some(_) => return Err(bad(id, "`expires` has an unexpected type")),
        };
        let revision = match doc.fields.get(REVISION_FIELD).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(Record { key, key_form, value, expires, revision, update_time: doc.update_time })
    }

    /// The item's revision: the `revision` field, or the legacy form derived
    /// from the update time.
    pub fn revision(&self) -> String {
        match (&self.revision, &self.update_time) {
            (Some(r), _) => r.clone(),
            (None, Some(t)) => legacy_revision(t),
            (None, None) => crate::backend::BLANK_REVISION.to_string(),
        }
    }

    /// The expiry as a time.
    pub fn expires_at(&self) -> Option<SystemTime> {
        (self.expires != 0).then(|| UNIX_EPOCH + Duration::from_secs(self.expires.max(0) as u64))
    }

    /// True unless the item has expired at `now`.
    pub fn live(&self, now: SystemTime) -> bool {
        !matches!(self.expires_at(), Some(t) if t <= now)
    }

    /// The backend item.
    pub fn item(&self) -> Item {
        Item { key: self.key.clone(), value: self.value.clone(), expires: self.expires_at(), revision: self.revision() }
    }
}

/// The size of a document holding an item of this shape, by Firestore's
/// storage-size rules: name (segments + 1 each, + 16), each field (name + 1,
/// plus 8 per integer, len for bytes, len + 1 for strings), + 32.
pub fn document_size(collection: &str, key_len: usize, value_len: usize) -> usize {
    let id_len = key_len.div_ceil(3) * 4;
    let name = collection.len() + 1 + id_len + 1 + 16;
    let fields = (KEY_FIELD.len() + 1 + key_len)
        + (TIMESTAMP_FIELD.len() + 1 + 8)
        + (EXPIRES_FIELD.len() + 1 + 8)
        + (VALUE_FIELD.len() + 1 + value_len)
        + (REVISION_FIELD.len() + 1 + REVISION_V2_PREFIX.len() + 36 + 1);
    name + fields + 32
}

/// Checks that an item fits in one document.
pub fn check_item(collection: &str, item: &Item) -> Result<()> {
    if item.key.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "key {:?} is {} bytes; Firestore document ids hold keys of at most {MAX_KEY_BYTES} bytes",
                item.key,
                item.key.len()
            ),
        ));
    }
    let size = document_size(collection, item.key.len(), item.value.len());
    if size > MAX_DOCUMENT_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "item {:?} would be a {size}-byte document; Firestore documents are at most {MAX_DOCUMENT_BYTES} bytes",
                item.key
            ),
        ));
    }
    Ok(())
}

/// The largest key plus value that always fits (with a key of any length).
pub fn max_item_size(collection: &str) -> usize {
    let overhead = document_size(collection, MAX_KEY_BYTES, 0) - MAX_KEY_BYTES;
    MAX_DOCUMENT_BYTES - overhead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_padded_base64url_as_upstream() {
        // Go: base64.URLEncoding.EncodeToString([]byte("/web/users/al?ce>")).
        assert_eq!(document_id(&Key::from("/a")), "L2E=");
        assert_eq!(document_id(&Key::from(vec![0xfb, 0xff])), "-_8=");
        assert_eq!(key_of_document_id("L2E="), Some(Key::from("/a")));
        let long = Key::from(vec![b'x'; MAX_KEY_BYTES]);
        assert_eq!(document_id(&long).len(), MAX_DOCUMENT_ID_BYTES);
    }

    #[test]
    fn legacy_forms_decode() {
        let doc = fs::Document {
            name: "projects/p/databases/d/documents/c/L2E=".into(),
            fields: HashMap::from([
                (KEY_FIELD.to_string(), string("/a")),
                (VALUE_FIELD.to_string(), string("text value")),
                (TIMESTAMP_FIELD.to_string(), integer(5)),
            ]),
            create_time: None,
            update_time: Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_000 }),
        };
        let r = Record::decode(&doc).unwrap();
        assert_eq!(
            (r.key.clone(), r.key_form, r.value.clone(), r.expires),
            (Key::from("/a"), KeyForm::String, b"text value".to_vec(), 0)
        );
        assert_eq!(r.revision(), "1700000000123456000");
        let mut doc2 = doc.clone();
        doc2.fields.insert(KEY_FIELD.into(), byte_array(b"/a"));
        doc2.fields.insert(REVISION_FIELD.into(), string("f2:x"));
        let r = Record::decode(&doc2).unwrap();
        assert_eq!((r.key.clone(), r.key_form, r.revision()), (Key::from("/a"), KeyForm::Array, "f2:x".to_string()));
    }

    #[test]
    fn sizes_and_expiry() {
        let item = Item::new("/k", vec![0u8; max_item_size("c") - 2]);
        assert!(check_item("c", &item).is_ok());
        let item = Item::new(Key::from(vec![b'k'; MAX_KEY_BYTES]), vec![0u8; max_item_size("c") - MAX_KEY_BYTES]);
        assert!(check_item("c", &item).is_ok());
        let item = Item::new("/k", vec![0u8; MAX_DOCUMENT_BYTES]);
        assert_eq!(check_item("c", &item).unwrap_err().kind(), ErrorKind::LimitExceeded);
        let t = UNIX_EPOCH + Duration::from_millis(10_500);
        assert_eq!(expires_secs(Some(t)), 10);
        assert_eq!(expires_secs(None), 0);
        assert!(new_revision().starts_with("f2:"));
    }
}
