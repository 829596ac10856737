//! CLUSTER STATE: the [`Backend`] trait every cluster-state store implements,
//! with the exact semantics of upstream's `lib/backend` (see
//! docs/backends.md and the compliance suite in [`suite`]).
//!
//! The stores live one per file or folder (`memory.rs`, `sqlite/`,
//! `dynamodb/`, `firestore/`) and are opened from a
//! storage config by [`registry::open`]. This module may read `config`; it
//! never reaches up into resources, the CLI or the runtime.
//!
//! Semantics every store keeps:
//! - ranges are INCLUSIVE at both ends; a prefix scan is
//!   `get_range(p, p.range_end())`;
//! - expired items are invisible to every read and never count toward a
//!   limit; stores remove them in the background and emit `Delete` events;
//! - `compare_and_swap` compares VALUES, `conditional_update` and
//!   `conditional_delete` compare REVISIONS (a missing key is a compare
//!   failure, not NotFound);
//! - every write makes a new opaque revision, even for an identical value;
//! - a watcher's first event is `Init`.

pub mod atomic;
pub mod clock;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "firestore")]
pub mod firestore;
pub mod key;
pub mod lock;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod registry;
pub mod sqlite;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
pub mod watch;

use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};

pub use atomic::{Action, Condition, ConditionalAction, MAX_ATOMIC_WRITE_SIZE};
pub use clock::{Clock, FakeClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use key::Key;
pub use watch::{Event, Fanout, OpType, Watch, Watcher};

/// `limit` value meaning "the store's default" (upstream `NoLimit`).
pub const NO_LIMIT: usize = 0;

/// The most items one unlimited `get_range` returns (upstream `DefaultRangeLimit`).
pub const DEFAULT_RANGE_LIMIT: usize = 2_000_000;

/// Page size used by the default [`Backend::items`] implementation.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// What stores return for rows written without a revision (upstream
/// `BlankRevision`).
pub const BLANK_REVISION: &str = "00000000-0000-0000-0000-000000000000";

/// A new random revision (UUIDv4), as upstream's `CreateRevision`.
pub fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// The key.
    pub key: Key,
    /// Opaque bytes (JSON-encoded resources, for the cluster).
    pub value: Vec<u8>,
    /// When the item expires; `None` means never.
    pub expires: Option<SystemTime>,
    /// The opaque revision the store gave the item on its last write. Ignored
    /// on writes except by `conditional_update`.
    pub revision: String,
}

impl Item {
    /// An item that never expires.
    pub fn new(key: impl Into<Key>, value: impl Into<Vec<u8>>) -> Item {
        Item { key: key.into(), value: value.into(), expires: None, revision: String::new() }
    }

    /// The same item, expiring at `t`.
    pub fn expires_at(mut self, t: SystemTime) -> Item {
        self.expires = Some(t);
        self
    }

    /// The same item, carrying `revision` (for `conditional_update`).
    pub fn with_revision(mut self, revision: impl Into<String>) -> Item {
        self.revision = revision.into();
        self
    }

    /// True if the item has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        matches!(self.expires, Some(t) if t <= now)
    }

    /// Key plus value length: the size that store limits apply to.
    pub fn size(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

/// What a write returns: the key and the revision it now has. Pass it back
/// to [`Backend::keep_alive`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// The written key.
    pub key: Key,
    /// The new revision.
    pub revision: String,
}

impl Lease {
    /// A lease on `key` at `revision`.
    pub fn new(key: &Key, revision: &str) -> Lease {
        Lease { key: key.clone(), revision: revision.to_string() }
    }

    /// The lease of a just-written item.
    pub fn of(item: &Item) -> Lease {
        Lease { key: item.key.clone(), revision: item.revision.clone() }
    }
}

/// Parameters of an [`Backend::items`] iteration. The start is inclusive;
/// the end is inclusive (as upstream's ranges) unless `end_exclusive`.
#[derive(Debug, Clone)]
pub struct ItemsParams {
    /// First key (inclusive).
    pub start: Key,
    /// Last key (inclusive unless `end_exclusive`); [`Key::no_end`] for none.
    pub end: Key,
    /// Leave out `end` itself. [`ItemsParams::prefix`] sets it, so a prefix
    /// scan never returns the key equal to `range_end(prefix)`.
    pub end_exclusive: bool,
    /// Newest-first (largest key first) when true.
    pub descending: bool,
    /// Stop after this many items; [`NO_LIMIT`] for all.
    pub limit: usize,
}

impl ItemsParams {
    /// Items with `start <= key <= end`, ascending, no limit.
    pub fn range(start: Key, end: Key) -> ItemsParams {
        ItemsParams { start, end, end_exclusive: false, descending: false, limit: NO_LIMIT }
    }

    /// Exactly the items whose key starts with `prefix`, ascending.
    pub fn prefix(prefix: &Key) -> ItemsParams {
        ItemsParams { end_exclusive: true, ..ItemsParams::range(prefix.clone(), prefix.range_end()) }
    }

    /// The same, newest key first.
    pub fn descending(mut self) -> ItemsParams {
        self.descending = true;
        self
    }

    /// The same, stopping after `limit` items.
    pub fn limit(mut self, limit: usize) -> ItemsParams {
        self.limit = limit;
        self
    }
}

/// Store-specific limits, exposed as data so that pre-flight checks, batching
/// and the compliance suite read the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes, if the store has a limit.
    pub max_key_len: Option<usize>,
    /// Largest item (key plus value plus overhead) in bytes, if limited.
    pub max_item_size: Option<usize>,
    /// Largest single request in bytes, if limited.
    pub max_request_bytes: Option<usize>,
    /// Most items written per batch request.
    pub max_batch_items: usize,
    /// Most actions per atomic write.
    pub max_atomic_actions: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_key_len: None,
            max_item_size: None,
            max_request_bytes: None,
            max_batch_items: 1000,
            max_atomic_actions: MAX_ATOMIC_WRITE_SIZE,
        }
    }
}

impl Limits {
    /// Checks one item against these limits, naming the key in the error.
    pub fn check_item(&self, item: &Item) -> Result<()> {
        if let Some(max) = self.max_key_len
            && item.key.len() > max
        {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("key {:?} is {} bytes; the store allows at most {max}", item.key, item.key.len()),
            ));
        }
        if let Some(max) = self.max_item_size
            && item.size() > max
        {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("item {:?} is {} bytes; the store allows at most {max}", item.key, item.size()),
            ));
        }
        Ok(())
    }
}

/// A cluster-state store. All methods are safe to call concurrently.
///
/// Stores implement the required methods; the provided ones are correct for
/// every store and may be overridden for speed.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The store type name, as in `storage.type`: "sqlite", "memory", ...
    fn name(&self) -> &'static str;

    /// Where the store is, for messages: "sqlite /var/lib/teleport/backend/sqlite.db".
    fn describe(&self) -> String;

    /// The store's limits.
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// The clock used for expiry.
    fn clock(&self) -> Arc<dyn Clock>;

    /// One page of live items between `start` and `end`, ascending or
    /// descending, at most `limit` (> 0) of them. Expired items are skipped
    /// and do not count toward the limit. The building block of ranges and
    /// iteration.
    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>>;

    /// The live item at `key`, or NotFound.
    async fn get(&self, key: &Key) -> Result<Item>;

    /// Live items with `start <= key <= end` in ascending order, at most
    /// `limit` ([`NO_LIMIT`] means [`DEFAULT_RANGE_LIMIT`]).
    async fn get_range(&self, start: &Key, end: &Key, limit: usize) -> Result<Vec<Item>> {
        check_range(start, end)?;
        let limit = if limit == NO_LIMIT { DEFAULT_RANGE_LIMIT } else { limit };
        let mut out = Vec::new();
        let mut cursor: Bound<Key> = Bound::Included(start.clone());
        while out.len() < limit {
            let want = (limit - out.len()).min(DEFAULT_PAGE_SIZE);
            let page = self.scan(as_ref_bound(&cursor), end_bound(end), false, want).await?;
            let full = page.len() == want;
            if let Some(last) = page.last() {
                cursor = Bound::Excluded(last.key.clone());
            }
            out.extend(page);
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// A lazy iteration over live items in the range, paging internally.
    fn items(&self, params: ItemsParams) -> BoxStream<'_, Result<Item>> {
        default_items(self, params)
    }

    /// Inserts `item` only if no live item holds its key (else AlreadyExists).
    async fn create(&self, item: Item) -> Result<Lease>;

    /// Inserts or replaces `item`.
    async fn put(&self, item: Item) -> Result<Lease>;

    /// Replaces a live item (else NotFound).
    async fn update(&self, item: Item) -> Result<Lease>;

    /// Replaces the item if its stored VALUE equals `expected.value` (else
    /// CompareFailed, also for a missing key). Keys must match.
    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease>;

    /// Replaces the item if its stored REVISION equals `item.revision` (else
    /// CompareFailed, also for a missing key).
    async fn conditional_update(&self, item: Item) -> Result<Lease>;

    /// Deletes a live item (else NotFound).
    async fn delete(&self, key: &Key) -> Result<()>;

    /// Deletes the item if its stored revision equals `revision` (else
    /// CompareFailed, also for a missing key).
    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()>;

    /// Deletes every item with `start <= key <= end`.
    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()>;

    /// Sets a new expiry on a live item (else NotFound). Watchers see a Put.
    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()>;

    /// Applies the actions all-or-nothing; returns the revision every Put got.
    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String>;

    /// Puts many items, returning one revision per item. Not atomic as a
    /// whole; each store groups writes by its own batch limits.
    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        let mut revisions = Vec::with_capacity(items.len());
        let chunk = self.limits().max_atomic_actions.max(1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let actions: Vec<_> = items
                .by_ref()
                .take(chunk)
                .map(|i| ConditionalAction {
                    key: i.key.clone(),
                    condition: Condition::Whatever,
                    action: Action::Put(i),
                })
                .collect();
            let n = actions.len();
            let rev = self.atomic_write(actions).await?;
            revisions.extend(std::iter::repeat_n(rev, n));
        }
        Ok(revisions)
    }

    /// Deletes many keys; missing keys are not an error.
    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        for key in keys {
            match self.delete(&key).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Subscribes to changes under `watch.prefixes`.
    async fn new_watcher(&self, watch: Watch) -> Result<Watcher>;

    /// Closes every watcher without closing the backend.
    fn close_watchers(&self);

    /// Closes the backend and all of its watchers. Later calls fail.
    async fn close(&self) -> Result<()>;
}

/// Rejects empty keys, as upstream's "missing parameter key".
pub fn check_key(key: &Key) -> Result<()> {
    if key.is_empty() {
        return Err(Error::bad_parameter("missing parameter key"));
    }
    Ok(())
}

fn check_range(start: &Key, end: &Key) -> Result<()> {
    if start.is_empty() {
        return Err(Error::bad_parameter("missing parameter start key"));
    }
    if end.is_empty() {
        return Err(Error::bad_parameter("missing parameter end key"));
    }
    Ok(())
}

fn as_ref_bound(b: &Bound<Key>) -> Bound<&Key> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The bound to use for an inclusive range end: [`Key::no_end`] means none.
pub fn end_bound(end: &Key) -> Bound<&Key> {
    if end.is_no_end() { Bound::Unbounded } else { Bound::Included(end) }
}

/// The default [`Backend::items`]: pages of [`DEFAULT_PAGE_SIZE`] through
/// [`Backend::scan`], continuing after the last key seen (exclusive cursor,
/// so keys that extend the last key are not skipped).
pub fn default_items<B: Backend + ?Sized>(backend: &B, params: ItemsParams) -> BoxStream<'_, Result<Item>> {
    if let Err(e) = check_range(&params.start, &params.end) {
        return stream::once(async move { Err(e) }).boxed();
    }
    struct St {
        lower: Bound<Key>,
        upper: Bound<Key>,
        remaining: usize,
        done: bool,
    }
    let upper = if params.end.is_no_end() {
        Bound::Unbounded
    } else if params.end_exclusive {
        Bound::Excluded(params.end.clone())
    } else {
        Bound::Included(params.end.clone())
    };
    let st = St {
        lower: Bound::Included(params.start.clone()),
        upper,
        remaining: if params.limit == NO_LIMIT { usize::MAX } else { params.limit },
        done: false,
    };
    let desc = params.descending;
    stream::unfold(st, move |mut st| async move {
        if st.done || st.remaining == 0 {
            return None;
        }
        let want = st.remaining.min(DEFAULT_PAGE_SIZE);
        match backend.scan(as_ref_bound(&st.lower), as_ref_bound(&st.upper), desc, want).await {
            Err(e) => {
                st.done = true;
                Some((stream::iter(vec![Err(e)]), st))
            }
            Ok(page) => {
                if page.len() < want {
                    st.done = true;
                }
                if let Some(last) = page.last() {
                    let cursor = Bound::Excluded(last.key.clone());
                    if desc {
                        st.upper = cursor;
                    } else {
                        st.lower = cursor;
                    }
                }
                st.remaining = st.remaining.saturating_sub(page.len());
                Some((stream::iter(page.into_iter().map(Ok).collect::<Vec<_>>()), st))
            }
        }
    })
    .flatten()
    .boxed()
}
