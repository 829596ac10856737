//! Shared pieces of the store benchmarks: options, the standard workload run
//! against any `Backend`, and the markdown table every bench prints. Each
//! store's bench (`benches/backend.rs` for memory and SQLite,
//! `benches/store_<name>.rs` for the others) runs this workload and, in the
//! same process, the raw client speed of its store, then prints both.

#![allow(dead_code)]

pub mod blob;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use teleport::backend::{Backend, Item, ItemsParams, Key};

/// Command-line options shared by every store bench.
pub struct Opts {
    /// Items written and read (default 100,000).
    pub items: usize,
    /// Time cap per single-operation phase, in seconds (default 10).
    pub seconds: f64,
    /// Where file-based stores put their data (default: a temp dir).
    pub dir: Option<PathBuf>,
}

/// Parses `--items N`, `--seconds S` and `--dir PATH`; ignores the rest
/// (cargo bench passes `--bench`).
pub fn opts() -> Opts {
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

/// The benchmark's key for item `i`.
pub fn key(i: usize) -> Key {
    Key::from(format!("/bench/items/{i:08}"))
}

/// The 1 KiB value every item carries.
pub fn value() -> Vec<u8> {
    (0..1024u32).map(|i| (i % 251) as u8).collect()
}

/// One row of the results table.
pub struct Row {
    /// The store and its settings.
    pub store: String,
    /// The operation.
    pub op: String,
    /// How many operations ran.
    pub ops: usize,
    /// How long they took.
    pub secs: f64,
    /// Context, and the ratio to the raw baseline.
    pub note: String,
}

impl Row {
    /// A row.
    pub fn new(store: &str, op: &str, ops: usize, secs: f64, note: &str) -> Row {
        Row { store: store.into(), op: op.into(), ops, secs, note: note.into() }
    }

    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// `put_batch` of all items in the store's own batch size; returns seconds.
pub async fn put_batch(b: &dyn Backend, n: usize) -> f64 {
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

/// `items()` over every benchmark item; returns seconds.
pub async fn scan(b: &dyn Backend, n: usize) -> f64 {
    let t = Instant::now();
    let mut s = b.items(ItemsParams::prefix(&Key::from("/bench/items/")));
    let mut count = 0;
    while let Some(i) = s.next().await {
        i.expect("scan");
        count += 1;
    }
    assert_eq!(count, n, "scan saw every item");
    t.elapsed().as_secs_f64()
}

/// Random point reads from one task until `n` or the cap: (ops, seconds).
pub async fn gets(b: &dyn Backend, n: usize, cap: f64) -> (usize, f64) {
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

/// Single puts from one task, keys from `start`: (ops, seconds).
pub async fn put_seq(b: &dyn Backend, start: usize, n: usize, cap: f64) -> (usize, f64) {
    let v = value();
    let t = Instant::now();
    let mut done = 0;
    while done < n && t.elapsed().as_secs_f64() < cap {
        b.put(Item::new(key(start + done), v.clone())).await.expect("put");
        done += 1;
    }
    (done, t.elapsed().as_secs_f64())
}

/// Single puts from `tasks` concurrent tasks: (ops, seconds).
pub async fn put_concurrent(b: Arc<dyn Backend>, start: usize, n: usize, cap: f64, tasks: usize) -> (usize, f64) {
    let t = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..tasks {
        let b = b.clone();
        let counter = counter.clone();
        hs.push(tokio::spawn(async move {
            let v = value();
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
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
    (counter.load(Ordering::Relaxed).min(n), t.elapsed().as_secs_f64())
}

/// The standard workload: put_batch, range scan, get, put, put x16. Closes
/// the backend at the end. The store must hold no `/bench/items/` keys.
pub async fn workload(name: &str, b: Arc<dyn Backend>, o: &Opts, rows: &mut Vec<Row>) {
    let n = o.items;
    let secs = put_batch(b.as_ref(), n).await;
    let per = b.limits().max_batch_items;
    rows.push(Row::new(name, "put_batch", n, secs, &format!("{per} items per batch")));
    let secs = scan(b.as_ref(), n).await;
    rows.push(Row::new(name, "range scan", n, secs, "items() over the prefix"));
    let (ops, secs) = gets(b.as_ref(), n, o.seconds).await;
    rows.push(Row::new(name, "get", ops, secs, "random keys, one task"));
    let (ops, secs) = put_seq(b.as_ref(), n, n, o.seconds).await;
    rows.push(Row::new(name, "put", ops, secs, "one task, one write per call"));
    let (ops, secs) = put_concurrent(b.clone(), 2 * n, n, o.seconds, 16).await;
    rows.push(Row::new(name, "put x16", ops, secs, "16 concurrent tasks"));
    b.close().await.expect("close");
}

/// Appends "N% of <what>" to the notes of `rows` for the given operations.
pub fn ratio(rows: &mut [Row], ops: &[&str], baseline_rate: f64, what: &str) {
    for r in rows.iter_mut().filter(|r| ops.contains(&r.op.as_str())) {
        r.note = format!("{}; {:.0}% of {what}", r.note, 100.0 * r.rate() / baseline_rate);
    }
}

/// Prints the title and the table.
pub fn print(title: &str, o: &Opts, rows: &[Row]) {
    println!("{title}: {} items, 1 KiB values, single-op phases capped at {} s", o.items, o.seconds);
    println!();
    println!("| store | operation | ops | seconds | ops/s | notes |");
    println!("|---|---|---:|---:|---:|---|");
    for r in rows {
        println!("| {} | {} | {} | {:.2} | {:.0} | {} |", r.store, r.op, r.ops, r.secs, r.rate(), r.note);
    }
}
