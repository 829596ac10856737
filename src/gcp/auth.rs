//! Google credentials for the clients that speak Google's JSON APIs over
//! HTTP themselves (the Cloud Storage object store): a key file named in the
//! configuration, else the application default credentials
//! (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default login, the
//! metadata server on Google Cloud). `google-cloud-auth` caches the access
//! token and refreshes it before it expires; [`GoogleCredentials::headers`]
//! is cheap on every request. No token or key ever reaches a message or a log.

use std::path::{Path, PathBuf};

use google_cloud_auth::credentials::{
    self as creds, CacheableResource, Credentials, external_account, impersonated, service_account, user_account,
};
use http::Extensions;
use reqwest::header::HeaderMap;

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// Whether asking again later may succeed (the token endpoint or the
    /// metadata server did not answer).
    pub transient: bool,
    /// What failed and what to check, without secrets.
    pub message: String,
}

/// Credentials to send with each request.
#[derive(Clone)]
pub struct GoogleCredentials {
    inner: Credentials,
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Default,
}

impl std::fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::File(p) => write!(f, "GoogleCredentials(file {})", p.display()),
            Source::Default => f.write_str("GoogleCredentials(application default)"),
        }
    }
}

impl GoogleCredentials {
    /// The credentials of the key file `path` (a service account key, an
    /// `authorized_user` file from gcloud, an impersonated service account or
    /// a workload identity federation `external_account` file), or the
    /// application default credentials when `path` is None. Nothing is
    /// fetched yet.
    pub fn new(path: Option<&Path>) -> Result<GoogleCredentials, AuthError> {
        // rustls needs a process-wide crypto provider for the token requests.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let Some(path) = path else {
            let inner = creds::Builder::default().build().map_err(|e| AuthError {
                transient: false,
                message: format!(
                    "application default credentials: {e}; set GOOGLE_APPLICATION_CREDENTIALS, run \
                     `gcloud auth application-default login`, or name a key file"
                ),
            })?;
            return Ok(GoogleCredentials { inner, source: Source::Default });
        };
        let bad = |why: String| AuthError { transient: false, message: format!("{}: {why}", path.display()) };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("read: {e}")))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON credentials file: {e}")))?;
        let kind = json.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        let built = match kind.as_str() {
            "service_account" => service_account::Builder::new(json).build(),
            "authorized_user" => user_account::Builder::new(json).build(),
            "impersonated_service_account" => impersonated::Builder::new(json).build(),
            "external_account" => external_account::Builder::new(json).build(),
            other => {
                return Err(bad(format!(
                    "credentials of type {other:?} are not supported; use a service account key \
                     (\"type\": \"service_account\"), an authorized_user, impersonated_service_account or \
                     external_account file"
                )));
            }
        };
        let inner = built.map_err(|e| bad(format!("{kind} credentials: {e}")))?;
        Ok(GoogleCredentials { inner, source: Source::File(path.to_path_buf()) })
    }

    /// The headers to add to a request (`Authorization: Bearer ...`, and
    /// `x-goog-user-project` when a quota project is configured).
    pub async fn headers(&self) -> Result<HeaderMap, AuthError> {
        match self.inner.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            // Only returned when an entity tag is passed, which we never do.
            Ok(CacheableResource::NotModified) => {
                Err(AuthError { transient: true, message: "credentials: no headers returned; retrying".to_string() })
            }
            Err(e) => {
                let source = match &self.source {
                    Source::File(p) => format!("the key file {}", p.display()),
                    Source::Default => "the application default credentials".to_string(),
                };
                let mut message = format!("getting an access token from {source}: {e}");
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    message.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                Err(AuthError { transient: e.is_transient(), message })
            }
        }
    }
}
