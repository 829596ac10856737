//! The DynamoDB store against a real DynamoDB-compatible server (moto,
//! started by the testcontainers fixture): the whole compliance suite, then
//! what only this store has: its raw item layout, legacy items without a
//! revision, refusing a foreign table, never creating a table when asked not
//! to, one clear error for an unreachable endpoint, and `teleport backend`
//! reading a table the store wrote.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use teleport::backend::dynamodb::DynamoDbBackend;
use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{BLANK_REVISION, Backend, Clock, ErrorKind, Item, Key, suite};
use teleport::config::{self, DynamoDbConfig, StorageConfig};
use testcontainers::DynamoDb;

/// A storage block for `table` on the fixture's server, parsed as a user's
/// would be; the poll period is short so watch events arrive quickly.
fn config(db: &DynamoDb, table: &str) -> DynamoDbConfig {
    let text = format!(
        "type: dynamodb\ntable_name: {table}\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\npoll_stream_period: 100ms\nretry_period: 200ms\n",
        db.region, db.endpoint, db.access_key_id, db.secret_access_key
    );
    match config::parse_storage_source(Path::new("test.yaml"), &text).expect("storage block").storage() {
        StorageConfig::DynamoDb(c) => c,
        other => panic!("parsed as {other:?}"),
    }
}

fn table_name(what: &str) -> String {
    format!("teleport-test-{what}-{}", &uuid::Uuid::new_v4().to_string()[..8])
}

async fn raw_client(db: &DynamoDb) -> Client {
    let conf = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(db.region.clone()))
        .endpoint_url(&db.endpoint)
        .credentials_provider(Credentials::new(&db.access_key_id, &db.secret_access_key, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

async fn open(cfg: &DynamoDbConfig) -> DynamoDbBackend {
    DynamoDbBackend::open(cfg, OpenOptions::create()).await.expect("open dynamodb")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let cfg = config(&db, &table_name("suite"));
    let started = Instant::now();
    suite::run_all(&move |clock: Arc<dyn Clock>| {
        let cfg = cfg.clone();
        async move {
            let b: Arc<dyn Backend> =
                Arc::new(DynamoDbBackend::open(&cfg, OpenOptions::create().with_clock(clock)).await?);
            Ok(b)
        }
    })
    .await;
    eprintln!("dynamodb compliance suite on moto: {:?}", started.elapsed());
}

/// Items are stored exactly as upstream stores them.
#[tokio::test(flavor = "multi_thread")]
async fn raw_layout_matches_upstream() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("layout");
    let b = open(&config(&db, &table)).await;
    let expires = UNIX_EPOCH + Duration::from_millis(4_102_444_800_250); // 2100-01-01 00:00:00.25
    let lease = b
        .put(Item::new("/web/users/alice/params", b"{\"kind\":\"user\"}".to_vec()).expires_at(expires))
        .await
        .expect("put");
    b.put(Item::new("/tokens/forever", b"t".to_vec())).await.expect("put");

    let raw = raw_client(&db).await;
    let got = raw
        .get_item()
        .table_name(&table)
        .key("HashKey", AttributeValue::S("teleport".into()))
        .key("FullPath", AttributeValue::S("teleport/web/users/alice/params".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw get");
    let item = got.item().expect("item stored under HashKey=teleport, FullPath=teleport+key");
    assert_eq!(item["HashKey"].as_s().unwrap(), "teleport");
    assert_eq!(item["FullPath"].as_s().unwrap(), "teleport/web/users/alice/params");
    assert_eq!(item["Value"].as_b().unwrap().as_ref(), b"{\"kind\":\"user\"}");
    assert_eq!(item["Expires"].as_n().unwrap(), "4102444801", "unix seconds, rounded up");
    assert_eq!(item["Revision"].as_s().unwrap(), &lease.revision);
    let ts: i64 = item["Timestamp"].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - ts).abs() < 60, "Timestamp is the write's unix seconds: {ts}");
    let mut names: Vec<_> = item.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["Expires", "FullPath", "HashKey", "Revision", "Timestamp", "Value"]);

    let forever = raw
        .get_item()
        .table_name(&table)
        .key("HashKey", AttributeValue::S("teleport".into()))
        .key("FullPath", AttributeValue::S("teleport/tokens/forever".into()))
        .send()
        .await
        .expect("raw get");
    assert!(!forever.item().unwrap().contains_key("Expires"), "no Expires means never");

    // The table is set up as upstream's: keys, TTL on Expires, a NEW_IMAGE stream.
    let desc = raw.describe_table().table_name(&table).send().await.expect("describe");
    let t = desc.table().unwrap();
    let keys: Vec<_> = t.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(keys, [("HashKey", "HASH"), ("FullPath", "RANGE")]);
    assert_eq!(t.stream_specification().and_then(|s| s.stream_view_type()).map(|v| v.as_str()), Some("NEW_IMAGE"));
    let ttl = raw.describe_time_to_live().table_name(&table).send().await.expect("ttl");
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("Expires"));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));
    b.close().await.unwrap();
}

/// An item written before revisions existed reads as BLANK_REVISION, and
/// a conditional update on that revision works (upstream: attribute_not_exists(Revision)).
#[tokio::test(flavor = "multi_thread")]
async fn legacy_item_without_revision() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("legacy");
    let b = open(&config(&db, &table)).await;
    let raw = raw_client(&db).await;
    raw.put_item()
        .table_name(&table)
        .item("HashKey", AttributeValue::S("teleport".into()))
        .item("FullPath", AttributeValue::S("teleport/roles/old/params".into()))
        .item("Value", AttributeValue::B(Blob::new(b"old".to_vec())))
        .item("Timestamp", AttributeValue::N("1500000000".into()))
        .item("ID", AttributeValue::N("1500000000000000000".into()))
        .send()
        .await
        .expect("raw legacy put");
    let key = Key::from("/roles/old/params");
    let got = b.get(&key).await.expect("get legacy");
    assert_eq!((got.value.as_slice(), got.revision.as_str(), got.expires), (&b"old"[..], BLANK_REVISION, None));
    let range = b.get_range(&Key::from("/roles/"), &Key::from("/roles/").range_end(), 0).await.expect("range");
    assert_eq!(range.len(), 1);
    assert_eq!(range[0].revision, BLANK_REVISION);

    // A stale revision fails; the blank one succeeds, once.
    let err = b.conditional_update(Item::new(key.clone(), "x").with_revision("not-it")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    let lease = b
        .conditional_update(Item::new(key.clone(), "new").with_revision(BLANK_REVISION))
        .await
        .expect("conditional update of a legacy item");
    assert_ne!(lease.revision, BLANK_REVISION);
    let err = b.conditional_update(Item::new(key.clone(), "y").with_revision(BLANK_REVISION)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);
    assert_eq!(b.get(&key).await.unwrap().value, b"new");
    b.close().await.unwrap();
}

/// A table whose keys are not ours (here the pre-4.0 `Key` schema) is
/// refused with the table's name and what was found.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_schema_is_refused() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let raw = raw_client(&db).await;
    let table = table_name("legacy-schema");
    raw.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("HashKey")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("Key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("HashKey").key_type(KeyType::Hash).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("Key").key_type(KeyType::Range).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create legacy table");
    for opts in [OpenOptions::create(), OpenOptions::existing()] {
        let err = DynamoDbBackend::open(&config(&db, &table), opts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadParameter, "{err}");
        let msg = err.to_string();
        for part in [table.as_str(), "HashKey (S, HASH) + Key (S, RANGE)", "legacy schema"] {
            assert!(msg.contains(part), "{msg:?} should mention {part:?}");
        }
    }
}

/// With `create: false` (every tool that reads), a missing table is a clear
/// NotFound and nothing is created.
#[tokio::test(flavor = "multi_thread")]
async fn missing_table_is_not_created_when_reading() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("missing");
    let storage = StorageConfig::DynamoDb(config(&db, &table));
    let err = registry::open(&storage, OpenOptions::existing()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    for part in [table.as_str(), "does not exist", &db.endpoint, "region us-east-1"] {
        assert!(msg.contains(part), "{msg:?} should mention {part:?}");
    }
    let tables = raw_client(&db).await.list_tables().send().await.expect("list tables");
    assert!(!tables.table_names().contains(&table), "no table was created");

    // Through the registry, a service's open creates it.
    let b = registry::open(&storage, OpenOptions::create()).await.expect("open creating");
    assert_eq!(b.name(), "dynamodb");
    b.put(Item::new("/a", "b")).await.expect("put");
    assert!(registry::supported_types().contains(&"dynamodb"));
    b.close().await.unwrap();
}

/// An endpoint nobody listens on fails fast with one error that names the
/// store and where it looked, and never the secret.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_endpoint_is_one_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let text = format!(
        "type: dynamodb\ntable_name: cluster-state\nregion: eu-west-2\nendpoint: {endpoint}\naccess_key: AKIDEXAMPLE\nsecret_key: very-secret-value\n"
    );
    let storage = config::parse_storage_source(Path::new("t.yaml"), &text).unwrap().storage();
    let started = Instant::now();
    let err = registry::open(&storage, OpenOptions::create()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let msg = err.to_string();
    for part in ["dynamodb table cluster-state", "region eu-west-2", endpoint.as_str(), "cannot reach DynamoDB"] {
        assert!(msg.contains(part), "{msg:?} should mention {part:?}");
    }
    assert!(!msg.contains("very-secret-value"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    if let StorageConfig::DynamoDb(c) = &storage {
        assert!(!format!("{c:?}").contains("very-secret-value"));
    }
}

/// `teleport backend ls/get` read a DynamoDB table written by the store
/// (the operator's tools open it without creating anything).
#[tokio::test(flavor = "multi_thread")]
async fn backend_cli_reads_the_table() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let table = table_name("cli");
    let b = open(&config(&db, &table)).await;
    b.put(Item::new("/web/users/alice/params", b"{\"kind\":\"user\"}".to_vec())).await.unwrap();
    b.put(Item::new("/tokens/join", b"tok".to_vec())).await.unwrap();
    b.close().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("storage.yaml");
    std::fs::write(
        &file,
        format!(
            "type: dynamodb\ntable_name: {table}\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
            db.region, db.endpoint, db.access_key_id, db.secret_access_key
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_teleport"))
            .args(["backend", "-c", file.to_str().unwrap()])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run teleport");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ls = run(&["ls"]);
    for k in ["/web/users/alice/params", "/tokens/join"] {
        assert!(ls.contains(k), "ls lists {k}:\n{ls}");
    }
    assert!(run(&["get", "/web/users/alice/params"]).contains("\"kind\""));
}
