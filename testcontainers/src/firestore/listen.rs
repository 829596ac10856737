//! The Listen stream (bidirectional): targets added and removed by the
//! client, an initial snapshot per target, then every later commit's
//! effect on the targets, in commit order.
//!
//! For each added target the server sends, as real Firestore does:
//! `TargetChange ADD [id]`, one `DocumentChange` per matching document,
//! `TargetChange CURRENT [id]` with a read time and resume token, then a
//! global `TargetChange NO_CHANGE []` with the same read time (a consistent
//! snapshot). After each later commit: `DocumentChange` for documents that
//! now match (new or modified), `DocumentDelete` for matching documents that
//! were deleted, `DocumentRemove` for documents that stopped matching, then
//! a global `NO_CHANGE` with the commit time. A global `NO_CHANGE` follows
//! every commit, even one that changed nothing a target sees, so a client
//! can tell that it has caught up with a given commit time.
//!
//! Not supported (UNIMPLEMENTED): query targets with limit, offset or
//! cursors. Resume tokens and read times are accepted but the server always
//! answers with a full snapshot, as real Firestore may when a token is old.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fs::listen_response::ResponseType;
use fs::target_change::TargetChangeType;
use futures::Stream;
use gcloud_sdk::google::firestore::v1 as fs;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::query;
use super::store::{self, Batch, Micros, Named, Store, StoredDoc};

enum Spec {
    Query { parent: String, query: Box<fs::StructuredQuery> },
    Documents(HashSet<String>),
}

struct Target {
    spec: Spec,
    /// Commits up to this sequence number are in the target's snapshot.
    since: u64,
}

impl Target {
    fn matches(&self, name: &str, doc: &StoredDoc) -> Result<bool, Status> {
        match &self.spec {
            Spec::Documents(names) => Ok(names.contains(name)),
            Spec::Query { parent, query } => {
                if !query::in_collection(parent, &query.from[0], name) {
                    return Ok(false);
                }
                let view = Named(name, doc);
                if let Some(w) = &query.r#where
                    && !query::matches(w, &view)?
                {
                    return Ok(false);
                }
                Ok(query::order_key(&view, &query::effective_orders(query)?)?.is_some())
            }
        }
    }
}

type Out = mpsc::UnboundedSender<Result<fs::ListenResponse, Status>>;

fn send(out: &Out, r: ResponseType) -> bool {
    out.send(Ok(fs::ListenResponse { response_type: Some(r) })).is_ok()
}

fn target_change(kind: TargetChangeType, ids: Vec<i32>, seq: u64, time: Option<Micros>) -> ResponseType {
    ResponseType::TargetChange(fs::TargetChange {
        target_change_type: kind as i32,
        target_ids: ids,
        cause: None,
        resume_token: if time.is_some() { seq.to_be_bytes().to_vec() } else { Vec::new() },
        read_time: time.map(store::timestamp),
    })
}

struct Session {
    store: Arc<Store>,
    out: Out,
    database: Option<String>,
    targets: HashMap<i32, Target>,
    next_auto_id: i32,
}

impl Session {
    fn add_target(&mut self, database: &str, t: fs::Target) -> Result<(), Status> {
        use fs::target::TargetType;
        store::check_database(database)?;
        match &self.database {
            Some(db) if db != database => {
                return Err(Status::invalid_argument("one Listen stream serves one database"));
            }
            _ => self.database = Some(database.to_string()),
        }
        let id = if t.target_id == 0 {
            self.next_auto_id += 2;
            self.next_auto_id
        } else {
            t.target_id
        };
        if self.targets.contains_key(&id) {
            return Err(Status::invalid_argument(format!("target id {id} is already in use on this stream")));
        }
        let (spec, (seq, time, docs)) = match t.target_type {
            Some(TargetType::Query(qt)) => {
                let Some(fs::target::query_target::QueryType::StructuredQuery(q)) = qt.query_type else {
                    return Err(Status::invalid_argument("a query target needs a structured query"));
                };
                if store::database_of(&qt.parent)? != database {
                    return Err(Status::invalid_argument("the target's parent is not in the stream's database"));
                }
                query::check_supported(&q)?;
                if q.limit.is_some() || q.offset != 0 || q.start_at.is_some() || q.end_at.is_some() {
                    return Err(Status::unimplemented(
                        "listen targets with limit, offset or cursors are not supported by this test server",
                    ));
                }
                let snap = self.store.snapshot(&qt.parent, &q)?;
                (Spec::Query { parent: qt.parent, query: Box::new(q) }, snap)
            }
            Some(TargetType::Documents(d)) => {
                for n in &d.documents {
                    store::check_document_name(database, n)?;
                }
                let snap = self.store.snapshot_documents(&d.documents);
                (Spec::Documents(d.documents.into_iter().collect()), snap)
            }
            None => return Err(Status::invalid_argument("a target needs a query or documents")),
        };
        send(&self.out, target_change(TargetChangeType::Add, vec![id], 0, None));
        for (name, doc) in &docs {
            send(
                &self.out,
                ResponseType::DocumentChange(fs::DocumentChange {
                    document: Some(store::document(name, doc, doc.fields.clone())),
                    target_ids: vec![id],
                    removed_target_ids: vec![],
                }),
            );
        }
        send(&self.out, target_change(TargetChangeType::Current, vec![id], seq, Some(time)));
        send(&self.out, target_change(TargetChangeType::NoChange, vec![], seq, Some(time)));
        if t.once {
            send(&self.out, target_change(TargetChangeType::Remove, vec![id], 0, None));
        } else {
            self.targets.insert(id, Target { spec, since: seq });
        }
        Ok(())
    }

    fn request(&mut self, req: fs::ListenRequest) -> Result<(), Status> {
        use fs::listen_request::TargetChange;
        match req.target_change {
            Some(TargetChange::AddTarget(t)) => self.add_target(&req.database, t),
            Some(TargetChange::RemoveTarget(id)) => {
                if self.targets.remove(&id).is_none() {
                    return Err(Status::invalid_argument(format!("no target {id} on this stream")));
                }
                send(&self.out, target_change(TargetChangeType::Remove, vec![id], 0, None));
                Ok(())
            }
            None => Err(Status::invalid_argument("a listen request needs add_target or remove_target")),
        }
    }

    fn commit(&mut self, b: &Batch) -> Result<(), Status> {
        if self.targets.is_empty() {
            return Ok(());
        }
        let time = Some(store::timestamp(b.time));
        for c in &b.changes {
            let mut before = Vec::new();
            let mut after = Vec::new();
            for (id, t) in &self.targets {
                if b.seq <= t.since {
                    continue;
                }
                if let Some(d) = &c.before
                    && t.matches(&c.name, d)?
                {
                    before.push(*id);
                }
                if let Some(d) = &c.after
                    && t.matches(&c.name, d)?
                {
                    after.push(*id);
                }
            }
            before.sort_unstable();
            after.sort_unstable();
            let removed: Vec<i32> = before.iter().copied().filter(|id| !after.contains(id)).collect();
            let response = match &c.after {
                Some(d) if !after.is_empty() => ResponseType::DocumentChange(fs::DocumentChange {
                    document: Some(store::document(&c.name, d, d.fields.clone())),
                    target_ids: after,
                    removed_target_ids: removed,
                }),
                _ if removed.is_empty() => continue,
                None => ResponseType::DocumentDelete(fs::DocumentDelete {
                    document: c.name.clone(),
                    removed_target_ids: removed,
                    read_time: time,
                }),
                Some(_) => ResponseType::DocumentRemove(fs::DocumentRemove {
                    document: c.name.clone(),
                    removed_target_ids: removed,
                    read_time: time,
                }),
            };
            send(&self.out, response);
        }
        send(&self.out, target_change(TargetChangeType::NoChange, vec![], b.seq, Some(b.time)));
        Ok(())
    }
}

/// Serves one Listen call: returns the response stream and keeps a task
/// running until the client goes away.
pub(crate) fn serve(
    store: Arc<Store>,
    mut requests: Streaming<fs::ListenRequest>,
) -> impl Stream<Item = Result<fs::ListenResponse, Status>> + Send + 'static {
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let (batch_tx, mut batches) = mpsc::unbounded_channel::<Arc<Batch>>();
    let listener = store.subscribe(batch_tx);
    let mut s = Session { store: store.clone(), out, database: None, targets: HashMap::new(), next_auto_id: 0 };
    tokio::spawn(async move {
        loop {
            let step = tokio::select! {
                req = requests.message() => match req {
                    Ok(Some(r)) => s.request(r),
                    // The client closed its half or went away.
                    Ok(None) | Err(_) => break,
                },
                b = batches.recv() => match b {
                    Some(b) => s.commit(&b),
                    None => break,
                },
                _ = s.out.closed() => break,
            };
            if let Err(status) = step {
                let _ = s.out.send(Err(status));
                break;
            }
        }
        store.unsubscribe(listener);
    });
    futures::stream::poll_fn(move |cx| out_rx.poll_recv(cx))
}
