//! DynamoDB store throughput against moto (started through testcontainers/),
//! side by side with the raw speed of the same server through the same SDK
//! in the same run: BatchWriteItem of 25 items (one request at a time, and
//! 8 in flight), a paged strongly consistent Query, GetItem and PutItem.
//! Each side writes its own table so both query tables of the same size.
//!
//! Run with `BENCHES=store_dynamodb scripts/bench-backend.sh --items 20000`.

mod common;
#[path = "common/raw_dynamodb.rs"]
mod raw_dynamodb;

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{Row, key, value};
use raw_dynamodb::{raw_batch, raw_client, raw_item};
use teleport::backend::Backend;
use teleport::backend::dynamodb::DynamoDbBackend;
use teleport::backend::registry::OpenOptions;
use teleport::config::{self, DynamoDbConfig, StorageConfig};
use testcontainers::DynamoDb;

fn cfg(db: &DynamoDb, table: &str) -> DynamoDbConfig {
    let text = format!(
        "type: dynamodb\ntable_name: {table}\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    );
    match config::parse_storage_source(std::path::Path::new("bench.yaml"), &text).expect("config").storage() {
        StorageConfig::DynamoDb(c) => c,
        _ => unreachable!("a dynamodb block"),
    }
}

async fn raw_scan(c: &Client, table: &str, n: usize) -> f64 {
    let t = Instant::now();
    let mut start = None;
    let mut count = 0;
    loop {
        let out = c
            .query()
            .table_name(table)
            .key_condition_expression("HashKey = :h AND FullPath BETWEEN :lo AND :hi")
            .expression_attribute_values(":h", AttributeValue::S("teleport".into()))
            .expression_attribute_values(":lo", AttributeValue::S("teleport/bench/items/".into()))
            .expression_attribute_values(":hi", AttributeValue::S("teleport/bench/items0".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        count += out.items().len();
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    assert_eq!(count, n);
    t.elapsed().as_secs_f64()
}

async fn raw_gets(c: &Client, table: &str, n: usize, cap: f64) -> (usize, f64) {
    let t = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut done = 0;
    while done < n && t.elapsed().as_secs_f64() < cap {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % n as u64) as usize;
        let out = c
            .get_item()
            .table_name(table)
            .key("HashKey", AttributeValue::S("teleport".into()))
            .key("FullPath", AttributeValue::S(format!("teleport{}", key(i))))
            .consistent_read(true)
            .send()
            .await
            .expect("get");
        assert!(out.item().is_some());
        done += 1;
    }
    (done, t.elapsed().as_secs_f64())
}

async fn raw_puts(c: &Client, table: &str, start: usize, n: usize, cap: f64) -> (usize, f64) {
    let v = value();
    let t = Instant::now();
    let mut done = 0;
    while done < n && t.elapsed().as_secs_f64() < cap {
        c.put_item().table_name(table).set_item(Some(raw_item(start + done, &v))).send().await.expect("put");
        done += 1;
    }
    (done, t.elapsed().as_secs_f64())
}

/// `put_batch` of all items, `per` items per call; returns seconds.
async fn put_batch_sized(b: &dyn Backend, n: usize, per: usize) -> f64 {
    let v = value();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let items: Vec<_> = (i..(i + per).min(n)).map(|j| teleport::backend::Item::new(key(j), v.clone())).collect();
        i += items.len();
        b.put_batch(items).await.expect("put batch");
    }
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = common::opts();
    let n = o.items;
    let db = testcontainers::dynamodb().await.expect("start moto (run scripts/install-test-services.sh moto)");
    let mut rows = Vec::new();

    // Raw: tables created through the store (same schema), written raw.
    let raw = raw_client(&db);
    let raw_label = "raw aws-sdk-dynamodb, same moto";
    for t in ["bench-raw", "bench-raw-seq"] {
        DynamoDbBackend::open(&cfg(&db, t), OpenOptions::create()).await.expect("create raw table").close().await.ok();
    }
    let seq = raw_batch(&raw, "bench-raw-seq", 0, n, 1).await;
    rows.push(Row::new(raw_label, "BatchWriteItem x25, 1 in flight", n, seq, "sequential requests"));
    let conc = raw_batch(&raw, "bench-raw", 0, n, 8).await;
    rows.push(Row::new(raw_label, "BatchWriteItem x25, 8 in flight", n, conc, "8 concurrent requests"));
    let scan = raw_scan(&raw, "bench-raw", n).await;
    rows.push(Row::new(raw_label, "Query scan", n, scan, "paged, consistent, 1 MB pages"));
    let (gets, gsecs) = raw_gets(&raw, "bench-raw", n, o.seconds).await;
    rows.push(Row::new(raw_label, "GetItem", gets, gsecs, "random keys, one task, consistent"));
    let (puts, psecs) = raw_puts(&raw, "bench-raw", n, n, o.seconds).await;
    rows.push(Row::new(raw_label, "PutItem", puts, psecs, "one task"));

    // The store: the shared workload on its own table.
    let label = "dynamodb store (moto)";
    let b: Arc<dyn Backend> =
        Arc::new(DynamoDbBackend::open(&cfg(&db, "bench-store"), OpenOptions::create()).await.expect("open"));
    let first = rows.len();
    common::workload(label, b, &o, &mut rows).await;

    // put_batch with many items per call: BatchWriteItem requests in flight at once.
    let big: Arc<dyn Backend> =
        Arc::new(DynamoDbBackend::open(&cfg(&db, "bench-store-big"), OpenOptions::create()).await.expect("open"));
    let secs = put_batch_sized(big.as_ref(), n, 1000).await;
    rows.push(Row::new(label, "put_batch x1000", n, secs, "1000 items per call (8 requests in flight)"));
    big.close().await.ok();

    let store_rows = &mut rows[first..];
    common::ratio(store_rows, &["put_batch"], n as f64 / seq, "raw batch, 1 in flight");
    common::ratio(store_rows, &["put_batch x1000"], n as f64 / conc, "raw batch, 8 in flight");
    common::ratio(store_rows, &["range scan"], n as f64 / scan, "raw Query scan");
    common::ratio(store_rows, &["get"], gets as f64 / gsecs, "raw GetItem");
    common::ratio(store_rows, &["put", "put x16"], puts as f64 / psecs, "raw PutItem");
    common::print("DynamoDB store on moto, next to the raw SDK on the same server", &o, &rows);
}
