//! The PostgreSQL store (`type: postgres`, alias `cockroachdb`),
//! schema-compatible with upstream's `lib/backend/pgbk`: an upstream auth
//! server and this one can share a database, and see each other's writes.
//!
//! What it writes, in the database `conn_string` names (the search path's
//! schema, normally `public`):
//! - table `kv(key bytea PRIMARY KEY, value bytea NOT NULL, expires
//!   timestamptz NULL, revision uuid NOT NULL)`, index `kv_expires_idx` on
//!   `expires` (where not NULL), `REPLICA IDENTITY FULL`: one row per item;
//!   keys and values are the raw bytes, `expires` NULL means never, the
//!   revision is a random UUID per write, shown as its hyphenated text;
//! - table `backend_version(version integer PRIMARY KEY, created
//!   timestamptz)`: the applied schema versions ([`schema`]);
//! - while a handle has watchers: one TEMPORARY logical replication slot
//!   `teleport_<uuid>` (wal2json), dropped by the server when the handle's
//!   feed connection ends ([`feed`]).
//!
//! Tables (and the database itself) are created only when the store is
//! opened with `create: true`; otherwise a missing table is an error and
//! nothing is made.
//!
//! Semantics: expiry is decided by the handle's clock, passed to every
//! statement as a parameter (never the server's `now()`), so expired rows are
//! invisible at once and never count toward a limit; each handle also
//! deletes expired rows every `expiry_interval`, in batches, and watchers see
//! those deletes like any other. Single-key operations are one statement
//! each (their WHERE clause is the condition, re-checked by PostgreSQL on the
//! latest row version under concurrent writers); atomic writes run in one
//! SERIALIZABLE transaction. Serialization failures and deadlocks are retried
//! here; a broken connection is retried for idempotent operations only.
//!
//! Watchers use PostgreSQL's logical decoding (as upstream), not an events
//! table: the WAL already orders every commit of every process exactly once,
//! including expiry purges and upstream's writers; an events table would need
//! its own ordering fix (sequence values commit out of order), would miss
//! writers that do not fill it (upstream), and doubles every write. The
//! price is in provisioning: `wal_level = logical`, the REPLICATION attribute
//! and the wal2json plugin (docs/backends.md).

mod conn;
mod feed;
mod schema;
mod sql;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::conn::{Conn, ConnSpec, Pool, PoolConn, cached};
use self::sql::{pg_err, retry_delay};
use super::registry::OpenOptions;
use super::{
    Action, Backend, Clock, Condition, ConditionalAction, Error, ErrorKind, Item, Key, Lease, Limits, Result, Watch,
    Watcher, atomic, check_key,
};
use crate::config::PostgresConfig;

pub use self::conn::SslMode;
pub use self::schema::{SCHEMAS, VERSION_TABLE};

/// Default `expiry_interval` (upstream's).
pub const DEFAULT_EXPIRY_INTERVAL: Duration = Duration::from_secs(30);
/// Default `expiry_batch_size` (upstream's): rows deleted per statement, so
/// that no purge transaction grows too big for logical decoding.
pub const DEFAULT_EXPIRY_BATCH: usize = 1000;
/// Default `change_feed_poll_interval` (upstream's).
pub const DEFAULT_FEED_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default `change_feed_batch_size` (upstream's).
pub const DEFAULT_FEED_BATCH: usize = 1000;
/// Most rows one `put_batch` or `delete_batch` statement writes.
pub const BATCH_ROWS: usize = 1000;
/// Most bytes of keys and values one `put_batch` statement carries (one
/// item larger than this goes alone). It also keeps each transaction well
/// under `logical_decoding_work_mem` (64 MiB by default), past which the
/// change feed spills to disk.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// PostgreSQL's limit for one bytea field: 1 GB.
pub const BYTEA_MAX_BYTES: usize = (1 << 30) - 1;
/// Largest item (key plus value). Below [`BYTEA_MAX_BYTES`] because the
/// change feed carries a value hex-encoded (twice its size) in one JSON text,
/// which PostgreSQL also caps at 1 GB.
pub const MAX_ITEM_BYTES: usize = 256 << 20;
/// Longest key: `kv`'s primary key is a btree index, whose entries must fit
/// in a third of a page (2,704 bytes with PostgreSQL's default 8 KiB pages).
pub const MAX_KEY_BYTES: usize = 2048;
/// Rounds of expiry batches per purge, as upstream (enough for
/// [`super::DEFAULT_RANGE_LIMIT`] rows).
const MAX_PURGE_ROUNDS: usize = 2000;

/// State shared by a handle and its background tasks.
pub(crate) struct Inner {
    pool: Pool,
    pool_max: usize,
    /// "postgres host:port/database", for messages and logs.
    what: String,
    clock: Arc<dyn Clock>,
    watchers: feed::Watchers,
    feed_spec: ConnSpec,
    feed_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    poll_interval: Duration,
    feed_batch: usize,
    expiry_interval: Duration,
    expiry_batch: usize,
    closed: CancellationToken,
    /// Woken after each write, so the feed polls at once.
    wake: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A handle on a PostgreSQL database.
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").field("server", &self.inner.what).finish()
    }
}

impl PostgresBackend {
    /// Connects to the database in `cfg.conn_string` and checks its tables;
    /// with `opts.create`, creates the database and tables if missing. A
    /// connection or credential problem is one error naming the server.
    pub async fn open(cfg: &PostgresConfig, opts: OpenOptions) -> Result<PostgresBackend> {
        if let Some(mode) = cfg.auth_mode.as_deref().filter(|m| !m.trim().is_empty()) {
            return Err(Error::bad_parameter(format!(
                "auth_mode: {mode:?} (cloud IAM authentication) is not supported by this build; \
                 put the user and password in conn_string instead"
            )));
        }
        let spec = ConnSpec::parse(&cfg.conn_string, "conn_string")?;
        let feed_base = match cfg.change_feed_conn_string.as_deref() {
            Some(s) if !s.trim().is_empty() => ConnSpec::parse(s, "change_feed_conn_string")?,
            _ => spec.clone(),
        };
        // wal2json prints timestamps in the session's zone and style.
        let feed_spec = feed_base.with_settings(&[("TimeZone", "UTC"), ("DateStyle", "ISO")]);
        let what = format!("postgres {}", spec.target);
        let mut first = match spec.connect().await {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound && opts.create => {
                schema::create_database(&spec)
                    .await
                    .map_err(|c| Error::new(c.kind(), format!("{e}; creating it failed: {}", c.message())))?;
                spec.connect().await?
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(ErrorKind::NotFound, format!("{}; nothing was created", e.message())));
            }
            Err(e) => return Err(e),
        };
        if opts.create {
            schema::create_or_migrate(&mut first).await.map_err(|e| e.context(&what))?;
        } else {
            schema::check_existing(&first, &spec.dbname()).await.map_err(|e| e.context(&what))?;
        }
        let pool_max = spec.pool_max;
        let inner = Arc::new(Inner {
            pool: Pool::new(spec, first),
            pool_max,
            what,
            clock: opts.clock,
            watchers: feed::Watchers::default(),
            feed_spec,
            feed_task: tokio::sync::Mutex::new(None),
            poll_interval: cfg.change_feed_poll_interval.unwrap_or(DEFAULT_FEED_POLL_INTERVAL),
            feed_batch: cfg.change_feed_batch_size.unwrap_or(DEFAULT_FEED_BATCH).max(1),
            expiry_interval: cfg.expiry_interval.unwrap_or(DEFAULT_EXPIRY_INTERVAL),
            expiry_batch: cfg.expiry_batch_size.unwrap_or(DEFAULT_EXPIRY_BATCH).max(1),
            closed: CancellationToken::new(),
            wake: Notify::new(),
            tasks: Mutex::new(Vec::new()),
        });
        if !cfg.disable_expiry {
            let task = tokio::spawn(expire(inner.clone()));
            inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        }
        Ok(PostgresBackend { inner })
    }
}

/// Runs `$body` (a future using `$c: &mut Conn`, giving
/// `Result<T, tokio_postgres::Error>`) on a pooled connection, retrying as
/// [`retry_delay`] says; evaluates to `Result<T>` naming the store and `$op`.
/// (A macro, not a function taking an async closure: the futures must stay
/// `Send` for the trait's boxed futures.)
macro_rules! with_conn {
    ($inner:expr, $op:expr, $idempotent:expr, |$c:ident| $body:expr) => {{
        let inner: &Inner = $inner;
        let mut attempt: u32 = 1;
        loop {
            if let Err(e) = inner.check_open() {
                break Err(e);
            }
            let mut conn = match inner.pool.get().await {
                Ok(c) => c,
                Err(e) => break Err(inner.closed_or(e)),
            };
            let res = {
                let $c: &mut Conn = &mut conn;
                $body.await
            };
            match res {
                Ok(v) => break Ok(v),
                Err(e) => match inner.after_failure(conn, e, $op, $idempotent, attempt).await {
                    Ok(()) => attempt += 1,
                    Err(e) => break Err(e),
                },
            }
        }
    }};
}

impl PostgresBackend {
    /// Most connections this handle opens (`pool_max_conns`, or the larger
    /// of 4 and the number of CPUs), besides one for the change feed.
    pub fn pool_size(&self) -> usize {
        self.inner.pool_max
    }
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(Error::closed(&self.what));
        }
        Ok(())
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// After attempt `attempt` of `op` failed with `e` on `conn`: drops a
    /// broken connection, and either waits and returns Ok (try again, as
    /// [`retry_delay`] says) or returns the error, naming the store and `op`.
    async fn after_failure(
        &self,
        conn: PoolConn<'_>,
        e: tokio_postgres::Error,
        op: &str,
        idempotent: bool,
        attempt: u32,
    ) -> Result<()> {
        if conn.client.is_closed() {
            conn.discard();
        } else {
            drop(conn);
        }
        if let Some(delay) = retry_delay(&e, idempotent, attempt) {
            tracing::debug!(store = %self.what, op, attempt, error = %pg_err(e), "retrying");
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return self.check_open();
        }
        let tries = if attempt > 1 { format!(" (after {attempt} attempts)") } else { String::new() };
        Err(pg_err(e).context(format!("{}: {op}{tries}", self.what)))
    }

    fn closed_or(&self, e: Error) -> Error {
        if self.closed.is_cancelled() { Error::closed(&self.what) } else { e }
    }

    /// Starts the change feed if it is not running: the first watcher waits
    /// for the slot, and gets the reason if it cannot be made.
    async fn ensure_feed(self: &Arc<Inner>) -> Result<()> {
        let mut task = self.feed_task.lock().await;
        if task.is_some() {
            return Ok(());
        }
        let session = tokio::select! {
            _ = self.closed.cancelled() => return Err(Error::closed(&self.what)),
            s = feed::start(&self.feed_spec) => {
                s.map_err(|e| e.context(format!("{}: cannot watch: start the change feed", self.what)))?
            }
        };
        self.watchers.set_initialized();
        *task = Some(tokio::spawn(feed::run(self.clone(), session)));
        Ok(())
    }

    /// Deletes expired rows in batches until none are left.
    async fn purge(&self) -> Result<u64> {
        let mut total = 0;
        let limit = i64::try_from(self.expiry_batch).unwrap_or(i64::MAX);
        for _ in 0..MAX_PURGE_ROUNDS {
            let now = self.now();
            let n = with_conn!(self, "remove expired items", true, |c| async {
                let st = c.stmt(PURGE).await?;
                c.client.execute(&st, &[&now, &limit]).await
            })?;
            total += n;
            if n < limit as u64 {
                break;
            }
        }
        if total > 0 {
            self.wake.notify_one();
        }
        Ok(total)
    }
}

/// The expiry loop: purge, then wait `expiry_interval`, until closed.
async fn expire(inner: Arc<Inner>) {
    loop {
        match inner.purge().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(store = %inner.what, removed = n, "removed expired items"),
            Err(e) if inner.closed.is_cancelled() || e.kind() == ErrorKind::Closed => return,
            Err(e) => tracing::warn!(store = %inner.what, error = %e, "could not remove expired items; retrying"),
        }
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(inner.expiry_interval) => {}
        }
    }
}

const LIVE_ITEM: &str = "SELECT value, expires, revision FROM kv WHERE key = $1 AND (expires IS NULL OR expires > $2)";
const CREATE: &str = "INSERT INTO kv (key, value, expires, revision) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision \
     WHERE kv.expires IS NOT NULL AND kv.expires <= $5";
const PUT: &str = "INSERT INTO kv (key, value, expires, revision) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision";
const UPDATE: &str = "UPDATE kv SET value = $1, expires = $2, revision = $3 \
     WHERE key = $4 AND (expires IS NULL OR expires > $5)";
const COMPARE_AND_SWAP: &str = "UPDATE kv SET value = $1, expires = $2, revision = $3 \
     WHERE key = $4 AND value = $5 AND (expires IS NULL OR expires > $6)";
const CONDITIONAL_UPDATE: &str = "UPDATE kv SET value = $1, expires = $2, revision = $3 \
     WHERE key = $4 AND revision = $5 AND (expires IS NULL OR expires > $6)";
const DELETE: &str = "DELETE FROM kv WHERE key = $1 AND (expires IS NULL OR expires > $2)";
const CONDITIONAL_DELETE: &str =
    "DELETE FROM kv WHERE key = $1 AND revision = $2 AND (expires IS NULL OR expires > $3)";
const DELETE_RANGE: &str = "DELETE FROM kv WHERE key BETWEEN $1 AND $2";
const DELETE_FROM: &str = "DELETE FROM kv WHERE key >= $1";
const KEEP_ALIVE: &str = "UPDATE kv SET expires = $1, revision = $2 \
     WHERE key = $3 AND (expires IS NULL OR expires > $4)";
const PUT_MANY: &str = "INSERT INTO kv (key, value, expires, revision) \
     SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::timestamptz[], $4::uuid[]) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision";
const DELETE_MANY: &str = "DELETE FROM kv WHERE key = ANY($1::bytea[])";
const DELETE_MANY_LIVE: &str = "DELETE FROM kv WHERE key = ANY($1::bytea[]) AND (expires IS NULL OR expires > $2)";
const LIVE_REVISIONS: &str =
    "SELECT key, revision FROM kv WHERE key = ANY($1::bytea[]) AND (expires IS NULL OR expires > $2)";
const PURGE: &str = "DELETE FROM kv WHERE key IN (SELECT key FROM kv \
     WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The SQL of one `scan` page.
fn scan_sql(start: Bound<()>, end: Bound<()>, descending: bool) -> String {
    let mut sql = String::from("SELECT key, value, expires, revision FROM kv WHERE (expires IS NULL OR expires > $1)");
    let mut n = 1;
    for (bound, incl, excl) in [(start, ">=", ">"), (end, "<=", "<")] {
        let op = match bound {
            Bound::Included(()) => incl,
            Bound::Excluded(()) => excl,
            Bound::Unbounded => continue,
        };
        n += 1;
        sql.push_str(&format!(" AND key {op} ${n}"));
    }
    sql.push_str(if descending { " ORDER BY key DESC" } else { " ORDER BY key" });
    sql.push_str(&format!(" LIMIT ${}", n + 1));
    sql
}

fn bound_bytes(b: Bound<&Key>) -> Option<&[u8]> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.as_bytes()),
        Bound::Unbounded => None,
    }
}

/// An item from `value, expires, revision` columns starting at `at`.
fn read_item(key: Key, row: &Row, at: usize) -> std::result::Result<Item, tokio_postgres::Error> {
    let value: Vec<u8> = row.try_get(at)?;
    let expires: Option<SystemTime> = row.try_get(at + 1)?;
    let revision: Uuid = row.try_get(at + 2)?;
    Ok(Item { key, value, expires, revision: revision.to_string() })
}

/// A caller's revision as stored; `None` if it cannot be one of ours.
fn parse_revision(r: &str) -> Option<Uuid> {
    Uuid::parse_str(r).ok()
}

/// Checks a write against [`MAX_KEY_BYTES`] and [`MAX_ITEM_BYTES`].
fn check_size(key: &Key, value_len: usize) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("key {key:?} is {} bytes; the postgres store allows at most {MAX_KEY_BYTES}", key.len()),
        ));
    }
    let size = key.len() + value_len;
    if size > MAX_ITEM_BYTES {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("item {key:?} is {size} bytes; the postgres store allows at most {MAX_ITEM_BYTES}"),
        ));
    }
    Ok(())
}

fn compare_failed(key: &Key) -> Error {
    Error::new(ErrorKind::CompareFailed, format!("key {key:?} does not exist or does not hold the expected value"))
}

impl PostgresBackend {
    fn check_item(&self, item: &Item) -> Result<()> {
        check_key(&item.key)?;
        check_size(&item.key, item.value.len())
    }

    /// After a write: let the feed read it now.
    fn wrote(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs a single-row write statement; returns the rows it touched.
    async fn write_one(&self, op: &str, idempotent: bool, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let n = with_conn!(&self.inner, op, idempotent, |c| async {
            let st = c.stmt(sql).await?;
            c.client.execute(&st, params).await
        })?;
        self.wrote();
        Ok(n)
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        self.inner.what.clone()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_key_len: Some(MAX_KEY_BYTES),
            max_item_size: Some(MAX_ITEM_BYTES),
            max_request_bytes: Some(MAX_REQUEST_BYTES),
            max_batch_items: BATCH_ROWS,
            max_atomic_actions: super::MAX_ATOMIC_WRITE_SIZE,
        }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        let sql = scan_sql(start.map(|_| ()), end.map(|_| ()), descending);
        let (lo, hi) = (bound_bytes(start), bound_bytes(end));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = self.inner.now();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&now];
        if let Some(lo) = &lo {
            params.push(lo);
        }
        if let Some(hi) = &hi {
            params.push(hi);
        }
        params.push(&limit);
        let params = &params[..];
        with_conn!(&self.inner, "read a range", true, |c| async {
            let st = c.stmt(&sql).await?;
            let rows = c.client.query(&st, params).await?;
            rows.iter()
                .map(|r| {
                    let key: Vec<u8> = r.try_get(0)?;
                    read_item(Key::from(key), r, 1)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        let now = self.inner.now();
        let k = key.as_bytes();
        let item = with_conn!(&self.inner, "get an item", true, |c| async {
            let st = c.stmt(LIVE_ITEM).await?;
            match c.client.query_opt(&st, &[&k, &now]).await? {
                Some(row) => read_item(key.clone(), &row, 0).map(Some),
                None => Ok(None),
            }
        })?;
        item.ok_or_else(|| Error::not_found(key))
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        let rev = Uuid::new_v4();
        let now = self.inner.now();
        let n = self
            .write_one("create an item", false, CREATE, &[&item.key.as_bytes(), &item.value, &item.expires, &rev, &now])
            .await?;
        if n == 0 {
            return Err(Error::already_exists(&item.key));
        }
        Ok(Lease::new(&item.key, &rev.to_string()))
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        let rev = Uuid::new_v4();
        self.write_one("put an item", true, PUT, &[&item.key.as_bytes(), &item.value, &item.expires, &rev]).await?;
        Ok(Lease::new(&item.key, &rev.to_string()))
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        self.check_item(&item)?;
        let rev = Uuid::new_v4();
        let now = self.inner.now();
        let n = self
            .write_one("update an item", false, UPDATE, &[&item.value, &item.expires, &rev, &item.key.as_bytes(), &now])
            .await?;
        if n == 0 {
            return Err(Error::not_found(&item.key));
        }
        Ok(Lease::new(&item.key, &rev.to_string()))
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        self.check_item(&replace_with)?;
        let rev = Uuid::new_v4();
        let now = self.inner.now();
        let n = self
            .write_one(
                "compare and swap",
                false,
                COMPARE_AND_SWAP,
                &[
                    &replace_with.value,
                    &replace_with.expires,
                    &rev,
                    &replace_with.key.as_bytes(),
                    &expected.value,
                    &now,
                ],
            )
            .await?;
        if n == 0 {
            return Err(compare_failed(&expected.key));
        }
        Ok(Lease::new(&replace_with.key, &rev.to_string()))
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        let Some(expected) = parse_revision(&item.revision).filter(|_| !item.key.is_empty()) else {
            return Err(Error::incorrect_revision(&item.key));
        };
        self.check_item(&item)?;
        let rev = Uuid::new_v4();
        let now = self.inner.now();
        let n = self
            .write_one(
                "conditional update",
                false,
                CONDITIONAL_UPDATE,
                &[&item.value, &item.expires, &rev, &item.key.as_bytes(), &expected, &now],
            )
            .await?;
        if n == 0 {
            return Err(Error::incorrect_revision(&item.key));
        }
        Ok(Lease::new(&item.key, &rev.to_string()))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        let now = self.inner.now();
        let n = self.write_one("delete an item", false, DELETE, &[&key.as_bytes(), &now]).await?;
        if n == 0 {
            return Err(Error::not_found(key));
        }
        Ok(())
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        let Some(expected) = parse_revision(revision).filter(|_| !key.is_empty()) else {
            return Err(Error::incorrect_revision(key));
        };
        let now = self.inner.now();
        let n = self
            .write_one("conditional delete", false, CONDITIONAL_DELETE, &[&key.as_bytes(), &expected, &now])
            .await?;
        if n == 0 {
            return Err(Error::incorrect_revision(key));
        }
        Ok(())
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        if end.is_no_end() {
            self.write_one("delete a range", true, DELETE_FROM, &[&start.as_bytes()]).await?;
        } else {
            self.write_one("delete a range", true, DELETE_RANGE, &[&start.as_bytes(), &end.as_bytes()]).await?;
        }
        Ok(())
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        let rev = Uuid::new_v4();
        let now = self.inner.now();
        let n = self
            .write_one("keep an item alive", true, KEEP_ALIVE, &[&expires, &rev, &lease.key.as_bytes(), &now])
            .await?;
        if n == 0 {
            return Err(Error::not_found(&lease.key));
        }
        Ok(())
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        // (key, Some(revision) it must have | None for exists, must exist)
        let mut checks: Vec<(&[u8], Option<Uuid>, bool)> = Vec::new();
        let (mut put_keys, mut put_values, mut put_expires) = (Vec::new(), Vec::new(), Vec::new());
        let mut del_keys: Vec<&[u8]> = Vec::new();
        for a in &actions {
            let k = a.key.as_bytes();
            match &a.condition {
                Condition::Whatever => {}
                Condition::Exists => checks.push((k, None, true)),
                Condition::NotExists => checks.push((k, None, false)),
                // A string that is no UUID is no revision this store gave.
                Condition::Revision(r) => match parse_revision(r) {
                    Some(u) => checks.push((k, Some(u), true)),
                    None => return Err(Error::condition_failed()),
                },
            }
            match &a.action {
                Action::Nop => {}
                Action::Put(item) => {
                    check_size(&a.key, item.value.len())?;
                    put_keys.push(a.key.as_bytes());
                    put_values.push(item.value.as_slice());
                    put_expires.push(item.expires);
                }
                Action::Delete => del_keys.push(a.key.as_bytes()),
            }
        }
        let check_keys: Vec<&[u8]> = checks.iter().map(|(k, _, _)| *k).collect();
        let rev = Uuid::new_v4();
        let revs = vec![rev; put_keys.len()];
        let clock = self.inner.clock.clone();
        let applied = with_conn!(&self.inner, "atomic write", false, |c| async {
            let now = clock.now();
            let (client, stmts) = c.parts();
            let tx = client.build_transaction().isolation_level(IsolationLevel::Serializable).start().await?;
            if !checks.is_empty() {
                let st = cached(stmts, &tx, LIVE_REVISIONS).await?;
                let rows = tx.query(&st, &[&check_keys, &now]).await?;
                let mut live: HashMap<Vec<u8>, Uuid> = HashMap::with_capacity(rows.len());
                for r in &rows {
                    live.insert(r.try_get(0)?, r.try_get(1)?);
                }
                let holds = checks.iter().all(|(k, rev, exists)| match (live.get(*k), rev) {
                    (Some(have), Some(want)) => have == want,
                    (found, None) => found.is_some() == *exists,
                    (None, Some(_)) => false,
                });
                if !holds {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            if !put_keys.is_empty() {
                let st = cached(stmts, &tx, PUT_MANY).await?;
                tx.execute(&st, &[&put_keys, &put_values, &put_expires, &revs]).await?;
            }
            if !del_keys.is_empty() {
                let st = cached(stmts, &tx, DELETE_MANY_LIVE).await?;
                tx.execute(&st, &[&del_keys, &now]).await?;
            }
            tx.commit().await?;
            Ok(true)
        })?;
        if !applied {
            return Err(Error::condition_failed());
        }
        self.wrote();
        Ok(rev.to_string())
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        for i in &items {
            self.check_item(i)?;
        }
        let mut revisions = Vec::with_capacity(items.len());
        let mut start = 0;
        while start < items.len() {
            // A chunk ends at BATCH_ROWS items, MAX_REQUEST_BYTES, or a key
            // seen earlier in it (one statement cannot write a row twice).
            let mut end = start;
            let mut bytes = 0;
            let mut seen = HashSet::new();
            while end < items.len()
                && end - start < BATCH_ROWS
                && (end == start || bytes + items[end].size() <= MAX_REQUEST_BYTES)
                && seen.insert(items[end].key.as_bytes())
            {
                bytes += items[end].size();
                end += 1;
            }
            let chunk = &items[start..end];
            let keys: Vec<&[u8]> = chunk.iter().map(|i| i.key.as_bytes()).collect();
            let values: Vec<&[u8]> = chunk.iter().map(|i| i.value.as_slice()).collect();
            let expires: Vec<Option<SystemTime>> = chunk.iter().map(|i| i.expires).collect();
            let revs: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
            self.write_one("put a batch", true, PUT_MANY, &[&keys, &values, &expires, &revs]).await?;
            revisions.extend(revs.iter().map(Uuid::to_string));
            start = end;
        }
        Ok(revisions)
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        for chunk in keys.chunks(BATCH_ROWS) {
            let ks: Vec<&[u8]> = chunk.iter().map(Key::as_bytes).collect();
            self.write_one("delete a batch", true, DELETE_MANY, &[&ks]).await?;
        }
        Ok(())
    }

    async fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.inner.check_open()?;
        self.inner.ensure_feed().await?;
        self.inner.watchers.subscribe(watch)
    }

    fn close_watchers(&self) {
        self.inner.watchers.close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.cancel();
        self.inner.watchers.close();
        let mut tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(feed) = self.inner.feed_task.lock().await.take() {
            tasks.push(feed);
        }
        for t in tasks {
            // The tasks stop at their next await; a statement in flight
            // may take a moment.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.inner.pool.close();
        Ok(())
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.inner.closed.cancel();
        self.inner.watchers.close();
        self.inner.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_statements() {
        assert_eq!(
            scan_sql(Bound::Included(()), Bound::Excluded(()), false),
            "SELECT key, value, expires, revision FROM kv WHERE (expires IS NULL OR expires > $1) \
             AND key >= $2 AND key < $3 ORDER BY key LIMIT $4"
        );
        assert_eq!(
            scan_sql(Bound::Unbounded, Bound::Included(()), true),
            "SELECT key, value, expires, revision FROM kv WHERE (expires IS NULL OR expires > $1) \
             AND key <= $2 ORDER BY key DESC LIMIT $3"
        );
    }
}
