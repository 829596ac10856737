//! PostgreSQL fixture: a private cluster made with `initdb` in the fixture's
//! temp dir and run by the `postgres` binary of the same version (Debian's
//! `/usr/lib/postgresql/<version>/bin`) on a free loopback port, with its unix
//! socket in the temp dir and trust authentication. When the tests run as
//! root both run as the `postgres` user, since initdb and postgres refuse
//! root. The server runs as our child (not daemonized through `pg_ctl
//! start`), so dropping the fixture always stops it, even after a failed
//! test. fsync is off: this is for tests only. `synchronous_commit` stays
//! on: logical decoding reads only flushed WAL, so with it off watchers would
//! see each change up to 3 × `wal_writer_delay` late (and with fsync off a
//! synchronous commit costs a write, not a disk flush). Ready once a
//! StartupMessage gets AuthenticationOk.
//!
//! The server runs with `wal_level=logical` and room for many replication
//! slots ([`LOGICAL_DECODING`]): the postgres cluster-state store's watchers
//! read the WAL through a temporary logical slot per handle, decoded by the
//! wal2json plugin (Debian `postgresql-15-wal2json`, installed by
//! scripts/install-test-services.sh).

use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::local::{self, LocalServer, RunAs, StopPlan};
use crate::provider::Backing;
use crate::{Error, Fixture, Provider, Server, probe};

/// The superuser the cluster is made with.
pub const USER: &str = "postgres";
/// The database to connect to.
pub const DATABASE: &str = "postgres";

/// Server settings for logical decoding (`-c name=value`): the WAL carries
/// row changes, and up to 64 handles (one temporary slot each) may watch at
/// once. `max_wal_senders` is for replication connections, which the store
/// does not use; it is raised so that tools that stream changes also fit.
pub const LOGICAL_DECODING: &[(&str, &str)] =
    &[("wal_level", "logical"), ("max_replication_slots", "64"), ("max_wal_senders", "16")];

/// SIGINT is PostgreSQL's "fast shutdown"; SIGKILL after 10 s.
const STOP_FAST: StopPlan = &[(libc::SIGINT, Duration::from_secs(10))];

/// A running PostgreSQL; dropping it stops the server and removes the cluster.
pub struct Postgres {
    /// Host it listens on (TCP).
    pub host: String,
    /// Port it listens on (TCP, and the socket's name `.s.PGSQL.<port>`).
    pub port: u16,
    /// The superuser, with trust authentication (no password).
    pub user: String,
    /// The database to connect to.
    pub database: String,
    /// `postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=disable`.
    pub connection_string: String,
    /// The directory of the unix socket (None in a container).
    pub socket_dir: Option<PathBuf>,
    /// The cluster's data directory (None in a container).
    pub data_dir: Option<PathBuf>,
    backing: Backing,
}

impl Fixture for Postgres {
    fn server(&self) -> Server {
        Server::Postgres
    }

    fn exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("CONNECTION_STRING", self.connection_string.clone()),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("USER", self.user.clone()),
            ("DATABASE", self.database.clone()),
        ];
        if let Some(dir) = &self.socket_dir {
            vars.push(("SOCKET_DIR", dir.display().to_string()));
        }
        if let Some(dir) = &self.data_dir {
            vars.push(("DATA_DIR", dir.display().to_string()));
        }
        crate::prefixed(Server::Postgres, vars)
    }

    crate::delegate_to_backing!();
}

pub(crate) async fn start() -> Result<Postgres, Error> {
    match Provider::from_env().await? {
        Provider::Local => {
            let found = local::find_binary(Server::Postgres, "initdb")?;
            // Resolve symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
            // so that `postgres` comes from the same installation.
            let initdb = std::fs::canonicalize(&found).unwrap_or(found);
            let bin_dir = initdb.parent().unwrap_or(Path::new("/"));
            let postgres = bin_dir.join("postgres");
            if !postgres.is_file() {
                return Err(Error::Missing {
                    server: Server::Postgres,
                    program: Server::Postgres.program(),
                    binary: "postgres".to_string(),
                    searched: bin_dir.display().to_string(),
                    install: Server::Postgres.install_command(),
                });
            }
            let run_as = run_as()?;
            local::with_port_retry(async || start_local(&initdb, &postgres, run_as).await).await
        }
        #[cfg(feature = "containers")]
        Provider::Container => start_container().await,
    }
}

/// As root, the `postgres` user (initdb and postgres refuse to run as root);
/// otherwise ourselves.
fn run_as() -> Result<Option<RunAs>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new(USER).map_err(|e| Error::setup(Server::Postgres, "look up user", e))?;
    // SAFETY: getpwnam returns NULL or a pointer to a static passwd record,
    // read at once, before any other getpw* call on this thread.
    let user = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() { None } else { Some(RunAs { uid: (*pw).pw_uid, gid: (*pw).pw_gid }) }
    };
    user.map(Some).ok_or_else(|| {
        Error::setup(
            Server::Postgres,
            "find the `postgres` user to run the server as",
            "running as root, initdb refuses root, and there is no `postgres` user; \
             install PostgreSQL from Debian (scripts/install-test-services.sh postgres) or run the tests as a normal user",
        )
    })
}

async fn start_local(initdb: &Path, postgres: &Path, run_as: Option<RunAs>) -> Result<Postgres, Error> {
    let server = Server::Postgres;
    let host = "127.0.0.1";
    let dir = local::temp_dir(server)?;
    let socket_dir = dir.path().to_path_buf();
    let data_dir = dir.path().join("data");
    if let Some(user) = run_as {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
            .map_err(|e| Error::setup(server, format!("give {} to the postgres user", dir.path().display()), e))?;
    }

    let init_args: Vec<OsString> = vec![
        "-D".into(),
        data_dir.clone().into(),
        "-A".into(),
        "trust".into(),
        "-U".into(),
        USER.into(),
        "-E".into(),
        "UTF8".into(),
        "--locale=C".into(),
        "--no-sync".into(),
        "--no-instructions".into(),
    ];
    let mut init = local::command(initdb, &init_args, run_as);
    init.current_dir(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || init.output())
        .await
        .map_err(|e| Error::setup(server, "run initdb", e))?
        .map_err(|e| Error::setup(server, format!("run {}", initdb.display()), e))?;
    if !output.status.success() {
        return Err(Error::setup(
            server,
            format!("initdb -D {}", data_dir.display()),
            format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }

    let [port] = local::free_ports::<1>(server, host)?;
    let mut args: Vec<OsString> = vec![
        "-D".into(),
        data_dir.clone().into(),
        "-p".into(),
        port.to_string().into(),
        "-k".into(),
        socket_dir.clone().into(),
        "-c".into(),
        format!("listen_addresses={host}").into(),
        "-c".into(),
        "fsync=off".into(),
        "-c".into(),
        "full_page_writes=off".into(),
    ];
    for (name, value) in LOGICAL_DECODING {
        args.push("-c".into());
        args.push(format!("{name}={value}").into());
    }
    let mut cmd = local::command(postgres, &args, run_as);
    cmd.current_dir(dir.path());
    let mut process = LocalServer::spawn(server, dir, cmd, STOP_FAST)?;
    let endpoint = format!("{host}:{port}");
    process.wait_ready(&endpoint, || probe::postgres(host, port, USER, DATABASE)).await?;
    Ok(fixture(host, port, Some(socket_dir), Some(data_dir), Backing::Local(process)))
}

fn fixture(
    host: &str,
    port: u16,
    socket_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    backing: Backing,
) -> Postgres {
    Postgres {
        host: host.to_string(),
        port,
        user: USER.to_string(),
        database: DATABASE.to_string(),
        connection_string: format!("postgresql://{USER}@{host}:{port}/{DATABASE}?sslmode=disable"),
        socket_dir,
        data_dir,
        backing,
    }
}

#[cfg(feature = "containers")]
async fn start_container() -> Result<Postgres, Error> {
    let running = crate::container::run(&crate::container::spec(Server::Postgres)).await?;
    let (host, port) = (running.host.clone(), running.port);
    let endpoint = format!("{host}:{port}");
    running.wait_ready(&endpoint, || probe::postgres(&host, port, USER, DATABASE)).await?;
    Ok(fixture(&host, port, None, None, Backing::Container(Box::new(running))))
}
