//! Azure Blob store throughput against Azurite (started through
//! testcontainers/), next to the raw speed of the same server in the same
//! run: one N MiB object put through the BlobStore (1 MiB writes, blocks
//! of `--block-mib`, 4 in flight, committed with Put Block List) and read
//! back whole (checked against its SHA-256), vs a single plain Put Blob of
//! the whole body and a single Get Blob collected in memory, both signed
//! with the same Shared Key code.
//!
//! Run with `cargo bench --bench blob_azure -- --size-mib 1024
//! [--block-mib 8[,16,...]]`.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use teleport::blob::azure::auth::SharedKey;
use teleport::blob::azure::{API_VERSION, AzureStore};
use teleport::blob::{BlobUri, PutOptions};
use testcontainers::Azurite;

mod common;

use common::blob::{get_streamed, put_streamed};

struct Opts {
    size_mib: usize,
    block_mib: Vec<usize>,
}

fn opts() -> Opts {
    let mut o = Opts { size_mib: 1024, block_mib: vec![8] };
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1);
        match a.as_str() {
            "--size-mib" => o.size_mib = next.and_then(|v| v.parse().ok()).unwrap_or(o.size_mib),
            "--block-mib" => {
                if let Some(v) = next {
                    o.block_mib = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                }
            }
            _ => {}
        }
    }
    o
}

/// N MiB of bytes that do not repeat at MiB boundaries.
fn body(mib: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(mib << 20);
    while v.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

fn signed(az: &Azurite, method: reqwest::Method, path: &str, body: Option<Bytes>) -> reqwest::Request {
    let url = reqwest::Url::parse(&format!("{}/{path}", az.blob_endpoint)).expect("url");
    let mut req = reqwest::Request::new(method, url);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let h = req.headers_mut();
    h.insert("x-ms-date", date.parse().expect("date"));
    h.insert("x-ms-version", API_VERSION.parse().expect("version"));
    if let Some(b) = body {
        h.insert("x-ms-blob-type", "BlockBlob".parse().expect("type"));
        *req.body_mut() = Some(b.into());
    }
    SharedKey::new(&az.account, &az.account_key).expect("key").sign(&mut req);
    req
}

async fn raw_put(az: &Azurite, http: &reqwest::Client, container: &str, data: &Bytes) -> f64 {
    let t = Instant::now();
    let req = signed(az, reqwest::Method::PUT, &format!("{container}/raw.bin"), Some(data.clone()));
    let resp = http.execute(req).await.expect("raw put");
    assert!(resp.status().is_success(), "raw put: {}", resp.status());
    t.elapsed().as_secs_f64()
}

/// Put Block of every `block` bytes, 4 in flight, then Put Block List.
async fn raw_blocks(az: &Azurite, http: &reqwest::Client, container: &str, data: &Bytes, block: usize) -> f64 {
    use base64::Engine;
    let t = Instant::now();
    let ids: Vec<String> = (0..data.len().div_ceil(block))
        .map(|i| base64::engine::general_purpose::STANDARD.encode(format!("{i:08}")))
        .collect();
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let chunk = data.slice(i * block..((i + 1) * block).min(data.len()));
            let path = format!(
                "{container}/rawblocks.bin?comp=block&blockid={}",
                teleport::blob::azure::percent_encode(id, false)
            );
            let req = signed(az, reqwest::Method::PUT, &path, Some(chunk));
            async move {
                let resp = http.execute(req).await.expect("put block");
                assert!(resp.status().is_success(), "put block: {}", resp.status());
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    let list = Bytes::from(teleport::blob::azure::xml::block_list(&ids));
    let req = signed(az, reqwest::Method::PUT, &format!("{container}/rawblocks.bin?comp=blocklist"), Some(list));
    let resp = http.execute(req).await.expect("put block list");
    assert!(resp.status().is_success(), "put block list: {}", resp.status());
    t.elapsed().as_secs_f64()
}

async fn raw_get(az: &Azurite, http: &reqwest::Client, container: &str, size: usize) -> f64 {
    let t = Instant::now();
    let req = signed(az, reqwest::Method::GET, &format!("{container}/raw.bin"), None);
    let resp = http.execute(req).await.expect("raw get");
    assert!(resp.status().is_success(), "raw get: {}", resp.status());
    let got = resp.bytes().await.expect("raw body");
    assert_eq!(got.len(), size);
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = opts();
    let az = testcontainers::azure().await.expect("start Azurite (run scripts/install-test-services.sh azurite)");
    let container = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let uri = format!("azblob-http://{}:{}/{}#session_container={container}", az.host, az.port, az.account);
    let store = AzureStore::open(&BlobUri::parse(&uri, "bench").expect("uri")).await.expect("open");
    let http = teleport::blob::azure::http_client().expect("client");
    let data = body(o.size_mib);
    let mib = o.size_mib as f64;

    // Warm up both sides (connections, the emulator's first writes).
    let warm = data.slice(..data.len().min(1 << 20));
    raw_put(&az, &http, &container, &warm).await;
    put_streamed(&store, "ours.bin", &warm, PutOptions::default()).await;

    let raw_up = raw_put(&az, &http, &container, &data).await;
    let raw_down = raw_get(&az, &http, &container, data.len()).await;
    let pct = |raw: f64, secs: f64| format!("{:.0}%", 100.0 * raw / secs);
    let mut rows = vec![
        ("raw Put Blob, one request".to_string(), raw_up, String::new()),
        ("raw Get Blob, collected".to_string(), raw_down, String::new()),
    ];
    for block in &o.block_mib {
        let s = store.clone().with_block_size(block << 20);
        let blocks = raw_blocks(&az, &http, &container, &data, block << 20).await;
        rows.push((format!("raw Put Block x4 + Put Block List, {block} MiB"), blocks, String::new()));
        let options = PutOptions { size_hint: Some(data.len() as u64), ..PutOptions::default() };
        let up = put_streamed(&s, "ours.bin", &data, options).await;
        let note = format!("{} of raw Put Blob, {} of raw blocks", pct(raw_up, up), pct(blocks, up));
        rows.push((format!("BlobStore put, {block} MiB blocks x4, 1 MiB writes"), up, note));
        let down = get_streamed(&s, "ours.bin", data.len()).await;
        rows.push((
            "BlobStore get, streamed, SHA-256 checked".to_string(),
            down,
            format!("{} of raw Get Blob", pct(raw_down, down)),
        ));
    }

    println!("Azure Blob store on Azurite, next to raw REST calls on the same server: one {} MiB object", o.size_mib);
    println!();
    println!("| operation | MiB | seconds | MiB/s | vs raw |");
    println!("|---|---:|---:|---:|---|");
    for (op, secs, note) in &rows {
        println!("| {op} | {} | {secs:.2} | {:.1} | {note} |", o.size_mib, mib / secs);
    }
}
