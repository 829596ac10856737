//! The HTTP side of the Azure Blob store: building a Blob service request
//! (URL, `x-ms-version`, `x-ms-date`), authorizing it, sending it with
//! retries (408, 429, 500, 502, 503, 504, timeouts and connection errors,
//! through `blob::retry`), and turning failures into [`BlobError`]s that
//! name the store, the key and the service's error code, scrubbed of any
//! secret.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method, Request, Response, StatusCode, Url};

use super::auth::Auth;
use super::config::{Location, Secret};
use super::xml;
use crate::blob::retry::{RetryPolicy, retry};
use crate::blob::{BlobError, BlobErrorKind, Result};

/// The Blob service REST API version every request asks for (Azurite 3.37
/// accepts it without `--skipApiVersionCheck`).
pub const API_VERSION: &str = "2021-12-02";
/// TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any read (response headers or the next body bytes).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of a request without a large body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Percent-encodes everything but RFC 3986's unreserved characters (and
/// `/` when `keep_slash`, for blob paths).
pub fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A transport error without its URL (which may carry a SAS), with its
/// causes ("connection refused", "operation timed out").
pub(crate) fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = cause.source();
    }
    msg
}

/// The HTTP client every store uses: rustls (aws-lc-rs) with the system's
/// roots, no transparent decompression (ranges and sizes are the blob's).
pub fn http_client() -> std::result::Result<Client, String> {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .no_gzip()
        .user_agent(concat!("teleport-rs/", env!("CARGO_PKG_VERSION"), " azblob"))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// One request to the Blob service.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// The full blob name (the store's prefix applied); `None` for the container.
    pub blob: Option<String>,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
    /// Statuses handed to the caller as they are, besides 2xx (404, 416...).
    pub accept: &'static [u16],
    /// Whole-request timeout; `None` for streamed downloads (each read
    /// still times out after [`READ_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl Call {
    pub(crate) fn new(method: Method, blob: Option<String>) -> Call {
        Call {
            method,
            blob,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            accept: &[],
            timeout: Some(REQUEST_TIMEOUT),
        }
    }

    pub(crate) fn query(mut self, k: &'static str, v: impl Into<String>) -> Call {
        self.query.push((k, v.into()));
        self
    }

    pub(crate) fn header(mut self, k: &'static str, v: impl Into<String>) -> Call {
        self.headers.push((k, v.into()));
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Call {
        // A minute, plus two seconds a MiB (a slow 512 KiB/s link).
        self.timeout = Some(REQUEST_TIMEOUT + Duration::from_secs(2 * (body.len() as u64 >> 20)));
        self.body = Some(body);
        self
    }

    /// No whole-request timeout (a download streamed for as long as it takes).
    pub(crate) fn streamed(mut self) -> Call {
        self.timeout = None;
        self
    }

    pub(crate) fn accept(mut self, statuses: &'static [u16]) -> Call {
        self.accept = statuses;
        self
    }
}

/// What every request of a store shares.
pub(crate) struct Inner {
    pub http: Client,
    pub loc: Location,
    pub auth: Auth,
    /// What the credential is (`shared key`, ...), for messages.
    pub credential: &'static str,
    /// The store in messages: its URI without secrets.
    pub describe: String,
    pub retry: RetryPolicy,
    /// Removed from every message, should a service echo one.
    pub secrets: Vec<Secret>,
}

impl Inner {
    /// The full blob name of a key.
    pub(crate) fn blob_name(&self, key: &str) -> String {
        if self.loc.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.loc.prefix) }
    }

    /// `<endpoint>/<container>[/<blob>]?<query>`, encoded.
    pub(crate) fn url(&self, blob: Option<&str>, query: &[(&str, String)]) -> Result<Url> {
        let mut s = format!("{}/{}", self.loc.endpoint, self.loc.container);
        if let Some(b) = blob {
            s.push('/');
            s.push_str(&percent_encode(b, true));
        }
        if !query.is_empty() {
            s.push('?');
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k, false), percent_encode(v, false)))
                .collect();
            s.push_str(&q.join("&"));
        }
        Url::parse(&s).map_err(|e| BlobError::internal(format!("{}: URL of {blob:?}: {e}", self.describe)))
    }

    /// Removes secrets from a message.
    pub(crate) fn scrub(&self, mut s: String) -> String {
        for secret in &self.secrets {
            if secret.expose().len() >= 4 && s.contains(secret.expose()) {
                s = s.replace(secret.expose(), "REDACTED");
            }
        }
        s
    }

    fn build(&self, call: &Call) -> Result<Request> {
        let url = self.url(call.blob.as_deref(), &call.query)?;
        let mut req = Request::new(call.method.clone(), url);
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let headers = req.headers_mut();
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        for (k, v) in std::iter::once(&("x-ms-date", date)).chain(call.headers.iter()) {
            // Sent as signed whatever a server's whitespace rule: no runs
            // of whitespace, nothing around the value.
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            let value = HeaderValue::from_str(&v)
                .map_err(|_| BlobError::bad(format!("{}: header {k} has a value HTTP cannot carry", self.describe)))?;
            headers.insert(HeaderName::from_static(k), value);
        }
        if let Some(body) = &call.body {
            *req.body_mut() = Some(body.clone().into());
        } else if matches!(call.method, Method::PUT | Method::POST) {
            *req.body_mut() = Some(Bytes::new().into());
        }
        *req.timeout_mut() = call.timeout;
        Ok(req)
    }

    async fn attempt(&self, call: &Call, what: &str) -> Result<Response> {
        let mut req = self.build(call)?;
        self.auth.authorize(&self.http, &mut req).await?;
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| BlobError::connection(self.scrub(format!("{what}: {}", transport_error(e)))))?;
        let status = resp.status();
        tracing::debug!(method = %call.method, blob = call.blob.as_deref().unwrap_or(""), status = status.as_u16(), "azure blob request");
        if status.is_success() || call.accept.contains(&status.as_u16()) {
            return Ok(resp);
        }
        Err(self.error_from(resp, what).await)
    }

    /// Sends `call`, retrying transient failures; `what` (store, key,
    /// operation) starts every error message.
    pub(crate) async fn send(&self, call: Call, what: &str) -> Result<Response> {
        retry(self.retry, what, || self.attempt(&call, what)).await
    }

    /// The error of a failed response.
    pub(crate) async fn error_from(&self, resp: Response, what: &str) -> BlobError {
        let f = Failure::read(resp).await;
        self.status_error(what, f.status, &f.code, &f.message, f.request_id.as_deref())
    }

    /// An error for a status and the service's code and message.
    pub(crate) fn status_error(
        &self,
        what: &str,
        status: StatusCode,
        code: &str,
        message: &str,
        request_id: Option<&str>,
    ) -> BlobError {
        let kind = match status.as_u16() {
            404 => BlobErrorKind::NotFound,
            401 | 403 => BlobErrorKind::AccessDenied,
            408 | 429 | 500 | 502 | 503 | 504 => BlobErrorKind::ConnectionProblem,
            _ => BlobErrorKind::Internal,
        };
        let mut msg = format!("{what}: HTTP {}", status.as_u16());
        if !code.is_empty() {
            msg.push_str(&format!(" {code}"));
        }
        if !message.is_empty() {
            msg.push_str(&format!(": {message}"));
        }
        if kind == BlobErrorKind::AccessDenied {
            msg.push_str(&format!("; access denied with the {} of account {:?}: ", self.credential, self.loc.account));
            msg.push_str(&self.access_hint());
        }
        if let Some(id) = request_id {
            msg.push_str(&format!(" (request id {id})"));
        }
        BlobError::new(kind, self.scrub(msg))
    }
}

impl Inner {
    /// What to check when access is denied, by credential.
    pub(crate) fn access_hint(&self) -> String {
        let container = &self.loc.container;
        match self.credential {
            "shared key" => "check the account key (AZURE_STORAGE_KEY or the connection string's AccountKey)".into(),
            "SAS token" => format!(
                "check the SAS token's expiry and permissions (read, write, delete, list; create for a missing container {container:?})"
            ),
            _ => format!(
                "check the identity's role assignment (Storage Blob Data Contributor on the account or on container {container:?})"
            ),
        }
    }
}

/// A failed response's status, error code, first line of message and request id.
pub(crate) struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl Failure {
    pub(crate) async fn read(resp: Response) -> Failure {
        let status = resp.status();
        let request_id = header(&resp, "x-ms-request-id").map(str::to_string);
        let code_header = header(&resp, "x-ms-error-code").map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        let (code, message) = xml::parse_error(&body).unwrap_or_default();
        let code = code_header.filter(|c| !c.is_empty()).unwrap_or(code);
        Failure { status, code, message, request_id }
    }
}

/// A response header as text.
pub(crate) fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("a b/c+d%e/日", true), "a%20b/c%2Bd%25e/%E6%97%A5");
        assert_eq!(percent_encode("QQ+/=", false), "QQ%2B%2F%3D");
    }
}
