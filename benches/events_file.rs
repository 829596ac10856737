//! File audit log throughput next to the raw speed of the same files in one
//! run: `FileLog::emit` vs plain buffered appends of the same JSON lines,
//! and a full paged search vs reading the lines back and parsing each as
//! JSON. `EVENTS=<n>` sets the count (default 50,000).
//!
//! Run with `cargo bench --bench events_file --no-default-features`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::{Duration, Instant, UNIX_EPOCH};

use teleport::events::file::FileLog;
use teleport::events::{AuditLog, Event, SearchParams};

const MAY1: u64 = 1_714_521_600;

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let at = UNIX_EPOCH + Duration::from_secs(MAY1) + Duration::from_millis(i as u64 * 1000);
            Event::at("session.command", "T4000I", at)
                .with("user", format!("user-{}", i % 50))
                .with("login", "root")
                .with("cluster_name", "bench.example")
                .with("server_id", "7f3e9c2a-1b2c-4d5e-8f90-123456789abc")
                .with("sid", format!("{:08x}-0000-4000-8000-000000000000", i / 100))
                .with("ei", (i % 100) as i64)
                .with("program", "/usr/bin/ls")
                .with("path", "/usr/bin/ls")
                .with("argv", serde_json::json!(["-la", "/var/log"]))
                .with("addr.remote", "198.51.100.7:51234")
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let evs = events(n);
    let lines: Vec<String> = evs.iter().map(|e| e.to_json()).collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let dir = tempfile::tempdir().expect("tempdir");

    // Raw: buffered appends of the same lines to one file.
    let raw_path = dir.path().join("raw.log");
    let t = Instant::now();
    {
        let mut w = BufWriter::new(std::fs::File::create(&raw_path).expect("create"));
        for l in &lines {
            w.write_all(l.as_bytes()).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
    }
    let raw_write = t.elapsed();

    // Raw read: lines back, each parsed as a JSON object.
    let t = Instant::now();
    let mut parsed = 0usize;
    for line in BufReader::new(std::fs::File::open(&raw_path).expect("open")).lines() {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line.expect("line")).expect("json");
        parsed += v.len().min(1);
    }
    let raw_read = t.elapsed();
    assert_eq!(parsed, n);

    // FileLog::emit, one event at a time (each an O_APPEND write).
    let log = FileLog::open(&dir.path().join("log"), "bench-host").expect("open");
    let t = Instant::now();
    for e in evs.iter().cloned() {
        log.emit(e).await.expect("emit");
    }
    let emit = t.elapsed();

    // Paged search of everything, pages of 1000 (what export does).
    let from = UNIX_EPOCH + Duration::from_secs(MAY1);
    let mut p = SearchParams::range(from, from + Duration::from_secs(n as u64 + 1));
    p.limit = 1000;
    let t = Instant::now();
    let mut found = 0usize;
    loop {
        let page = log.search(&p).await.expect("search");
        found += page.events.len();
        match page.next {
            Some(c) => p.cursor = Some(c),
            None => break,
        }
    }
    let search = t.elapsed();
    assert_eq!(found, n);

    // A narrow search: one hour of one day, 100 events per page.
    let mut p = SearchParams::range(from + Duration::from_secs(3600), from + Duration::from_secs(7200));
    p.limit = 100;
    let t = Instant::now();
    let page = log.search(&p).await.expect("search");
    let narrow = t.elapsed();

    println!("# events_file: {n} events, {:.0} bytes/event, {} day files", bytes as f64 / n as f64, n.div_ceil(86_400));
    println!("{:<44} {:>12} {:>10}", "operation", "events/s", "total");
    let row = |name: &str, d: Duration| println!("{name:<44} {:>12.0} {:>10.2?}", rate(n, d), d);
    row("raw buffered append (one file)", raw_write);
    row("FileLog::emit (O_APPEND write per event)", emit);
    row("raw read + JSON parse", raw_read);
    row("FileLog::search, all, pages of 1000", search);
    println!(
        "{:<44} {:>12} {:>10.2?}",
        format!("FileLog::search, 1 h, first page ({})", page.events.len()),
        "-",
        narrow
    );
    println!(
        "emit / raw append: {:.1}x slower; search / raw read: {:.1}x slower",
        emit.as_secs_f64() / raw_write.as_secs_f64(),
        search.as_secs_f64() / raw_read.as_secs_f64()
    );
}
