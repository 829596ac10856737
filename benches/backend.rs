//! Backend throughput, side by side with the raw speed of the same store in
//! one run: put, get, range scan and batch put with 1 KiB values, for the
//! memory store and SQLite (upstream defaults, and WAL + synchronous=NORMAL),
//! next to raw rusqlite inserts into the same `kv` schema in one transaction.
//!
//! Run with `scripts/bench-backend.sh` (release build); options in
//! `benches/common/mod.rs`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{Row, key, value};
use teleport::backend::Backend;
use teleport::backend::memory::MemoryStore;
use teleport::backend::registry::OpenOptions;
use teleport::backend::sqlite::SqliteBackend;
use teleport::config::SqliteConfig;

/// Raw rusqlite figures for one configuration: what the same file does with
/// no backend code in between.
struct Raw {
    /// INSERT into `kv` only, one transaction, prepared statement.
    insert_kv: f64,
    /// INSERT into `kv` plus an `events` row per item, as every put writes,
    /// committed every 1,000 items as the store's `put_batch` does.
    insert_kv_events: f64,
    /// Point SELECTs by key, random order (ops/s).
    get_rate: f64,
    /// Full ordered scan of the table (items/s).
    scan_rate: f64,
}

/// The physical limit: raw rusqlite on the same schema, with the same
/// pragmas as the store under test.
fn raw_sqlite(dir: &Path, n: usize, journal: Option<&str>, sync: &str) -> Raw {
    let open = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        let conn = rusqlite::Connection::open(d.join("sqlite.db")).expect("open");
        conn.pragma_update(None, "synchronous", sync).expect("pragma");
        if let Some(j) = journal {
            conn.pragma_update(None, "journal_mode", j).expect("pragma");
        }
        conn.execute_batch(
            "CREATE TABLE kv (key TEXT NOT NULL PRIMARY KEY, modified INTEGER NOT NULL, expires DATETIME, value BLOB, revision TEXT NOT NULL DEFAULT '');
             CREATE INDEX kv_expires ON kv (expires);
             CREATE TABLE events (id INTEGER PRIMARY KEY, type TEXT NOT NULL, created INTEGER NOT NULL, kv_key TEXT NOT NULL,
               kv_modified INTEGER NOT NULL, kv_expires DATETIME, kv_value BLOB, kv_revision TEXT NOT NULL DEFAULT '');
             CREATE INDEX events_created ON events (created);",
        )
        .expect("schema");
        conn
    };
    let v = value();
    // Inserts n rows (and event rows if asked), committing every `per_tx`.
    let insert = |conn: &rusqlite::Connection, events: bool, per_tx: usize| {
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let tx = conn.unchecked_transaction().expect("tx");
            {
                let mut kv = tx
                    .prepare_cached(
                        "INSERT INTO kv(key, modified, expires, value, revision) VALUES (?1, ?2, NULL, ?3, ?4)",
                    )
                    .expect("prepare");
                let mut ev = tx
                    .prepare_cached("INSERT INTO events(type, created, kv_key, kv_modified, kv_value, kv_revision) VALUES ('1', ?1, ?2, ?3, ?4, ?5)")
                    .expect("prepare");
                for j in i..(i + per_tx).min(n) {
                    let (k, rev) = (key(j).to_string(), format!("{j:036}"));
                    kv.execute(rusqlite::params![k, j as i64, v, rev]).expect("insert");
                    if events {
                        ev.execute(rusqlite::params!["2026-01-01 00:00:00+00:00", k, j as i64, v, rev])
                            .expect("insert");
                    }
                }
            }
            tx.commit().expect("commit");
            i += per_tx;
        }
        t.elapsed().as_secs_f64()
    };
    let insert_kv_events = insert(&open("raw-events"), true, 1000);
    let conn = open("raw-kv");
    let insert_kv = insert(&conn, false, n);
    let t = Instant::now();
    {
        let mut stmt = conn.prepare("SELECT key, value, expires, revision FROM kv WHERE key = ?1").expect("prepare");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % n as u64) as usize).to_string();
            let _: Vec<u8> = stmt.query_row([k], |r| r.get(1)).expect("get");
        }
    }
    let get_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut stmt = conn.prepare("SELECT key, value, expires, revision FROM kv ORDER BY key").expect("prepare");
    let mut rows = stmt.query([]).expect("scan");
    let mut count = 0;
    while let Some(r) = rows.next().expect("row") {
        let _: Vec<u8> = r.get(1).expect("value");
        count += 1;
    }
    assert_eq!(count, n);
    let scan_rate = n as f64 / t.elapsed().as_secs_f64();
    Raw { insert_kv, insert_kv_events, get_rate, scan_rate }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = common::opts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = o.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut rows = Vec::new();
    let n = o.items;

    let mem: Arc<dyn Backend> = Arc::new(MemoryStore::new().open().expect("memory"));
    common::workload("memory", mem, &o, &mut rows).await;

    for (label, dir, journal, sync) in [
        ("sqlite (defaults: FULL, rollback journal)", "sqlite-default", None, "FULL"),
        ("sqlite (journal: WAL, sync: NORMAL)", "sqlite-wal", Some("WAL"), "NORMAL"),
    ] {
        let raw = raw_sqlite(&base.join(format!("{dir}-raw")), n, journal, sync);
        let raw_label = format!("rusqlite raw, same pragmas as {label}");
        rows.push(Row::new(&raw_label, "insert kv, 1 tx", n, raw.insert_kv, "physical limit of a bare insert"));
        rows.push(Row::new(
            &raw_label,
            "insert kv + events, 1000 rows per tx",
            n,
            raw.insert_kv_events,
            "the rows put_batch writes, committed as put_batch does",
        ));
        rows.push(Row::new(&raw_label, "get", n, n as f64 / raw.get_rate, "prepared point select"));
        rows.push(Row::new(&raw_label, "range scan", n, n as f64 / raw.scan_rate, "ordered table scan"));

        let mut cfg = SqliteConfig::new(base.join(dir));
        cfg.journal = journal.map(str::to_string);
        cfg.sync = Some(sync.to_string());
        let b: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&cfg, OpenOptions::create()).await.expect("sqlite"));
        let first = rows.len();
        common::workload(label, b, &o, &mut rows).await;
        let store_rows = &mut rows[first..];
        common::ratio(store_rows, &["get"], raw.get_rate, "raw get");
        common::ratio(store_rows, &["range scan"], raw.scan_rate, "raw scan");
        let writes = ["put_batch", "put", "put x16"];
        common::ratio(store_rows, &writes, n as f64 / raw.insert_kv, "raw insert");
        common::ratio(store_rows, &writes, n as f64 / raw.insert_kv_events, "raw insert+events");
    }

    common::print("Backend throughput (memory, SQLite)", &o, &rows);
}
