//! Firestore fixture: a real Firestore-protocol gRPC server
//! (`google.firestore.v1`, plain HTTP/2 on loopback, no auth).
//!
//! No official Firestore emulator can be installed from the registries this
//! project may use (the emulator jar downloads from a Google host), and the
//! npm `@firestore-emulator/server` ignores `update_time` preconditions and
//! the single-document RPCs. So the local provider runs **this crate's own
//! test server** ([`TestServer`]), in-process, on its own thread and runtime;
//! it is always available, so a Firestore test never skips. The container
//! provider runs Google's official emulator instead
//! (`gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators`, `gcloud
//! emulators firestore start`), where a Docker engine exists.
//!
//! # What the test server implements
//!
//! The RPCs the Firestore backend uses, with real semantics:
//! - **Commit**: update (full or with an `update_mask` of top-level fields)
//!   and delete writes, preconditions `exists` and `update_time` checked in
//!   order, all writes applied atomically at one commit time; ALREADY_EXISTS,
//!   NOT_FOUND and FAILED_PRECONDITION as real Firestore answers; a write
//!   that changes nothing keeps the document's update time; limits of 500
//!   writes and 10 MiB per commit, 1 MiB per document (storage-size rules),
//!   1,500-byte ids; inside a transaction, ABORTED when anything it read has
//!   changed (optimistic concurrency).
//! - **BeginTransaction / Rollback**: read-write transactions (read-only ones
//!   without a read time), idle expiry after 60 s.
//! - **BatchGetDocuments**: found/missing per document at one read time,
//!   field masks, inside a transaction or starting one.
//! - **RunQuery**: one collection (or all descendants), field filters
//!   (`<`, `<=`, `>`, `>=`, `==`, `!=`, IN, NOT_IN, ARRAY_CONTAINS(_ANY)),
//!   unary filters, AND/OR composites, Firestore's cross-type value order
//!   (a range filter matches only its operand's type), explicit and implicit
//!   ordering, `start_at`/`end_at` cursors, offset, limit, projections;
//!   inside a transaction (re-run at commit to detect changes) or starting one.
//! - **Listen**: query and document targets, initial snapshot, CURRENT, a
//!   global NO_CHANGE with a read time after the snapshot and after every
//!   commit, then DocumentChange / DocumentDelete / DocumentRemove in commit
//!   order.
//!
//! # What it does not
//!
//! GetDocument, CreateDocument, UpdateDocument, DeleteDocument,
//! ListDocuments, ListCollectionIds, BatchWrite, Write, PartitionQuery,
//! RunAggregationQuery and ExecutePipeline answer UNIMPLEMENTED; so do
//! transform writes, nested update-mask paths, reads at a past `read_time`,
//! vector search, explain options and listen targets with a limit, offset or
//! cursors. Resume tokens are accepted but answered with a full snapshot. No
//! authentication, security rules, indexes (no query ever needs one here) or
//! quotas other than the limits above; every project and database id is
//! accepted and starts empty. Data lives in memory only.

mod listen;
mod query;
mod server;
mod store;

pub use server::{SERVICE_NAME, TestServer};
pub use store::{MAX_DOCUMENT_BYTES, MAX_ID_BYTES, MAX_REQUEST_BYTES, MAX_WRITES_PER_COMMIT};

use crate::{Error, Fixture, Provider, Server};

/// The project id the fixture hands to tests (any id works on the server).
pub const PROJECT: &str = "teleport-test";
/// The database id the fixture hands to tests.
pub const DATABASE: &str = "(default)";

enum Backing {
    InProcess(TestServer),
    #[cfg(feature = "containers")]
    Container(Box<crate::container::Running>),
}

/// A running Firestore-protocol server; dropping it stops the server.
pub struct Firestore {
    /// `http://host:port`, the value of a backend's `endpoint`.
    pub endpoint: String,
    /// Host the server listens on.
    pub host: String,
    /// Port the server listens on.
    pub port: u16,
    /// A project id to use.
    pub project: String,
    /// A database id to use.
    pub database: String,
    /// True for this crate's test server, false for the official emulator.
    pub in_process: bool,
    backing: Backing,
}

impl Firestore {
    /// `host:port`, as `FIRESTORE_EMULATOR_HOST` takes it.
    pub fn emulator_host(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `projects/{project}/databases/{database}`.
    pub fn database_path(&self) -> String {
        format!("projects/{}/databases/{}", self.project, self.database)
    }

    /// The in-process server, when that is what runs (local provider).
    pub fn test_server(&self) -> Option<&TestServer> {
        match &self.backing {
            Backing::InProcess(s) => Some(s),
            #[cfg(feature = "containers")]
            Backing::Container(_) => None,
        }
    }
}

impl Fixture for Firestore {
    fn server(&self) -> Server {
        Server::Firestore
    }

    fn exports(&self) -> Vec<(String, String)> {
        crate::prefixed(
            Server::Firestore,
            vec![
                ("ENDPOINT", self.endpoint.clone()),
                ("HOST", self.host.clone()),
                ("PORT", self.port.to_string()),
                ("EMULATOR_HOST", self.emulator_host()),
                ("PROJECT", self.project.clone()),
                ("DATABASE", self.database.clone()),
            ],
        )
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn log_path(&self) -> Option<&std::path::Path> {
        None
    }

    fn container_id(&self) -> Option<&str> {
        match &self.backing {
            Backing::InProcess(_) => None,
            #[cfg(feature = "containers")]
            Backing::Container(c) => Some(c.id()),
        }
    }
}

pub(crate) async fn start() -> Result<Firestore, Error> {
    match Provider::from_env().await? {
        Provider::Local => start_in_process(),
        #[cfg(feature = "containers")]
        Provider::Container => start_container().await,
    }
}

fn start_in_process() -> Result<Firestore, Error> {
    let server =
        TestServer::start().map_err(|e| Error::setup(Server::Firestore, "start the in-process test server", e))?;
    let addr = server.addr();
    Ok(Firestore {
        endpoint: server.endpoint(),
        host: addr.ip().to_string(),
        port: addr.port(),
        project: PROJECT.to_string(),
        database: DATABASE.to_string(),
        in_process: true,
        backing: Backing::InProcess(server),
    })
}

/// The official emulator answers `GET /` with `Ok` once it serves.
#[cfg(feature = "containers")]
async fn probe(client: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    let answer = crate::probe::send(client.get(format!("{endpoint}/"))).await?;
    if answer.status == 200 && answer.body.trim() == "Ok" {
        Ok(())
    } else {
        Err(format!("GET /: HTTP {} {:?}", answer.status, answer.body.chars().take(200).collect::<String>()))
    }
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<Firestore, Error> {
    let running = crate::container::run(&crate::container::spec(Server::Firestore)).await?;
    let endpoint = format!("http://{}:{}", running.host, running.port);
    let client = crate::probe::http_client(Server::Firestore)?;
    running.wait_ready(&endpoint, || probe(&client, &endpoint)).await?;
    Ok(Firestore {
        host: running.host.clone(),
        port: running.port,
        endpoint,
        project: PROJECT.to_string(),
        database: DATABASE.to_string(),
        in_process: false,
        backing: Backing::Container(Box::new(running)),
    })
}
