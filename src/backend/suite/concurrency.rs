//! Suite cases for concurrency: backend locks, two handles racing on shared
//! keys, and the atomic-write runner (Move, Lock, Max, Concurrent,
//! NonConflicting, Other).

use std::sync::Arc;
use std::time::Duration;

use super::{Constructor, Ctx};
use crate::backend::{Action, Backend, Condition, ConditionalAction, ErrorKind, Item, lock};

/// Locking: acquire and release, a waiter that gets the lock after release,
/// an independent second lock, and releasing a lost lock.
pub async fn locking(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = t.b.as_ref();
    let name = format!("{}-lock", t.root().to_string_lossy().trim_start_matches('/'));
    let ttl = Duration::from_secs(30);
    let l1 = lock::acquire(b, &name, ttl, Duration::from_secs(5)).await.expect("acquire");

    // A second acquirer waits; it gets the lock once the first releases.
    let waiter = {
        let b2 = t.b.clone();
        let name = name.clone();
        tokio::spawn(async move {
            lock::acquire_with_retry(b2.as_ref(), &name, ttl, Duration::from_secs(10), Duration::from_millis(20)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "a held lock makes others wait");
    // Someone else cannot acquire it without waiting.
    let err = lock::acquire_with_retry(b, &name, ttl, Duration::ZERO, Duration::from_millis(10)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");
    l1.release(b).await.expect("release");
    let l2 = waiter.await.expect("task").expect("waiter acquires after release");

    // A second name is independent.
    let other =
        lock::acquire(b, &format!("{name}-other"), ttl, Duration::from_secs(1)).await.expect("independent lock");
    other.release(b).await.expect("release other");

    // Releasing twice fails: the lock is no longer ours.
    l2.release(b).await.expect("release l2");
    let err = l2.release(b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "{err}");

    // A lock that expired and was taken by someone else cannot be released.
    let short = lock::acquire(b, &name, Duration::from_secs(1), Duration::from_secs(1)).await.expect("acquire short");
    t.advance(Duration::from_secs(2)).await;
    let thief = lock::acquire(b, &name, ttl, Duration::from_secs(5)).await.expect("acquire after expiry");
    let err = short.release(b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "{err}");
    thief.release(b).await.expect("release thief");
    t.finish().await;
}

/// ConcurrentOperations: two handles on one store race 50 rounds of put,
/// compare-and-swap, create, get and delete on shared keys; values are never
/// corrupted and only the expected error kinds occur.
pub async fn concurrent_operations(c: &dyn Constructor) {
    let mut t = Ctx::new(c).await;
    let other = t.second_handle(c).await;
    let keys: Arc<Vec<_>> = Arc::new((0..5).map(|i| t.key(&["shared", &i.to_string()])).collect());
    let run = |b: Arc<dyn Backend>, mine: &'static [u8], theirs: &'static [u8]| {
        let keys = keys.clone();
        async move {
            for round in 0..50 {
                let k = &keys[round % keys.len()];
                let ok_kind = |r: Result<(), crate::backend::Error>| {
                    if let Err(e) = r {
                        assert!(
                            matches!(
                                e.kind(),
                                ErrorKind::NotFound | ErrorKind::AlreadyExists | ErrorKind::CompareFailed
                            ),
                            "unexpected error kind: {e}"
                        );
                    }
                };
                ok_kind(b.put(Item::new(k.clone(), mine)).await.map(|_| ()));
                ok_kind(b.compare_and_swap(Item::new(k.clone(), theirs), Item::new(k.clone(), mine)).await.map(|_| ()));
                ok_kind(b.create(Item::new(k.clone(), mine)).await.map(|_| ()));
                match b.get(k).await {
                    Ok(item) => assert!(
                        item.value == mine || item.value == theirs,
                        "corrupted value {:?}",
                        String::from_utf8_lossy(&item.value)
                    ),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
                }
                ok_kind(b.delete(k).await);
            }
        }
    };
    let a = tokio::spawn(run(t.b.clone(), b"first-handle", b"second-handle"));
    let b = tokio::spawn(run(other, b"second-handle", b"first-handle"));
    a.await.expect("first handle task");
    b.await.expect("second handle task");
    t.finish().await;
}

fn put(k: &crate::backend::Key, v: &str, cond: Condition) -> ConditionalAction {
    ConditionalAction::new(k.clone(), cond, Action::Put(Item::new(k.clone(), v)))
}

/// AtomicWrite Move: delete src guarded by its revision and put dst, once.
pub async fn atomic_move(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let (src, dst) = (t.key(&["src"]), t.key(&["dst"]));
    let lease = t.b.put(Item::new(src.clone(), "payload")).await.expect("put src");
    let mv = vec![
        ConditionalAction::new(src.clone(), Condition::Revision(lease.revision.clone()), Action::Delete),
        put(&dst, "payload", Condition::NotExists),
    ];
    let rev = t.b.atomic_write(mv.clone()).await.expect("move");
    assert_eq!(t.b.get(&src).await.unwrap_err().kind(), ErrorKind::NotFound);
    let got = t.b.get(&dst).await.expect("get dst");
    assert_eq!((got.value.as_slice(), got.revision.as_str()), (&b"payload"[..], rev.as_str()));
    let err = t.b.atomic_write(mv).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "replayed move: {err}");
    t.finish().await;
}

/// AtomicWrite Lock: a lock key gates writes to other keys.
pub async fn atomic_lock(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let (lk, item) = (t.key(&["lock"]), t.key(&["item"]));
    // Take the lock only if free, and write under it.
    let rev =
        t.b.atomic_write(vec![put(&lk, "me", Condition::NotExists), put(&item, "v1", Condition::Whatever)])
            .await
            .expect("lock and write");
    // Someone else cannot take it.
    let err =
        t.b.atomic_write(vec![put(&lk, "them", Condition::NotExists), put(&item, "v2", Condition::Whatever)])
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    // The holder writes while its lock revision is unchanged.
    let rev2 =
        t.b.atomic_write(vec![
            ConditionalAction::new(lk.clone(), Condition::Revision(rev.clone()), Action::Nop),
            put(&item, "v3", Condition::Whatever),
        ])
        .await
        .expect("write under lock");
    assert_ne!(rev, rev2);
    // After the lock changes hands, the old revision no longer works.
    t.b.put(Item::new(lk.clone(), "them")).await.expect("steal lock");
    let err =
        t.b.atomic_write(vec![
            ConditionalAction::new(lk.clone(), Condition::Revision(rev), Action::Nop),
            put(&item, "v4", Condition::Whatever),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    assert_eq!(t.b.get(&item).await.expect("get").value, b"v3");
    t.finish().await;
}

/// AtomicWrite Max: 65 actions are refused, 64 succeed with one shared
/// revision, a failing retry changes nothing, and a revision condition on
/// the shared revision holds.
pub async fn atomic_max(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let max = t.b.limits().max_atomic_actions;
    assert_eq!(max, crate::backend::MAX_ATOMIC_WRITE_SIZE);
    let keys: Vec<_> = (0..=max).map(|i| t.key(&[&format!("{i:03}")])).collect();
    let acts =
        |n: usize, v: &str, cond: Condition| -> Vec<_> { keys[..n].iter().map(|k| put(k, v, cond.clone())).collect() };
    let err = t.b.atomic_write(acts(max + 1, "v", Condition::Whatever)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadParameter, "{err}");
    let rev = t.b.atomic_write(acts(max, "v1", Condition::NotExists)).await.expect("64 actions");
    for k in &keys[..max] {
        assert_eq!(t.b.get(k).await.expect("get").revision, rev);
    }
    let err = t.b.atomic_write(acts(max, "v2", Condition::NotExists)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    for k in &keys[..max] {
        assert_eq!(t.b.get(k).await.expect("get").value, b"v1", "no partial change");
    }
    let rev2 =
        t.b.atomic_write(acts(max, "v3", Condition::Revision(rev.clone())))
            .await
            .expect("revision conditions on the shared revision");
    assert_ne!(rev, rev2);
    t.finish().await;
}

/// AtomicWrite Concurrent: 20 workers make 200 increments of one counter by
/// read plus revision-conditioned write, retrying; the result is exactly 200.
pub async fn atomic_concurrent(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let counter = t.key(&["counter"]);
    t.b.put(Item::new(counter.clone(), "0")).await.expect("put counter");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let b = t.b.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let cur = b.get(&counter).await.expect("get counter");
                    let n: u64 = String::from_utf8_lossy(&cur.value).parse().expect("counter is a number");
                    let r = b
                        .atomic_write(vec![put(&counter, &(n + 1).to_string(), Condition::Revision(cur.revision))])
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::CompareFailed => continue,
                        Err(e) => panic!("increment failed: {e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    assert_eq!(t.b.get(&counter).await.expect("get").value, b"200");
    t.finish().await;
}

/// AtomicWrite NonConflicting: 60 concurrent writes, each checking that a
/// common key exists and writing its own key, all succeed first time.
pub async fn atomic_non_conflicting(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let common = t.key(&["common"]);
    t.b.put(Item::new(common.clone(), "c")).await.expect("put common");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let b = t.b.clone();
        let common = common.clone();
        let own = t.key(&["own", &i.to_string()]);
        tasks.push(tokio::spawn(async move {
            b.atomic_write(vec![
                ConditionalAction::new(common, Condition::Exists, Action::Nop),
                put(&own, "mine", Condition::Whatever),
            ])
            .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("non-conflicting write succeeds first time");
    }
    t.finish().await;
}

/// AtomicWrite Other: `Item::key` inside a Put is ignored, rewriting the same
/// value changes the revision, and every touched key gets the new revision.
pub async fn atomic_other(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let (a, b) = (t.key(&["a"]), t.key(&["b"]));
    let rev =
        t.b.atomic_write(vec![ConditionalAction::new(
            a.clone(),
            Condition::Whatever,
            Action::Put(Item::new(t.key(&["ignored"]), "v")),
        )])
        .await
        .expect("put with a different item key");
    assert_eq!(t.b.get(&a).await.expect("get a").revision, rev);
    assert_eq!(t.b.get(&t.key(&["ignored"])).await.unwrap_err().kind(), ErrorKind::NotFound);

    let rev2 =
        t.b.atomic_write(vec![put(&a, "v", Condition::Whatever), put(&b, "w", Condition::Whatever)])
            .await
            .expect("rewrite");
    assert_ne!(rev, rev2, "an identical value still gets a new revision");
    assert_eq!(t.b.get(&a).await.expect("get a").revision, rev2);
    assert_eq!(t.b.get(&b).await.expect("get b").revision, rev2);
    t.finish().await;
}
