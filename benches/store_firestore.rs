//! Firestore store throughput next to the raw speed of the same server with
//! the same client, in one run: the standard workload (benches/common) on a
//! fresh collection of the testcontainers Firestore server (the in-process
//! test server by default), then plain 500-write Commits, a plain key-ordered
//! query scan, single-document BatchGets and single-write Commits sent
//! through the same gcloud-sdk client stack (firestore-rs `FirestoreDb`,
//! auth middleware, tonic channel).
//!
//! Figures against the in-process test server measure this store's own
//! overhead over the protocol; they say nothing about real Firestore, whose
//! latency (milliseconds per RPC, over the network) dominates there.
//!
//! Run with `scripts/bench-backend.sh` or
//! `cargo bench --bench store_firestore -- --items 20000`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Row, key, value};
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::google_cloud_auth::credentials::anonymous;
use firestore::{FirestoreDb, FirestoreDbOptions};
use fs::structured_query as sq;
use teleport::backend::Backend;
use teleport::backend::firestore::{FirestoreBackend, layout};
use teleport::backend::registry::OpenOptions;
use teleport::config::FirestoreConfig;

struct Raw {
    db: FirestoreDb,
    database: String,
    parent: String,
    collection: String,
}

impl Raw {
    fn doc(&self, i: usize, v: &[u8]) -> fs::Write {
        let k = key(i);
        let fields = layout::fields(&k, v, None, &layout::new_revision(), std::time::SystemTime::now());
        fs::Write {
            operation: Some(fs::write::Operation::Update(fs::Document {
                name: format!("{}/{}/{}", self.parent, self.collection, layout::document_id(&k)),
                fields,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    async fn commit(&self, writes: Vec<fs::Write>) {
        let req = fs::CommitRequest { database: self.database.clone(), writes, ..Default::default() };
        self.db.client().get().commit(req).await.expect("raw commit");
    }

    /// 500-write Commits of every item: seconds.
    async fn put_batches(&self, n: usize) -> f64 {
        let v = value();
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let writes: Vec<_> = (i..(i + 500).min(n)).map(|j| self.doc(j, &v)).collect();
            i += writes.len();
            self.commit(writes).await;
        }
        t.elapsed().as_secs_f64()
    }

    /// Single-write Commits until `n` or `cap` seconds: (ops, seconds).
    async fn puts(&self, start: usize, n: usize, cap: f64) -> (usize, f64) {
        let v = value();
        let t = Instant::now();
        let mut done = 0;
        while done < n && t.elapsed().as_secs_f64() < cap {
            self.commit(vec![self.doc(start + done, &v)]).await;
            done += 1;
        }
        (done, t.elapsed().as_secs_f64())
    }

    /// A key-ordered query scan of every item in pages of 1000: seconds.
    async fn scan(&self, n: usize) -> f64 {
        let t = Instant::now();
        let mut after: Option<Vec<u8>> = None;
        let mut count = 0;
        loop {
            let lower = after.clone().unwrap_or_else(|| b"/bench/items/".to_vec());
            let op = if after.is_some() {
                sq::field_filter::Operator::GreaterThan
            } else {
                sq::field_filter::Operator::GreaterThanOrEqual
            };
            let q = fs::StructuredQuery {
                from: vec![sq::CollectionSelector { collection_id: self.collection.clone(), all_descendants: false }],
                r#where: Some(sq::Filter {
                    filter_type: Some(sq::filter::FilterType::FieldFilter(sq::FieldFilter {
                        field: Some(sq::FieldReference { field_path: "key".into() }),
                        op: op as i32,
                        value: Some(layout::bytes(&lower)),
                    })),
                }),
                order_by: vec![sq::Order {
                    field: Some(sq::FieldReference { field_path: "key".into() }),
                    direction: sq::Direction::Ascending as i32,
                }],
                limit: Some(1000),
                ..Default::default()
            };
            let req = fs::RunQueryRequest {
                parent: self.parent.clone(),
                query_type: Some(fs::run_query_request::QueryType::StructuredQuery(q)),
                ..Default::default()
            };
            let mut s = self.db.client().get().run_query(req).await.expect("raw query").into_inner();
            let mut page = 0;
            while let Some(r) = s.message().await.expect("raw query stream") {
                if let Some(d) = r.document {
                    if let Some(fs::value::ValueType::BytesValue(k)) =
                        d.fields.get("key").and_then(|v| v.value_type.clone())
                    {
                        after = Some(k);
                    }
                    page += 1;
                }
            }
            count += page;
            if page < 1000 {
                break;
            }
        }
        assert_eq!(count, n, "raw scan saw every item");
        t.elapsed().as_secs_f64()
    }

    /// Random single-document BatchGets: (ops, seconds).
    async fn gets(&self, n: usize, cap: f64) -> (usize, f64) {
        let t = Instant::now();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut done = 0;
        while done < n && t.elapsed().as_secs_f64() < cap {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % n as u64) as usize);
            let req = fs::BatchGetDocumentsRequest {
                database: self.database.clone(),
                documents: vec![format!("{}/{}/{}", self.parent, self.collection, layout::document_id(&k))],
                ..Default::default()
            };
            let mut s = self.db.client().get().batch_get_documents(req).await.expect("raw get").into_inner();
            while s.message().await.expect("raw get stream").is_some() {}
            done += 1;
        }
        (done, t.elapsed().as_secs_f64())
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = common::opts();
    let n = o.items;
    let server = testcontainers::firestore().await.expect("Firestore server");
    let label =
        if server.in_process { "the in-process Firestore test server" } else { "the official Firestore emulator" };
    let mut rows = Vec::new();

    // Raw: the same client stack, its own collection.
    let raw_collection = format!("bench-raw-{}", uuid::Uuid::new_v4());
    let options = FirestoreDbOptions::new(server.project.clone()).with_firebase_api_url(server.endpoint.clone());
    let db = FirestoreDb::with_options_auth(options, anonymous::Builder::new().build()).await.expect("raw client");
    let raw = Raw {
        db,
        database: server.database_path(),
        parent: format!("{}/documents", server.database_path()),
        collection: raw_collection,
    };
    let raw_label = format!("raw gcloud-sdk client on {label}");
    let secs = raw.put_batches(n).await;
    rows.push(Row::new(&raw_label, "Commit of 500 writes", n, secs, "no preconditions"));
    let put_batch_rate = n as f64 / secs;
    let secs = raw.scan(n).await;
    rows.push(Row::new(&raw_label, "query scan", n, secs, "key-ordered RunQuery, pages of 1000"));
    let scan_rate = n as f64 / secs;
    let (ops, secs) = raw.gets(n, o.seconds).await;
    rows.push(Row::new(&raw_label, "BatchGet of 1", ops, secs, "random keys, one task"));
    let get_rate = ops as f64 / secs;
    let (ops, secs) = raw.puts(n, n, o.seconds).await;
    rows.push(Row::new(&raw_label, "Commit of 1", ops, secs, "one task"));
    let put_rate = ops as f64 / secs;

    let cfg = FirestoreConfig {
        collection_name: format!("bench-{}", uuid::Uuid::new_v4()),
        project_id: Some(server.project.clone()),
        credentials_path: None,
        endpoint: Some(server.endpoint.clone()),
        database_id: None,
        buffer_size: None,
        retry_period: Some(Duration::from_secs(1)),
        purge_expired_documents_poll_interval: None,
        disable_expired_document_purge: false,
        limit_watch_query: false,
        audit: Default::default(),
    };
    let b: Arc<dyn Backend> =
        Arc::new(FirestoreBackend::open(&cfg, OpenOptions::create()).await.expect("open firestore"));
    let first = rows.len();
    common::workload(&format!("firestore on {label}"), b, &o, &mut rows).await;
    let store_rows = &mut rows[first..];
    common::ratio(store_rows, &["put_batch"], put_batch_rate, "raw 500-write Commits");
    common::ratio(store_rows, &["range scan"], scan_rate, "raw query scan");
    common::ratio(store_rows, &["get"], get_rate, "raw BatchGet");
    common::ratio(store_rows, &["put", "put x16"], put_rate, "raw single Commits");

    common::print("Backend throughput (Firestore)", &o, &rows);
}
