//! Suite cases for reads and single-key writes: CRUD, ranges, iteration,
//! delete range, compare-and-swap and the revision-conditional operations.

use futures::StreamExt;

use super::{Constructor, Ctx, random_bytes};
use crate::backend::{ErrorKind, Item, ItemsParams, Key};

fn keys(items: &[Item]) -> Vec<Key> {
    items.iter().map(|i| i.key.clone()).collect()
}

/// CRUD: update of a missing key, create twice, get and its revision, a
/// one-item range, update, delete twice, put, and a ~1 KB key with a 1 KiB
/// binary value.
pub async fn crud(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = &t.b;
    let k = t.key(&["hello"]);

    let err = b.update(Item::new(k.clone(), "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "update of a missing key: {err}");

    let lease = b.create(Item::new(k.clone(), "world")).await.expect("create");
    let err = b.create(Item::new(k.clone(), "again")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "second create: {err}");

    let got = b.get(&k).await.expect("get");
    assert_eq!(got.value, b"world");
    assert_eq!(got.revision, lease.revision, "get returns the lease's revision");
    assert_eq!(got.expires, None);

    let r = b.get_range(&k, &k.range_end(), 0).await.expect("range");
    assert_eq!(keys(&r), vec![k.clone()]);

    let lease2 = b.update(Item::new(k.clone(), "world 2")).await.expect("update");
    assert_ne!(lease2.revision, lease.revision);
    let got = b.get(&k).await.expect("get after update");
    assert_eq!(got.value, b"world 2");
    assert_eq!(got.revision, lease2.revision);

    b.delete(&k).await.expect("delete");
    assert_eq!(b.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(b.delete(&k).await.unwrap_err().kind(), ErrorKind::NotFound);

    let k2 = t.key(&["put"]);
    b.put(Item::new(k2.clone(), "p")).await.expect("put of a new key");
    assert_eq!(b.get(&k2).await.expect("get put").value, b"p");

    // A key of ~1003 bytes (DynamoDB allows 1024) with a binary value.
    let long = t.key(&[&hex::encode(random_bytes(482))]);
    assert!(long.len() > 1000 && long.len() <= 1024, "long key is {} bytes", long.len());
    let value = random_bytes(1024);
    b.put(Item::new(long.clone(), value.clone())).await.expect("put long key");
    assert_eq!(b.get(&long).await.expect("get long key").value, value);

    // Empty keys are refused.
    let err = b.put(Item::new(Key::default(), "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadParameter);
    t.finish().await;
}

async fn put_query_set(t: &Ctx) -> [Key; 4] {
    let ks = [
        t.key(&["prefix", "a"]),
        t.key(&["prefix", "b"]),
        t.key(&["prefix", "c", "c1"]),
        t.key(&["prefix", "c", "c2"]),
    ];
    for k in &ks {
        t.b.put(Item::new(k.clone(), k.to_string())).await.expect("put");
    }
    // One item outside the prefix.
    t.b.put(Item::new(t.key(&["prefixz"]), "x")).await.expect("put");
    ks
}

/// QueryRange: prefixes, sub-prefixes, inclusive ends and paging.
pub async fn query_range(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = &t.b;
    let [a, bk, c1, c2] = put_query_set(&t).await;
    let prefix = t.key(&["prefix"]).join_raw(b"/");
    let sub = t.key(&["prefix", "c"]).join_raw(b"/");

    let all = b.get_range(&prefix, &prefix.range_end(), 0).await.expect("prefix range");
    assert_eq!(keys(&all), vec![a.clone(), bk.clone(), c1.clone(), c2.clone()]);

    let r = b.get_range(&sub, &sub.range_end(), 0).await.expect("sub range");
    assert_eq!(keys(&r), vec![c1.clone(), c2.clone()]);

    let r = b.get_range(&c1, &t.key(&["prefix", "c", "cz"]).range_end(), 0).await.expect("c1..");
    assert_eq!(keys(&r), vec![c1.clone(), c2.clone()]);

    // The end key is inclusive.
    let r = b.get_range(&c1, &c2, 0).await.expect("c1..c2");
    assert_eq!(keys(&r), vec![c1.clone(), c2.clone()]);

    // Paging with a limit, the next page starting at range_end(last).
    let page = b.get_range(&a, &c2, 2).await.expect("page 1");
    assert_eq!(keys(&page), vec![a.clone(), bk.clone()]);
    let page = b.get_range(&bk.range_end(), &c2, 2).await.expect("page 2");
    assert_eq!(keys(&page), vec![c1.clone(), c2.clone()]);
    let page = b.get_range(&c2.range_end(), &c2, 2).await.expect("page 3");
    assert!(page.is_empty(), "page after the last is empty: {page:?}");
    t.finish().await;
}

async fn collect(t: &Ctx, p: ItemsParams) -> Vec<Key> {
    let items: Vec<_> = t.b.items(p).collect().await;
    items.into_iter().map(|r| r.expect("items").key).collect()
}

/// Items: the iterator ascending and descending, stopping early, and 1,501
/// items traversed fully in both directions (internal paging).
pub async fn items(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let [a, bk, c1, c2] = put_query_set(&t).await;
    let p = |desc: bool, limit: usize| {
        let p = ItemsParams::range(a.clone(), c2.clone()).limit(limit);
        if desc { p.descending() } else { p }
    };
    assert_eq!(collect(&t, p(false, 0)).await, vec![a.clone(), bk.clone(), c1.clone(), c2.clone()]);
    assert_eq!(collect(&t, p(true, 0)).await, vec![c2.clone(), c1.clone(), bk.clone(), a.clone()]);
    assert_eq!(collect(&t, p(false, 3)).await, vec![a.clone(), bk.clone(), c1.clone()]);
    // Stopping early acts as a limit.
    let first: Vec<_> = t.b.items(p(true, 0)).take(2).collect().await;
    assert_eq!(first.len(), 2);

    let big = t.key(&["many"]).join_raw(b"/");
    let mut want = Vec::new();
    for i in 0..1501 {
        want.push(big.join_raw(format!("{i:05}").as_bytes()));
    }
    for chunk in want.chunks(500) {
        let items = chunk.iter().map(|k| Item::new(k.clone(), "v")).collect();
        t.b.put_batch(items).await.expect("put batch");
    }
    let asc = collect(&t, ItemsParams::prefix(&big)).await;
    assert_eq!(asc.len(), 1501);
    assert_eq!(asc, want);
    let desc = collect(&t, ItemsParams::prefix(&big).descending()).await;
    want.reverse();
    assert_eq!(desc, want);

    // A key that extends the last key of a page is not skipped.
    let tricky = t.key(&["x"]);
    t.b.put(Item::new(tricky.clone(), "1")).await.expect("put");
    t.b.put(Item::new(tricky.join_raw(b"/y"), "2")).await.expect("put");
    let got = collect(&t, ItemsParams::prefix(&tricky)).await;
    assert_eq!(got, vec![tricky.clone(), tricky.join_raw(b"/y")]);
    t.finish().await;
}

/// DeleteRange: 4 items plus 100 under one prefix; deleting the prefix
/// leaves the others.
pub async fn delete_range(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let [a, bk, _, _] = put_query_set(&t).await;
    let cp = t.key(&["prefix", "c"]);
    for i in 0..100 {
        t.b.put(Item::new(t.key(&["prefix", "c", &format!("cn{i:03}")]), "v")).await.expect("put");
    }
    t.b.delete_range(&cp, &cp.range_end()).await.expect("delete range");
    let prefix = t.key(&["prefix"]).join_raw(b"/");
    let left = t.b.get_range(&prefix, &prefix.range_end(), 0).await.expect("range");
    assert_eq!(keys(&left), vec![a, bk]);
    t.finish().await;
}

/// CompareAndSwap: missing key, success, stale value, and 10 rounds of two
/// concurrent swaps of which exactly one wins.
pub async fn compare_and_swap(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = &t.b;
    let k = t.key(&["one"]);
    let err = b.compare_and_swap(Item::new(k.clone(), "1"), Item::new(k.clone(), "2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "missing key: {err}");

    let l1 = b.create(Item::new(k.clone(), "1")).await.expect("create");
    let l2 = b.compare_and_swap(Item::new(k.clone(), "1"), Item::new(k.clone(), "2")).await.expect("cas");
    assert_ne!(l1.revision, l2.revision);
    let got = b.get(&k).await.expect("get");
    assert_eq!((got.value.as_slice(), got.revision.as_str()), (&b"2"[..], l2.revision.as_str()));

    let err = b.compare_and_swap(Item::new(k.clone(), "1"), Item::new(k.clone(), "3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    assert_eq!(b.get(&k).await.expect("get").value, b"2");

    let err = b.compare_and_swap(Item::new(k.clone(), "2"), Item::new(t.key(&["other"]), "3")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadParameter, "keys must match");

    for round in 0..10 {
        let k = t.key(&["race", &round.to_string()]);
        b.put(Item::new(k.clone(), "0")).await.expect("put");
        let (r1, r2) = tokio::join!(
            b.compare_and_swap(Item::new(k.clone(), "0"), Item::new(k.clone(), "A")),
            b.compare_and_swap(Item::new(k.clone(), "0"), Item::new(k.clone(), "B")),
        );
        assert!(r1.is_ok() != r2.is_ok(), "exactly one concurrent swap wins: {r1:?} {r2:?}");
        for r in [r1, r2] {
            if let Err(e) = r {
                assert_eq!(e.kind(), ErrorKind::CompareFailed);
            }
        }
    }
    t.finish().await;
}

/// ConditionalUpdate: missing key, stale and garbage revisions, then chained
/// successes each with a new revision.
pub async fn conditional_update(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = &t.b;
    let k = t.key(&["cu"]);
    let err = b
        .conditional_update(Item::new(k.clone(), "x").with_revision(crate::backend::new_revision()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "missing key: {err}");

    let l1 = b.put(Item::new(k.clone(), "1")).await.expect("put");
    let l2 = b.put(Item::new(k.clone(), "2")).await.expect("put");
    for stale in [l1.revision.clone(), "garbage".to_string(), String::new()] {
        let err = b.conditional_update(Item::new(k.clone(), "3").with_revision(stale.clone())).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CompareFailed, "revision {stale:?}: {err}");
    }
    let l3 = b
        .conditional_update(Item::new(k.clone(), "3").with_revision(l2.revision.clone()))
        .await
        .expect("conditional update");
    assert_ne!(l3.revision, l2.revision);
    let l4 = b
        .conditional_update(Item::new(k.clone(), "4").with_revision(l3.revision.clone()))
        .await
        .expect("second conditional update");
    assert_ne!(l4.revision, l3.revision);
    let got = b.get(&k).await.expect("get");
    assert_eq!((got.value.as_slice(), got.revision.as_str()), (&b"4"[..], l4.revision.as_str()));
    t.finish().await;
}

/// ConditionalDelete: stale and garbage revisions fail, the right one
/// deletes, and a missing key is a compare failure, not NotFound.
pub async fn conditional_delete(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let b = &t.b;
    let k = t.key(&["cd"]);
    let l1 = b.put(Item::new(k.clone(), "1")).await.expect("put");
    let l2 = b.put(Item::new(k.clone(), "2")).await.expect("put");
    for stale in [l1.revision.as_str(), "garbage", ""] {
        let err = b.conditional_delete(&k, stale).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CompareFailed, "revision {stale:?}: {err}");
    }
    b.conditional_delete(&k, &l2.revision).await.expect("conditional delete");
    assert_eq!(b.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    let err = b.conditional_delete(&k, &l2.revision).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed, "missing key: {err}");
    t.finish().await;
}
