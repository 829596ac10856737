//! The Firestore store, layout-compatible with upstream's
//! `lib/backend/firestore` (see [`layout`]): one document per item in the
//! collection `collection_name`, named by the base64url of its key, with
//! fields `key`, `timestamp`, `expires`, `value` and `revision`.
//!
//! Map of what it touches:
//! - reads: BatchGetDocuments for single keys; RunQuery on `key` ranges
//!   ordered by `key` ([`scan`]); expired documents are hidden by the
//!   handle's clock;
//! - writes: Commit, with `exists`/`update_time` preconditions for
//!   conditional single-key operations and a read-write transaction
//!   (BeginTransaction, reads in it, Commit or Rollback) for conditional
//!   atomic writes ([`ops`]); at most 500 writes per Commit;
//! - watch: one Listen stream per handle ([`listener`]);
//! - purge: expired documents deleted in the background ([`purge`]), only
//!   by handles opened to serve (`create: true`);
//! - nothing else: no indexes, no collection is created (collections are
//!   implicit), and opening sends only read queries.
//!
//! This module may read `config`; it never reaches up into resources, the
//! CLI or the runtime.

mod client;
pub mod layout;
mod listener;
mod ops;
mod purge;
mod scan;

use std::ops::Bound;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::prost_types::Timestamp;
use fs::structured_query::field_filter::Operator;
use tokio_util::sync::CancellationToken;

use self::client::Client;
use self::layout::Record;
use self::ops::Plan;
use super::registry::OpenOptions;
use super::{
    Backend, Clock, ConditionalAction, Error, ErrorKind, Fanout, Item, Key, Lease, Limits, Result, Watch, Watcher,
    atomic, check_key,
};
use crate::config::FirestoreConfig;

pub use client::DEFAULT_DATABASE;
pub use purge::DEFAULT_INTERVAL as DEFAULT_PURGE_INTERVAL;

/// Default watch queue size (upstream `buffer_size` default, `DefaultBufferCapacity`).
pub const DEFAULT_BUFFER_SIZE: usize = 1024;
/// Default upper bound of the listener's reconnect delay (upstream `retry_period`
/// default, `defaults.HighResPollingPeriod`).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(10);
/// How long a new watcher waits for the listener to see this handle's writes.
pub const WATCH_CATCH_UP: Duration = Duration::from_secs(5);

/// State shared by a handle and its background tasks.
pub(crate) struct Inner {
    client: Client,
    clock: Arc<dyn Clock>,
    fanout: Mutex<Fanout>,
    closed: CancellationToken,
    /// The read time of the listener's latest consistent snapshot.
    snapshot: tokio::sync::watch::Sender<Option<(i64, i32)>>,
    /// True while the listener is live (past its initial snapshot).
    current: AtomicBool,
    /// Commit time of this handle's newest write that changed a document.
    last_write: Mutex<Option<(i64, i32)>>,
    legacy_strings: AtomicBool,
    legacy_arrays: AtomicBool,
    buffer_size: usize,
    retry_period: Duration,
}

impl Inner {
    fn fanout(&self) -> MutexGuard<'_, Fanout> {
        self.fanout.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_write(&self, commit_time: Option<&Timestamp>) {
        if let Some(t) = commit_time {
            let mut last = self.last_write.lock().unwrap_or_else(|p| p.into_inner());
            let t = listener::time_key(t);
            if last.is_none_or(|l| l < t) {
                *last = Some(t);
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(Error::closed(&self.client.describe));
        }
        Ok(())
    }
}

/// A handle on a Firestore collection.
pub struct FirestoreBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FirestoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreBackend").field("store", &self.inner.client.describe).finish()
    }
}

impl FirestoreBackend {
    /// Connects to the collection `cfg` names and checks that it can be
    /// queried. Writes nothing. Starts the listener, and the purge loop when
    /// `opts.create` (a serving process) unless the config disables it.
    pub async fn open(cfg: &FirestoreConfig, opts: OpenOptions) -> Result<FirestoreBackend> {
        let client = Client::connect(cfg).await?;
        // One cheap query per legacy key form: proves the collection can be
        // read (connection, credentials, database) and tells whether range
        // reads must look for older upstream documents.
        let probe = |form: fs::Value| {
            let q = client.query(
                Some(Client::filter(layout::KEY_FIELD, Operator::GreaterThanOrEqual, form)),
                None,
                Some(1),
            );
            client.run_query(q)
        };
        let (strings, arrays) = tokio::try_join!(probe(layout::string("")), probe(layout::byte_array(b"")))
            .map_err(|e| e.context("open"))?;
        if !strings.is_empty() || !arrays.is_empty() {
            tracing::info!(store = %client.describe, "collection holds documents with legacy key types; range reads include them");
        }
        let (snapshot, _) = tokio::sync::watch::channel(None);
        let inner = Arc::new(Inner {
            client,
            clock: opts.clock,
            fanout: Mutex::new(Fanout::default()),
            closed: CancellationToken::new(),
            snapshot,
            current: AtomicBool::new(false),
            last_write: Mutex::new(None),
            legacy_strings: AtomicBool::new(!strings.is_empty()),
            legacy_arrays: AtomicBool::new(!arrays.is_empty()),
            buffer_size: cfg.buffer_size.filter(|b| *b > 0).unwrap_or(DEFAULT_BUFFER_SIZE),
            retry_period: cfg.retry_period.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_RETRY_PERIOD),
        });
        if cfg.limit_watch_query {
            tracing::info!(store = %inner.client.describe, "limit_watch_query has no effect: the watch never replays old documents as events");
        }
        tokio::spawn(listener::run(inner.clone()));
        if opts.create && !cfg.disable_expired_document_purge {
            let interval = cfg.purge_expired_documents_poll_interval.unwrap_or(purge::DEFAULT_INTERVAL);
            tokio::spawn(purge::run(inner.clone(), interval));
        }
        Ok(FirestoreBackend { inner })
    }

    /// The full resource name of `key`'s document.
    pub fn document_name(&self, key: &Key) -> String {
        self.inner.client.doc_name(key)
    }

    /// Runs one purge pass now; returns how many documents it deleted.
    pub async fn purge_expired(&self) -> Result<usize> {
        self.inner.check_open()?;
        purge::purge_once(&self.inner).await
    }

    fn check_item(&self, item: &Item) -> Result<()> {
        check_key(&item.key)?;
        layout::check_item(&self.inner.client.collection, item)
    }
}

fn compare_failed(what: String) -> Error {
    Error::new(ErrorKind::CompareFailed, what)
}

#[async_trait]
impl Backend for FirestoreBackend {
    fn name(&self) -> &'static str {
        "firestore"
    }

    fn describe(&self) -> String {
        self.inner.client.describe.to_string()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_key_len: Some(layout::MAX_KEY_BYTES),
            max_item_size: Some(layout::max_item_size(&self.inner.client.collection)),
            max_request_bytes: Some(layout::MAX_REQUEST_BYTES),
            max_batch_items: layout::MAX_WRITES_PER_COMMIT,
            max_atomic_actions: super::MAX_ATOMIC_WRITE_SIZE,
        }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        self.inner.check_open()?;
        self.inner.scan(start, end, descending, limit).await
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        self.inner.check_open()?;
        match self.inner.read(key).await? {
            Some(r) if r.live(self.inner.clock.now()) => Ok(r.item()),
            _ => Err(Error::not_found(key)),
        }
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        self.inner.check_open()?;
        self.inner.create(item).await
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        self.inner.check_open()?;
        self.inner.put(item).await
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        let key = item.key.clone();
        self.inner
            .guarded("update", &key, |cur| {
                cur.ok_or_else(|| Error::not_found(&key))?;
                let rev = layout::new_revision();
                Ok(Plan::Put(item.clone(), rev.clone(), Lease::new(&key, &rev)))
            })
            .await
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        self.check_item(&replace_with)?;
        let key = expected.key.clone();
        self.inner
            .guarded("compare and swap", &key, |cur| {
                let cur = cur.ok_or_else(|| compare_failed(format!("key {key:?} is not found")))?;
                if cur.value != expected.value {
                    return Err(compare_failed(format!("current value does not match expected for {key:?}")));
                }
                let rev = layout::new_revision();
                Ok(Plan::Put(replace_with.clone(), rev.clone(), Lease::new(&key, &rev)))
            })
            .await
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        if item.key.is_empty() || item.revision.is_empty() {
            return Err(Error::incorrect_revision(&item.key));
        }
        self.check_item(&item)?;
        let key = item.key.clone();
        self.inner
            .guarded("conditional update", &key, |cur| match cur {
                Some(r) if r.revision() == item.revision => {
                    let rev = layout::new_revision();
                    Ok(Plan::Put(item.clone(), rev.clone(), Lease::new(&key, &rev)))
                }
                _ => Err(Error::incorrect_revision(&key)),
            })
            .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        self.inner
            .guarded("delete", key, |cur| {
                cur.ok_or_else(|| Error::not_found(key))?;
                Ok(Plan::Delete(()))
            })
            .await
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        if key.is_empty() || revision.is_empty() {
            return Err(Error::incorrect_revision(key));
        }
        self.inner
            .guarded("conditional delete", key, |cur: Option<&Record>| match cur {
                Some(r) if r.revision() == revision => Ok(Plan::Delete(())),
                _ => Err(Error::incorrect_revision(key)),
            })
            .await
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        if !end.is_no_end() && start > end {
            return Ok(());
        }
        self.inner.delete_range(start, end).await
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        let key = lease.key.clone();
        self.inner
            .guarded("keep alive", &key, |cur| {
                cur.ok_or_else(|| Error::not_found(&key))?;
                Ok(Plan::Touch(Some(expires), layout::new_revision(), ()))
            })
            .await
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        for a in &actions {
            if let super::Action::Put(item) = &a.action {
                layout::check_item(&self.inner.client.collection, &Item { key: a.key.clone(), ..item.clone() })?;
            }
        }
        self.inner.check_open()?;
        self.inner.atomic_write(actions).await
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        for i in &items {
            self.check_item(i)?;
        }
        self.inner.check_open()?;
        let revisions: Vec<String> = items.iter().map(|_| layout::new_revision()).collect();
        let writes = items.iter().zip(&revisions).map(|(i, r)| self.inner.put_write(&i.key, i, r, None)).collect();
        self.inner.commit_chunked("put batch", writes).await?;
        Ok(revisions)
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        for k in &keys {
            check_key(k)?;
        }
        self.inner.check_open()?;
        let writes = keys.iter().map(|k| self.inner.delete_write(k, None)).collect();
        self.inner.commit_chunked("delete batch", writes).await
    }

    async fn new_watcher(&self, mut watch: Watch) -> Result<Watcher> {
        self.inner.check_open()?;
        listener::catch_up(&self.inner, WATCH_CATCH_UP).await;
        if watch.queue_size == 0 {
            watch.queue_size = self.inner.buffer_size;
        }
        self.inner.check_open()?;
        self.inner.fanout().new_watcher(watch)
    }

    fn close_watchers(&self) {
        self.inner.fanout().close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.cancel();
        self.inner.fanout().close();
        Ok(())
    }
}

impl Drop for FirestoreBackend {
    fn drop(&mut self) {
        self.inner.closed.cancel();
        self.inner.fanout().close();
    }
}
