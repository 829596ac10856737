//! Clone throughput next to the destination's raw batched write speed, in
//! one run, plus the peak memory of cloning a large source.
//!
//! For each destination (SQLite; etcd and DynamoDB on moto when the servers
//! are installed): a
//! SQLite source of `--items` items of 1 KiB is cloned with `parallel`
//! writers, and the same rows are written with the destination's raw client
//! in the same batch shape. Then `teleport backend clone` clones
//! `--rss-items` items (default 1,000,000) SQLite to SQLite as a child
//! process, and its peak RSS is read from the kernel.
//!
//! Run with `scripts/bench-clone.sh`.

mod common;
#[cfg(feature = "dynamodb")]
#[path = "common/raw_dynamodb.rs"]
mod raw_dynamodb;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{Row, key, value};
use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{Backend, Item};
use teleport::clone::progress::Progress;
use teleport::clone::run::{CloneOptions, run};
use teleport::config::{SqliteConfig, StorageConfig};
use tokio_util::sync::CancellationToken;

const PARALLEL: usize = 4;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A SQLite source of `n` items (events off: the source's own event rows
/// do not matter here).
async fn source(dir: &Path, n: usize) -> Arc<dyn Backend> {
    let mut cfg = SqliteConfig::new(dir);
    cfg.events_off = true;
    cfg.journal = Some("WAL".into());
    cfg.sync = Some("OFF".into());
    let b = registry::open(&StorageConfig::Sqlite(cfg), OpenOptions::create()).await.expect("source");
    let v = value();
    for start in (0..n).step_by(10_000) {
        let items = (start..(start + 10_000).min(n)).map(|i| Item::new(key(i), v.clone())).collect();
        b.put_batch(items).await.expect("fill source");
    }
    b
}

async fn clone_to(src: &Arc<dyn Backend>, dst: Arc<dyn Backend>) -> (f64, f64) {
    let opts = CloneOptions { parallel: PARALLEL, ..CloneOptions::default() };
    let s = run(src.clone(), dst.clone(), opts, Arc::new(Progress::default()), CancellationToken::new())
        .await
        .expect("clone");
    let _ = dst.close().await;
    (s.copy_seconds, s.seconds)
}

/// Raw rusqlite: the kv and events rows a destination put_batch writes,
/// 1,000 per transaction, with the store's default pragmas.
fn raw_sqlite(dir: &Path, n: usize) -> f64 {
    std::fs::create_dir_all(dir).expect("mkdir");
    let conn = rusqlite::Connection::open(dir.join("sqlite.db")).expect("open");
    conn.pragma_update(None, "synchronous", "FULL").expect("pragma");
    conn.execute_batch(teleport::backend::sqlite::UPSTREAM_SCHEMA).expect("schema");
    let v = value();
    let t = Instant::now();
    for start in (0..n).step_by(1000) {
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut kv = tx.prepare_cached("INSERT INTO kv VALUES (?1, ?2, NULL, ?3, ?4)").expect("prepare");
            let mut ev = tx
                .prepare_cached("INSERT INTO events(type, created, kv_key, kv_modified, kv_value, kv_revision) VALUES ('1', ?1, ?2, ?3, ?4, ?5)")
                .expect("prepare");
            for i in start..(start + 1000).min(n) {
                let (k, rev) = (key(i).to_string(), format!("{i:036}"));
                kv.execute(rusqlite::params![k, i as i64, v, rev]).expect("insert");
                ev.execute(rusqlite::params!["2026-01-01 00:00:00+00:00", k, i as i64, v, rev]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    t.elapsed().as_secs_f64()
}

/// Raw etcd: 128-put transactions of the same base64 values, `PARALLEL` at once.
#[cfg(feature = "etcd")]
async fn raw_etcd(endpoint: &str, n: usize) -> f64 {
    use base64::Engine;
    let client = etcd_client::Client::connect([endpoint], None).await.expect("connect");
    let v = base64::engine::general_purpose::STANDARD.encode(value());
    let t = Instant::now();
    let chunks: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(128).map(|c| c.to_vec()).collect();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let chunks = Arc::new(chunks);
    let mut tasks = Vec::new();
    for _ in 0..PARALLEL {
        let (client, v, next, chunks) = (client.clone(), v.clone(), next.clone(), chunks.clone());
        tasks.push(tokio::spawn(async move {
            let mut kv = client.kv_client();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { return };
                let ops: Vec<_> = chunk
                    .iter()
                    .map(|j| etcd_client::TxnOp::put(format!("/raw/{}", key(*j)), v.clone(), None))
                    .collect();
                kv.txn(etcd_client::Txn::new().and_then(ops)).await.expect("txn");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    t.elapsed().as_secs_f64()
}

/// Peak RSS (KiB) of `teleport backend clone` copying `n` items SQLite to SQLite.
fn peak_rss(dir: &Path, n: usize, rt: &tokio::runtime::Runtime) -> (u64, f64) {
    let src_dir = dir.join("rss-src");
    rt.block_on(async {
        let _ = source(&src_dir, n).await.close().await;
    });
    let cfg = dir.join("rss-clone.yaml");
    std::fs::write(
        &cfg,
        format!(
            "src: {{type: sqlite, path: {}}}\ndst: {{type: sqlite, path: {}, journal: WAL, sync: NORMAL}}\nparallel: {PARALLEL}\n",
            src_dir.display(),
            dir.join("rss-dst").display()
        ),
    )
    .expect("write clone file");
    let t = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["backend", "-c", cfg.to_str().unwrap_or_default(), "clone", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run teleport backend clone");
    // wait4 gives this child's own resource usage (RUSAGE_CHILDREN would
    // also count test servers this process started and reaped).
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid fills the status and rusage we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "clone of {n} items failed");
    let secs = t.elapsed().as_secs_f64();
    (usage.ru_maxrss as u64, secs)
}

fn main() {
    let n = arg("--items", 100_000);
    let rss_items = arg("--rss-items", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut rows = Vec::new();
    rt.block_on(async {
        let src = source(&dir.join("src"), n).await;

        let raw = raw_sqlite(&dir.join("raw-sqlite"), n);
        rows.push(Row::new(
            "sqlite raw (rusqlite)",
            "batched write",
            n,
            raw,
            "kv + events rows, 1000 per tx, FULL sync",
        ));
        let dst =
            registry::open(&StorageConfig::Sqlite(SqliteConfig::new(dir.join("dst-sqlite"))), OpenOptions::create())
                .await
                .expect("dst");
        let (copy, all) = clone_to(&src, dst).await;
        let mut r = Row::new(
            "clone sqlite -> sqlite",
            "copy",
            n,
            copy,
            &format!("parallel {PARALLEL}; {all:.2}s with plan and count"),
        );
        r.note = format!("{}; {:.0}% of raw", r.note, 100.0 * raw / copy);
        rows.push(r);

        #[cfg(feature = "etcd")]
        if let Ok(etcd) = testcontainers::etcd().await {
            let raw = raw_etcd(&etcd.endpoint, n).await;
            rows.push(Row::new(
                "etcd raw (etcd-client)",
                "batched write",
                n,
                raw,
                &format!("128-put txns, {PARALLEL} at once"),
            ));
            let cfg: StorageConfig = serde_norway::from_str(&format!(
                "type: etcd\npeers: [{}]\nprefix: /clone/\ninsecure: true\n",
                etcd.endpoint
            ))
            .expect("config");
            let dst = registry::open(&cfg, OpenOptions::create()).await.expect("etcd");
            let (copy, all) = clone_to(&src, dst).await;
            let mut r = Row::new(
                "clone sqlite -> etcd",
                "copy",
                n,
                copy,
                &format!("parallel {PARALLEL}; {all:.2}s with plan and count"),
            );
            r.note = format!("{}; {:.0}% of raw", r.note, 100.0 * raw / copy);
            rows.push(r);
        } else {
            eprintln!("etcd is not installed: skipping sqlite -> etcd (scripts/install-test-services.sh etcd)");
        }
        #[cfg(feature = "dynamodb")]
        if let Ok(db) = testcontainers::dynamodb().await {
            // moto is slow (about 3 ms a request): a tenth of the items.
            let m = (n / 10).max(1000);
            let small = source(&dir.join("src-small"), m).await;
            let cfg: StorageConfig = serde_norway::from_str(&format!(
                "type: dynamodb\ntable_name: clone_bench\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
                db.region, db.endpoint, db.access_key_id, db.secret_access_key
            ))
            .expect("config");
            // The store creates both tables (upstream's schema).
            let raw_cfg: StorageConfig = serde_norway::from_str(&format!(
                "type: dynamodb\ntable_name: clone_bench_raw\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
                db.region, db.endpoint, db.access_key_id, db.secret_access_key
            ))
            .expect("config");
            let _ = registry::open(&raw_cfg, OpenOptions::create()).await.expect("raw table").close().await;
            let raw = raw_dynamodb::raw_batch(&raw_dynamodb::raw_client(&db), "clone_bench_raw", 0, m, PARALLEL).await;
            rows.push(Row::new("dynamodb raw (aws-sdk, moto)", "batched write", m, raw, &format!("BatchWriteItem of 25, {PARALLEL} in flight")));
            let dst = registry::open(&cfg, OpenOptions::create()).await.expect("dynamodb");
            let (copy, all) = clone_to(&small, dst).await;
            let mut r = Row::new("clone sqlite -> dynamodb", "copy", m, copy, &format!("parallel {PARALLEL}; {all:.2}s with plan and count"));
            r.note = format!("{}; {:.0}% of raw", r.note, 100.0 * raw / copy);
            rows.push(r);
            let _ = small.close().await;
        } else {
            eprintln!("moto is not installed: skipping sqlite -> dynamodb (scripts/install-test-services.sh moto)");
        }
        let _ = src.close().await;
    });
    let (rss_kib, secs) = peak_rss(dir, rss_items, &rt);
    let o = common::Opts { items: n, seconds: 0.0, dir: None };
    common::print("Clone throughput next to the destination's raw batched writes", &o, &rows);
    println!();
    println!(
        "Peak RSS of `teleport backend clone` copying {rss_items} items of 1 KiB SQLite -> SQLite: {:.1} MiB ({:.1}s, {:.0} items/s end to end)",
        rss_kib as f64 / 1024.0,
        secs,
        rss_items as f64 / secs
    );
}
