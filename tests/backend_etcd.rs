#![cfg(feature = "etcd")]
//! The etcd store against a real etcd server (started by testcontainers/):
//! the whole compliance suite on the real clock (etcd leases run on server
//! time), plus upstream layout checks read back with the raw client.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{Backend, Clock, ErrorKind, Item, Key, suite};
use teleport::config::{EtcdConfig, StorageConfig};

fn config(endpoint: &str, prefix: &str) -> EtcdConfig {
    let yaml = format!("peers: [{endpoint}]\nprefix: {prefix}\ninsecure: true\n");
    serde_norway::from_str(&yaml).expect("etcd config")
}

async fn open(cfg: &EtcdConfig, clock: Arc<dyn Clock>) -> teleport::backend::Result<Arc<dyn Backend>> {
    registry::open(&StorageConfig::Etcd(cfg.clone()), OpenOptions::create().with_clock(clock)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let cfg = config(&etcd.endpoint, "/teleport/");
    suite::run_all(&suite::RealClock(move |clock: Arc<dyn Clock>| {
        let cfg = cfg.clone();
        async move { open(&cfg, clock).await }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_layout_and_ttls_on_reads() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let clock = teleport::backend::clock::system();
    // No leading slash: one is added, as upstream does.
    let b = open(&config(&etcd.endpoint, "layout/"), clock.clone()).await.expect("open");
    let expires = clock.now() + Duration::from_secs(3600);
    let lease = b.put(Item::new("/web/users/alice/params", "{\"kind\":\"user\"}").expires_at(expires)).await.unwrap();

    // Raw etcd: key is prefix + key, value is base64, revision is ModRevision.
    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None).await.unwrap();
    let resp = raw.get("/layout//web/users/alice/params", None).await.unwrap();
    let kv = &resp.kvs()[0];
    assert_eq!(kv.value(), base64::engine::general_purpose::STANDARD.encode("{\"kind\":\"user\"}").as_bytes());
    assert_eq!(kv.mod_revision().to_string(), lease.revision);
    assert_ne!(kv.lease(), 0, "an expiring item is attached to a lease");

    // Reads return the expiry (to the second), unlike upstream.
    let got = b.get(&Key::from("/web/users/alice/params")).await.unwrap();
    suite::assert_time_near(got.expires, expires, Duration::from_secs(1));

    // A key written by another program with a lease we did not grant: its
    // expiry comes from the server.
    let other = raw.lease_grant(600, None).await.unwrap().id();
    raw.put(
        "/layout//tokens/t1",
        base64::engine::general_purpose::STANDARD.encode("tok"),
        Some(etcd_client::PutOptions::new().with_lease(other)),
    )
    .await
    .unwrap();
    let fresh = open(&config(&etcd.endpoint, "/layout/"), clock.clone()).await.unwrap();
    let t1 = fresh.get(&Key::from("/tokens/t1")).await.unwrap();
    assert_eq!(t1.value, b"tok");
    suite::assert_time_near(t1.expires, clock.now() + Duration::from_secs(600), Duration::from_secs(2));

    // A value that is not base64 is an error naming the key, not garbage.
    raw.put("/layout//broken", "not base64 !", None).await.unwrap();
    let err = fresh.get(&Key::from("/broken")).await.unwrap_err();
    assert!(err.to_string().contains("/broken"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_items_are_refused_with_the_limit() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let b = open(&config(&etcd.endpoint, "/limits/"), teleport::backend::clock::system()).await.unwrap();
    let max = b.limits().max_item_size.unwrap();
    let big = vec![7u8; max + 1];
    let err = b.put_batch(vec![Item::new("/big", big.clone())]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    let err = b.put(Item::new("/big", big)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    // The largest allowed value fits.
    b.put(Item::new("/fits", vec![7u8; max - 100])).await.expect("largest item");
    // The server refuses what is over its own limit too, with the same kind.
    let mut raw = etcd_client::Client::connect([etcd.endpoint.as_str()], None).await.unwrap();
    let e = raw.put("/limits//raw", vec![b'x'; 1_600_000], None).await.unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

#[tokio::test]
async fn unreachable_endpoint_is_one_clear_error() {
    let cfg: EtcdConfig =
        serde_norway::from_str("peers: [http://127.0.0.1:9]\nprefix: /t/\ninsecure: true\ndial_timeout: 2s\n").unwrap();
    let started = std::time::Instant::now();
    let err = registry::open(&StorageConfig::Etcd(cfg), OpenOptions::existing()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "names the endpoint: {err}");
    assert!(started.elapsed() < Duration::from_secs(10), "gives up within the dial timeout");
}

/// A CA and certificates signed by it, written as PEM files into `dir`.
struct Pki {
    ca: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
    client: (std::path::PathBuf, std::path::PathBuf),
}

fn pki(dir: &std::path::Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |file: &str, text: String| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let leaf = |sans: Vec<String>, usage: Vec<ExtendedKeyUsagePurpose>, file: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = usage;
        params.distinguished_name.push(DnType::CommonName, file);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (write(&format!("{file}.pem"), cert.pem()), write(&format!("{file}-key.pem"), key.serialize_pem()))
    };
    // etcd's own gateway dials the server with the server certificate, so it
    // needs the client usage too (as etcd's docs say).
    let both = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let server = leaf(vec!["localhost".into(), "127.0.0.1".into()], both, "server");
    let client = leaf(vec![], vec![ExtendedKeyUsagePurpose::ClientAuth], "client");
    Pki { ca: write("ca.pem", ca_cert.pem()), server, client }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "cluster");
    let tls = testcontainers::EtcdTls {
        cert_file: good.server.0.clone(),
        key_file: good.server.1.clone(),
        ca_file: good.ca.clone(),
    };
    let Some(etcd) = testcontainers::or_skip(testcontainers::etcd_tls(tls)).await else { return };
    assert!(etcd.endpoint.starts_with("https://"), "{}", etcd.endpoint);
    let cfg = |client: &(std::path::PathBuf, std::path::PathBuf), ca: &std::path::Path| -> StorageConfig {
        serde_norway::from_str(&format!(
            "type: etcd\npeers: [{}]\nprefix: /tls/\ntls_cert_file: {}\ntls_key_file: {}\ntls_ca_file: {}\ndial_timeout: 3s\n",
            etcd.endpoint,
            client.0.display(),
            client.1.display(),
            ca.display()
        ))
        .unwrap()
    };
    let b = registry::open(&cfg(&good.client, &good.ca), OpenOptions::create()).await.expect("mTLS open");
    b.put(Item::new("/over/tls", "secret-free value")).await.unwrap();
    assert_eq!(b.get(&Key::from("/over/tls")).await.unwrap().value, b"secret-free value");

    // A client certificate from another CA is refused, with one clear error.
    let other = pki(dir.path(), "intruder");
    let err = registry::open(&cfg(&other.client, &good.ca), OpenOptions::create()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::ConnectionProblem | ErrorKind::AccessDenied), "{:?}: {err}", err.kind());
    assert!(err.to_string().contains(&etcd.endpoint.replace("https://", "")), "names the endpoint: {err}");
    eprintln!("refused as expected: {err}");
}
