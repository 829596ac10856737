//! The BlobStore compliance suite: every store runs it against a real server
//! (tests/blob_*.rs). Each case works under its own prefix (`<run>/<case>/`)
//! so runs can share a bucket, and cleans up after itself.
//!
//! Cases: round trips at 0 B, 1 B, one part minus and plus one byte and a
//! large object (50 MiB by default) written in uneven chunks; ranged reads;
//! listing 2,500 objects in pages; concurrent writers to different keys; an
//! interrupted or aborted upload is never visible; delete; checksums stored
//! and returned; overwrite; unicode and deep keys; bad keys refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::{BlobErrorKind, BlobStore, ByteRange, PutOptions, get_bytes, list_all, put_bytes};

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// A prefix unique to this run (keys go under `<run>/<case>/`).
    pub run: String,
    /// Size of the large round trip.
    pub big: usize,
    /// Objects in the listing case.
    pub list_count: usize,
    /// Page size of the listing case.
    pub page: usize,
    /// Whether the store must return the SHA-256 from `head` and `list`
    /// (object stores with metadata; the file store only with user xattrs).
    pub stores_checksums: bool,
}

impl SuiteOptions {
    /// The sizes: 50 MiB, 2,500 objects listed 1,000 per page.
    pub fn full(run: &str) -> SuiteOptions {
        SuiteOptions { run: run.to_string(), big: 50 << 20, list_count: 2500, page: 1000, stores_checksums: true }
    }
}

/// Deterministic bytes: `len` bytes seeded by `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs every case; panics (with the case and store named) on a failure.
pub async fn run_all(store: Arc<dyn BlobStore>, options: &SuiteOptions) {
    round_trips(store.as_ref(), options).await;
    ranged_reads(store.as_ref(), options).await;
    listing(store.clone(), options).await;
    concurrent_writers(store.clone(), options).await;
    interrupted_uploads(store.as_ref(), options).await;
    delete(store.as_ref(), options).await;
    overwrite(store.as_ref(), options).await;
    unicode_and_deep_keys(store.as_ref(), options).await;
    bad_keys(store.as_ref()).await;
}

/// Writes `data` in chunks of `chunk` bytes, returning what finish said.
async fn put_chunked(store: &dyn BlobStore, key: &str, data: &[u8], chunk: usize) -> super::BlobInfo {
    let mut w = store.put(key, PutOptions::default()).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
    for c in data.chunks(chunk.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap_or_else(|e| panic!("write {key}: {e}"));
    }
    w.finish().await.unwrap_or_else(|e| panic!("finish {key}: {e}"))
}

/// Round trips at 0 B, 1 B, part - 1, part + 1 and `big` bytes.
pub async fn round_trips(store: &dyn BlobStore, o: &SuiteOptions) {
    let part = store.part_size();
    let d = store.describe();
    for (i, size) in [0, 1, part - 1, part + 1, o.big].into_iter().enumerate() {
        let key = format!("{}/round/{size}.bin", o.run);
        let data = pattern(i as u64, size);
        // Uneven chunks, so part boundaries fall inside writes.
        let info = put_chunked(store, &key, &data, 1_000_003).await;
        assert_eq!(info.size, size as u64, "{d}: {key}: size from finish");
        assert_eq!(info.sha256.as_deref(), Some(sha(&data).as_str()), "{d}: {key}: checksum from finish");
        let head = store.head(&key).await.unwrap_or_else(|e| panic!("{d}: head {key}: {e}"));
        let head = head.unwrap_or_else(|| panic!("{d}: {key}: head found nothing after finish"));
        assert_eq!(head.size, size as u64, "{d}: {key}: size from head");
        if o.stores_checksums {
            assert_eq!(head.sha256.as_deref(), Some(sha(&data).as_str()), "{d}: {key}: checksum from head");
        }
        let read = store.get(&key, None).await.unwrap_or_else(|e| panic!("{d}: get {key}: {e}"));
        assert_eq!(read.info.size, size as u64);
        let got = read.bytes().await.unwrap_or_else(|e| panic!("{d}: read {key}: {e}"));
        assert!(got == data, "{d}: {key}: {} bytes read back differ from the {} written", got.len(), data.len());
        store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: delete {key}: {e}"));
    }
}

/// Ranged reads: the start, the middle, the end, open-ended, past the end.
pub async fn ranged_reads(store: &dyn BlobStore, o: &SuiteOptions) {
    let d = store.describe();
    let key = format!("{}/range/obj", o.run);
    let data = pattern(7, 300_000);
    put_bytes(store, &key, Bytes::from(data.clone())).await.unwrap_or_else(|e| panic!("{d}: put {key}: {e}"));
    let cases: [(u64, Option<u64>); 6] = [
        (0, Some(1)),
        (0, Some(1000)),
        (12_345, Some(200_000)),
        (299_999, None),
        (250_000, None),
        (299_990, Some(400_000)),
    ];
    for (start, end) in cases {
        let r = store.get(&key, Some(ByteRange { start, end })).await.unwrap_or_else(|e| panic!("{d}: get range: {e}"));
        assert_eq!(r.info.size, 300_000, "{d}: size of a ranged read is the object's");
        let got = r.bytes().await.unwrap_or_else(|e| panic!("{d}: read range {start}..{end:?}: {e}"));
        let s = start as usize;
        let e = end.map_or(data.len(), |e| (e as usize).min(data.len()));
        assert!(got == data[s..e], "{d}: range {start}..{end:?}: {} bytes, expected {}", got.len(), e - s);
    }
    let past = store.get(&key, Some(ByteRange { start: 400_000, end: None })).await;
    match past {
        Ok(r) => assert!(r.bytes().await.unwrap_or_default().is_empty(), "{d}: a range past the end yields no bytes"),
        Err(e) => panic!("{d}: a range past the end is not an error: {e}"),
    }
    store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: delete: {e}"));
}

/// Lists `list_count` objects in pages of `page`; another prefix is not
/// included; the pages are in byte order and complete.
pub async fn listing(store: Arc<dyn BlobStore>, o: &SuiteOptions) {
    let d = store.describe();
    let base = format!("{}/list", o.run);
    let keys: Vec<String> = (0..o.list_count).map(|i| format!("{base}/in/{i:05}-{}", i % 7)).collect();
    futures::stream::iter(keys.clone())
        .map(|k| {
            let s = store.clone();
            async move { put_bytes(s.as_ref(), &k, Bytes::from(k.clone().into_bytes())).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{d}: writing {} objects: {e}", o.list_count));
    put_bytes(store.as_ref(), &format!("{base}/inx"), Bytes::from_static(b"other"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    put_bytes(store.as_ref(), &format!("{base}/out/a"), Bytes::from_static(b"other"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let prefix = format!("{base}/in/");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&prefix, cursor.as_deref(), o.page)
            .await
            .unwrap_or_else(|e| panic!("{d}: list page {pages}: {e}"));
        pages += 1;
        assert!(page.items.len() <= o.page, "{d}: page of {} items, limit {}", page.items.len(), o.page);
        for item in &page.items {
            assert!(item.key.starts_with(&prefix), "{d}: listed {} outside {prefix}", item.key);
            assert_eq!(item.size, item.key.len() as u64, "{d}: size of {}", item.key);
        }
        seen.extend(page.items.into_iter().map(|i| i.key));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages <= o.list_count / o.page + 2, "{d}: listing does not end");
    }
    assert_eq!(seen, keys, "{d}: every key once, in order");
    assert!(
        pages >= o.list_count.div_ceil(o.page),
        "{d}: {pages} pages for {} keys of {} per page",
        o.list_count,
        o.page
    );

    let all: Vec<String> = list_all(store.as_ref(), &format!("{base}/"), 777)
        .map_ok(|i| i.key)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{d}: list_all: {e}"));
    assert_eq!(all.len(), o.list_count + 2, "{d}: list_all under {base}/");
    let empty = store.list(&format!("{base}/nothing-here/"), None, 10).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(empty.items.is_empty() && empty.next.is_none(), "{d}: empty prefix");

    futures::stream::iter(all)
        .map(|k| {
            let s = store.clone();
            async move { s.delete(&k).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{d}: cleanup: {e}"));
}

/// 8 writers to different keys at once, with interleaved writes.
pub async fn concurrent_writers(store: Arc<dyn BlobStore>, o: &SuiteOptions) {
    let d = store.describe();
    let size = store.part_size() + 12_345;
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let s = store.clone();
            let key = format!("{}/concurrent/{i}", o.run);
            tokio::spawn(async move {
                let data = pattern(100 + i, size);
                let mut w = s.put(&key, PutOptions::default()).await?;
                for c in data.chunks(65_536) {
                    w.write(Bytes::copy_from_slice(c)).await?;
                    tokio::task::yield_now().await;
                }
                w.finish().await?;
                let got = get_bytes(s.as_ref(), &key).await?;
                s.delete(&key).await?;
                Ok::<bool, super::BlobError>(got == data)
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let same = t.await.unwrap_or_else(|e| panic!("{d}: writer {i} panicked: {e}"));
        assert!(same.unwrap_or_else(|e| panic!("{d}: writer {i}: {e}")), "{d}: writer {i} read back other bytes");
    }
}

/// An upload dropped or aborted after a whole part was sent is never
/// visible: not by head, get or list.
pub async fn interrupted_uploads(store: &dyn BlobStore, o: &SuiteOptions) {
    let d = store.describe();
    let data = pattern(9, store.part_size() * 2 + 10);
    for how in ["dropped", "aborted"] {
        let key = format!("{}/interrupted/{how}", o.run);
        let mut w = store.put(&key, PutOptions::default()).await.unwrap_or_else(|e| panic!("{d}: put: {e}"));
        w.write(Bytes::from(data.clone())).await.unwrap_or_else(|e| panic!("{d}: write: {e}"));
        assert!(store.head(&key).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "{d}: {key} visible before finish");
        if how == "aborted" {
            w.abort().await.unwrap_or_else(|e| panic!("{d}: abort: {e}"));
        } else {
            drop(w);
        }
        assert!(store.head(&key).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "{d}: {key} visible after {how}");
        let e = store.get(&key, None).await.expect_err("get of an unfinished upload");
        assert_eq!(e.kind, BlobErrorKind::NotFound, "{d}: {e}");
        let listed = store.list(&format!("{}/interrupted/", o.run), None, 100).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(listed.items.is_empty(), "{d}: unfinished upload listed: {:?}", listed.items);
    }
}

/// Delete removes; deleting a missing key is fine; reads then fail NotFound.
pub async fn delete(store: &dyn BlobStore, o: &SuiteOptions) {
    let d = store.describe();
    let key = format!("{}/delete/x", o.run);
    put_bytes(store, &key, Bytes::from_static(b"x")).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: delete: {e}"));
    store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: delete of a missing key: {e}"));
    assert!(store.head(&key).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "{d}: head after delete");
    let e = store.get(&key, None).await.expect_err("get after delete");
    assert_eq!(e.kind, BlobErrorKind::NotFound, "{d}: {e}");
    assert!(e.message.contains("delete/x"), "{d}: the error names the key: {e}");
}

/// A second put replaces the object whole.
pub async fn overwrite(store: &dyn BlobStore, o: &SuiteOptions) {
    let d = store.describe();
    let key = format!("{}/overwrite/k", o.run);
    put_bytes(store, &key, Bytes::from(pattern(1, 5000))).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    let second = pattern(2, 700);
    put_bytes(store, &key, Bytes::from(second.clone())).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    assert_eq!(get_bytes(store, &key).await.unwrap_or_else(|e| panic!("{d}: {e}")), second, "{d}: overwrite");
    let head = store.head(&key).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{d}: missing"));
    if o.stores_checksums {
        assert_eq!(head.sha256.as_deref(), Some(sha(&second).as_str()), "{d}: checksum after overwrite");
    }
    store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: {e}"));
}

/// Unicode, spaces, `+`, `%` and deep prefixes survive put, list and get.
pub async fn unicode_and_deep_keys(store: &dyn BlobStore, o: &SuiteOptions) {
    let d = store.describe();
    let base = format!("{}/unicode", o.run);
    let names = [
        "日本語/セッション.tar",
        "a/b/c/d/e/f/g/h/i/j/deep.tar",
        "with space/and+plus/100%/x.tar",
        "émoji-🎬/ü.tar",
        "a/b/c/sibling",
    ];
    let mut expected = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        let key = format!("{base}/{n}");
        put_bytes(store, &key, Bytes::from(pattern(i as u64, 100 + i)))
            .await
            .unwrap_or_else(|e| panic!("{d}: {key}: {e}"));
        expected.insert(key);
    }
    let listed: BTreeSet<String> = list_all(store, &format!("{base}/"), 2)
        .map_ok(|i| i.key)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{d}: {e}"));
    assert_eq!(listed, expected, "{d}: unicode keys listed as written");
    let deep: Vec<String> = list_all(store, &format!("{base}/a/b/c/"), 10)
        .map_ok(|i| i.key)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{d}: {e}"));
    assert_eq!(deep, vec![format!("{base}/a/b/c/d/e/f/g/h/i/j/deep.tar"), format!("{base}/a/b/c/sibling")], "{d}");
    for (i, n) in names.iter().enumerate() {
        let key = format!("{base}/{n}");
        assert_eq!(
            get_bytes(store, &key).await.unwrap_or_else(|e| panic!("{d}: {key}: {e}")),
            pattern(i as u64, 100 + i)
        );
        store.delete(&key).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    }
}

/// Malformed keys are refused before any request, naming the key.
pub async fn bad_keys(store: &dyn BlobStore) {
    for key in ["", "/abs", "a//b", "../up", "trailing/"] {
        let e = store.put(key, PutOptions::default()).await.err().unwrap_or_else(|| panic!("put {key:?} accepted"));
        assert_eq!(e.kind, BlobErrorKind::BadParameter, "{key:?}: {e}");
        let e = store.get(key, None).await.expect_err("get of a bad key");
        assert_eq!(e.kind, BlobErrorKind::BadParameter, "{key:?}: {e}");
    }
}
