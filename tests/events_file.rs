//! The file audit log and the multi log on real files: the whole compliance
//! suite on file and on multi(file, file), then the file layout upstream
//! tools expect (day files, modes, the symlink), other hosts' directories,
//! corrupt lines, and the registry's URI handling.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use teleport::events::file::FileLog;
use teleport::events::multi::MultiLog;
use teleport::events::suite::{self, SuiteOptions};
use teleport::events::{AuditLog, Event, EventsErrorKind, Order, SearchParams, registry};

fn fresh(root: &Path, n: &AtomicUsize) -> PathBuf {
    root.join(format!("log{}", n.fetch_add(1, Ordering::SeqCst)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let n = AtomicUsize::new(0);
    suite::run_all(
        &|| {
            let d = fresh(&root, &n);
            async move { Ok(Arc::new(FileLog::open(&d, "host-a")?) as Arc<dyn AuditLog>) }
        },
        &SuiteOptions::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let n = AtomicUsize::new(0);
    suite::run_all(
        &|| {
            let (a, b) = (fresh(&root, &n), fresh(&root, &n));
            async move {
                let logs: Vec<Arc<dyn AuditLog>> =
                    vec![Arc::new(FileLog::open(&a, "host-a")?), Arc::new(FileLog::open(&b, "host-b")?)];
                Ok(Arc::new(MultiLog::new(logs)?) as Arc<dyn AuditLog>)
            }
        },
        &SuiteOptions::default(),
    )
    .await;
}

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

// 2024-05-01T00:00:00Z
const MAY1: u64 = 1_714_521_600;

#[tokio::test]
async fn layout_modes_and_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), "host-a").unwrap();
    log.emit(Event::at("user.login", "T1000I", at(MAY1 + 10))).await.unwrap();
    log.emit(Event::at("user.login", "T1000I", at(MAY1 + 86_400 + 5))).await.unwrap();
    let host = dir.path().join("host-a");
    let f1 = host.join("2024-05-01.00:00:00.log");
    let f2 = host.join("2024-05-02.00:00:00.log");
    for f in [&f1, &f2] {
        let text = std::fs::read_to_string(f).unwrap();
        assert_eq!(text.lines().count(), 1, "{}", f.display());
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["event"], "user.login");
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o640);
    }
    assert_eq!(std::fs::metadata(&host).unwrap().permissions().mode() & 0o777, 0o750);
    let link = std::fs::read_link(dir.path().join("events.log")).unwrap();
    assert_eq!(link, Path::new("host-a").join("2024-05-02.00:00:00.log"));
    // An older day does not move the symlink back.
    log.emit(Event::at("x", "X", at(MAY1 - 100))).await.unwrap();
    assert_eq!(std::fs::read_link(dir.path().join("events.log")).unwrap(), link);
}

#[tokio::test]
async fn other_hosts_searched_special_dirs_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileLog::open(dir.path(), "host-a").unwrap();
    let b = FileLog::open(dir.path(), "host-b").unwrap();
    let ea = Event::at("x", "X", at(MAY1 + 1));
    let eb = Event::at("x", "X", at(MAY1 + 2));
    a.emit(ea.clone()).await.unwrap();
    b.emit(eb.clone()).await.unwrap();
    // Directories that hold no events are not read, even with day-named files.
    for special in ["records", "upload", "playbacks"] {
        let d = dir.path().join(special);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("2024-05-01.00:00:00.log"), Event::at("x", "X", at(MAY1 + 3)).to_json() + "\n").unwrap();
    }
    let page = a.search(&SearchParams::range(at(MAY1), at(MAY1 + 86_400))).await.unwrap();
    let uids: Vec<&str> = page.events.iter().map(|e| e.uid()).collect();
    assert_eq!(uids, vec![ea.uid(), eb.uid()]);
}

#[tokio::test]
async fn corrupt_lines_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), "host-a").unwrap();
    let e1 = Event::at("x", "X", at(MAY1 + 1));
    let e2 = Event::at("x", "X", at(MAY1 + 2));
    log.emit(e1.clone()).await.unwrap();
    let f = dir.path().join("host-a/2024-05-01.00:00:00.log");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("{not json\n\n{\"event\":\"x\",\"uid\":\"u\",\"time\":\"never\"}\n");
    std::fs::write(&f, text).unwrap();
    log.emit(e2.clone()).await.unwrap();
    let mut p = SearchParams::range(at(MAY1), at(MAY1 + 86_400));
    p.order = Order::Descending;
    let page = log.search(&p).await.unwrap();
    let uids: Vec<&str> = page.events.iter().map(|e| e.uid()).collect();
    assert_eq!(uids, vec![e2.uid(), e1.uid()]);
}

#[tokio::test]
async fn idempotent_after_reopen_and_bad_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let e = Event::at("x", "X", at(MAY1 + 1));
    FileLog::open(dir.path(), "h").unwrap().emit(e.clone()).await.unwrap();
    // A new handle (a restart) loads the day's uids before appending.
    FileLog::open(dir.path(), "h").unwrap().emit(e.clone()).await.unwrap();
    let log = FileLog::open(dir.path(), "h").unwrap();
    let page = log.search(&SearchParams::range(at(MAY1), at(MAY1 + 60))).await.unwrap();
    assert_eq!(page.events.len(), 1);
    let mut p = SearchParams::range(at(MAY1), at(MAY1 + 60));
    p.cursor = Some("garbage".into());
    assert_eq!(log.search(&p).await.unwrap_err().kind, EventsErrorKind::BadParameter);
    assert_eq!(log.emit(Event(Default::default())).await.unwrap_err().kind, EventsErrorKind::BadParameter);
}

#[tokio::test]
async fn registry_uris() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let log = registry::open(&[], data, "h").await.unwrap();
    assert_eq!(log.name(), "file");
    assert!(!data.join("log").exists(), "opening writes nothing");
    log.emit(Event::at("x", "X", at(MAY1))).await.unwrap();
    assert!(data.join("log/h").is_dir());
    let other = data.join("other");
    let uri = format!("file://{}", other.display());
    assert_eq!(registry::open(std::slice::from_ref(&uri), data, "h").await.unwrap().name(), "file");
    let multi = registry::open(&[uri.clone(), "stdout://".into()], data, "h").await.unwrap();
    assert_eq!(multi.name(), "multi");
    let err = registry::open(&["gopher://x".into()], data, "h").await.unwrap_err();
    assert!(err.message.contains("file://") && err.message.contains("dynamodb://"), "{err}");
    let err = registry::open(&["file://remote/x".into()], data, "h").await.unwrap_err();
    assert_eq!(err.kind, EventsErrorKind::BadParameter);
    let so = registry::open(&["stdout://".into()], data, "h").await.unwrap();
    let err = so.search(&SearchParams::range(at(0), at(1))).await.unwrap_err();
    assert!(err.kind == EventsErrorKind::BadParameter && err.message.contains("cannot be searched"), "{err}");
}

/// A secondary that fails does not fail the emit; the first keeps the event.
#[tokio::test]
async fn multi_failing_secondary() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileLog::open(&dir.path().join("a"), "h").unwrap();
    let second = FileLog::open(&dir.path().join("b"), "h").unwrap();
    // Make the secondary unwritable: its host dir is a file.
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("b/h"), "not a dir").unwrap();
    let multi = MultiLog::new(vec![Arc::new(first.clone()), Arc::new(second)]).unwrap();
    let e = Event::at("x", "X", at(MAY1 + 1));
    multi.emit(e.clone()).await.unwrap();
    let page = multi.search(&SearchParams::range(at(MAY1), at(MAY1 + 60))).await.unwrap();
    assert_eq!(page.events, vec![e]);
}
