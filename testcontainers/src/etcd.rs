//! etcd fixture: a single-member etcd (Debian's etcd-server 3.4 locally) on a
//! free loopback port, in its own data dir. Ready once `GET /health` reports
//! `"health":"true"`. The client URL serves gRPC (etcd-client) and the v3
//! JSON gateway (`POST {endpoint}/v3/kv/put`, base64 keys and values).
//!
//! [`etcd_tls`](crate::etcd_tls) starts the same server with mutual TLS
//! (`https://` client URL, `--client-cert-auth`) from certificates the test
//! provides; readiness is then probed on a plain-HTTP metrics URL.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::local::{self, LocalServer, STOP_TERM};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// A running etcd; dropping it stops the server and removes its data.
pub struct Etcd {
    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    /// Host of the client URL.
    pub host: String,
    /// Port of the client URL.
    pub port: u16,
    /// etcd's `--data-dir` (None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
}

/// Certificates for an etcd that requires mutual TLS (PEM files).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The server certificate (must name 127.0.0.1 / localhost).
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// The CA that signed the server certificate and the client certificates.
    pub ca_file: PathBuf,
}

impl Etcd {
    /// The client URLs, as etcd clients take them.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }
}

impl Fixture for Etcd {
    fn server(&self) -> Server {
        Server::Etcd
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars =
            vec![("ENDPOINT", self.endpoint.clone()), ("HOST", self.host.clone()), ("PORT", self.port.to_string())];
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(Server::Etcd, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start(tls: Option<EtcdTls>) -> Result<Etcd, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let bin = local::find_binary(Server::Etcd, "etcd")?;
            local::with_port_retry(async || start_local(&bin, tls.as_ref()).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container if tls.is_none() => start_container().await,
        #[cfg(feature = "containers")]
        Provider::Container => {
            Err(Error::setup(Server::Etcd, "start etcd with TLS", "only the local provider starts etcd with TLS"))
        }
    }
}

async fn start_local(bin: &Path, tls: Option<&EtcdTls>) -> Result<Etcd, Error> {
    let server = Server::Etcd;
    let host = "127.0.0.1";
    let dir = local::temp_dir(server)?;
    let data_dir = dir.path().join("data");
    let [client, peer, metrics] = local::free_ports::<3>(server, host)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://{host}:{client}");
    let peer_url = format!("http://{host}:{peer}");
    let metrics_url = format!("http://{host}:{metrics}");
    let mut args: Vec<OsString> = vec![
        "--name".into(),
        "n1".into(),
        "--data-dir".into(),
        data_dir.clone().into(),
        "--listen-client-urls".into(),
        client_url.clone().into(),
        "--advertise-client-urls".into(),
        client_url.clone().into(),
        "--listen-peer-urls".into(),
        peer_url.clone().into(),
        "--initial-advertise-peer-urls".into(),
        peer_url.clone().into(),
        "--initial-cluster".into(),
        format!("n1={peer_url}").into(),
        "--initial-cluster-state".into(),
        "new".into(),
        "--listen-metrics-urls".into(),
        metrics_url.clone().into(),
    ];
    if let Some(tls) = tls {
        args.extend([
            "--cert-file".into(),
            tls.cert_file.clone().into_os_string(),
            "--key-file".into(),
            tls.key_file.clone().into_os_string(),
            "--trusted-ca-file".into(),
            tls.ca_file.clone().into_os_string(),
            "--client-cert-auth".into(),
        ]);
    }
    let cmd = local::command(bin, &args, None);
    let mut process = LocalServer::spawn(server, dir, cmd, STOP_TERM)?;
    let client_http = probe::http_client(server)?;
    process.wait_ready(&client_url, || probe::etcd(&client_http, &metrics_url)).await?;
    Ok(Etcd {
        endpoint: client_url,
        host: host.to_string(),
        port: client,
        data_dir: Some(data_dir),
        backing: Backing::Local(process),
    })
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<Etcd, Error> {
    let running = crate::container::run(&crate::container::spec(Server::Etcd)).await?;
    let endpoint = format!("http://{}:{}", running.host, running.port);
    let client = probe::http_client(Server::Etcd)?;
    running.wait_ready(&endpoint, || probe::etcd(&client, &endpoint)).await?;
    Ok(Etcd {
        host: running.host.clone(),
        port: running.port,
        endpoint,
        data_dir: None,
        backing: Backing::Container(Box::new(running)),
    })
}
