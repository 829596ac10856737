//! S3 object store throughput against s3s-fs (started through
//! testcontainers/), side by side with the raw speed of the same server
//! through the same SDK in the same run: one N MiB object uploaded through
//! our BlobStore (streamed in 1 MiB writes: a multipart upload of 8 MiB
//! parts, 4 in flight, Content-MD5 on each, SHA-256 computed, then the
//! checksum self-copy) vs one raw PutObject of the whole body from memory;
//! downloaded as our checked stream vs one raw GetObject collected. Extra
//! rows: the upload with the checksum known up front (no self-copy: the
//! difference is what the self-copy costs) and other first-part sizes.
//!
//! Run with `cargo bench --bench blob_s3 -- --size-mib 1024` (default 1024;
//! `--parts 5,8,16` picks the part sizes compared, in MiB).

mod common;

use common::blob::{arg, get_streamed, put_streamed};

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use common::Row;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use teleport::blob::s3::S3Store;
use teleport::blob::suite::pattern;
use teleport::blob::{BlobStore, BlobUri, PutOptions};

/// A multipart upload of `data` in 8 MiB parts, 4 in flight, as bare as
/// the SDK allows (no Content-MD5, no hashing).
async fn raw_multipart(c: &Client, bucket: &str, key: &str, data: &Bytes) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let id = c.create_multipart_upload().bucket(bucket).key(key).send().await.expect("create");
    let id = id.upload_id().expect("upload id").to_string();
    let chunks: Vec<(i32, Bytes)> = (0..data.len().div_ceil(8 << 20))
        .map(|i| (i as i32 + 1, data.slice(i * (8 << 20)..((i + 1) * (8 << 20)).min(data.len()))))
        .collect();
    let mut parts: Vec<CompletedPart> = futures::stream::iter(chunks)
        .map(|(n, part)| {
            let id = id.clone();
            async move {
                let out = c
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(id)
                    .part_number(n)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .expect("part");
                CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_string)).build()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    parts.sort_by_key(|p| p.part_number());
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: usize = arg("--size-mib").and_then(|v| v.parse().ok()).unwrap_or(1024);
    let parts: Vec<usize> = arg("--parts")
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 16]);
    let s3 = testcontainers::s3().await.expect("start s3s-fs (run scripts/install-test-services.sh s3s-fs)");
    let bucket = format!("bench-{}", &uuid::Uuid::new_v4().to_string()[..8]);
    let uri = format!(
        "s3://{bucket}/bench?region={}&endpoint={}&access_key={}&secret_key={}",
        s3.region, s3.endpoint, s3.access_key_id, s3.secret_access_key
    );
    let store = S3Store::open(&BlobUri::parse(&uri, "bench").expect("uri")).await.expect("open the bucket");
    let raw = Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s3.region.clone()))
            .endpoint_url(&s3.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(&s3.access_key_id, &s3.secret_access_key, None, None, "bench"))
            .build(),
    );
    let data = Bytes::from(pattern(1, mib << 20));
    let sha = hex::encode(Sha256::digest(&data));
    let size = data.len();
    let mut rows = Vec::new();
    let raw_label = "raw aws-sdk-s3, same s3s-fs";
    let label = "s3 store (s3s-fs)";

    let t = Instant::now();
    raw.put_object()
        .bucket(&bucket)
        .key("raw/object")
        .content_length(size as i64)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("raw put");
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "PutObject", mib, s, "whole body from memory, one request"));
    let raw_put = mib as f64 / s;

    let t = Instant::now();
    let got = raw.get_object().bucket(&bucket).key("raw/object").send().await.expect("raw get");
    let body = got.body.collect().await.expect("raw body").into_bytes();
    assert_eq!(body.len(), size);
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "GetObject", mib, s, "collected in memory"));
    let raw_get = mib as f64 / s;
    drop(body);

    let t = Instant::now();
    raw_multipart(&raw, &bucket, "raw/multipart", &data).await;
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "multipart upload", mib, s, "8 MiB parts from memory, 4 in flight, no checksums"));
    let raw_mpu = mib as f64 / s;

    // What the checksum step of `put` costs by itself: the same self-copy.
    let t = Instant::now();
    raw.copy_object()
        .bucket(&bucket)
        .key("raw/multipart")
        .copy_source(format!("{bucket}/raw/multipart"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("sha256", &sha)
        .send()
        .await
        .expect("self-copy");
    let s = t.elapsed().as_secs_f64();
    rows.push(Row::new(raw_label, "CopyObject onto itself", mib, s, "the checksum step of put, alone"));

    let first = rows.len();
    let s = put_streamed(&store, "ours/object", &data, PutOptions::default()).await;
    rows.push(Row::new(label, "put", mib, s, "8 MiB parts x4, 1 MiB writes, + checksum self-copy"));
    let known = PutOptions { expected_sha256: Some(sha.clone()), ..PutOptions::default() };
    let s = put_streamed(&store, "ours/known", &data, known).await;
    rows.push(Row::new(label, "put, sha256 known", mib, s, "8 MiB parts x4, metadata up front, no copy"));
    for p in &parts {
        let sized = store.with_part_size(p << 20).expect("part size");
        let known = PutOptions { expected_sha256: Some(sha.clone()), ..PutOptions::default() };
        let s = put_streamed(&sized, &format!("ours/part-{p}"), &data, known).await;
        rows.push(Row::new(label, &format!("put, {p} MiB parts"), mib, s, "sha256 known, no copy"));
    }
    let ops: Vec<String> = rows[first..].iter().map(|r| r.op.clone()).collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    common::ratio(&mut rows[first..], &ops, raw_put, "raw PutObject");
    common::ratio(&mut rows[first..], &ops, raw_mpu, "raw multipart");

    let s = get_streamed(&store, "ours/object", size).await;
    rows.push(Row::new(label, "get", mib, s, "streamed, SHA-256 checked"));
    let last = rows.len() - 1;
    common::ratio(&mut rows[last..], &["get"], raw_get, "raw GetObject");
    let store: Arc<dyn BlobStore> = Arc::new(store);
    for key in ["ours/object", "ours/known"] {
        store.delete(key).await.expect("delete");
    }

    println!("S3 store on s3s-fs, next to the raw SDK on the same server: one object of {mib} MiB");
    println!();
    println!("| store | operation | MiB | seconds | MiB/s | notes |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {:.2} | {:.0} | {} |", r.store, r.op, r.ops, r.secs, r.rate(), r.note);
    }
}
