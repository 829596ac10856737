//! Connecting to etcd (endpoints, TLS, user/password, timeouts), checking
//! the server answers, and mapping etcd client errors to backend errors.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::backend::{Error, ErrorKind, Result};
use crate::config::EtcdConfig;

/// Default connection timeout (upstream's `DefaultIOTimeout` scaled down for dialing).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a single request (reads, writes, lease calls).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Oldest etcd server accepted (upstream `MinimumEtcdVersion`).
pub const MIN_SERVER_VERSION: (u64, u64) = (3, 3);

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::new(ErrorKind::BadParameter, format!("etcd: cannot read {what} {}", path.display())).with_source(e)
    })
}

/// Connects to the cluster and checks that at least one endpoint answers
/// with a supported version. Errors name the endpoints.
pub async fn connect(cfg: &EtcdConfig) -> Result<Client> {
    let dial = cfg.dial_timeout.unwrap_or(DEFAULT_DIAL_TIMEOUT);
    let mut opts = ConnectOptions::new().with_connect_timeout(dial).with_keep_alive(Duration::from_secs(30), dial);
    if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
        let password = String::from_utf8_lossy(&read_file("password_file", file)?).trim().to_string();
        opts = opts.with_user(user.clone(), password);
    }
    if !cfg.insecure || cfg.tls_cert_file.is_some() || cfg.tls_ca_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &cfg.tls_ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read_file("tls_ca_file", ca)?));
        }
        if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
            tls = tls.identity(Identity::from_pem(read_file("tls_cert_file", cert)?, read_file("tls_key_file", key)?));
        }
        opts = opts.with_tls(tls);
    }
    let endpoints = cfg.peers.join(", ");
    let client = tokio::time::timeout(dial, Client::connect(&cfg.peers, Some(opts)))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::ConnectionProblem,
                format!("etcd {endpoints}: no answer within {dial:?} (dial_timeout)"),
            )
        })?
        .map_err(|e| map_err(e).context(format!("etcd {endpoints}: connect")))?;
    check_version(&client, &cfg.peers, dial).await?;
    Ok(client)
}

/// Asks each endpoint for its status until one answers with a supported
/// version.
async fn check_version(client: &Client, peers: &[String], dial: Duration) -> Result<()> {
    let mut last = None;
    for peer in peers {
        let mut m = client.maintenance_client();
        let status = match tokio::time::timeout(dial, m.status()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = Some(map_err(e).context(format!("etcd {peer}")));
                continue;
            }
            Err(_) => {
                last =
                    Some(Error::new(ErrorKind::ConnectionProblem, format!("etcd {peer}: no answer within {dial:?}")));
                continue;
            }
        };
        let version = status.version().to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < MIN_SERVER_VERSION {
            return Err(Error::new(
                ErrorKind::BadParameter,
                format!(
                    "etcd {peer}: server version {version} is not supported; {}.{} or newer is required",
                    MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1
                ),
            ));
        }
        return Ok(());
    }
    Err(match last {
        Some(e) if e.kind() == ErrorKind::ConnectionProblem => Error::new(
            ErrorKind::ConnectionProblem,
            format!(
                "{} (check `peers`, that etcd runs, and for TLS that tls_ca_file signed the server certificate \
                 and the server trusts the CA of tls_cert_file)",
                e.message()
            ),
        ),
        Some(e) => e,
        None => Error::bad_parameter("etcd: no peers configured"),
    })
}

/// Maps an etcd client error to a backend error kind.
pub fn map_err(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    let kind = match &e {
        E::GRpcStatus(s) => match s.code() {
            // Cancelled: the server closed the connection, e.g. after
            // refusing our client certificate in the TLS handshake.
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Aborted
            | tonic::Code::Cancelled => ErrorKind::ConnectionProblem,
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => ErrorKind::AccessDenied,
            tonic::Code::ResourceExhausted => ErrorKind::LimitExceeded,
            tonic::Code::InvalidArgument if s.message().contains("too large") => ErrorKind::LimitExceeded,
            tonic::Code::InvalidArgument if s.message().contains("too many operations") => ErrorKind::LimitExceeded,
            tonic::Code::NotFound => ErrorKind::NotFound,
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::OutOfRange => {
                ErrorKind::BadParameter
            }
            // tonic reports failed connections (refused, TLS handshake) as Unknown.
            tonic::Code::Unknown if s.message().contains("transport") => ErrorKind::ConnectionProblem,
            _ => ErrorKind::Internal,
        },
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => {
            ErrorKind::ConnectionProblem
        }
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) | E::EndpointError(_) => {
            ErrorKind::BadParameter
        }
        _ => ErrorKind::Internal,
    };
    let mut msg = match &e {
        E::GRpcStatus(s) => format!("etcd: {}", s.message()),
        other => format!("etcd: {other}"),
    };
    // The cause (refused connection, certificate problem) is in the chain.
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    Error::new(kind, msg)
}

/// Runs an etcd call with the request deadline, mapping its error.
pub async fn call<T>(fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r.map_err(map_err),
        Err(_) => Err(Error::new(ErrorKind::ConnectionProblem, format!("etcd: no answer within {REQUEST_TIMEOUT:?}"))),
    }
}
