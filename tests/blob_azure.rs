//! The Azure Blob store against Azurite (started by the testcontainers
//! fixture): the BlobStore compliance suite through `blob::open` (the
//! emulator account's well-known key, a key prefix in the URI), then what
//! only this store has: Shared Key signatures Azurite verifies (a wrong key
//! is refused, and the error never shows it), SAS tokens minted here from
//! the account key (full and read-only), the connection string, the
//! container created on open or an error saying how to create it, URI
//! options and their errors, block sizes and ids as committed, and the
//! `sha256` metadata and content type set at commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::hmac;
use base64::Engine;
use bytes::Bytes;
use teleport::blob::azure::auth::SharedKey;
use teleport::blob::azure::{API_VERSION, AzureStore, percent_encode, xml};
use teleport::blob::suite::{self, SuiteOptions, pattern};
use teleport::blob::{self, BlobErrorKind, BlobStore, BlobUri, PutOptions};
use testcontainers::Azurite;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// `azblob-http://host:port/<account>[/prefix]#session_container=<container>`.
fn uri(az: &Azurite, prefix: &str, container: &str) -> String {
    let base = format!("azblob-http://{}:{}/{}", az.host, az.port, az.account);
    let path = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
    format!("{base}{path}#session_container={container}")
}

fn env(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    move |k| m.get(k).cloned()
}

async fn open_env(uri: &str, vars: &[(&str, String)]) -> blob::Result<AzureStore> {
    AzureStore::open_with_env(&BlobUri::parse(uri, "test").unwrap(), &env(vars)).await
}

/// An account SAS (service b, resource types sco) signed with the key, as
/// the string-to-sign of version 2020-12-06 and later defines it.
fn account_sas(az: &Azurite, permissions: &str, key_b64: &str) -> String {
    let expiry = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let sts = format!("{}\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{API_VERSION}\n\n", az.account);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &B64.decode(key_b64).unwrap());
    let sig = B64.encode(hmac::sign(&key, sts.as_bytes()));
    format!(
        "sv={API_VERSION}&ss=b&srt=sco&sp={permissions}&se={}&spr=https,http&sig={}",
        percent_encode(&expiry, false),
        percent_encode(&sig, false)
    )
}

/// A raw request to the emulator signed with the account key.
async fn raw(az: &Azurite, method: reqwest::Method, path_and_query: &str) -> reqwest::Response {
    let url = reqwest::Url::parse(&format!("{}/{path_and_query}", az.blob_endpoint)).unwrap();
    let mut req = reqwest::Request::new(method, url);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    req.headers_mut().insert("x-ms-date", date.parse().unwrap());
    req.headers_mut().insert("x-ms-version", API_VERSION.parse().unwrap());
    SharedKey::new(&az.account, &az.account_key).unwrap().sign(&mut req);
    reqwest::Client::new().execute(req).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    let started = Instant::now();
    // No credential in the environment: the emulator account's well-known key.
    let store = blob::open(&uri(&az, "recordings/cluster-a", &unique("suite")), "audit_sessions_uri")
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert!(store.describe().starts_with("azblob-http://"), "{}", store.describe());
    suite::run_all(store.clone(), &SuiteOptions::full("run")).await;
    let left = store.list("", None, 10).await.unwrap();
    assert!(left.items.is_empty(), "left behind: {:?}", left.items);
    eprintln!("azure compliance suite: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn shared_key_sas_and_connection_string() {
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    let container = unique("auth");
    let u = uri(&az, "", &container);

    // Shared Key from AZURE_STORAGE_KEY: creates the container.
    let s = open_env(&u, &[("AZURE_STORAGE_KEY", az.account_key.clone())]).await.unwrap();
    blob::put_bytes(&s, "k/one", Bytes::from_static(b"one")).await.unwrap();
    assert!(!s.describe().contains(&az.account_key) && !format!("{s:?}").contains(&az.account_key));

    // A wrong key: Azurite checks the signature; the error says access
    // denied, names the store, and never shows the key.
    let wrong = B64.encode([0x42u8; 64]);
    let e = open_env(&u, &[("AZURE_STORAGE_KEY", wrong.clone())]).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::AccessDenied, "{e}");
    assert!(e.message.contains("access denied") && e.message.contains(&u[..u.find('#').unwrap()]), "{e}");
    assert!(!e.message.contains(&wrong) && !e.message.contains(&az.account_key), "{e}");
    let e = open_env(&u, &[("AZURE_STORAGE_KEY", "not base64!".into())]).await.unwrap_err();
    assert!(e.message.contains("base64") && !e.message.contains("not base64!"), "{e}");

    // An account SAS minted from the key: read, write, list, delete.
    let sas = account_sas(&az, "rwdlac", &az.account_key);
    let s = open_env(&u, &[("AZURE_STORAGE_SAS_TOKEN", format!("?{sas}"))]).await.unwrap();
    blob::put_bytes(&s, "k/two", Bytes::from(pattern(2, 5000))).await.unwrap();
    assert_eq!(blob::get_bytes(&s, "k/one").await.unwrap(), b"one");
    let listed = s.list("k/", None, 10).await.unwrap();
    assert_eq!(listed.items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["k/one", "k/two"]);
    let sig = sas.rsplit_once("sig=").unwrap().1.to_string();
    assert!(!s.describe().contains(&sig));

    // A read-only SAS: reads work, a write is refused naming the key.
    let ro = open_env(&u, &[("AZURE_STORAGE_SAS_TOKEN", account_sas(&az, "rl", &az.account_key))]).await.unwrap();
    assert_eq!(blob::get_bytes(&ro, "k/two").await.unwrap(), pattern(2, 5000));
    let e = blob::put_bytes(&ro, "k/three", Bytes::from_static(b"3")).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::AccessDenied, "{e}");
    assert!(e.message.contains("k/three") && e.message.contains("access denied"), "{e}");
    // ... and it may not create a missing container: the error says how.
    let missing = uri(&az, "", &unique("missing"));
    let ro_sas = account_sas(&az, "rl", &az.account_key);
    let e = open_env(&missing, &[("AZURE_STORAGE_SAS_TOKEN", ro_sas.clone())]).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::AccessDenied, "{e}");
    assert!(e.message.contains("does not exist") && e.message.contains("az storage container create"), "{e}");
    let ro_sig = ro_sas.rsplit_once("sig=").unwrap().1;
    assert!(!e.message.contains(ro_sig), "{e}");

    // A SAS signed with another key is refused; the token is not shown.
    let forged = account_sas(&az, "rwdlac", &wrong);
    let e = open_env(&u, &[("AZURE_STORAGE_SAS_TOKEN", forged.clone())]).await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::AccessDenied, "{e}");
    assert!(!e.message.contains(forged.rsplit_once("sig=").unwrap().1), "{e}");

    // The fixture's connection string (AccountKey + BlobEndpoint), and a
    // SAS-only one; both before AZURE_STORAGE_KEY.
    let s = open_env(
        &u,
        &[("AZURE_STORAGE_CONNECTION_STRING", az.connection_string.clone()), ("AZURE_STORAGE_KEY", wrong.clone())],
    )
    .await
    .unwrap();
    assert_eq!(blob::get_bytes(&s, "k/one").await.unwrap(), b"one");
    let cs = format!("BlobEndpoint={};SharedAccessSignature={sas}", az.blob_endpoint);
    let s = open_env(&u, &[("AZURE_STORAGE_CONNECTION_STRING", cs)]).await.unwrap();
    s.delete("k/one").await.unwrap();
    s.delete("k/two").await.unwrap();
    assert!(s.list("", None, 10).await.unwrap().items.is_empty());

    // Another account over http with no credential: told what to set.
    let e = open_env(&format!("azblob-http://{}:{}/someaccount", az.host, az.port), &[]).await.unwrap_err();
    assert!(e.message.contains("AZURE_STORAGE_KEY"), "{e}");
}

#[tokio::test]
async fn uri_options_and_their_errors() {
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    let base = format!("azblob-http://{}:{}/{}", az.host, az.port, az.account);
    // Default container: `session`; the in-progress container is accepted.
    let s = blob::open(&format!("{base}#inprogress_container=uploads"), "audit_sessions_uri").await.unwrap();
    let key = unique("default-container");
    blob::put_bytes(s.as_ref(), &key, Bytes::from_static(b"x")).await.unwrap();
    let r = raw(&az, reqwest::Method::HEAD, &format!("session/{key}")).await;
    assert_eq!(r.status(), 200, "the blob is in the container `session`");
    s.delete(&key).await.unwrap();

    for (u, needle) in [
        (format!("{base}?session_container=x"), "fragment"),
        (format!("{base}#container=x"), "unknown option \"container\""),
        (format!("{base}#session_container=No_Such"), "session_container"),
        (format!("{base}#inprogress_container=x"), "inprogress_container"),
        (format!("azblob-http://{}:{}", az.host, az.port), "name the account"),
        ("azblob://nodots".to_string(), ".blob.core.windows.net"),
    ] {
        let e = blob::open(&u, "audit_sessions_uri").await.unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::BadParameter, "{u}: {e}");
        assert!(e.message.contains(needle) && e.message.starts_with("audit_sessions_uri azblob"), "{u}: {e}");
    }
}

#[tokio::test]
async fn blocks_metadata_and_expected_checksums() {
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    let container = unique("blocks");
    let store = open_env(&uri(&az, "p", &container), &[]).await.unwrap().with_block_size(256 << 10);
    assert_eq!(store.part_size(), 256 << 10);

    // 1 MiB + 123 bytes in 100 KiB writes: four full blocks and a short one.
    let data = pattern(5, (1 << 20) + 123);
    let options = PutOptions { content_type: Some("application/x-tar".into()), ..PutOptions::default() };
    let mut w = store.put("rec.tar", options).await.unwrap();
    for c in data.chunks(100 << 10) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    let sha = info.sha256.clone().unwrap();
    let r = raw(&az, reqwest::Method::GET, &format!("{container}/p/rec.tar?comp=blocklist&blocklisttype=all")).await;
    assert_eq!(r.status(), 200);
    let list = xml::parse(&r.text().await.unwrap()).unwrap();
    let committed = list.child("CommittedBlocks").unwrap();
    let sizes: Vec<u64> = committed.children.iter().map(|b| b.text_of("Size").unwrap().parse().unwrap()).collect();
    assert_eq!(sizes, [262_144, 262_144, 262_144, 262_144, 123]);
    let names: Vec<&str> = committed.children.iter().map(|b| b.text_of("Name").unwrap()).collect();
    assert!(names.iter().all(|n| n.len() == names[0].len()), "block ids of one length: {names:?}");
    let uncommitted = list.child("UncommittedBlocks").map_or(0, |u| u.children.len());
    assert_eq!(uncommitted, 0);

    let props = raw(&az, reqwest::Method::HEAD, &format!("{container}/p/rec.tar")).await;
    assert_eq!(props.headers()["x-ms-meta-sha256"], sha.as_str());
    assert_eq!(props.headers()["content-type"], "application/x-tar");
    assert_eq!(props.headers()["x-ms-blob-type"], "BlockBlob");
    let head = store.head("rec.tar").await.unwrap().unwrap();
    assert_eq!((head.size, head.sha256.as_deref(), head.etag.is_some()), (data.len() as u64, Some(sha.as_str()), true));
    assert_eq!(head.etag, info.etag);
    let listed = store.list("", None, 10).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!((listed.items[0].key.as_str(), listed.items[0].sha256.as_deref()), ("rec.tar", Some(sha.as_str())));
    assert_eq!(blob::get_bytes(&store, "rec.tar").await.unwrap(), data);

    // A small object is one Put Blob, with the same metadata.
    blob::put_bytes(&store, "small", Bytes::from_static(b"tiny")).await.unwrap();
    let r = raw(&az, reqwest::Method::GET, &format!("{container}/p/small?comp=blocklist&blocklisttype=all")).await;
    let list = xml::parse(&r.text().await.unwrap()).unwrap();
    assert!(list.child("CommittedBlocks").is_none_or(|c| c.children.is_empty()), "{list:?}");
    let props = raw(&az, reqwest::Method::HEAD, &format!("{container}/p/small")).await;
    assert!(props.headers().contains_key("x-ms-meta-sha256"));
    assert_eq!(props.headers()["content-type"], "application/octet-stream");

    // An unexpected checksum publishes nothing, small or in blocks; an
    // existing object stays as it was.
    for (key, size) in [("small", 10), ("rec.tar", 700_000), ("new", 700_000)] {
        let options = PutOptions { expected_sha256: Some("00".repeat(32)), ..PutOptions::default() };
        let mut w = store.put(key, options).await.unwrap();
        w.write(Bytes::from(pattern(9, size))).await.unwrap();
        let e = w.finish().await.unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch, "{e}");
        assert!(e.message.contains(key), "{e}");
    }
    assert!(store.head("new").await.unwrap().is_none());
    assert_eq!(blob::get_bytes(&store, "small").await.unwrap(), b"tiny");
    assert_eq!(blob::get_bytes(&store, "rec.tar").await.unwrap(), data);

    // Copy between stores checks and skips identical objects.
    let other = Arc::new(open_env(&uri(&az, "q", &container), &[]).await.unwrap());
    assert!(matches!(
        blob::copy(&store, "rec.tar", other.as_ref(), "rec.tar").await.unwrap(),
        blob::CopyOutcome::Copied(_)
    ));
    assert_eq!(blob::copy(&store, "rec.tar", other.as_ref(), "rec.tar").await.unwrap(), blob::CopyOutcome::Identical);
    for (s, k) in [(&store, "rec.tar"), (&store, "small"), (&*other, "rec.tar")] {
        s.delete(k).await.unwrap();
    }
}
