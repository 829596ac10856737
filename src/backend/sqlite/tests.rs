//! SQLite store tests: the compliance suite in both journal modes, and the
//! upstream file layout read and written by plain SQL (as another program,
//! or upstream itself, would).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::*;
use crate::backend::{Backend, Clock, FakeClock, Item, Key, OpType, Watch, suite};
use crate::config::SqliteConfig;

fn cfg(dir: &std::path::Path, journal: Option<&str>) -> SqliteConfig {
    let mut c = SqliteConfig::new(dir);
    c.poll_stream_period = Some(Duration::from_millis(50));
    c.journal = journal.map(str::to_string);
    if journal == Some("WAL") {
        c.sync = Some("NORMAL".into());
    }
    c
}

async fn open(c: &SqliteConfig, clock: Arc<dyn Clock>) -> crate::backend::Result<Arc<dyn Backend>> {
    let b: Arc<dyn Backend> = Arc::new(SqliteBackend::open(c, OpenOptions { clock, create: true }).await?);
    Ok(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance_rollback_journal() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), None);
    suite::run_all(&move |clock: Arc<dyn Clock>| {
        let c = c.clone();
        async move { open(&c, clock).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance_wal() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), Some("WAL"));
    suite::run_all(&move |clock: Arc<dyn Clock>| {
        let c = c.clone();
        async move { open(&c, clock).await }
    })
    .await;
}

#[tokio::test]
async fn never_creates_a_database_when_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("backend")).unwrap();
    // A real database one level down: the classic wrong `path`.
    drop(open(&cfg(&data_dir.join("backend"), None), crate::backend::clock::system()).await.unwrap());
    let err = SqliteBackend::open(&cfg(&data_dir, None), OpenOptions::existing()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(msg.contains("no database at"), "{msg}");
    assert!(msg.contains("did you mean path:"), "{msg}");
    assert!(!data_dir.join(DB_FILE).exists(), "nothing was created");

    let nowhere = dir.path().join("missing");
    assert!(SqliteBackend::open(&cfg(&nowhere, None), OpenOptions::existing()).await.is_err());
    assert!(!nowhere.exists(), "no directory was created either");
}

#[cfg(unix)]
#[tokio::test]
async fn creates_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/backend");
    drop(open(&cfg(&path, None), crate::backend::clock::system()).await.unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join(DB_FILE)), 0o600);
}

#[tokio::test]
async fn refuses_a_foreign_database() {
    let dir = tempfile::tempdir().unwrap();
    Connection::open(dir.path().join(DB_FILE)).unwrap().execute_batch("CREATE TABLE notes(x TEXT)").unwrap();
    let err = SqliteBackend::open(&cfg(dir.path(), None), OpenOptions::existing()).await.unwrap_err();
    assert!(err.to_string().contains("not a teleport backend"), "{err}");
}

#[tokio::test]
async fn reads_rows_written_by_another_program() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch(UPSTREAM_SCHEMA).unwrap();
    let clock = FakeClock::new();
    let now = clock.now();
    let future = timefmt::format(now + Duration::from_secs(3600));
    let past = timefmt::format(now - Duration::from_secs(5));
    let secs_future = timefmt::unix_secs(now) + 3600;
    conn.execute_batch(&format!(
        "INSERT INTO kv VALUES ('/web/users/alice/params', 1, NULL, X'7B7D', 'rev-a');
         INSERT INTO kv VALUES ('/tokens/t1', 1, '{future}', 'tok', 'rev-t');
         INSERT INTO kv VALUES ('/tokens/t0', 1, '{past}', 'old', 'rev-o');
         INSERT INTO kv VALUES ('/legacy', 1, NULL, 'x', '');
         INSERT INTO kv VALUES ('/numeric', 1, {secs_future}, 'n', 'rev-n');"
    ))
    .unwrap();
    drop(conn);
    let b =
        SqliteBackend::open(&cfg(dir.path(), None), OpenOptions::existing().with_clock(clock.clone())).await.unwrap();
    let alice = b.get(&Key::from("/web/users/alice/params")).await.unwrap();
    assert_eq!((alice.value.as_slice(), alice.revision.as_str(), alice.expires), (&b"{}"[..], "rev-a", None));
    let t1 = b.get(&Key::from("/tokens/t1")).await.unwrap();
    assert_eq!(t1.expires, Some(now + Duration::from_secs(3600)));
    assert!(b.get(&Key::from("/tokens/t0")).await.unwrap_err().is_not_found(), "expired row");
    assert_eq!(b.get(&Key::from("/legacy")).await.unwrap().revision, crate::backend::BLANK_REVISION);
    let n = b.get(&Key::from("/numeric")).await.unwrap();
    assert_eq!(n.expires.map(timefmt::unix_secs), Some(secs_future));
    let all = b.get_range(&Key::from("/"), &Key::from("/").range_end(), 0).await.unwrap();
    assert_eq!(all.len(), 4);

    // A legacy row (blank revision) can be updated conditionally.
    b.conditional_update(Item::new("/legacy", "y").with_revision(crate::backend::BLANK_REVISION)).await.unwrap();
}

#[tokio::test]
async fn writes_what_upstream_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let b = open(&cfg(dir.path(), None), clock.clone()).await.unwrap();
    let exp = clock.now() + Duration::from_millis(1500);
    let lease = b.put(Item::new("/a", "v").expires_at(exp)).await.unwrap();
    b.delete(&Key::from("/a")).await.unwrap();
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    type EventRow = (String, String, Option<String>, Option<Vec<u8>>, String);
    let rows: Vec<EventRow> = conn
        .prepare("SELECT type, created, kv_expires, kv_value, kv_revision FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, OpType::Put.code().to_string());
    assert_eq!(rows[0].1, timefmt::format(clock.now()));
    assert_eq!(rows[0].2.as_deref(), Some(timefmt::format(exp).as_str()));
    assert_eq!(rows[0].3.as_deref(), Some(&b"v"[..]));
    assert_eq!(rows[0].4, lease.revision);
    assert_eq!(rows[1].0, OpType::Delete.code().to_string());
    assert!(timefmt::format(exp).ends_with(".5+00:00") || timefmt::format(exp).contains('.'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_writes_of_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&cfg(dir.path(), None), crate::backend::clock::system()).await.unwrap();
    let mut w = b.new_watcher(Watch::prefixes("w", [Key::from("/ext/")])).await.unwrap();
    assert_eq!(w.recv().await.unwrap().op, OpType::Init);
    // Another program writes a row and its event, exactly as upstream does.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = timefmt::format(SystemTime::now());
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         INSERT OR REPLACE INTO kv VALUES ('/ext/k', 1, NULL, 'from-outside', 'r1');
         INSERT INTO events(type, created, kv_key, kv_modified, kv_expires, kv_value, kv_revision)
           VALUES ('1', '{now}', '/ext/k', 1, NULL, 'from-outside', 'r1');
         COMMIT;"
    ))
    .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), w.recv()).await.unwrap().unwrap();
    assert_eq!((e.op, e.item.key.to_string(), e.item.value), (OpType::Put, "/ext/k".into(), b"from-outside".to_vec()));
    assert_eq!(e.item.revision, "r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_busy() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), None);
    let h1 = open(&c, crate::backend::clock::system()).await.unwrap();
    let h2 = open(&c, crate::backend::clock::system()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let b = if t % 2 == 0 { h1.clone() } else { h2.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let k = Key::from(format!("/busy/{t}/{i}"));
                b.put(Item::new(k.clone(), "v")).await?;
                b.get(&k).await?;
            }
            Ok::<(), crate::backend::Error>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let p = Key::from("/busy/");
    assert_eq!(h1.get_range(&p, &p.range_end(), 0).await.unwrap().len(), 1600);
}

#[tokio::test]
async fn events_off_refuses_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), None);
    c.events_off = true;
    let b = open(&c, crate::backend::clock::system()).await.unwrap();
    b.put(Item::new("/a", "v")).await.unwrap();
    let err = b.new_watcher(Watch::all("w")).await.unwrap_err();
    assert!(err.to_string().contains("events_off"), "{err}");
}
