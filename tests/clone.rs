//! `teleport backend clone` and `verify`: upstream's clone tests, the
//! refusals (non-empty destination, empty source, wrong sqlite path, limit
//! violations), TTLs, filters, mirror, follow, and kill-and-resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{Backend, Item, Key, suite};
use teleport::clone::progress::Progress;
use teleport::clone::run::{CloneOptions, run};
use teleport::clone::verify::{VerifyOptions, verify};
use teleport::clone::{CloneError, Selection};
use teleport::config::{SqliteConfig, StorageConfig};
use tokio_util::sync::CancellationToken;

fn sqlite_cfg(dir: &Path) -> StorageConfig {
    StorageConfig::Sqlite(SqliteConfig::new(dir))
}

async fn open(cfg: &StorageConfig) -> Arc<dyn Backend> {
    registry::open(cfg, OpenOptions::create()).await.expect("open store")
}

/// Fills a store with `n` items `key-00000`.. under /items/, some expiring.
async fn fill(b: &dyn Backend, n: usize) {
    let soon = b.clock().now() + Duration::from_secs(3600);
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let item = Item::new(format!("/items/key-{i:05}"), format!("value {i}"));
            if i % 10 == 0 { item.expires_at(soon) } else { item }
        })
        .collect();
    for chunk in items.chunks(1000) {
        b.put_batch(chunk.to_vec()).await.expect("fill");
    }
}

fn opts(parallel: usize) -> CloneOptions {
    CloneOptions { parallel, verify: Some(VerifyOptions::default()), ..CloneOptions::default() }
}

async fn clone(
    src: &Arc<dyn Backend>,
    dst: &Arc<dyn Backend>,
    o: CloneOptions,
) -> Result<teleport::clone::run::CloneSummary, CloneError> {
    run(src.clone(), dst.clone(), o, Arc::new(Progress::default()), CancellationToken::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clone_11111_items_and_verify() {
    // Upstream's TestClone: 11,111 items, parallel 10; every item equal.
    let dir = tempfile::tempdir().unwrap();
    let src = open(&sqlite_cfg(&dir.path().join("src"))).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    fill(src.as_ref(), 11_111).await;
    src.put(Item::new(".locks/internal", "not cloned by default")).await.unwrap();
    let s = clone(&src, &dst, opts(10)).await.expect("clone");
    assert_eq!((s.plan.items, s.copied, s.destination_items), (11_111, 11_111, 11_111));
    let v = s.verify.expect("verify ran");
    assert!(v.is_equal(), "{v:?}");
    // Expiry travelled with the items; revisions are the destination's own.
    let a = src.get(&Key::from("/items/key-00010")).await.unwrap();
    let b = dst.get(&Key::from("/items/key-00010")).await.unwrap();
    assert_eq!(a.expires, b.expires);
    assert_ne!(a.revision, b.revision);
    assert!(dst.get(&Key::from(".locks/internal")).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_and_non_force() {
    // Upstream's TestCloneForce: a destination holding an item is refused
    // without force and overwritten with it.
    let dir = tempfile::tempdir().unwrap();
    let src = open(&sqlite_cfg(&dir.path().join("src"))).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    fill(src.as_ref(), 100).await;
    dst.put(Item::new("/items/key-00001", "stale")).await.unwrap();
    let err = clone(&src, &dst, opts(1)).await.unwrap_err().to_string();
    assert!(err.contains("already holds items") && err.contains("force: true"), "{err}");
    assert_eq!(dst.get(&Key::from("/items/key-00001")).await.unwrap().value, b"stale", "nothing written");
    let s = clone(&src, &dst, CloneOptions { force: true, ..opts(4) }).await.unwrap();
    assert!(s.verify.unwrap().is_equal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_source_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let src = open(&sqlite_cfg(&dir.path().join("src"))).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    let err = clone(&src, &dst, opts(1)).await.unwrap_err().to_string();
    assert!(err.contains("holds no items") && err.contains("--allow-empty-source"), "{err}");
    let s = clone(&src, &dst, CloneOptions { allow_empty_source: true, ..opts(1) }).await.unwrap();
    assert_eq!(s.copied, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_prefix_and_internal_keys() {
    let dir = tempfile::tempdir().unwrap();
    let src = open(&sqlite_cfg(&dir.path().join("src"))).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    for k in ["/web/users/a/params", "/web/users/b/params", "/roles/r/params", ".locks/l"] {
        src.put(Item::new(k, "v")).await.unwrap();
    }
    dst.put(Item::new("/web/users/gone/params", "old")).await.unwrap();
    dst.put(Item::new("/tokens/keep", "outside the selection")).await.unwrap();
    // Only /web/users/, with --mirror: the stale user goes, /tokens stays.
    let sel = Selection { prefixes: vec![Key::from("/web/users/")], include_internal: false };
    let s = clone(&src, &dst, CloneOptions { force: true, mirror: true, selection: sel, ..opts(2) }).await.unwrap();
    assert_eq!((s.copied, s.mirrored_deletes), (2, 1));
    assert!(dst.get(&Key::from("/web/users/gone/params")).await.unwrap_err().is_not_found());
    assert!(dst.get(&Key::from("/tokens/keep")).await.is_ok());
    assert!(dst.get(&Key::from("/roles/r/params")).await.unwrap_err().is_not_found());
    // --include-internal copies .locks/ too.
    let all = Selection { prefixes: vec![], include_internal: true };
    clone(&src, &dst, CloneOptions { force: true, selection: all, ..opts(2) }).await.unwrap();
    assert!(dst.get(&Key::from(".locks/l")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_replicates_puts_deletes_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut src_cfg = SqliteConfig::new(dir.path().join("src"));
    src_cfg.poll_stream_period = Some(Duration::from_millis(100));
    let src = open(&StorageConfig::Sqlite(src_cfg)).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    fill(src.as_ref(), 500).await;
    let cancel = CancellationToken::new();
    let progress = Arc::new(Progress::default());
    let o = CloneOptions { follow: true, ..opts(2) };
    let task = tokio::spawn(run(src.clone(), dst.clone(), o, progress.clone(), cancel.clone()));

    let wait_for = |key: &'static str, want: Option<&'static str>| {
        let dst = dst.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = dst.get(&Key::from(key)).await.ok().map(|i| i.value);
                if got.as_deref() == want.map(str::as_bytes) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{key} did not reach {want:?} within 10 s (got {got:?})"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // A change made while planning or copying arrives through the copy or
    // the watch; those made once following arrive as events.
    src.put(Item::new("/items/early", "during the copy")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while progress.stage() != teleport::clone::progress::Stage::Following {
        assert!(tokio::time::Instant::now() < deadline, "never reached the follow stage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("/items/early", Some("during the copy")).await;
    src.put(Item::new("/items/new", "hello")).await.unwrap();
    wait_for("/items/new", Some("hello")).await;
    src.put(Item::new("/items/new", "hello again")).await.unwrap();
    wait_for("/items/new", Some("hello again")).await;
    src.delete(&Key::from("/items/key-00001")).await.unwrap();
    wait_for("/items/key-00001", None).await;
    let exp = src.clock().now() + Duration::from_secs(1);
    src.put(Item::new("/items/short-lived", "bye").expires_at(exp)).await.unwrap();
    wait_for("/items/short-lived", Some("bye")).await;
    wait_for("/items/short-lived", None).await;
    let applied = progress.snapshot().events_applied;
    assert!(applied >= 4, "applied {applied} events");
    assert!(progress.snapshot().lag_ms < 5_000, "bounded lag");
    cancel.cancel();
    let s = task.await.unwrap().expect("follow stops cleanly");
    assert!((500..=501).contains(&s.plan.items), "the early put may land before the plan: {}", s.plan.items);
    let v = verify(src, dst, &Selection::default(), VerifyOptions::default(), &Progress::default()).await.unwrap();
    assert!(v.is_equal(), "{v:?}");
}

fn teleport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teleport")).args(args).output().expect("run teleport")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn clone_file(dir: &Path, src: &str, dst: &str, parallel: usize) -> PathBuf {
    let p = dir.join("clone.yaml");
    std::fs::write(&p, format!("src:\n{src}\ndst:\n{dst}\nparallel: {parallel}\nforce: false\n")).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sqlite_path_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("data/backend");
    fill(open(&sqlite_cfg(&real)).await.as_ref(), 10).await;
    let wrong = dir.path().join("data");
    let cfg = clone_file(
        dir.path(),
        &format!("  type: sqlite\n  path: {}", wrong.display()),
        &format!("  type: sqlite\n  path: {}", dir.path().join("dst").display()),
        1,
    );
    let out = teleport(&["backend", "-c", cfg.to_str().unwrap(), "clone"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no database at") && err.contains("did you mean path:"), "{err}");
    assert!(!wrong.join("sqlite.db").exists(), "no empty database was created");
}

#[test]
fn cli_dry_run_json_and_verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { fill(open(&sqlite_cfg(&dir.path().join("src"))).await.as_ref(), 300).await });
    let cfg = clone_file(
        dir.path(),
        &format!("  type: sqlite\n  path: {}", dir.path().join("src").display()),
        &format!("  type: sqlite\n  path: {}", dir.path().join("dst").display()),
        4,
    );
    let c = cfg.to_str().unwrap();
    let out = teleport(&["backend", "-c", c, "clone", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("dry run: nothing was written"));
    assert!(
        !dir.path().join("dst/sqlite.db").exists() || {
            // The destination may be opened (created empty) but holds nothing.
            let out = teleport(&["backend", "-c", c, "verify"]);
            out.status.code() == Some(3)
        }
    );

    let out = teleport(&["backend", "-c", c, "clone", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = text(&out.stdout).lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["event"], "summary");
    assert_eq!(v["summary"]["copied"], 300);
    assert_eq!(v["summary"]["destination_items"], 300);
    assert!(!dir.path().join("clone.yaml.checkpoint").exists(), "a finished clone leaves no checkpoint");

    let out = teleport(&["backend", "-c", c, "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Change the destination: verify names the key and exits 3.
    rt.block_on(async {
        let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
        dst.put(Item::new("/items/key-00007", "tampered")).await.unwrap();
    });
    let out = teleport(&["backend", "-c", c, "verify"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("differing /items/key-00007"), "{}", text(&out.stdout));
}

/// Kills the clone process at several random points and resumes it each
/// time; the destination ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_resume_at_random_points() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    fill(open(&sqlite_cfg(&src_dir)).await.as_ref(), 60_000).await;
    let cfg = clone_file(
        dir.path(),
        &format!("  type: sqlite\n  path: {}", src_dir.display()),
        &format!("  type: etcd\n  peers: [{}]\n  prefix: /resume/\n  insecure: true", etcd.endpoint),
        4,
    );
    let c = cfg.to_str().unwrap().to_string();
    let checkpoint = dir.path().join("clone.yaml.checkpoint");
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D ^ std::process::id() as u64;
    let mut kills = 0;
    let mut resumed = false;
    loop {
        let mut args = vec!["backend", "-c", c.as_str(), "clone"];
        if resumed {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_teleport"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(300 + seed % 900);
        let killed = if kills < 5 {
            tokio::time::sleep(delay).await;
            match child.try_wait().unwrap() {
                Some(_) => false,
                None => {
                    child.kill().unwrap();
                    true
                }
            }
        } else {
            false
        };
        let out = child.wait_with_output().unwrap();
        if killed {
            kills += 1;
            // A checkpoint may not exist yet if the kill came before the first save.
            resumed = checkpoint.exists();
            continue;
        }
        assert!(out.status.success(), "clone failed: {}", text(&out.stderr));
        if kills >= 5 {
            break;
        }
        // Finished before the kill: start over with a fresh destination.
        panic!("the clone finished within {delay:?}; make the source larger so kills land mid-copy");
    }
    assert_eq!(kills, 5);
    let out = teleport(&["backend", "-c", &c, "verify"]);
    assert_eq!(out.status.code(), Some(0), "verify after resumes: {}", text(&out.stdout));
    assert!(text(&out.stdout).contains("identical: 60000 items"), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_to_sqlite_keeps_ttls_and_dry_run_finds_oversized() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd_cfg: StorageConfig =
        serde_norway::from_str(&format!("type: etcd\npeers: [{}]\nprefix: /ttl/\ninsecure: true\n", etcd.endpoint))
            .unwrap();
    let src = open(&etcd_cfg).await;
    fill(src.as_ref(), 200).await;
    let dst = open(&sqlite_cfg(&dir.path().join("dst"))).await;
    let s = clone(&src, &dst, opts(4)).await.unwrap();
    assert!(s.verify.as_ref().unwrap().is_equal(), "{:?}", s.verify);
    let got = dst.get(&Key::from("/items/key-00020")).await.unwrap();
    suite::assert_time_near(got.expires, src.clock().now() + Duration::from_secs(3600), Duration::from_secs(5));

    // sqlite -> etcd with an item over etcd's request limit: the dry run
    // reports it, the clone refuses before writing, --skip-oversized skips it.
    let big_src = open(&sqlite_cfg(&dir.path().join("big"))).await;
    fill(big_src.as_ref(), 10).await;
    big_src.put(Item::new("/items/huge", vec![b'x'; 2 << 20])).await.unwrap();
    let etcd2: StorageConfig =
        serde_norway::from_str(&format!("type: etcd\npeers: [{}]\nprefix: /big/\ninsecure: true\n", etcd.endpoint))
            .unwrap();
    let dst2 = open(&etcd2).await;
    let dry = clone(&big_src, &dst2, CloneOptions { dry_run: true, ..opts(1) }).await.unwrap();
    assert_eq!(dry.plan.violation_count, 1);
    assert_eq!(dry.plan.violations[0].key, "/items/huge");
    let err = clone(&big_src, &dst2, opts(1)).await.unwrap_err().to_string();
    assert!(err.contains("/items/huge") && err.contains("--skip-oversized"), "{err}");
    assert!(dst2.get(&Key::from("/items/key-00001")).await.unwrap_err().is_not_found(), "nothing written");
    let s = clone(&big_src, &dst2, CloneOptions { skip_oversized: true, verify: None, ..opts(2) }).await.unwrap();
    assert_eq!((s.copied, s.skipped_oversized), (10, 1));
}

#[cfg(feature = "dynamodb")]
fn dynamodb_cfg(db: &testcontainers::DynamoDb, table: &str) -> StorageConfig {
    serde_norway::from_str(&format!(
        "type: dynamodb\ntable_name: {table}\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    ))
    .expect("dynamodb config")
}

/// sqlite -> DynamoDB -> sqlite, TTLs kept both ways; a dry run finds an
/// item over DynamoDB's 400 KB limit and the clone refuses before writing.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_dynamodb_and_back() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = open(&sqlite_cfg(&dir.path().join("src"))).await;
    fill(src.as_ref(), 300).await;
    let ddb = open(&dynamodb_cfg(&db, "clone_there")).await;
    let s = clone(&src, &ddb, opts(4)).await.expect("sqlite -> dynamodb");
    assert_eq!(s.copied, 300);
    assert!(s.verify.as_ref().unwrap().is_equal(), "{:?}", s.verify);

    let back = open(&sqlite_cfg(&dir.path().join("back"))).await;
    let s = clone(&ddb, &back, opts(4)).await.expect("dynamodb -> sqlite");
    assert!(s.verify.as_ref().unwrap().is_equal(), "{:?}", s.verify);
    let a = src.get(&Key::from("/items/key-00030")).await.unwrap();
    let b = back.get(&Key::from("/items/key-00030")).await.unwrap();
    // DynamoDB keeps whole seconds (rounded up).
    suite::assert_time_near(b.expires, a.expires.unwrap(), Duration::from_secs(1));

    // An item over DynamoDB's 400 KB item limit.
    let big = open(&sqlite_cfg(&dir.path().join("big"))).await;
    fill(big.as_ref(), 5).await;
    big.put(Item::new("/items/too-big", vec![b'x'; 500 * 1024])).await.unwrap();
    let ddb2 = open(&dynamodb_cfg(&db, "clone_big")).await;
    let dry = clone(&big, &ddb2, CloneOptions { dry_run: true, ..opts(1) }).await.unwrap();
    assert_eq!((dry.plan.items, dry.plan.violation_count), (6, 1));
    assert_eq!(dry.plan.violations[0].key, "/items/too-big");
    assert!(dry.plan.violations[0].message.contains("at most 409440"), "{}", dry.plan.violations[0].message);
    let err = clone(&big, &ddb2, opts(1)).await.unwrap_err().to_string();
    assert!(err.contains("/items/too-big") && err.contains("nothing was written"), "{err}");
    assert!(ddb2.get(&Key::from("/items/key-00001")).await.unwrap_err().is_not_found());
}

/// memory -> Firestore (the project's Firestore-protocol server), with
/// expiry, then verify and back to SQLite.
#[cfg(feature = "firestore")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_to_firestore() {
    let f = testcontainers::firestore().await.expect("Firestore test server");
    let src: Arc<dyn Backend> = Arc::new(teleport::backend::memory::MemoryBackend::new().unwrap());
    fill(src.as_ref(), 1200).await;
    let cfg: StorageConfig = serde_norway::from_str(&format!(
        "type: firestore\ncollection_name: clone-{}\nproject_id: {}\nendpoint: {}\n",
        std::process::id(),
        f.project,
        f.endpoint
    ))
    .unwrap();
    let fs = open(&cfg).await;
    let s = clone(&src, &fs, opts(4)).await.expect("memory -> firestore");
    assert_eq!((s.copied, s.destination_items), (1200, 1200));
    assert!(s.verify.as_ref().unwrap().is_equal(), "{:?}", s.verify);
    let dir = tempfile::tempdir().unwrap();
    let back = open(&sqlite_cfg(dir.path())).await;
    let s = clone(&fs, &back, opts(2)).await.expect("firestore -> sqlite");
    assert!(s.verify.as_ref().unwrap().is_equal(), "{:?}", s.verify);
    let a = src.get(&Key::from("/items/key-00100")).await.unwrap();
    let b = back.get(&Key::from("/items/key-00100")).await.unwrap();
    suite::assert_time_near(b.expires, a.expires.unwrap(), Duration::from_secs(1));
}
