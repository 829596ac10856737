//! Firestore test server, through a raw gRPC client (gcloud-sdk's
//! generated FirestoreClient on a plain tonic channel): preconditions and
//! atomic commits, an ABORTED transaction conflict, query filters, order,
//! limits and cursors, a listen stream seeing another client's commits, and
//! UNIMPLEMENTED for what the server does not serve.

use std::collections::HashMap;
use std::time::Duration;

use fs::firestore_client::FirestoreClient;
use fs::structured_query::{self as sq, field_filter::Operator as Op};
use fs::value::ValueType;
use gcloud_sdk::google::firestore::v1 as fs;
use testcontainers::{Firestore, Fixture};
use tonic::Code;
use tonic::transport::Channel;

use futures::StreamExt;

struct Client {
    c: FirestoreClient<Channel>,
    db: String,
    coll: String,
}

fn bytes(b: &[u8]) -> fs::Value {
    fs::Value { value_type: Some(ValueType::BytesValue(b.to_vec())) }
}

fn string(s: &str) -> fs::Value {
    fs::Value { value_type: Some(ValueType::StringValue(s.to_string())) }
}

fn int(i: i64) -> fs::Value {
    fs::Value { value_type: Some(ValueType::IntegerValue(i)) }
}

fn filter(field: &str, op: Op, v: fs::Value) -> sq::Filter {
    sq::Filter {
        filter_type: Some(sq::filter::FilterType::FieldFilter(sq::FieldFilter {
            field: Some(sq::FieldReference { field_path: field.into() }),
            op: op as i32,
            value: Some(v),
        })),
    }
}

fn and(filters: Vec<sq::Filter>) -> sq::Filter {
    sq::Filter {
        filter_type: Some(sq::filter::FilterType::CompositeFilter(sq::CompositeFilter {
            op: sq::composite_filter::Operator::And as i32,
            filters,
        })),
    }
}

fn exists(b: bool) -> Option<fs::Precondition> {
    Some(fs::Precondition { condition_type: Some(fs::precondition::ConditionType::Exists(b)) })
}

fn at(t: prost_types::Timestamp) -> Option<fs::Precondition> {
    Some(fs::Precondition { condition_type: Some(fs::precondition::ConditionType::UpdateTime(t)) })
}

impl Client {
    async fn connect(f: &Firestore) -> Client {
        let channel = Channel::from_shared(f.endpoint.clone()).expect("endpoint").connect().await.expect("connect");
        Client { c: FirestoreClient::new(channel), db: f.database_path(), coll: format!("c{}", std::process::id()) }
    }

    fn name(&self, id: &str) -> String {
        format!("{}/documents/{}/{id}", self.db, self.coll)
    }

    fn put(&self, id: &str, fields: &[(&str, fs::Value)], pre: Option<fs::Precondition>) -> fs::Write {
        let fields: HashMap<String, fs::Value> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        fs::Write {
            operation: Some(fs::write::Operation::Update(fs::Document {
                name: self.name(id),
                fields,
                ..Default::default()
            })),
            current_document: pre,
            ..Default::default()
        }
    }

    fn delete(&self, id: &str, pre: Option<fs::Precondition>) -> fs::Write {
        fs::Write {
            operation: Some(fs::write::Operation::Delete(self.name(id))),
            current_document: pre,
            ..Default::default()
        }
    }

    async fn commit(&mut self, writes: Vec<fs::Write>, tx: Vec<u8>) -> Result<fs::CommitResponse, tonic::Status> {
        let req = fs::CommitRequest { database: self.db.clone(), writes, transaction: tx, request_options: None };
        self.c.commit(req).await.map(|r| r.into_inner())
    }

    async fn get(&mut self, id: &str, tx: Option<Vec<u8>>) -> Option<fs::Document> {
        let req = fs::BatchGetDocumentsRequest {
            database: self.db.clone(),
            documents: vec![self.name(id)],
            consistency_selector: tx.map(fs::batch_get_documents_request::ConsistencySelector::Transaction),
            ..Default::default()
        };
        let mut s = self.c.batch_get_documents(req).await.expect("batch get").into_inner();
        let r = s.message().await.expect("batch get answer").expect("one answer");
        assert!(r.read_time.is_some());
        match r.result.expect("found or missing") {
            fs::batch_get_documents_response::Result::Found(d) => Some(d),
            fs::batch_get_documents_response::Result::Missing(_) => None,
        }
    }

    async fn query(&mut self, q: fs::StructuredQuery) -> Result<Vec<String>, tonic::Status> {
        let req = fs::RunQueryRequest {
            parent: format!("{}/documents", self.db),
            query_type: Some(fs::run_query_request::QueryType::StructuredQuery(q)),
            ..Default::default()
        };
        let mut s = self.c.run_query(req).await?.into_inner();
        let mut ids = Vec::new();
        while let Some(r) = s.message().await? {
            if let Some(d) = r.document {
                ids.push(d.name.rsplit('/').next().unwrap_or_default().to_string());
            }
        }
        Ok(ids)
    }

    fn from(&self) -> Vec<sq::CollectionSelector> {
        vec![sq::CollectionSelector { collection_id: self.coll.clone(), all_descendants: false }]
    }
}

#[tokio::test]
async fn preconditions_and_atomic_commits() {
    let f = testcontainers::firestore().await.expect("the Firestore test server always starts");
    assert!(f.in_process);
    let mut c = Client::connect(&f).await;

    let r = c.commit(vec![c.put("a", &[("v", int(1))], exists(false))], vec![]).await.expect("create");
    let t1 = r.write_results[0].update_time.expect("update time");
    let err = c.commit(vec![c.put("a", &[("v", int(2))], exists(false))], vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");
    let err = c.commit(vec![c.put("missing", &[("v", int(2))], exists(true))], vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // update_time: the current one works once; after that it is stale.
    let r = c.commit(vec![c.put("a", &[("v", int(3))], at(t1))], vec![]).await.expect("update at t1");
    let t2 = r.write_results[0].update_time.expect("update time");
    assert!((t2.seconds, t2.nanos) > (t1.seconds, t1.nanos));
    let err = c.commit(vec![c.put("a", &[("v", int(4))], at(t1))], vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    let err = c.commit(vec![c.delete("a", at(t1))], vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    // All or nothing: the second write's precondition fails, so "b" is not written.
    let err = c
        .commit(vec![c.put("b", &[("v", int(1))], None), c.put("a", &[("v", int(5))], exists(false))], vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(c.get("b", None).await.is_none(), "a failed commit wrote nothing");

    // A write that changes nothing keeps the update time.
    let r = c.commit(vec![c.put("a", &[("v", int(3))], None)], vec![]).await.expect("same fields");
    assert_eq!(r.write_results[0].update_time, Some(t2));
    let doc = c.get("a", None).await.expect("a exists");
    assert_eq!(doc.update_time, Some(t2));
    assert_eq!(doc.fields["v"], int(3));

    // Deleting a missing document without a precondition succeeds.
    c.commit(vec![c.delete("never", None)], vec![]).await.expect("delete missing");
    // Limits: more than 500 writes per commit is refused.
    let many: Vec<_> = (0..501).map(|i| c.put(&format!("m{i}"), &[("v", int(i))], None)).collect();
    let err = c.commit(many, vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let huge = c.put("huge", &[("v", bytes(&vec![7u8; 1024 * 1024]))], None);
    let err = c.commit(vec![huge], vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("maximum size"), "{err}");
}

#[tokio::test]
async fn a_transaction_whose_read_changed_is_aborted() {
    let f = testcontainers::firestore().await.expect("server");
    let mut c = Client::connect(&f).await;
    let mut other = Client::connect(&f).await;
    other.coll = c.coll.clone();
    c.commit(vec![c.put("counter", &[("n", int(0))], None)], vec![]).await.expect("seed");

    let begin = |db: String| fs::BeginTransactionRequest { database: db, ..Default::default() };
    let tx = c.c.begin_transaction(begin(c.db.clone())).await.expect("begin").into_inner().transaction;
    assert_eq!(c.get("counter", Some(tx.clone())).await.expect("read in tx").fields["n"], int(0));
    // Someone else changes it before the transaction commits.
    other.commit(vec![other.put("counter", &[("n", int(10))], None)], vec![]).await.expect("concurrent write");
    let err = c.commit(vec![c.put("counter", &[("n", int(1))], None)], tx.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err}");
    assert_eq!(c.get("counter", None).await.expect("counter").fields["n"], int(10), "the aborted write is not applied");
    // The transaction is over.
    let err = c.commit(vec![], tx).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // Unchanged reads commit; a rolled-back transaction cannot commit.
    let tx = c.c.begin_transaction(begin(c.db.clone())).await.expect("begin").into_inner().transaction;
    c.get("counter", Some(tx.clone())).await.expect("read");
    c.commit(vec![c.put("counter", &[("n", int(11))], None)], tx).await.expect("commit");
    let tx = c.c.begin_transaction(begin(c.db.clone())).await.expect("begin").into_inner().transaction;
    c.c.rollback(fs::RollbackRequest { database: c.db.clone(), transaction: tx.clone(), request_options: None })
        .await
        .expect("rollback");
    assert_eq!(c.commit(vec![], tx).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn queries_filter_order_limit_and_respect_types() {
    let f = testcontainers::firestore().await.expect("server");
    let mut c = Client::connect(&f).await;
    let mut writes = Vec::new();
    for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let exp = if i % 2 == 0 { 0 } else { 100 + i as i64 };
        writes.push(c.put(k, &[("key", bytes(k.as_bytes())), ("expires", int(exp))], None));
    }
    // A legacy document whose key is a string: never matched by a bytes range.
    writes.push(c.put("legacy", &[("key", string("c-legacy")), ("expires", int(0))], None));
    writes.push(c.put("nokey", &[("expires", int(5))], None));
    c.commit(writes, vec![]).await.expect("seed");

    let range = |lo: &[u8], hi: &[u8]| {
        and(vec![filter("key", Op::GreaterThanOrEqual, bytes(lo)), filter("key", Op::LessThan, bytes(hi))])
    };
    let order = |desc: bool| {
        vec![sq::Order {
            field: Some(sq::FieldReference { field_path: "key".into() }),
            direction: if desc { sq::Direction::Descending } else { sq::Direction::Ascending } as i32,
        }]
    };
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(range(b"b", b"e")),
        order_by: order(false),
        ..Default::default()
    };
    assert_eq!(c.query(q).await.expect("range"), ["b", "c", "d"]);
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(range(b"b", b"e")),
        order_by: order(true),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(c.query(q).await.expect("descending, limit"), ["d", "c"]);
    // The string key is only seen by a string range.
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(filter("key", Op::GreaterThanOrEqual, string(""))),
        ..Default::default()
    };
    assert_eq!(c.query(q).await.expect("string range"), ["legacy"]);
    // != excludes documents without the field; expires range excludes 0.
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(filter("key", Op::NotEqual, string(""))),
        ..Default::default()
    };
    assert_eq!(c.query(q).await.expect("!=").len(), 6);
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(and(vec![
            filter("expires", Op::GreaterThan, int(0)),
            filter("expires", Op::LessThanOrEqual, int(103)),
        ])),
        ..Default::default()
    };
    // Implicitly ordered by the inequality field.
    assert_eq!(c.query(q).await.expect("expiry range"), ["nokey", "b", "d"]);
    // A start cursor after "b" on the key order.
    let q = fs::StructuredQuery {
        from: c.from(),
        r#where: Some(range(b"a", b"z")),
        order_by: order(false),
        start_at: Some(fs::Cursor { values: vec![bytes(b"b")], before: false }),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(c.query(q).await.expect("cursor"), ["c", "d"]);
}

#[tokio::test]
async fn a_listener_sees_another_clients_commits_in_order() {
    use fs::listen_response::ResponseType;
    use fs::target_change::TargetChangeType;
    let f = testcontainers::firestore().await.expect("server");
    let mut writer = Client::connect(&f).await;
    let mut reader = Client::connect(&f).await;
    reader.coll = writer.coll.clone();
    writer.commit(vec![writer.put("old", &[("key", bytes(b"/old"))], None)], vec![]).await.expect("seed");

    let target = fs::Target {
        target_id: 7,
        target_type: Some(fs::target::TargetType::Query(fs::target::QueryTarget {
            parent: format!("{}/documents", reader.db),
            query_type: Some(fs::target::query_target::QueryType::StructuredQuery(fs::StructuredQuery {
                from: reader.from(),
                r#where: Some(filter("key", Op::NotEqual, string(""))),
                ..Default::default()
            })),
        })),
        ..Default::default()
    };
    let add = fs::ListenRequest {
        database: reader.db.clone(),
        target_change: Some(fs::listen_request::TargetChange::AddTarget(target)),
        ..Default::default()
    };
    let requests = futures::stream::iter([add]).chain(futures::stream::pending());
    let mut stream = reader.c.listen(requests).await.expect("listen").into_inner();
    let mut next = async || -> ResponseType {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("in time");
        r.expect("stream ok").expect("not ended").response_type.expect("a response")
    };
    let kind = |r: &ResponseType| match r {
        ResponseType::TargetChange(t) => {
            format!("{:?}{:?}", TargetChangeType::try_from(t.target_change_type).unwrap(), t.target_ids)
        }
        ResponseType::DocumentChange(d) => {
            format!("change {}", d.document.as_ref().unwrap().name.rsplit('/').next().unwrap())
        }
        ResponseType::DocumentDelete(d) => format!("delete {}", d.document.rsplit('/').next().unwrap()),
        ResponseType::DocumentRemove(d) => format!("remove {}", d.document.rsplit('/').next().unwrap()),
        ResponseType::Filter(_) => "filter".into(),
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(kind(&next().await));
    }
    assert_eq!(seen, ["Add[7]", "change old", "Current[7]", "NoChange[]"]);

    writer.commit(vec![writer.put("new", &[("key", bytes(b"/new"))], None)], vec![]).await.expect("put");
    writer.commit(vec![writer.delete("old", None)], vec![]).await.expect("delete");
    // Stops matching (the key field becomes ""): a removal.
    writer.commit(vec![writer.put("new", &[("key", string(""))], None)], vec![]).await.expect("unmatch");
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(kind(&next().await));
    }
    assert_eq!(seen, ["change new", "NoChange[]", "delete old", "NoChange[]", "remove new", "NoChange[]"]);
}

#[tokio::test]
async fn unserved_methods_are_unimplemented_and_drop_stops_the_server() {
    let f = testcontainers::firestore().await.expect("server");
    let mut c = Client::connect(&f).await;
    let err = c.c.get_document(fs::GetDocumentRequest { name: c.name("x"), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    let vars = f.exports();
    assert!(vars.iter().any(|(k, v)| k == "TELEPORT_TEST_FIRESTORE_EMULATOR_HOST" && *v == f.emulator_host()));
    assert_eq!(f.pid(), None);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], f.port));
    drop(c);
    drop(f);
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "something still listens on {addr} after drop"
    );
}
