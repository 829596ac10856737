//! Watchers: a subscriber gets every Put and Delete under its prefixes, after
//! a first `Init` event. [`Fanout`] is the shared fan-out that stores push
//! their events into (upstream's CircularBuffer); a store only has to feed it.
//!
//! A watcher whose queue is full is closed rather than allowed to fall
//! behind silently: its owner sees `recv()` return `None` and must re-read
//! state and watch again, exactly as after a backend restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Error, Item, Key, Result};

/// Default number of events a watcher may have queued before it is closed.
pub const DEFAULT_QUEUE_SIZE: usize = 1024;

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpType {
    /// The watcher is set up; events after this one are live. The item is empty.
    Init,
    /// An item was created, updated or had its expiry extended.
    Put,
    /// An item was deleted or expired. The item carries only the key (and
    /// the revision where the store knows it).
    Delete,
}

impl OpType {
    /// Upstream's numbering (newer versions): Init=0, Put=1, Delete=2.
    pub fn code(self) -> i64 {
        match self {
            OpType::Init => 0,
            OpType::Put => 1,
            OpType::Delete => 2,
        }
    }

    /// Parses upstream's numbering.
    pub fn from_code(code: i64) -> Option<OpType> {
        match code {
            0 => Some(OpType::Init),
            1 => Some(OpType::Put),
            2 => Some(OpType::Delete),
            _ => None,
        }
    }
}

/// One change seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub op: OpType,
    /// The item after a Put; the key (and maybe revision) after a Delete.
    pub item: Item,
}

impl Event {
    /// An `Init` event.
    pub fn init() -> Event {
        Event { op: OpType::Init, item: Item::default() }
    }

    /// A `Put` of `item`.
    pub fn put(item: Item) -> Event {
        Event { op: OpType::Put, item }
    }

    /// A `Delete` of `key`.
    pub fn delete(key: Key) -> Event {
        Event { op: OpType::Delete, item: Item { key, ..Item::default() } }
    }
}

/// What a watcher subscribes to.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// A name for logs.
    pub name: String,
    /// Key prefixes to receive events for; empty means every key.
    pub prefixes: Vec<Key>,
    /// Queue size; 0 means [`DEFAULT_QUEUE_SIZE`].
    pub queue_size: usize,
}

impl Watch {
    /// A watch on every key.
    pub fn all(name: impl Into<String>) -> Watch {
        Watch { name: name.into(), ..Watch::default() }
    }

    /// A watch on the given prefixes.
    pub fn prefixes(name: impl Into<String>, prefixes: impl IntoIterator<Item = Key>) -> Watch {
        Watch { name: name.into(), prefixes: prefixes.into_iter().collect(), queue_size: 0 }
    }

    fn matches(&self, key: &Key) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.has_prefix(p))
    }
}

/// A subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<Event>,
    done: CancellationToken,
    id: u64,
    fanout: Weak<FanoutInner>,
}

impl Watcher {
    /// The next event, or `None` once the watcher is closed (by the backend
    /// closing, by [`Watcher::close`], or because it fell too far behind).
    pub async fn recv(&mut self) -> Option<Event> {
        tokio::select! {
            biased;
            ev = self.rx.recv() => ev,
            _ = self.done.cancelled() => {
                // Deliver what was queued before the close, then stop.
                self.rx.try_recv().ok()
            }
        }
    }

    /// Resolves when the watcher has been closed.
    pub async fn done(&self) {
        self.done.cancelled().await
    }

    /// True once the watcher has been closed.
    pub fn is_closed(&self) -> bool {
        self.done.is_cancelled()
    }

    /// Closes the watcher.
    pub fn close(&self) {
        self.done.cancel();
        if let Some(f) = self.fanout.upgrade() {
            f.remove(self.id);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// Decides whether a new watcher skips an event (see [`Fanout::new_watcher_after`]).
pub type SkipFn = Box<dyn Fn(&Event) -> bool + Send + Sync>;

struct Subscriber {
    watch: Watch,
    tx: mpsc::Sender<Event>,
    done: CancellationToken,
    /// Until it first returns false, events it returns true for are not
    /// delivered: they describe writes that completed before the watcher.
    skip: Option<SkipFn>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    subs: HashMap<u64, Subscriber>,
    initialized: bool,
    closed: bool,
}

#[derive(Default)]
struct FanoutInner {
    state: Mutex<State>,
}

impl FanoutInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, id: u64) {
        self.lock().subs.remove(&id);
    }
}

/// Fans a store's events out to its watchers by prefix.
#[derive(Clone, Default)]
pub struct Fanout {
    inner: Arc<FanoutInner>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Fanout")
            .field("watchers", &st.subs.len())
            .field("initialized", &st.initialized)
            .field("closed", &st.closed)
            .finish()
    }
}

impl Fanout {
    /// A fan-out whose event source is live from the start: new watchers get
    /// `Init` at once.
    pub fn new_initialized() -> Fanout {
        let f = Fanout::default();
        f.inner.lock().initialized = true;
        f
    }

    /// Subscribes. The first event is `Init`, sent now if the event source is
    /// live, or as soon as it becomes live ([`Fanout::set_initialized`]).
    pub fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.subscribe(watch, None)
    }

    /// Subscribes, skipping events for which `skip` returns true until the
    /// first one it does not: for stores whose event stream lags their
    /// writes, so that a watcher does not hear of writes that completed
    /// before it was created (e.g. events at or below the store revision
    /// read when subscribing).
    pub fn new_watcher_after(&self, watch: Watch, skip: SkipFn) -> Result<Watcher> {
        self.subscribe(watch, Some(skip))
    }

    fn subscribe(&self, watch: Watch, skip: Option<SkipFn>) -> Result<Watcher> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(Error::closed("backend"));
        }
        let size = if watch.queue_size == 0 { DEFAULT_QUEUE_SIZE } else { watch.queue_size };
        let (tx, rx) = mpsc::channel(size.max(2));
        let done = CancellationToken::new();
        if st.initialized {
            // The queue is empty and has room for at least two events.
            let _ = tx.try_send(Event::init());
        }
        let id = st.next_id;
        st.next_id += 1;
        st.subs.insert(id, Subscriber { watch, tx, done: done.clone(), skip });
        Ok(Watcher { rx, done, id, fanout: Arc::downgrade(&self.inner) })
    }

    /// Marks the event source live and sends `Init` to every watcher that
    /// has not had it yet.
    pub fn set_initialized(&self) {
        let mut st = self.inner.lock();
        if st.initialized {
            return;
        }
        st.initialized = true;
        for sub in st.subs.values() {
            let _ = sub.tx.try_send(Event::init());
        }
    }

    /// Sends each event to the watchers whose prefixes match its key. A
    /// watcher whose queue is full is closed.
    pub fn emit(&self, events: impl IntoIterator<Item = Event>) {
        let mut st = self.inner.lock();
        if st.subs.is_empty() {
            return;
        }
        let mut overflowed = Vec::new();
        for ev in events {
            for (id, sub) in st.subs.iter_mut() {
                if !sub.watch.matches(&ev.item.key) {
                    continue;
                }
                if let Some(skip) = &sub.skip {
                    if skip(&ev) {
                        continue;
                    }
                    sub.skip = None;
                }
                if sub.tx.try_send(ev.clone()).is_err() {
                    overflowed.push(*id);
                }
            }
        }
        for id in overflowed {
            if let Some(sub) = st.subs.remove(&id) {
                tracing::warn!(
                    watcher = %sub.watch.name,
                    "watcher fell behind (its queue is full); closing it so it can re-sync"
                );
                sub.done.cancel();
            }
        }
    }

    /// Number of live watchers.
    pub fn len(&self) -> usize {
        self.inner.lock().subs.len()
    }

    /// True when nobody watches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every watcher; new ones may still subscribe.
    pub fn close_watchers(&self) {
        let mut st = self.inner.lock();
        for (_, sub) in st.subs.drain() {
            sub.done.cancel();
        }
    }

    /// Closes every watcher and refuses new ones.
    pub fn close(&self) {
        self.close_watchers();
        self.inner.lock().closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn init_first_then_matching_events() {
        let f = Fanout::default();
        let mut w = f.new_watcher(Watch::prefixes("t", [Key::from("/a/")])).unwrap();
        f.emit([Event::delete(Key::from("/b/x"))]);
        f.set_initialized();
        f.emit([Event::delete(Key::from("/b/x")), Event::delete(Key::from("/a/x"))]);
        assert_eq!(w.recv().await.unwrap().op, OpType::Init);
        let e = w.recv().await.unwrap();
        assert_eq!((e.op, e.item.key), (OpType::Delete, Key::from("/a/x")));
    }

    #[tokio::test]
    async fn skips_events_from_before_the_watcher() {
        let f = Fanout::new_initialized();
        let mut w = f
            .new_watcher_after(
                Watch::all("w"),
                Box::new(|e: &Event| e.item.revision.parse::<i64>().is_ok_and(|r| r <= 5)),
            )
            .unwrap();
        let ev = |k: &str, rev: &str| Event {
            op: OpType::Delete,
            item: Item { key: Key::from(k), revision: rev.into(), ..Item::default() },
        };
        f.emit([ev("/old", "4"), ev("/old2", "5"), ev("/new", "6"), ev("/late", "3")]);
        assert_eq!(w.recv().await.unwrap().op, OpType::Init);
        assert_eq!(w.recv().await.unwrap().item.key, Key::from("/new"));
        assert_eq!(w.recv().await.unwrap().item.key, Key::from("/late"), "only a prefix of events is skipped");
    }

    #[tokio::test]
    async fn overflow_closes_watcher() {
        let f = Fanout::new_initialized();
        let mut w = f.new_watcher(Watch { name: "slow".into(), prefixes: vec![], queue_size: 2 }).unwrap();
        for i in 0..5 {
            f.emit([Event::delete(Key::from(format!("/k{i}")))]);
        }
        assert!(w.is_closed());
        assert_eq!(f.len(), 0);
        // Queued events are still delivered, then None.
        let mut n = 0;
        while w.recv().await.is_some() {
            n += 1;
        }
        assert!(n <= 2);
    }

    #[tokio::test]
    async fn close_refuses_new_watchers() {
        let f = Fanout::new_initialized();
        let w = f.new_watcher(Watch::all("w")).unwrap();
        f.close();
        w.done().await;
        assert!(f.new_watcher(Watch::all("w2")).is_err());
    }

    #[tokio::test]
    async fn drop_unsubscribes() {
        let f = Fanout::new_initialized();
        let w = f.new_watcher(Watch::all("w")).unwrap();
        assert_eq!(f.len(), 1);
        drop(w);
        assert_eq!(f.len(), 0);
    }
}
