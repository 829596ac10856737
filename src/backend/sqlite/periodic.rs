//! The background loop of a SQLite handle (upstream `periodic.go`), every
//! `poll_stream_period` or sooner after a local write:
//! - remove expired rows, writing a Delete event for each;
//! - remove event rows older than [`EVENTS_TTL`] (always keeping the newest,
//!   so row ids never restart and no poller misses events);
//! - read event rows after the last one seen and fan them out to watchers.
//!
//! Because watchers read the events table, they see writes made by other
//! processes on the same file.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;

use super::Inner;
use super::db::{self, KeyText, Now, sql_err};
use crate::backend::{Event, Item, Key, OpType, Result};

/// How long event rows are kept (upstream `DefaultEventsTTL`).
pub const EVENTS_TTL: Duration = Duration::from_secs(600);

/// Runs until the handle is closed.
pub async fn run(inner: Arc<Inner>) {
    let period = inner.poll_period;
    loop {
        tokio::select! {
            _ = inner.closed.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
            _ = inner.wake.notified() => {}
        }
        let i = inner.clone();
        let res = tokio::task::spawn_blocking(move || tick(&i)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if inner.closed.is_cancelled() {
                    return;
                }
                tracing::warn!(store = %inner.describe(), error = %e, "sqlite background poll failed; retrying");
            }
            Err(e) => {
                tracing::error!(store = %inner.describe(), error = %e, "sqlite background poll panicked");
                return;
            }
        }
    }
}

fn tick(inner: &Inner) -> Result<()> {
    let now = Now::at(inner.clock.now());
    {
        let mut conn = inner.conn();
        remove_expired(&mut conn, inner, &now)?;
        remove_old_events(&conn, inner)?;
    }
    if inner.events_off {
        return Ok(());
    }
    let mut last_id = inner.last_event();
    catch_up(inner, &mut last_id)
}

/// Reads and fans out every event row after `last_id`. Callers hold the
/// poll lock (`last_id`'s guard) so that a watcher registered under the same
/// lock sees exactly the events after its `Init`. Lock order: poll, then
/// connection.
pub fn catch_up(inner: &Inner, last_id: &mut i64) -> Result<()> {
    let conn = inner.conn();
    *last_id = poll_events(&conn, inner, *last_id)?;
    Ok(())
}

fn remove_expired(conn: &mut rusqlite::Connection, inner: &Inner, now: &Now) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql_err)?;
    let keys: Vec<Key> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT key FROM kv WHERE (expires <= ?1 AND typeof(expires) NOT IN ('integer','real')) \
                 OR (expires <= ?2 AND typeof(expires) IN ('integer','real')) LIMIT ?3",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map(params![now.text, now.secs, inner.buffer_size as i64], |r| {
                let v = r.get_ref(0)?;
                Ok(Key::from(match v {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                    _ => Vec::new(),
                }))
            })
            .map_err(sql_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql_err)?
    };
    if keys.is_empty() {
        return Ok(());
    }
    {
        let mut del = tx.prepare_cached("DELETE FROM kv WHERE key = ?1").map_err(sql_err)?;
        for k in &keys {
            del.execute([KeyText(k.as_bytes())]).map_err(sql_err)?;
            if !inner.events_off {
                db::insert_event(&tx, OpType::Delete, now, &Item::new(k.clone(), Vec::new()))?;
            }
        }
    }
    tx.commit().map_err(sql_err)?;
    tracing::debug!(store = %inner.describe(), removed = keys.len(), "removed expired items");
    Ok(())
}

fn remove_old_events(conn: &rusqlite::Connection, inner: &Inner) -> Result<()> {
    let cutoff = Now::at(inner.clock.now().checked_sub(EVENTS_TTL).unwrap_or(std::time::UNIX_EPOCH));
    conn.prepare_cached("DELETE FROM events WHERE created < ?1 AND id < (SELECT MAX(id) FROM events)")
        .and_then(|mut s| s.execute([&cutoff.text]))
        .map_err(sql_err)?;
    Ok(())
}

fn poll_events(conn: &rusqlite::Connection, inner: &Inner, mut last_id: i64) -> Result<i64> {
    let page = (inner.buffer_size / 2).max(1) as i64;
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, type, kv_key, kv_value, kv_expires, kv_revision FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .map_err(sql_err)?;
    loop {
        let mut events = Vec::new();
        let mut rows = stmt.query(params![last_id, page]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            last_id = r.get(0).map_err(sql_err)?;
            let op = match r.get_ref(1).map_err(sql_err)? {
                rusqlite::types::ValueRef::Integer(i) => OpType::from_code(i),
                rusqlite::types::ValueRef::Text(t) => {
                    std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()).and_then(OpType::from_code)
                }
                _ => None,
            };
            let Some(op) = op else { continue };
            let mut item = db::read_item_at(r, 2)?;
            if op == OpType::Delete {
                item.value.clear();
                item.expires = None;
            }
            events.push(Event { op, item });
        }
        let n = events.len() as i64;
        inner.fanout.emit(events);
        if n < page {
            return Ok(last_id);
        }
    }
}
