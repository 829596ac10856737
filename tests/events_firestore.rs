//! The Firestore audit event store against a real Firestore-protocol server
//! (the testcontainers Firestore fixture: the in-process test server, or
//! the official emulator with TELEPORT_TEST_PROVIDER=container): the whole
//! events compliance suite, then what only this store has: the raw
//! document layout, idempotent re-emits, trimming, paging through many
//! events that share a second, session queries, upstream documents, and
//! the retention purge.
#![cfg(feature = "firestore")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::tonic::transport::Channel;
use fs::firestore_client::FirestoreClient;
use fs::value::ValueType;
use futures::StreamExt;
use teleport::events::firestore::{FirestoreEvents, layout};
use teleport::events::suite::{self, SuiteOptions};
use teleport::events::{
    AuditLog, Event, EventsErrorKind, EventsUri, Order, SearchParams, TRIMMED_FIELD, registry, sort_events,
};
use testcontainers::Firestore;

fn collection() -> String {
    format!("events-{}", uuid::Uuid::new_v4())
}

fn uri(f: &Firestore, coll: &str, extra: &str) -> EventsUri {
    EventsUri::parse(&format!("firestore://{coll}?projectID={}&endpoint={}{extra}", f.project, f.endpoint)).unwrap()
}

async fn open(f: &Firestore, coll: &str) -> FirestoreEvents {
    FirestoreEvents::open(&uri(f, coll, "")).await.expect("open firestore events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_events_compliance() {
    let Some(f) = testcontainers::firestore_or_skip().await else { return };
    let started = std::time::Instant::now();
    suite::run_all(
        &|| {
            // A fresh collection per case, opened through the registry.
            let uri = uri(&f, &collection(), "").raw;
            async move { registry::open_one(&uri, "host-a").await }
        },
        &SuiteOptions::default(),
    )
    .await;
    eprintln!("firestore events compliance suite: {:?}", started.elapsed());
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

    async fn all(&mut self) -> Vec<fs::Document> {
        let q = fs::StructuredQuery {
            from: vec![fs::structured_query::CollectionSelector {
                collection_id: self.coll.clone(),
                all_descendants: false,
            }],
            ..Default::default()
        };
        let req = fs::RunQueryRequest {
            parent: format!("{}/documents", self.db),
            query_type: Some(fs::run_query_request::QueryType::StructuredQuery(q)),
            ..Default::default()
        };
        let mut s = self.c.run_query(req).await.expect("query").into_inner();
        let mut out = Vec::new();
        while let Some(r) = s.message().await.expect("answer") {
            out.extend(r.document);
        }
        out
    }

    async fn set(&mut self, id: &str, fields: Vec<(&str, fs::Value)>) {
        let doc = fs::Document {
            name: self.name(id),
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        };
        let w = fs::Write { operation: Some(fs::write::Operation::Update(doc)), ..Default::default() };
        let req = fs::CommitRequest { database: self.db.clone(), writes: vec![w], ..Default::default() };
        self.c.commit(req).await.expect("raw commit");
    }
}

fn field<'a>(d: &'a fs::Document, name: &str) -> &'a ValueType {
    d.fields.get(name).and_then(|v| v.value_type.as_ref()).unwrap_or_else(|| panic!("field {name} missing: {d:?}"))
}

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Every page of a search, checked for no duplicates.
async fn search_all(log: &FirestoreEvents, mut p: SearchParams) -> Vec<Event> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        let page = log.search(&p).await.expect("search");
        assert!(page.events.len() <= p.limit);
        for e in &page.events {
            assert!(seen.insert(e.uid().to_string()), "duplicate {} across pages", e.uid());
        }
        out.extend(page.events);
        match page.next {
            Some(c) => p.cursor = Some(c),
            None => return out,
        }
    }
    panic!("search never ended");
}

#[tokio::test]
async fn documents_use_upstreams_layout() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = open(&f, &coll).await;
    let t = at(1_700_000_000, 123_456_789);
    let e = Event::at("session.start", "T2000I", t).with("sid", "s-1").with("ei", 7).with("user", "alice");
    log.emit(e.clone()).await.expect("emit");

    let mut raw = Raw::new(&f, &coll).await;
    let docs = raw.all().await;
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc.name, raw.name(e.uid()), "a uuid uid names the document");
    assert_eq!(doc.name, log.document_name(e.uid()));
    assert_eq!(field(doc, "sessionID"), &ValueType::StringValue("s-1".into()));
    assert_eq!(field(doc, "eventIndex"), &ValueType::IntegerValue(7));
    assert_eq!(field(doc, "eventType"), &ValueType::StringValue("session.start".into()));
    assert_eq!(field(doc, "createdAt"), &ValueType::IntegerValue(1_700_000_000));
    assert_eq!(field(doc, "createdAtNanos"), &ValueType::IntegerValue(123_456_789));
    assert_eq!(field(doc, "eventNamespace"), &ValueType::StringValue("default".into()));
    let ValueType::StringValue(json) = field(doc, "fields") else { panic!("fields is a string") };
    let back: Event = serde_json::from_str(json).expect("fields holds the event JSON");
    assert_eq!(back, e);
    assert_eq!(doc.fields.len(), 7);

    // A uid that is not a plain id is hashed into one.
    let odd = Event::at("user.login", "T1000I", t).with("uid", "a/b c");
    log.emit(odd.clone()).await.expect("emit odd uid");
    assert!(log.document_name(odd.uid()).ends_with(&layout::document_id("a/b c")));
    let all = search_all(&log, SearchParams::range(at(1_699_999_999, 0), at(1_700_000_001, 0))).await;
    assert_eq!(all.len(), 2);
    log.close().await.expect("close");
    assert!(log.emit(Event::new("x", "y")).await.is_err(), "a closed store refuses writes");
}

#[tokio::test]
async fn re_emitting_stores_once() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = open(&f, &coll).await;
    let e = Event::at("user.login", "T1000I", at(1_700_000_100, 5)).with("user", "bob");
    log.emit(e.clone()).await.expect("emit");
    log.emit(e.clone()).await.expect("re-emit is a success");
    // Even a changed copy with the same uid does not replace the first.
    log.emit(e.clone().with("user", "mallory")).await.expect("re-emit changed");
    let got = search_all(&log, SearchParams::range(at(1_700_000_000, 0), at(1_700_001_000, 0))).await;
    assert_eq!(got, vec![e]);
    assert_eq!(Raw::new(&f, &coll).await.all().await.len(), 1);
    // A second handle on the same collection sees the same.
    let other = open(&f, &coll).await;
    let again = Event::at("user.login", "T1000I", at(1_700_000_100, 5)).with("uid", got[0].uid());
    other.emit(again).await.expect("import");
    assert_eq!(Raw::new(&f, &coll).await.all().await.len(), 1);
}

#[tokio::test]
async fn oversized_events_are_trimmed() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = open(&f, &coll).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let e = Event::at("exec", "T3002I", at(1_700_000_200, 0)).with("command", big).with("user", "carol");
    log.emit(e.clone()).await.expect("a 2 MiB event is trimmed, not rejected");
    let got = search_all(&log, SearchParams::range(at(1_700_000_000, 0), at(1_700_001_000, 0))).await;
    assert_eq!(got.len(), 1);
    let t = &got[0];
    assert_eq!(t.uid(), e.uid());
    assert_eq!(t.0.get(TRIMMED_FIELD), Some(&serde_json::Value::Bool(true)));
    assert_eq!(t.str("user"), Some("carol"));
    assert!(t.size() <= log.max_event_size(), "{} > {}", t.size(), log.max_event_size());
    assert!(t.str("command").is_some_and(|c| c.len() > 512 * 1024), "trimming keeps most of what fits");

    // A huge session id leaves less room for the rest, and still fits.
    let sid = "s".repeat(300 * 1024);
    let e2 =
        Event::at("exec", "T3002I", at(1_700_000_201, 0)).with("sid", sid.clone()).with("command", "y".repeat(1 << 20));
    log.emit(e2).await.expect("emit with a huge sid");
    assert_eq!(log.session_events(&sid).await.expect("session").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_thousands_sharing_seconds() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = Arc::new(open(&f, &coll).await);
    // 3000 events over three seconds; many share exact times, and ei
    // and uid break the ties.
    let base = 1_700_000_300;
    let events: Vec<Event> = (0..3000u32)
        .map(|i| {
            let t = at(base + u64::from(i % 3), (i % 7) * 100_000_000);
            let ty = if i % 5 == 0 { "user.login" } else { "exec" };
            Event::at(ty, "X", t).with("ei", i64::from(i % 4))
        })
        .collect();
    futures::stream::iter(events.clone())
        .map(|e| {
            let log = log.clone();
            async move { log.emit(e).await.expect("emit") }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;

    let mut want = events.clone();
    sort_events(&mut want, Order::Ascending);
    let range = SearchParams::range(at(base, 0), at(base + 3, 0));
    for limit in [1000, 97] {
        let got = search_all(&log, SearchParams { limit, ..range.clone() }).await;
        assert_eq!(got.len(), 3000, "limit {limit}");
        assert!(got == want, "ascending pages of {limit} are in order, with no gaps");
    }
    let mut desc = want.clone();
    desc.reverse();
    let got = search_all(&log, SearchParams { limit: 113, order: Order::Descending, ..range.clone() }).await;
    assert!(got == desc, "descending pages are in reverse order");

    // Types are filtered, across pages.
    let logins: Vec<Event> = want.iter().filter(|e| e.event_type() == "user.login").cloned().collect();
    let got =
        search_all(&log, SearchParams { limit: 50, event_types: vec!["user.login".into()], ..range.clone() }).await;
    assert!(got == logins, "{} logins, got {}", logins.len(), got.len());

    // Bounds are exact to the nanosecond: from inclusive, to exclusive.
    let (from, to) = (at(base + 1, 200_000_000), at(base + 2, 300_000_000));
    let inside: Vec<Event> = want.iter().filter(|e| e.time().is_some_and(|t| t >= from && t < to)).cloned().collect();
    assert!(!inside.is_empty());
    let got = search_all(&log, SearchParams { limit: 64, ..SearchParams::range(from, to) }).await;
    assert!(got == inside, "want {}, got {}", inside.len(), got.len());
    // An empty range and a bad cursor.
    assert!(log.search(&SearchParams::range(to, from)).await.expect("empty").events.is_empty());
    let bad = log.search(&SearchParams { cursor: Some("garbage".into()), ..range.clone() }).await.unwrap_err();
    assert_eq!(bad.kind, EventsErrorKind::BadParameter);
}

#[tokio::test]
async fn session_events_by_index() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = open(&f, &coll).await;
    let t = at(1_700_000_400, 0);
    for ei in [3, 0, 2, 1] {
        let e =
            Event::at("session.data", "T2006I", t + Duration::from_secs(10 - ei)).with("sid", "sess-a").with("ei", ei);
        log.emit(e).await.expect("emit");
    }
    log.emit(Event::at("session.start", "T2000I", t).with("sid", "sess-b")).await.expect("emit b");
    log.emit(Event::at("user.login", "T1000I", t)).await.expect("emit no session");
    let got = log.session_events("sess-a").await.expect("session a");
    assert_eq!(got.iter().map(Event::index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert!(got.iter().all(|e| e.sid() == Some("sess-a")));
    assert_eq!(log.session_events("sess-b").await.expect("session b").len(), 1);
    assert!(log.session_events("none").await.expect("unknown session").is_empty());
}

#[tokio::test]
async fn reads_upstream_documents_in_session_queries_and_searches() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log = open(&f, &coll).await;
    // As upstream writes it: a random id, no createdAtNanos.
    let e = Event::at("session.start", "T2000I", at(1_700_000_500, 0)).with("sid", "up-1");
    let mut raw = Raw::new(&f, &coll).await;
    raw.set(
        &uuid::Uuid::new_v4().to_string(),
        vec![
            ("sessionID", layout::string("up-1")),
            ("eventIndex", layout::integer(0)),
            ("eventType", layout::string("session.start")),
            ("createdAt", layout::integer(1_700_000_500)),
            ("fields", layout::string(&e.to_json())),
            ("eventNamespace", layout::string("default")),
        ],
    )
    .await;
    assert_eq!(log.session_events("up-1").await.expect("session"), vec![e.clone()]);
    // Searches find upstream's documents too (an export off an upstream
    // log must not silently miss them), mixed with this store's own.
    let ours = Event::at("user.login", "T1000I", at(1_700_000_500, 1));
    log.emit(ours.clone()).await.expect("emit");
    let range = SearchParams::range(at(1_700_000_000, 0), at(1_700_001_000, 0));
    assert_eq!(search_all(&log, range).await, vec![e, ours]);
}

#[tokio::test]
async fn purge_deletes_events_past_retention() {
    let f = testcontainers::firestore().await.expect("server");
    let coll = collection();
    let log =
        FirestoreEvents::open(&uri(&f, &coll, "&eventRetentionPeriod=1h&purgeInterval=100ms")).await.expect("open");
    let now = SystemTime::now();
    let old = Event::at("user.login", "T1000I", now - Duration::from_secs(7200));
    let fresh = Event::at("user.login", "T1000I", now - Duration::from_secs(60));
    log.emit(old.clone()).await.expect("emit old");
    log.emit(fresh.clone()).await.expect("emit fresh");
    let range = SearchParams::range(now - Duration::from_secs(3 * 3600), now + Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = search_all(&log, range.clone()).await;
        if got == vec![fresh.clone()] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the purge loop did not delete the old event: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.close().await.expect("close");

    // Disabled: nothing goes; a manual pass still works.
    let coll = collection();
    let log = FirestoreEvents::open(&uri(
        &f,
        &coll,
        "&eventRetentionPeriod=1h&purgeInterval=10ms&disableExpiredDocumentPurge=true",
    ))
    .await
    .expect("open");
    log.emit(old.clone()).await.expect("emit old");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(search_all(&log, range.clone()).await.len(), 1, "purge disabled");
    assert_eq!(log.purge_expired(SystemTime::now()).await.expect("purge"), 1);
    assert!(search_all(&log, range.clone()).await.is_empty());
}

#[tokio::test]
async fn open_needs_a_project() {
    let err =
        FirestoreEvents::open(&EventsUri::parse("firestore://events?endpoint=localhost:1").unwrap()).await.unwrap_err();
    assert_eq!(err.kind, EventsErrorKind::BadParameter);
    assert!(err.message.contains("firestore://events") && err.message.contains("projectID"), "{err}");
}
