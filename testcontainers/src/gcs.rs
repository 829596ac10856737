//! GCS fixture: gcp-storage-emulator (JSON API) started through
//! `launchers/gcs_emulator.py`, which adds the `x-goog-generation`,
//! `x-goog-metageneration` and `x-goog-stored-content-length` download headers
//! the official Rust client needs, paged listings (`maxResults`,
//! `pageToken`, `startOffset`), cancelling a resumable session (DELETE), and
//! removes two O(N^2) costs (see the launcher's docstring). fake-gcs-server in
//! a container. Ready once the bucket list answers.
//!
//! Known gaps of the emulator: `ifGenerationMatch` is not enforced, custom
//! metadata is replaced (not merged) by a patch, and listings with a
//! `delimiter` are not paged. The official Rust client sends
//! `Host` without the port, which breaks resumable uploads (≥ 16 MiB) unless
//! the emulator listens on port 80: [`GcsOptions`] allows that (e.g.
//! `127.0.0.3:80`, which needs root).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::local::{self, LocalServer, STOP_TERM};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// The launcher, written into each fixture's temp dir.
const LAUNCHER: &str = include_str!("../launchers/gcs_emulator.py");

/// The project id buckets are created in.
pub const PROJECT: &str = "teleport-test";

/// Where the GCS emulator listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsOptions {
    /// Address to bind; default `127.0.0.1`.
    pub host: String,
    /// Port to bind; `None` (the default) picks a free one. A fixed port is
    /// not retried if it is taken.
    pub port: Option<u16>,
}

impl Default for GcsOptions {
    fn default() -> Self {
        GcsOptions { host: "127.0.0.1".to_string(), port: None }
    }
}

/// A running GCS emulator; dropping it stops the server.
pub struct Gcs {
    /// The endpoint URL, e.g. `http://127.0.0.1:41234`; the JSON API is
    /// under `/storage/v1`, uploads under `/upload/storage/v1`.
    pub endpoint: String,
    /// Host it listens on.
    pub host: String,
    /// Port it listens on.
    pub port: u16,
    /// The project id to create buckets in.
    pub project: String,
    /// Where objects are stored (None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
}

impl Gcs {
    /// The value for `STORAGE_EMULATOR_HOST`: the endpoint URL.
    pub fn emulator_host(&self) -> &str {
        &self.endpoint
    }
}

impl Fixture for Gcs {
    fn server(&self) -> Server {
        Server::Gcs
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("ENDPOINT", self.endpoint.clone()),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("PROJECT", self.project.clone()),
        ];
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(Server::Gcs, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start(options: GcsOptions) -> Result<Gcs, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let python = emulator_python()?;
            if options.port.is_some() {
                start_local(&python, &options).await
            } else {
                local::with_port_retry(async || start_local(&python, &options).await).await
            }
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container().await,
    }
}

/// The Python that has gcp-storage-emulator installed: the interpreter next
/// to its `gcp-storage-emulator` script (a venv's bin/), or the one its `#!`
/// line names.
fn emulator_python() -> Result<PathBuf, Error> {
    let script = local::find_binary(Server::Gcs, "gcp-storage-emulator")?;
    if let Some(dir) = script.parent() {
        for name in ["python3", "python"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let shebang = std::fs::File::open(&script)
        .ok()
        .and_then(|f| BufReader::new(f).lines().next())
        .and_then(|line| line.ok())
        .unwrap_or_default();
    let interpreter = shebang
        .strip_prefix("#!")
        .map(str::trim)
        .and_then(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python")));
    match interpreter {
        Some(python) => Ok(python),
        None => local::find_binary(Server::Gcs, "python3"),
    }
}

async fn start_local(python: &Path, options: &GcsOptions) -> Result<Gcs, Error> {
    let server = Server::Gcs;
    let host = options.host.as_str();
    let dir = local::temp_dir(server)?;
    let data_dir = dir.path().join("data");
    let launcher = dir.path().join("gcs_emulator.py");
    std::fs::write(&launcher, LAUNCHER)
        .map_err(|e| Error::setup(server, format!("write {}", launcher.display()), e))?;
    let port = match options.port {
        Some(port) => port,
        None => local::free_ports::<1>(server, host)?[0],
    };
    let args: Vec<OsString> = vec![
        launcher.into(),
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string().into(),
        "--data-dir".into(),
        data_dir.clone().into(),
    ];
    let mut cmd = local::command(python, &args, None);
    cmd.current_dir(dir.path()).env("PYTHONUNBUFFERED", "1");
    let mut process = LocalServer::spawn(server, dir, cmd, STOP_TERM)?;
    let endpoint = format!("http://{}:{port}", url_host(host));
    let client = probe::http_client(server)?;
    process.wait_ready(&endpoint, || probe::gcs(&client, &endpoint, PROJECT)).await?;
    Ok(Gcs {
        endpoint,
        host: host.to_string(),
        port,
        project: PROJECT.to_string(),
        data_dir: Some(data_dir),
        backing: Backing::Local(process),
    })
}

/// An IPv6 literal needs brackets in a URL.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() }
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<Gcs, Error> {
    let running = crate::container::run(&crate::container::spec(Server::Gcs)).await?;
    let endpoint = format!("http://{}:{}", running.host, running.port);
    let client = probe::http_client(Server::Gcs)?;
    running.wait_ready(&endpoint, || probe::gcs(&client, &endpoint, PROJECT)).await?;
    Ok(Gcs {
        host: running.host.clone(),
        port: running.port,
        endpoint,
        project: PROJECT.to_string(),
        data_dir: None,
        backing: Backing::Container(Box::new(running)),
    })
}
