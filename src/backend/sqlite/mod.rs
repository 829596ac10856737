//! The SQLite store, the embedded default, schema-compatible with upstream's
//! `lib/backend/lite` so either implementation can read the other's files.
//!
//! Layout (`<path>` is a DIRECTORY, usually `<data_dir>/backend`, mode 0700):
//! - `<path>/sqlite.db` (mode 0600), table `kv(key TEXT PRIMARY KEY,
//!   modified INTEGER, expires DATETIME, value BLOB, revision TEXT)`: one row
//!   per item; `expires` is text in the Go driver's format ([`timefmt`]) or
//!   NULL; an empty revision reads as [`BLANK_REVISION`].
//! - table `events(id, type, created, kv_key, kv_modified, kv_expires,
//!   kv_value, kv_revision)`: one row per mutation, written in the same
//!   transaction, kept 10 minutes; watchers read it ([`periodic`]), so they
//!   see other processes' writes too.
//!
//! Every write runs in an IMMEDIATE transaction on this handle's single
//! connection (serialised by a mutex), so concurrent tasks never see
//! SQLITE_BUSY; other processes are waited for up to `busy_timeout`.
//! Opening never creates a database unless the caller allows it.

mod db;
mod periodic;
pub mod timefmt;

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::db::{KeyText, Now, RowWriter, insert_event, live, read_item, sql_err, stored_revision};
use super::registry::OpenOptions;
use super::{
    Action, Backend, Clock, Condition, ConditionalAction, Error, ErrorKind, Fanout, Item, Key, Lease, Limits, OpType,
    Result, Watch, Watcher, atomic, check_key, new_revision,
};
use crate::config::SqliteConfig;

pub use db::{DB_FILE, UPSTREAM_SCHEMA};

/// Default `busy_timeout` (ms), as upstream.
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Default `poll_stream_period`, as upstream.
pub const DEFAULT_POLL_STREAM_PERIOD: Duration = Duration::from_secs(1);
/// Default `buffer_size`, as upstream.
pub const DEFAULT_BUFFER_SIZE: usize = 1024;
/// Items per transaction in `put_batch`.
pub const BATCH_ROWS: usize = 1000;
/// SQLite's default maximum string or blob size (SQLITE_MAX_LENGTH).
pub const MAX_VALUE_BYTES: usize = 1_000_000_000;
/// Transactions slower than this are logged, as upstream's "SLOW TRANSACTION".
const SLOW_TRANSACTION: Duration = Duration::from_secs(1);

/// State shared by a handle and its background loop.
pub struct Inner {
    conn: Mutex<Connection>,
    file: PathBuf,
    clock: Arc<dyn Clock>,
    fanout: Fanout,
    events_off: bool,
    buffer_size: usize,
    poll_period: Duration,
    closed: CancellationToken,
    wake: Notify,
    /// The id of the last event row fanned out; its lock is the poll lock.
    last_event_id: Mutex<i64>,
}

impl Inner {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_event(&self) -> MutexGuard<'_, i64> {
        self.last_event_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.file.display())
    }
}

/// A handle on a SQLite database.
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").field("file", &self.inner.file).finish()
    }
}

impl SqliteBackend {
    /// Opens the database in `cfg.path`. With `opts.create` false, a missing
    /// `sqlite.db` is an error and nothing is created.
    pub async fn open(cfg: &SqliteConfig, opts: OpenOptions) -> Result<SqliteBackend> {
        let settings = db::Settings {
            dir: cfg.path.clone(),
            create: opts.create,
            sync: cfg.sync.clone().unwrap_or_else(|| "FULL".into()).to_uppercase(),
            journal: cfg.journal.as_ref().map(|j| j.to_uppercase()),
            busy_timeout: Duration::from_millis(cfg.busy_timeout.unwrap_or(DEFAULT_BUSY_TIMEOUT_MS)),
        };
        let file = cfg.path.join(DB_FILE);
        let what = format!("sqlite {}", file.display());
        let (conn, last_id) = tokio::task::spawn_blocking(move || -> Result<(Connection, i64)> {
            let conn = db::open(&settings)?;
            let last: Option<i64> = conn.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0)).map_err(sql_err)?;
            Ok((conn, last.unwrap_or(0)))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "open task failed").with_source(e))?
        // A missing database's message already names the file.
        .map_err(|e| if e.kind() == ErrorKind::NotFound { e } else { e.context(&what) })?;
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            file,
            clock: opts.clock,
            fanout: Fanout::new_initialized(),
            events_off: cfg.events_off,
            buffer_size: cfg.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE).max(1),
            poll_period: cfg.poll_stream_period.unwrap_or(DEFAULT_POLL_STREAM_PERIOD).max(Duration::from_millis(10)),
            closed: CancellationToken::new(),
            wake: Notify::new(),
            last_event_id: Mutex::new(last_id),
        });
        tokio::spawn(periodic::run(inner.clone()));
        Ok(SqliteBackend { inner })
    }

    /// The database file.
    pub fn file(&self) -> &std::path::Path {
        &self.inner.file
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::closed(self.inner.describe()));
        }
        Ok(())
    }

    /// Runs a read on the connection (see [`blocking`]).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Now) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        let inner = self.inner.clone();
        blocking(move || {
            let now = Now::at(inner.clock.now());
            let conn = inner.conn();
            f(&conn, &now).map_err(|e| in_store(e, &inner.describe()))
        })
        .await
    }

    /// Runs `f` in an IMMEDIATE transaction, commits, and wakes the event
    /// poller so local watchers hear of the write at once.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Now) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        let inner = self.inner.clone();
        let what = inner.describe();
        let out = blocking(move || {
            let started = Instant::now();
            let now = Now::at(inner.clock.now());
            let mut conn = inner.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let out = f(&tx, &now)?;
            tx.commit().map_err(sql_err)?;
            drop(conn);
            let took = started.elapsed();
            if took > SLOW_TRANSACTION {
                tracing::warn!(store = %inner.describe(), ?took, "SLOW TRANSACTION");
            }
            inner.wake.notify_one();
            Ok(out)
        })
        .await;
        out.map_err(|e| in_store(e, &what))
    }
}

/// Runs blocking SQLite work off the async threads: in place on a
/// multi-threaded runtime (the worker hands its other tasks to a peer; no
/// thread hop for a query of a few microseconds), else on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "sqlite task failed").with_source(e))?,
    }
}

/// Adds the store to messages of errors that are not about a key's state.
fn in_store(e: Error, what: &str) -> Error {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::AlreadyExists | ErrorKind::CompareFailed | ErrorKind::BadParameter => e,
        _ => e.context(what),
    }
}

fn exists_live(tx: &Connection, key: &Key, now: &Now) -> Result<Option<String>> {
    const SQL: &str = concat!("SELECT revision FROM kv WHERE key = ?1 AND ", live!(2, 3), " LIMIT 1");
    let mut stmt = tx.prepare_cached(SQL).map_err(sql_err)?;
    let mut rows = stmt.query(params![KeyText(key.as_bytes()), now.text, now.secs]).map_err(sql_err)?;
    match rows.next().map_err(sql_err)? {
        Some(r) => Ok(Some(r.get::<_, String>(0).map_err(sql_err)?)),
        None => Ok(None),
    }
}

/// Writes `item` (which carries its new revision) and its event.
fn put_row(tx: &Transaction<'_>, item: &Item, now: &Now, events: bool) -> Result<()> {
    RowWriter::new(tx, events)?.put(item, now)
}

/// Deletes `key` if live (or at all when `any`), writing an event; returns
/// whether a row went.
fn delete_row(tx: &Transaction<'_>, key: &Key, now: &Now, events: bool, any: bool) -> Result<bool> {
    let n = if any {
        let mut stmt = tx.prepare_cached("DELETE FROM kv WHERE key = ?1").map_err(sql_err)?;
        stmt.execute([KeyText(key.as_bytes())]).map_err(sql_err)?
    } else {
        const SQL: &str = concat!("DELETE FROM kv WHERE key = ?1 AND ", live!(2, 3));
        let mut stmt = tx.prepare_cached(SQL).map_err(sql_err)?;
        stmt.execute(params![KeyText(key.as_bytes()), now.text, now.secs]).map_err(sql_err)?
    };
    if n > 0 && events {
        insert_event(tx, OpType::Delete, now, &Item::new(key.clone(), Vec::new()))?;
    }
    Ok(n > 0)
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_key_len: None,
            max_item_size: Some(MAX_VALUE_BYTES),
            max_request_bytes: None,
            max_batch_items: BATCH_ROWS,
            max_atomic_actions: super::MAX_ATOMIC_WRITE_SIZE,
        }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn scan(&self, start: Bound<&Key>, end: Bound<&Key>, descending: bool, limit: usize) -> Result<Vec<Item>> {
        let start = start.map(|k| k.as_bytes().to_vec());
        let end = end.map(|k| k.as_bytes().to_vec());
        self.read(move |conn, now| {
            let mut sql = concat!("SELECT key, value, expires, revision FROM kv WHERE ", live!(1, 2)).to_string();
            match &start {
                Bound::Included(_) => sql.push_str(" AND key >= ?3"),
                Bound::Excluded(_) => sql.push_str(" AND key > ?3"),
                Bound::Unbounded => sql.push_str(" AND ?3 IS NULL"),
            }
            match &end {
                Bound::Included(_) => sql.push_str(" AND key <= ?4"),
                Bound::Excluded(_) => sql.push_str(" AND key < ?4"),
                Bound::Unbounded => sql.push_str(" AND ?4 IS NULL"),
            }
            sql.push_str(if descending { " ORDER BY key DESC" } else { " ORDER BY key ASC" });
            sql.push_str(" LIMIT ?5");
            let bound = |b: &Bound<Vec<u8>>| match b {
                Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
                Bound::Unbounded => None,
            };
            let (s, e) = (bound(&start), bound(&end));
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
            let mut rows = stmt
                .query(params![now.text, now.secs, s.as_deref().map(KeyText), e.as_deref().map(KeyText), limit])
                .map_err(sql_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql_err)? {
                out.push(read_item(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, key: &Key) -> Result<Item> {
        check_key(key)?;
        let key = key.clone();
        self.read(move |conn, now| {
            const SQL: &str =
                concat!("SELECT key, value, expires, revision FROM kv WHERE key = ?1 AND ", live!(2, 3), " LIMIT 1");
            let mut stmt = conn.prepare_cached(SQL).map_err(sql_err)?;
            let mut rows = stmt.query(params![KeyText(key.as_bytes()), now.text, now.secs]).map_err(sql_err)?;
            match rows.next().map_err(sql_err)? {
                Some(r) => read_item(r),
                None => Err(Error::not_found(&key)),
            }
        })
        .await
    }

    async fn create(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            if exists_live(tx, &item.key, now)?.is_some() {
                return Err(Error::already_exists(&item.key));
            }
            let item = item.with_revision(new_revision());
            put_row(tx, &item, now, events)?;
            Ok(Lease::of(&item))
        })
        .await
    }

    async fn put(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            let item = item.with_revision(new_revision());
            put_row(tx, &item, now, events)?;
            Ok(Lease::of(&item))
        })
        .await
    }

    async fn update(&self, item: Item) -> Result<Lease> {
        check_key(&item.key)?;
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            if exists_live(tx, &item.key, now)?.is_none() {
                return Err(Error::not_found(&item.key));
            }
            let item = item.with_revision(new_revision());
            put_row(tx, &item, now, events)?;
            Ok(Lease::of(&item))
        })
        .await
    }

    async fn compare_and_swap(&self, expected: Item, replace_with: Item) -> Result<Lease> {
        check_key(&expected.key)?;
        if expected.key != replace_with.key {
            return Err(Error::bad_parameter("expected and replace_with keys should match"));
        }
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            const SQL: &str = concat!("SELECT value FROM kv WHERE key = ?1 AND ", live!(2, 3), " LIMIT 1");
            let current: Option<Vec<u8>> = {
                let mut stmt = tx.prepare_cached(SQL).map_err(sql_err)?;
                let mut rows =
                    stmt.query(params![KeyText(expected.key.as_bytes()), now.text, now.secs]).map_err(sql_err)?;
                match rows.next().map_err(sql_err)? {
                    Some(r) => Some(r.get::<_, Option<Vec<u8>>>(0).map_err(sql_err)?.unwrap_or_default()),
                    None => None,
                }
            };
            match current {
                None => {
                    return Err(Error::new(ErrorKind::CompareFailed, format!("key {:?} is not found", expected.key)));
                }
                Some(v) if v != expected.value => {
                    return Err(Error::new(
                        ErrorKind::CompareFailed,
                        format!("current value does not match expected for {:?}", expected.key),
                    ));
                }
                Some(_) => {}
            }
            let item = replace_with.with_revision(new_revision());
            put_row(tx, &item, now, events)?;
            Ok(Lease::of(&item))
        })
        .await
    }

    async fn conditional_update(&self, item: Item) -> Result<Lease> {
        if item.key.is_empty() || item.revision.is_empty() {
            return Err(Error::incorrect_revision(&item.key));
        }
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            match exists_live(tx, &item.key, now)? {
                Some(rev) if rev == stored_revision(&item.revision) => {}
                _ => return Err(Error::incorrect_revision(&item.key)),
            }
            let item = item.with_revision(new_revision());
            put_row(tx, &item, now, events)?;
            Ok(Lease::of(&item))
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        check_key(key)?;
        let key = key.clone();
        let events = !self.inner.events_off;
        self.write(
            move |tx, now| {
                if delete_row(tx, &key, now, events, false)? { Ok(()) } else { Err(Error::not_found(&key)) }
            },
        )
        .await
    }

    async fn conditional_delete(&self, key: &Key, revision: &str) -> Result<()> {
        if key.is_empty() || revision.is_empty() {
            return Err(Error::incorrect_revision(key));
        }
        let key = key.clone();
        let revision = revision.to_string();
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            match exists_live(tx, &key, now)? {
                Some(rev) if rev == stored_revision(&revision) => {}
                _ => return Err(Error::incorrect_revision(&key)),
            }
            delete_row(tx, &key, now, events, true)?;
            Ok(())
        })
        .await
    }

    async fn delete_range(&self, start: &Key, end: &Key) -> Result<()> {
        check_key(start)?;
        check_key(end)?;
        let (start, end) = (start.clone(), end.clone());
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            let upper = if end.is_no_end() { "" } else { " AND key <= ?2" };
            if events {
                let sql = format!(
                    "INSERT INTO events(type, created, kv_key, kv_modified, kv_revision) \
                     SELECT ?3, ?4, key, ?5, revision FROM kv WHERE key >= ?1{upper} ORDER BY key"
                );
                tx.prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.execute(params![
                            KeyText(start.as_bytes()),
                            KeyText(end.as_bytes()),
                            OpType::Delete.code().to_string(),
                            now.text,
                            now.nanos
                        ])
                    })
                    .map_err(sql_err)?;
            }
            let deleted = if end.is_no_end() {
                tx.prepare_cached("DELETE FROM kv WHERE key >= ?1")
                    .and_then(|mut s| s.execute([KeyText(start.as_bytes())]))
            } else {
                tx.prepare_cached("DELETE FROM kv WHERE key >= ?1 AND key <= ?2")
                    .and_then(|mut s| s.execute([KeyText(start.as_bytes()), KeyText(end.as_bytes())]))
            };
            deleted.map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn keep_alive(&self, lease: &Lease, expires: SystemTime) -> Result<()> {
        check_key(&lease.key)?;
        let key = lease.key.clone();
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            const SQL: &str =
                concat!("SELECT key, value, expires, revision FROM kv WHERE key = ?1 AND ", live!(2, 3), " LIMIT 1");
            let current = {
                let mut stmt = tx.prepare_cached(SQL).map_err(sql_err)?;
                let mut rows = stmt.query(params![KeyText(key.as_bytes()), now.text, now.secs]).map_err(sql_err)?;
                match rows.next().map_err(sql_err)? {
                    Some(r) => read_item(r)?,
                    None => return Err(Error::not_found(&key)),
                }
            };
            // One new revision for both the row and its event (upstream
            // writes two different ones; see docs/backends.md).
            let item = Item { expires: Some(expires), revision: new_revision(), ..current };
            put_row(tx, &item, now, events)?;
            Ok(())
        })
        .await
    }

    async fn atomic_write(&self, actions: Vec<ConditionalAction>) -> Result<String> {
        atomic::validate(&actions)?;
        let events = !self.inner.events_off;
        self.write(move |tx, now| {
            for a in &actions {
                let cur = exists_live(tx, &a.key, now)?;
                let ok = match &a.condition {
                    Condition::Whatever => true,
                    Condition::Exists => cur.is_some(),
                    Condition::NotExists => cur.is_none(),
                    Condition::Revision(r) => cur.as_deref() == Some(stored_revision(r)),
                };
                if !ok {
                    return Err(Error::condition_failed());
                }
            }
            let rev = new_revision();
            for a in actions {
                match a.action {
                    Action::Nop => {}
                    Action::Put(item) => {
                        let item = Item { key: a.key, revision: rev.clone(), ..item };
                        put_row(tx, &item, now, events)?;
                    }
                    Action::Delete => {
                        delete_row(tx, &a.key, now, events, true)?;
                    }
                }
            }
            Ok(rev)
        })
        .await
    }

    async fn put_batch(&self, items: Vec<Item>) -> Result<Vec<String>> {
        for i in &items {
            check_key(&i.key)?;
        }
        let events = !self.inner.events_off;
        let mut revisions = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<Item> = items.by_ref().take(BATCH_ROWS).collect();
            let revs = self
                .write(move |tx, now| {
                    let mut revs = Vec::with_capacity(chunk.len());
                    let mut writer = RowWriter::new(tx, events)?;
                    for item in chunk {
                        let item = item.with_revision(new_revision());
                        writer.put(&item, now)?;
                        revs.push(item.revision);
                    }
                    Ok(revs)
                })
                .await?;
            revisions.extend(revs);
        }
        Ok(revisions)
    }

    async fn delete_batch(&self, keys: Vec<Key>) -> Result<()> {
        let events = !self.inner.events_off;
        for chunk in keys.chunks(BATCH_ROWS) {
            let chunk = chunk.to_vec();
            self.write(move |tx, now| {
                for k in &chunk {
                    delete_row(tx, k, now, events, true)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn new_watcher(&self, watch: Watch) -> Result<Watcher> {
        self.check_open()?;
        if self.inner.events_off {
            return Err(Error::bad_parameter(format!(
                "{}: events are turned off for this backend (events_off: true); watchers are unavailable",
                self.inner.describe()
            )));
        }
        // Catch up with the events table under the poll lock, then
        // subscribe under the same lock: the watcher gets exactly the events
        // of writes committed after this point.
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut last = inner.last_event();
            periodic::catch_up(&inner, &mut last)?;
            inner.fanout.new_watcher(watch)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "sqlite task failed").with_source(e))?
    }

    fn close_watchers(&self) {
        self.inner.fanout.close_watchers();
    }

    async fn close(&self) -> Result<()> {
        self.inner.closed.cancel();
        self.inner.fanout.close();
        Ok(())
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.inner.closed.cancel();
        self.inner.fanout.close();
    }
}

#[cfg(test)]
mod tests;
