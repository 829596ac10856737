//! The PostgreSQL store's throughput next to the raw speed of the same
//! server with the same client (tokio-postgres) in one run: the standard
//! workload (`benches/common`) against a private PostgreSQL 15 started by
//! testcontainers, then the same rows written and read by plain SQL on the
//! same table layout: multi-row `INSERT ... UNNEST` batches of 1,000 (what
//! the store's `put_batch` sends), binary `COPY`, an ordered `SELECT` scan,
//! prepared point selects, and single-row upserts from 1 and 16 tasks.
//!
//! The store runs twice: with no watcher (the standard workload), and with
//! one watcher draining events, so the cost of the change feed (logical
//! decoding of every write) is visible.
//!
//! Run with `BENCHES=store_postgres scripts/bench-backend.sh --items 100000`
//! after `scripts/install-test-services.sh postgres`.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use common::{Row, key, value};
use futures::StreamExt;
use teleport::backend::postgres::PostgresBackend;
use teleport::backend::registry::OpenOptions;
use teleport::backend::{Backend, Watch};
use teleport::config::PostgresConfig;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

const SCHEMA: &str = "CREATE TABLE kv (key bytea NOT NULL, value bytea NOT NULL, expires timestamptz, \
     revision uuid NOT NULL, CONSTRAINT kv_pkey PRIMARY KEY (key));
     CREATE INDEX kv_expires_idx ON kv (expires) WHERE expires IS NOT NULL;
     ALTER TABLE kv REPLICA IDENTITY FULL;";

const UPSERT: &str = "INSERT INTO kv (key, value, expires, revision) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision";

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// A fresh database with the store's table, and a client on it.
async fn fresh(admin: &Client, base: &str, db: &str) -> (Client, String) {
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.expect("drop database");
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.expect("create database");
    let url = format!("{base}/{db}?sslmode=disable");
    let c = connect(&url).await;
    c.batch_execute(SCHEMA).await.expect("schema");
    (c, url)
}

/// Raw SQL on the same server and layout, as rows of the table.
async fn raw(admin: &Client, base: &str, o: &common::Opts, pool: usize, rows: &mut Vec<Row>) -> [f64; 5] {
    let n = o.items;
    let v = value();
    let label = "tokio-postgres raw, same server and table";

    // Multi-row INSERT ... UNNEST, 1,000 rows per statement.
    let (c, _) = fresh(admin, base, "raw_unnest").await;
    let st = c
        .prepare(
            "INSERT INTO kv (key, value, expires, revision) \
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::timestamptz[], $4::uuid[])",
        )
        .await
        .expect("prepare");
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let keys: Vec<Vec<u8>> = (i..end).map(|j| key(j).into_bytes()).collect();
        let values: Vec<&[u8]> = (i..end).map(|_| v.as_slice()).collect();
        let expires: Vec<Option<SystemTime>> = vec![None; end - i];
        let revs: Vec<uuid::Uuid> = (i..end).map(|_| uuid::Uuid::new_v4()).collect();
        c.execute(&st, &[&keys, &values, &expires, &revs]).await.expect("insert");
        i = end;
    }
    let unnest = t.elapsed().as_secs_f64();
    rows.push(Row::new(label, "INSERT ... UNNEST, 1000 rows per statement", n, unnest, "what put_batch sends"));

    // Binary COPY of all rows: the server's bulk-load limit.
    let (c, _) = fresh(admin, base, "raw_copy").await;
    let t = Instant::now();
    let sink = c.copy_in("COPY kv (key, value, expires, revision) FROM STDIN BINARY").await.expect("copy");
    let mut w = pin!(BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::BYTEA, Type::TIMESTAMPTZ, Type::UUID]));
    for j in 0..n {
        let k = key(j).into_bytes();
        let none: Option<SystemTime> = None;
        let rev = uuid::Uuid::new_v4();
        w.as_mut().write(&[&k as &(dyn ToSql + Sync), &v, &none, &rev]).await.expect("copy row");
    }
    w.as_mut().finish().await.expect("copy finish");
    rows.push(Row::new(label, "COPY BINARY, all rows", n, t.elapsed().as_secs_f64(), "bulk-load limit"));
    // Gone before the reads, so its autovacuum does not run during them.
    drop(c);
    admin.batch_execute("DROP DATABASE raw_copy").await.expect("drop database");

    // Ordered scan of the UNNEST table.
    let url = format!("{base}/raw_unnest?sslmode=disable");
    let c = connect(&url).await;
    let t = Instant::now();
    let st = c.prepare("SELECT key, value, expires, revision FROM kv ORDER BY key").await.expect("prepare");
    let stream = c.query_raw(&st, std::iter::empty::<&(dyn ToSql + Sync)>()).await.expect("scan");
    let mut stream = pin!(stream);
    let mut count = 0;
    while let Some(r) = stream.next().await {
        let r = r.expect("row");
        let _: &[u8] = r.get(1);
        count += 1;
    }
    assert_eq!(count, n);
    let scan = t.elapsed().as_secs_f64();
    rows.push(Row::new(label, "range scan", n, scan, "one ordered SELECT, streamed"));

    // Prepared point selects, random keys, one task, on a warm cache (the
    // streamed scan above goes through a small ring buffer and leaves the
    // table out of shared buffers; the store's paged scan does not).
    if let Err(e) = c
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm; SELECT pg_prewarm('kv'), pg_prewarm('kv_pkey')")
        .await
    {
        eprintln!("pg_prewarm unavailable ({e}); raw gets start on a cold cache");
    }
    let st = c.prepare("SELECT value, expires, revision FROM kv WHERE key = $1").await.expect("prepare");
    let t = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut gets = 0;
    while gets < n && t.elapsed().as_secs_f64() < o.seconds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = key((x % n as u64) as usize).into_bytes();
        c.query_one(&st, &[&k]).await.expect("get");
        gets += 1;
    }
    let get_secs = t.elapsed().as_secs_f64();
    rows.push(Row::new(label, "get", gets, get_secs, "prepared point select"));

    // Single-row upserts, one task.
    let st = c.prepare(UPSERT).await.expect("prepare");
    let t = Instant::now();
    let mut puts = 0;
    while puts < n && t.elapsed().as_secs_f64() < o.seconds {
        let k = key(n + puts).into_bytes();
        let none: Option<SystemTime> = None;
        c.execute(&st, &[&k, &v, &none, &uuid::Uuid::new_v4()]).await.expect("upsert");
        puts += 1;
    }
    let put_secs = t.elapsed().as_secs_f64();
    rows.push(Row::new(label, "upsert", puts, put_secs, "prepared INSERT ... ON CONFLICT, one task"));

    // Single-row upserts from 16 tasks over as many connections as the
    // store's pool has.
    let clients: Vec<Arc<Client>> = {
        let mut v = Vec::new();
        for _ in 0..pool {
            v.push(Arc::new(connect(&url).await));
        }
        v
    };
    let counter = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let c = clients[task % pool].clone();
        let counter = counter.clone();
        let cap = o.seconds;
        tasks.push(tokio::spawn(async move {
            let st = c.prepare(UPSERT).await.expect("prepare");
            let v = value();
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= n || t.elapsed().as_secs_f64() >= cap {
                    return;
                }
                let k = key(2 * n + i).into_bytes();
                let none: Option<SystemTime> = None;
                c.execute(&st, &[&k, &v, &none, &uuid::Uuid::new_v4()]).await.expect("upsert");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let x16 = counter.load(Ordering::Relaxed).min(n);
    let x16_secs = t.elapsed().as_secs_f64();
    rows.push(Row::new(
        label,
        "upsert x16",
        x16,
        x16_secs,
        &format!("16 tasks on {pool} connections (the store's pool)"),
    ));

    [n as f64 / unnest, n as f64 / scan, gets as f64 / get_secs, puts as f64 / put_secs, x16 as f64 / x16_secs]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = common::opts();
    let pg = testcontainers::postgres().await.unwrap_or_else(|e| panic!("start PostgreSQL: {e}"));
    let base = format!("postgresql://{}@{}:{}", pg.user, pg.host, pg.port);
    let admin = connect(&pg.connection_string).await;
    let mut rows = Vec::new();

    let cfg = PostgresConfig::new(format!("{base}/store_bench?sslmode=disable"));
    let store = PostgresBackend::open(&cfg, OpenOptions::create()).await.expect("open store");
    let pool = store.pool_size();
    drop(store);

    // The machine is shared: the raw figures are taken before and after the
    // store's runs, and the better of the two is the baseline (so a busy
    // neighbour can only make the store look worse, never better).
    let mut raw_rows = Vec::new();
    let before = raw(&admin, &base, &o, pool, &mut raw_rows).await;
    let mut store_rows = Vec::new();
    for watched in [false, true] {
        let db = if watched { "store_bench_watched" } else { "store_bench" };
        let cfg = PostgresConfig::new(format!("{base}/{db}?sslmode=disable"));
        let b: Arc<dyn Backend> = Arc::new(PostgresBackend::open(&cfg, OpenOptions::create()).await.expect("open"));
        let label = if watched { "postgres, one watcher draining events" } else { "postgres" };
        let drain = if watched {
            let watch = Watch { name: "bench".into(), prefixes: Vec::new(), queue_size: 1 << 20 };
            let mut w = b.new_watcher(watch).await.expect("watch");
            Some(tokio::spawn(async move {
                let mut n = 0usize;
                while w.recv().await.is_some() {
                    n += 1;
                }
                n
            }))
        } else {
            None
        };
        common::workload(label, b, &o, &mut store_rows).await;
        if let Some(d) = drain {
            let events = d.await.expect("drain task");
            eprintln!("the watcher saw {events} events before the store closed");
        }
    }
    let mut again = Vec::new();
    let after = raw(&admin, &base, &o, pool, &mut again).await;
    for (r, a) in raw_rows.iter_mut().zip(&again) {
        eprintln!("raw {}: {:.0} then {:.0} ops/s", r.op, r.rate(), a.rate());
        if a.rate() > r.rate() {
            r.ops = a.ops;
            r.secs = a.secs;
        }
        r.note = format!("{}; better of two runs", r.note);
    }
    let best: Vec<f64> = before.iter().zip(after).map(|(a, b)| a.max(b)).collect();
    common::ratio(&mut store_rows, &["put_batch"], best[0], "raw UNNEST insert");
    common::ratio(&mut store_rows, &["range scan"], best[1], "raw scan");
    common::ratio(&mut store_rows, &["get"], best[2], "raw get");
    common::ratio(&mut store_rows, &["put"], best[3], "raw upsert");
    common::ratio(&mut store_rows, &["put x16"], best[4], "raw upsert x16");
    rows.extend(raw_rows);
    rows.extend(store_rows);

    common::print("PostgreSQL store (PostgreSQL 15, local, fsync=off)", &o, &rows);
}
