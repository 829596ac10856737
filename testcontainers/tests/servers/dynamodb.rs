//! DynamoDB (moto): CreateTable, PutItem and GetItem over the JSON protocol.

use serde_json::{Value, json};
use testcontainers::Fixture;

use crate::common::{assert_removed, assert_stopped, client, dynamodb_request};

#[tokio::test]
async fn dynamodb_create_table_put_get() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else {
        return;
    };
    let http = client();
    let call = |operation: &str, body: Value| {
        dynamodb_request(&http, &db.endpoint, operation, body, &db.access_key_id, &db.region)
    };

    let created = call(
        "CreateTable",
        json!({
            "TableName": "teleport",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST"
        }),
    )
    .send()
    .await
    .expect("CreateTable");
    assert_eq!(created.status(), 200, "{:?}", created.text().await);

    let put = call(
        "PutItem",
        json!({
            "TableName": "teleport",
            "Item": {"pk": {"S": "/web/users/alice"}, "value": {"S": "hello"}}
        }),
    )
    .send()
    .await
    .expect("PutItem");
    assert_eq!(put.status(), 200, "{:?}", put.text().await);

    let got: Value = call(
        "GetItem",
        json!({
            "TableName": "teleport",
            "Key": {"pk": {"S": "/web/users/alice"}},
            "ConsistentRead": true
        }),
    )
    .send()
    .await
    .expect("GetItem")
    .json()
    .await
    .expect("GetItem answer is JSON");
    assert_eq!(got["Item"]["value"]["S"], "hello", "{got}");

    assert_eq!(db.s3_endpoint.as_deref(), Some(db.endpoint.as_str()));
    let (pid, port) = (db.pid().expect("local pid"), port_of(&db.endpoint));
    let dir = db.data_dir.clone().expect("local dir");
    drop(db);
    assert_stopped(pid, port);
    assert_removed(&dir);
}

pub fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("endpoint ends with a port")
}
