//! Local directory object store throughput next to the raw speed of the same
//! disk in one run: one N MiB object (default 1024) written through
//! `FsStore` in 1 MiB writes (SHA-256 computed, staged, synced, renamed)
//! vs `std::fs` writing the same bytes and syncing; then read back whole
//! (checked against the stored SHA-256) vs a plain read. Also records a
//! synthetic session into the store (the recording writer's throughput).
//!
//! Run with `cargo bench --bench blob_fs --no-default-features -- --size-mib 1024`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use teleport::blob::fs::FsStore;
use teleport::blob::{BlobStore, PutOptions};
use teleport::recordings::{Layout, RecordingStore, suite};

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size_mib = arg("--size-mib", 1024);
    let size = size_mib << 20;
    let chunk: Vec<Bytes> = (0..16u8).map(|s| Bytes::from(suite_bytes(s, 1 << 20))).collect();
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");

    // Rounds alternate which side goes first: on this machine a second
    // 1 GiB write + fsync right after another is 3-4x slower than the first
    // (the host's write cache), so a fixed order would flatter one side.
    let store = FsStore::open(&dir.path().join("store")).expect("open");
    let rounds = arg("--rounds", 2);
    let (mut raw_put, mut raw_get, mut put, mut get) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        if round % 2 == 0 {
            let (p, g) = raw_round(dir.path(), &chunk, size_mib);
            let (op, og) = ours_round(&store, &chunk, size_mib).await;
            (raw_put, raw_get, put, get) = (raw_put + p, raw_get + g, put + op, get + og);
        } else {
            let (op, og) = ours_round(&store, &chunk, size_mib).await;
            let (p, g) = raw_round(dir.path(), &chunk, size_mib);
            (raw_put, raw_get, put, get) = (raw_put + p, raw_get + g, put + op, get + og);
        }
    }
    let size = size * rounds;

    println!("file store, one {size_mib} MiB object, {rounds} rounds alternating (MiB/s)");
    println!("{:<10} {:>10} {:>10} {:>7}", "op", "ours", "raw", "ratio");
    for (op, ours, raw) in [("upload", put, raw_put), ("download", get, raw_get)] {
        let (o, r) = (mib_s(size, ours), mib_s(size, raw));
        println!("{op:<10} {o:>10.1} {r:>10.1} {:>6.0}%", o / r * 100.0);
    }

    // The recording writer: 10,000 writes of 2,000 bytes (20 MB of output).
    let recs = RecordingStore::new(std::sync::Arc::new(store), Layout::Tar);
    let t = Instant::now();
    let w = suite::record(&recs, "bench-session", 10_000, 2_000, 7, Utc::now()).await.expect("record");
    let took = t.elapsed();
    println!(
        "recording writer: 20 MB of output in {:.2} s ({:.1} MB/s of output, {:.1} MiB stored)",
        took.as_secs_f64(),
        20.0 / took.as_secs_f64(),
        w.object.size as f64 / (1 << 20) as f64
    );
}

/// Raw: write and sync the bytes with std::fs, then read them back.
fn raw_round(dir: &std::path::Path, chunk: &[Bytes], size_mib: usize) -> (Duration, Duration) {
    let raw_path = dir.join("raw.bin");
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&raw_path).expect("create");
        for i in 0..size_mib {
            f.write_all(&chunk[i % 16]).expect("write");
        }
        f.sync_all().expect("sync");
    }
    let put = t.elapsed();
    let t = Instant::now();
    let mut f = std::fs::File::open(&raw_path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        let k = f.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        n += k;
    }
    let get = t.elapsed();
    assert_eq!(n, size_mib << 20);
    std::fs::remove_file(&raw_path).expect("rm");
    (put, get)
}

/// Ours: the same bytes through FsStore (hashed, staged, synced, renamed),
/// then read back whole and checked.
async fn ours_round(store: &FsStore, chunk: &[Bytes], size_mib: usize) -> (Duration, Duration) {
    let t = Instant::now();
    let mut w = store.put("bench/object.bin", PutOptions::default()).await.expect("put");
    for i in 0..size_mib {
        w.write(chunk[i % 16].clone()).await.expect("write");
    }
    w.finish().await.expect("finish");
    let put = t.elapsed();
    let t = Instant::now();
    let mut read = store.get("bench/object.bin", None).await.expect("get");
    let mut n = 0;
    while let Some(c) = read.body.next().await {
        n += c.expect("chunk").len();
    }
    let get = t.elapsed();
    assert_eq!(n, size_mib << 20);
    store.delete("bench/object.bin").await.expect("delete");
    (put, get)
}

fn suite_bytes(seed: u8, len: usize) -> Vec<u8> {
    teleport::blob::suite::pattern(u64::from(seed), len)
}
