//! Raw DynamoDB writes with the plain SDK, in upstream's item shape: the
//! baseline that the DynamoDB store and a clone into DynamoDB are measured
//! against. Included by `benches/store_dynamodb.rs` and `benches/clone.rs`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use testcontainers::DynamoDb;

use super::common::{key, value};

/// A plain SDK client for the fixture.
pub fn raw_client(db: &DynamoDb) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(db.region.clone()))
            .endpoint_url(&db.endpoint)
            .credentials_provider(Credentials::new(&db.access_key_id, &db.secret_access_key, None, None, "bench"))
            .build(),
    )
}

/// One benchmark item as upstream stores it.
pub fn raw_item(i: usize, v: &[u8]) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("HashKey".to_string(), AttributeValue::S("teleport".into())),
        ("FullPath".to_string(), AttributeValue::S(format!("teleport{}", key(i)))),
        ("Value".to_string(), AttributeValue::B(Blob::new(v.to_vec()))),
        ("Timestamp".to_string(), AttributeValue::N("1700000000".into())),
        ("Revision".to_string(), AttributeValue::S(uuid::Uuid::new_v4().to_string())),
    ])
}

/// BatchWriteItem of items `from..to` in requests of 25, `inflight` at once.
pub async fn raw_batch(c: &Client, table: &str, from: usize, to: usize, inflight: usize) -> f64 {
    let v = value();
    let t = Instant::now();
    let chunks: Vec<Vec<usize>> = (from..to).collect::<Vec<_>>().chunks(25).map(<[usize]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|chunk| {
            let reqs: Vec<_> = chunk
                .iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder().set_item(Some(raw_item(*i, &v))).build().expect("put request"),
                        )
                        .build()
                })
                .collect();
            async move {
                let out = c.batch_write_item().request_items(table, reqs).send().await.expect("batch write");
                assert!(out.unprocessed_items().is_none_or(|m| m.is_empty()), "moto never throttles");
            }
        })
        .buffer_unordered(inflight)
        .collect::<Vec<()>>()
        .await;
    t.elapsed().as_secs_f64()
}
