//! The DynamoDB audit store against a real DynamoDB-compatible server (moto,
//! started by the testcontainers fixture): the whole events compliance
//! suite (a fresh table per case), then what only this store has: the
//! table and item layout upstream reads, conflict retries, idempotent
//! re-emits (also after a retry), refusing foreign tables, trimming a
//! 500 KB event, paging through thousands of events sharing seconds, an
//! upstream-written item, and the registry's `dynamodb://` arm.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use futures::StreamExt;
use teleport::events::dynamodb::{DynamoEvents, MAX_ITEM_SIZE, item_size, session_id_for};
use teleport::events::suite::{self, SuiteOptions};
use teleport::events::{
    AuditLog, Event, EventsErrorKind, EventsUri, Order, SearchParams, TRIMMED_FIELD, registry, sort_events,
};
use testcontainers::DynamoDb;

fn table_name(what: &str) -> String {
    format!("teleport-events-{what}-{}", &uuid::Uuid::new_v4().to_string()[..8])
}

fn uri(db: &DynamoDb, table: &str) -> String {
    format!(
        "dynamodb://{table}?region={}&endpoint={}&access_key={}&secret_key={}",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    )
}

async fn open(db: &DynamoDb, table: &str) -> DynamoEvents {
    DynamoEvents::open(&EventsUri::parse(&uri(db, table)).unwrap()).await.expect("open dynamodb events")
}

fn raw_client(db: &DynamoDb) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(db.region.clone()))
            .endpoint_url(&db.endpoint)
            .credentials_provider(Credentials::new(&db.access_key_id, &db.secret_access_key, None, None, "test"))
            .build(),
    )
}

async fn partition(c: &Client, table: &str, sid: &str) -> Vec<HashMap<String, AttributeValue>> {
    c.query()
        .table_name(table)
        .key_condition_expression("SessionID = :s")
        .expression_attribute_values(":s", AttributeValue::S(sid.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("query")
        .items()
        .to_vec()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

// 2024-05-01T00:00:00Z
const MAY1: u64 = 1_714_521_600;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let n = AtomicUsize::new(0);
    let base = table_name("suite");
    let started = Instant::now();
    let opts = SuiteOptions { paging_events: 3000, ..SuiteOptions::default() };
    suite::run_all(
        &|| {
            let u = EventsUri::parse(&uri(&db, &format!("{base}-{}", n.fetch_add(1, Ordering::SeqCst)))).unwrap();
            async move { Ok(Arc::new(DynamoEvents::open(&u).await?) as Arc<dyn AuditLog>) }
        },
        &opts,
    )
    .await;
    eprintln!("dynamodb events suite on moto: {:?}", started.elapsed());
}

/// The created table is upstream's: keys, attribute types, the
/// `timesearchV2` index (projection ALL) and TTL on `Expires`.
#[tokio::test(flavor = "multi_thread")]
async fn table_schema_matches_upstream() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("schema");
    let _log = open(&db, &table).await;
    let c = raw_client(&db);
    let d = c.describe_table().table_name(&table).send().await.unwrap();
    let d = d.table().unwrap();
    let keys: Vec<(&str, &str)> = d.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(keys, [("SessionID", "HASH"), ("EventIndex", "RANGE")]);
    let attrs: BTreeSet<(&str, &str)> =
        d.attribute_definitions().iter().map(|a| (a.attribute_name(), a.attribute_type().as_str())).collect();
    let want: BTreeSet<(&str, &str)> =
        [("SessionID", "S"), ("EventIndex", "N"), ("CreatedAtDate", "S"), ("CreatedAt", "N")].into();
    assert_eq!(attrs, want);
    let gsi = d.global_secondary_indexes();
    assert_eq!(gsi.len(), 1);
    assert_eq!(gsi[0].index_name(), Some("timesearchV2"));
    let gkeys: Vec<(&str, &str)> =
        gsi[0].key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(gkeys, [("CreatedAtDate", "HASH"), ("CreatedAt", "RANGE")]);
    assert_eq!(gsi[0].projection().and_then(|p| p.projection_type()).map(|p| p.as_str()), Some("ALL"));
    let ttl = c.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("Expires"));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
    // Opening again finds it as it is.
    open(&db, &table).await;
}

/// A written item has upstream's attributes, types and values.
#[tokio::test(flavor = "multi_thread")]
async fn item_layout_matches_upstream() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("item");
    let log = DynamoEvents::open(&EventsUri::parse(&format!("{}&retention_period=720h", uri(&db, &table))).unwrap())
        .await
        .unwrap();
    let when = at(MAY1 + 3600) + Duration::from_millis(250);
    let sid = uuid::Uuid::new_v4().to_string();
    let session = Event::at("session.start", "T2000I", when)
        .with("sid", sid.clone())
        .with("ei", 0)
        .with("user", "alice")
        .with("addr.remote", "10.0.0.1:5000")
        .with("nested", serde_json::json!({"a": [1, "b", null, true], "e": ""}));
    let plain = Event::at("user.login", "T1000I", when).with("user", "bob");
    log.emit(session.clone()).await.unwrap();
    log.emit(plain.clone()).await.unwrap();
    let c = raw_client(&db);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    for (e, sid) in [(&session, sid.clone()), (&plain, session_id_for(&plain))] {
        let items = partition(&c, &table, &sid).await;
        assert_eq!(items.len(), 1, "{sid}");
        let i = &items[0];
        let names: BTreeSet<&str> = i.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = [
            "SessionID",
            "EventIndex",
            "EventType",
            "CreatedAt",
            "CreatedAtDate",
            "Expires",
            "FieldsMap",
            "EventNamespace",
        ]
        .into();
        assert_eq!(names, want);
        assert_eq!(i["SessionID"], AttributeValue::S(sid.clone()));
        assert_eq!(i["EventIndex"], AttributeValue::N("0".into()));
        assert_eq!(i["EventType"], AttributeValue::S(e.event_type().into()));
        assert_eq!(i["CreatedAt"], AttributeValue::N((MAY1 + 3600).to_string()));
        assert_eq!(i["CreatedAtDate"], AttributeValue::S("2024-05-01".into()));
        assert_eq!(i["EventNamespace"], AttributeValue::S("default".into()));
        let expires: i64 = i["Expires"].as_n().unwrap().parse().unwrap();
        assert!((expires - (now + 720 * 3600)).abs() < 60, "Expires is write time + retention: {expires}");
        let AttributeValue::M(m) = &i["FieldsMap"] else { panic!("FieldsMap is not a map") };
        assert_eq!(m["uid"], AttributeValue::S(e.uid().into()));
        assert_eq!(m["ei"], AttributeValue::N("0".into()));
    }
    let items = partition(&c, &table, &sid).await;
    let AttributeValue::M(m) = &items[0]["FieldsMap"] else { unreachable!() };
    let AttributeValue::M(nested) = &m["nested"] else { panic!("nested is not a map") };
    assert_eq!(
        nested["a"],
        AttributeValue::L(vec![
            AttributeValue::N("1".into()),
            AttributeValue::S("b".into()),
            AttributeValue::Null(true),
            AttributeValue::Bool(true)
        ])
    );
    assert_eq!(nested["e"], AttributeValue::S(String::new()));
    // The sid-less SessionID is a UUID derived from the uid.
    assert!(uuid::Uuid::parse_str(&session_id_for(&plain)).is_ok());
    assert_eq!(session_id_for(&plain), session_id_for(&plain.clone()));
}

/// A taken (SessionID, EventIndex) moves the event to a nanosecond index,
/// as upstream; re-emitting it then still stores it once.
#[tokio::test(flavor = "multi_thread")]
async fn conflict_retry_and_idempotent_reemit() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("conflict");
    let log = open(&db, &table).await;
    let sid = uuid::Uuid::new_v4().to_string();
    let first = Event::at("print", "T2002I", at(MAY1 + 10)).with("sid", sid.clone()).with("ei", 5);
    let clash = Event::at("print", "T2002I", at(MAY1 + 11)).with("sid", sid.clone()).with("ei", 5);
    log.emit(first.clone()).await.unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    log.emit(clash.clone()).await.unwrap();
    let c = raw_client(&db);
    let items = partition(&c, &table, &sid).await;
    assert_eq!(items.len(), 2);
    let idx: Vec<u128> = items.iter().map(|i| i["EventIndex"].as_n().unwrap().parse().unwrap()).collect();
    assert_eq!(idx[0], 5);
    assert!(idx[1] >= before, "retried at the write time in nanoseconds: {}", idx[1]);
    // Re-emits of both (the second now lives at a nanosecond index) are skipped.
    for e in [&first, &clash, &first, &clash] {
        log.emit(e.clone()).await.unwrap();
    }
    assert_eq!(partition(&c, &table, &sid).await.len(), 2);
    let got = log.session_events(&sid).await.unwrap();
    assert_eq!(got.iter().map(Event::uid).collect::<Vec<_>>(), [first.uid(), clash.uid()]);
    // Sid-less events: one item per uid however often emitted.
    let plain = Event::at("user.create", "T1002I", at(MAY1 + 20)).with("user", "carol");
    for _ in 0..3 {
        log.emit(plain.clone()).await.unwrap();
    }
    assert_eq!(partition(&c, &table, &session_id_for(&plain)).await.len(), 1);
    let page = log.search(&SearchParams::range(at(MAY1), at(MAY1 + 60))).await.unwrap();
    assert_eq!(page.events.len(), 3);
}

/// A table with another key schema (or without the index) is refused with
/// an error naming it; nothing is written to it.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_tables_are_refused() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let c = raw_client(&db);
    let state = table_name("state");
    let def = |n: &str, t| AttributeDefinition::builder().attribute_name(n).attribute_type(t).build().unwrap();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build().unwrap();
    c.create_table()
        .table_name(&state)
        .attribute_definitions(def("HashKey", ScalarAttributeType::S))
        .attribute_definitions(def("FullPath", ScalarAttributeType::S))
        .key_schema(key("HashKey", KeyType::Hash))
        .key_schema(key("FullPath", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let err = DynamoEvents::open(&EventsUri::parse(&uri(&db, &state)).unwrap()).await.unwrap_err();
    assert_eq!(err.kind, EventsErrorKind::BadParameter);
    let msg = err.to_string();
    assert!(msg.contains(&state) && msg.contains("HashKey (S, HASH) + FullPath (S, RANGE)"), "{msg}");
    assert!(!msg.contains(&db.secret_access_key), "{msg}");
    let no_index = table_name("noindex");
    c.create_table()
        .table_name(&no_index)
        .attribute_definitions(def("SessionID", ScalarAttributeType::S))
        .attribute_definitions(def("EventIndex", ScalarAttributeType::N))
        .key_schema(key("SessionID", KeyType::Hash))
        .key_schema(key("EventIndex", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let err = DynamoEvents::open(&EventsUri::parse(&uri(&db, &no_index)).unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("timesearchV2") && err.to_string().contains(&no_index), "{err}");
}

/// A 500 KB event is stored trimmed under the item limit, with the marker.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_event_is_trimmed() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("trim");
    let log = open(&db, &table).await;
    let big = Event::at("exec", "T3002I", at(MAY1 + 100)).with("command", "x".repeat(500 * 1024)).with("user", "dave");
    log.emit(big.clone()).await.unwrap();
    let items = partition(&raw_client(&db), &table, &session_id_for(&big)).await;
    assert_eq!(items.len(), 1);
    assert!(item_size(&items[0]) <= MAX_ITEM_SIZE, "{}", item_size(&items[0]));
    let got = log.search(&SearchParams::range(at(MAY1), at(MAY1 + 200))).await.unwrap().events;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.get(TRIMMED_FIELD), Some(&serde_json::Value::Bool(true)));
    assert_eq!((got[0].uid(), got[0].str("user")), (big.uid(), Some("dave")));
    assert!(got[0].size() <= log.max_event_size());
}

/// Thousands of events, dozens per second and many sharing a millisecond,
/// over a day boundary: paging in both orders sees each exactly once, in
/// order; a foreign cursor is a BadParameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_thousands_without_gaps_or_duplicates() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("paging");
    let log = Arc::new(open(&db, &table).await);
    let n = 3000u64;
    let start = at(MAY1 - 30); // 30 s before midnight
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let t = start + Duration::from_millis((i / 3) * 20); // 50 per second, triples share a ms
            Event::at(if i % 4 == 0 { "user.login" } else { "exec" }, "X", t).with("ei", (i % 2) as i64)
        })
        .collect();
    let t0 = Instant::now();
    futures::stream::iter(events.clone())
        .map(|e| {
            let log = log.clone();
            async move { log.emit(e).await.unwrap() }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    eprintln!("emitted {n} events in {:?}", t0.elapsed());
    let mut want = events.clone();
    sort_events(&mut want, Order::Ascending);
    let want: Vec<String> = want.iter().map(|e| e.uid().to_string()).collect();
    for (order, limit) in [(Order::Ascending, 97), (Order::Descending, 251), (Order::Ascending, 1)] {
        if limit == 1 {
            // One event per page only over a busy stretch.
            let mut p = SearchParams::range(start, start + Duration::from_millis(400));
            p.limit = 1;
            let got = suite::search_all(log.as_ref(), p).await;
            assert_eq!(suite::uids(&got), want[..60].to_vec());
            continue;
        }
        let mut p = SearchParams::range(start, start + Duration::from_secs(3600));
        p.order = order;
        p.limit = limit;
        let t = Instant::now();
        let mut got = suite::uids(&suite::search_all(log.as_ref(), p).await);
        eprintln!("paged {n} events {order:?} by {limit} in {:?}", t.elapsed());
        if order == Order::Descending {
            got.reverse();
        }
        assert_eq!(got, want, "{order:?} by {limit}");
    }
    let mut p = SearchParams::range(start, start + Duration::from_secs(3600));
    p.cursor = Some("garbage".into());
    assert_eq!(log.search(&p).await.unwrap_err().kind, EventsErrorKind::BadParameter);
}

/// An item as upstream writes it (random SessionID, `EventIndex` 0) is
/// found by searches and session reads.
#[tokio::test(flavor = "multi_thread")]
async fn reads_upstream_items() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("upstream");
    let log = open(&db, &table).await;
    let sid = uuid::Uuid::new_v4().to_string();
    let fields = HashMap::from([
        ("event".to_string(), AttributeValue::S("session.start".into())),
        ("uid".to_string(), AttributeValue::S("0b1b4b1e-aaaa-bbbb-cccc-000000000001".into())),
        ("time".to_string(), AttributeValue::S("2024-05-01T10:00:00.5Z".into())),
        ("ei".to_string(), AttributeValue::N("0".into())),
        ("sid".to_string(), AttributeValue::S(sid.clone())),
        ("code".to_string(), AttributeValue::S("T2000I".into())),
    ]);
    raw_client(&db)
        .put_item()
        .table_name(&table)
        .item("SessionID", AttributeValue::S(sid.clone()))
        .item("EventIndex", AttributeValue::N("0".into()))
        .item("EventType", AttributeValue::S("session.start".into()))
        .item("CreatedAt", AttributeValue::N((MAY1 + 36_000).to_string()))
        .item("CreatedAtDate", AttributeValue::S("2024-05-01".into()))
        .item("Expires", AttributeValue::N("4102444800".into()))
        .item("FieldsMap", AttributeValue::M(fields))
        .item("EventNamespace", AttributeValue::S("default".into()))
        .send()
        .await
        .unwrap();
    let page = log.search(&SearchParams::range(at(MAY1), at(MAY1 + 86_400))).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].sid(), Some(sid.as_str()));
    assert_eq!(log.session_events(&sid).await.unwrap().len(), 1);
}

/// `audit_events_uri: dynamodb://...` opens this store through the registry.
#[tokio::test(flavor = "multi_thread")]
async fn registry_opens_dynamodb() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let log = registry::open_one(&uri(&db, &table_name("registry")), "host").await.unwrap();
    assert_eq!(log.name(), "dynamodb");
    assert!(!log.describe().contains(&db.secret_access_key));
    let e = Event::new("user.login", "T1000I");
    log.emit(e.clone()).await.unwrap();
    let now = SystemTime::now();
    let got = log.search(&SearchParams::range(now - Duration::from_secs(60), now + Duration::from_secs(60))).await;
    assert_eq!(got.unwrap().events, vec![e]);
}
