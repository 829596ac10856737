//! etcd: put and get a key through the v3 JSON gateway; a fixture dropped
//! during a panic keeps its dir and stops its server.

use std::panic::AssertUnwindSafe;

use serde_json::{Value, json};
use testcontainers::Fixture;

use crate::common::{B64, assert_removed, assert_stopped, client};
use base64::Engine;

#[tokio::test]
async fn etcd_put_then_get_through_the_json_gateway() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else {
        return;
    };
    let http = client();
    let key = B64.encode("teleport/testcontainers/key");
    let value = B64.encode("hello from the fixture");

    let put = http
        .post(format!("{}/v3/kv/put", etcd.endpoint))
        .json(&json!({"key": key, "value": value}))
        .send()
        .await
        .expect("etcd put");
    assert!(put.status().is_success(), "put: {}", put.status());

    let range: Value = http
        .post(format!("{}/v3/kv/range", etcd.endpoint))
        .json(&json!({"key": key}))
        .send()
        .await
        .expect("etcd range")
        .json()
        .await
        .expect("range answer is JSON");
    assert_eq!(range["count"], "1", "{range}");
    assert_eq!(range["kvs"][0]["value"], value.as_str(), "{range}");
    assert_eq!(etcd.endpoints(), vec![etcd.endpoint.clone()]);

    let (pid, port) = (etcd.pid().expect("local pid"), etcd.port);
    let dir = etcd.data_dir.clone().expect("local data dir");
    assert!(dir.exists());
    drop(etcd);
    assert_stopped(pid, port);
    assert_removed(&dir);
}

#[tokio::test]
async fn a_fixture_dropped_while_panicking_keeps_its_dir_and_still_stops() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else {
        return;
    };
    let (pid, port) = (etcd.pid().expect("local pid"), etcd.port);
    let log = etcd.log_path().expect("local log").to_path_buf();
    let result = std::panic::catch_unwind(AssertUnwindSafe(move || {
        let _etcd = etcd;
        panic!("deliberate panic: the fixture must print its log tail and keep its dir");
    }));
    assert!(result.is_err());
    assert_stopped(pid, port);
    assert!(log.exists(), "the log {} should be kept", log.display());
    let dir = log.parent().expect("log is in the temp dir");
    std::fs::remove_dir_all(dir).expect("clean up the kept dir");
}
