//! Model-based property test: random sequences of operations run on the
//! memory and SQLite stores and on a plain ordered map, with keys drawn from
//! a tiny alphabet (including 0xff and '/') so that prefixes, range ends and
//! paging boundaries collide often. Every answer must match the model.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use futures::StreamExt;
use proptest::prelude::*;
use teleport::backend::memory::MemoryStore;
use teleport::backend::registry::OpenOptions;
use teleport::backend::sqlite::SqliteBackend;
use teleport::backend::{Backend, ErrorKind, Item, ItemsParams, Key};
use teleport::config::SqliteConfig;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, u8),
    Create(Vec<u8>, u8),
    Update(Vec<u8>, u8),
    Delete(Vec<u8>),
    Cas(Vec<u8>, u8, u8),
    DeleteRange(Vec<u8>, Vec<u8>),
    GetRange(Vec<u8>, Vec<u8>, usize),
    Items(Vec<u8>, Vec<u8>, bool, usize),
    Prefix(Vec<u8>),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'/'), Just(b'a'), Just(b'b'), Just(0xffu8), Just(0x01u8)], 1..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        1 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Update(k, v)),
        1 => key().prop_map(Op::Delete),
        1 => (key(), 0u8..4, any::<u8>()).prop_map(|(k, e, v)| Op::Cas(k, e, v)),
        1 => (key(), key()).prop_map(|(s, e)| Op::DeleteRange(s, e)),
        2 => (key(), key(), 0usize..4).prop_map(|(s, e, l)| Op::GetRange(s, e, l)),
        2 => (key(), key(), any::<bool>(), 0usize..4).prop_map(|(s, e, d, l)| Op::Items(s, e, d, l)),
        1 => key().prop_map(Op::Prefix),
    ]
}

fn range(m: &BTreeMap<Vec<u8>, Vec<u8>>, s: &[u8], e: &Key) -> Vec<Vec<u8>> {
    if e.is_no_end() {
        return m.range::<[u8], _>((Bound::Included(s), Bound::Unbounded)).map(|(k, _)| k.clone()).collect();
    }
    if s > e.as_bytes() {
        return Vec::new();
    }
    m.range::<[u8], _>((Bound::Included(s), Bound::Included(e.as_bytes()))).map(|(k, _)| k.clone()).collect()
}

async fn check(b: &dyn Backend, ops: &[Op]) {
    let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                b.put(Item::new(k.clone(), vec![*v])).await.unwrap();
                m.insert(k.clone(), vec![*v]);
            }
            Op::Create(k, v) => {
                let r = b.create(Item::new(k.clone(), vec![*v])).await;
                if m.contains_key(k) {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::AlreadyExists);
                } else {
                    r.unwrap();
                    m.insert(k.clone(), vec![*v]);
                }
            }
            Op::Update(k, v) => {
                let r = b.update(Item::new(k.clone(), vec![*v])).await;
                if m.contains_key(k) {
                    r.unwrap();
                    m.insert(k.clone(), vec![*v]);
                } else {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
                }
            }
            Op::Delete(k) => {
                let r = b.delete(&Key::from(k.clone())).await;
                if m.remove(k).is_some() {
                    r.unwrap();
                } else {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
                }
            }
            Op::Cas(k, e, v) => {
                let r = b.compare_and_swap(Item::new(k.clone(), vec![*e]), Item::new(k.clone(), vec![*v])).await;
                if m.get(k) == Some(&vec![*e]) {
                    r.unwrap();
                    m.insert(k.clone(), vec![*v]);
                } else {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::CompareFailed);
                }
            }
            Op::DeleteRange(s, e) => {
                let end = Key::from(e.clone());
                b.delete_range(&Key::from(s.clone()), &end).await.unwrap();
                for k in range(&m, s, &end) {
                    m.remove(&k);
                }
            }
            Op::GetRange(s, e, limit) => {
                let end = Key::from(e.clone());
                let got: Vec<Vec<u8>> = b
                    .get_range(&Key::from(s.clone()), &end, *limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|i| i.key.into_bytes())
                    .collect();
                let mut want = range(&m, s, &end);
                if *limit > 0 {
                    want.truncate(*limit);
                }
                assert_eq!(got, want, "get_range({s:?}, {e:?}, {limit})");
            }
            Op::Items(s, e, desc, limit) => {
                let end = Key::from(e.clone());
                let p = ItemsParams::range(Key::from(s.clone()), end.clone()).limit(*limit);
                let p = if *desc { p.descending() } else { p };
                let got: Vec<Vec<u8>> = b.items(p).map(|r| r.unwrap().key.into_bytes()).collect::<Vec<_>>().await;
                let mut want = range(&m, s, &end);
                if *desc {
                    want.reverse();
                }
                if *limit > 0 {
                    want.truncate(*limit);
                }
                assert_eq!(got, want, "items({s:?}, {e:?}, desc={desc}, limit={limit})");
            }
            Op::Prefix(p) => {
                let p = Key::from(p.clone());
                let got: Vec<Vec<u8>> =
                    b.items(ItemsParams::prefix(&p)).map(|r| r.unwrap().key.into_bytes()).collect::<Vec<_>>().await;
                let want: Vec<Vec<u8>> = m.keys().filter(|k| k.starts_with(p.as_bytes())).cloned().collect();
                assert_eq!(got, want, "prefix {p:?}");
            }
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn memory_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        rt().block_on(async {
            let b: Arc<dyn Backend> = Arc::new(MemoryStore::new().open().unwrap());
            check(b.as_ref(), &ops).await;
        });
    }

    #[test]
    fn sqlite_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let b: Arc<dyn Backend> =
                Arc::new(SqliteBackend::open(&SqliteConfig::new(dir.path()), OpenOptions::create()).await.unwrap());
            check(b.as_ref(), &ops).await;
            b.close().await.unwrap();
        });
    }
}
