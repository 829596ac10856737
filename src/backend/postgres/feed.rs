//! The change feed behind watchers, as upstream's pgbk: PostgreSQL's own
//! logical decoding. Each handle that has watchers owns a TEMPORARY logical
//! replication slot (dropped by the server when the feed's session ends) on
//! its own connection, decoded by the `wal2json` output plugin, and reads it
//! with `pg_logical_slot_get_changes` (plain SQL, no replication protocol)
//! every `change_feed_poll_interval`, at once after a write of its own, and
//! back to back while a poll returns a full batch.
//!
//! Logical decoding hands out every committed change to `kv`, in commit
//! order, exactly once per slot: writes of every process sharing the
//! database (ours or upstream's), deletes by any expiry purge, and changes
//! made by hand in SQL. Since the slot exists before a watcher gets `Init`,
//! a watcher sees every change committed after its `Init`.
//!
//! If the feed fails (connection lost, slot dropped), changes may have been
//! missed: every watcher is closed (its owner re-reads and watches again, as
//! after upstream's buffer reset), and a new slot is made; new watchers get
//! `Init` once it exists.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio_postgres::{Client, Statement};

use super::Inner;
use super::conn::ConnSpec;
use super::sql::pg_err;
use crate::backend::{Error, ErrorKind, Event, Fanout, Item, Key, Result, Watch, Watcher};

/// How long creating a slot may take (it waits for transactions running at
/// that moment to finish).
pub const CREATE_SLOT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one poll may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before a lost feed is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);
/// The output plugin (upstream's).
pub const PLUGIN: &str = "wal2json";

/// The watchers of one handle. The fan-out is replaced when the feed is
/// lost: its watchers are closed, and watchers that subscribe while no feed
/// runs get `Init` once a new one does.
pub struct Watchers {
    state: Mutex<WatchState>,
}

struct WatchState {
    fanout: Fanout,
    closed: bool,
}

impl Default for Watchers {
    fn default() -> Watchers {
        Watchers { state: Mutex::new(WatchState { fanout: Fanout::default(), closed: false }) }
    }
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes `watch`; `Init` comes once the feed runs.
    pub fn subscribe(&self, watch: Watch) -> Result<Watcher> {
        self.lock().fanout.new_watcher(watch)
    }

    /// Fans out events, in order.
    pub fn emit(&self, events: Vec<Event>) {
        if !events.is_empty() {
            self.lock().fanout.emit(events);
        }
    }

    /// The feed runs: watchers get `Init`.
    pub fn set_initialized(&self) {
        self.lock().fanout.set_initialized();
    }

    /// The feed was lost: closes every watcher, and makes new ones wait for
    /// the next feed's `Init`.
    pub fn reset(&self) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.fanout.close();
        st.fanout = Fanout::default();
    }

    /// Closes every watcher; new ones may subscribe.
    pub fn close_watchers(&self) {
        self.lock().fanout.close_watchers();
    }

    /// Closes every watcher and refuses new ones.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.fanout.close();
    }
}

/// A running feed: its connection, which holds the temporary slot.
pub struct Session {
    client: Client,
    slot: String,
    tables: String,
    poll: Statement,
}

/// Connects, and creates the temporary slot.
pub async fn start(spec: &ConnSpec) -> Result<Session> {
    let client = spec.connect().await?;
    // Every poll of a slot logs at LOG level; silence this session if we
    // may (superusers only; harmless otherwise).
    if let Err(e) = client.batch_execute("SET log_min_messages TO fatal").await {
        tracing::debug!(server = %spec.target, error = %pg_err(e), "could not quiet the change feed's server log");
    }
    let row = client
        .query_one(
            "SELECT nsp.nspname FROM pg_class AS cl JOIN pg_namespace AS nsp ON cl.relnamespace = nsp.oid \
             WHERE cl.oid = 'kv'::regclass",
            &[],
        )
        .await
        .map_err(|e| pg_err(e).context("find the kv table"))?;
    let schema: String = row.try_get(0).map_err(|e| pg_err(e).context("find the kv table"))?;
    let tables = format!("{}.kv", wal2json_escape(&schema));
    let slot = format!("teleport_{}", uuid::Uuid::new_v4().simple());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&slot, &PLUGIN];
    let create = client.execute("SELECT 1 FROM pg_create_logical_replication_slot($1, $2, true)", &params);
    match tokio::time::timeout(CREATE_SLOT_TIMEOUT, create).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(slot_err(pg_err(e))),
        Err(_) => {
            return Err(Error::new(
                ErrorKind::ConnectionProblem,
                format!(
                    "creating the change feed's replication slot took over {CREATE_SLOT_TIMEOUT:?} \
                     (it waits for running transactions to finish)"
                ),
            ));
        }
    }
    let poll = client
        .prepare(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, $2, \
             'format-version', '2', 'add-tables', $3, 'include-transaction', 'false')",
        )
        .await
        .map_err(|e| pg_err(e).context("prepare the change feed poll"))?;
    tracing::info!(server = %spec.target, slot = %slot, "postgres change feed started");
    Ok(Session { client, slot, tables, poll })
}

/// Adds what to do to the errors the server gives when logical decoding is
/// not set up.
fn slot_err(e: Error) -> Error {
    let m = e.message();
    let hint = if m.contains("wal_level") {
        "; watchers need logical decoding: set wal_level = logical in postgresql.conf and restart PostgreSQL"
    } else if m.contains(PLUGIN) {
        "; watchers need the wal2json output plugin on the server (Debian: postgresql-<version>-wal2json)"
    } else if m.contains("replication slot") && m.contains("in use") {
        "; raise max_replication_slots (each watching handle uses one)"
    } else if e.kind() == ErrorKind::AccessDenied {
        "; the role needs the REPLICATION attribute (ALTER ROLE <user> REPLICATION)"
    } else {
        ""
    };
    Error::new(e.kind(), format!("create the change feed's replication slot: {m}{hint}"))
}

impl Session {
    /// Reads up to `batch` changes and fans them out; returns how many
    /// changes were read.
    async fn poll(&self, batch: i32, watchers: &Watchers) -> Result<usize> {
        let rows = self
            .client
            .query(&self.poll, &[&self.slot, &batch, &self.tables])
            .await
            .map_err(|e| pg_err(e).context("read the change feed"))?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let data: &str = row.try_get(0).map_err(|e| pg_err(e).context("read the change feed"))?;
            events.extend(parse(data)?);
        }
        watchers.emit(events);
        Ok(rows.len())
    }
}

/// Runs a started feed until the handle closes, starting a new one when it
/// is lost.
pub async fn run(inner: Arc<Inner>, mut session: Session) {
    let batch = i32::try_from(inner.feed_batch).unwrap_or(i32::MAX);
    loop {
        let err = loop {
            if inner.closed.is_cancelled() {
                return;
            }
            let polled = tokio::select! {
                _ = inner.closed.cancelled() => return,
                r = tokio::time::timeout(POLL_TIMEOUT, session.poll(batch, &inner.watchers)) => r,
            };
            match polled {
                Ok(Ok(n)) if n >= inner.feed_batch => continue,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => break e,
                Err(_) => break Error::new(ErrorKind::ConnectionProblem, format!("a poll took over {POLL_TIMEOUT:?}")),
            }
            tokio::select! {
                _ = inner.closed.cancelled() => return,
                _ = tokio::time::sleep(inner.poll_interval) => {}
                _ = inner.wake.notified() => {}
            }
        };
        tracing::warn!(
            store = %inner.what,
            error = %err,
            "change feed lost; closing watchers (they re-read and watch again) and starting a new feed"
        );
        inner.watchers.reset();
        drop(session);
        session = loop {
            tokio::select! {
                _ = inner.closed.cancelled() => return,
                _ = tokio::time::sleep(RESTART_DELAY) => {}
            }
            match start(&inner.feed_spec).await {
                Ok(s) => break s,
                Err(e) => tracing::warn!(store = %inner.what, error = %e, "could not start the change feed; retrying"),
            }
        };
        inner.watchers.set_initialized();
    }
}

/// wal2json's escaping for `add-tables`: a backslash before every character.
pub fn wal2json_escape(s: &str) -> String {
    let mut out = String::with_capacity(2 * s.len());
    for c in s.chars() {
        out.push('\\');
        out.push(c);
    }
    out
}

#[derive(Debug, Deserialize)]
struct Message<'a> {
    action: &'a str,
    #[serde(default, borrow)]
    columns: Vec<Column<'a>>,
    #[serde(default, borrow)]
    identity: Vec<Column<'a>>,
}

#[derive(Debug, Deserialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(borrow)]
    value: Option<std::borrow::Cow<'a, str>>,
}

fn bad(m: String) -> Error {
    Error::new(ErrorKind::Internal, format!("change feed: {m}"))
}

impl<'a> Message<'a> {
    fn new_col(&self, name: &str) -> Option<&Column<'a>> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn old_col(&self, name: &str) -> Option<&Column<'a>> {
        self.identity.iter().find(|c| c.name == name)
    }

    /// The new value, or the old one for an unchanged TOASTed column (which
    /// wal2json leaves out of `columns`).
    fn col(&self, name: &str) -> Option<&Column<'a>> {
        self.new_col(name).or_else(|| self.old_col(name))
    }

    fn item(&self, action: &str) -> Result<Item> {
        let key = bytea(self.col("key"), "key", action)?;
        let value = bytea(self.col("value"), "value", action)?;
        let expires = timestamptz(self.col("expires"), action)?;
        let revision = text(self.col("revision"), "revision", action)?.to_string();
        Ok(Item { key: Key::from(key), value, expires, revision })
    }
}

fn text<'c>(c: Option<&'c Column<'_>>, name: &str, action: &str) -> Result<&'c str> {
    match c {
        None => Err(bad(format!("{action}: column {name} is missing"))),
        Some(Column { value: None, .. }) => Err(bad(format!("{action}: column {name} is NULL"))),
        Some(Column { value: Some(v), .. }) => Ok(v),
    }
}

fn bytea(c: Option<&Column<'_>>, name: &str, action: &str) -> Result<Vec<u8>> {
    let v = text(c, name, action)?;
    let hex_digits = v.strip_prefix("\\x").unwrap_or(v);
    hex::decode(hex_digits).map_err(|e| bad(format!("{action}: column {name} is not hex bytea: {e}")))
}

fn timestamptz(c: Option<&Column<'_>>, action: &str) -> Result<Option<SystemTime>> {
    match c {
        None => Err(bad(format!("{action}: column expires is missing"))),
        Some(Column { value: None, .. }) => Ok(None),
        Some(Column { value: Some(v), .. }) => {
            parse_timestamptz(v).map(Some).ok_or_else(|| bad(format!("{action}: unreadable expires {v:?}")))
        }
    }
}

/// PostgreSQL's ISO output of a timestamptz: `2023-09-05 15:57:01.340426+00`
/// (the feed's session runs with `TimeZone=UTC`, `DateStyle=ISO`; other
/// offsets are read too).
pub fn parse_timestamptz(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z").ok()?;
    Some(SystemTime::from(t.with_timezone(&chrono::Utc)))
}

/// Turns one wal2json (format 2) message about `kv` into events.
pub fn parse(data: &str) -> Result<Vec<Event>> {
    let m: Message<'_> = serde_json::from_str(data).map_err(|e| bad(format!("unreadable wal2json message: {e}")))?;
    match m.action {
        // Begin, commit and logical messages carry no change.
        "B" | "C" | "M" => Ok(Vec::new()),
        "I" => Ok(vec![Event::put(m.item("insert")?)]),
        "D" => {
            let key = bytea(m.old_col("key"), "key", "delete")?;
            Ok(vec![Event::delete(Key::from(key))])
        }
        "U" => {
            let item = m.item("update")?;
            let old_key = match m.old_col("key") {
                Some(c) if c.value.is_some() => Some(bytea(Some(c), "key", "update")?),
                _ => None,
            };
            match old_key {
                Some(old) if old != item.key.as_bytes() => Ok(vec![Event::delete(Key::from(old)), Event::put(item)]),
                _ => Ok(vec![Event::put(item)]),
            }
        }
        "T" => Err(bad("the kv table was truncated".to_string())),
        other => Err(bad(format!("unexpected wal2json action {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::OpType;

    const REV: &str = "e9549cec-8768-4101-ba28-868ae7e22e71";

    #[test]
    fn timestamps() {
        let t = parse_timestamptz("2023-09-05 15:57:01.340426+00").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!((d.as_secs(), d.subsec_micros()), (1693929421, 340426));
        assert_eq!(parse_timestamptz("2023-09-05 17:57:01.340426+02"), Some(t));
        assert!(parse_timestamptz("2023-09-05 15:57:01+00").is_some());
        assert!(parse_timestamptz("2023-09-05 15:57:01+05:30").is_some());
        assert!(parse_timestamptz("infinity").is_none());
    }

    #[test]
    fn insert_update_delete() {
        let ins = format!(
            r#"{{"action":"I","schema":"public","table":"kv","columns":[{{"name":"key","type":"bytea","value":"666f6f"}},{{"name":"value","type":"bytea","value":"\\x626172"}},{{"name":"expires","type":"timestamp with time zone","value":null}},{{"name":"revision","type":"uuid","value":"{REV}"}}]}}"#
        );
        let ev = parse(&ins).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].op, ev[0].item.key.as_bytes(), &ev[0].item.value[..]),
            (OpType::Put, &b"foo"[..], &b"bar"[..])
        );
        assert_eq!((ev[0].item.expires, ev[0].item.revision.as_str()), (None, REV));

        // An unchanged TOASTed value is only in the old row.
        let upd = format!(
            r#"{{"action":"U","columns":[{{"name":"key","type":"bytea","value":"666f6f"}},{{"name":"expires","type":"timestamp with time zone","value":"2023-09-05 15:57:01.340426+00"}},{{"name":"revision","type":"uuid","value":"{REV}"}}],"identity":[{{"name":"key","type":"bytea","value":"666f6f"}},{{"name":"value","type":"bytea","value":"626172"}},{{"name":"expires","type":"timestamp with time zone","value":null}},{{"name":"revision","type":"uuid","value":"{REV}"}}]}}"#
        );
        let ev = parse(&upd).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].op, &ev[0].item.value[..]), (OpType::Put, &b"bar"[..]));
        assert!(ev[0].item.expires.is_some());

        let del = r#"{"action":"D","identity":[{"name":"key","type":"bytea","value":"666f6f"},{"name":"value","type":"bytea","value":""}]}"#;
        let ev = parse(del).unwrap();
        assert_eq!((ev[0].op, ev[0].item.key.as_bytes()), (OpType::Delete, &b"foo"[..]));

        assert!(parse(r#"{"action":"B"}"#).unwrap().is_empty());
        assert!(parse(r#"{"action":"T"}"#).is_err());
        assert!(parse(r#"{"action":"I","columns":[]}"#).unwrap_err().to_string().contains("key is missing"));
        assert!(parse("not json").is_err());
    }

    #[test]
    fn escape() {
        assert_eq!(wal2json_escape("public"), r"\p\u\b\l\i\c");
    }
}
