//! The local provider's machinery: where binaries are looked up, free loopback
//! ports, and [`LocalServer`], a server process in its own temp dir and
//! process group, with its output in a log file, killed (with its children)
//! on drop. Nothing here knows a particular server; the server modules pass
//! in their command line, stop signals and readiness probe.

use std::ffi::OsString;
use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Error, Server};

/// How many times a server is started on a fresh port when the one picked
/// was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// How much of a server's log goes into errors and panic output.
const LOG_TAIL_LINES: usize = 40;

/// The workspace root (the parent of this crate's directory), fixed at
/// compile time, so it is right whichever package's tests are running.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Where `scripts/install-test-services.sh` installs servers and where the
/// local provider looks for them first: `$TELEPORT_TEST_SERVICES_DIR` (a
/// relative path is relative to the workspace root), or
/// `<workspace>/.test-services`. Binaries are looked up in its `bin/`,
/// `venv/bin/` and `node/node_modules/.bin/`, then on `PATH`, then (for
/// PostgreSQL) in `/usr/lib/postgresql/<version>/bin`, newest first.
pub fn services_dir() -> PathBuf {
    match std::env::var_os("TELEPORT_TEST_SERVICES_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join(".test-services"),
    }
}

fn search_dirs(server: Server) -> Vec<PathBuf> {
    let base = services_dir();
    let mut dirs = vec![base.join("bin"), base.join("venv/bin"), base.join("node/node_modules/.bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if server == Server::Postgres {
        dirs.extend(postgres_bin_dirs());
    }
    dirs
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name.split('.').map(|part| part.parse::<u32>().ok()).collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Finds the program `name` that `server` needs, in the places listed at
/// [`services_dir`]. The error says where it looked and how to install it.
pub fn find_binary(server: Server, name: &str) -> Result<PathBuf, Error> {
    let dirs = search_dirs(server);
    if let Some(found) = dirs.iter().map(|dir| dir.join(name)).find(|p| is_executable(p)) {
        return Ok(found);
    }
    let base = services_dir();
    let mut searched = vec![format!("{}/{{bin,venv/bin,node/node_modules/.bin}}", base.display()), "PATH".to_string()];
    if server == Server::Postgres {
        searched.push("/usr/lib/postgresql/*/bin".to_string());
    }
    Err(Error::Missing {
        server,
        program: server.program(),
        binary: name.to_string(),
        searched: searched.join(", "),
        install: server.install_command(),
    })
}

/// Picks `N` distinct free TCP ports on `host` by binding port 0 (all at
/// once, so they differ). Another process may take one before the server
/// binds it; [`with_port_retry`] covers that.
pub(crate) fn free_ports<const N: usize>(server: Server, host: &str) -> Result<[u16; N], Error> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in ports.iter_mut() {
        let listener =
            TcpListener::bind((host, 0)).map_err(|e| Error::setup(server, format!("pick a free port on {host}"), e))?;
        *port = listener.local_addr().map_err(|e| Error::setup(server, "read the picked port", e))?.port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// Runs `attempt` up to three times while it fails because the server could
/// not bind its port (someone took the free port between our check and the
/// server's bind).
pub(crate) async fn with_port_retry<T>(mut attempt: impl AsyncFnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(err) if tries < PORT_ATTEMPTS && port_was_taken(&err) => {
                eprintln!("{err}\n(the port was taken; retrying on another one)");
            }
            result => return result,
        }
    }
}

fn port_was_taken(err: &Error) -> bool {
    let Error::Exited { tail, .. } = err else {
        return false;
    };
    let tail = tail.to_ascii_lowercase();
    ["address already in use", "eaddrinuse", "address in use", "could not bind", "errno 98"]
        .iter()
        .any(|needle| tail.contains(needle))
}

/// A fresh temp dir for one server, named after it, created 0700.
pub(crate) fn temp_dir(server: Server) -> Result<TempDir, Error> {
    tempfile::Builder::new()
        .prefix(&format!("teleport-test-{}-", server.name()))
        .tempdir()
        .map_err(|e| Error::setup(server, "create temp dir", e))
}

/// The last lines of a log file, for errors and panic output.
pub(crate) fn log_tail(path: &Path) -> String {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    let tail = lines[from..].join("\n");
    if tail.is_empty() { "(log is empty)".to_string() } else { tail }
}

/// How long a server may take to answer its first request:
/// `TELEPORT_TEST_START_TIMEOUT` seconds, default 60.
pub(crate) fn start_timeout() -> Duration {
    let secs = std::env::var("TELEPORT_TEST_START_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Polls `probe` until it succeeds, `exited` reports the server dead, or
/// `timeout` passes. `describe_log` supplies the log path and tail for errors.
pub(crate) async fn poll_ready<Fut>(
    server: Server,
    endpoint: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Fut,
    mut exited: impl FnMut() -> Option<Error>,
    describe_log: impl Fn() -> (PathBuf, String),
) -> Result<(), Error>
where
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(25);
    loop {
        if let Some(err) = exited() {
            return Err(err);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let per_try = left.min(Duration::from_secs(5)).max(Duration::from_millis(100));
        let last_error = match tokio::time::timeout(per_try, probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {per_try:?}"),
        };
        if Instant::now() >= deadline {
            if let Some(err) = exited() {
                return Err(err);
            }
            let (log, tail) = describe_log();
            return Err(Error::NotReady { server, endpoint: endpoint.to_string(), timeout, last_error, log, tail });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// What a server is sent to stop it: each signal in turn (to the main process
/// only), each followed by up to its wait for the process to exit; then
/// SIGKILL to the whole process group.
pub(crate) type StopPlan = &'static [(libc::c_int, Duration)];

/// SIGTERM, then SIGKILL after 5 s.
pub(crate) const STOP_TERM: StopPlan = &[(libc::SIGTERM, Duration::from_secs(5))];

/// A user (uid, gid) to run a server as; PostgreSQL refuses to run as root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Builds the `Command` for a server program: its own process group (so the
/// server and its children can be killed together), stdin closed,
/// optionally another user, and (on Linux) killed by the kernel if the
/// process that started it dies without stopping it (a SIGKILLed test run
/// would otherwise leak its servers).
pub(crate) fn command(program: &Path, args: &[OsString], run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl is async-signal-safe and touches only this process.
        // It runs after the uid/gid change, which would otherwise clear it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd
}

/// A running server process and the temp dir it owns.
///
/// On drop it is stopped by its [`StopPlan`] and its process group is
/// killed. The temp dir is removed, unless the thread is panicking: then the
/// log's tail is printed and the dir is kept for inspection.
pub(crate) struct LocalServer {
    server: Server,
    child: Option<Child>,
    pid: u32,
    dir: Option<TempDir>,
    log: PathBuf,
    stop: StopPlan,
}

impl LocalServer {
    /// Starts `cmd` with stdout and stderr appended to `<dir>/<server>.log`.
    pub(crate) fn spawn(server: Server, dir: TempDir, mut cmd: Command, stop: StopPlan) -> Result<Self, Error> {
        let log = dir.path().join(format!("{}.log", server.name()));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| Error::setup(server, format!("open log {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| Error::setup(server, "duplicate the log file handle", e))?;
        cmd.stdout(out).stderr(err);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().map_err(|e| Error::setup(server, format!("start {program}"), e))?;
        Ok(LocalServer { server, pid: child.id(), child: Some(child), dir: Some(dir), log, stop })
    }

    /// The process id of the server (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Waits until `probe` succeeds (the server answered a real request),
    /// failing early if the process exits.
    pub(crate) async fn wait_ready<Fut>(&mut self, endpoint: &str, probe: impl FnMut() -> Fut) -> Result<(), Error>
    where
        Fut: Future<Output = Result<(), String>>,
    {
        let server = self.server;
        let log = self.log.clone();
        let pid = self.pid;
        let mut child = self.child.take();
        let result = poll_ready(
            server,
            endpoint,
            start_timeout(),
            probe,
            || {
                let running = child.as_mut()?;
                if !has_exited(pid) {
                    return None;
                }
                kill_group(pid);
                let status = running.wait().map(|s| s.to_string()).unwrap_or_else(|e| format!("unknown status: {e}"));
                child = None;
                Some(Error::Exited { server, status, log: log.clone(), tail: log_tail(&log) })
            },
            || (log.clone(), log_tail(&log)),
        )
        .await;
        self.child = child;
        result
    }

    fn stop_process(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = self.pid;
        for &(signal, wait) in self.stop {
            if has_exited(pid) {
                break;
            }
            // SAFETY: kill(2) with our own child's pid; no memory is touched.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline && !has_exited(pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The main process is at most a zombie now (not reaped), so its
        // process group id cannot have been reused: kill any stragglers.
        kill_group(pid);
        if let Err(e) = child.wait() {
            eprintln!("{}: reap process {pid}: {e}", self.server);
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop_process();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}), last {LOG_TAIL_LINES} lines ----\n{}\n---- end of {} log ----",
                self.server,
                self.log.display(),
                log_tail(&self.log),
                self.server
            );
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("{}: kept {} for inspection", self.server, kept.display());
            }
        }
    }
}

/// Whether process `pid` (our child) has exited, without reaping it.
fn has_exited(pid: u32) -> bool {
    // SAFETY: waitid only writes into the zeroed siginfo_t we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
        // rc != 0: ECHILD, i.e. already reaped.
        rc != 0 || info.si_pid() != 0
    }
}

/// SIGKILL to the process group led by `pid`. Errors (no such group) are
/// expected when everything already exited.
fn kill_group(pid: u32) {
    // SAFETY: kill(2) on the process group we created for our child.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_server_and_install_command() {
        let err = find_binary(Server::Gcs, "surely-not-a-real-binary-name").unwrap_err();
        let msg = err.to_string();
        assert!(err.is_missing());
        assert!(msg.starts_with("gcs: gcp-storage-emulator is not installed"), "{msg}");
        assert!(msg.contains("scripts/install-test-services.sh gcs"), "{msg}");
        assert!(msg.contains("PATH"), "{msg}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>(Server::Etcd, "127.0.0.1").unwrap();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn port_collision_is_recognised_in_the_log_tail() {
        let exited = |tail: &str| Error::Exited {
            server: Server::Etcd,
            status: "exit status: 1".into(),
            log: PathBuf::from("/x"),
            tail: tail.into(),
        };
        assert!(port_was_taken(&exited("listen tcp 127.0.0.1:5: bind: address already in use")));
        assert!(port_was_taken(&exited("Error: listen EADDRINUSE: address already in use")));
        assert!(!port_was_taken(&exited("panic: something else")));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        assert!(tail.starts_with("line 60"), "{tail}");
        assert!(tail.ends_with("line 99"), "{tail}");
    }
}
