//! Session recordings on every object store against real servers (s3s-fs,
//! the GCS emulator, Azurite): the synthetic 20 MB session (10,000 writes)
//! recorded by the streaming writer into each store, then downloaded and
//! played back byte-identical with its timing; and the migration of 200
//! recordings file -> S3 -> GCS -> Azure -> file with equal checksums at
//! every hop, a second run copying nothing.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use teleport::recordings::transfer::{Selection, transfer};
use teleport::recordings::{RecordingStore, suite};

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn s3_uri(s3: &testcontainers::S3, bucket: &str) -> String {
    format!(
        "s3://{bucket}/recordings?region={}&endpoint={}&access_key={}&secret_key={}&disablesse=true",
        s3.region, s3.endpoint, s3.access_key_id, s3.secret_access_key
    )
}

fn gcs_uri(gcs: &testcontainers::Gcs, bucket: &str) -> String {
    format!("gs://{bucket}/recordings?projectID={}&endpoint={}", gcs.project, gcs.endpoint)
}

fn azure_uri(az: &testcontainers::Azurite, container: &str) -> String {
    format!("azblob-http://{}:{}/{}#session_container={container}", az.host, az.port, az.account)
}

async fn open(uri: &str) -> RecordingStore {
    RecordingStore::open(Some(uri), Path::new("/nonexistent"), "test")
        .await
        .unwrap_or_else(|e| panic!("open {uri}: {e}"))
}

async fn checksums(store: &RecordingStore) -> BTreeMap<String, String> {
    let list: Vec<_> = store.list().try_collect().await.unwrap_or_else(|e| panic!("{}: list: {e}", store.describe()));
    let mut out = BTreeMap::new();
    for r in list {
        let sha = teleport::blob::sha256_of(store.blob().as_ref(), &r.object).await.unwrap();
        out.insert(r.sid, sha);
    }
    out
}

async fn twenty_mb_session(store: &RecordingStore) {
    let sid = uuid::Uuid::new_v4().to_string();
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap();
    let written = suite::record(store, &sid, 10_000, 2_000, 7, start).await.unwrap_or_else(|e| panic!("record: {e}"));
    assert_eq!(written.output.len(), 20_000_000);
    let info = store.head(&sid).await.unwrap();
    assert_eq!(info.object.size, written.object.size);
    assert!(info.object.sha256.is_some(), "{}: checksum stored", store.describe());
    let took = suite::check_playback(store, &written, 100.0).await;
    eprintln!("{}: {} bytes stored; timed playback at 100x {took:?}", store.describe(), written.object.size);
    let file = tempfile::NamedTempFile::new().unwrap();
    let n = store.download(&sid, file.path()).await.unwrap();
    assert_eq!(n, written.object.size);
}

#[tokio::test]
async fn a_20_mb_session_on_s3() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    twenty_mb_session(&open(&s3_uri(&s3, &unique("recs"))).await).await;
}

#[tokio::test]
async fn a_20_mb_session_on_gcs() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    twenty_mb_session(&open(&gcs_uri(&gcs, &unique("recs"))).await).await;
}

#[tokio::test]
async fn a_20_mb_session_on_azure() {
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    twenty_mb_session(&open(&azure_uri(&az, &unique("recs"))).await).await;
}

#[tokio::test]
async fn migration_of_200_recordings_through_every_store() {
    let Some(s3) = testcontainers::s3_or_skip().await else { return };
    let Some(gcs) = testcontainers::gcs_or_skip().await else { return };
    let Some(az) = testcontainers::azure_or_skip().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = open(&format!("file://{}", tmp.path().join("origin").display())).await;
    let start = Utc::now();
    for i in 0..200usize {
        let sid = format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", i * 7919, i);
        suite::record(&origin, &sid, 20 + i % 30, 300 + i * 3, 5, start).await.unwrap();
    }
    let expected = checksums(&origin).await;
    assert_eq!(expected.len(), 200);

    let hops = [
        open(&s3_uri(&s3, &unique("mig"))).await,
        open(&gcs_uri(&gcs, &unique("mig"))).await,
        open(&azure_uri(&az, &unique("mig"))).await,
        open(&format!("file://{}", tmp.path().join("back").display())).await,
    ];
    let mut from = &origin;
    for to in &hops {
        let began = std::time::Instant::now();
        let r = transfer(from, to, &Selection::default(), 8, &|_| {}).await.unwrap();
        assert_eq!(
            (r.copied, r.identical, r.failed.len()),
            (200, 0, 0),
            "{} -> {}: {r:?}",
            from.describe(),
            to.describe()
        );
        let first = began.elapsed();
        assert_eq!(checksums(to).await, expected, "checksums at {}", to.describe());
        let began = std::time::Instant::now();
        let again = transfer(from, to, &Selection::default(), 8, &|_| {}).await.unwrap();
        assert_eq!((again.copied, again.identical), (0, 200), "rerun {} -> {}", from.describe(), to.describe());
        eprintln!("{} -> {}: copy {first:?}, rerun {:?}", from.describe(), to.describe(), began.elapsed());
        from = to;
    }
    // Byte-identical at the end of the round trip.
    let back = &hops[3];
    let sid = expected.keys().next().unwrap();
    let a = teleport::blob::get_bytes(origin.blob().as_ref(), &origin.key_of(sid)).await.unwrap();
    let b = teleport::blob::get_bytes(back.blob().as_ref(), &back.key_of(sid)).await.unwrap();
    assert_eq!(a, b);
}
