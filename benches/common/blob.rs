//! Shared pieces of the object store benchmarks (`benches/blob_*.rs`): a
//! named argument, and one object streamed through any `BlobStore` in 1 MiB
//! writes and read back whole (checked against its stored SHA-256).

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use teleport::blob::{BlobStore, PutOptions};

/// The value after `--name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Uploads `data` to `key` in 1 MiB writes; returns seconds.
pub async fn put_streamed(store: &dyn BlobStore, key: &str, data: &Bytes, options: PutOptions) -> f64 {
    let t = Instant::now();
    let mut w = store.put(key, options).await.expect("put");
    let mut at = 0;
    while at < data.len() {
        let end = (at + (1 << 20)).min(data.len());
        w.write(data.slice(at..end)).await.expect("write");
        at = end;
    }
    w.finish().await.expect("finish");
    t.elapsed().as_secs_f64()
}

/// Reads `key` whole through the store (checked against its stored
/// SHA-256, which must be there); returns seconds.
pub async fn get_streamed(store: &dyn BlobStore, key: &str, size: usize) -> f64 {
    let t = Instant::now();
    let mut read = store.get(key, None).await.expect("get");
    assert!(read.info.sha256.is_some(), "the checksum is stored, so the read is checked");
    let mut n = 0;
    while let Some(chunk) = read.body.next().await {
        n += chunk.expect("read").len();
    }
    assert_eq!(n, size);
    t.elapsed().as_secs_f64()
}
