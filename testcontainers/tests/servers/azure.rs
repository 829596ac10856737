//! Azure Blob (Azurite): create a container, put and get a block blob,
//! signed with SharedKey; a wrong key is refused.

use reqwest::Method;
use testcontainers::Fixture;

use crate::common::{assert_removed, assert_stopped, azure_request, client};

#[tokio::test]
async fn azurite_shared_key_container_put_get() {
    let Some(az) = testcontainers::azure_or_skip().await else {
        return;
    };
    let http = client();
    let base = format!("http://{}:{}", az.host, az.port);
    assert_eq!(az.blob_endpoint, format!("{base}/{}", az.account));
    assert!(az.connection_string.contains(&format!("AccountKey={};", az.account_key)));
    let account = az.account.clone();
    let signed =
        |method: Method, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)], body: Vec<u8>, key: &str| {
            azure_request(&http, method, &base, &format!("/{account}{path}"), query, headers, body, &account, key)
        };

    let created = signed(Method::PUT, "/backups", &[("restype", "container")], &[], vec![], &az.account_key)
        .send()
        .await
        .expect("Create Container");
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let put = signed(
        Method::PUT,
        "/backups/cluster/state.tar.zst",
        &[],
        &[("x-ms-blob-type", "BlockBlob"), ("content-type", "application/octet-stream")],
        data.clone(),
        &az.account_key,
    )
    .send()
    .await
    .expect("Put Blob");
    assert_eq!(put.status(), 201, "{:?}", put.text().await);

    let got = signed(Method::GET, "/backups/cluster/state.tar.zst", &[], &[], vec![], &az.account_key)
        .send()
        .await
        .expect("Get Blob");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("blob body").as_ref(), &data[..]);

    // Another (valid base64) key: Azurite checks the signature.
    let wrong_key = "d3Jvbmcta2V5LWZvci10ZXN0cw==";
    let refused = signed(Method::GET, "/backups/cluster/state.tar.zst", &[], &[], vec![], wrong_key)
        .send()
        .await
        .expect("Get Blob with a wrong key");
    let status = refused.status();
    let body = refused.text().await.expect("error body");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AuthorizationFailure") || body.contains("AuthenticationFailed"), "{body}");

    let (pid, port, dir) = (az.pid().expect("local pid"), az.port, az.data_dir.clone().expect("dir"));
    drop(az);
    assert_stopped(pid, port);
    assert_removed(&dir);
}
