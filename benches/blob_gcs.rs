//! GCS object store throughput against gcp-storage-emulator (started
//! through testcontainers/), side by side with the raw speed of the same
//! server in the same run: one N MiB object uploaded through our BlobStore
//! (streamed in 1 MiB writes: a resumable session of 16 MiB chunks, one in
//! flight while the next fills, SHA-256 computed, then the metadata patch)
//! vs one plain `uploadType=media` POST of the whole body from memory;
//! downloaded as our checked stream (metadata, then `alt=media` of that
//! generation) vs one plain `alt=media` GET collected. Extra rows: the
//! upload with the checksum known up front (no patch) and other chunk sizes.
//! One resumable upload of 17 MiB warms up first (not measured).
//!
//! Run with `cargo bench --bench blob_gcs -- --size-mib 1024` (default 1024;
//! `--chunks 8,32` picks the other chunk sizes compared, in MiB).

mod common;

use common::blob::{arg, get_streamed, put_streamed};

use std::time::Instant;

use bytes::Bytes;
use common::Row;
use sha2::{Digest, Sha256};
use teleport::blob::gcs::GcsStore;
use teleport::blob::suite::pattern;
use teleport::blob::{BlobStore, BlobUri, PutOptions};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: usize = arg("--size-mib").and_then(|v| v.parse().ok()).unwrap_or(1024);
    let chunks: Vec<usize> = arg("--chunks")
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![8, 32]);
    let gcs = testcontainers::gcs().await.expect("start gcp-storage-emulator (scripts/install-test-services.sh)");
    let bucket = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let uri = format!("gs://{bucket}/bench?projectID={}&endpoint={}", gcs.project, gcs.endpoint);
    let store = GcsStore::open(&BlobUri::parse(&uri, "bench").expect("uri")).await.expect("open the bucket");
    let raw = reqwest::Client::new();
    let data = Bytes::from(pattern(1, mib << 20));
    let sha = hex::encode(Sha256::digest(&data));
    let size = data.len();
    let mut rows = Vec::new();
    let raw_label = "raw HTTP (reqwest), same emulator";
    let label = "gcs store (gcp-storage-emulator)";

    let t = Instant::now();
    let resp = raw
        .post(format!("{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=raw%2Fobject", gcs.endpoint))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("raw upload");
    assert!(resp.status().is_success(), "raw upload: {}", resp.status());
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "media upload", mib, s, "whole body from memory, one POST"));
    let raw_put = mib as f64 / s;

    let t = Instant::now();
    let resp = raw
        .get(format!("{}/storage/v1/b/{bucket}/o/raw%2Fobject?alt=media", gcs.endpoint))
        .send()
        .await
        .expect("raw download");
    let body = resp.bytes().await.expect("raw body");
    assert_eq!(body.len(), size);
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "media download", mib, s, "collected in memory"));
    let raw_get = mib as f64 / s;
    drop(body);

    // Warm-up, not measured: the first resumable upload of the process (and
    // of the emulator) is consistently slower than the next ones.
    put_streamed(&store, "ours/warm-up", &data.slice(..(17 << 20).min(size)), PutOptions::default()).await;
    store.delete("ours/warm-up").await.expect("delete");

    let first = rows.len();
    let s = put_streamed(&store, "ours/object", &data, PutOptions::default()).await;
    rows.push(Row::new(label, "put", mib, s, "16 MiB chunks, 1 MiB writes, + metadata patch"));
    let known = PutOptions { expected_sha256: Some(sha.clone()), ..PutOptions::default() };
    let s = put_streamed(&store, "ours/known", &data, known).await;
    rows.push(Row::new(label, "put, sha256 known", mib, s, "16 MiB chunks, metadata up front"));
    for c in &chunks {
        let sized = store.clone().with_chunk_size(c << 20);
        let known = PutOptions { expected_sha256: Some(sha.clone()), ..PutOptions::default() };
        let s = put_streamed(&sized, &format!("ours/chunk-{c}"), &data, known).await;
        rows.push(Row::new(label, &format!("put, {c} MiB chunks"), mib, s, "sha256 known"));
        sized.delete(&format!("ours/chunk-{c}")).await.expect("delete");
    }
    let ops: Vec<String> = rows[first..].iter().map(|r| r.op.clone()).collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    common::ratio(&mut rows[first..], &ops, raw_put, "raw media upload");

    let s = get_streamed(&store, "ours/object", size).await;
    rows.push(Row::new(label, "get", mib, s, "streamed, SHA-256 checked"));
    let last = rows.len() - 1;
    common::ratio(&mut rows[last..], &["get"], raw_get, "raw media download");
    for key in ["ours/object", "ours/known"] {
        store.delete(key).await.expect("delete");
    }

    println!("GCS store on gcp-storage-emulator, next to plain HTTP on the same server: one object of {mib} MiB");
    println!();
    println!("| store | operation | MiB | seconds | MiB/s | notes |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {:.2} | {:.0} | {} |", r.store, r.op, r.ops, r.secs, r.rate(), r.note);
    }
}
