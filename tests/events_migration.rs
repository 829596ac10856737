//! Moving an audit log between stores with the export/import primitives:
//! 50,000 events exported from a file log and imported (twice) into another
//! file log, searched back page by page: the same events (uid, time, ei and
//! every field), once each, in time order. The DynamoDB branch adds
//! file -> DynamoDB on the same helpers.

use std::io::BufReader;
use std::time::{Duration, Instant, UNIX_EPOCH};

use teleport::events::export::{export, import};
use teleport::events::file::FileLog;
use teleport::events::{AuditLog, Event, EventsErrorKind, SearchParams};

const MAY1: u64 = 1_714_521_600;

/// Every event of `[from, to)` in `log`, searched in pages of 1000.
async fn search_all(log: &dyn AuditLog, from: std::time::SystemTime, to: std::time::SystemTime) -> Vec<Event> {
    let mut p = SearchParams::range(from, to);
    p.limit = 1000;
    let mut got = Vec::new();
    loop {
        let page = log.search(&p).await.unwrap();
        assert!(page.events.len() <= 1000);
        got.extend(page.events);
        match page.next {
            Some(c) => p.cursor = Some(c),
            None => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_to_file_50k() {
    let dir = tempfile::tempdir().unwrap();
    let src = FileLog::open(&dir.path().join("src"), "host-a").unwrap();
    let dst = FileLog::open(&dir.path().join("dst"), "host-b").unwrap();
    let n = 50_000u64;
    let span = 5 * 86_400_000u64;
    let mut want = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for i in 0..n {
        let at = UNIX_EPOCH + Duration::from_secs(MAY1) + Duration::from_millis(i * span / n);
        let mut e = Event::at(if i % 3 == 0 { "user.login" } else { "exec" }, "T3002I", at)
            .with("user", format!("user-{}", i % 17))
            .with("n", i);
        if i % 10 == 0 {
            e = e.with("sid", format!("s-{}", i / 100)).with("ei", (i % 100) as i64);
        }
        want.push(e.clone());
        src.emit(e).await.unwrap();
    }
    eprintln!("wrote {n} events in {:?}", t.elapsed());
    let (from, to) =
        (UNIX_EPOCH + Duration::from_secs(MAY1 - 86_400), UNIX_EPOCH + Duration::from_secs(MAY1 + 7 * 86_400));

    let path = dir.path().join("export.jsonl");
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    assert_eq!(export(&src, from, to, &mut out).await.unwrap(), n);
    drop(out);
    eprintln!("exported in {:?}", t.elapsed());
    let t = Instant::now();
    for _ in 0..2 {
        let stats = import(&dst, BufReader::new(std::fs::File::open(&path).unwrap())).await.unwrap();
        assert_eq!(stats.events, n);
    }
    eprintln!("imported twice in {:?}", t.elapsed());

    let t = Instant::now();
    let got = search_all(&dst, from, to).await;
    eprintln!("searched back in {:?}", t.elapsed());
    assert_eq!(got.len(), want.len(), "every event once");
    let mut sorted = want.clone();
    teleport::events::sort_events(&mut sorted, teleport::events::Order::Ascending);
    assert!(got.windows(2).all(|w| w[0].time() <= w[1].time()), "time order");
    let mut a: Vec<&str> = got.iter().map(|e| e.uid()).collect();
    let mut b: Vec<&str> = want.iter().map(|e| e.uid()).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "same multiset of uids");
    assert_eq!(got, sorted, "every field kept, uid, time and ei included");
    // Sessions survive the move too.
    let s = dst.session_events("s-7").await.unwrap();
    assert_eq!(s.len(), 10);
    assert!(s.windows(2).all(|w| w[0].index() < w[1].index()));
}

#[tokio::test]
async fn import_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), "h").unwrap();
    let good = Event::new("x", "X").to_json();
    let input = format!("{good}\n\n{{\"event\": \"x\"\n");
    let err = import(&log, input.as_bytes()).await.unwrap_err();
    assert_eq!(err.kind, EventsErrorKind::BadParameter);
    assert!(err.message.contains("line 3"), "{err}");
    let input = format!("{good}\n{{\"event\":\"x\",\"time\":\"2024-05-01T00:00:00Z\"}}\n");
    let err = import(&log, input.as_bytes()).await.unwrap_err();
    assert!(err.message.contains("line 2") && err.message.contains("uid"), "{err}");
}

/// 50,000 events exported from a file log, imported into DynamoDB (moto)
/// with 16 emits in flight, and searched back page by page: the same
/// multiset of uids, in time order.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_to_dynamodb_50k() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = FileLog::open(&dir.path().join("src"), "host-a").unwrap();
    let n = 50_000u64;
    let span = 3 * 86_400_000u64;
    let mut want = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = UNIX_EPOCH + Duration::from_secs(MAY1) + Duration::from_millis(i * span / n);
        let mut e = Event::at(if i % 3 == 0 { "user.login" } else { "exec" }, "T3002I", at).with("n", i);
        if i % 10 == 0 {
            e = e.with("sid", format!("s-{}", i / 100)).with("ei", (i % 100) as i64);
        }
        want.push(e.uid().to_string());
        src.emit(e).await.unwrap();
    }
    let (from, to) =
        (UNIX_EPOCH + Duration::from_secs(MAY1 - 86_400), UNIX_EPOCH + Duration::from_secs(MAY1 + 5 * 86_400));
    let path = dir.path().join("export.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    assert_eq!(export(&src, from, to, &mut out).await.unwrap(), n);
    drop(out);

    let uri = teleport::events::EventsUri::parse(&format!(
        "dynamodb://migration_events?region={}&endpoint={}&access_key={}&secret_key={}",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    ))
    .unwrap();
    let dst = teleport::events::dynamodb::DynamoEvents::open(&uri).await.unwrap();
    let t = Instant::now();
    let stats =
        teleport::events::export::import_parallel(&dst, BufReader::new(std::fs::File::open(&path).unwrap()), 16)
            .await
            .unwrap();
    assert_eq!(stats.events, n);
    eprintln!("imported {n} events into DynamoDB (moto) in {:?}", t.elapsed());

    let t = Instant::now();
    let got = search_all(&dst, from, to).await;
    eprintln!("searched {} events back in {:?}", got.len(), t.elapsed());
    for w in got.windows(2) {
        assert!(w[0].time() <= w[1].time(), "out of time order: {:?} then {:?}", w[0].str("time"), w[1].str("time"));
    }
    let mut got_uids: Vec<String> = got.iter().map(|e| e.uid().to_string()).collect();
    got_uids.sort();
    want.sort();
    assert_eq!(got_uids.len(), want.len(), "event count");
    assert_eq!(got_uids, want, "the same multiset of uids");
}
