//! The Firestore connection shared by the cluster-state store
//! (`backend::firestore`) and the audit event store (`events::firestore`):
//! which endpoint (Google, or an emulator/test server given as `endpoint`),
//! which credentials (a service-account key file, the application default
//! credentials, or the emulators' `Bearer owner`), the routing header every
//! call carries, and the raw gRPC client. It knows nothing of either store's
//! documents; each store maps [`ConnectError`] and [`tonic::Status`] to its
//! own error type. No credential ever reaches a message or a log.

use std::path::Path;
use std::sync::Arc;

use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use firestore::gcloud_sdk::google_cloud_auth::errors::CredentialsError;
use firestore::gcloud_sdk::{GoogleApi, GoogleAuthMiddleware};
use firestore::gcloud_sdk::{HeaderMap, tonic};
use firestore::{FirestoreDb, FirestoreDbOptions};
use fs::firestore_client::FirestoreClient;
use tonic::Code;

/// Database id used when none is named.
pub const DEFAULT_DATABASE: &str = "(default)";

/// What an emulator is sent as the bearer token, as upstream and the
/// Firebase tools do (the emulators do not authenticate).
#[derive(Debug)]
struct EmulatorOwner {
    tag: EntityTag,
}

impl CredentialsProvider for EmulatorOwner {
    async fn headers(
        &self,
        extensions: tonic::Extensions,
    ) -> std::result::Result<CacheableResource<HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer owner"));
        Ok(CacheableResource::New { entity_tag: self.tag.clone(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, Copy)]
pub struct ConnectParams<'a> {
    /// GCP project (required, non-empty).
    pub project: &'a str,
    /// Database id; `(default)` when None or empty.
    pub database_id: Option<&'a str>,
    /// An emulator or test server (`host:port` or a URL); Google when None.
    pub endpoint: Option<&'a str>,
    /// A service-account key file; the application default credentials when None.
    pub credentials_path: Option<&'a Path>,
    /// What the caller connects to, for messages (e.g. `collection events`).
    pub what: &'a str,
    /// Name of the endpoint option in the caller's configuration, for hints.
    pub endpoint_option: &'a str,
    /// Name of the credentials option in the caller's configuration, for hints.
    pub credentials_option: &'a str,
}

/// Why connecting failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    /// The parameters cannot work (an id not valid in a header).
    BadParameter,
    /// The connection or the credentials failed.
    ConnectionProblem,
}

/// A failed connect, with a message naming the database and a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The kind.
    pub kind: ConnectErrorKind,
    /// What failed, where, and what to check.
    pub message: String,
}

/// A connection to one Firestore database.
#[derive(Clone)]
pub struct Connection {
    db: FirestoreDb,
    /// `projects/{p}/databases/{d}`.
    pub database: String,
    /// `{database}/documents`.
    pub parent: String,
    /// For messages: "firestore projects/p/databases/d {what} (endpoint ...)".
    pub describe: Arc<str>,
    /// The routing header Google's client libraries send with every call.
    routing: tonic::metadata::AsciiMetadataValue,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

pub use super::url_encode;

/// The URL of an `endpoint` option (`host:port` means plain HTTP).
pub fn api_url(endpoint: &str) -> String {
    if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") }
}

/// Codes worth retrying: the request most likely did not run, or the
/// server asks to come back later.
pub fn is_transient(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted)
}

impl Connection {
    /// Connects (no RPC is sent yet).
    pub async fn connect(p: ConnectParams<'_>) -> Result<Connection, ConnectError> {
        let project = p.project;
        let database_id = p.database_id.filter(|d| !d.is_empty()).unwrap_or(DEFAULT_DATABASE);
        let database = format!("projects/{project}/databases/{database_id}");
        let endpoint = p.endpoint.filter(|e| !e.is_empty());
        let where_ = match endpoint {
            Some(e) => format!("endpoint {}", api_url(e)),
            None => "firestore.googleapis.com".to_string(),
        };
        let describe: Arc<str> = format!("firestore {database} {} ({where_})", p.what).into();
        let mut options = FirestoreDbOptions::new(project.to_string()).with_database_id(database_id.to_string());
        let connecting = match endpoint {
            Some(endpoint) => {
                options = options.with_firebase_api_url(api_url(endpoint));
                let owner = Credentials::from(EmulatorOwner { tag: EntityTag::new() });
                FirestoreDb::with_options_auth(options, owner).await
            }
            None => {
                // TLS to Google: make sure rustls has a crypto provider.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                match p.credentials_path {
                    Some(path) => FirestoreDb::with_options_service_account_key_file(options, path.to_path_buf()).await,
                    None => FirestoreDb::with_options(options).await,
                }
            }
        };
        let db = connecting.map_err(|e| {
            let hint = if endpoint.is_some() {
                format!("check that the emulator or test server answers at `{}`", p.endpoint_option)
            } else if p.credentials_path.is_some() {
                format!(
                    "check `{}` (a service account key JSON file) and network access to firestore.googleapis.com",
                    p.credentials_option
                )
            } else {
                format!(
                    "check the application default credentials (GOOGLE_APPLICATION_CREDENTIALS or the metadata \
                     server), or set `{}`, and network access to firestore.googleapis.com",
                    p.credentials_option
                )
            };
            ConnectError {
                kind: ConnectErrorKind::ConnectionProblem,
                message: format!("{describe}: connect: {e}; {hint}"),
            }
        })?;
        let routing = format!("project_id={}&database_id={}", url_encode(project), url_encode(database_id))
            .parse()
            .map_err(|_| ConnectError {
                kind: ConnectErrorKind::BadParameter,
                message: format!("{describe}: the project or database id is not valid in a header"),
            })?;
        Ok(Connection { db, routing, parent: format!("{database}/documents"), database, describe })
    }

    /// `msg` as a request carrying the routing header
    /// (`x-goog-request-params: project_id=...&database_id=...`), which
    /// Firestore uses to route calls to a named database.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("x-goog-request-params", self.routing.clone());
        r
    }

    /// The raw gRPC client, taking answers up to `max_decode` bytes.
    pub fn raw(&self, max_decode: usize) -> FirestoreClient<GoogleAuthMiddleware> {
        let api: &GoogleApi<FirestoreClient<GoogleAuthMiddleware>> = self.db.client();
        api.get().max_decoding_message_size(max_decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_values_and_endpoints() {
        assert_eq!(url_encode("(default)"), "%28default%29");
        assert_eq!(url_encode("my-project_1.x~"), "my-project_1.x~");
        assert_eq!(api_url("localhost:8618"), "http://localhost:8618");
        assert_eq!(api_url("https://firestore.example"), "https://firestore.example");
    }
}
