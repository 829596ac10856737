//! The item layout (upstream `lib/backend/dynamo`'s `record`) and the
//! expressions that read and guard it.
//!
//! | attribute | type | content |
//! |---|---|---|
//! | `HashKey` | S | always `teleport` (partition key: one partition) |
//! | `FullPath` | S | `teleport` + key, e.g. `teleport/web/users/alice/params` (sort key) |
//! | `Value` | B | the value bytes |
//! | `Expires` | N | unix seconds; absent = never; the table's TTL attribute |
//! | `Timestamp` | N | unix seconds of the write |
//! | `Revision` | S | UUID; absent on legacy items (read as `BLANK_REVISION`) |
//!
//! Expiry: an item is live while `now < Expires` (seconds). We write
//! `Expires` rounded UP to the second, so an item never expires before the
//! time asked for; live and expired are the conditions `Expires > :now` and
//! `Expires <= :now` with `:now` the clock's whole seconds.

use std::collections::HashMap;
use std::ops::Bound;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::limits::{ITEM_OVERHEAD_BYTES, MAX_ITEM_BYTES, MAX_SORT_KEY_BYTES};
use crate::backend::{BLANK_REVISION, Error, ErrorKind, Item, Key, Result};

/// Partition key attribute.
pub const HASH_KEY: &str = "HashKey";
/// Sort key attribute.
pub const FULL_PATH: &str = "FullPath";
/// Value attribute.
pub const VALUE: &str = "Value";
/// Expiry attribute (the table's TTL attribute).
pub const EXPIRES: &str = "Expires";
/// Write time attribute.
pub const TIMESTAMP: &str = "Timestamp";
/// Revision attribute.
pub const REVISION: &str = "Revision";
/// The one partition key value.
pub const HASH_VALUE: &str = "teleport";
/// What every `FullPath` starts with.
pub const KEY_PREFIX: &str = "teleport";
/// The key attribute of the pre-4.0 schema, which we refuse.
pub const LEGACY_KEY: &str = "Key";

/// An attribute map, as the SDK passes items.
pub type Attrs = HashMap<String, AttributeValue>;

/// `teleport` + key. Keys must be UTF-8 (DynamoDB strings) and fit the
/// 1024-byte sort key.
pub fn full_path(key: &Key) -> Result<String> {
    let text = std::str::from_utf8(key.as_bytes()).map_err(|_| {
        Error::bad_parameter(format!(
            "key {key:?} is not valid UTF-8; DynamoDB stores keys as strings (sort key FullPath)"
        ))
    })?;
    let fp = format!("{KEY_PREFIX}{text}");
    if fp.len() > MAX_SORT_KEY_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "key {key:?} is {} bytes; DynamoDB allows {} (the sort key is \"teleport\" + key, at most {MAX_SORT_KEY_BYTES} bytes)",
                key.len(),
                MAX_SORT_KEY_BYTES - KEY_PREFIX.len()
            ),
        ));
    }
    Ok(fp)
}

/// The key of a `FullPath`, or None for a foreign item.
pub fn key_of(full_path: &str) -> Option<Key> {
    full_path.strip_prefix(KEY_PREFIX).filter(|k| !k.is_empty()).map(Key::from)
}

/// The primary key of `key`'s item.
pub fn primary_key(full_path: String) -> Attrs {
    HashMap::from([
        (HASH_KEY.to_string(), AttributeValue::S(HASH_VALUE.to_string())),
        (FULL_PATH.to_string(), AttributeValue::S(full_path)),
    ])
}

/// Unix seconds of `t`, rounded up (an expiry is never moved earlier).
pub fn expiry_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs).unwrap_or(i64::MAX)
        }
        Err(_) => 0,
    }
}

/// Whole unix seconds of `now`, the `:now` of every expiry condition.
pub fn now_secs(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// A number attribute.
pub fn num(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// The attributes of `item` written at `now` with `revision`.
pub fn encode(item: &Item, full_path: String, revision: &str, now: SystemTime) -> Attrs {
    let mut m = primary_key(full_path);
    m.insert(VALUE.to_string(), AttributeValue::B(Blob::new(item.value.clone())));
    m.insert(TIMESTAMP.to_string(), num(now_secs(now)));
    m.insert(REVISION.to_string(), AttributeValue::S(revision.to_string()));
    if let Some(t) = item.expires {
        m.insert(EXPIRES.to_string(), num(expiry_secs(t)));
    }
    m
}

/// Checks an item against DynamoDB's 400 KB item limit before sending it.
pub fn check_size(item: &Item) -> Result<()> {
    let size = item.size() + ITEM_OVERHEAD_BYTES;
    if size > MAX_ITEM_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "item {:?} is {} bytes (key {} + value {}); DynamoDB items are at most {MAX_ITEM_BYTES} bytes including {ITEM_OVERHEAD_BYTES} bytes of attributes",
                item.key,
                item.size(),
                item.key.len(),
                item.value.len()
            ),
        ));
    }
    Ok(())
}

/// The unix seconds in a number attribute.
fn parse_num(av: &AttributeValue, what: &str) -> Result<i64> {
    let text = av.as_n().map_err(|_| corrupt(format!("attribute {what} is not a number")))?;
    // Upstream writes integers; accept a fraction written by another tool.
    text.parse::<i64>()
        .or_else(|_| text.parse::<f64>().map(|f| f.ceil() as i64))
        .map_err(|_| corrupt(format!("attribute {what} holds {text:?}, not a number")))
}

fn corrupt(msg: String) -> Error {
    Error::new(ErrorKind::Internal, msg)
}

/// An item read from the table; None for an item outside our layout (no
/// `teleport` prefix).
pub fn decode(m: &Attrs) -> Result<Option<Item>> {
    let fp = m
        .get(FULL_PATH)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt("item without a string FullPath".to_string()))?;
    let Some(key) = key_of(fp) else { return Ok(None) };
    let value = match m.get(VALUE) {
        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
        // Written by other tools as a string: take its bytes.
        Some(AttributeValue::S(s)) => s.as_bytes().to_vec(),
        None | Some(AttributeValue::Null(_)) => Vec::new(),
        Some(_) => return Err(corrupt(format!("item {key:?}: attribute Value is neither binary nor string"))),
    };
    let expires = match m.get(EXPIRES) {
        Some(av) => Some(parse_num(av, EXPIRES).map_err(|e| e.context(format!("item {key:?}")))?),
        None => None,
    };
    let revision = match m.get(REVISION).and_then(|v| v.as_s().ok()) {
        Some(r) if !r.is_empty() => r.clone(),
        _ => BLANK_REVISION.to_string(),
    };
    Ok(Some(Item {
        key,
        value,
        expires: expires.map(|s| UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        revision,
    }))
}

/// The `Expires` of a stored item, if any.
pub fn stored_expiry(m: &Attrs) -> Option<i64> {
    m.get(EXPIRES).and_then(|v| parse_num(v, EXPIRES).ok())
}

/// An expression with the names and values it uses (DynamoDB refuses
/// unused ones, and `Value` and `Timestamp` are reserved words, so every
/// attribute goes through a `#name`).
#[derive(Debug, Default, Clone)]
pub struct Expr {
    /// The expression text.
    pub text: String,
    /// `#name` -> attribute.
    pub names: HashMap<String, String>,
    /// `:value` -> value.
    pub values: Attrs,
}

impl Expr {
    /// An expression built from `text` with the given placeholders.
    pub fn new(text: impl Into<String>) -> Expr {
        Expr { text: text.into(), ..Expr::default() }
    }

    /// Declares `#alias` for `attr`.
    pub fn name(mut self, alias: &str, attr: &str) -> Expr {
        self.names.insert(alias.to_string(), attr.to_string());
        self
    }

    /// Declares `:alias`.
    pub fn value(mut self, alias: &str, v: AttributeValue) -> Expr {
        self.values.insert(alias.to_string(), v);
        self
    }

    /// The names, None when empty (the API refuses an empty map).
    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The values, None when empty.
    pub fn values(&self) -> Option<Attrs> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The item exists and has not expired at `now`.
pub fn live(now: i64) -> Expr {
    Expr::new("attribute_exists(#k) AND (attribute_not_exists(#e) OR #e > :now)")
        .name("#k", FULL_PATH)
        .name("#e", EXPIRES)
        .value(":now", num(now))
}

/// The item is absent or expired at `now`.
pub fn absent(now: i64) -> Expr {
    Expr::new("attribute_not_exists(#k) OR #e <= :now")
        .name("#k", FULL_PATH)
        .name("#e", EXPIRES)
        .value(":now", num(now))
}

/// The item is live and has `revision` (`BLANK_REVISION`: no revision).
pub fn has_revision(revision: &str, now: i64) -> Expr {
    if revision == BLANK_REVISION {
        Expr::new("attribute_exists(#k) AND attribute_not_exists(#r) AND (attribute_not_exists(#e) OR #e > :now)")
            .name("#k", FULL_PATH)
            .name("#r", REVISION)
            .name("#e", EXPIRES)
            .value(":now", num(now))
    } else {
        Expr::new("#r = :rev AND (attribute_not_exists(#e) OR #e > :now)")
            .name("#r", REVISION)
            .name("#e", EXPIRES)
            .value(":rev", AttributeValue::S(revision.to_string()))
            .value(":now", num(now))
    }
}

/// The item is live and holds `value`.
pub fn has_value(value: &[u8], now: i64) -> Expr {
    Expr::new("#v = :prev AND (attribute_not_exists(#e) OR #e > :now)")
        .name("#v", VALUE)
        .name("#e", EXPIRES)
        .value(":prev", AttributeValue::B(Blob::new(value.to_vec())))
        .value(":now", num(now))
}

/// The item has expired at `now` (the purge's guard: a renewed or deleted
/// item is left alone).
pub fn expired(now: i64) -> Expr {
    Expr::new("#e <= :now").name("#e", EXPIRES).value(":now", num(now))
}

/// The filter that drops expired items from a query.
pub fn live_filter(now: i64) -> Expr {
    Expr::new("attribute_not_exists(#e) OR #e > :now").name("#e", EXPIRES).value(":now", num(now))
}

/// The `FullPath BETWEEN :lo AND :hi` bounds for a key range: strings that
/// enclose it (exactly, when the keys are UTF-8). Keys that are not UTF-8
/// (say, a `range_end` that incremented a byte into a continuation byte) get
/// the nearest enclosing strings, and the caller filters the exact bounds.
/// None when the range is empty.
pub fn query_bounds(start: Bound<&Key>, end: Bound<&Key>) -> Option<(String, String)> {
    let lo = match start {
        Bound::Included(k) | Bound::Excluded(k) => format!("{KEY_PREFIX}{}", utf8_floor(k.as_bytes())),
        Bound::Unbounded => KEY_PREFIX.to_string(),
    };
    let hi = match end {
        Bound::Included(k) | Bound::Excluded(k) => match std::str::from_utf8(k.as_bytes()) {
            Ok(s) => format!("{KEY_PREFIX}{s}"),
            Err(e) => {
                let valid = String::from_utf8_lossy(&k.as_bytes()[..e.valid_up_to()]).into_owned();
                string_range_end(&format!("{KEY_PREFIX}{valid}"))?
            }
        },
        Bound::Unbounded => string_range_end(KEY_PREFIX)?,
    };
    (lo <= hi).then_some((lo, hi))
}

/// The longest UTF-8 prefix of `b`: a string that sorts at or below it.
fn utf8_floor(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(e) => String::from_utf8_lossy(&b[..e.valid_up_to()]).into_owned(),
    }
}

/// The smallest string above every string that starts with `s`: its last
/// char that can be incremented is, and the rest dropped.
fn string_range_end(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        while next <= 0x10FFFF {
            if let Some(n) = char::from_u32(next) {
                chars.push(n);
                return Some(chars.into_iter().collect());
            }
            next += 1;
        }
    }
    None
}

/// True if `key` lies within the bounds.
pub fn in_bounds(key: &Key, start: Bound<&Key>, end: Bound<&Key>) -> bool {
    let above = match start {
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
        Bound::Unbounded => true,
    };
    above && below
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up() {
        let t = UNIX_EPOCH + Duration::from_millis(10_001);
        assert_eq!(expiry_secs(t), 11);
        assert_eq!(expiry_secs(UNIX_EPOCH + Duration::from_secs(10)), 10);
        assert_eq!(now_secs(t), 10);
    }

    #[test]
    fn round_trip_and_legacy() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        let item = Item::new("/a/b", b"v".to_vec()).expires_at(UNIX_EPOCH + Duration::from_secs(200));
        let m = encode(&item, full_path(&item.key).unwrap(), "rev-1", now);
        assert_eq!(m[FULL_PATH].as_s().unwrap(), "teleport/a/b");
        let back = decode(&m).unwrap().unwrap();
        assert_eq!(back, item.clone().with_revision("rev-1"));
        let mut legacy = m.clone();
        legacy.remove(REVISION);
        assert_eq!(decode(&legacy).unwrap().unwrap().revision, BLANK_REVISION);
    }

    #[test]
    fn keys_must_be_utf8_and_short() {
        assert_eq!(full_path(&Key::from(vec![b'/', 0xff])).unwrap_err().kind(), ErrorKind::BadParameter);
        let long = Key::from(format!("/{}", "x".repeat(1016)));
        assert_eq!(full_path(&long).unwrap_err().kind(), ErrorKind::LimitExceeded);
        assert!(full_path(&Key::from(format!("/{}", "x".repeat(1015)))).is_ok());
    }

    #[test]
    fn bounds_enclose_non_utf8_ends() {
        let start = Key::from("/a");
        let end = Key::from(vec![b'/', b'a', 0x80]); // range_end of "/a\x7f"
        let (lo, hi) = query_bounds(Bound::Included(&start), Bound::Included(&end)).unwrap();
        assert_eq!(lo, "teleport/a");
        assert_eq!(hi, "teleport/b");
        assert!(query_bounds(Bound::Included(&Key::from("/b")), Bound::Included(&Key::from("/a"))).is_none());
        let (_, hi) = query_bounds(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(hi, "teleporu");
    }
}
