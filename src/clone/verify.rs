//! Verify: compare a source and a destination item by item.
//!
//! Both stores are read concurrently in key order and merged in one pass,
//! with bounded memory: an item only in the source is *missing*, only in the
//! destination *extra*, in both with another value or an expiry further
//! apart than the tolerance *differing*. Items that expire within the
//! tolerance of now are not counted either way (they may legitimately be
//! gone on one side).
//!
//! Per top-level prefix the report also carries a SHA-256 digest of each
//! side's keys and values, so equal ranges are stated without listing, and
//! two reports (say, before and after a restore) can be compared by digest.
//! None of the supported stores can hash a key range on the server, so both
//! sides are read in full; the merge is the fast path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::progress::Progress;
use super::{CloneError, Selection};
use crate::backend::{Backend, Item};

/// How verify compares.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Expiries this close are equal (stores round differently: etcd and
    /// DynamoDB keep whole seconds).
    pub expiry_tolerance: Duration,
    /// How many keys of each kind of difference to list.
    pub max_listed: usize,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions { expiry_tolerance: Duration::from_secs(2), max_listed: 20 }
    }
}

/// One side's view of a top-level prefix.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefixDigest {
    /// Items in the source.
    pub source_items: u64,
    /// Items in the destination.
    pub destination_items: u64,
    /// SHA-256 of the source's keys and values, in key order.
    pub source_digest: String,
    /// SHA-256 of the destination's keys and values, in key order.
    pub destination_digest: String,
    /// Whether both digests are equal.
    pub equal: bool,
}

/// A difference.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The key.
    pub key: String,
    /// What differs.
    pub detail: String,
}

/// The result of a verify.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The source store.
    pub source: String,
    /// The destination store.
    pub destination: String,
    /// Items read from the source.
    pub source_items: u64,
    /// Items read from the destination.
    pub destination_items: u64,
    /// Items only in the source.
    pub missing: u64,
    /// Items only in the destination.
    pub extra: u64,
    /// Items whose value or expiry differs.
    pub differing: u64,
    /// Items not compared because they expire within the tolerance.
    pub expiring_ignored: u64,
    /// The first missing keys.
    pub first_missing: Vec<String>,
    /// The first extra keys.
    pub first_extra: Vec<String>,
    /// The first differing keys, with what differs.
    pub first_differing: Vec<Difference>,
    /// Digests per top-level prefix.
    pub by_prefix: BTreeMap<String, PrefixDigest>,
}

impl VerifyReport {
    /// True when nothing is missing, extra or different.
    pub fn is_equal(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differing == 0
    }
}

/// Streams the selection of a store into a channel, in key order.
fn reader(
    b: Arc<dyn Backend>,
    sel: Selection,
) -> (mpsc::Receiver<Item>, tokio::task::JoinHandle<Result<(), crate::backend::Error>>) {
    let (tx, rx) = mpsc::channel(4096);
    let task = tokio::spawn(async move {
        for range in sel.ranges() {
            let mut items = b.items(range);
            while let Some(item) = items.next().await {
                let item = item?;
                if !sel.contains(&item.key) {
                    continue;
                }
                if tx.send(item).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    });
    (rx, task)
}

fn feed(h: &mut Sha256, item: &Item) {
    h.update((item.key.len() as u64).to_be_bytes());
    h.update(item.key.as_bytes());
    h.update((item.value.len() as u64).to_be_bytes());
    h.update(&item.value);
}

fn near(t: Option<SystemTime>, now: SystemTime, tol: Duration) -> bool {
    t.is_some_and(|t| t <= now + tol)
}

fn expiry_differs(a: Option<SystemTime>, b: Option<SystemTime>, tol: Duration) -> Option<String> {
    match (a, b) {
        (None, None) => None,
        (Some(x), Some(y)) => {
            let d = x.duration_since(y).or_else(|_| y.duration_since(x)).unwrap_or_default();
            (d > tol).then(|| format!("expiry differs by {:.1}s", d.as_secs_f64()))
        }
        (Some(_), None) => Some("expires in the source, never in the destination".into()),
        (None, Some(_)) => Some("never expires in the source, expires in the destination".into()),
    }
}

/// Compares the selection of `src` and `dst`.
pub async fn verify(
    src: Arc<dyn Backend>,
    dst: Arc<dyn Backend>,
    sel: &Selection,
    opts: VerifyOptions,
    progress: &Progress,
) -> Result<VerifyReport, CloneError> {
    let (mut a, ta) = reader(src.clone(), sel.clone());
    let (mut b, tb) = reader(dst.clone(), sel.clone());
    let mut r = VerifyReport {
        source: src.describe(),
        destination: dst.describe(),
        source_items: 0,
        destination_items: 0,
        missing: 0,
        extra: 0,
        differing: 0,
        expiring_ignored: 0,
        first_missing: Vec::new(),
        first_extra: Vec::new(),
        first_differing: Vec::new(),
        by_prefix: BTreeMap::new(),
    };
    let mut hashers: BTreeMap<String, (Sha256, Sha256)> = BTreeMap::new();
    let (tol, max) = (opts.expiry_tolerance, opts.max_listed);
    let now = src.clock().now();
    let mut x = a.recv().await;
    let mut y = b.recv().await;
    loop {
        let order = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(i), Some(j)) => i.key.cmp(&j.key),
        };
        let take_src = order != std::cmp::Ordering::Greater;
        let take_dst = order != std::cmp::Ordering::Less;
        for (item, is_src) in [(x.as_ref().filter(|_| take_src), true), (y.as_ref().filter(|_| take_dst), false)] {
            let Some(item) = item else { continue };
            let top = String::from_utf8_lossy(item.key.top_level()).into_owned();
            let (hs, hd) = hashers.entry(top.clone()).or_insert_with(|| (Sha256::new(), Sha256::new()));
            let d = r.by_prefix.entry(top).or_default();
            if is_src {
                feed(hs, item);
                d.source_items += 1;
                r.source_items += 1;
            } else {
                feed(hd, item);
                d.destination_items += 1;
                r.destination_items += 1;
            }
        }
        match (order, &x, &y) {
            (std::cmp::Ordering::Less, Some(i), _) => {
                if near(i.expires, now, tol) {
                    r.expiring_ignored += 1;
                } else {
                    r.missing += 1;
                    if r.first_missing.len() < max {
                        r.first_missing.push(i.key.to_string_lossy());
                    }
                }
            }
            (std::cmp::Ordering::Greater, _, Some(j)) => {
                if near(j.expires, now, tol) {
                    r.expiring_ignored += 1;
                } else {
                    r.extra += 1;
                    if r.first_extra.len() < max {
                        r.first_extra.push(j.key.to_string_lossy());
                    }
                }
            }
            (std::cmp::Ordering::Equal, Some(i), Some(j)) => {
                let detail = if i.value != j.value {
                    Some(format!("value differs ({} vs {} bytes)", i.value.len(), j.value.len()))
                } else {
                    expiry_differs(i.expires, j.expires, tol)
                };
                if let Some(detail) = detail {
                    if near(i.expires, now, tol) || near(j.expires, now, tol) {
                        r.expiring_ignored += 1;
                    } else {
                        r.differing += 1;
                        if r.first_differing.len() < max {
                            r.first_differing.push(Difference { key: i.key.to_string_lossy(), detail });
                        }
                    }
                }
            }
            _ => {}
        }
        Progress::add(&progress.verified, 1);
        if take_src {
            x = a.recv().await;
        }
        if take_dst {
            y = b.recv().await;
        }
    }
    let joined = |res: Result<Result<(), crate::backend::Error>, tokio::task::JoinError>| {
        res.map_err(|e| CloneError::Refused(format!("verify reader failed: {e}")))
    };
    if let Err(source) = joined(ta.await)? {
        return Err(CloneError::Source { store: src.describe(), what: "read items to verify".into(), source });
    }
    if let Err(source) = joined(tb.await)? {
        return Err(CloneError::Destination { store: dst.describe(), what: "read items to verify".into(), source });
    }
    for (top, (hs, hd)) in hashers {
        if let Some(d) = r.by_prefix.get_mut(&top) {
            d.source_digest = hex::encode(hs.finalize());
            d.destination_digest = hex::encode(hd.finalize());
            d.equal = d.source_digest == d.destination_digest;
        }
    }
    Ok(r)
}

/// Deletes destination items of the selection that the source does not
/// hold (`--mirror`), in batches; returns how many were deleted.
pub async fn delete_extra(
    src: Arc<dyn Backend>,
    dst: Arc<dyn Backend>,
    sel: &Selection,
    progress: &Progress,
) -> Result<u64, CloneError> {
    let (mut a, ta) = reader(src.clone(), sel.clone());
    let (mut b, tb) = reader(dst.clone(), sel.clone());
    let batch_size = dst.limits().max_batch_items.max(1);
    let mut doomed = Vec::with_capacity(batch_size);
    let mut deleted = 0u64;
    let mut ta = Some(ta);
    let mut x = a.recv().await;
    while let Some(j) = b.recv().await {
        while x.as_ref().is_some_and(|i| i.key < j.key) {
            x = a.recv().await;
        }
        if x.as_ref().is_some_and(|i| i.key == j.key) {
            continue;
        }
        if x.is_none()
            && let Some(task) = ta.take()
        {
            // The source ran out: make sure it ended cleanly, not on an
            // error, before treating the rest of the destination as extra.
            let res = task.await.map_err(|e| CloneError::Refused(format!("mirror reader failed: {e}")))?;
            if let Err(source) = res {
                return Err(CloneError::Source { store: src.describe(), what: "read keys to mirror".into(), source });
            }
        }
        doomed.push(j.key);
        if doomed.len() == batch_size {
            let n = doomed.len() as u64;
            dst.delete_batch(std::mem::take(&mut doomed)).await.map_err(|source| CloneError::Destination {
                store: dst.describe(),
                what: "delete items the source does not hold (--mirror)".into(),
                source,
            })?;
            deleted += n;
            Progress::add(&progress.mirrored_deletes, n);
        }
    }
    // Drain the source reader so its task ends.
    drop(a);
    if !doomed.is_empty() {
        let n = doomed.len() as u64;
        dst.delete_batch(doomed).await.map_err(|source| CloneError::Destination {
            store: dst.describe(),
            what: "delete items the source does not hold (--mirror)".into(),
            source,
        })?;
        deleted += n;
        Progress::add(&progress.mirrored_deletes, n);
    }
    let joined = |res: Result<Result<(), crate::backend::Error>, tokio::task::JoinError>| {
        res.map_err(|e| CloneError::Refused(format!("mirror reader failed: {e}")))
    };
    if let Some(task) = ta
        && let Err(source) = joined(task.await)?
    {
        return Err(CloneError::Source { store: src.describe(), what: "read keys to mirror".into(), source });
    }
    if let Err(source) = joined(tb.await)? {
        return Err(CloneError::Destination { store: dst.describe(), what: "read keys to mirror".into(), source });
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;

    #[tokio::test]
    async fn finds_missing_extra_and_differing() {
        let src: Arc<dyn Backend> = Arc::new(MemoryBackend::new().unwrap());
        let dst: Arc<dyn Backend> = Arc::new(MemoryBackend::new().unwrap());
        let in1h = src.clock().now() + Duration::from_secs(3600);
        for (k, v) in [("/a/1", "x"), ("/a/2", "y"), ("/b/1", "z"), ("/c/1", "w")] {
            src.put(Item::new(k, v)).await.unwrap();
        }
        src.put(Item::new("/d/exp", "e").expires_at(in1h)).await.unwrap();
        for (k, v) in [("/a/1", "x"), ("/a/2", "Y!"), ("/c/1", "w"), ("/z/extra", "q")] {
            dst.put(Item::new(k, v)).await.unwrap();
        }
        dst.put(Item::new("/d/exp", "e").expires_at(in1h + Duration::from_secs(1))).await.unwrap();
        let r = verify(src.clone(), dst.clone(), &Selection::default(), VerifyOptions::default(), &Progress::default())
            .await
            .unwrap();
        assert_eq!((r.missing, r.extra, r.differing), (1, 1, 1), "{r:?}");
        assert_eq!(r.first_missing, ["/b/1"]);
        assert_eq!(r.first_extra, ["/z/extra"]);
        assert_eq!(r.first_differing[0].key, "/a/2");
        assert!(r.by_prefix["c"].equal && !r.by_prefix["a"].equal);
        assert!(r.by_prefix["d"].equal, "expiry within tolerance: {r:?}");
        assert!(!r.is_equal());

        dst.put(Item::new("/d/exp", "e").expires_at(in1h + Duration::from_secs(60))).await.unwrap();
        let r = verify(src, dst, &Selection::default(), VerifyOptions::default(), &Progress::default()).await.unwrap();
        assert_eq!(r.differing, 2);
        assert!(r.first_differing.iter().any(|d| d.key == "/d/exp" && d.detail.contains("expiry differs by 60")));
    }
}
