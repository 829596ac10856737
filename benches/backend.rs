//! Backend throughput, side by side with the raw speed of the same store in
//! one run: put, get, range scan and batch put with 1 KiB values, for the
//! memory store and SQLite (upstream defaults, and WAL + synchronous=NORMAL),
//! next to raw rusqlite inserts into the same `kv` schema in one transaction.
//!
//! Run with `scripts/bench-backend.sh` (release build). Options:
//! `--items N` (default 100000), `--seconds S` time cap per single-op phase
//! (default 10), `--dir PATH` where databases go (default a temp dir).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use teleport::backend::memory::MemoryStore;
use teleport::backend::registry::OpenOptions;
use teleport::backend::sqlite::SqliteBackend;
use teleport::backend::{Backend, Item, ItemsParams, Key};
use teleport::config::SqliteConfig;

struct Opts {
    items: usize,
    seconds: f64,
    dir: Option<PathBuf>,
}

fn opts() -> Opts {
    let mut o = Opts { items: 100_000, seconds: 10.0, dir: None };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).cloned();
        match args[i].as_str() {
            "--items" => o.items = next.and_then(|v| v.parse().ok()).unwrap_or(o.items),
            "--seconds" => o.seconds = next.and_then(|v| v.parse().ok()).unwrap_or(o.seconds),
            "--dir" => o.dir = next.map(PathBuf::from),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn key(i: usize) -> Key {
    Key::from(format!("/bench/items/{i:08}"))
}

fn value() -> Vec<u8> {
    (0..1024u32).map(|i| (i % 251) as u8).collect()
}

struct Row {
    store: String,
    op: &'static str,
    ops: usize,
    secs: f64,
    note: String,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Puts one item at a time (each its own transaction) until `n` or the cap.
async fn put_seq(b: &dyn Backend, start: usize, n: usize, cap: f64) -> (usize, f64) {
    let v = value();
    let t = Instant::now();
    let mut done = 0;
    while done < n && t.elapsed().as_secs_f64() < cap {
        b.put(Item::new(key(start + done), v.clone())).await.expect("put");
        done += 1;
    }
    (done, t.elapsed().as_secs_f64())
}

async fn put_concurrent(b: Arc<dyn Backend>, start: usize, n: usize, cap: f64, tasks: usize) -> (usize, f64) {
    let t = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..tasks {
        let b = b.clone();
        let counter = counter.clone();
        hs.push(tokio::spawn(async move {
            let v = value();
            loop {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n || t.elapsed().as_secs_f64() >= cap {
                    return;
                }
                b.put(Item::new(key(start + i), v.clone())).await.expect("put");
            }
        }));
    }
    for h in hs {
        h.await.expect("task");
    }
    let done = counter.load(std::sync::atomic::Ordering::Relaxed).min(n);
    (done, t.elapsed().as_secs_f64())
}

async fn put_batch(b: &dyn Backend, n: usize) -> f64 {
    let v = value();
    let t = Instant::now();
    let per = b.limits().max_batch_items.max(1);
    let mut i = 0;
    while i < n {
        let items: Vec<_> = (i..(i + per).min(n)).map(|j| Item::new(key(j), v.clone())).collect();
        i += items.len();
        b.put_batch(items).await.expect("put batch");
    }
    t.elapsed().as_secs_f64()
}

async fn gets(b: &dyn Backend, n: usize, cap: f64) -> (usize, f64) {
    let t = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut done = 0;
    while done < n && t.elapsed().as_secs_f64() < cap {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.get(&key((x % n as u64) as usize)).await.expect("get");
        done += 1;
    }
    (done, t.elapsed().as_secs_f64())
}

async fn scan(b: &dyn Backend, n: usize) -> f64 {
    let t = Instant::now();
    let prefix = Key::from("/bench/items/");
    let mut s = b.items(ItemsParams::prefix(&prefix));
    let mut count = 0;
    while let Some(i) = s.next().await {
        i.expect("scan");
        count += 1;
    }
    assert_eq!(count, n, "scan saw every item");
    t.elapsed().as_secs_f64()
}

async fn bench_store(name: &str, b: Arc<dyn Backend>, o: &Opts, rows: &mut Vec<Row>) {
    let n = o.items;
    let secs = put_batch(b.as_ref(), n).await;
    rows.push(Row {
        store: name.into(),
        op: "put_batch",
        ops: n,
        secs,
        note: format!("{} items per batch", b.limits().max_batch_items),
    });
    let secs = scan(b.as_ref(), n).await;
    rows.push(Row { store: name.into(), op: "range scan", ops: n, secs, note: "items() over the prefix".into() });
    let (ops, secs) = gets(b.as_ref(), n, o.seconds).await;
    rows.push(Row { store: name.into(), op: "get", ops, secs, note: "random keys, one task".into() });
    let (ops, secs) = put_seq(b.as_ref(), n, n, o.seconds).await;
    rows.push(Row { store: name.into(), op: "put", ops, secs, note: "one task, one write per call".into() });
    let (ops, secs) = put_concurrent(b.clone(), 2 * n, n, o.seconds, 16).await;
    rows.push(Row { store: name.into(), op: "put x16", ops, secs, note: "16 concurrent tasks".into() });
    b.close().await.expect("close");
}

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
    let o = opts();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = o.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut rows = Vec::new();
    let n = o.items;

    let mem: Arc<dyn Backend> = Arc::new(MemoryStore::new().open().expect("memory"));
    bench_store("memory", mem, &o, &mut rows).await;

    for (label, dir, journal, sync) in [
        ("sqlite (defaults: FULL, rollback journal)", "sqlite-default", None, "FULL"),
        ("sqlite (journal: WAL, sync: NORMAL)", "sqlite-wal", Some("WAL"), "NORMAL"),
    ] {
        let raw = raw_sqlite(&base.join(format!("{dir}-raw")), n, journal, sync);
        let raw_label = format!("rusqlite raw, same pragmas as {label}");
        rows.push(Row {
            store: raw_label.clone(),
            op: "insert kv, 1 tx",
            ops: n,
            secs: raw.insert_kv,
            note: "physical limit of a bare insert".into(),
        });
        rows.push(Row {
            store: raw_label.clone(),
            op: "insert kv + events, 1000 rows per tx",
            ops: n,
            secs: raw.insert_kv_events,
            note: "the rows put_batch writes, committed as put_batch does".into(),
        });
        rows.push(Row {
            store: raw_label.clone(),
            op: "get",
            ops: n,
            secs: n as f64 / raw.get_rate,
            note: "prepared point select".into(),
        });
        rows.push(Row {
            store: raw_label,
            op: "range scan",
            ops: n,
            secs: n as f64 / raw.scan_rate,
            note: "ordered table scan".into(),
        });

        let mut cfg = SqliteConfig::new(base.join(dir));
        cfg.journal = journal.map(str::to_string);
        cfg.sync = Some(sync.to_string());
        let b: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&cfg, OpenOptions::create()).await.expect("sqlite"));
        let first = rows.len();
        bench_store(label, b, &o, &mut rows).await;
        let insert_rate = n as f64 / raw.insert_kv;
        let insert_events_rate = n as f64 / raw.insert_kv_events;
        for r in &mut rows[first..] {
            let ratio = match r.op {
                "get" => format!("{:.0}% of raw get", 100.0 * r.rate() / raw.get_rate),
                "range scan" => format!("{:.0}% of raw scan", 100.0 * r.rate() / raw.scan_rate),
                _ => format!(
                    "{:.0}% of raw insert, {:.0}% of raw insert+events",
                    100.0 * r.rate() / insert_rate,
                    100.0 * r.rate() / insert_events_rate
                ),
            };
            r.note = format!("{}; {ratio}", r.note);
        }
    }

    println!("Backend throughput: {} items, 1 KiB values, single-op phases capped at {} s", n, o.seconds);
    println!();
    println!("| store | operation | ops | seconds | ops/s | notes |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {:.2} | {:.0} | {} |", r.store, r.op, r.ops, r.secs, r.rate(), r.note);
    }
}
