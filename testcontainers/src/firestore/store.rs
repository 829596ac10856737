//! The test server's state: documents with create and update times, one
//! clock, transactions, and the listeners that hear every commit. Every RPC
//! handler takes the one lock, so each commit, batch read and query sees a
//! single consistent state, and commits reach listeners in commit order.
//!
//! Rules kept as real Firestore documents them:
//! - commit times strictly increase and are microsecond-aligned; a read time
//!   covers every commit before it and none after;
//! - all writes of a commit apply together or not at all; each write's
//!   precondition is checked in order (`exists: false` on a present document
//!   is ALREADY_EXISTS, `exists: true` on a missing one NOT_FOUND, an
//!   `update_time` that differs, or names a missing document,
//!   FAILED_PRECONDITION);
//! - a write that leaves a document's fields as they were keeps its
//!   update time and is not a change for listeners;
//! - a read-write transaction fails at commit with ABORTED if a document it
//!   read (or the result of a query it ran) changed since: optimistic
//!   concurrency, where real Firestore locks; both serialize the same way.
//!   Unknown, finished or idle (60 s) transactions are INVALID_ARGUMENT;
//! - limits: 500 writes and 10 MiB per commit, 1 MiB per document (counted
//!   as Firestore's storage-size rules count it), 1,500-byte document ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fs::value::ValueType;
use gcloud_sdk::google::firestore::v1 as fs;
use prost::Message;
use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

use super::query::{self, DocView};

/// Most writes in one commit (<https://firebase.google.com/docs/firestore/quotas#writes_and_transactions>).
pub const MAX_WRITES_PER_COMMIT: usize = 500;
/// Largest request (<https://firebase.google.com/docs/firestore/quotas#limits>: "Maximum API request size").
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Largest document, by the storage-size rules
/// (<https://firebase.google.com/docs/firestore/storage-size>).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Longest document or collection id (<https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields>).
pub const MAX_ID_BYTES: usize = 1500;
/// A transaction unused this long expires (real Firestore: 60 s idle).
pub const TRANSACTION_IDLE: Duration = Duration::from_secs(60);

/// Microseconds since the Unix epoch.
pub(crate) type Micros = i64;

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredDoc {
    pub fields: HashMap<String, fs::Value>,
    pub create_time: Micros,
    pub update_time: Micros,
}

/// A document with its name, as queries see it.
pub(crate) struct Named<'a>(pub &'a str, pub &'a StoredDoc);

impl<'a> DocView<'a> for Named<'a> {
    fn name(&self) -> &'a str {
        self.0
    }
    fn fields(&self) -> &'a HashMap<String, fs::Value> {
        &self.1.fields
    }
}

/// One document changed by a commit.
#[derive(Debug)]
pub(crate) struct Change {
    pub name: String,
    pub before: Option<Arc<StoredDoc>>,
    pub after: Option<Arc<StoredDoc>>,
}

/// What one commit changed, sent to every listener.
#[derive(Debug)]
pub(crate) struct Batch {
    pub seq: u64,
    pub time: Micros,
    pub changes: Vec<Change>,
}

/// A query result: documents in order.
pub(crate) type Docs = Vec<(String, Arc<StoredDoc>)>;

struct RecordedQuery {
    parent: String,
    query: fs::StructuredQuery,
    result: Vec<(String, Micros)>,
}

struct Tx {
    database: String,
    read_write: bool,
    /// Document name -> update time when first read (None: missing).
    reads: HashMap<String, Option<Micros>>,
    queries: Vec<RecordedQuery>,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    docs: BTreeMap<String, Arc<StoredDoc>>,
    clock: Micros,
    seq: u64,
    txs: HashMap<Vec<u8>, Tx>,
    next_tx: u64,
    listeners: HashMap<u64, UnboundedSender<Arc<Batch>>>,
    next_listener: u64,
}

impl State {
    fn system_micros() -> Micros {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as Micros).unwrap_or(0)
    }

    /// A read time: at or after every commit so far.
    fn read_time(&mut self) -> Micros {
        self.clock = self.clock.max(Self::system_micros());
        self.clock
    }

    /// A commit time: after every commit and read time so far.
    fn commit_time(&mut self) -> Micros {
        self.clock = (self.clock + 1).max(Self::system_micros());
        self.clock
    }

    fn version(&self, name: &str) -> Option<Micros> {
        self.docs.get(name).map(|d| d.update_time)
    }

    fn tx(&mut self, database: &str, id: &[u8]) -> Result<&mut Tx, Status> {
        let tx = self.txs.get_mut(id).ok_or_else(|| {
            Status::invalid_argument("transaction has expired or is invalid (unknown transaction id)")
        })?;
        if tx.database != database {
            return Err(Status::invalid_argument("transaction belongs to another database"));
        }
        tx.last_used = Instant::now();
        Ok(tx)
    }

    fn begin(&mut self, database: &str, options: Option<&fs::TransactionOptions>) -> Result<Vec<u8>, Status> {
        use fs::transaction_options::Mode;
        let read_write = match options.and_then(|o| o.mode.as_ref()) {
            None | Some(Mode::ReadWrite(_)) => true,
            Some(Mode::ReadOnly(ro)) => {
                if ro.consistency_selector.is_some() {
                    return Err(Status::unimplemented("read-only transactions at a read_time are not supported"));
                }
                false
            }
        };
        let now = Instant::now();
        self.txs.retain(|_, t| now.duration_since(t.last_used) < TRANSACTION_IDLE);
        self.next_tx += 1;
        let id = format!("tx{:016x}", self.next_tx).into_bytes();
        self.txs.insert(
            id.clone(),
            Tx {
                database: database.to_string(),
                read_write,
                reads: HashMap::new(),
                queries: Vec::new(),
                last_used: now,
            },
        );
        Ok(id)
    }

    fn query(&self, parent: &str, q: &fs::StructuredQuery) -> Result<Docs, Status> {
        run_query(&self.docs, parent, q)
    }

    fn broadcast(&mut self, batch: Batch) {
        let batch = Arc::new(batch);
        self.listeners.retain(|_, tx| tx.send(batch.clone()).is_ok());
    }
}

/// The whole server state behind one lock.
#[derive(Default)]
pub(crate) struct Store {
    state: Mutex<State>,
}

/// Converts a microsecond time to a protobuf timestamp.
pub(crate) fn timestamp(t: Micros) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.div_euclid(1_000_000), nanos: (t.rem_euclid(1_000_000) * 1000) as i32 }
}

fn micros(t: &prost_types::Timestamp) -> Option<Micros> {
    if t.nanos % 1000 != 0 {
        return None;
    }
    Some(t.seconds * 1_000_000 + i64::from(t.nanos / 1000))
}

/// The API form of a stored document.
pub(crate) fn document(name: &str, d: &StoredDoc, fields: HashMap<String, fs::Value>) -> fs::Document {
    fs::Document {
        name: name.to_string(),
        fields,
        create_time: Some(timestamp(d.create_time)),
        update_time: Some(timestamp(d.update_time)),
    }
}

/// Checks `projects/{p}/databases/{d}`.
pub(crate) fn check_database(database: &str) -> Result<(), Status> {
    let parts: Vec<&str> = database.split('/').collect();
    if parts.len() == 4
        && parts[0] == "projects"
        && parts[2] == "databases"
        && !parts[1].is_empty()
        && !parts[3].is_empty()
    {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid database name {database:?}; expected projects/{{project}}/databases/{{database}}"
        )))
    }
}

fn check_id(id: &str, what: &str) -> Result<(), Status> {
    let bad = id.is_empty()
        || id.len() > MAX_ID_BYTES
        || id == "."
        || id == ".."
        || (id.len() >= 4 && id.starts_with("__") && id.ends_with("__"));
    if bad {
        return Err(Status::invalid_argument(format!(
            "{what} id {:?} is invalid: ids are 1 to {MAX_ID_BYTES} bytes, not '.' or '..', not __*__",
            truncate(id)
        )));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Checks that `name` is a document under `database`: an even number of
/// path segments (collection/id pairs) after `documents/`.
pub(crate) fn check_document_name(database: &str, name: &str) -> Result<(), Status> {
    let rest = name.strip_prefix(database).and_then(|r| r.strip_prefix("/documents/")).ok_or_else(|| {
        Status::invalid_argument(format!("document {:?} is not in database {database}", truncate(name)))
    })?;
    let segs: Vec<&str> = rest.split('/').collect();
    if !segs.len().is_multiple_of(2) {
        return Err(Status::invalid_argument(format!("{:?} names a collection, not a document", truncate(name))));
    }
    for pair in segs.chunks(2) {
        check_id(pair[0], "collection")?;
        check_id(pair[1], "document")?;
    }
    Ok(())
}

/// The database part of a document or parent name.
pub(crate) fn database_of(name: &str) -> Result<String, Status> {
    let parts: Vec<&str> = name.splitn(5, '/').collect();
    if parts.len() < 4 {
        return Err(Status::invalid_argument(format!("invalid resource name {:?}", truncate(name))));
    }
    let db = parts[..4].join("/");
    check_database(&db)?;
    Ok(db)
}

fn check_value(v: &fs::Value, in_array: bool) -> Result<(), Status> {
    match &v.value_type {
        None => Err(Status::invalid_argument("a field value is empty")),
        Some(ValueType::ArrayValue(a)) => {
            if in_array {
                return Err(Status::invalid_argument("an array cannot directly contain another array"));
            }
            a.values.iter().try_for_each(|e| check_value(e, true))
        }
        Some(ValueType::MapValue(m)) => m.fields.values().try_for_each(|e| check_value(e, false)),
        Some(
            ValueType::FieldReferenceValue(_)
            | ValueType::VariableReferenceValue(_)
            | ValueType::FunctionValue(_)
            | ValueType::PipelineValue(_),
        ) => Err(Status::invalid_argument("pipeline-only values cannot be stored")),
        Some(_) => Ok(()),
    }
}

fn name_size(name: &str) -> usize {
    let rest = name.split_once("/documents/").map(|(_, r)| r).unwrap_or(name);
    rest.split('/').map(|s| s.len() + 1).sum::<usize>() + 16
}

fn value_size(v: &fs::Value) -> usize {
    match &v.value_type {
        None | Some(ValueType::NullValue(_)) | Some(ValueType::BooleanValue(_)) => 1,
        Some(ValueType::IntegerValue(_) | ValueType::DoubleValue(_) | ValueType::TimestampValue(_)) => 8,
        Some(ValueType::StringValue(s)) => s.len() + 1,
        Some(ValueType::BytesValue(b)) => b.len(),
        Some(ValueType::ReferenceValue(r)) => name_size(r),
        Some(ValueType::GeoPointValue(_)) => 16,
        Some(ValueType::ArrayValue(a)) => a.values.iter().map(value_size).sum(),
        Some(ValueType::MapValue(m)) => fields_size(&m.fields),
        Some(_) => 0,
    }
}

fn fields_size(fields: &HashMap<String, fs::Value>) -> usize {
    fields.iter().map(|(k, v)| k.len() + 1 + value_size(v)).sum()
}

/// A document's size by Firestore's storage-size rules.
pub(crate) fn document_size(name: &str, fields: &HashMap<String, fs::Value>) -> usize {
    name_size(name) + fields_size(fields) + 32
}

/// Runs `q` over `docs`: the documents of the selected collection under
/// `parent`, filtered, ordered, cut by cursors, offset and limit.
fn run_query(docs: &BTreeMap<String, Arc<StoredDoc>>, parent: &str, q: &fs::StructuredQuery) -> Result<Docs, Status> {
    query::check_supported(q)?;
    let db = database_of(parent)?;
    if parent != format!("{db}/documents") {
        check_document_name(&db, parent)?;
    }
    let sel = &q.from[0];
    check_id(&sel.collection_id, "collection")?;
    let orders = query::effective_orders(q)?;
    let scope = if sel.all_descendants { format!("{parent}/") } else { format!("{parent}/{}/", sel.collection_id) };
    let mut hits = Vec::new();
    for (name, doc) in docs.range(scope.clone()..) {
        if !name.starts_with(&scope) {
            break;
        }
        if !query::in_collection(parent, sel, name) {
            continue;
        }
        let view = Named(name, doc);
        if let Some(w) = &q.r#where
            && !query::matches(w, &view)?
        {
            continue;
        }
        let Some(key) = query::order_key(&view, &orders)? else { continue };
        if !query::within_cursors(&key, q, &orders) {
            continue;
        }
        hits.push((key, name, doc));
    }
    let offset = q.offset.max(0) as usize;
    let want = q.limit.map(|l| offset.saturating_add(l.max(0) as usize));
    type Hit<'a> = (query::OrderKey<'a>, &'a String, &'a Arc<StoredDoc>);
    let cmp = |a: &Hit<'_>, b: &Hit<'_>| query::cmp_keys(&a.0, &b.0, &orders);
    if let Some(n) = want
        && n < hits.len()
    {
        if n == 0 {
            hits.clear();
        } else {
            hits.select_nth_unstable_by(n - 1, cmp);
            hits.truncate(n);
        }
    }
    hits.sort_by(cmp);
    Ok(hits.into_iter().skip(offset).map(|(_, n, d)| (n.clone(), d.clone())).collect())
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// BeginTransaction.
    pub(crate) fn begin_transaction(&self, req: &fs::BeginTransactionRequest) -> Result<Vec<u8>, Status> {
        check_database(&req.database)?;
        self.lock().begin(&req.database, req.options.as_ref())
    }

    /// Rollback: forgets the transaction.
    pub(crate) fn rollback(&self, req: &fs::RollbackRequest) -> Result<(), Status> {
        check_database(&req.database)?;
        let mut st = self.lock();
        st.tx(&req.database, &req.transaction)?;
        st.txs.remove(&req.transaction);
        Ok(())
    }

    /// BatchGetDocuments: every document read at one read time, in request
    /// order; reads inside a transaction are recorded for its commit check.
    pub(crate) fn batch_get(
        &self,
        req: &fs::BatchGetDocumentsRequest,
    ) -> Result<Vec<fs::BatchGetDocumentsResponse>, Status> {
        use fs::batch_get_documents_request::ConsistencySelector;
        use fs::batch_get_documents_response::Result as Found;
        check_database(&req.database)?;
        for name in &req.documents {
            check_document_name(&req.database, name)?;
        }
        let mut st = self.lock();
        let (tx_id, new_tx) = match &req.consistency_selector {
            None => (None, false),
            Some(ConsistencySelector::Transaction(id)) => (Some(id.clone()), false),
            Some(ConsistencySelector::NewTransaction(o)) => (Some(st.begin(&req.database, Some(o))?), true),
            Some(ConsistencySelector::ReadTime(_)) => {
                return Err(Status::unimplemented("reads at a past read_time are not supported by this test server"));
            }
        };
        if let Some(id) = &tx_id {
            let versions: Vec<(String, Option<Micros>)> =
                req.documents.iter().map(|n| (n.clone(), st.version(n))).collect();
            let tx = st.tx(&req.database, id)?;
            for (n, v) in versions {
                tx.reads.entry(n).or_insert(v);
            }
        }
        let read_time = Some(timestamp(st.read_time()));
        let mut out = Vec::with_capacity(req.documents.len());
        for (i, name) in req.documents.iter().enumerate() {
            let result = match st.docs.get(name) {
                Some(d) => {
                    let fields = match &req.mask {
                        Some(m) => d
                            .fields
                            .iter()
                            .filter(|(k, _)| m.field_paths.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        None => d.fields.clone(),
                    };
                    Found::Found(document(name, d, fields))
                }
                None => Found::Missing(name.clone()),
            };
            let transaction = if new_tx && i == 0 { tx_id.clone().unwrap_or_default() } else { Vec::new() };
            out.push(fs::BatchGetDocumentsResponse { transaction, read_time, result: Some(result) });
        }
        Ok(out)
    }

    /// RunQuery; a query inside a transaction is re-run at commit to detect
    /// changed results (including documents that newly match).
    pub(crate) fn run_query(&self, req: &fs::RunQueryRequest) -> Result<Vec<fs::RunQueryResponse>, Status> {
        use fs::run_query_request::{ConsistencySelector, QueryType};
        let Some(QueryType::StructuredQuery(q)) = &req.query_type else {
            return Err(Status::invalid_argument("RunQuery needs a structured query"));
        };
        if req.explain_options.is_some() {
            return Err(Status::unimplemented("explain_options are not supported by this test server"));
        }
        let db = database_of(&req.parent)?;
        let mut st = self.lock();
        let docs = st.query(&req.parent, q)?;
        let (tx_id, new_tx) = match &req.consistency_selector {
            None => (None, false),
            Some(ConsistencySelector::Transaction(id)) => (Some(id.clone()), false),
            Some(ConsistencySelector::NewTransaction(o)) => (Some(st.begin(&db, Some(o))?), true),
            Some(ConsistencySelector::ReadTime(_)) => {
                return Err(Status::unimplemented("reads at a past read_time are not supported by this test server"));
            }
        };
        if let Some(id) = &tx_id {
            let result = docs.iter().map(|(n, d)| (n.clone(), d.update_time)).collect();
            let tx = st.tx(&db, id)?;
            tx.queries.push(RecordedQuery { parent: req.parent.clone(), query: q.clone(), result });
        }
        let read_time = Some(timestamp(st.read_time()));
        drop(st);
        let transaction = if new_tx { tx_id.unwrap_or_default() } else { Vec::new() };
        let mut out: Vec<fs::RunQueryResponse> = docs
            .iter()
            .map(|(n, d)| fs::RunQueryResponse {
                document: Some(document(n, d, query::project(&d.fields, &q.select))),
                read_time,
                ..Default::default()
            })
            .collect();
        if out.is_empty() {
            out.push(fs::RunQueryResponse { read_time, ..Default::default() });
        }
        out[0].transaction = transaction;
        if let Some(last) = out.last_mut() {
            last.continuation_selector = Some(fs::run_query_response::ContinuationSelector::Done(true));
        }
        Ok(out)
    }

    /// Commit: checks the transaction (if any), then applies every write in
    /// order with its precondition, all or nothing.
    pub(crate) fn commit(&self, req: &fs::CommitRequest) -> Result<fs::CommitResponse, Status> {
        use fs::precondition::ConditionType;
        use fs::write::Operation;
        check_database(&req.database)?;
        if req.writes.len() > MAX_WRITES_PER_COMMIT {
            return Err(Status::invalid_argument(format!(
                "maximum {MAX_WRITES_PER_COMMIT} writes allowed per request; got {}",
                req.writes.len()
            )));
        }
        if req.encoded_len() > MAX_REQUEST_BYTES {
            return Err(Status::invalid_argument(format!(
                "request payload size {} exceeds the limit of {MAX_REQUEST_BYTES} bytes",
                req.encoded_len()
            )));
        }
        let mut st = self.lock();
        if !req.transaction.is_empty() {
            let tx = st.tx(&req.database, &req.transaction)?;
            if !tx.read_write && !req.writes.is_empty() {
                return Err(Status::invalid_argument("cannot write in a read-only transaction"));
            }
            // The transaction ends here, committed or not.
            let tx = st.txs.remove(&req.transaction).ok_or_else(|| Status::internal("transaction vanished"))?;
            let stale = tx.reads.iter().any(|(n, v)| st.version(n) != *v);
            let mut moved = false;
            for rq in &tx.queries {
                let now: Vec<(String, Micros)> =
                    st.query(&rq.parent, &rq.query)?.iter().map(|(n, d)| (n.clone(), d.update_time)).collect();
                moved |= now != rq.result;
            }
            if stale || moved {
                return Err(Status::aborted(
                    "Too much contention on these documents. Please try again. \
                     (a document this transaction read has changed since it was read)",
                ));
            }
        }
        let mut overlay: BTreeMap<String, Option<Arc<StoredDoc>>> = BTreeMap::new();
        let mut results = Vec::with_capacity(req.writes.len());
        let time = st.commit_time();
        for w in &req.writes {
            let name = match &w.operation {
                Some(Operation::Update(d)) => &d.name,
                Some(Operation::Delete(n)) => n,
                Some(Operation::Transform(_)) => {
                    return Err(Status::unimplemented("transform writes are not supported by this test server"));
                }
                None => return Err(Status::invalid_argument("a write has no operation")),
            };
            check_document_name(&req.database, name)?;
            if !w.update_transforms.is_empty() {
                return Err(Status::unimplemented("update_transforms are not supported by this test server"));
            }
            let cur: Option<Arc<StoredDoc>> = match overlay.get(name) {
                Some(v) => v.clone(),
                None => st.docs.get(name).cloned(),
            };
            match w.current_document.as_ref().and_then(|p| p.condition_type) {
                None => {}
                Some(ConditionType::Exists(true)) if cur.is_none() => {
                    return Err(Status::not_found(format!("No document to update: {name}")));
                }
                Some(ConditionType::Exists(false)) if cur.is_some() => {
                    return Err(Status::already_exists(format!("Document already exists: {name}")));
                }
                Some(ConditionType::Exists(_)) => {}
                Some(ConditionType::UpdateTime(t)) => {
                    let want = micros(&t).ok_or_else(|| {
                        Status::invalid_argument("update_time precondition is not microsecond-aligned")
                    })?;
                    let stored = cur.as_ref().map(|d| d.update_time);
                    if stored != Some(want) {
                        return Err(Status::failed_precondition(format!(
                            "the stored version ({}) does not match the required base version ({want}) of {name}",
                            stored.unwrap_or(0)
                        )));
                    }
                }
            }
            match &w.operation {
                Some(Operation::Update(d)) => {
                    let fields = match &w.update_mask {
                        None => d.fields.clone(),
                        Some(mask) => {
                            let mut f = cur.as_ref().map(|c| c.fields.clone()).unwrap_or_default();
                            for path in &mask.field_paths {
                                if query::parse_field_path(path)?.len() != 1 {
                                    return Err(Status::unimplemented(
                                        "nested field paths in update masks are not supported by this test server",
                                    ));
                                }
                                match d.fields.get(path) {
                                    Some(v) => f.insert(path.clone(), v.clone()),
                                    None => f.remove(path),
                                };
                            }
                            f
                        }
                    };
                    fields.values().try_for_each(|v| check_value(v, false))?;
                    let size = document_size(name, &fields);
                    if size > MAX_DOCUMENT_BYTES {
                        return Err(Status::invalid_argument(format!(
                            "A document cannot be written because it exceeds the maximum size allowed \
                             ({size} > {MAX_DOCUMENT_BYTES} bytes): {}",
                            truncate(name)
                        )));
                    }
                    let next = match &cur {
                        Some(c) if c.fields == fields => c.clone(),
                        Some(c) => Arc::new(StoredDoc { fields, create_time: c.create_time, update_time: time }),
                        None => Arc::new(StoredDoc { fields, create_time: time, update_time: time }),
                    };
                    results.push(fs::WriteResult {
                        update_time: Some(timestamp(next.update_time)),
                        transform_results: vec![],
                    });
                    overlay.insert(name.clone(), Some(next));
                }
                _ => {
                    results.push(fs::WriteResult::default());
                    overlay.insert(name.clone(), None);
                }
            }
        }
        let mut changes = Vec::new();
        for (name, after) in overlay {
            let before = match &after {
                Some(a) => st.docs.insert(name.clone(), a.clone()),
                None => st.docs.remove(&name),
            };
            let same = match (&before, &after) {
                (Some(b), Some(a)) => Arc::ptr_eq(b, a),
                (None, None) => true,
                _ => false,
            };
            if !same {
                changes.push(Change { name, before, after });
            }
        }
        st.seq += 1;
        let seq = st.seq;
        st.broadcast(Batch { seq, time, changes });
        Ok(fs::CommitResponse { write_results: results, commit_time: Some(timestamp(time)) })
    }

    /// Adds a listener that receives every later commit; returns its id.
    pub(crate) fn subscribe(&self, tx: UnboundedSender<Arc<Batch>>) -> u64 {
        let mut st = self.lock();
        st.next_listener += 1;
        let id = st.next_listener;
        st.listeners.insert(id, tx);
        id
    }

    /// Removes a listener.
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.lock().listeners.remove(&id);
    }

    /// The current result of a query with the commit sequence number and
    /// read time it reflects (a listener's initial snapshot).
    pub(crate) fn snapshot(&self, parent: &str, q: &fs::StructuredQuery) -> Result<(u64, Micros, Docs), Status> {
        let mut st = self.lock();
        let docs = st.query(parent, q)?;
        Ok((st.seq, st.read_time(), docs))
    }

    /// The named documents that exist, with the sequence number and read time.
    pub(crate) fn snapshot_documents(&self, names: &[String]) -> (u64, Micros, Docs) {
        let mut st = self.lock();
        let docs = names.iter().filter_map(|n| st.docs.get(n).map(|d| (n.clone(), d.clone()))).collect();
        (st.seq, st.read_time(), docs)
    }

    /// Number of stored documents (all databases).
    pub(crate) fn len(&self) -> usize {
        self.lock().docs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        let db = "projects/p/databases/(default)";
        assert!(check_document_name(db, &format!("{db}/documents/c/id")).is_ok());
        assert!(check_document_name(db, &format!("{db}/documents/c")).is_err());
        assert!(check_document_name(db, &format!("{db}/documents/c/__x__")).is_err());
        assert!(check_document_name(db, &format!("{db}/documents/c/{}", "a".repeat(1501))).is_err());
        assert!(check_document_name(db, "projects/q/databases/(default)/documents/c/id").is_err());
        // Firestore's worked example: users/jeff is 6 + 5 + 16 bytes.
        assert_eq!(name_size("projects/p/databases/d/documents/users/jeff"), 27);
        assert_eq!(timestamp(1_500_000), prost_types::Timestamp { seconds: 1, nanos: 500_000_000 });
        assert_eq!(micros(&timestamp(1_234_567)), Some(1_234_567));
    }
}
