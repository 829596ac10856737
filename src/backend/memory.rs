//! The memory store: an ordered map guarded by a mutex. It is a store in its
//! own right (it passes the whole compliance suite), a test double for
//! callers, and a cache.
//!
//! A [`MemoryStore`] holds the data; each [`MemoryStore::open`] gives a
//! handle with its own clock, watchers and expiry sweeper, the way several
//! processes share one database. Expired items are removed by a background
//! sweep that emits Delete events.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{
    Action, Backend, Clock, Condition, ConditionalAction, Error, Event, Fanout, Item, Key, Lease, Limits, Result,
    Watch, Watcher, atomic, check_key, new_revision,
};

/// How often handles sweep expired items by default.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expires: Option<SystemTime>,
    revision: String,
}

impl Entry {
    fn live(&self, now: SystemTime) -> bool {
        !matches!(self.expires, Some(t) if t <= now)
    }

    fn item(&self, key: &Key) -> Item {
        Item { key: key.clone(), value: self.value.clone(), expires: self.expires, revision: self.revision.clone() }
    }
}

#[derive(Debug, Default)]
struct Data {
    items: BTreeMap<Key, Entry>,
    /// (expiry, key) for every item that expires, to sweep without a scan.
    expiry: BTreeSet<(SystemTime, Key)>,
}

impl Data {
    fn live(&self, key: &Key, now: SystemTime) -> Option<&Entry> {
        self.items.get(key).filter(|e| e.live(now))
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        if let Some(t) = entry.expires {
            self.expiry.insert((t, key.clone()));
        }
        if let Some(old) = self.items.insert(key.clone(), entry)
            && let Some(t) = old.expires
        {
            self.expiry.remove(&(t, key));
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let old = self.items.remove(key)?;
        if let Some(t) = old.expires {
            self.expiry.remove(&(t, key.clone()));
        }
        Some(old)
    }
}

#[derive(Debug, Default)]
struct Shared {
    data: Mutex<Data>,
    /// One fan-out per open handle; every write reaches all of them.
    fanouts: Mutex<Vec<(u64, Fanout)>>,
    next_handle: AtomicU64,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let fanouts = self.fanouts.lock().unwrap_or_else(|p| p.into_inner());
        for (_, f) in fanouts.iter() {
            f.emit(events.iter().cloned());
        }
    }

    /// Removes items expired at `now` and tells every watcher.
    fn sweep(&self, now: SystemTime) -> usize {
        let mut data = self.data();
        let mut expired = Vec::new();
        for (t, k) in data.expiry.iter() {
            if *t > now {
                break;
            }
            expired.push(k.clone());
        }
        let events: Vec<Event> =
            expired.into_iter().filter_map(|k| data.remove(&k).map(|_| Event::delete(k))).collect();
        let n = events.len();
        self.emit(events);
        n
    }
}

/// The data of one memory store, shared by all handles opened on it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Opens a handle using `clock` for expiry, sweeping expired items every
    /// `sweep_interval`. Must be called inside a Tokio runtime.
    pub fn open_with(&self, clock: Arc<dyn Clock>, sweep_interval: Duration) -> Result<MemoryBackend> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::bad_parameter("the memory backend must be opened inside a Tokio runtime"))?;
        let id = self.shared.next_handle.fetch_add(1, Ordering::Relaxed);
        let fanout = Fanout::new_initialized();
        self.shared.fanouts.lock().unwrap_or_else(|p| p.into_inner()).push((id, fanout.clone()));
        let closed = CancellationToken::new();
        {
            let shared = Arc::downgrade(&self.shared);
            let clock = clock.clone();
            let closed = closed.clone();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(sweep_interval.max(Duration::from_millis(10)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = closed.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let Some(shared) = shared.upgrade() else { return };
                    shared.sweep(clock.now());
                }
            });
        }
        Ok(MemoryBackend { store: self.clone(), clock, fanout, id, closed })
    }

    /// Opens a handle on the system clock.
    pub fn open(&self) -> Result<MemoryBackend> {
        self.open_with(super::clock::system(), DEFAULT_SWEEP_INTERVAL)
    }

    /// Number of items held, expired or not (for tests and stats).
    pub fn len(&self) -> usize {
        self.shared.data().items.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A handle on a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryBackend {
    store: MemoryStore,
    clock: Arc<dyn Clock>,
    fanout: Fanout,
    id: u64,
    closed: CancellationToken,
}

impl MemoryBackend {
    /// A new store with one handle on the system clock.
    pub fn new() -> Result<MemoryBackend> {
        MemoryStore::new().open()
    }

    /// The store behind this handle (to open a second handle on it).
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    fn shared(&self) -> &Shared {
        &self.store.shared
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(Error::closed("memory backend"));
        }
        Ok(())
    }

    /// Runs `f` on the data under the lock and emits its events before
    /// releasing it, so a watcher created concurrently sees either the whole
    /// write or none of it.
    fn write<T>(&self, f: impl FnOnce(&mut Data, SystemTime) -> Result<(T, Vec<Event>)>) -> Result<T> {
        self.check_open()?;
        let now = self.clock.now();
        let mut data = self.shared().data();
        let (out, events) = f(&mut data, now)?;
        self.shared().emit(events);
        drop(data);
        Ok(out)
    }
}

fn stored(item: &Item, revision: &str) -> Entry {
    Entry { value: item.value.clone(), expires: item.expires, revision: revision.to_string() }
}

fn put_event(key: &Key, e: &Entry) -> Event {
    Event::put(e.item(key))
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }

    fn limits(&self) -> Limits {
        Limits { max_batch_items: 10_000, ..Limits::default() }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        self.check_open()?;
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = (start, end)
            && s > e
        {
            return Ok(Vec::new());
        }
        if let (Bound::Excluded(s), Bound::Excluded(e)) = (start, end)
            && s == e
        {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let data = self.shared().data();
        let range = data.items.range::<Key, _>((start, end));
        let live = |(k, e): (&Key, &Entry)| e.live(now).then(|| e.item(k));
        Ok(if descending {
            range.rev().filter_map(live).take(limit).collect()
        } else {
            range.filter_map(live).take(limit).collect()
        })
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        self.check_open()?;
        let now = self.clock.now();
        let data = self.shared().data();
        data.live(key, now).map(|e| e.item(key)).ok_or_else(|| Error::not_found(key))
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        self.write(|data, now| {
            if data.live(&item.key, now).is_some() {
                return Err(Error::already_exists(&item.key));
            }
            let e = stored(&item, &new_revision());
            let ev = put_event(&item.key, &e);
            let lease = Lease::new(&item.key, &e.revision);
            data.insert(item.key, e);
            Ok((lease, vec![ev]))
        })
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        self.write(|data, _| {
            let e = stored(&item, &new_revision());
            let ev = put_event(&item.key, &e);
            let lease = Lease::new(&item.key, &e.revision);
            data.insert(item.key, e);
            Ok((lease, vec![ev]))
        })
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        self.write(|data, now| {
            if data.live(&item.key, now).is_none() {
                return Err(Error::not_found(&item.key));
            }
            let e = stored(&item, &new_revision());
            let ev = put_event(&item.key, &e);
            let lease = Lease::new(&item.key, &e.revision);
            data.insert(item.key, e);
            Ok((lease, vec![ev]))
        })
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        self.write(|data, now| {
            match data.live(&expected.key, now) {
                None => {
                    return Err(Error::new(
                        super::ErrorKind::CompareFailed,
                        format!("key {:?} is not found", expected.key),
                    ));
                }
                Some(cur) if cur.value != expected.value => {
                    return Err(Error::new(
                        super::ErrorKind::CompareFailed,
                        format!("current value does not match expected for {:?}", expected.key),
                    ));
                }
                Some(_) => {}
            }
            let e = stored(&replace_with, &new_revision());
            let ev = put_event(&replace_with.key, &e);
            let lease = Lease::new(&replace_with.key, &e.revision);
            data.insert(replace_with.key, e);
            Ok((lease, vec![ev]))
        })
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        if item.key.is_empty() || item.revision.is_empty() {
            return Err(Error::incorrect_revision(&item.key));
        }
        self.write(|data, now| {
            match data.live(&item.key, now) {
                Some(cur) if cur.revision == item.revision => {}
                _ => return Err(Error::incorrect_revision(&item.key)),
            }
            let e = stored(&item, &new_revision());
            let ev = put_event(&item.key, &e);
            let lease = Lease::new(&item.key, &e.revision);
            data.insert(item.key, e);
            Ok((lease, vec![ev]))
        })
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        self.write(|data, now| {
            if data.live(key, now).is_none() {
                return Err(Error::not_found(key));
            }
            data.remove(key);
            Ok(((), vec![Event::delete(key.clone())]))
        })
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        if key.is_empty() || revision.is_empty() {
            return Err(Error::incorrect_revision(key));
        }
        self.write(|data, now| {
            match data.live(key, now) {
                Some(cur) if cur.revision == revision => {}
                _ => return Err(Error::incorrect_revision(key)),
            }
            data.remove(key);
            Ok(((), vec![Event::delete(key.clone())]))
        })
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        self.write(|data, _| {
            let keys: Vec<Key> = if start > end {
                Vec::new()
            } else {
                data.items
                    .range::<Key, _>((Bound::Included(start), super::end_bound(end)))
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            let events = keys.into_iter().filter_map(|k| data.remove(&k).map(|_| Event::delete(k))).collect();
            Ok(((), events))
        })
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        self.write(|data, now| {
            let Some(cur) = data.live(&lease.key, now) else {
                return Err(Error::not_found(&lease.key));
            };
            let e = Entry { value: cur.value.clone(), expires: Some(expires), revision: new_revision() };
            let ev = put_event(&lease.key, &e);
            data.insert(lease.key.clone(), e);
            Ok(((), vec![ev]))
        })
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        self.write(|data, now| {
            for a in &actions {
                let cur = data.live(&a.key, now);
                let ok = match &a.condition {
                    Condition::Whatever => true,
                    Condition::Exists => cur.is_some(),
                    Condition::NotExists => cur.is_none(),
                    Condition::Revision(r) => cur.is_some_and(|c| &c.revision == r),
                };
                if !ok {
                    return Err(Error::condition_failed());
                }
            }
            let rev = new_revision();
            let mut events = Vec::new();
            for a in actions {
                match a.action {
                    Action::Nop => {}
                    Action::Put(item) => {
                        let e = stored(&item, &rev);
                        events.push(put_event(&a.key, &e));
                        data.insert(a.key, e);
                    }
                    Action::Delete => {
                        if data.remove(&a.key).is_some() {
                            events.push(Event::delete(a.key));
                        }
                    }
                }
            }
            Ok((rev, events))
        })
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        for i in &items {
            check_key(&i.key)?;
        }
        self.write(|data, _| {
            let mut revs = Vec::with_capacity(items.len());
            let mut events = Vec::with_capacity(items.len());
            for item in items {
                let e = stored(&item, &new_revision());
                revs.push(e.revision.clone());
                events.push(put_event(&item.key, &e));
                data.insert(item.key, e);
            }
            Ok((revs, events))
        })
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        self.write(|data, _| {
            let events = keys.into_iter().filter_map(|k| data.remove(&k).map(|_| Event::delete(k))).collect();
            Ok(((), events))
        })
    }

    async fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.check_open()?;
        // Writes emit under the data lock: holding it here orders the new
        // watcher strictly after or before each write.
        let _data = self.shared().data();
        self.fanout.new_watcher(watch)
    }

    fn close_watchers(&self) {
        self.fanout.close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.shutdown();
        Ok(())
    }
}

impl MemoryBackend {
    fn shutdown(&self) {
        self.closed.cancel();
        self.fanout.close();
        self.shared().fanouts.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _)| *id != self.id);
    }
}

impl Drop for MemoryBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::suite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compliance() {
        let store = MemoryStore::new();
        suite::run_all(&move |clock: Arc<dyn Clock>| {
            let store = store.clone();
            async move {
                let b: Arc<dyn Backend> = Arc::new(store.open_with(clock, Duration::from_millis(50))?);
                Ok(b)
            }
        })
        .await;
    }
}
