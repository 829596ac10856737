//! S3 fixtures. [`crate::s3()`] runs s3s-fs, a small Rust S3 server that
//! checks SigV4 signatures, conditional writes and multipart uploads, but has
//! no bucket versioning. [`crate::s3_versioned()`] runs moto's S3, which
//! supports versioning but accepts any signature. In a container both are
//! MinIO. Ready once an unsigned ListBuckets gets an S3 XML answer.
//! Use path-style addressing (`{endpoint}/{bucket}/{key}`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::dynamodb::{MotoProcess, spawn_moto};
use crate::local::{self, LocalServer, STOP_TERM};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// The region the fixtures use.
pub const REGION: &str = "us-east-1";
/// The access key s3s-fs (and MinIO) are started with.
pub const ACCESS_KEY_ID: &str = "teleport-test-access-key";
/// The secret key s3s-fs (and MinIO) are started with.
pub const SECRET_ACCESS_KEY: &str = "teleport-test-secret-key";

/// Which program serves an [`S3`] fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Server {
    /// s3s-fs: checks signatures, no versioning.
    S3sFs,
    /// moto: versioning, no signature checks.
    Moto,
    /// MinIO (container provider): both.
    Minio,
}

/// A running S3-compatible server; dropping it stops the server.
pub struct S3 {
    /// The endpoint URL, e.g. `http://127.0.0.1:41234` (path-style requests).
    pub endpoint: String,
    /// The region to sign for.
    pub region: String,
    /// The access key the server was started with.
    pub access_key_id: String,
    /// The secret key the server was started with.
    pub secret_access_key: String,
    /// Which program this is.
    pub server: S3Server,
    /// Whether bucket versioning works.
    pub supports_versioning: bool,
    /// Whether a request signed with a wrong secret is refused.
    pub checks_signatures: bool,
    /// Where objects are stored (s3s-fs: plain files under it; moto: its
    /// working dir, data is in memory; None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
    kind: Server,
}

impl Fixture for S3 {
    fn server(&self) -> Server {
        self.kind
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("ENDPOINT", self.endpoint.clone()),
            ("REGION", self.region.clone()),
            ("ACCESS_KEY_ID", self.access_key_id.clone()),
            ("SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ];
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(self.kind, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start() -> Result<S3, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let bin = local::find_binary(Server::S3, "s3s-fs")?;
            local::with_port_retry(async || start_s3s_fs(&bin).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container(Server::S3).await,
    }
}

pub(crate) async fn start_versioned() -> Result<S3, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let bin = local::find_binary(Server::S3Versioned, "moto_server")?;
            local::with_port_retry(async || start_moto(&bin).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container(Server::S3Versioned).await,
    }
}

async fn start_s3s_fs(bin: &Path) -> Result<S3, Error> {
    let server = Server::S3;
    let host = "127.0.0.1";
    let dir = local::temp_dir(server)?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).map_err(|e| Error::setup(server, format!("create {}", data_dir.display()), e))?;
    let [port] = local::free_ports::<1>(server, host)?;
    let args: Vec<OsString> = vec![
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string().into(),
        "--access-key".into(),
        ACCESS_KEY_ID.into(),
        "--secret-key".into(),
        SECRET_ACCESS_KEY.into(),
        data_dir.clone().into(),
    ];
    let cmd = local::command(bin, &args, None);
    let mut process = LocalServer::spawn(server, dir, cmd, STOP_TERM)?;
    let endpoint = format!("http://{host}:{port}");
    let client = probe::http_client(server)?;
    process.wait_ready(&endpoint, || probe::s3(&client, &endpoint)).await?;
    Ok(S3 {
        endpoint,
        region: REGION.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
        server: S3Server::S3sFs,
        supports_versioning: false,
        checks_signatures: true,
        data_dir: Some(data_dir),
        backing: Backing::Local(process),
        kind: server,
    })
}

async fn start_moto(bin: &Path) -> Result<S3, Error> {
    let server = Server::S3Versioned;
    let MotoProcess { mut process, endpoint, data_dir } = spawn_moto(server, bin)?;
    let client = probe::http_client(server)?;
    process.wait_ready(&endpoint, || probe::s3(&client, &endpoint)).await?;
    Ok(S3 {
        endpoint,
        region: REGION.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
        server: S3Server::Moto,
        supports_versioning: true,
        checks_signatures: false,
        data_dir: Some(data_dir),
        backing: Backing::Local(process),
        kind: server,
    })
}

#[cfg(feature = "containers")]
async fn start_container(server: Server) -> Result<S3, Error> {
    let running = crate::container::run(&crate::container::spec(server)).await?;
    let endpoint = format!("http://{}:{}", running.host, running.port);
    let client = probe::http_client(server)?;
    running.wait_ready(&endpoint, || probe::s3(&client, &endpoint)).await?;
    Ok(S3 {
        endpoint,
        region: REGION.to_string(),
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SECRET_ACCESS_KEY.to_string(),
        server: S3Server::Minio,
        supports_versioning: true,
        checks_signatures: true,
        data_dir: None,
        backing: Backing::Container(Box::new(running)),
        kind: server,
    })
}
