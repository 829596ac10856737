//! The backend compliance suite (upstream `lib/backend/test/suite.go` and its
//! runners): one public async function per behaviour, each taking a
//! [`Constructor`], so a store joins with one test:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn sqlite_compliance() {
//!     let dir = tempfile::tempdir().unwrap();
//!     backend::suite::run_all(&|clock| open_sqlite(dir.path(), clock)).await;
//! }
//! ```
//!
//! Every case works under its own random prefix, closes the handles it
//! opened and deletes what it wrote, so cases may share one store. The suite
//! is public behind the `test-suite` feature for tests/ and testcontainers/;
//! it is not a stable API, and it writes to the store it is given.

mod basic;
mod batch;
mod concurrency;
mod watching;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Backend, Clock, Event, FakeClock, Key, OpType, Result, Watcher};

pub use basic::*;
pub use batch::*;
pub use concurrency::*;
pub use watching::*;

/// A boxed future returned by constructors.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Opens handles on the store under test. Every call must open a NEW handle
/// on the SAME store, using the given clock for expiry, so that two handles
/// see each other's writes (as two auth servers sharing a database would).
pub trait Constructor: Send + Sync {
    /// Opens a handle.
    fn open(&self, clock: Arc<dyn Clock>) -> BoxFut<Result<Arc<dyn Backend>>>;

    /// True for stores whose server owns time (etcd leases, DynamoDB TTL):
    /// the suite then passes the system clock and waits in real time instead
    /// of advancing a fake clock.
    fn real_clock(&self) -> bool {
        false
    }
}

impl<F, Fut> Constructor for F
where
    F: Fn(Arc<dyn Clock>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Arc<dyn Backend>>> + Send + 'static,
{
    fn open(&self, clock: Arc<dyn Clock>) -> BoxFut<Result<Arc<dyn Backend>>> {
        Box::pin(self(clock))
    }
}

/// Wraps a constructor whose store owns time (see [`Constructor::real_clock`]).
pub struct RealClock<C>(pub C);

impl<C: Constructor> Constructor for RealClock<C> {
    fn open(&self, clock: Arc<dyn Clock>) -> BoxFut<Result<Arc<dyn Backend>>> {
        self.0.open(clock)
    }

    fn real_clock(&self) -> bool {
        true
    }
}

/// How long to wait for an expiry Delete event (upstream's
/// `TELEPORT_BACKEND_TEST_TTL_DELETE_TIMEOUT`, default 10 s).
pub fn ttl_delete_timeout() -> Duration {
    std::env::var("TELEPORT_BACKEND_TEST_TTL_DELETE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(10))
}

/// How long to wait for an ordinary watch event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One case's world: a clock, a handle, and a random key prefix.
pub struct Ctx {
    /// The handle under test.
    pub b: Arc<dyn Backend>,
    fake: Option<Arc<FakeClock>>,
    clock: Arc<dyn Clock>,
    prefix: String,
    extra: Vec<Arc<dyn Backend>>,
}

impl Ctx {
    /// Opens a handle with a fresh clock and prefix.
    pub async fn new(c: &dyn Constructor) -> Ctx {
        let (fake, clock): (Option<Arc<FakeClock>>, Arc<dyn Clock>) = if c.real_clock() {
            (None, super::clock::system())
        } else {
            let f = FakeClock::new();
            (Some(f.clone()), f)
        };
        let b = c.open(clock.clone()).await.expect("open backend handle");
        Ctx { b, fake, clock, prefix: uuid::Uuid::new_v4().to_string(), extra: Vec::new() }
    }

    /// Opens another handle on the same store, sharing this case's clock.
    pub async fn second_handle(&mut self, c: &dyn Constructor) -> Arc<dyn Backend> {
        let b = c.open(self.clock.clone()).await.expect("open second backend handle");
        self.extra.push(b.clone());
        b
    }

    /// `/<prefix>/<parts...>`.
    pub fn key(&self, parts: &[&str]) -> Key {
        let mut all = vec![self.prefix.as_str()];
        all.extend_from_slice(parts);
        Key::new(all)
    }

    /// The case's own prefix as a key (`/<prefix>`).
    pub fn root(&self) -> Key {
        Key::new([self.prefix.as_str()])
    }

    /// The case's clock's current time.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// True if time is owned by the server (real waits).
    pub fn real_clock(&self) -> bool {
        self.fake.is_none()
    }

    /// Moves time forward: advances the fake clock, or sleeps.
    pub async fn advance(&self, d: Duration) {
        match &self.fake {
            Some(f) => f.advance(d),
            None => tokio::time::sleep(d).await,
        }
    }

    /// Deletes everything under the prefix and closes the handles.
    pub async fn finish(self) {
        let root = self.root();
        let _ = self.b.delete_range(&root, &root.range_end()).await;
        for b in self.extra.iter().chain(std::iter::once(&self.b)) {
            let _ = b.close().await;
        }
    }
}

/// Waits for the next event, failing the test after `timeout`.
pub async fn next_event(w: &mut Watcher, timeout: Duration) -> Event {
    match tokio::time::timeout(timeout, w.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("watcher closed while waiting for an event"),
        Err(_) => panic!("timed out after {timeout:?} waiting for a watch event"),
    }
}

/// Waits for the next event and checks its type and key.
pub async fn expect_event(w: &mut Watcher, op: OpType, key: &Key, timeout: Duration) -> Event {
    let e = next_event(w, timeout).await;
    assert_eq!((e.op, &e.item.key), (op, key), "unexpected watch event");
    e
}

/// Asserts two expiry times are within `tol` of each other.
pub fn assert_time_near(got: Option<SystemTime>, want: SystemTime, tol: Duration) {
    let got = got.expect("item should carry an expiry");
    let diff = match got.duration_since(want) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(diff <= tol, "expiry {got:?} is {diff:?} away from {want:?} (tolerance {tol:?})");
}

/// Random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::Rng;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Runs every case against the store, in upstream's order, printing each
/// case's name and duration.
pub async fn run_all(c: &dyn Constructor) {
    macro_rules! case {
        ($name:ident) => {{
            let t = std::time::Instant::now();
            $name(c).await;
            eprintln!("suite case {:<28} ok ({:?})", stringify!($name), t.elapsed());
        }};
    }
    case!(crud);
    case!(query_range);
    case!(items);
    case!(delete_range);
    case!(compare_and_swap);
    case!(expiration);
    case!(keep_alive);
    case!(events);
    case!(watchers_close);
    case!(watch_second_handle);
    case!(watch_volume);
    case!(locking);
    case!(concurrent_operations);
    case!(fetch_limit);
    case!(limit);
    case!(conditional_update);
    case!(conditional_delete);
    case!(atomic_move);
    case!(atomic_lock);
    case!(atomic_max);
    case!(atomic_concurrent);
    case!(atomic_non_conflicting);
    case!(atomic_other);
    case!(put_batch);
    case!(delete_batch);
}
