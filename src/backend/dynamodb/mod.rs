//! The DynamoDB store (`type: dynamodb`), schema-compatible with upstream's
//! `lib/backend/dynamo`, so either implementation reads the other's table.
//!
//! What it writes, in the one table `table_name` (see [`record`]):
//! - one item per key, all in ONE partition: `HashKey = "teleport"`,
//!   `FullPath = "teleport" + key` (sort key), `Value` (B), `Expires` (N,
//!   unix seconds, the table's TTL attribute; absent = never), `Timestamp`
//!   (N), `Revision` (S, a UUID; items without one read as BLANK_REVISION);
//! - nothing else: no index, no side table. Watchers read the table's
//!   DynamoDB Stream (NEW_IMAGE), see [`stream`].
//!
//! How each operation maps (every read is strongly consistent):
//! - `get`: GetItem; `scan`/ranges: Query `HashKey = :h AND FullPath
//!   BETWEEN :lo AND :hi`, expired items filtered out (and never counted
//!   toward a limit), paging past 1 MB responses;
//! - `create`/`update`/`put`/`compare_and_swap`/`conditional_update`:
//!   PutItem guarded by a condition expression (absent-or-expired, live,
//!   none, value match, revision match); `keep_alive`: UpdateItem of
//!   `Expires` (and a new `Revision`) on a live item; `delete` and
//!   `conditional_delete`: DeleteItem guarded the same way;
//! - `delete_range`, `put_batch`, `delete_batch`: BatchWriteItem, 25 items
//!   per request, several requests in flight, unprocessed items retried with
//!   backoff;
//! - `atomic_write`: one TransactWriteItems (ConditionCheck for Nop), retried
//!   on transaction conflicts; one shared revision.
//!
//! Opening checks the table (a foreign key schema is refused) and, only with
//! `OpenOptions::create`, creates it and turns on TTL, Streams and PITR
//! ([`table`]). Expiry decisions use the handle's clock, never the system
//! time. Limits live in [`limits`]; errors are classified in [`error`].

mod error;
pub mod limits;
pub mod record;
mod stream;
mod table;

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use self::error::{DynamoError, classify, sdk};
use self::record::{Attrs, Expr, FULL_PATH, HASH_KEY, HASH_VALUE};
use self::stream::ExpiryIndex;
use super::registry::OpenOptions;
use super::{
    Action, Backend, Clock, Condition, ConditionalAction, Error, ErrorKind, Fanout, Item, Key, Lease, Limits, Result,
    Watch, Watcher, atomic, check_key, new_revision,
};
use crate::config::DynamoDbConfig;

/// Default `poll_stream_period`, as upstream.
pub const DEFAULT_POLL_STREAM_PERIOD: Duration = Duration::from_secs(1);
/// Default `retry_period` (upstream's `HighResPollingPeriod`).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(10);
pub use crate::aws::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, EMULATOR_REGION, INITIAL_BACKOFF, MAX_ATTEMPTS, MAX_BACKOFF};
/// BatchWriteItem requests in flight at once per batch call.
pub const BATCH_CONCURRENCY: usize = 8;
/// Rounds of resending a batch's unprocessed items before giving up.
pub const BATCH_ATTEMPTS: u32 = 12;
/// TransactWriteItems attempts when transactions conflict (upstream: 32).
pub const MAX_TXN_ATTEMPTS: u32 = 32;

/// State shared by a handle and its background tasks.
pub struct Inner {
    client: Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    store: String,
    clock: Arc<dyn Clock>,
    poll_period: Duration,
    retry_period: Duration,
    closed: CancellationToken,
    fanout: Mutex<Fanout>,
    reader: tokio::sync::Mutex<bool>,
    index: Mutex<ExpiryIndex>,
}

impl Inner {
    fn fanout(&self) -> MutexGuard<'_, Fanout> {
        self.fanout.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(&self) -> MutexGuard<'_, ExpiryIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes every watcher and makes new ones wait for the next Init.
    fn reset_watchers(&self) {
        let mut f = self.fanout();
        let old = std::mem::take(&mut *f);
        old.close_watchers();
        if self.closed.is_cancelled() {
            f.close();
        }
    }
}

/// A handle on a DynamoDB table.
pub struct DynamoDbBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DynamoDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbBackend").field("store", &self.inner.store).finish_non_exhaustive()
    }
}

impl DynamoDbBackend {
    /// Opens the table `cfg.table_name`. With `opts.create` false, a missing
    /// table is a NotFound error and nothing is created or changed.
    pub async fn open(cfg: &DynamoDbConfig, opts: OpenOptions) -> Result<DynamoDbBackend> {
        let (client, streams, store) = clients(cfg).await?;
        tracing::debug!(store = %store, create = opts.create, "opening");
        table::prepare(&client, cfg, &store, opts.create).await?;
        let inner = Arc::new(Inner {
            client,
            streams,
            table: cfg.table_name.clone(),
            store,
            clock: opts.clock,
            poll_period: cfg.poll_stream_period.unwrap_or(DEFAULT_POLL_STREAM_PERIOD).max(Duration::from_millis(10)),
            retry_period: cfg.retry_period.unwrap_or(DEFAULT_RETRY_PERIOD).max(Duration::from_millis(10)),
            closed: CancellationToken::new(),
            fanout: Mutex::new(Fanout::default()),
            reader: tokio::sync::Mutex::new(false),
            index: Mutex::new(ExpiryIndex::default()),
        });
        Ok(DynamoDbBackend { inner })
    }

    /// The raw SDK client (for tests and tools that inspect the table).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::closed(&self.inner.store));
        }
        Ok(())
    }

    fn now(&self) -> (SystemTime, i64) {
        let now = self.inner.clock.now();
        (now, record::now_secs(now))
    }

    async fn put_item(
        &self,
        attrs: Attrs,
        cond: Option<Expr>,
        op: &'static str,
    ) -> std::result::Result<(), DynamoError> {
        let mut req = self.inner.client.put_item().table_name(&self.inner.table).set_item(Some(attrs));
        if let Some(c) = cond {
            req = req
                .condition_expression(&c.text)
                .set_expression_attribute_names(c.names())
                .set_expression_attribute_values(c.values());
        }
        req.send().await.map(|_| ()).map_err(|e| classify(e, &self.inner.store, op))
    }

    async fn delete_item(&self, key: &Key, cond: Expr, op: &'static str) -> std::result::Result<(), DynamoError> {
        let fp = record::full_path(key).map_err(|_| DynamoError::ConditionFailed { op })?;
        self.inner
            .client
            .delete_item()
            .table_name(&self.inner.table)
            .set_key(Some(record::primary_key(fp)))
            .condition_expression(&cond.text)
            .set_expression_attribute_names(cond.names())
            .set_expression_attribute_values(cond.values())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &self.inner.store, op))
    }

    /// Writes `item` with a new revision under `cond`; a failed condition is
    /// turned into the error `on_fail` makes.
    async fn write(
        &self,
        item: &Item,
        cond: impl FnOnce(i64) -> Option<Expr>,
        op: &'static str,
        on_fail: impl FnOnce() -> Error,
    ) -> Result<Lease> {
        self.check_open()?;
        let fp = record::full_path(&item.key)?;
        record::check_size(item)?;
        let revision = new_revision();
        let (now, secs) = self.now();
        let attrs = record::encode(item, fp, &revision, now);
        match self.put_item(attrs, cond(secs), op).await {
            Ok(()) => Ok(Lease::new(&item.key, &revision)),
            Err(DynamoError::ConditionFailed { .. }) => Err(on_fail()),
            Err(e) => Err(e.into()),
        }
    }

    /// One Query page: items between `lo` and `hi`, after `start`.
    #[allow(clippy::too_many_arguments)]
    async fn query_page(
        &self,
        lo: &str,
        hi: &str,
        descending: bool,
        limit: Option<i32>,
        start: Option<Attrs>,
        live_at: Option<i64>,
        keys_only: bool,
    ) -> Result<(Vec<Attrs>, Option<Attrs>)> {
        let mut req = self
            .inner
            .client
            .query()
            .table_name(&self.inner.table)
            .key_condition_expression("#h = :h AND #k BETWEEN :lo AND :hi")
            .expression_attribute_names("#h", HASH_KEY)
            .expression_attribute_names("#k", FULL_PATH)
            .expression_attribute_values(":h", AttributeValue::S(HASH_VALUE.to_string()))
            .expression_attribute_values(":lo", AttributeValue::S(lo.to_string()))
            .expression_attribute_values(":hi", AttributeValue::S(hi.to_string()))
            .consistent_read(true)
            .scan_index_forward(!descending)
            .set_limit(limit)
            .set_exclusive_start_key(start);
        if let Some(now) = live_at {
            let f = record::live_filter(now);
            req = req.filter_expression(f.text);
            for (k, v) in f.names {
                req = req.expression_attribute_names(k, v);
            }
            for (k, v) in f.values {
                req = req.expression_attribute_values(k, v);
            }
        }
        if keys_only {
            req = req.projection_expression("#k");
        }
        let out = req.send().await.map_err(|e| sdk(e, &self.inner.store, "query"))?;
        Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
    }

    /// Sends write requests in BatchWriteItem calls of 25, several at once,
    /// resending unprocessed items with backoff.
    async fn batch_write(&self, requests: Vec<WriteRequest>, op: &'static str) -> Result<()> {
        let chunks: Vec<Vec<WriteRequest>> =
            requests.chunks(limits::MAX_BATCH_WRITE_ITEMS).map(<[WriteRequest]>::to_vec).collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.batch_write_one(chunk, op))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn batch_write_one(&self, mut pending: Vec<WriteRequest>, op: &'static str) -> Result<()> {
        let mut backoff = Duration::from_millis(50);
        for attempt in 0..BATCH_ATTEMPTS {
            self.check_open()?;
            let out = self
                .inner
                .client
                .batch_write_item()
                .request_items(&self.inner.table, pending)
                .send()
                .await
                .map_err(|e| sdk(e, &self.inner.store, op))?;
            pending = out.unprocessed_items().and_then(|m| m.get(&self.inner.table)).cloned().unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            tracing::debug!(store = %self.inner.store, attempt, unprocessed = pending.len(), "resending unprocessed batch items");
            tokio::time::sleep(backoff + jitter(backoff)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Err(DynamoError::GaveUp {
            store: self.inner.store.clone(),
            op,
            what: format!("{} items stayed unprocessed after {BATCH_ATTEMPTS} attempts (throttled)", pending.len()),
        }
        .into())
    }
}

/// A random duration up to `max` (spreads retries of concurrent callers).
fn jitter(max: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() & 0xffff_ffff) as f64 / f64::from(u32::MAX);
    max.mul_f64(r)
}

/// The SDK clients for `cfg`, and the store's description for messages.
async fn clients(cfg: &DynamoDbConfig) -> Result<(Client, aws_sdk_dynamodbstreams::Client, String)> {
    let settings = crate::aws::AwsSettings {
        region: cfg.region.as_deref(),
        endpoint: cfg.endpoint.as_deref(),
        access_key: cfg.access_key.as_deref(),
        secret_key: cfg.secret_key.as_deref(),
        use_fips: false,
    };
    let aws = crate::aws::load(&settings).await.map_err(|e| {
        Error::bad_parameter(format!(
            "dynamodb table {}: {e}: set region in the storage block, or AWS_REGION",
            cfg.table_name
        ))
    })?;
    let region = aws.region.clone();
    let store = format!(
        "dynamodb table {} (region {region}, endpoint {})",
        cfg.table_name,
        cfg.endpoint.as_deref().unwrap_or("AWS default")
    );
    let streams = aws_sdk_dynamodbstreams::config::Builder::from(&aws.sdk).region(Region::new(region)).build();
    Ok((aws.dynamodb(), aws_sdk_dynamodbstreams::Client::from_conf(streams), store))
}

/// The condition expression of an atomic-write condition.
fn condition_expr(c: &Condition, now: i64) -> Option<Expr> {
    match c {
        Condition::Whatever => None,
        Condition::Exists => Some(record::live(now)),
        Condition::NotExists => Some(record::absent(now)),
        Condition::Revision(r) => Some(record::has_revision(r, now)),
    }
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::new(ErrorKind::Internal, "build a DynamoDB request").with_source(e)
}

#[async_trait]
impl Backend for DynamoDbBackend {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn describe(&self) -> String {
        self.inner.store.clone()
    }

    fn limits(&self) -> Limits {
        limits::limits()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        self.check_open()?;
        let Some((lo, hi)) = record::query_bounds(start, end) else { return Ok(Vec::new()) };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now, secs) = self.now();
        let mut out = Vec::new();
        let mut next: Option<Attrs> = None;
        loop {
            let want = limit.saturating_sub(out.len());
            // +2: the exclusive bounds may each cost one item.
            let page = i32::try_from(want.saturating_add(2)).unwrap_or(i32::MAX);
            let (items, last) = self.query_page(&lo, &hi, descending, Some(page), next, Some(secs), false).await?;
            for m in &items {
                if let Some(item) = record::decode(m)?
                    && record::in_bounds(&item.key, start, end)
                    && !item.is_expired(now)
                {
                    out.push(item);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            match last {
                Some(k) => next = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        self.check_open()?;
        let Ok(fp) = record::full_path(key) else { return Err(Error::not_found(key)) };
        let out = self
            .inner
            .client
            .get_item()
            .table_name(&self.inner.table)
            .set_key(Some(record::primary_key(fp)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk(e, &self.inner.store, "get item"))?;
        let (now, _) = self.now();
        match out.item().map(record::decode).transpose()?.flatten() {
            Some(item) if !item.is_expired(now) => Ok(item),
            _ => Err(Error::not_found(key)),
        }
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        let key = item.key.clone();
        self.write(&item, |now| Some(record::absent(now)), "create", || Error::already_exists(&key)).await
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        self.write(&item, |_| None, "put", || Error::new(ErrorKind::Internal, "unconditional put failed a condition"))
            .await
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        let key = item.key.clone();
        self.write(&item, |now| Some(record::live(now)), "update", || Error::not_found(&key)).await
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        let key = expected.key.clone();
        let value = expected.value;
        self.write(
            &replace_with,
            |now| Some(record::has_value(&value, now)),
            "compare and swap",
            || {
                Error::new(
                    ErrorKind::CompareFailed,
                    format!("current value does not match expected for {key:?} (or the key is not found)"),
                )
            },
        )
        .await
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        if item.key.is_empty() || item.revision.is_empty() {
            return Err(Error::incorrect_revision(&item.key));
        }
        let key = item.key.clone();
        let revision = item.revision.clone();
        self.write(
            &item,
            |now| Some(record::has_revision(&revision, now)),
            "conditional update",
            || Error::incorrect_revision(&key),
        )
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        self.check_open()?;
        let (_, secs) = self.now();
        match self.delete_item(key, record::live(secs), "delete").await {
            Ok(()) => Ok(()),
            Err(DynamoError::ConditionFailed { .. }) => Err(Error::not_found(key)),
            Err(e) => Err(e.into()),
        }
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        if key.is_empty() || revision.is_empty() {
            return Err(Error::incorrect_revision(key));
        }
        self.check_open()?;
        let (_, secs) = self.now();
        match self.delete_item(key, record::has_revision(revision, secs), "conditional delete").await {
            Ok(()) => Ok(()),
            Err(DynamoError::ConditionFailed { .. }) => Err(Error::incorrect_revision(key)),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        self.check_open()?;
        let (lower, upper) = (Bound::Included(start), super::end_bound(end));
        let Some((lo, hi)) = record::query_bounds(lower, upper) else { return Ok(()) };
        let mut next: Option<Attrs> = None;
        loop {
            let (items, last) = self.query_page(&lo, &hi, false, None, next, None, true).await?;
            let requests = items
                .iter()
                .filter_map(|m| {
                    let fp = m.get(FULL_PATH)?.as_s().ok()?;
                    let key = record::key_of(fp)?;
                    record::in_bounds(&key, lower, upper).then(|| fp.clone())
                })
                .map(|fp| {
                    DeleteRequest::builder()
                        .set_key(Some(record::primary_key(fp)))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build_err)
                })
                .collect::<Result<Vec<_>>>()?;
            self.batch_write(requests, "delete range").await?;
            match last {
                Some(k) => next = Some(k),
                None => return Ok(()),
            }
        }
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        self.check_open()?;
        let Ok(fp) = record::full_path(&lease.key) else { return Err(Error::not_found(&lease.key)) };
        let (now, secs) = self.now();
        let cond = record::live(secs);
        let res = self
            .inner
            .client
            .update_item()
            .table_name(&self.inner.table)
            .set_key(Some(record::primary_key(fp)))
            .update_expression("SET #e = :exp, #r = :rev, #t = :ts")
            .condition_expression(&cond.text)
            .set_expression_attribute_names(cond.names())
            .expression_attribute_names("#r", record::REVISION)
            .expression_attribute_names("#t", record::TIMESTAMP)
            .set_expression_attribute_values(cond.values())
            .expression_attribute_values(":exp", record::num(record::expiry_secs(expires)))
            .expression_attribute_values(":rev", AttributeValue::S(new_revision()))
            .expression_attribute_values(":ts", record::num(record::now_secs(now)))
            .send()
            .await;
        match res.map_err(|e| classify(e, &self.inner.store, "keep alive")) {
            Ok(_) => Ok(()),
            Err(DynamoError::ConditionFailed { .. }) => Err(Error::not_found(&lease.key)),
            Err(e) => Err(e.into()),
        }
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        self.check_open()?;
        let revision = new_revision();
        let (now, secs) = self.now();
        let mut total = 0usize;
        let mut items = Vec::with_capacity(actions.len());
        for a in &actions {
            let fp = record::full_path(&a.key)?;
            let cond = condition_expr(&a.condition, secs);
            let (text, names, values) = match &cond {
                Some(c) => (Some(c.text.clone()), c.names(), c.values()),
                None => (None, None, None),
            };
            let item = match &a.action {
                Action::Nop => TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.inner.table)
                            .set_key(Some(record::primary_key(fp)))
                            .set_condition_expression(text)
                            .set_expression_attribute_names(names)
                            .set_expression_attribute_values(values)
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
                Action::Put(item) => {
                    let item = Item { key: a.key.clone(), ..item.clone() };
                    record::check_size(&item)?;
                    total += item.size() + limits::ITEM_OVERHEAD_BYTES;
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.inner.table)
                                .set_item(Some(record::encode(&item, fp, &revision, now)))
                                .set_condition_expression(text)
                                .set_expression_attribute_names(names)
                                .set_expression_attribute_values(values)
                                .build()
                                .map_err(build_err)?,
                        )
                        .build()
                }
                Action::Delete => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.inner.table)
                            .set_key(Some(record::primary_key(fp)))
                            .set_condition_expression(text)
                            .set_expression_attribute_names(names)
                            .set_expression_attribute_values(values)
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            };
            items.push(item);
        }
        if total > limits::MAX_TRANSACT_BYTES {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "{}: atomic write of {total} bytes; DynamoDB transactions carry at most {} bytes",
                    self.inner.store,
                    limits::MAX_TRANSACT_BYTES
                ),
            ));
        }
        let mut backoff = Duration::from_millis(16);
        for attempt in 0..MAX_TXN_ATTEMPTS {
            self.check_open()?;
            let res = self.inner.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match res {
                Ok(_) => {
                    if attempt > 2 {
                        tracing::warn!(store = %self.inner.store, attempts = attempt + 1, "atomic write retried because of transaction conflicts");
                    }
                    return Ok(revision);
                }
                Err(e) => e,
            };
            let codes: Vec<String> = err
                .as_service_error()
                .and_then(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().iter().filter_map(|r| r.code().map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let conflict = codes.iter().any(|c| c == "TransactionConflict")
                || err.as_service_error().and_then(ProvideErrorMetadata::code) == Some("TransactionConflictException");
            if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                return Err(Error::condition_failed());
            }
            if !conflict {
                if !codes.is_empty() {
                    let mut codes: Vec<_> = codes.into_iter().filter(|c| c != "None").collect();
                    codes.sort();
                    codes.dedup();
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("{}: atomic write cancelled: {}", self.inner.store, codes.join(", ")),
                    ));
                }
                return Err(sdk(err, &self.inner.store, "atomic write"));
            }
            // DynamoDB cancels overlapping transactions without evaluating
            // their conditions: retry to learn whether ours hold.
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        Err(DynamoError::GaveUp {
            store: self.inner.store.clone(),
            op: "atomic write",
            what: format!("transactions kept conflicting ({MAX_TXN_ATTEMPTS} attempts)"),
        }
        .into())
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        self.check_open()?;
        let (now, _) = self.now();
        let mut paths = Vec::with_capacity(items.len());
        for i in &items {
            check_key(&i.key)?;
            paths.push(record::full_path(&i.key)?);
            record::check_size(i)?;
        }
        // One request may not name a key twice: the last write of a key
        // wins, and earlier ones report its revision.
        let mut last: HashMap<&Key, usize> = HashMap::with_capacity(items.len());
        for (n, i) in items.iter().enumerate() {
            last.insert(&i.key, n);
        }
        let revisions: Vec<String> = (0..items.len()).map(|_| new_revision()).collect();
        let mut requests = Vec::with_capacity(last.len());
        for (n, (item, fp)) in items.iter().zip(paths).enumerate() {
            if last.get(&item.key) != Some(&n) {
                continue;
            }
            let put = PutRequest::builder()
                .set_item(Some(record::encode(item, fp, &revisions[n], now)))
                .build()
                .map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let out = items.iter().map(|i| revisions[last[&i.key]].clone()).collect();
        self.batch_write(requests, "put batch").await?;
        Ok(out)
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        self.check_open()?;
        let mut seen = std::collections::HashSet::new();
        let mut requests = Vec::with_capacity(keys.len());
        for k in &keys {
            // A key DynamoDB cannot hold cannot exist: nothing to delete.
            let Ok(fp) = record::full_path(k) else { continue };
            if !seen.insert(fp.clone()) {
                continue;
            }
            let del = DeleteRequest::builder().set_key(Some(record::primary_key(fp))).build().map_err(build_err)?;
            requests.push(WriteRequest::builder().delete_request(del).build());
        }
        self.batch_write(requests, "delete batch").await
    }

    async fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.check_open()?;
        {
            let mut started = self.inner.reader.lock().await;
            if !*started {
                stream::check_stream(&self.inner).await?;
                stream::start(self.inner.clone());
                *started = true;
            }
        }
        self.check_open()?;
        self.inner.fanout().new_watcher(watch)
    }

    fn close_watchers(&self) {
        self.inner.fanout().close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.shutdown();
        Ok(())
    }
}

impl DynamoDbBackend {
    fn shutdown(&self) {
        self.inner.closed.cancel();
        self.inner.fanout().close();
    }
}

impl Drop for DynamoDbBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
