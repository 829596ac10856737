//! Suite cases for batches (upstream `put_batch.go`, `delete_batch.go`,
//! `batch_write.go`): events, create-then-update, batches larger than any
//! store's request limit, and deletes of present and missing keys.

use super::{Constructor, Ctx, EVENT_TIMEOUT, next_event, random_bytes};
use crate::backend::{ErrorKind, Item, OpType, Watch};

/// PutBatch: items appear in the event stream, revisions match what is
/// stored, a second batch updates, and a batch far over any store's request
/// size (200 items of 300 KiB) is written whole.
pub async fn put_batch(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let mut w = t.b.new_watcher(Watch::prefixes("batch", [t.root()])).await.expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);

    let keys: Vec<_> = (0..40).map(|i| t.key(&["small", &format!("{i:02}")])).collect();
    let revs = t.b.put_batch(keys.iter().map(|k| Item::new(k.clone(), "v1")).collect()).await.expect("put batch");
    assert_eq!(revs.len(), keys.len());
    let mut seen = std::collections::HashSet::new();
    while seen.len() < keys.len() {
        let e = next_event(&mut w, EVENT_TIMEOUT).await;
        assert_eq!(e.op, OpType::Put);
        seen.insert(e.item.key);
    }
    for (k, rev) in keys.iter().zip(&revs) {
        let got = t.b.get(k).await.expect("get");
        assert_eq!((got.value.as_slice(), &got.revision), (&b"v1"[..], rev));
    }
    // Put-create-update: a second batch over the same keys updates them.
    let revs2 =
        t.b.put_batch(keys.iter().map(|k| Item::new(k.clone(), "v2")).collect()).await.expect("second put batch");
    for ((k, r1), r2) in keys.iter().zip(&revs).zip(&revs2) {
        assert_ne!(r1, r2);
        assert_eq!(t.b.get(k).await.expect("get").value, b"v2");
    }
    drop(w);

    // Over every store's request size: the store must chunk it.
    let big = random_bytes(300 * 1024);
    let bigkeys: Vec<_> = (0..200).map(|i| t.key(&["big", &format!("{i:03}")])).collect();
    t.b.put_batch(bigkeys.iter().map(|k| Item::new(k.clone(), big.clone())).collect()).await.expect("large put batch");
    let prefix = t.key(&["big"]);
    let got = t.b.get_range(&prefix, &prefix.range_end(), 0).await.expect("range");
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|i| i.value == big));
    // An empty batch is a no-op.
    assert!(t.b.put_batch(Vec::new()).await.expect("empty batch").is_empty());
    t.finish().await;
}

/// DeleteBatch: deletes reach watchers, the range is empty afterwards,
/// missing keys are not an error, an empty batch is a no-op, and a mix of
/// present and missing keys works.
pub async fn delete_batch(c: &dyn Constructor) {
    let t = Ctx::new(c).await;
    let keys: Vec<_> = (0..30).map(|i| t.key(&["d", &format!("{i:02}")])).collect();
    t.b.put_batch(keys.iter().map(|k| Item::new(k.clone(), "v")).collect()).await.expect("put batch");
    let mut w = t.b.new_watcher(Watch::prefixes("delete-batch", [t.root()])).await.expect("watch");
    assert_eq!(next_event(&mut w, EVENT_TIMEOUT).await.op, OpType::Init);

    t.b.delete_batch(keys[..20].to_vec()).await.expect("delete batch");
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 20 {
        let e = next_event(&mut w, EVENT_TIMEOUT).await;
        assert_eq!(e.op, OpType::Delete);
        seen.insert(e.item.key);
    }
    for k in &keys[..20] {
        assert_eq!(t.b.get(k).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    t.b.delete_batch(vec![t.key(&["never"]), t.key(&["existed"])])
        .await
        .expect("deleting missing keys is not an error");
    t.b.delete_batch(Vec::new()).await.expect("empty batch");
    let mut mixed = keys[20..].to_vec();
    mixed.push(t.key(&["missing"]));
    t.b.delete_batch(mixed).await.expect("mixed batch");
    let prefix = t.key(&["d"]);
    assert!(t.b.get_range(&prefix, &prefix.range_end(), 0).await.expect("range").is_empty());
    t.finish().await;
}
