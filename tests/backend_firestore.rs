//! The Firestore store against a real Firestore-protocol server (the
//! testcontainers Firestore fixture: the in-process test server, or the
//! official emulator with TELEPORT_TEST_PROVIDER=container): the whole
//! compliance suite, then what only this store has: the raw document layout,
//! legacy upstream documents, two handles racing, limits, and opening
//! without writing.
#![cfg(feature = "firestore")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::tonic::transport::Channel;
use fs::firestore_client::FirestoreClient;
use fs::value::ValueType;
use teleport::backend::firestore::FirestoreBackend;
use teleport::backend::firestore::layout;
use teleport::backend::registry::OpenOptions;
use teleport::backend::{Backend, Clock, Condition, ConditionalAction, ErrorKind, Item, Key, OpType, Watch, suite};
use teleport::config::FirestoreConfig;
use testcontainers::Firestore;

fn collection() -> String {
    format!("teleport-{}", uuid::Uuid::new_v4())
}

fn config(f: &Firestore, collection: &str) -> FirestoreConfig {
    FirestoreConfig {
        collection_name: collection.to_string(),
        project_id: Some(f.project.clone()),
        credentials_path: None,
        endpoint: Some(f.endpoint.clone()),
        database_id: None,
        buffer_size: None,
        retry_period: Some(Duration::from_secs(1)),
        purge_expired_documents_poll_interval: Some(Duration::from_millis(100)),
        disable_expired_document_purge: false,
        limit_watch_query: false,
        audit: Default::default(),
    }
}

async fn open(cfg: &FirestoreConfig, clock: Arc<dyn Clock>) -> Arc<dyn Backend> {
    Arc::new(FirestoreBackend::open(cfg, OpenOptions::create().with_clock(clock)).await.expect("open firestore"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_compliance() {
    let Some(f) = testcontainers::firestore_or_skip().await else { return };
    let cfg = config(&f, &collection());
    let started = std::time::Instant::now();
    suite::run_all(&|clock: Arc<dyn Clock>| {
        let cfg = cfg.clone();
        async move {
            FirestoreBackend::open(&cfg, OpenOptions::create().with_clock(clock))
                .await
                .map(|b| Arc::new(b) as Arc<dyn Backend>)
        }
    })
    .await;
    eprintln!("firestore compliance suite: {:?}", started.elapsed());
}

/// A raw gRPC client on the fixture's server, to read and write documents
/// without the store.
struct Raw {
    c: FirestoreClient<Channel>,
    db: String,
    coll: String,
}

impl Raw {
    async fn new(f: &Firestore, coll: &str) -> Raw {
        let channel = Channel::from_shared(f.endpoint.clone()).expect("endpoint").connect().await.expect("connect");
        Raw { c: FirestoreClient::new(channel), db: f.database_path(), coll: coll.to_string() }
    }

    fn name(&self, id: &str) -> String {
        format!("{}/documents/{}/{id}", self.db, self.coll)
    }

    async fn get(&mut self, id: &str) -> Option<fs::Document> {
        let req = fs::BatchGetDocumentsRequest {
            database: self.db.clone(),
            documents: vec![self.name(id)],
            ..Default::default()
        };
        let mut s = self.c.batch_get_documents(req).await.expect("batch get").into_inner();
        match s.message().await.expect("answer").expect("one").result {
            Some(fs::batch_get_documents_response::Result::Found(d)) => Some(d),
            _ => None,
        }
    }

    async fn set(&mut self, id: &str, fields: Vec<(&str, fs::Value)>) -> fs::CommitResponse {
        let doc = fs::Document {
            name: self.name(id),
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        };
        let w = fs::Write { operation: Some(fs::write::Operation::Update(doc)), ..Default::default() };
        let req = fs::CommitRequest { database: self.db.clone(), writes: vec![w], ..Default::default() };
        self.c.commit(req).await.expect("raw commit").into_inner()
    }
}

fn field<'a>(d: &'a fs::Document, name: &str) -> &'a ValueType {
    d.fields.get(name).and_then(|v| v.value_type.as_ref()).unwrap_or_else(|| panic!("field {name} missing: {d:?}"))
}

#[tokio::test]
async fn documents_use_upstreams_layout() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let b = open(&config(&f, &coll), teleport::backend::clock::system()).await;
    // A key whose base64 needs padding and uses the URL-safe characters.
    let key = Key::from(b"/web/users/\xfb\xff/params".to_vec());
    let expires = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    let lease = b.put(Item::new(key.clone(), b"\x00\x01value".to_vec()).expires_at(expires)).await.expect("put");

    let id = layout::document_id(&key);
    assert_eq!(id, "L3dlYi91c2Vycy_7_y9wYXJhbXM=", "padded base64url of the key");
    let mut raw = Raw::new(&f, &coll).await;
    let doc = raw.get(&id).await.expect("the document is named by base64url(key)");
    assert_eq!(field(&doc, "key"), &ValueType::BytesValue(key.as_bytes().to_vec()));
    assert_eq!(field(&doc, "value"), &ValueType::BytesValue(b"\x00\x01value".to_vec()));
    assert_eq!(field(&doc, "expires"), &ValueType::IntegerValue(4_000_000_000));
    assert_eq!(field(&doc, "revision"), &ValueType::StringValue(lease.revision.clone()));
    assert!(lease.revision.starts_with("f2:"), "{}", lease.revision);
    let ValueType::IntegerValue(ts) = field(&doc, "timestamp") else { panic!("timestamp is an integer") };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - ts).abs() < 60, "timestamp {ts} is the write time in unix seconds");
    assert_eq!(doc.fields.len(), 5);

    // No expiry is written as 0.
    let plain = Key::from("/plain");
    b.put(Item::new(plain.clone(), "v")).await.expect("put");
    let doc = raw.get(&layout::document_id(&plain)).await.expect("doc");
    assert_eq!(field(&doc, "expires"), &ValueType::IntegerValue(0));
    b.close().await.expect("close");
}

#[tokio::test]
async fn legacy_documents_are_read_and_updated() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let cfg = config(&f, &coll);
    // A handle opened before any legacy document exists.
    let early = open(&cfg, teleport::backend::clock::system()).await;
    let mut raw = Raw::new(&f, &coll).await;
    // As old upstream versions wrote them: string key and value, no revision,
    // no expires field; and an integer-array key (v16/v17).
    let old = Key::from("/legacy/string");
    let r = raw
        .set(
            &layout::document_id(&old),
            vec![
                ("key", layout::string("/legacy/string")),
                ("value", layout::string("old value")),
                ("timestamp", layout::integer(1)),
            ],
        )
        .await;
    let update_time = r.write_results[0].update_time.expect("update time");
    let arr = Key::from("/legacy/array");
    raw.set(
        &layout::document_id(&arr),
        vec![
            ("key", layout::byte_array(arr.as_bytes())),
            ("value", layout::bytes(b"array value")),
            ("revision", layout::string("f2:abc")),
        ],
    )
    .await;
    let new = Key::from("/legacy/new");
    early.put(Item::new(new.clone(), "new")).await.expect("put");
    let p = Key::from("/legacy/");
    let want = vec![arr.clone(), new.clone(), old.clone()];

    // The early handle learns of the legacy forms through its listener.
    let seen = async {
        loop {
            let r = early.get_range(&p, &p.range_end(), 0).await.expect("range");
            if r.len() == 3 {
                return r.into_iter().map(|i| i.key).collect::<Vec<_>>();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), seen).await.expect("seen through the listener"), want);

    // A handle opened now finds them at once, in key order.
    let b = open(&cfg, teleport::backend::clock::system()).await;
    let all = b.get_range(&p, &p.range_end(), 0).await.expect("range");
    assert_eq!(all.iter().map(|i| i.key.clone()).collect::<Vec<_>>(), want);
    let got = b.get(&old).await.expect("legacy document");
    assert_eq!(got.value, b"old value");
    assert_eq!(got.expires, None);
    assert_eq!(got.revision, layout::legacy_revision(&update_time), "revision derived from the update time");
    let a = b.get(&arr).await.expect("array-key document");
    assert_eq!((a.value.as_slice(), a.revision.as_str()), (&b"array value"[..], "f2:abc"));

    // The legacy revision works as a condition; the rewrite uses the new layout.
    let lease = b
        .conditional_update(Item::new(old.clone(), "new value").with_revision(got.revision.clone()))
        .await
        .expect("conditional update");
    assert!(lease.revision.starts_with("f2:"));
    let doc = raw.get(&layout::document_id(&old)).await.expect("doc");
    assert_eq!(field(&doc, "key"), &ValueType::BytesValue(old.as_bytes().to_vec()));
    assert_eq!(field(&doc, "value"), &ValueType::BytesValue(b"new value".to_vec()));
    let err = b.conditional_update(Item::new(old.clone(), "x").with_revision(got.revision)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CompareFailed);

    b.delete_range(&p, &p.range_end()).await.expect("delete range covers legacy forms");
    assert!(b.get_range(&p, &p.range_end(), 0).await.expect("range").is_empty());
    assert!(raw.get(&layout::document_id(&arr)).await.is_none());
    b.close().await.expect("close");
    early.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_race_without_losing_updates() {
    let f = testcontainers::firestore().await.expect("server");
    let cfg = config(&f, &collection());
    let clock = teleport::backend::clock::system();
    let (a, b) = (open(&cfg, clock.clone()).await, open(&cfg, clock).await);
    let counter = Key::from("/race/counter");
    a.put(Item::new(counter.clone(), "0")).await.expect("seed");
    let mut tasks = Vec::new();
    for h in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let cur = h.get(&counter).await.expect("get");
                    let n: u64 = String::from_utf8_lossy(&cur.value).parse().expect("number");
                    let next = Item::new(counter.clone(), (n + 1).to_string());
                    let act = ConditionalAction::new(
                        counter.clone(),
                        Condition::Revision(cur.revision),
                        teleport::backend::Action::Put(next),
                    );
                    match h.atomic_write(vec![act]).await {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::CompareFailed => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(a.get(&counter).await.expect("get").value, b"40");
    // Exactly one of two concurrent swaps from different handles wins.
    for i in 0..10 {
        let k = Key::from(format!("/race/cas/{i}"));
        a.put(Item::new(k.clone(), "0")).await.expect("put");
        let (r1, r2) = tokio::join!(
            a.compare_and_swap(Item::new(k.clone(), "0"), Item::new(k.clone(), "A")),
            b.compare_and_swap(Item::new(k.clone(), "0"), Item::new(k.clone(), "B")),
        );
        assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
    }
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test]
async fn expiry_purge_limits_and_read_only_open() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let mut cfg = config(&f, &coll);
    let server = f.test_server().expect("in-process server");
    let before = server.document_count();
    // Opening (even with create: false) writes nothing.
    let ro = FirestoreBackend::open(&cfg, OpenOptions::existing()).await.expect("open existing");
    assert_eq!(server.document_count(), before);

    // A serving handle purges expired documents; watchers see Delete.
    cfg.purge_expired_documents_poll_interval = Some(Duration::from_millis(50));
    let b = open(&cfg, teleport::backend::clock::system()).await;
    let mut w = b.new_watcher(Watch::all("purge")).await.expect("watch");
    assert_eq!(suite::next_event(&mut w, suite::EVENT_TIMEOUT).await.op, OpType::Init);
    let k = Key::from("/short");
    b.put(Item::new(k.clone(), "v").expires_at(SystemTime::now() + Duration::from_secs(1))).await.expect("put");
    suite::expect_event(&mut w, OpType::Put, &k, suite::EVENT_TIMEOUT).await;
    suite::expect_event(&mut w, OpType::Delete, &k, Duration::from_secs(10)).await;
    let mut raw = Raw::new(&f, &coll).await;
    assert!(raw.get(&layout::document_id(&k)).await.is_none(), "the expired document was deleted");
    assert_eq!(ro.purge_expired().await.expect("purge pass"), 0);

    // Limits are data and are enforced before anything is sent.
    let lim = b.limits();
    assert_eq!((lim.max_key_len, lim.max_batch_items), (Some(1125), 500));
    let err = b.put(Item::new(Key::from(vec![b'k'; 1126]), "v")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    let err = b.put(Item::new("/big", vec![0u8; 1024 * 1024])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    let max = lim.max_item_size.expect("max item size");
    b.put(Item::new("/almost", vec![1u8; max - 7])).await.expect("the largest item fits");
    b.close().await.expect("close");
    ro.close().await.expect("close");

    // An endpoint nobody answers: a clear connection error naming the store.
    let mut bad = config(&f, &coll);
    bad.endpoint = Some("http://127.0.0.1:9".into());
    let err = FirestoreBackend::open(&bad, OpenOptions::existing()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");
    let msg = err.to_string();
    for part in ["firestore", "projects/teleport-test/databases/(default)", &coll, "http://127.0.0.1:9"] {
        assert!(msg.contains(part), "{msg:?} should name {part}");
    }
    // Missing required fields.
    let mut no_project = config(&f, &coll);
    no_project.project_id = None;
    assert_eq!(
        FirestoreBackend::open(&no_project, OpenOptions::existing()).await.unwrap_err().kind(),
        ErrorKind::BadParameter
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_watch_stream_closes_watchers_and_reconnects() {
    use testcontainers::firestore::TestServer;
    let server = TestServer::start().expect("server");
    let addr = server.addr();
    let cfg = FirestoreConfig {
        collection_name: collection(),
        project_id: Some("p".into()),
        endpoint: Some(server.endpoint()),
        retry_period: Some(Duration::from_millis(200)),
        ..config_without_server()
    };
    let b = open(&cfg, teleport::backend::clock::system()).await;
    let mut w = b.new_watcher(Watch::all("w")).await.expect("watch");
    assert_eq!(suite::next_event(&mut w, suite::EVENT_TIMEOUT).await.op, OpType::Init);
    // The server goes away: the watcher is closed, not left silent.
    drop(server);
    tokio::time::timeout(Duration::from_secs(10), w.done())
        .await
        .expect("the watcher is closed when the stream breaks");
    let err = b.get(&Key::from("/x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");

    // It comes back on the same port (empty): the listener reconnects and new
    // watchers get Init, then events.
    let _server = TestServer::start_on(addr).expect("restart on the same port");
    let mut w = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut w = b.new_watcher(Watch::all("w2")).await.expect("watch");
            match tokio::time::timeout(Duration::from_secs(2), w.recv()).await {
                Ok(Some(e)) if e.op == OpType::Init => return w,
                _ => continue,
            }
        }
    })
    .await
    .expect("a new watcher gets Init after the reconnect");
    let k = Key::from("/after");
    b.put(Item::new(k.clone(), "v")).await.expect("put after restart");
    suite::expect_event(&mut w, OpType::Put, &k, suite::EVENT_TIMEOUT).await;
    b.close().await.expect("close");
}

fn config_without_server() -> FirestoreConfig {
    FirestoreConfig {
        collection_name: String::new(),
        project_id: None,
        credentials_path: None,
        endpoint: None,
        database_id: None,
        buffer_size: None,
        retry_period: None,
        purge_expired_documents_poll_interval: None,
        disable_expired_document_purge: true,
        limit_watch_query: false,
        audit: Default::default(),
    }
}
