//! The Firestore connection and the raw RPCs this store uses: Commit,
//! BatchGetDocuments, RunQuery, BeginTransaction, Rollback and Listen, the
//! subset that real Firestore, the official emulator and the project's test
//! server all serve. Reads are retried a few times on transient codes;
//! commits are not (their caller decides). Errors are mapped here, naming
//! the store; no credential ever reaches a message or log. Connecting
//! (endpoint, credentials, routing header) is `crate::gcp::firestore`,
//! shared with the audit event store.

use std::sync::Arc;
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::{GoogleAuthMiddleware, tonic};
use fs::firestore_client::FirestoreClient;
use fs::structured_query as sq;
use tonic::{Code, Status};

use crate::backend::{Error, ErrorKind, Key, Result};
use crate::config::FirestoreConfig;
use crate::gcp::firestore::{ConnectErrorKind, ConnectParams, Connection};

use super::layout;

pub use crate::gcp::firestore::DEFAULT_DATABASE;
/// Longest a single RPC may take (the listener is not limited).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts for reads that fail with a transient code.
pub const READ_ATTEMPTS: u32 = 3;

/// A connection to one collection.
#[derive(Clone)]
pub struct Client {
    conn: Connection,
    /// `projects/{p}/databases/{d}`.
    pub database: String,
    /// `{database}/documents`.
    pub parent: String,
    /// The collection id.
    pub collection: String,
    /// For messages: "firestore projects/p/databases/d collection c (endpoint ...)".
    pub describe: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Client {
    /// Connects (no RPC is sent yet).
    pub async fn connect(cfg: &FirestoreConfig) -> Result<Client> {
        if cfg.collection_name.is_empty() {
            return Err(Error::bad_parameter("firestore: collection_name is not specified"));
        }
        let project = cfg.project_id.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
            Error::bad_parameter(format!("firestore collection {}: project_id is not specified", cfg.collection_name))
        })?;
        let what = format!("collection {}", cfg.collection_name);
        let conn = Connection::connect(ConnectParams {
            project: &project,
            database_id: cfg.database_id.as_deref(),
            endpoint: cfg.endpoint.as_deref(),
            credentials_path: cfg.credentials_path.as_deref(),
            what: &what,
            endpoint_option: "endpoint",
            credentials_option: "credentials_path",
        })
        .await
        .map_err(|e| match e.kind {
            ConnectErrorKind::BadParameter => Error::bad_parameter(e.message),
            ConnectErrorKind::ConnectionProblem => Error::new(ErrorKind::ConnectionProblem, e.message),
        })?;
        Ok(Client {
            database: conn.database.clone(),
            parent: conn.parent.clone(),
            describe: conn.describe.clone(),
            collection: cfg.collection_name.clone(),
            conn,
        })
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        self.conn.request(msg)
    }

    fn raw(&self) -> FirestoreClient<GoogleAuthMiddleware> {
        self.conn.raw(layout::MAX_REQUEST_BYTES * 2)
    }

    /// The full name of `key`'s document.
    pub fn doc_name(&self, key: &Key) -> String {
        format!("{}/{}/{}", self.parent, self.collection, layout::document_id(key))
    }

    /// Maps a status to a backend error for `op` (and `key`).
    pub fn error(&self, op: &str, key: Option<&Key>, s: &Status) -> Error {
        let kind = match s.code() {
            Code::NotFound => ErrorKind::NotFound,
            Code::AlreadyExists => ErrorKind::AlreadyExists,
            // Outside the preconditions each operation handles itself, this
            // is a query Firestore cannot serve (e.g. a missing index), as
            // upstream maps it.
            Code::FailedPrecondition | Code::InvalidArgument | Code::OutOfRange => ErrorKind::BadParameter,
            Code::PermissionDenied | Code::Unauthenticated => ErrorKind::AccessDenied,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown => ErrorKind::ConnectionProblem,
            _ => ErrorKind::Internal,
        };
        let what = match key {
            Some(k) => format!("{op} {k:?}"),
            None => op.to_string(),
        };
        let hint = match kind {
            ErrorKind::AccessDenied => {
                "; check the credentials and that they hold roles/datastore.user (or owner) on the project"
            }
            ErrorKind::ConnectionProblem => "; Firestore could not be reached or is overloaded: retry later",
            _ => "",
        };
        Error::new(kind, format!("{}: {what}: {:?}: {}{hint}", self.describe, s.code(), s.message()))
    }

    fn timeout(&self, op: &str) -> Error {
        Error::new(
            ErrorKind::ConnectionProblem,
            format!("{}: {op}: no answer within {REQUEST_TIMEOUT:?}", self.describe),
        )
    }

    /// Runs a read with the request timeout, retrying transient failures.
    async fn read<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T>
    where
        F: FnMut(FirestoreClient<GoogleAuthMiddleware>) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, f(self.raw())).await;
            let status = match answer {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(s)) => s,
                Err(_) if attempt < READ_ATTEMPTS => continue,
                Err(_) => return Err(self.timeout(op)),
            };
            let transient = crate::gcp::firestore::is_transient(status.code());
            if !transient || attempt >= READ_ATTEMPTS {
                return Err(self.error(op, None, &status));
            }
            tracing::debug!(store = %self.describe, op, code = ?status.code(), attempt, "retrying a read");
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    /// BatchGetDocuments: the documents named, in order (None: missing),
    /// inside `tx` when given.
    pub async fn batch_get(&self, names: Vec<String>, tx: Option<Vec<u8>>) -> Result<Vec<Option<fs::Document>>> {
        use fs::batch_get_documents_response::Result as Found;
        let req = fs::BatchGetDocumentsRequest {
            database: self.database.clone(),
            documents: names.clone(),
            consistency_selector: tx.map(fs::batch_get_documents_request::ConsistencySelector::Transaction),
            ..Default::default()
        };
        let mut found = self
            .read("read documents", |mut c| {
                let req = self.request(req.clone());
                async move {
                    let mut s = c.batch_get_documents(req).await?.into_inner();
                    let mut out = std::collections::HashMap::new();
                    while let Some(r) = s.message().await? {
                        match r.result {
                            Some(Found::Found(d)) => {
                                out.insert(d.name.clone(), d);
                            }
                            Some(Found::Missing(_)) | None => {}
                        }
                    }
                    Ok(out)
                }
            })
            .await?;
        Ok(names.iter().map(|n| found.remove(n)).collect())
    }

    /// RunQuery on the collection.
    pub async fn run_query(&self, q: fs::StructuredQuery) -> Result<Vec<fs::Document>> {
        let req = fs::RunQueryRequest {
            parent: self.parent.clone(),
            query_type: Some(fs::run_query_request::QueryType::StructuredQuery(q)),
            ..Default::default()
        };
        self.read("query", |mut c| {
            let req = self.request(req.clone());
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
    }

    /// Commit (not retried): the raw status on failure, for the caller to
    /// interpret per operation.
    pub async fn commit(&self, writes: Vec<fs::Write>, tx: Vec<u8>) -> std::result::Result<fs::CommitResponse, Status> {
        let req = fs::CommitRequest { database: self.database.clone(), writes, transaction: tx, request_options: None };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.raw().commit(self.request(req))).await {
            Ok(r) => r.map(|r| r.into_inner()),
            Err(_) => Err(Status::deadline_exceeded(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
    }

    /// BeginTransaction (read-write).
    pub async fn begin(&self) -> Result<Vec<u8>> {
        let req = fs::BeginTransactionRequest { database: self.database.clone(), ..Default::default() };
        self.read("begin transaction", |mut c| {
            let req = self.request(req.clone());
            async move { Ok(c.begin_transaction(req).await?.into_inner().transaction) }
        })
        .await
    }

    /// Rollback; failures are only logged (the transaction expires anyway).
    pub async fn rollback(&self, tx: Vec<u8>) {
        let req = fs::RollbackRequest { database: self.database.clone(), transaction: tx, request_options: None };
        if let Ok(Err(s)) = tokio::time::timeout(REQUEST_TIMEOUT, self.raw().rollback(self.request(req))).await {
            tracing::debug!(store = %self.describe, code = ?s.code(), "rollback failed (the transaction expires by itself)");
        }
    }

    /// Opens a Listen stream with one target.
    pub async fn listen(
        &self,
        target: fs::Target,
    ) -> std::result::Result<tonic::Streaming<fs::ListenResponse>, Status> {
        let add = fs::ListenRequest {
            database: self.database.clone(),
            target_change: Some(fs::listen_request::TargetChange::AddTarget(target)),
            ..Default::default()
        };
        // Keep the request half open: closing it would end the stream.
        let requests = futures::StreamExt::chain(futures::stream::iter([add]), futures::stream::pending());
        Ok(self.raw().listen(self.request(requests)).await?.into_inner())
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

    /// The AND of `filters` (the filter itself when there is one).
    pub fn and(mut filters: Vec<sq::Filter>) -> Option<sq::Filter> {
        match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(sq::Filter {
                filter_type: Some(sq::filter::FilterType::CompositeFilter(sq::CompositeFilter {
                    op: sq::composite_filter::Operator::And as i32,
                    filters,
                })),
            }),
        }
    }

    /// A query on the collection.
    pub fn query(
        &self,
        filter: Option<sq::Filter>,
        order: Option<(&str, bool)>,
        limit: Option<usize>,
    ) -> fs::StructuredQuery {
        fs::StructuredQuery {
            from: vec![sq::CollectionSelector { collection_id: self.collection.clone(), all_descendants: false }],
            r#where: filter,
            order_by: order
                .map(|(field, desc)| sq::Order {
                    field: Some(sq::FieldReference { field_path: field.to_string() }),
                    direction: if desc { sq::Direction::Descending } else { sq::Direction::Ascending } as i32,
                })
                .into_iter()
                .collect(),
            limit: limit.map(|l| l.min(i32::MAX as usize) as i32),
            ..Default::default()
        }
    }
}
