//! The GCS object store against gcp-storage-emulator (started by the
//! testcontainers fixture through `launchers/gcs_emulator.py`): the whole
//! BlobStore suite through `blob::open("gs://...")`, then what only this
//! store has: its URI parameters and their errors, no secret in any message,
//! a missing bucket, chunked resumable uploads (the object appears at the
//! final request, the checksum lands in the metadata, aborted and dropped
//! sessions are cancelled), and chunks and downloads that resume after the
//! connection breaks (a TCP proxy in front of the emulator cuts it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use teleport::blob::gcs::GcsStore;
use teleport::blob::suite::{self, SuiteOptions, pattern};
use teleport::blob::{self, BlobErrorKind, BlobStore, BlobUri, ByteRange, PutOptions};
use testcontainers::Gcs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A URI of a fresh bucket (created by the store through `projectID`).
fn uri(gcs: &Gcs, bucket: &str, prefix: &str) -> String {
    format!("gs://{bucket}/{prefix}?projectID={}&endpoint={}", gcs.project, gcs.endpoint)
}

async fn open_store(gcs: &Gcs, bucket: &str, prefix: &str) -> GcsStore {
    GcsStore::open(&BlobUri::parse(&uri(gcs, bucket, prefix), "test").unwrap()).await.expect("open the gcs store")
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The object resource as the JSON API returns it.
async fn raw_object(gcs: &Gcs, bucket: &str, name: &str) -> Option<serde_json::Value> {
    let enc: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
    let resp = reqwest::get(format!("{}/storage/v1/b/{bucket}/o/{enc}", gcs.endpoint)).await.unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert!(resp.status().is_success(), "raw get {name}: {}", resp.status());
    Some(resp.json().await.unwrap())
}

/// Resumable sessions the emulator holds (in `.cloudstorage/.meta`, which
/// it writes at most every 50 ms, in place: a read may come before the first
/// write or catch one half done).
fn open_sessions(gcs: &Gcs) -> usize {
    let path = gcs.data_dir.as_ref().expect("a local emulator").join(".cloudstorage/.meta");
    for _ in 0..200 {
        let meta = std::fs::read(&path).ok().and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok());
        if let Some(meta) = meta {
            return meta["resumable"].as_object().map_or(0, |m| m.len());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{} is missing or never parses", path.display());
}

/// Waits (up to 10 s) until the emulator holds `n` sessions.
async fn wait_sessions(gcs: &Gcs, n: usize, what: &str) {
    let t = Instant::now();
    while open_sessions(gcs) != n {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: {} sessions, expected {n}", open_sessions(gcs));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn suite_passes_on_the_emulator() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    let bucket = unique("suite");
    let store = blob::open(&uri(&gcs, &bucket, "recordings/x"), "audit_sessions_uri").await.expect("open gs://");
    assert_eq!(store.part_size(), 16 << 20);
    let run = unique("run");
    suite::run_all(store.clone(), &SuiteOptions::full(&run)).await;
    let left = store.list("", None, 100).await.unwrap();
    assert!(left.items.is_empty(), "left behind: {:?}", left.items);
    wait_sessions(&gcs, 0, "every resumable session finished or cancelled").await;
}

#[tokio::test]
async fn uri_parameters_and_their_errors() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    let ep = &gcs.endpoint;

    let e = blob::open(&format!("gs://b-unknown?projectId=p&endpoint={ep}"), "x").await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::BadParameter);
    assert!(e.message.contains("\"projectId\"") && e.message.contains("projectID"), "{e}");
    let e = blob::open(&format!("gs://Bad_Bucket?endpoint={ep}"), "x").await.unwrap_err();
    assert!(e.message.contains("not a bucket name"), "{e}");

    // A missing bucket without projectID: says what to do, creates nothing.
    let missing = unique("missing");
    let e = blob::open(&format!("gs://{missing}/p?endpoint={ep}"), "x").await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::NotFound, "{e}");
    assert!(e.message.contains(&missing) && e.message.contains("create it") && e.message.contains("projectID"), "{e}");
    // With projectID it is created; a second open finds it without projectID.
    let bucket = unique("created");
    let s = blob::open(&uri(&gcs, &bucket, ""), "x").await.unwrap();
    blob::put_bytes(s.as_ref(), "top", Bytes::from_static(b"t")).await.unwrap();
    let again = blob::open(&format!("gs://{bucket}?endpoint={ep}"), "x").await.unwrap();
    assert_eq!(blob::get_bytes(again.as_ref(), "top").await.unwrap(), b"t");
    let e = again.get("no/such", None).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::NotFound);
    assert!(e.message.starts_with(&format!("gs://{bucket}?")) && e.message.contains("no/such"), "{e}");
    assert_eq!(e.message.matches("gs://").count(), 1, "the store is named once: {e}");

    // The prefix from the path, or from upstream's old `path` parameter.
    let a = blob::open(&format!("gs://{bucket}/deep/er/?endpoint={ep}"), "x").await.unwrap();
    blob::put_bytes(a.as_ref(), "k", Bytes::from_static(b"1")).await.unwrap();
    assert!(raw_object(&gcs, &bucket, "deep/er/k").await.is_some());
    let b = blob::open(&format!("gs://{bucket}?path=/deep/er&endpoint={ep}"), "x").await.unwrap();
    assert_eq!(blob::get_bytes(b.as_ref(), "k").await.unwrap(), b"1");
    let listed = blob::open(&format!("gs://{bucket}/deep?endpoint={ep}"), "x").await.unwrap();
    let page = listed.list("", None, 10).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), vec!["er/k"]);

    // An emulator address without a scheme is plain http.
    let hostport = ep.trim_start_matches("http://");
    assert!(blob::open(&format!("gs://{bucket}?endpoint={hostport}"), "x").await.is_ok());
}

#[tokio::test]
async fn credentials_never_reach_messages() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    let secret = "SECRETKEYMATERIAL0123456789";
    let sa = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-SECRETKID",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        "client_email": "sa@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://127.0.0.1:9/token",
    });
    std::fs::write(&key, sa.to_string()).unwrap();
    // An https endpoint needs credentials; the key cannot sign, so opening fails
    // before anything is sent (the endpoint listens nowhere anyway).
    let u = format!("gs://some-bucket/p?credentialsPath={}&endpoint=https://127.0.0.1:9", key.display());
    let e = blob::open(&u, "audit_sessions_uri").await.unwrap_err();
    for text in [e.message.as_str(), &format!("{e:?}")] {
        assert!(!text.contains(secret) && !text.contains("SECRETKID"), "{text}");
    }
    assert!(e.message.contains("gs://some-bucket/p"), "{e}");
    assert!(matches!(e.kind, BlobErrorKind::AccessDenied | BlobErrorKind::ConnectionProblem), "{e}");

    let e = blob::open("gs://some-bucket?credentialsPath=/nonexistent/k.json&endpoint=https://127.0.0.1:9", "x")
        .await
        .unwrap_err();
    assert!(e.message.contains("/nonexistent/k.json"), "{e}");
    std::fs::write(&key, r#"{"type": "gdch_service_account"}"#).unwrap();
    let u = format!("gs://some-bucket?credentialsPath={}&endpoint=https://127.0.0.1:9", key.display());
    let e = blob::open(&u, "x").await.unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");
}

#[tokio::test]
async fn chunked_uploads_publish_at_the_end_with_their_checksum() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    let bucket = unique("chunks");
    let store = open_store(&gcs, &bucket, "p").await.with_chunk_size(1);
    assert_eq!(store.part_size(), 256 << 10, "chunks are multiples of 256 KiB");

    // Unknown checksum: chunks of 256 KiB, then the metadata is patched on.
    let data = pattern(3, (1 << 20) + 100);
    let mut w = store
        .put("big", PutOptions { content_type: Some("application/x-tar".into()), ..Default::default() })
        .await
        .unwrap();
    for c in data.chunks(150_001) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    wait_sessions(&gcs, 1, "one upload in progress").await;
    assert!(raw_object(&gcs, &bucket, "p/big").await.is_none(), "nothing visible before finish");
    let info = w.finish().await.unwrap();
    assert_eq!((info.size, info.sha256.as_deref()), (data.len() as u64, Some(sha(&data).as_str())));
    let raw = raw_object(&gcs, &bucket, "p/big").await.unwrap();
    assert_eq!(raw["metadata"]["sha256"], sha(&data));
    assert_eq!(raw["contentType"], "application/x-tar");
    assert_eq!(raw["size"], data.len().to_string());
    assert_eq!(info.etag.as_deref(), raw["generation"].as_str());
    assert_eq!(blob::get_bytes(&store, "big").await.unwrap(), data);

    // Known checksum: stored from the start; a mismatch cancels the session.
    let options = PutOptions { expected_sha256: Some(sha(&data)), ..Default::default() };
    let mut w = store.put("known", options).await.unwrap();
    w.write(Bytes::from(data.clone())).await.unwrap();
    assert_eq!(w.finish().await.unwrap().sha256, Some(sha(&data)));
    assert_eq!(raw_object(&gcs, &bucket, "p/known").await.unwrap()["metadata"]["sha256"], sha(&data));
    let options = PutOptions { expected_sha256: Some("00".repeat(32)), ..Default::default() };
    let mut w = store.put("mismatch", options).await.unwrap();
    w.write(Bytes::from(data.clone())).await.unwrap();
    wait_sessions(&gcs, 1, "mismatch, before").await;
    let e = w.finish().await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch, "{e}");
    assert!(raw_object(&gcs, &bucket, "p/mismatch").await.is_none());
    wait_sessions(&gcs, 0, "the mismatched session was cancelled").await;

    // Small objects: one multipart request, checksum in the metadata.
    let info = blob::put_bytes(&store, "small", Bytes::from_static(b"\r\n--x\r\n\0")).await.unwrap();
    assert_eq!(info.size, 8);
    assert_eq!(raw_object(&gcs, &bucket, "p/small").await.unwrap()["metadata"]["sha256"], sha(b"\r\n--x\r\n\0"));

    // Aborted and dropped sessions are cancelled on the server.
    let mut w = store.put("aborted", PutOptions::default()).await.unwrap();
    w.write(Bytes::from(pattern(4, 600_000))).await.unwrap();
    wait_sessions(&gcs, 1, "aborted, before").await;
    w.abort().await.unwrap();
    wait_sessions(&gcs, 0, "aborted").await;
    let mut w = store.put("dropped", PutOptions::default()).await.unwrap();
    w.write(Bytes::from(pattern(5, 600_000))).await.unwrap();
    wait_sessions(&gcs, 1, "dropped, before").await;
    drop(w);
    wait_sessions(&gcs, 0, "dropped").await;
    assert!(store.head("dropped").await.unwrap().is_none());
}

/// A TCP proxy to `upstream` that, while `cut` is set, closes the first
/// connection that carries more than `after` bytes in the direction chosen
/// (`upload`: client to server), then clears `cut`.
async fn flaky_proxy(upstream: String, cut: Arc<AtomicBool>, upload: bool, after: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let upstream = upstream.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else { return };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let moved = Arc::new(AtomicUsize::new(0));
                let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                            mut to: tokio::net::tcp::OwnedWriteHalf,
                            watched: bool| {
                    let (cut, moved) = (cut.clone(), moved.clone());
                    async move {
                        let mut buf = vec![0u8; 16 << 10];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if watched
                                && moved.fetch_add(n, Ordering::SeqCst) + n > after
                                && cut.swap(false, Ordering::SeqCst)
                            {
                                return true;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown().await;
                        false
                    }
                };
                let up = pump(cr, sw, upload);
                let down = pump(sr, cw, !upload);
                // Cutting one direction drops both halves of both sockets.
                tokio::select! {
                    true = up => {}
                    true = down => {}
                    else => {}
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn broken_connections_resume_uploads_and_downloads() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    let bucket = unique("flaky");
    open_store(&gcs, &bucket, "").await; // creates the bucket
    let upstream = gcs.endpoint.trim_start_matches("http://").to_string();

    // Uploads: the first connection carrying 100 KB of a chunk is cut; the
    // session says what it kept and the rest of the chunk is sent.
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = flaky_proxy(upstream.clone(), cut.clone(), true, 100_000).await;
    let u = format!("gs://{bucket}/up?endpoint={proxy}");
    let store = GcsStore::open(&BlobUri::parse(&u, "x").unwrap()).await.unwrap().with_chunk_size(256 << 10);
    let data = pattern(11, 700_000);
    let mut w = store.put("obj", PutOptions::default()).await.unwrap();
    cut.store(true, Ordering::SeqCst);
    for c in data.chunks(64 << 10) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    assert!(!cut.load(Ordering::SeqCst), "the proxy cut a connection");
    assert_eq!(info.sha256, Some(sha(&data)));
    assert_eq!(blob::get_bytes(&store, "obj").await.unwrap(), data);

    // Downloads: the answer is cut after 300 KB; the read resumes with a Range.
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = flaky_proxy(upstream, cut.clone(), false, 300_000).await;
    let u = format!("gs://{bucket}/up?endpoint={proxy}");
    let store = GcsStore::open(&BlobUri::parse(&u, "x").unwrap()).await.unwrap();
    cut.store(true, Ordering::SeqCst);
    assert_eq!(blob::get_bytes(&store, "obj").await.unwrap(), data, "a full, checked read");
    assert!(!cut.load(Ordering::SeqCst), "the proxy cut a connection");
    cut.store(true, Ordering::SeqCst);
    let r = store.get("obj", Some(ByteRange { start: 1000, end: Some(650_000) })).await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), data[1000..650_000]);
    assert!(!cut.load(Ordering::SeqCst), "the proxy cut a connection");
}
