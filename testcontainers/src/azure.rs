//! Azure Blob fixture: Azurite's Blob service (`azurite-blob`, from npm)
//! with the well-known development account `devstoreaccount1`, started with
//! `--skipApiVersionCheck` (newer SDKs send API versions Azurite does not
//! know yet). Ready once the service answers List Containers (a 403 without
//! credentials still carries `x-ms-request-id`). Stopped with SIGINT twice:
//! after the first one Azurite closes its listener but lingers for seconds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::local::{self, LocalServer, StopPlan};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// The development account Azurite serves.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The development account's well-known shared key (base64), published in
/// Azurite's documentation.
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// SIGINT, a second SIGINT 300 ms later, then up to 5 s before SIGKILL.
const STOP_TWICE: StopPlan = &[(libc::SIGINT, Duration::from_millis(300)), (libc::SIGINT, Duration::from_secs(5))];

/// A running Azurite Blob service; dropping it stops the server.
pub struct Azurite {
    /// The account's Blob endpoint, path-style: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub blob_endpoint: String,
    /// Host it listens on.
    pub host: String,
    /// Port it listens on.
    pub port: u16,
    /// The account name ([`ACCOUNT`]).
    pub account: String,
    /// The account's shared key, base64 ([`ACCOUNT_KEY`]).
    pub account_key: String,
    /// A connection string for SDKs and tools (`DefaultEndpointsProtocol=http;AccountName=...;AccountKey=...;BlobEndpoint=...;`).
    pub connection_string: String,
    /// Azurite's `--location` (None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
}

impl Fixture for Azurite {
    fn server(&self) -> Server {
        Server::Azure
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("BLOB_ENDPOINT", self.blob_endpoint.clone()),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("ACCOUNT", self.account.clone()),
            ("ACCOUNT_KEY", self.account_key.clone()),
            ("CONNECTION_STRING", self.connection_string.clone()),
        ];
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(Server::Azure, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start() -> Result<Azurite, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let bin = local::find_binary(Server::Azure, "azurite-blob")?;
            local::with_port_retry(async || start_local(&bin).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container().await,
    }
}

fn fixture(host: &str, port: u16, data_dir: Option<PathBuf>, backing: Backing) -> Azurite {
    let blob_endpoint = format!("http://{host}:{port}/{ACCOUNT}");
    Azurite {
        connection_string: format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={blob_endpoint};"
        ),
        blob_endpoint,
        host: host.to_string(),
        port,
        account: ACCOUNT.to_string(),
        account_key: ACCOUNT_KEY.to_string(),
        data_dir,
        backing,
    }
}

async fn start_local(bin: &Path) -> Result<Azurite, Error> {
    let server = Server::Azure;
    let host = "127.0.0.1";
    let dir = local::temp_dir(server)?;
    let data_dir = dir.path().join("data");
    let [port] = local::free_ports::<1>(server, host)?;
    let args: Vec<OsString> = vec![
        "--blobHost".into(),
        host.into(),
        "--blobPort".into(),
        port.to_string().into(),
        "--location".into(),
        data_dir.clone().into(),
        "--skipApiVersionCheck".into(),
        "--disableTelemetry".into(),
    ];
    let mut cmd = local::command(bin, &args, None);
    cmd.current_dir(dir.path());
    let mut process = LocalServer::spawn(server, dir, cmd, STOP_TWICE)?;
    let blob_endpoint = format!("http://{host}:{port}/{ACCOUNT}");
    let client = probe::http_client(server)?;
    process.wait_ready(&blob_endpoint, || probe::azure_blob(&client, &blob_endpoint)).await?;
    Ok(fixture(host, port, Some(data_dir), Backing::Local(process)))
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<Azurite, Error> {
    let running = crate::container::run(&crate::container::spec(Server::Azure)).await?;
    let blob_endpoint = format!("http://{}:{}/{ACCOUNT}", running.host, running.port);
    let client = probe::http_client(Server::Azure)?;
    running.wait_ready(&blob_endpoint, || probe::azure_blob(&client, &blob_endpoint)).await?;
    let (host, port) = (running.host.clone(), running.port);
    Ok(fixture(&host, port, None, Backing::Container(Box::new(running))))
}
