//! Pre-flight: one streaming pass over the source that counts items and
//! bytes per top-level prefix and checks every item against the
//! destination's limits, before anything is written. `--dry-run` stops here.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use serde::Serialize;

use super::progress::Progress;
use super::{CloneError, Selection};
use crate::backend::{Backend, Key, Limits};

/// How many violations a plan lists by key (all are counted).
pub const MAX_LISTED: usize = 20;

/// Items and bytes under one top-level prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrefixStats {
    /// Items.
    pub items: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// An item the destination cannot take.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// The item's key.
    pub key: String,
    /// Its size (key plus value).
    pub size: usize,
    /// Which limit, in words.
    pub message: String,
}

/// What a clone would copy.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The source store.
    pub source: String,
    /// The destination store.
    pub destination: String,
    /// Items per top-level prefix (`web`, `roles`, `.locks`, ...).
    pub by_prefix: BTreeMap<String, PrefixStats>,
    /// Items in all.
    pub items: u64,
    /// Bytes in all.
    pub bytes: u64,
    /// The largest item, if any.
    pub largest: Option<(String, usize)>,
    /// Items over the destination's limits (the first [`MAX_LISTED`]).
    pub violations: Vec<Violation>,
    /// How many items are over the limits in all.
    pub violation_count: u64,
    /// The destination's limits, as checked.
    #[serde(skip)]
    pub limits: Limits,
}

/// Scans the selection of `src` and checks it against `dst_limits`.
pub async fn plan(
    src: &dyn Backend,
    destination: String,
    dst_limits: Limits,
    sel: &Selection,
    progress: &Progress,
) -> Result<Plan, CloneError> {
    let mut p = Plan {
        source: src.describe(),
        destination,
        by_prefix: BTreeMap::new(),
        items: 0,
        bytes: 0,
        largest: None,
        violations: Vec::new(),
        violation_count: 0,
        limits: dst_limits,
    };
    for range in sel.ranges() {
        let mut items = src.items(range);
        let mut last: Option<Key> = None;
        while let Some(item) = items.next().await {
            let item = item.map_err(|source| CloneError::Source {
                store: src.describe(),
                what: match &last {
                    Some(k) => format!("count items after {k:?}"),
                    None => "count items".into(),
                },
                source,
            })?;
            if !sel.contains(&item.key) {
                continue;
            }
            let size = item.size();
            let top = String::from_utf8_lossy(item.key.top_level()).into_owned();
            let s = p.by_prefix.entry(top).or_default();
            s.items += 1;
            s.bytes += size as u64;
            p.items += 1;
            p.bytes += size as u64;
            if p.largest.as_ref().is_none_or(|(_, n)| size > *n) {
                p.largest = Some((item.key.to_string_lossy(), size));
            }
            if let Err(e) = dst_limits.check_item(&item) {
                p.violation_count += 1;
                if p.violations.len() < MAX_LISTED {
                    p.violations.push(Violation {
                        key: item.key.to_string_lossy(),
                        size,
                        message: e.message().to_string(),
                    });
                }
            }
            progress.planned_items.fetch_add(1, Ordering::Relaxed);
            last = Some(item.key);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Item;
    use crate::backend::memory::MemoryBackend;

    #[tokio::test]
    async fn counts_per_prefix_and_finds_violations() {
        let src = MemoryBackend::new().unwrap();
        src.put(Item::new("/web/users/a/params", vec![0u8; 100])).await.unwrap();
        src.put(Item::new("/web/users/b/params", vec![0u8; 100])).await.unwrap();
        src.put(Item::new("/roles/r/params", vec![0u8; 10])).await.unwrap();
        src.put(Item::new("/big", vec![0u8; 5000])).await.unwrap();
        src.put(Item::new(".locks/x", "l")).await.unwrap();
        let limits = Limits { max_item_size: Some(1000), ..Limits::default() };
        let p = plan(&src, "dst".into(), limits, &Selection::default(), &Progress::default()).await.unwrap();
        assert_eq!(p.items, 4, "internal keys are not cloned by default");
        assert_eq!(p.by_prefix["web"].items, 2);
        assert_eq!(p.by_prefix["roles"].bytes, 15 + 10);
        assert_eq!(p.violation_count, 1);
        assert_eq!(p.violations[0].key, "/big");
        assert_eq!(p.largest.as_ref().unwrap().0, "/big");
        let all = Selection { include_internal: true, ..Selection::default() };
        let p = plan(&src, "dst".into(), Limits::default(), &all, &Progress::default()).await.unwrap();
        assert_eq!(p.items, 5);
        assert_eq!(p.by_prefix[".locks"].items, 1);
    }
}
