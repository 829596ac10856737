//! `insecure=true`: an HTTP client for the AWS SDK that does not verify the
//! server's certificate chain or name (upstream's `InsecureSkipVerify`), for
//! S3-compatible servers with self-signed certificates. The SDK's own client
//! takes a trust store but no custom verifier, so this is a small client of
//! our own on the same stack (hyper 1, hyper-rustls, rustls with aws-lc-rs):
//! TLS still encrypts and the handshake signature is still checked against
//! the certificate presented, but anyone on the path can present one.
//! Prefer adding the server's CA to the system trust store.

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

use crate::aws::CONNECT_TIMEOUT;
use crate::crypto::tls::AnyServerCertificate;

type HyperClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>;

/// The connector: a pooled hyper client.
#[derive(Clone)]
struct Connector(HyperClient);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InsecureTlsConnector")
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = self.0.request(request);
        HttpConnectorFuture::new(async move {
            match response.await {
                Ok(r) => HttpResponse::try_from(r.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Connection failures and broken connections are I/O errors (retried by
/// the SDK); the rest is "other".
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let mut io = e.is_connect();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if s.is::<std::io::Error>()
            || s.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_closed() || h.is_incomplete_message())
        {
            io = true;
        }
        source = s.source();
    }
    if io { ConnectorError::io(e.into()) } else { ConnectorError::other(e.into(), None) }
}

/// The SDK HTTP client that skips certificate verification.
pub fn client() -> Result<SharedHttpClient, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyServerCertificate::new(&provider));
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let connector = SharedHttpConnector::new(Connector(Client::builder(TokioExecutor::new()).build(https)));
    Ok(SharedHttpClient::new(Fixed(connector)))
}

/// One connector (and connection pool) whatever the settings: timeouts
/// are the project's (connect above, attempts by the SDK).
#[derive(Debug)]
struct Fixed(SharedHttpConnector);

impl HttpClient for Fixed {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.clone()
    }
}
