//! GCS (gcp-storage-emulator through the launcher): create a bucket, upload
//! and download an object, and see the headers the launcher adds.

use serde_json::{Value, json};
use testcontainers::{Fixture, GcsOptions};

use crate::common::{assert_removed, assert_stopped, client};

#[tokio::test]
async fn gcs_bucket_upload_download_with_generation_headers() {
    let Some(gcs) = testcontainers::gcs_or_skip().await else {
        return;
    };
    let http = client();
    let created = http
        .post(format!("{}/storage/v1/b?project={}", gcs.endpoint, gcs.project))
        .json(&json!({"name": "recordings"}))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(created.status(), 200, "{:?}", created.text().await);

    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let uploaded: Value = http
        .post(format!("{}/upload/storage/v1/b/recordings/o?uploadType=media&name=sessions%2Fs1.tar", gcs.endpoint))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload answer is JSON");
    let generation = uploaded["generation"].as_str().expect("generation").to_string();
    assert_eq!(uploaded["size"], data.len().to_string(), "{uploaded}");

    let download = http
        .get(format!("{}/storage/v1/b/recordings/o/sessions%2Fs1.tar?alt=media", gcs.endpoint))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    let header = |name: &str| download.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("x-goog-generation"), Some(generation), "patched header");
    assert_eq!(header("x-goog-metageneration").as_deref(), Some("1"));
    assert_eq!(header("x-goog-stored-content-length"), Some(data.len().to_string()));
    assert_eq!(download.bytes().await.expect("body").as_ref(), &data[..]);

    let (pid, port, dir) = (gcs.pid().expect("local pid"), gcs.port, gcs.data_dir.clone().expect("local dir"));
    drop(gcs);
    assert_stopped(pid, port);
    assert_removed(&dir);
}

#[tokio::test]
async fn gcs_binds_the_host_and_port_it_is_given() {
    // Another loopback address and a fixed port, as the later port-80 setup needs.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        listener.local_addr().expect("addr").port()
    };
    let options = GcsOptions { host: "127.0.0.2".to_string(), port: Some(port) };
    let Some(gcs) = testcontainers::or_skip(testcontainers::gcs_with(options)).await else {
        return;
    };
    assert_eq!(gcs.endpoint, format!("http://127.0.0.2:{port}"));
    let listed = client()
        .get(format!("{}/storage/v1/b?project={}", gcs.endpoint, gcs.project))
        .send()
        .await
        .expect("list buckets");
    assert_eq!(listed.status(), 200);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "bound to 127.0.0.2 only");
}
