//! Watchers and expiry, both fed by the table's DynamoDB Stream (upstream
//! `shards.go`, plus a purge upstream leaves to DynamoDB's lazy TTL).
//!
//! The reader starts with a handle's first watcher and runs until the handle
//! closes:
//! - it lists the stream's shards and positions every OPEN shard at LATEST;
//!   once all are positioned, watchers get Init. Shards that appear later
//!   (DynamoDB rolls shards over every few hours, or splits them) are read
//!   from TRIM_HORIZON, each only after its parent shard has been read to
//!   its end, so the events of one key stay in order;
//! - every `poll_stream_period` it reads each shard (`GetRecords`, again at
//!   once while a shard returns full pages) and maps INSERT/MODIFY to Put
//!   (from the record's NEW_IMAGE) and REMOVE to Delete;
//! - if the stream breaks (iterator trimmed, stream disabled, a failure the
//!   SDK's retries did not cure), every watcher is closed so its owner
//!   re-reads and watches again, and the reader starts over after
//!   `retry_period`.
//!
//! Expiry. DynamoDB deletes expired items lazily (within days) and moto not
//! at all, but watchers must see a Delete when an item expires. Every Put
//! record tells the reader an item's `Expires`; a seed query at start adds the
//! items written before. The purge loop deletes items from this index once
//! the handle's clock passes their expiry, with the condition
//! `Expires <= :now` (an item renewed or deleted meanwhile is left alone);
//! the REMOVE record then reaches every watcher on every handle. Two handles
//! purging the same item is harmless: one delete wins, the other's
//! condition fails.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, Record, ShardIteratorType, StreamViewType,
};
use futures::StreamExt;

use super::Inner;
use super::error::{DynamoError, classify};
use super::limits::MAX_GET_RECORDS;
use super::record::{self, Attrs, EXPIRES, FULL_PATH, HASH_KEY, HASH_VALUE};
use crate::backend::{Error, Event, Key, Result};

/// How often the shard list is re-read when no shard has closed.
pub const SHARD_REFRESH_PERIOD: Duration = Duration::from_secs(10);
/// Expired items deleted at once by the purge.
pub const PURGE_CONCURRENCY: usize = 8;

/// Items with an expiry, by expiry (unix seconds).
#[derive(Debug, Default)]
pub struct ExpiryIndex {
    by_key: HashMap<Key, i64>,
    by_time: BTreeSet<(i64, Key)>,
}

impl ExpiryIndex {
    /// Records that `key` expires at `secs` (None: never).
    pub fn set(&mut self, key: Key, secs: Option<i64>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key.clone()));
        }
        if let Some(s) = secs {
            self.by_time.insert((s, key.clone()));
            self.by_key.insert(key, s);
        }
    }

    /// Removes and returns the keys expired at `now` (unix seconds).
    pub fn pop_due(&mut self, now: i64) -> Vec<(Key, i64)> {
        let mut due = Vec::new();
        while let Some((t, _)) = self.by_time.first() {
            if *t > now {
                break;
            }
            if let Some((t, k)) = self.by_time.pop_first() {
                self.by_key.remove(&k);
                due.push((k, t));
            }
        }
        due
    }

    /// Number of items tracked.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when nothing is tracked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Finds the table's stream and checks it carries item images. Called by
/// the first watcher, so that a table without a stream is a clear error
/// instead of a watcher that never gets Init.
pub async fn check_stream(inner: &Inner) -> Result<String> {
    let arn = latest_stream_arn(inner).await?;
    let out = inner
        .streams
        .describe_stream()
        .stream_arn(&arn)
        .limit(1)
        .send()
        .await
        .map_err(|e| Error::from(classify(e, &inner.store, "describe stream")))?;
    let view = out.stream_description().and_then(|d| d.stream_view_type());
    match view {
        Some(StreamViewType::NewImage | StreamViewType::NewAndOldImages) | None => Ok(arn),
        Some(other) => Err(DynamoError::NoStream {
            store: inner.store.clone(),
            what: format!("the table's stream has view type {}, which carries no new item images", other.as_str()),
        }
        .into()),
    }
}

async fn latest_stream_arn(inner: &Inner) -> Result<String> {
    let out = inner
        .client
        .describe_table()
        .table_name(&inner.table)
        .send()
        .await
        .map_err(|e| Error::from(classify(e, &inner.store, "describe table")))?;
    let table = out.table();
    let enabled = table.and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled());
    match table.and_then(|t| t.latest_stream_arn()) {
        Some(arn) if enabled => Ok(arn.to_string()),
        _ => {
            Err(DynamoError::NoStream { store: inner.store.clone(), what: "the table has no enabled stream".into() }
                .into())
        }
    }
}

/// Starts the reader and the purge loop for `inner`; both end when it closes.
pub fn start(inner: Arc<Inner>) {
    tokio::spawn(run(inner.clone()));
    tokio::spawn(purge_loop(inner));
}

async fn run(inner: Arc<Inner>) {
    loop {
        if inner.closed.is_cancelled() {
            return;
        }
        let err = match session(&inner).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if inner.closed.is_cancelled() {
            return;
        }
        tracing::warn!(store = %inner.store, error = %err, "stream reader stopped; closing watchers so they re-sync, restarting");
        inner.reset_watchers();
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(inner.retry_period) => {}
        }
    }
}

struct ShardReader {
    id: String,
    iterator: Option<String>,
    last_seq: Option<String>,
}

/// One positioned pass over the stream; returns Ok only when closed.
async fn session(inner: &Arc<Inner>) -> Result<()> {
    let arn = latest_stream_arn(inner).await?;
    let shards = list_shards(inner, &arn).await?;
    let mut known: HashSet<String> = HashSet::new();
    let mut readers: Vec<ShardReader> = Vec::new();
    for s in &shards {
        known.insert(s.id.clone());
        if s.open {
            let it = shard_iterator(inner, &arn, &s.id, ShardIteratorType::Latest, None).await?;
            readers.push(ShardReader { id: s.id.clone(), iterator: Some(it), last_seq: None });
        }
    }
    inner.fanout().set_initialized();
    tracing::debug!(store = %inner.store, shards = readers.len(), "stream reader positioned");
    tokio::spawn(seed_index(inner.clone()));

    let mut last_refresh = Instant::now();
    let mut drain = false;
    loop {
        if !drain {
            tokio::select! {
                _ = inner.closed.cancelled() => return Ok(()),
                _ = tokio::time::sleep(inner.poll_period) => {}
            }
        } else if inner.closed.is_cancelled() {
            return Ok(());
        }
        drain = false;
        let mut refresh = last_refresh.elapsed() >= SHARD_REFRESH_PERIOD;
        for r in readers.iter_mut() {
            let Some(it) = r.iterator.clone() else { continue };
            let out = match inner.streams.get_records().shard_iterator(it).limit(MAX_GET_RECORDS).send().await {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_expired_iterator_exception()) => {
                    // Iterators expire after 15 minutes unused; continue
                    // after the last record seen, or start over.
                    let Some(seq) = r.last_seq.clone() else {
                        return Err(Error::from(classify(e, &inner.store, "read stream records")));
                    };
                    r.iterator = Some(
                        shard_iterator(inner, &arn, &r.id, ShardIteratorType::AfterSequenceNumber, Some(seq)).await?,
                    );
                    continue;
                }
                Err(e) => return Err(Error::from(classify(e, &inner.store, "read stream records"))),
            };
            let records = out.records();
            if records.len() >= MAX_GET_RECORDS as usize {
                drain = true;
            }
            if let Some(seq) = records.last().and_then(|rec| rec.dynamodb()).and_then(|d| d.sequence_number()) {
                r.last_seq = Some(seq.to_string());
            }
            let events: Vec<Event> = records.iter().filter_map(|rec| to_event(inner, rec)).collect();
            if !events.is_empty() {
                inner.fanout().emit(events);
            }
            r.iterator = out.next_shard_iterator().map(str::to_string);
            if r.iterator.is_none() {
                tracing::debug!(store = %inner.store, shard = %r.id, "stream shard closed");
                refresh = true;
            }
        }
        readers.retain(|r| r.iterator.is_some());
        if refresh {
            last_refresh = Instant::now();
            let reading: HashSet<&str> = readers.iter().map(|r| r.id.as_str()).collect();
            let mut new_readers = Vec::new();
            for s in list_shards(inner, &arn).await? {
                if known.contains(&s.id) {
                    continue;
                }
                if s.parent.as_deref().is_some_and(|p| reading.contains(p)) {
                    continue; // its parent is still being read: later
                }
                let it = shard_iterator(inner, &arn, &s.id, ShardIteratorType::TrimHorizon, None).await?;
                known.insert(s.id.clone());
                new_readers.push(ShardReader { id: s.id, iterator: Some(it), last_seq: None });
            }
            readers.extend(new_readers);
        }
    }
}

struct ShardInfo {
    id: String,
    parent: Option<String>,
    open: bool,
}

async fn list_shards(inner: &Inner, arn: &str) -> Result<Vec<ShardInfo>> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let resp = inner
            .streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| Error::from(classify(e, &inner.store, "describe stream")))?;
        let Some(desc) = resp.stream_description() else { break };
        for s in desc.shards() {
            let Some(id) = s.shard_id() else { continue };
            let open = s.sequence_number_range().is_none_or(|r| r.ending_sequence_number().is_none());
            out.push(ShardInfo { id: id.to_string(), parent: s.parent_shard_id().map(str::to_string), open });
        }
        match desc.last_evaluated_shard_id() {
            Some(last) if start.as_deref() != Some(last) => start = Some(last.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

async fn shard_iterator(
    inner: &Inner,
    arn: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<String>,
) -> Result<String> {
    let out = inner
        .streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_sequence_number(seq)
        .send()
        .await
        .map_err(|e| Error::from(classify(e, &inner.store, "get stream shard iterator")))?;
    out.shard_iterator().map(str::to_string).ok_or_else(|| {
        Error::from(DynamoError::NoStream {
            store: inner.store.clone(),
            what: format!("shard {shard} gave no iterator"),
        })
    })
}

/// A stream attribute as a table attribute (the types our items use).
fn table_value(v: &StreamValue) -> Option<AttributeValue> {
    match v {
        StreamValue::S(s) => Some(AttributeValue::S(s.clone())),
        StreamValue::N(n) => Some(AttributeValue::N(n.clone())),
        StreamValue::B(b) => Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.as_ref().to_vec()))),
        StreamValue::Null(n) => Some(AttributeValue::Null(*n)),
        _ => None,
    }
}

fn table_attrs(m: &HashMap<String, StreamValue>) -> Attrs {
    m.iter().filter_map(|(k, v)| table_value(v).map(|v| (k.clone(), v))).collect()
}

/// The event of one stream record, updating the expiry index on the way.
fn to_event(inner: &Inner, rec: &Record) -> Option<Event> {
    let data = rec.dynamodb()?;
    match rec.event_name()? {
        OperationType::Insert | OperationType::Modify => {
            let attrs = table_attrs(data.new_image()?);
            if attrs.get(HASH_KEY).and_then(|v| v.as_s().ok()).map(String::as_str) != Some(HASH_VALUE) {
                return None;
            }
            match record::decode(&attrs) {
                Ok(Some(item)) => {
                    inner.index().set(item.key.clone(), record::stored_expiry(&attrs));
                    Some(Event::put(item))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(store = %inner.store, error = %e, "skipping an unreadable stream record");
                    None
                }
            }
        }
        OperationType::Remove => {
            let keys = table_attrs(data.keys()?);
            let key = record::key_of(keys.get(FULL_PATH)?.as_s().ok()?)?;
            inner.index().set(key.clone(), None);
            Some(Event::delete(key))
        }
        _ => None,
    }
}

/// Adds every item that has an expiry to the index (items written before
/// the reader started).
async fn seed_index(inner: Arc<Inner>) {
    let mut start: Option<Attrs> = None;
    loop {
        let q = inner
            .client
            .query()
            .table_name(&inner.table)
            .key_condition_expression("#h = :h")
            .filter_expression("attribute_exists(#e)")
            .projection_expression("#k, #e")
            .expression_attribute_names("#h", HASH_KEY)
            .expression_attribute_names("#k", FULL_PATH)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_values(":h", AttributeValue::S(HASH_VALUE.to_string()))
            .set_exclusive_start_key(start.take());
        let out = tokio::select! {
            _ = inner.closed.cancelled() => return,
            out = q.send() => out,
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let e = classify(e, &inner.store, "read expiring items");
                tracing::warn!(store = %inner.store, error = %e, "could not read the items that expire; expiry deletes of older items wait for DynamoDB's TTL");
                return;
            }
        };
        {
            let mut index = inner.index();
            for m in out.items() {
                let key = m.get(FULL_PATH).and_then(|v| v.as_s().ok()).and_then(|s| record::key_of(s));
                if let (Some(key), Some(secs)) = (key, record::stored_expiry(m)) {
                    index.set(key, Some(secs));
                }
            }
        }
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => {
                tracing::debug!(store = %inner.store, tracked = inner.index().len(), "expiry index seeded");
                return;
            }
        }
    }
}

async fn purge_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(inner.poll_period) => {}
        }
        let now = record::now_secs(inner.clock.now());
        let due = inner.index().pop_due(now);
        if due.is_empty() {
            continue;
        }
        futures::stream::iter(due)
            .for_each_concurrent(PURGE_CONCURRENCY, |(key, secs)| {
                let inner = inner.clone();
                async move { purge_one(&inner, key, secs, now).await }
            })
            .await;
    }
}

async fn purge_one(inner: &Inner, key: Key, secs: i64, now: i64) {
    let Ok(fp) = record::full_path(&key) else { return };
    let cond = record::expired(now);
    let res = inner
        .client
        .delete_item()
        .table_name(&inner.table)
        .set_key(Some(record::primary_key(fp.clone())))
        .condition_expression(&cond.text)
        .set_expression_attribute_names(cond.names())
        .set_expression_attribute_values(cond.values())
        .send()
        .await;
    match res.map_err(|e| classify(e, &inner.store, "delete an expired item")) {
        Ok(_) => tracing::debug!(store = %inner.store, key = %key, "deleted an expired item"),
        Err(DynamoError::ConditionFailed { .. }) => {
            // Renewed or already gone: track its current expiry, if any.
            let got = inner
                .client
                .get_item()
                .table_name(&inner.table)
                .set_key(Some(record::primary_key(fp)))
                .consistent_read(true)
                .send()
                .await;
            if let Ok(out) = got
                && let Some(m) = out.item()
                && let Some(e) = record::stored_expiry(m)
            {
                inner.index().set(key, Some(e));
            }
        }
        Err(e) => {
            tracing::warn!(store = %inner.store, key = %key, error = %e, "could not delete an expired item; retrying");
            inner.index().set(key, Some(secs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_pops_due_keys_in_order() {
        let mut ix = ExpiryIndex::default();
        ix.set(Key::from("/b"), Some(20));
        ix.set(Key::from("/a"), Some(10));
        ix.set(Key::from("/c"), Some(30));
        ix.set(Key::from("/c"), None);
        ix.set(Key::from("/b"), Some(15));
        assert_eq!(ix.pop_due(9), vec![]);
        assert_eq!(ix.pop_due(15), vec![(Key::from("/a"), 10), (Key::from("/b"), 15)]);
        assert!(ix.is_empty());
    }
}
