//! The few endpoints of the Cloud Storage JSON API v1 the store uses, over
//! reqwest: object metadata (get, patch, delete, list), media downloads,
//! multipart and resumable uploads, bucket get and insert. Every request
//! carries the credentials' headers (none for a plain-http emulator); answers
//! are mapped to [`BlobError`]s whose messages name the store and the object.
//! Transient failures (429, 408, 5xx, timeouts, connection errors) are of
//! kind `ConnectionProblem`, which `blob::retry` retries.
//!
//! Resumable session URIs are credentials of a kind (anyone holding one may
//! upload to it): they never appear in messages or logs, and reqwest errors
//! are stripped of their URL.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::blob::retry::{RetryPolicy, retry};
use crate::blob::{BlobError, BlobErrorKind, BlobInfo, Result, SHA256_METADATA};
use crate::gcp::auth::GoogleCredentials;
use crate::gcp::url_encode;

/// Google's endpoint.
pub const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";

/// Timeout of one metadata request (head, list page, delete, patch, session start).
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP and TLS connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A transfer that moves no byte for this long has failed (uploads of a
/// chunk and downloads have no overall timeout).
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Status "Resume Incomplete" of a resumable upload.
pub const RESUME_INCOMPLETE: u16 = 308;
/// Status GCS answers a cancelled resumable session with.
const CLIENT_CLOSED: u16 = 499;

/// An object resource, the fields the store reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectResource {
    /// Full object name.
    pub name: String,
    /// Size in bytes (a decimal string in the JSON API).
    #[serde(default)]
    pub size: Option<serde_json::Value>,
    /// Generation (decimal string).
    #[serde(default)]
    pub generation: Option<serde_json::Value>,
    /// Last update (RFC 3339).
    #[serde(default)]
    pub updated: Option<String>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: Option<HashMap<String, serde_json::Value>>,
}

fn number(v: &Option<serde_json::Value>) -> Option<u64> {
    match v {
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    }
}

impl ObjectResource {
    /// The size in bytes (0 when the server sent none).
    pub fn size(&self) -> u64 {
        number(&self.size).unwrap_or(0)
    }

    /// The generation, when known.
    pub fn generation(&self) -> Option<u64> {
        number(&self.generation)
    }

    /// The stored SHA-256, when it looks like one.
    pub fn sha256(&self) -> Option<String> {
        let v = self.metadata.as_ref()?.get(SHA256_METADATA)?.as_str()?.to_ascii_lowercase();
        (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
    }

    /// What the store reports, under `key`.
    pub fn info(&self, key: String) -> BlobInfo {
        BlobInfo {
            key,
            size: self.size(),
            sha256: self.sha256(),
            etag: self.generation().map(|g| g.to_string()),
            modified: self
                .updated
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    items: Vec<ObjectResource>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

/// The end of a chunk request to a resumable session.
#[derive(Debug)]
pub enum SessionState {
    /// The server has persisted this many bytes; the object does not exist yet.
    Incomplete(u64),
    /// The upload is finished: the object.
    Done(Box<ObjectResource>),
}

/// A client of one bucket.
pub struct Api {
    client: reqwest::Client,
    /// `https://storage.googleapis.com` or an emulator's URL (no trailing `/`).
    base: String,
    auth: Option<GoogleCredentials>,
    /// The bucket.
    pub bucket: String,
    /// The store, for messages (no secrets).
    pub describe: String,
    /// Retries of every request.
    pub policy: RetryPolicy,
    /// Cloud KMS key of new objects (`keyName`), if any.
    pub kms_key: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// A transport error's message with its causes, without the URL.
fn transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// The `message` of a JSON API error answer, else the start of the body.
fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_string));
    let msg = from_json.unwrap_or_else(|| body.trim().to_string());
    let mut msg: String = msg.chars().take(300).collect();
    if msg.is_empty() {
        msg = "(no message)".into();
    }
    msg
}

impl Api {
    /// A client of `bucket` at `base`, authenticated with `auth` when given.
    pub fn new(base: &str, auth: Option<GoogleCredentials>, bucket: &str, describe: &str) -> Result<Api> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(format!("teleport-rs/{}", crate::VERSION))
            .build()
            .map_err(|e| BlobError::internal(format!("{describe}: HTTP client: {}", transport(e))))?;
        Ok(Api {
            client,
            base: base.trim_end_matches('/').to_string(),
            auth,
            bucket: bucket.to_string(),
            describe: describe.to_string(),
            policy: RetryPolicy::default(),
            kms_key: None,
        })
    }

    /// The URL of the object resource `name`.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}", self.base, url_encode(&self.bucket), url_encode(name))
    }

    /// The URL uploads start at (`uploadType` to add).
    pub fn upload_url(&self, upload_type: &str) -> String {
        let mut url =
            format!("{}/upload/storage/v1/b/{}/o?uploadType={upload_type}", self.base, url_encode(&self.bucket));
        if let Some(key) = &self.kms_key {
            url.push_str(&format!("&kmsKeyName={}", url_encode(key)));
        }
        url
    }

    /// A request with the credentials' headers when `url` is ours.
    pub async fn request(&self, method: Method, url: &str, what: &str) -> Result<RequestBuilder> {
        let mut rb = self.client.request(method, url);
        if let Some(auth) = &self.auth
            && url.starts_with(&format!("{}/", self.base))
        {
            let headers: HeaderMap = auth.headers().await.map_err(|e| {
                let kind = if e.transient { BlobErrorKind::ConnectionProblem } else { BlobErrorKind::AccessDenied };
                BlobError::new(kind, format!("{what}: {}", e.message))
            })?;
            rb = rb.headers(headers);
        }
        Ok(rb)
    }

    /// Sends, mapping transport failures (`what` names the request).
    pub async fn send(&self, rb: RequestBuilder, what: &str) -> Result<Response> {
        rb.send().await.map_err(|e| {
            let kind = if e.is_builder() { BlobErrorKind::Internal } else { BlobErrorKind::ConnectionProblem };
            BlobError::new(kind, format!("{what}: {}", transport(e)))
        })
    }

    /// The error an unsuccessful answer stands for (reads the body).
    pub async fn status_error(&self, resp: Response, what: &str) -> BlobError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let msg = error_message(&body);
        let code = status.as_u16();
        let (kind, hint) = match code {
            401 | 403 => (
                BlobErrorKind::AccessDenied,
                "; check the credentials (credentialsPath or the application default credentials) and that \
                 they may use the bucket (roles/storage.objectAdmin)",
            ),
            404 => (BlobErrorKind::NotFound, ""),
            408 | 429 | 500..=599 => (BlobErrorKind::ConnectionProblem, ""),
            400 => (BlobErrorKind::BadParameter, ""),
            _ => (BlobErrorKind::Internal, ""),
        };
        BlobError::new(kind, format!("{what}: HTTP {code}: {msg}{hint}"))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, resp: Response, what: &str) -> Result<T> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| BlobError::connection(format!("{what}: reading the answer: {}", transport(e))))?;
        serde_json::from_slice(&bytes).map_err(|e| BlobError::internal(format!("{what}: unexpected answer: {e}")))
    }

    /// The answer's JSON body when it is a success, else the error it says.
    async fn success_json<T: serde::de::DeserializeOwned>(&self, resp: Response, what: &str) -> Result<T> {
        if resp.status().is_success() { self.json(resp, what).await } else { Err(self.status_error(resp, what).await) }
    }

    /// The object `name`, or None.
    pub async fn get_object(&self, name: &str, what: &str) -> Result<Option<ObjectResource>> {
        let url = self.object_url(name);
        retry(self.policy, what, || async {
            let rb = self.request(Method::GET, &url, what).await?.timeout(METADATA_TIMEOUT);
            let resp = self.send(rb, what).await?;
            match resp.status() {
                s if s.is_success() => Ok(Some(self.json(resp, what).await?)),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(self.status_error(resp, what).await),
            }
        })
        .await
    }

    /// Deletes `name`; true when it existed.
    pub async fn delete_object(&self, name: &str, what: &str) -> Result<bool> {
        let url = self.object_url(name);
        retry(self.policy, what, || async {
            let rb = self.request(Method::DELETE, &url, what).await?.timeout(METADATA_TIMEOUT);
            let resp = self.send(rb, what).await?;
            match resp.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self.status_error(resp, what).await),
            }
        })
        .await
    }

    /// Sets custom metadata of generation `generation` of `name`.
    pub async fn patch_metadata(
        &self,
        name: &str,
        generation: Option<u64>,
        metadata: serde_json::Value,
        what: &str,
    ) -> Result<ObjectResource> {
        let mut url = self.object_url(name);
        if let Some(g) = generation {
            url.push_str(&format!("?ifGenerationMatch={g}"));
        }
        let body = serde_json::json!({ "metadata": metadata });
        retry(self.policy, what, || async {
            let rb = self.request(Method::PATCH, &url, what).await?.timeout(METADATA_TIMEOUT).json(&body);
            let resp = self.send(rb, what).await?;
            self.success_json(resp, what).await
        })
        .await
    }

    /// One page of objects named `prefix*`, from `start_offset` (inclusive).
    pub async fn list_page(
        &self,
        prefix: &str,
        start_offset: Option<&str>,
        page_token: Option<&str>,
        max: usize,
        what: &str,
    ) -> Result<(Vec<ObjectResource>, Option<String>)> {
        let mut url = format!(
            "{}/storage/v1/b/{}/o?maxResults={max}&fields={}",
            self.base,
            url_encode(&self.bucket),
            url_encode("items(name,size,generation,updated,metadata),nextPageToken")
        );
        if !prefix.is_empty() {
            url.push_str(&format!("&prefix={}", url_encode(prefix)));
        }
        if let Some(s) = start_offset {
            url.push_str(&format!("&startOffset={}", url_encode(s)));
        }
        if let Some(t) = page_token {
            url.push_str(&format!("&pageToken={}", url_encode(t)));
        }
        retry(self.policy, what, || async {
            let rb = self.request(Method::GET, &url, what).await?.timeout(METADATA_TIMEOUT);
            let resp = self.send(rb, what).await?;
            let page: ListResponse = self.success_json(resp, what).await?;
            Ok((page.items, page.next_page_token.filter(|t| !t.is_empty())))
        })
        .await
    }

    /// A media download of `name` (generation `generation`), with an HTTP
    /// `Range` when given; one attempt (the caller resumes).
    pub async fn download(
        &self,
        name: &str,
        generation: Option<u64>,
        range: Option<&str>,
        what: &str,
    ) -> Result<Response> {
        let mut url = format!("{}?alt=media", self.object_url(name));
        if let Some(g) = generation {
            url.push_str(&format!("&generation={g}"));
        }
        let mut rb = self.request(Method::GET, &url, what).await?;
        if let Some(r) = range {
            rb = rb.header(RANGE, r);
        }
        self.send(rb, what).await
    }

    /// A whole object in one `uploadType=multipart` request (object
    /// resource and bytes), for uploads that fit in one chunk.
    pub async fn multipart_upload(
        &self,
        resource: &serde_json::Value,
        data: Bytes,
        what: &str,
    ) -> Result<ObjectResource> {
        let boundary = format!("teleport-{}", uuid::Uuid::new_v4().simple());
        let json = serde_json::to_vec(resource).map_err(|e| BlobError::internal(format!("{what}: {e}")))?;
        let mut body = Vec::with_capacity(data.len() + json.len() + 256);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&json);
        body.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let body = Bytes::from(body);
        let url = self.upload_url("multipart");
        let content_type = format!("multipart/related; boundary={boundary}");
        retry(self.policy, what, || async {
            let rb =
                self.request(Method::POST, &url, what).await?.header(CONTENT_TYPE, &content_type).body(body.clone());
            let resp = self.send(rb, what).await?;
            self.success_json(resp, what).await
        })
        .await
    }

    /// Starts a resumable upload of `resource`; returns the session URI.
    pub async fn start_session(&self, resource: &serde_json::Value, what: &str) -> Result<String> {
        let url = self.upload_url("resumable");
        retry(self.policy, what, || async {
            let rb = self.request(Method::POST, &url, what).await?.timeout(METADATA_TIMEOUT).json(resource);
            let resp = self.send(rb, what).await?;
            if !resp.status().is_success() {
                return Err(self.status_error(resp, what).await);
            }
            match resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
                Some(l) if l.starts_with("http://") || l.starts_with("https://") => Ok(l.to_string()),
                _ => Err(BlobError::internal(format!("{what}: the server started no resumable session (no Location)"))),
            }
        })
        .await
    }

    /// One request to a resumable session: `body` at `content_range`
    /// (`bytes a-b/total`, `bytes a-b/*`, `bytes */total` or the status
    /// query `bytes */*`). One attempt.
    pub async fn session_put(
        &self,
        session: &str,
        content_range: &str,
        body: Bytes,
        what: &str,
    ) -> Result<SessionState> {
        // Generous: a chunk may cross a slow link (at least 128 KiB/s).
        let timeout = METADATA_TIMEOUT + Duration::from_secs((body.len() as u64 >> 20) * 8);
        let rb = self
            .request(Method::PUT, session, what)
            .await?
            .timeout(timeout)
            .header(CONTENT_RANGE, content_range)
            .body(body);
        let resp = self.send(rb, what).await?;
        let code = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(SessionState::Done(Box::new(self.json(resp, what).await?)));
        }
        if code == RESUME_INCOMPLETE {
            // `Range: bytes=0-N` persisted; no header: nothing yet.
            let persisted = match resp.headers().get(RANGE).and_then(|r| r.to_str().ok()) {
                None => 0,
                Some(r) => r
                    .trim()
                    .strip_prefix("bytes=0-")
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(|n| n + 1)
                    .ok_or_else(|| BlobError::internal(format!("{what}: unexpected Range {r:?} in a 308")))?,
            };
            return Ok(SessionState::Incomplete(persisted));
        }
        if code == 404 || code == 410 {
            let e = self.status_error(resp, what).await;
            return Err(BlobError::internal(format!("{}; the resumable session expired or was cancelled", e.message)));
        }
        Err(self.status_error(resp, what).await)
    }

    /// Cancels a resumable session (nothing is published).
    pub async fn cancel_session(&self, session: &str, what: &str) -> Result<()> {
        retry(self.policy, what, || async {
            let rb = self.request(Method::DELETE, session, what).await?.timeout(METADATA_TIMEOUT);
            let resp = self.send(rb, what).await?;
            match resp.status().as_u16() {
                c if (200..300).contains(&c) || c == CLIENT_CLOSED || c == 404 || c == 410 => Ok(()),
                _ => Err(self.status_error(resp, what).await),
            }
        })
        .await
    }

    /// Whether the bucket exists: Some(true) yes, Some(false) no, None when
    /// the credentials may not read bucket metadata (403; objects may still work).
    pub async fn bucket_exists(&self) -> Result<Option<bool>> {
        let url = format!("{}/storage/v1/b/{}", self.base, url_encode(&self.bucket));
        let what = format!("{}: bucket {}", self.describe, self.bucket);
        retry(self.policy, &what, || async {
            let rb = self.request(Method::GET, &url, &what).await?.timeout(METADATA_TIMEOUT);
            let resp = self.send(rb, &what).await?;
            match resp.status() {
                s if s.is_success() => Ok(Some(true)),
                StatusCode::NOT_FOUND => Ok(Some(false)),
                StatusCode::FORBIDDEN => Ok(None),
                _ => Err(self.status_error(resp, &what).await),
            }
        })
        .await
    }

    /// Creates the bucket in `project` as upstream does: versioning on,
    /// project-private ACLs, the KMS key as default when given. A 409 (it
    /// exists now) is fine.
    pub async fn create_bucket(&self, project: &str) -> Result<()> {
        let url = format!(
            "{}/storage/v1/b?project={}&predefinedAcl=projectPrivate&predefinedDefaultObjectAcl=projectPrivate",
            self.base,
            url_encode(project)
        );
        let mut body = serde_json::json!({ "name": self.bucket, "versioning": { "enabled": true } });
        if let Some(key) = &self.kms_key {
            body["encryption"] = serde_json::json!({ "defaultKmsKeyName": key });
        }
        let what = format!("{}: create bucket {} in project {project}", self.describe, self.bucket);
        retry(self.policy, &what, || async {
            let rb = self.request(Method::POST, &url, &what).await?.timeout(METADATA_TIMEOUT).json(&body);
            let resp = self.send(rb, &what).await?;
            match resp.status() {
                s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
                _ => Err(self.status_error(resp, &what).await),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_and_resources() {
        assert_eq!(error_message(r#"{"error":{"code":404,"message":"No such object: b/o"}}"#), "No such object: b/o");
        assert_eq!(error_message(""), "(no message)");
        assert_eq!(error_message(&"x".repeat(1000)).len(), 300);
        let r: ObjectResource = serde_json::from_str(
            r#"{"name":"p/k","size":"12","generation":"1700000000000001","updated":"2024-05-01T10:00:00.123Z",
                "metadata":{"sha256":"AB"}}"#,
        )
        .unwrap();
        let info = r.info("k".into());
        assert_eq!((info.size, info.etag.as_deref(), info.sha256), (12, Some("1700000000000001"), None));
        assert!(info.modified.is_some());
        let sha = "a".repeat(64);
        let r: ObjectResource =
            serde_json::from_value(serde_json::json!({"name": "k", "size": 3, "metadata": {"sha256": sha}})).unwrap();
        assert_eq!((r.size(), r.sha256()), (3, Some(sha)));
    }
}
