//! The RPCs the audit event store sends (RunQuery and Commit) over the
//! shared connection (`crate::gcp::firestore`), with a request timeout, a
//! few retries on transient codes, and the mapping of gRPC statuses to
//! [`EventsError`]s naming the store. No credential reaches a message.

use std::sync::Arc;
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::tonic::{Code, Status};
use fs::structured_query as sq;

use super::layout;
use crate::events::{EventsError, EventsErrorKind, Result};
use crate::gcp::firestore::{Connection, is_transient};

/// Longest a single RPC may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of an RPC that fails with a transient code.
pub const ATTEMPTS: u32 = 3;

/// A connection to the events collection.
#[derive(Clone)]
pub struct Client {
    pub(super) conn: Connection,
    /// The collection id.
    pub collection: String,
    /// `projects/p/databases/d/documents/<collection>`.
    pub collection_path: String,
    /// For messages.
    pub describe: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Client {
    /// The client of `collection` over `conn`.
    pub fn new(conn: Connection, collection: &str) -> Client {
        Client {
            collection_path: format!("{}/{collection}", conn.parent),
            describe: conn.describe.clone(),
            collection: collection.to_string(),
            conn,
        }
    }

    /// The full name of the document with id `id`.
    pub fn doc_name(&self, id: &str) -> String {
        format!("{}/{id}", self.collection_path)
    }

    /// Maps a status to an events error for `op`.
    pub fn error(&self, op: &str, s: &Status) -> EventsError {
        let kind = match s.code() {
            Code::NotFound => EventsErrorKind::NotFound,
            Code::FailedPrecondition | Code::InvalidArgument | Code::OutOfRange => EventsErrorKind::BadParameter,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown => EventsErrorKind::ConnectionProblem,
            _ => EventsErrorKind::Internal,
        };
        let hint = match s.code() {
            Code::PermissionDenied | Code::Unauthenticated => {
                "; check the credentials and that they hold roles/datastore.user (or owner) on the project"
            }
            Code::FailedPrecondition => {
                "; a query needs a composite index that does not exist: create the indexes docs/audit.md lists"
            }
            _ if kind == EventsErrorKind::ConnectionProblem => {
                "; Firestore could not be reached or is overloaded: retry later"
            }
            _ => "",
        };
        EventsError::new(kind, format!("{}: {op}: {:?}: {}{hint}", self.describe, s.code(), s.message()))
    }

    /// Runs `f` with the timeout, retrying transient failures.
    async fn call<T, F, Fut>(&self, op: &str, mut f: F) -> std::result::Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let status = match tokio::time::timeout(REQUEST_TIMEOUT, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(s)) => s,
                Err(_) => Status::deadline_exceeded(format!("no answer within {REQUEST_TIMEOUT:?}")),
            };
            if !is_transient(status.code()) || attempt >= ATTEMPTS {
                return Err(status);
            }
            tracing::debug!(store = %self.describe, op, code = ?status.code(), attempt, "retrying");
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    /// RunQuery on the collection's parent.
    pub async fn run_query(&self, q: fs::StructuredQuery) -> Result<Vec<fs::Document>> {
        let req = fs::RunQueryRequest {
            parent: self.conn.parent.clone(),
            query_type: Some(fs::run_query_request::QueryType::StructuredQuery(q)),
            ..Default::default()
        };
        self.call("query", || {
            let req = self.conn.request(req.clone());
            let mut c = self.conn.raw(layout::MAX_REQUEST_BYTES * 2);
            async move {
                let mut s = c.run_query(req).await?.into_inner();
                let mut out = Vec::new();
                while let Some(r) = s.message().await? {
                    if let Some(d) = r.document {
                        out.push(d);
                    }
                }
                Ok(out)
            }
        })
        .await
        .map_err(|s| self.error("query", &s))
    }

    /// Commit outside a transaction, retried on transient codes (every
    /// write this store sends is idempotent: a create-if-absent or a
    /// delete); the raw status on failure.
    pub async fn commit(&self, op: &str, writes: Vec<fs::Write>) -> std::result::Result<fs::CommitResponse, Status> {
        let req = fs::CommitRequest {
            database: self.conn.database.clone(),
            writes,
            transaction: Vec::new(),
            request_options: None,
        };
        self.call(op, || {
            let req = self.conn.request(req.clone());
            let mut c = self.conn.raw(layout::MAX_REQUEST_BYTES * 2);
            async move { Ok(c.commit(req).await?.into_inner()) }
        })
        .await
    }

    /// A field filter.
    pub fn filter(field: &str, op: sq::field_filter::Operator, value: fs::Value) -> sq::Filter {
        sq::Filter {
            filter_type: Some(sq::filter::FilterType::FieldFilter(sq::FieldFilter {
                field: Some(sq::FieldReference { field_path: field.to_string() }),
                op: op as i32,
                value: Some(value),
            })),
        }
    }

    /// The AND of `filters`.
    pub fn and(filters: Vec<sq::Filter>) -> sq::Filter {
        sq::Filter {
            filter_type: Some(sq::filter::FilterType::CompositeFilter(sq::CompositeFilter {
                op: sq::composite_filter::Operator::And as i32,
                filters,
            })),
        }
    }

    /// A query on the collection: `filter`, ordered by `orders` (field,
    /// descending), starting after `after`, at most `limit` documents.
    pub fn query(
        &self,
        filter: sq::Filter,
        orders: &[(&str, bool)],
        after: Option<Vec<fs::Value>>,
        limit: usize,
    ) -> fs::StructuredQuery {
        fs::StructuredQuery {
            from: vec![sq::CollectionSelector { collection_id: self.collection.clone(), all_descendants: false }],
            r#where: Some(filter),
            order_by: orders
                .iter()
                .map(|(field, desc)| sq::Order {
                    field: Some(sq::FieldReference { field_path: field.to_string() }),
                    direction: if *desc { sq::Direction::Descending } else { sq::Direction::Ascending } as i32,
                })
                .collect(),
            start_at: after.map(|values| fs::Cursor { values, before: false }),
            limit: Some(limit.min(i32::MAX as usize) as i32),
            ..Default::default()
        }
    }
}
