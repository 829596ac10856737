//! The S3 object store against real S3-compatible servers started by the
//! testcontainers fixtures: s3s-fs (checks SigV4 signatures) for the
//! compliance suite and most cases, moto where bucket versioning and
//! encryption headers are needed. Beyond the suite: URI parameters and their
//! errors, credentials kept out of messages, the missing bucket created (and
//! the error when it vanishes), multipart part sizes and the `sha256`
//! metadata, a mismatched expected checksum publishing nothing, dropped
//! writers aborting their upload, SSE/ACL/versioning on moto, a read resumed
//! after its connection broke, and `insecure=true` against a self-signed
//! TLS endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use teleport::blob::s3::S3Store;
use teleport::blob::suite::{self, SuiteOptions, pattern};
use teleport::blob::{self, BlobErrorKind, BlobStore, PutOptions};
use testcontainers::S3;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn bucket(what: &str) -> String {
    format!("teleport-{what}-{}", &uuid::Uuid::new_v4().to_string()[..8])
}

fn uri(s3: &S3, bucket: &str, prefix: &str, extra: &str) -> String {
    format!(
        "s3://{bucket}/{prefix}?region={}&endpoint={}&access_key={}&secret_key={}{extra}",
        s3.region, s3.endpoint, s3.access_key_id, s3.secret_access_key
    )
}

fn raw(s3: &S3) -> Client {
    Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s3.region.clone()))
            .endpoint_url(&s3.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(&s3.access_key_id, &s3.secret_access_key, None, None, "test"))
            .build(),
    )
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn open(s3: &S3, bucket: &str, prefix: &str, extra: &str) -> S3Store {
    let u = blob::BlobUri::parse(&uri(s3, bucket, prefix, extra), "test").unwrap();
    S3Store::open(&u).await.unwrap_or_else(|e| panic!("open {bucket}: {e}"))
}

async fn uploads(c: &Client, bucket: &str) -> usize {
    c.list_multipart_uploads().bucket(bucket).send().await.expect("list uploads").uploads().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let started = Instant::now();
    let b = bucket("suite");
    // Through the registry, so the URI parsing is exercised.
    let store = blob::open(&uri(&s3, &b, "recordings", ""), "test").await.unwrap();
    assert_eq!(store.describe(), format!("s3://{b}/recordings (endpoint {})", s3.endpoint));
    suite::run_all(store.clone(), &SuiteOptions::full(&format!("run-{}", &uuid::Uuid::new_v4().to_string()[..8])))
        .await;
    let left = store.list("", None, 10).await.unwrap();
    assert!(left.items.is_empty(), "the suite cleans up: {:?}", left.items);
    assert_eq!(open_uploads(&s3, &raw(&s3), &b).await, 0, "no multipart upload left behind");
    eprintln!("s3 suite on s3s-fs: {:?}", started.elapsed());
}

/// Multipart uploads still open on the server: s3s-fs has no
/// ListMultipartUploads, so its upload files are counted instead.
async fn open_uploads(s3: &S3, c: &Client, bucket: &str) -> usize {
    match &s3.data_dir {
        Some(dir) if s3.server == testcontainers::S3Server::S3sFs => std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
            .count(),
        _ => uploads(c, bucket).await,
    }
}

/// Every parameter is checked before any request, errors name the
/// parameter, and keys never appear in describe(), Debug or errors.
#[tokio::test]
async fn uri_parameters_and_errors() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let b = bucket("params");
    for (extra, says) in [
        ("&acl=world", "canned ACL"),
        ("&insecure=perhaps", "insecure"),
        ("&disablesse=maybe", "disablesse"),
        ("&use_fips_endpoint=true", "FIPS"),
        ("&regoin=x", "unknown parameter"),
    ] {
        let e = blob::open(&uri(&s3, &b, "p", extra), "audit_sessions_uri").await.unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::BadParameter, "{extra}: {e}");
        assert!(e.message.contains(says), "{extra}: {e}");
        assert!(!e.message.contains(&s3.secret_access_key) && !e.message.contains(&s3.access_key_id), "{e}");
    }
    // A wrong secret: refused by the server, the secret in no message.
    let wrong = format!(
        "s3://{b}/p?region={}&endpoint={}&access_key={}&secret_key=not-the-secret-0123",
        s3.region, s3.endpoint, s3.access_key_id
    );
    let store = blob::open(&wrong, "test").await.expect("a bucket we may not inspect is used as it is");
    assert!(!format!("{store:?}{}", store.describe()).contains("not-the-secret-0123"));
    let e = blob::put_bytes(store.as_ref(), "k", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::AccessDenied, "{e}");
    assert!(e.message.contains("check the credentials") && e.message.contains("k"), "{e}");
    assert!(!e.message.contains("not-the-secret-0123") && !e.message.contains(&s3.access_key_id), "{e}");
    // Virtual-hosted style against an endpoint that only knows paths fails;
    // path style is the default with an endpoint.
    let store = open(&s3, &b, "p", "").await;
    assert!(store.config().path_style());
    blob::put_bytes(&store, "k", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(raw(&s3).get_object().bucket(&b).key("p/k").send().await.unwrap().content_length(), Some(1));
    // Keys count with the prefix against S3's 1,024 bytes.
    let e = store.put(&"k".repeat(1023), PutOptions::default()).await.err().expect("too long with the prefix");
    assert!(e.kind == BlobErrorKind::BadParameter && e.message.contains("1025 bytes"), "{e}");
}

/// A missing bucket is created on open; a refused bucket name says so. (A bucket vanishing later: on moto, below; s3s-fs
/// recreates a deleted bucket's directory on the next PutObject.)
#[tokio::test]
async fn missing_buckets() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let c = raw(&s3);
    let b = bucket("created");
    assert!(c.head_bucket().bucket(&b).send().await.is_err());
    let store = open(&s3, &b, "", "").await;
    c.head_bucket().bucket(&b).send().await.expect("created on open");
    blob::put_bytes(&store, "k", Bytes::from_static(b"x")).await.unwrap();
    // s3s-fs refuses bucket names S3 refuses (HTTP 400 to HeadBucket).
    let e = blob::open(&uri(&s3, "Bad_Bucket", "", ""), "test").await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::BadParameter, "{e}");
    assert!(e.message.contains("Bad_Bucket") && e.message.contains("bucket name"), "{e}");
    eprintln!("bad bucket name: {e}");
}

/// Parts: an object over one part is a multipart upload of 8 MiB parts
/// (its ETag says how many); below one part a single PutObject; the
/// sha256 metadata is set in both cases, with the content type kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_parts_and_metadata() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let c = raw(&s3);
    let b = bucket("parts");
    let store = open(&s3, &b, "recs", "").await;
    assert_eq!(store.part_size(), 8 << 20);
    let data = pattern(3, (20 << 20) + 5);
    let known = PutOptions {
        content_type: Some("application/x-tar".into()),
        expected_sha256: Some(sha(&data)),
        ..PutOptions::default()
    };
    // Expected checksum known: metadata set when the upload starts, no copy.
    let mut w = store.put("known.tar", known).await.unwrap();
    for chunk in data.chunks(1 << 20) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert!(store.head("known.tar").await.unwrap().is_none(), "nothing visible before finish");
    assert_eq!(open_uploads(&s3, &c, &b).await, 1, "one multipart upload in progress");
    let info = w.finish().await.unwrap();
    assert!(info.etag.as_deref().unwrap().ends_with("-3\""), "8 + 8 + 4 MiB: {:?}", info.etag);
    let head = c.head_object().bucket(&b).key("recs/known.tar").send().await.unwrap();
    assert_eq!(head.metadata().and_then(|m| m.get("sha256")), Some(&sha(&data)));
    assert_eq!(head.content_type(), Some("application/x-tar"));
    assert_eq!(head.e_tag(), info.etag.as_deref());

    // Unknown: completed, then copied onto itself with the metadata.
    let options = PutOptions { content_type: Some("application/x-tar".into()), ..PutOptions::default() };
    let mut w = store.put("unknown.tar", options).await.unwrap();
    w.write(Bytes::from(data.clone())).await.unwrap();
    let t = Instant::now();
    let info = w.finish().await.unwrap();
    eprintln!("finish of 20 MiB with the checksum self-copy: {:?}", t.elapsed());
    assert_eq!(info.sha256.as_deref(), Some(sha(&data).as_str()));
    let head = c.head_object().bucket(&b).key("recs/unknown.tar").send().await.unwrap();
    assert_eq!(head.metadata().and_then(|m| m.get("sha256")), Some(&sha(&data)));
    assert_eq!(head.content_type(), Some("application/x-tar"), "content type kept by the copy");
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(blob::get_bytes(&store, "unknown.tar").await.unwrap(), data);

    // Small: one PutObject, metadata included.
    blob::put_bytes(&store, "small", Bytes::from_static(b"abc")).await.unwrap();
    let head = c.head_object().bucket(&b).key("recs/small").send().await.unwrap();
    assert_eq!(head.metadata().and_then(|m| m.get("sha256")), Some(&sha(b"abc")));
    assert!(!head.e_tag().unwrap().contains('-'), "not multipart: {:?}", head.e_tag());
    assert_eq!(open_uploads(&s3, &c, &b).await, 0);

    // Another first part size; below S3's 5 MiB minimum is refused.
    let big = store.with_part_size(5 << 20).unwrap();
    assert_eq!(big.part_size(), 5 << 20);
    assert!(store.with_part_size(1 << 20).is_err());
}

/// A wrong expected checksum aborts the upload: nothing published, no
/// upload left, for the multipart and the single-request paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unexpected_checksum_publishes_nothing() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let c = raw(&s3);
    let b = bucket("mismatch");
    let store = open(&s3, &b, "", "").await;
    for size in [100, (9 << 20) + 1] {
        let options = PutOptions { expected_sha256: Some("ab".repeat(32)), ..PutOptions::default() };
        let mut w = store.put("x.tar", options).await.unwrap();
        w.write(Bytes::from(pattern(1, size))).await.unwrap();
        let e = w.finish().await.unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch, "{size}: {e}");
        assert!(e.message.contains("x.tar"), "{e}");
        assert!(store.head("x.tar").await.unwrap().is_none(), "{size}: published");
        assert_eq!(open_uploads(&s3, &c, &b).await, 0, "{size}: upload left");
    }
    let e = store.put("y", PutOptions { expected_sha256: Some("xyz".into()), ..Default::default() }).await;
    assert_eq!(e.err().map(|e| e.kind), Some(BlobErrorKind::BadParameter));
}

/// A dropped writer aborts its multipart upload in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_writers_abort_their_upload() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let c = raw(&s3);
    let b = bucket("dropped");
    let store = open(&s3, &b, "", "").await;
    let mut w = store.put("gone.tar", PutOptions::default()).await.unwrap();
    w.write(Bytes::from(pattern(2, (17 << 20) + 3))).await.unwrap();
    assert_eq!(open_uploads(&s3, &c, &b).await, 1);
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_uploads(&s3, &c, &b).await > 0 {
        assert!(Instant::now() < deadline, "the dropped upload was not aborted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.head("gone.tar").await.unwrap().is_none());
}

/// On moto (versioning, encryption headers): a created bucket has
/// versioning on; objects carry aws:kms with the named key and the ACL;
/// the checksum self-copy leaves a single version; a bucket deleted under
/// the store gives an error that says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encryption_acl_and_versioning_on_moto() {
    let Some(s3) = testcontainers::s3_versioned_or_skip().await else { return };
    let c = raw(&s3);
    let b = bucket("moto");
    let store = open(&s3, &b, "p", "&sse_kms_key=alias/recordings&acl=public-read").await;
    // (moto's GetBucketVersioning answer does not parse in the SDK: an
    // overwrite keeping two versions shows versioning is on.)
    blob::put_bytes(&store, "twice", Bytes::from_static(b"1")).await.unwrap();
    blob::put_bytes(&store, "twice", Bytes::from_static(b"2")).await.unwrap();
    let versions = c.list_object_versions().bucket(&b).prefix("p/twice").send().await.unwrap();
    assert_eq!(versions.versions().len(), 2, "versioning on in the created bucket");
    let data = pattern(5, (9 << 20) + 7);
    blob::put_bytes(&store, "multi.tar", Bytes::from(data.clone())).await.unwrap();
    blob::put_bytes(&store, "single.tar", Bytes::from_static(b"single")).await.unwrap();
    for key in ["p/multi.tar", "p/single.tar"] {
        let head = c.head_object().bucket(&b).key(key).send().await.unwrap();
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"), "{key}");
        assert!(
            head.ssekms_key_id().is_some_and(|k| k.contains("alias/recordings")),
            "{key}: {:?}",
            head.ssekms_key_id()
        );
        assert!(head.metadata().is_some_and(|m| m.contains_key("sha256")), "{key}");
        let acl = c.get_object_acl().bucket(&b).key(key).send().await.unwrap();
        let public = acl.grants().iter().any(|g| {
            g.grantee().and_then(|e| e.uri()).is_some_and(|u| u.ends_with("AllUsers"))
                && g.permission().map(|p| p.as_str()) == Some("READ")
        });
        assert!(public, "{key}: acl=public-read applied: {:?}", acl.grants());
        let versions = c.list_object_versions().bucket(&b).prefix(key).send().await.unwrap();
        assert_eq!(versions.versions().len(), 1, "{key}: one version after the checksum copy");
    }
    assert_eq!(blob::get_bytes(&store, "multi.tar").await.unwrap(), data);
    assert_eq!(uploads(&c, &b).await, 0);

    // A bucket that vanishes: the error says what to do.
    let gone = bucket("gone");
    let store = open(&s3, &gone, "", "&disablesse=true").await;
    c.delete_bucket().bucket(&gone).send().await.unwrap();
    let e = blob::put_bytes(&store, "rec.tar", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::NotFound, "{e}");
    assert!(e.message.contains("does not exist: create it") && e.message.contains("rec.tar"), "{e}");
    // A write that failed (the upload could not start) leaves a writer
    // that only aborts: finish publishes nothing.
    let mut w = store.put("big.tar", PutOptions::default()).await.unwrap();
    w.write(Bytes::from(pattern(6, 9 << 20))).await.unwrap_err();
    w.write(Bytes::from_static(b"more")).await.unwrap_err();
    let e = w.finish().await.unwrap_err();
    assert!(e.message.contains("can only be aborted"), "{e}");
}

/// A TCP proxy to `target` that cuts the first connection carrying more
/// than `cut_after` bytes back to the client.
async fn cutting_proxy(target: String, cut_after: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = cuts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.unwrap();
            let (cut, cuts) = (cut.clone(), counter.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 64 << 10];
                let mut sent = 0;
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                    if sent > cut_after && !cut.swap(true, Ordering::SeqCst) {
                        cuts.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    (format!("http://{addr}"), cuts)
}

/// A read whose connection breaks midway resumes and returns the whole,
/// checked object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_reads_resume() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let b = bucket("resume");
    let store = open(&s3, &b, "", "").await;
    let data = pattern(8, 6 << 20);
    blob::put_bytes(&store, "r.bin", Bytes::from(data.clone())).await.unwrap();
    let target = s3.endpoint.trim_start_matches("http://").to_string();
    let (endpoint, cuts) = cutting_proxy(target, 2 << 20).await;
    let via = format!(
        "s3://{b}/?region={}&endpoint={endpoint}&access_key={}&secret_key={}",
        s3.region, s3.access_key_id, s3.secret_access_key
    );
    let proxied = blob::open(&via, "test").await.unwrap();
    let got = blob::get_bytes(proxied.as_ref(), "r.bin").await.unwrap();
    assert_eq!(cuts.load(Ordering::SeqCst), 1, "the proxy cut one connection");
    assert!(got == data, "{} bytes read back, {} written", got.len(), data.len());
}

/// A TLS proxy with a self-signed certificate in front of `target`.
async fn tls_proxy(target: String) -> String {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(key.cert.der().to_vec());
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                let mut server = TcpStream::connect(&target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    format!("https://{addr}")
}

/// `insecure=true` talks to a self-signed TLS endpoint; without it the
/// certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insecure_skips_tls_verification() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let endpoint = tls_proxy(s3.endpoint.trim_start_matches("http://").to_string()).await;
    let b = bucket("tls");
    let base = format!(
        "s3://{b}/p?region={}&endpoint={endpoint}&access_key={}&secret_key={}",
        s3.region, s3.access_key_id, s3.secret_access_key
    );
    let e = blob::open(&base, "test").await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::ConnectionProblem, "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    eprintln!("a self-signed endpoint without insecure=true: {e}");
    let store = blob::open(&format!("{base}&insecure=true"), "test").await.unwrap();
    let data = pattern(4, (8 << 20) + 100);
    blob::put_bytes(store.as_ref(), "t.bin", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(blob::get_bytes(store.as_ref(), "t.bin").await.unwrap(), data);
    assert_eq!(store.list("", None, 10).await.unwrap().items.len(), 1);
}
