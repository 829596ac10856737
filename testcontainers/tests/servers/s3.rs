//! S3: s3s-fs answers SigV4-signed bucket and object requests and refuses a
//! wrong secret; moto's S3 keeps object versions.

use reqwest::Method;
use testcontainers::{Fixture, S3Server};

use crate::common::{assert_removed, assert_stopped, client, s3_request};
use crate::dynamodb::port_of;

#[tokio::test]
async fn s3s_fs_signed_put_get_and_wrong_secret_refused() {
    let Some(s3) = testcontainers::s3_or_skip().await else {
        return;
    };
    assert_eq!(s3.server, S3Server::S3sFs);
    assert!(s3.checks_signatures && !s3.supports_versioning);
    let http = client();
    let signed = |method: Method, path: &str, body: Vec<u8>, secret: &str| {
        s3_request(&http, method, &s3.endpoint, path, &[], body, &s3.access_key_id, secret, &s3.region)
    };

    let created =
        signed(Method::PUT, "/teleport-test", vec![], &s3.secret_access_key).send().await.expect("CreateBucket");
    assert_eq!(created.status(), 200, "{:?}", created.text().await);

    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let put = signed(Method::PUT, "/teleport-test/recordings/session 1.tar", data.clone(), &s3.secret_access_key)
        .send()
        .await
        .expect("PutObject");
    assert_eq!(put.status(), 200, "{:?}", put.text().await);

    let got = signed(Method::GET, "/teleport-test/recordings/session 1.tar", vec![], &s3.secret_access_key)
        .send()
        .await
        .expect("GetObject");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("object body").as_ref(), &data[..]);

    // The stored object is a plain file under the data dir.
    let data_dir = s3.data_dir.clone().expect("local data dir");
    assert!(data_dir.join("teleport-test").is_dir());

    let refused = signed(Method::GET, "/teleport-test/recordings/session 1.tar", vec![], "not-the-secret-key")
        .send()
        .await
        .expect("GetObject with a wrong secret");
    let status = refused.status();
    let body = refused.text().await.expect("error body");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");

    let (pid, port) = (s3.pid().expect("local pid"), port_of(&s3.endpoint));
    drop(s3);
    assert_stopped(pid, port);
    assert_removed(&data_dir);
}

#[tokio::test]
async fn moto_s3_keeps_object_versions() {
    let Some(s3) = testcontainers::s3_versioned_or_skip().await else {
        return;
    };
    assert_eq!(s3.server, S3Server::Moto);
    assert!(s3.supports_versioning);
    let http = client();
    let signed = |method: Method, path: &str, query: &[(&str, &str)], body: Vec<u8>| {
        s3_request(&http, method, &s3.endpoint, path, query, body, &s3.access_key_id, &s3.secret_access_key, &s3.region)
            .send()
    };

    let r = signed(Method::PUT, "/versioned", &[], vec![]).await.expect("CreateBucket");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let config = br#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#;
    let r =
        signed(Method::PUT, "/versioned", &[("versioning", "")], config.to_vec()).await.expect("PutBucketVersioning");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    for body in ["first", "second"] {
        let r = signed(Method::PUT, "/versioned/key", &[], body.as_bytes().to_vec()).await.expect("PutObject");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let listing = signed(Method::GET, "/versioned", &[("versions", "")], vec![])
        .await
        .expect("ListObjectVersions")
        .text()
        .await
        .expect("listing body");
    assert_eq!(listing.matches("<Version>").count(), 2, "{listing}");

    let (pid, port) = (s3.pid().expect("local pid"), port_of(&s3.endpoint));
    drop(s3);
    assert_stopped(pid, port);
}
