//! The audit store compliance suite: one public async function per
//! behaviour, each taking a [`Constructor`] and [`SuiteOptions`], so a store
//! joins with one test:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn file_compliance() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let n = std::sync::atomic::AtomicUsize::new(0);
//!     events::suite::run_all(&|| { /* open a fresh FileLog */ }, &SuiteOptions::default()).await;
//! }
//! ```
//!
//! Cases use only the [`AuditLog`] trait, so they are store-agnostic. Each
//! case asks for a fresh log and also works in its own random time window
//! (a random second within the last ~300 days) with a random tag, so stores
//! that cannot give an empty table per case still pass. Failures panic with
//! the store's name. Public behind the `test-suite` feature; not a stable
//! API, and it writes to the store it is given.

mod cases;
mod paging;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{AuditLog, Event, Order, Result, SearchParams};

pub use cases::*;
pub use paging::*;

/// A boxed future returned by constructors.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Opens a fresh, empty log for one case.
pub trait Constructor: Send + Sync {
    /// Opens the log.
    fn open(&self) -> BoxFut<Result<Arc<dyn AuditLog>>>;
}

impl<F, Fut> Constructor for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<Arc<dyn AuditLog>>> + Send + 'static,
{
    fn open(&self) -> BoxFut<Result<Arc<dyn AuditLog>>> {
        Box::pin(self())
    }
}

/// Sizes a slow store may shrink.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Events written and paged through by [`paging`] (10,000 by default).
    pub paging_events: usize,
    /// Concurrent emitting tasks in [`concurrent_emitters`] (8).
    pub concurrent_tasks: usize,
    /// Events per task in [`concurrent_emitters`] (200).
    pub events_per_task: usize,
}

impl Default for SuiteOptions {
    fn default() -> SuiteOptions {
        SuiteOptions { paging_events: 10_000, concurrent_tasks: 8, events_per_task: 200 }
    }
}

/// One case's world: the log, a random time window and a random tag.
pub struct Ctx {
    /// The log under test.
    pub log: Arc<dyn AuditLog>,
    /// Midnight UTC of a random day 2..300 days ago.
    pub day: SystemTime,
    /// A random tag (also the `cluster_name` of the case's events).
    pub tag: String,
}

impl Ctx {
    /// Opens a fresh log and picks a window.
    pub async fn new(c: &dyn Constructor) -> Ctx {
        use rand::RngExt;
        let log = c.open().await.unwrap_or_else(|e| panic!("open audit log: {e}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let days_back = rand::rng().random_range(2..300u64);
        let midnight = (now / 86_400 - days_back) * 86_400;
        Ctx { log, day: UNIX_EPOCH + Duration::from_secs(midnight), tag: uuid::Uuid::new_v4().to_string() }
    }

    /// `day + offset`.
    pub fn at(&self, offset: Duration) -> SystemTime {
        self.day + offset
    }

    /// A new event of `ty` at `t`, tagged with the case's tag.
    pub fn event(&self, ty: &str, t: SystemTime) -> Event {
        Event::at(ty, "T0000I", t).with("cluster_name", self.tag.clone())
    }

    /// Emits, panicking with the store's name on error.
    pub async fn emit(&self, e: Event) {
        let uid = e.uid().to_string();
        self.log.emit(e).await.unwrap_or_else(|err| panic!("{}: emit {uid}: {err}", self.log.describe()));
    }

    /// Every event in `[from, to)` of `types`, paged `limit` at a time.
    pub async fn all(
        &self,
        from: SystemTime,
        to: SystemTime,
        types: &[&str],
        order: Order,
        limit: usize,
    ) -> Vec<Event> {
        let mut p = SearchParams::range(from, to);
        p.event_types = types.iter().map(|s| s.to_string()).collect();
        p.order = order;
        p.limit = limit;
        search_all(self.log.as_ref(), p).await
    }

    /// Closes the log.
    pub async fn finish(self) {
        let _ = self.log.close().await;
    }
}

/// Follows `next` until the last page, checking that no page is larger than
/// the limit and that the cursor moves; panics on error.
pub async fn search_all(log: &dyn AuditLog, mut p: SearchParams) -> Vec<Event> {
    let mut out = Vec::new();
    let mut pages = 0usize;
    loop {
        let page = log.search(&p).await.unwrap_or_else(|e| panic!("{}: search: {e}", log.describe()));
        assert!(
            page.events.len() <= p.limit,
            "{}: a page of {} events for limit {}",
            log.name(),
            page.events.len(),
            p.limit
        );
        out.extend(page.events);
        pages += 1;
        match page.next {
            None => return out,
            Some(next) => {
                assert_ne!(p.cursor.as_deref(), Some(next.as_str()), "{}: the cursor did not move", log.name());
                assert!(pages <= out.len() + 16, "{}: {pages} pages for {} events", log.name(), out.len());
                p.cursor = Some(next);
            }
        }
    }
}

/// The uids of `events`, in order.
pub fn uids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.uid().to_string()).collect()
}

/// Asserts `events` are sorted as searches return them (time, `ei`, uid).
pub fn assert_sorted(name: &str, events: &[Event], order: Order) {
    let mut sorted = events.to_vec();
    super::sort_events(&mut sorted, order);
    assert_eq!(uids(events), uids(&sorted), "{name}: events not in {order:?} order");
}

/// Runs every case, printing each case's name and duration.
pub async fn run_all(c: &dyn Constructor, opts: &SuiteOptions) {
    macro_rules! case {
        ($name:ident) => {{
            let t = std::time::Instant::now();
            $name(c, opts).await;
            eprintln!("events suite case {:<24} ok ({:?})", stringify!($name), t.elapsed());
        }};
    }
    case!(round_trip);
    case!(time_range_edges);
    case!(type_filter);
    case!(orders);
    case!(page_limits);
    case!(session_queries);
    case!(day_boundary);
    case!(oversized_events);
    case!(idempotent_emit);
    case!(concurrent_emitters);
    case!(paging);
}
