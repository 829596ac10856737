//! DynamoDB fixture: moto server locally (transactions, TTL settings and
//! Streams work; it checks no signatures, and does not delete expired items
//! by itself), dynamodb-local in a container. moto runs through
//! `launchers/moto_server.py`, which serves requests one at a time and makes
//! a failed TransactWriteItems write nothing (stock moto restores a copy of
//! the whole table, losing concurrent writes and orphaning stream iterators). One moto process also serves
//! S3 at the same endpoint ([`DynamoDb::s3_endpoint`]); [`crate::s3_versioned`]
//! starts a moto of its own for S3 tests. Ready once `ListTables` answers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::local::{self, LocalServer, STOP_TERM};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// The region the fixtures use.
pub const REGION: &str = "us-east-1";
/// The access key the fixtures hand out (moto accepts any).
pub const ACCESS_KEY_ID: &str = "teleport-test-access-key";
/// The secret key the fixtures hand out (moto accepts any).
pub const SECRET_ACCESS_KEY: &str = "teleport-test-secret-key";

/// A running DynamoDB-compatible server; dropping it stops the server.
pub struct DynamoDb {
    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    /// The region to sign for.
    pub region: String,
    /// An access key the server accepts.
    pub access_key_id: String,
    /// The matching secret key.
    pub secret_access_key: String,
    /// moto's S3 at the same endpoint (None for dynamodb-local).
    pub s3_endpoint: Option<String>,
    /// The server's working dir (moto keeps its data in memory; None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
}

impl Fixture for DynamoDb {
    fn server(&self) -> Server {
        Server::DynamoDb
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("ENDPOINT", self.endpoint.clone()),
            ("REGION", self.region.clone()),
            ("ACCESS_KEY_ID", self.access_key_id.clone()),
            ("SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ];
        if let Some(s3) = &self.s3_endpoint {
            vars.push(("S3_ENDPOINT", s3.clone()));
        }
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(Server::DynamoDb, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start() -> Result<DynamoDb, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let bin = local::find_binary(Server::DynamoDb, "moto_server")?;
            local::with_port_retry(async || start_local(&bin).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container().await,
    }
}

/// A moto server process (not yet known to answer) and its endpoint.
pub(crate) struct MotoProcess {
    pub process: LocalServer,
    pub endpoint: String,
    pub data_dir: PathBuf,
}

/// The launcher, written into each fixture's temp dir.
const LAUNCHER: &str = include_str!("../launchers/moto_server.py");

/// Starts moto on a free loopback port, in a fresh temp dir, through
/// [`LAUNCHER`] run by the Python next to `bin` (moto_server in a venv's
/// bin/); without such a Python, `bin` itself (stock moto).
pub(crate) fn spawn_moto(server: Server, bin: &Path) -> Result<MotoProcess, Error> {
    let host = "127.0.0.1";
    let dir = local::temp_dir(server)?;
    let data_dir = dir.path().to_path_buf();
    let [port] = local::free_ports::<1>(server, host)?;
    let mut args: Vec<OsString> = vec!["-H".into(), host.into(), "-p".into(), port.to_string().into()];
    let python = bin.parent().map(|d| d.join("python3")).filter(|p| p.is_file());
    let program = match python {
        Some(python) => {
            let launcher = data_dir.join("moto_server.py");
            std::fs::write(&launcher, LAUNCHER)
                .map_err(|e| Error::setup(server, format!("write {}", launcher.display()), e))?;
            args.insert(0, launcher.into());
            python
        }
        None => bin.to_path_buf(),
    };
    let mut cmd = local::command(&program, &args, None);
    cmd.current_dir(&data_dir).env("PYTHONUNBUFFERED", "1");
    let process = LocalServer::spawn(server, dir, cmd, STOP_TERM)?;
    Ok(MotoProcess { process, endpoint: format!("http://{host}:{port}"), data_dir })
}

async fn start_local(bin: &Path) -> Result<DynamoDb, Error> {
    let MotoProcess { mut process, endpoint, data_dir } = spawn_moto(Server::DynamoDb, bin)?;
    let client = probe::http_client(Server::DynamoDb)?;
    process.wait_ready(&endpoint, || probe::dynamodb(&client, &endpoint, ACCESS_KEY_ID, REGION)).await?;
    Ok(DynamoDb {
        s3_endpoint: Some(endpoint.clone()),
        endpoint,
        region: REGION.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
        data_dir: Some(data_dir),
        backing: Backing::Local(process),
    })
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<DynamoDb, Error> {
    let running = crate::container::run(&crate::container::spec(Server::DynamoDb)).await?;
    let endpoint = format!("http://{}:{}", running.host, running.port);
    let client = probe::http_client(Server::DynamoDb)?;
    running.wait_ready(&endpoint, || probe::dynamodb(&client, &endpoint, ACCESS_KEY_ID, REGION)).await?;
    Ok(DynamoDb {
        endpoint,
        region: REGION.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
        s3_endpoint: None,
        data_dir: None,
        backing: Backing::Container(Box::new(running)),
    })
}
