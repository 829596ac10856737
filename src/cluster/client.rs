//! The Auth API client used by `tctl` (and later `tsh`, proxies and nodes):
//! one HTTP/1.1 request per TLS connection, the server verified against the
//! cluster's CA certificates under the name every auth server carries
//! ([`API_SERVER_NAME`]), the client identified by its certificate when it
//! has one.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::AuthErrorKind;
use super::auth::api::kind_from_wire;
use super::auth::service::API_SERVER_NAME;
use super::identity::Identity;
use crate::crypto;

/// How long a call may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed call: the server's error kind and message, or a transport
/// failure (kind Internal, naming the address).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    /// The kind the server reported.
    pub kind: AuthErrorKind,
    /// The message.
    pub message: String,
    /// True when the server was never reached or the handshake failed.
    pub transport: bool,
}

impl ClientError {
    fn transport(message: String) -> ClientError {
        ClientError { kind: AuthErrorKind::Internal, message, transport: true }
    }
}

/// A client of one auth server.
#[derive(Clone)]
pub struct ApiClient {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("addr", &self.addr).finish()
    }
}

impl ApiClient {
    /// A client of the auth server at `addr` (`host:port`) with `identity`.
    pub fn new(addr: &str, identity: &Identity) -> Result<ApiClient, ClientError> {
        let roots: Vec<&[u8]> = identity.tls_ca_certs.iter().map(|c| c.as_bytes()).collect();
        let tls = crypto::tls::client_config(&roots, identity.tls_cert.as_bytes(), identity.key_pem.as_bytes())
            .map_err(|e| ClientError::transport(format!("cannot use the identity: {e}")))?;
        Ok(ApiClient { addr: addr.to_string(), tls })
    }

    /// A client without a certificate (login, join, signup), trusting `ca_certs`.
    pub fn anonymous(addr: &str, ca_certs: &[String]) -> Result<ApiClient, ClientError> {
        crypto::install_default_provider();
        let mut roots = rustls::RootCertStore::empty();
        for pem in ca_certs {
            for der in crypto::tls::certs_from_pem(pem.as_bytes()).map_err(|e| ClientError::transport(e.to_string()))? {
                roots.add(der).map_err(|e| ClientError::transport(format!("CA certificate: {e}")))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiClient { addr: addr.to_string(), tls: Arc::new(tls) })
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// GET `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>("GET", path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.call("POST", path, Some(body)).await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>("DELETE", path, None).await
    }

    /// One call.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(method, path, body)).await.map_err(|_| {
            ClientError::transport(format!("auth server {}: no answer within {CALL_TIMEOUT:?}", self.addr))
        })?
    }

    async fn call_inner<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let addr = &self.addr;
        let tcp = tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map_err(|e| ClientError::transport(format!("cannot connect to the auth server at {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(API_SERVER_NAME)
            .map_err(|e| ClientError::transport(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::transport(format!("TLS handshake with the auth server at {addr} failed: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::transport(format!("auth server {addr}: {e}")))?;
        let conn_task = tokio::spawn(conn);
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::transport(format!("encode request: {e}")))?,
            None => Vec::new(),
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", API_SERVER_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::transport(format!("build request: {e}")))?;
        let resp =
            sender.send_request(req).await.map_err(|e| ClientError::transport(format!("auth server {addr}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::transport(format!("auth server {addr}: reading the answer: {e}")))?
            .to_bytes();
        conn_task.abort();
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let err = &v["error"];
            let message = err["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("auth server {addr} answered {status}: {}", String::from_utf8_lossy(&body)));
            return Err(ClientError {
                kind: kind_from_wire(err["kind"].as_str().unwrap_or_default()),
                message,
                transport: false,
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::transport(format!("auth server {addr}: unexpected answer: {e}")))
    }
}
