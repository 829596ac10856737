//! DynamoDB audit store throughput against moto (started through
//! testcontainers/), side by side with the raw speed of the same server
//! through the same SDK in the same run: `emit` vs a plain PutItem of the
//! same items (one at a time, and 8 in flight), and paging a search through
//! every event vs a raw Query of the `timesearchV2` index. Each side writes
//! its own table of the same shape and size.
//!
//! Run with `cargo bench -p teleport --bench events_dynamodb -- --items 4000`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use common::Row;
use futures::StreamExt;
use teleport::events::dynamodb::{DynamoEvents, to_attr};
use teleport::events::{AuditLog, Event, EventsUri, SearchParams};
use testcontainers::DynamoDb;

// 2024-05-01T00:00:00Z: every event falls on this UTC day.
const DAY: u64 = 1_714_521_600;

fn raw_client(db: &DynamoDb) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(db.region.clone()))
            .endpoint_url(&db.endpoint)
            .credentials_provider(Credentials::new(&db.access_key_id, &db.secret_access_key, None, None, "bench"))
            .build(),
    )
}

async fn open(db: &DynamoDb, table: &str) -> DynamoEvents {
    let uri = format!(
        "dynamodb://{table}?region={}&endpoint={}&access_key={}&secret_key={}",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    );
    DynamoEvents::open(&EventsUri::parse(&uri).expect("uri")).await.expect("open the events table")
}

/// Event `i`: a user.login of about 400 bytes, ten per second.
fn event(i: usize) -> Event {
    let t = UNIX_EPOCH + Duration::from_secs(DAY + 3600) + Duration::from_millis(i as u64 * 100);
    Event::at("user.login", "T1000I", t)
        .with("user", format!("user-{i}@example.com"))
        .with("method", "local")
        .with("success", true)
        .with("cluster_name", "bench.example.com")
        .with("addr.remote", "198.51.100.7:51234")
        .with("user_agent", "Mozilla/5.0 (X11; Linux x86_64) tsh/17.0.0")
        .with("mfa_device", serde_json::json!({"mfa_device_name": "yubikey", "mfa_device_type": "WebAuthn"}))
}

/// The item upstream would write for `e` (random SessionID, index 0).
fn raw_item(e: &Event) -> HashMap<String, AttributeValue> {
    let secs = e.time().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or_default();
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default() + 8766 * 3600;
    HashMap::from([
        ("SessionID".into(), AttributeValue::S(uuid::Uuid::new_v4().to_string())),
        ("EventIndex".into(), AttributeValue::N("0".into())),
        ("EventType".into(), AttributeValue::S(e.event_type().into())),
        ("CreatedAt".into(), AttributeValue::N(secs.to_string())),
        ("CreatedAtDate".into(), AttributeValue::S("2024-05-01".into())),
        ("Expires".into(), AttributeValue::N(expires.to_string())),
        ("FieldsMap".into(), to_attr(&serde_json::Value::Object(e.0.clone()))),
        ("EventNamespace".into(), AttributeValue::S("default".into())),
    ])
}

async fn raw_puts(c: &Client, table: &str, events: &[Event], inflight: usize) -> f64 {
    let t = Instant::now();
    futures::stream::iter(events.iter().map(raw_item))
        .map(|item| async move { c.put_item().table_name(table).set_item(Some(item)).send().await.expect("put") })
        .buffer_unordered(inflight)
        .collect::<Vec<_>>()
        .await;
    t.elapsed().as_secs_f64()
}

async fn emits(log: &Arc<DynamoEvents>, events: &[Event], inflight: usize) -> f64 {
    let t = Instant::now();
    futures::stream::iter(events.iter().cloned())
        .map(|e| {
            let log = log.clone();
            async move { log.emit(e).await.expect("emit") }
        })
        .buffer_unordered(inflight)
        .collect::<Vec<()>>()
        .await;
    t.elapsed().as_secs_f64()
}

/// Pages a raw Query of the index through the day; returns (items, seconds).
async fn raw_query(c: &Client, table: &str, page: i32) -> (usize, f64) {
    let t = Instant::now();
    let (mut start, mut count) = (None, 0);
    loop {
        let out = c
            .query()
            .table_name(table)
            .index_name("timesearchV2")
            .key_condition_expression("CreatedAtDate = :d AND CreatedAt BETWEEN :lo AND :hi")
            .expression_attribute_values(":d", AttributeValue::S("2024-05-01".into()))
            .expression_attribute_values(":lo", AttributeValue::N(DAY.to_string()))
            .expression_attribute_values(":hi", AttributeValue::N((DAY + 86_399).to_string()))
            .limit(page)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query");
        count += out.items().len();
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => return (count, t.elapsed().as_secs_f64()),
        }
    }
}

async fn search_all(log: &DynamoEvents, page: usize) -> (usize, f64) {
    let t = Instant::now();
    let mut p =
        SearchParams::range(UNIX_EPOCH + Duration::from_secs(DAY), UNIX_EPOCH + Duration::from_secs(DAY + 86_400));
    p.limit = page;
    let mut count = 0;
    loop {
        let out = log.search(&p).await.expect("search");
        count += out.events.len();
        match out.next {
            Some(n) => p.cursor = Some(n),
            None => return (count, t.elapsed().as_secs_f64()),
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut o = common::opts();
    if !std::env::args().any(|a| a == "--items") {
        o.items = 4000;
    }
    let n = o.items;
    let db = testcontainers::dynamodb().await.expect("start moto (run scripts/install-test-services.sh moto)");
    let events: Vec<Event> = (0..n).map(event).collect();
    let (seq, conc) = events.split_at(n / 2);
    let raw = raw_client(&db);
    let raw_label = "raw aws-sdk-dynamodb, same moto";
    let label = "dynamodb audit store (moto)";
    let mut rows = Vec::new();

    // Raw: a table created through the store (same schema), written raw.
    open(&db, "bench-events-raw").await;
    let s = raw_puts(&raw, "bench-events-raw", seq, 1).await;
    rows.push(Row::new(raw_label, "PutItem", seq.len(), s, "1 in flight"));
    let raw_seq = seq.len() as f64 / s;
    let s = raw_puts(&raw, "bench-events-raw", conc, 8).await;
    rows.push(Row::new(raw_label, "PutItem x8", conc.len(), s, "8 in flight"));
    let raw_conc = conc.len() as f64 / s;

    let log = Arc::new(open(&db, "bench-events-store").await);
    let s = emits(&log, seq, 1).await;
    rows.push(Row::new(label, "emit", seq.len(), s, "1 in flight, conditional put"));
    let s = emits(&log, conc, 8).await;
    rows.push(Row::new(label, "emit x8", conc.len(), s, "8 in flight, conditional put"));
    let first = rows.len() - 2;
    common::ratio(&mut rows[first..first + 1], &["emit"], raw_seq, "raw PutItem");
    common::ratio(&mut rows[first + 1..], &["emit x8"], raw_conc, "raw PutItem x8");

    for page in [100usize, 1000] {
        let (count, s) = raw_query(&raw, "bench-events-raw", page as i32).await;
        assert_eq!(count, n);
        rows.push(Row::new(raw_label, &format!("GSI Query, pages of {page}"), count, s, "events read"));
        let raw_rate = count as f64 / s;
        let (count, s) = search_all(&log, page).await;
        assert_eq!(count, n);
        rows.push(Row::new(label, &format!("search, pages of {page}"), count, s, "sorted, cursor paging"));
        let op = format!("search, pages of {page}");
        let last = rows.len() - 1;
        common::ratio(&mut rows[last..], &[op.as_str()], raw_rate, "raw GSI Query");
    }

    println!("DynamoDB audit store on moto, next to the raw SDK on the same server: {n} events of ~400 bytes");
    println!();
    println!("| store | operation | ops | seconds | ops/s | notes |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {:.2} | {:.0} | {} |", r.store, r.op, r.ops, r.secs, r.rate(), r.note);
    }
}
