//! Suite cases for time and watchers: expiration, keep-alive, events
//! (including Delete on expiry), closing watchers, cross-handle watches,
//! event volume, and the range limits around expired and large items.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    Constructor, Ctx, EVENT_TIMEOUT, assert_time_near, expect_event, next_event, random_bytes, ttl_delete_timeout,
};
use crate::backend::{ErrorKind, Item, OpType, Watch};

fn round_up_to_second(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = if d.subsec_nanos() > 0 { d.as_secs() + 1 } else { d.as_secs() };
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Expiration: of an item living 1 h and one living 1 s, only the first is
/// returned 4 s later.
pub async fn expiration(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let a = t.key(&["a"]);
    let b = t.key(&["b"]);
    t.b.put(Item::new(a.clone(), "a").expires_at(t.now() + Duration::from_secs(3600))).await.expect("put a");
    t.b.put(Item::new(b.clone(), "b").expires_at(t.now() + Duration::from_secs(1))).await.expect("put b");
    t.advance(Duration::from_secs(4)).await;
    let root = t.root();
    let items = t.b.get_range(&root, &root.range_end(), 0).await.expect("range");
    assert_eq!(items.iter().map(|i| &i.key).collect::<Vec<_>>(), vec![&a]);
    assert_eq!(t.b.get(&b).await.unwrap_err().kind(), ErrorKind::NotFound);
    t.finish().await;
}

/// KeepAlive: a Put event for the write and another for the keep-alive, both
/// carrying the value and the new expiry; NotFound after delete.
pub async fn keep_alive(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let mut w = t.b.new_watcher(Watch::prefixes("keepalive", [t.root()])).await.expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);

    let k = t.key(&["key"]);
    let value = random_bytes(16 * 1024);
    let expires = round_up_to_second(t.now() + Duration::from_secs(10));
    let lease = t.b.put(Item::new(k.clone(), value.clone()).expires_at(expires)).await.expect("put");
    let e = expect_event(&mut w, OpType::Put, &k, EVENT_TIMEOUT).await;
    assert_eq!(e.item.value, value);
    assert_time_near(e.item.expires, expires, Duration::from_secs(2));

    t.advance(Duration::from_secs(2)).await;
    let later = round_up_to_second(t.now() + Duration::from_secs(60));
    t.b.keep_alive(&lease, later).await.expect("keep alive");
    let e = expect_event(&mut w, OpType::Put, &k, EVENT_TIMEOUT).await;
    assert_eq!(e.item.value, value, "keep-alive event carries the value");
    assert_time_near(e.item.expires, later, Duration::from_secs(2));
    let got = t.b.get(&k).await.expect("get");
    assert_eq!(got.value, value);
    assert_time_near(got.expires, later, Duration::from_secs(2));

    t.b.delete(&k).await.expect("delete");
    let err = t.b.keep_alive(&lease, later).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "keep-alive of a deleted key: {err}");
    t.finish().await;
}

/// Events: Init first, Put, Delete, and a Delete when an item expires.
pub async fn events(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let mut w = t.b.new_watcher(Watch::prefixes("events", [t.root()])).await.expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);

    let k = t.key(&["hello"]);
    t.b.put(Item::new(k.clone(), "world")).await.expect("put");
    let e = expect_event(&mut w, OpType::Put, &k, EVENT_TIMEOUT).await;
    assert_eq!(e.item.value, b"world");
    t.b.delete(&k).await.expect("delete");
    expect_event(&mut w, OpType::Delete, &k, EVENT_TIMEOUT).await;

    let k = t.key(&["expiring"]);
    t.b.put(Item::new(k.clone(), "soon gone").expires_at(t.now() + Duration::from_secs(1)))
        .await
        .expect("put with ttl");
    expect_event(&mut w, OpType::Put, &k, EVENT_TIMEOUT).await;
    t.advance(Duration::from_secs(3)).await;
    assert_eq!(t.b.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    expect_event(&mut w, OpType::Delete, &k, ttl_delete_timeout()).await;
    t.finish().await;
}

/// WatchersClose: dropping a watcher closes it; closing the backend closes
/// every remaining watcher.
pub async fn watchers_close(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let w1 = t.b.new_watcher(Watch::all("w1")).await.expect("watch");
    w1.close();
    tokio::time::timeout(Duration::from_secs(1), w1.done()).await.expect("a closed watcher reports done within 1 s");

    let mut w2 = t.b.new_watcher(Watch::all("w2")).await.expect("watch");
    assert_eq!(next_event(&mut w2, EVENT_TIMEOUT).await.op, OpType::Init);
    t.b.close().await.expect("close backend");
    tokio::time::timeout(Duration::from_secs(1), w2.done())
        .await
        .expect("closing the backend closes its watchers within 1 s");
    let drained = tokio::time::timeout(Duration::from_secs(1), async { while w2.recv().await.is_some() {} }).await;
    assert!(drained.is_ok(), "recv returns None after close");
    assert!(t.b.new_watcher(Watch::all("w3")).await.is_err(), "no watchers after close");
    assert!(t.b.get(&t.key(&["x"])).await.is_err(), "no reads after close");
}

/// A key written through a second handle reaches the first handle's watcher
/// (two auth servers sharing one store).
pub async fn watch_second_handle(c: &dyn Constructor) {
    let mut t = Ctx::new(c).await;
    let other = t.second_handle(c).await;
    let mut w = t.b.new_watcher(Watch::prefixes("cross", [t.root()])).await.expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);
    let k = t.key(&["from-other-handle"]);
    other.put(Item::new(k.clone(), "hi")).await.expect("put via second handle");
    let e = expect_event(&mut w, OpType::Put, &k, EVENT_TIMEOUT).await;
    assert_eq!(e.item.value, b"hi");
    other.delete(&k).await.expect("delete via second handle");
    expect_event(&mut w, OpType::Delete, &k, EVENT_TIMEOUT).await;
    t.finish().await;
}

/// Watch volume: 1,000 puts of 4 KiB from 10 concurrent writers reach a
/// watcher with no event missing or duplicated.
pub async fn watch_volume(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let mut w =
        t.b.new_watcher(Watch { name: "volume".into(), prefixes: vec![t.root()], queue_size: 2048 })
            .await
            .expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);
    let value = Arc::new(random_bytes(4096));
    let mut writers = Vec::new();
    for wr in 0..10 {
        let b = t.b.clone();
        let value = value.clone();
        let keys: Vec<_> = (0..100).map(|i| t.key(&[&format!("w{wr:02}"), &format!("{i:03}")])).collect();
        writers.push(tokio::spawn(async move {
            for k in keys {
                b.put(Item::new(k, value.as_slice())).await.expect("put");
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 1000 {
        let e = next_event(&mut w, EVENT_TIMEOUT).await;
        assert_eq!(e.op, OpType::Put);
        assert!(seen.insert(e.item.key.clone()), "duplicate event for {:?}", e.item.key);
    }
    for wr in writers {
        wr.await.expect("writer task");
    }
    t.finish().await;
}

/// FetchLimit: 20 items of 64 KiB (over 1 MB in all) come back from one
/// unlimited range read: stores page past their response limits.
pub async fn fetch_limit(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let value = random_bytes(64 * 1024);
    for i in 0..20 {
        t.b.put(Item::new(t.key(&[&format!("{i:02}")]), value.clone())).await.expect("put");
    }
    let root = t.root();
    let items = t.b.get_range(&root, &root.range_end(), 0).await.expect("range");
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|i| i.value == value));
    t.finish().await;
}

/// Limit: expired items between a live head and tail do not use up the
/// limit.
pub async fn limit(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let long = t.now() + Duration::from_secs(3600);
    let short = t.now() + Duration::from_secs(3);
    let head = t.key(&["a_head"]);
    let tail = t.key(&["z_tail"]);
    t.b.put(Item::new(head.clone(), "h").expires_at(long)).await.expect("put head");
    for i in 0..10 {
        t.b.put(Item::new(t.key(&[&format!("m{i:02}")]), "x").expires_at(short)).await.expect("put middle");
    }
    t.b.put(Item::new(tail.clone(), "t").expires_at(long)).await.expect("put tail");
    t.advance(Duration::from_secs(5)).await;
    let root = t.root();
    let items = t.b.get_range(&root, &root.range_end(), 2).await.expect("range");
    assert_eq!(items.iter().map(|i| &i.key).collect::<Vec<_>>(), vec![&head, &tail]);
    t.finish().await;
}
