//! Microsoft Entra ID tokens for the Blob service (scope
//! `https://storage.azure.com/.default`), as small OAuth2 requests: the
//! client-credentials grant with a client secret or a federated token
//! (workload identity), and the managed identity endpoints (IMDS on VMs and
//! AKS nodes, `IDENTITY_ENDPOINT` on App Service). A token is cached until
//! 5 minutes before it expires; one fetch at a time. Tokens and secrets
//! never reach a message or a log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Client, Method, Request, Url};

use super::client::{percent_encode, transport_error};
use super::config::{CredentialSpec, Secret};
use crate::blob::{BlobError, BlobErrorKind, Result};

/// The OAuth2 scope of the Blob service.
pub const SCOPE: &str = "https://storage.azure.com/.default";
/// The resource managed identity endpoints take instead of a scope.
pub const RESOURCE: &str = "https://storage.azure.com";
/// The Instance Metadata Service's token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// A token is renewed this long before it expires.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// Timeout of one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(15);

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// A token source and its cached token.
pub(crate) struct TokenCache {
    spec: CredentialSpec,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenCache {
    pub(crate) fn new(spec: CredentialSpec) -> TokenCache {
        TokenCache { spec, cached: tokio::sync::Mutex::new(None) }
    }

    /// A valid token: the cached one, or a new one.
    pub(crate) async fn token(&self, http: &Client) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let req = token_request(&self.spec).await?;
        let what = format!("Entra ID token ({})", self.spec.kind());
        let resp = http.execute(req).await.map_err(|e| {
            let unreachable = e.is_connect() || e.is_timeout();
            let e = transport_error(e);
            if matches!(self.spec, CredentialSpec::Imds { .. }) && unreachable {
                BlobError::new(
                    BlobErrorKind::AccessDenied,
                    format!(
                        "{what}: the managed identity endpoint is unreachable ({e}); off Azure, set AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING or AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET"
                    ),
                )
            } else {
                BlobError::connection(format!("{what}: {e}"))
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| BlobError::connection(format!("{what}: {}", transport_error(e))))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let (token, lifetime) = parse_token_response(&what, status, &body, now)?;
        let early = if lifetime > REFRESH_BEFORE * 2 { lifetime - REFRESH_BEFORE } else { lifetime / 2 };
        tracing::debug!(credential = self.spec.kind(), lifetime_s = lifetime.as_secs(), "got an Entra ID token");
        *cached = Some(Cached { token: token.clone(), refresh_at: Instant::now() + early });
        Ok(token)
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k, false), percent_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url(base: &str, query: &[(&str, &str)]) -> Result<Url> {
    let full = match form(query) {
        q if q.is_empty() => base.to_string(),
        q => format!("{base}{}{q}", if base.contains('?') { '&' } else { '?' }),
    };
    Url::parse(&full).map_err(|e| BlobError::bad(format!("Entra ID token endpoint {base:?} is not a URL: {e}")))
}

fn post_form(token_url: &str, body: String) -> Result<Request> {
    let mut req = Request::new(Method::POST, url(token_url, &[])?);
    req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    *req.body_mut() = Some(Bytes::from(body).into());
    Ok(req)
}

/// The token request of a credential (reads the federated token file).
pub(crate) async fn token_request(spec: &CredentialSpec) -> Result<Request> {
    let mut req = match spec {
        CredentialSpec::ClientSecret { token_url, client_id, secret } => post_form(
            token_url,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret.expose()),
                ("scope", SCOPE),
            ]),
        )?,
        CredentialSpec::WorkloadIdentity { token_url, client_id, token_file } => {
            let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                BlobError::new(
                    BlobErrorKind::AccessDenied,
                    format!(
                        "Entra ID workload identity: read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                        token_file.display()
                    ),
                )
            })?;
            post_form(
                token_url,
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.trim()),
                    ("scope", SCOPE),
                ]),
            )?
        }
        CredentialSpec::AppService { endpoint, header, client_id } => {
            let mut q = vec![("api-version", "2019-08-01"), ("resource", RESOURCE)];
            if let Some(c) = client_id {
                q.push(("client_id", c));
            }
            let mut req = Request::new(Method::GET, url(endpoint, &q)?);
            let v = HeaderValue::from_str(header.expose())
                .map_err(|_| BlobError::bad("IDENTITY_HEADER is not a valid header value"))?;
            req.headers_mut().insert("x-identity-header", v);
            req
        }
        CredentialSpec::Imds { client_id } => {
            let mut q = vec![("api-version", "2018-02-01"), ("resource", RESOURCE)];
            if let Some(c) = client_id {
                q.push(("client_id", c));
            }
            let mut req = Request::new(Method::GET, url(IMDS_ENDPOINT, &q)?);
            req.headers_mut().insert("metadata", HeaderValue::from_static("true"));
            req
        }
        CredentialSpec::SharedKey(_) | CredentialSpec::Sas(_) => {
            return Err(BlobError::internal("a shared key or SAS has no Entra ID token"));
        }
    };
    *req.timeout_mut() = Some(TOKEN_TIMEOUT);
    Ok(req)
}

fn seconds(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The token and its lifetime from a token endpoint's answer; `now` in Unix
/// seconds (for `expires_on`). Errors carry the endpoint's `error` and
/// `error_description`, never the body's token.
pub(crate) fn parse_token_response(what: &str, status: u16, body: &str, now: u64) -> Result<(Secret, Duration)> {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(|v| v.as_str()).unwrap_or_default();
    if !(200..300).contains(&status) {
        let kind =
            if status == 429 || status >= 500 { BlobErrorKind::ConnectionProblem } else { BlobErrorKind::AccessDenied };
        let detail = match (field("error"), field("error_description")) {
            ("", "") => json.as_ref().and_then(|j| j.get("message")).and_then(|v| v.as_str()).unwrap_or("").to_string(),
            (e, d) => format!("{e}: {d}"),
        };
        let detail = detail.lines().next().unwrap_or_default().to_string();
        return Err(BlobError::new(kind, format!("{what}: HTTP {status}: {detail}")));
    }
    let token = field("access_token");
    if token.is_empty() {
        return Err(BlobError::new(BlobErrorKind::AccessDenied, format!("{what}: the answer has no access_token")));
    }
    let j = json.as_ref();
    let lifetime = seconds(j.and_then(|j| j.get("expires_in")))
        .or_else(|| seconds(j.and_then(|j| j.get("expires_on"))).map(|on| on.saturating_sub(now)))
        .unwrap_or(600);
    Ok((Secret::new(token), Duration::from_secs(lifetime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &Request) -> String {
        String::from_utf8(req.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn requests() {
        let cs = CredentialSpec::ClientSecret {
            token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token".into(),
            client_id: "c1".into(),
            secret: Secret::new("s&e=cret"),
        };
        let r = token_request(&cs).await.unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.url().as_str(), "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
        assert_eq!(
            body(&r),
            "grant_type=client_credentials&client_id=c1&client_secret=s%26e%3Dcret&scope=https%3A%2F%2Fstorage.azure.com%2F.default"
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "eyJfederated\n").unwrap();
        let wi = CredentialSpec::WorkloadIdentity {
            token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token".into(),
            client_id: "c1".into(),
            token_file: file,
        };
        let b = body(&token_request(&wi).await.unwrap());
        assert!(b.contains("client_assertion=eyJfederated&"), "{b}");
        assert!(b.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"));
        let missing = CredentialSpec::WorkloadIdentity {
            token_url: "https://x/t".into(),
            client_id: "c".into(),
            token_file: dir.path().join("nope"),
        };
        let e = token_request(&missing).await.unwrap_err();
        assert!(e.message.contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");

        let imds = token_request(&CredentialSpec::Imds { client_id: Some("u1".into()) }).await.unwrap();
        assert_eq!(
            imds.url().as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com&client_id=u1"
        );
        assert_eq!(imds.headers()["metadata"], "true");

        let app = CredentialSpec::AppService {
            endpoint: "http://127.0.0.1:41741/msi/token".into(),
            header: Secret::new("hdr"),
            client_id: None,
        };
        let r = token_request(&app).await.unwrap();
        assert_eq!(
            r.url().as_str(),
            "http://127.0.0.1:41741/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com"
        );
        assert_eq!(r.headers()["x-identity-header"], "hdr");
    }

    #[test]
    fn responses() {
        let (t, l) =
            parse_token_response("w", 200, r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#, 0)
                .unwrap();
        assert_eq!((t.expose(), l.as_secs()), ("tok", 3599));
        // IMDS and App Service: strings, expires_on in Unix seconds.
        let (_, l) =
            parse_token_response("w", 200, r#"{"access_token":"t","expires_on":"1700003600"}"#, 1_700_000_000).unwrap();
        assert_eq!(l.as_secs(), 3600);
        let (_, l) = parse_token_response("w", 200, r#"{"access_token":"t","expires_in":"86399"}"#, 0).unwrap();
        assert_eq!(l.as_secs(), 86399);
        let e = parse_token_response(
            "Entra ID token",
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#,
            0,
        )
        .unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::AccessDenied);
        assert!(e.message.contains("invalid_client: AADSTS7000215") && !e.message.contains("Trace"), "{e}");
        let e = parse_token_response("w", 503, "busy", 0).unwrap_err();
        assert!(e.is_transient());
        let e = parse_token_response("w", 200, "{}", 0).unwrap_err();
        assert!(e.message.contains("no access_token"));
    }
}
