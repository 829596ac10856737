//! The `teleport start` process: takes the data dir, opens the cluster
//! state store, runs the auth service (init, then the API), serves the
//! diagnostics endpoints, and shuts everything down on SIGTERM or SIGINT.
//!
//! Readiness: the `auth` component turns ready when init has finished and
//! the API listens, so `/readyz` answering 200 means tctl can be used.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::auth::bootstrap::Bundle;
use super::auth::{AuthConfig, AuthServer, DataDirPaths, StaticToken, api};
use super::{ClusterError, DataDirLock, Health, Metrics};
use crate::backend::registry::{self, OpenOptions};
use crate::config::FileConfig;
use crate::resources::kinds::SYSTEM_ROLES;

/// How long the local admin identity is valid; it is rewritten well before.
pub const ADMIN_IDENTITY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the admin identity is rewritten.
const ADMIN_IDENTITY_REFRESH: Duration = Duration::from_secs(12 * 3600);
/// How long shutdown waits for open API connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Errors of the process, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A runtime building block failed (lock, listener, signals).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The configuration cannot be used.
    #[error("{0}")]
    Config(String),
    /// The cluster-state store could not be opened.
    #[error("cannot open the cluster state store ({store}): {source}")]
    Backend {
        /// Which store.
        store: String,
        /// Why.
        source: crate::backend::Error,
    },
    /// The auth service failed.
    #[error("auth service: {0}")]
    Auth(#[from] super::auth::AuthError),
    /// A file in the data dir could not be written.
    #[error("{what} {path}: {source}")]
    File {
        /// What the file is.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRole {
    /// The auth service.
    Auth,
    /// The proxy service.
    Proxy,
    /// The SSH node service.
    Node,
}

impl ServiceRole {
    /// Parses `auth`, `proxy`, `node` (upstream's `--roles` words).
    pub fn parse(s: &str) -> Result<ServiceRole, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auth" => Ok(ServiceRole::Auth),
            "proxy" => Ok(ServiceRole::Proxy),
            "node" | "ssh" => Ok(ServiceRole::Node),
            other => Err(format!("unknown role {other:?} in --roles; use auth, proxy and/or node")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ServiceRole::Auth => "auth",
            ServiceRole::Proxy => "proxy",
            ServiceRole::Node => "node",
        }
    }
}

/// What `teleport start` was told.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The loaded teleport.yaml.
    pub config: FileConfig,
    /// `--roles`, overriding the config's `enabled` flags.
    pub roles: Option<Vec<ServiceRole>>,
    /// `--data-dir`, overriding `teleport.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--diag-addr`, overriding `teleport.diag_addr`.
    pub diag_addr: Option<SocketAddr>,
    /// `--bootstrap` file.
    pub bootstrap: Option<PathBuf>,
    /// `--apply-on-startup` file.
    pub apply_on_startup: Option<PathBuf>,
    /// bcrypt cost for new passwords.
    pub bcrypt_cost: u32,
}

impl StartOptions {
    fn roles(&self) -> Vec<ServiceRole> {
        if let Some(r) = &self.roles {
            return r.clone();
        }
        let c = &self.config;
        let mut out = Vec::new();
        if c.auth_service.is_enabled() {
            out.push(ServiceRole::Auth);
        }
        if c.proxy_service.is_enabled() {
            out.push(ServiceRole::Proxy);
        }
        if c.ssh_service.is_enabled() {
            out.push(ServiceRole::Node);
        }
        out
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| self.config.data_dir())
    }

    /// The storage config, with the sqlite default under the effective data dir.
    fn storage(&self) -> crate::config::StorageConfig {
        if self.config.teleport.storage.is_none()
            && let Some(dir) = &self.data_dir
        {
            let mut c = self.config.clone();
            c.teleport.data_dir = Some(dir.clone());
            return c.storage();
        }
        self.config.storage()
    }

    fn auth_config(&self) -> Result<AuthConfig, ProcessError> {
        let c = &self.config;
        let mut cfg = AuthConfig::new(c.cluster_name(), self.data_dir());
        cfg.static_tokens = c
            .auth_service
            .tokens
            .iter()
            .map(|t| StaticToken {
                roles: t
                    .roles
                    .iter()
                    .map(|r| {
                        SYSTEM_ROLES
                            .iter()
                            .find(|s| s.eq_ignore_ascii_case(r))
                            .map(|s| s.to_string())
                            .unwrap_or(r.clone())
                    })
                    .collect(),
                token: t.token.clone(),
            })
            .collect();
        cfg.auth_type = c.auth_service.authentication.kind.as_str().to_string();
        cfg.second_factor = c.second_factor().as_str().to_string();
        cfg.server_names =
            c.auth_service.public_addr.iter().map(|a| a.host.clone()).filter(|h| !h.is_empty()).collect();
        let node = c.nodename();
        if !node.is_empty() {
            cfg.server_names.push(node);
        }
        cfg.bcrypt_cost = self.bcrypt_cost;
        // Files are read and checked before anything else happens, so a bad
        // bundle fails the start at once, naming the file and document.
        if let Some(p) = &self.bootstrap {
            let b = Bundle::read(p)?;
            if let Some(theirs) = b.cluster_name()
                && theirs != cfg.cluster_name
            {
                b.check(&cfg.cluster_name)?;
            }
            cfg.bootstrap = Some(b);
        }
        if let Some(p) = &self.apply_on_startup {
            cfg.apply_on_startup = Some(Bundle::read(p)?);
        }
        Ok(cfg)
    }
}

/// Reads or creates `<data_dir>/host_uuid`.
fn host_uuid(paths: &DataDirPaths) -> Result<String, ProcessError> {
    let path = paths.host_uuid();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ProcessError::File { what: "cannot read", path, source }),
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, format!("{id}\n")).map_err(|source| ProcessError::File {
        what: "cannot write",
        path,
        source,
    })?;
    Ok(id)
}

async fn write_admin_identity(auth: &AuthServer, paths: &DataDirPaths, host_id: &str) -> Result<(), ProcessError> {
    let id = auth.issue_admin_identity(host_id, ADMIN_IDENTITY_TTL).await?;
    let path = paths.admin_identity();
    id.save(&path, auth.cluster_name()).map_err(|e| ProcessError::File {
        what: "cannot write the admin identity",
        path,
        source: std::io::Error::other(e.to_string()),
    })
}

/// Runs the process until a signal (or a fatal error).
pub async fn run(opts: StartOptions) -> Result<(), ProcessError> {
    let t0 = Instant::now();
    let roles = opts.roles();
    if roles.is_empty() {
        return Err(ProcessError::Config(format!(
            "{}: no service is enabled; enable auth_service or pass --roles=auth",
            opts.config.source().display()
        )));
    }
    let explicit = opts.roles.is_some();
    let missing: Vec<&str> = roles.iter().filter(|r| **r != ServiceRole::Auth).map(|r| r.name()).collect();
    if !missing.is_empty() {
        if explicit || !roles.contains(&ServiceRole::Auth) {
            return Err(ProcessError::Config(format!(
                "this build runs the auth service only; the {} service(s) are not part of it yet: start with --roles=auth",
                missing.join(" and ")
            )));
        }
        tracing::warn!(
            services = %missing.join(","),
            "teleport.yaml enables services this build does not run yet; only the auth service starts"
        );
    }
    for field in opts.config.ignored_fields() {
        tracing::warn!(field = %field, "teleport.yaml field is not implemented and is ignored");
    }

    let auth_cfg = opts.auth_config()?;
    let data_dir = opts.data_dir();
    let lock = DataDirLock::acquire(&data_dir)?;
    let paths = DataDirPaths::new(&data_dir);
    let pid_file = opts.config.teleport.pid_file.clone();
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|source| ProcessError::File {
            what: "cannot write teleport.pid_file",
            path: p.clone(),
            source,
        })?;
    }
    let health = Arc::new(Health::new());
    let metrics = Arc::new(Metrics::new(crate::VERSION));
    health.register("auth");
    health.set_not_ready("auth", "initializing");
    let shutdown = CancellationToken::new();
    let signals = super::cancel_on_signal(shutdown.clone())?;

    let diag_addr = match opts.diag_addr {
        Some(a) => Some(a),
        None => opts.config.diag_addr().map_err(|e| ProcessError::Config(e.to_string()))?,
    };
    let diag = match diag_addr {
        Some(addr) => {
            let (_, task) = super::serve(addr, health.clone(), metrics.clone(), shutdown.clone()).await?;
            Some(task)
        }
        None => None,
    };

    let storage = opts.storage();
    let backend = registry::open(&storage, OpenOptions::create())
        .await
        .map_err(|source| ProcessError::Backend { store: storage.type_name().to_string(), source })?;
    tracing::info!(store = %backend.describe(), "cluster state store opened");

    let env = Env { paths: &paths, health: &health, metrics: &metrics, shutdown: shutdown.clone(), started: t0 };
    let result = run_auth(&opts, auth_cfg, backend.clone(), &env).await;
    shutdown.cancel();
    if let Some(task) = diag {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
    }
    signals.abort();
    if let Err(e) = backend.close().await {
        tracing::warn!(error = %e, "closing the cluster state store failed");
    }
    let _ = std::fs::remove_file(paths.auth_addr_file());
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    drop(lock);
    if result.is_ok() {
        tracing::info!("teleport stopped");
    }
    result
}

/// What the services of a process share.
struct Env<'a> {
    paths: &'a DataDirPaths,
    health: &'a Health,
    metrics: &'a Metrics,
    shutdown: CancellationToken,
    started: Instant,
}

async fn run_auth(
    opts: &StartOptions,
    cfg: AuthConfig,
    backend: Arc<dyn crate::backend::Backend>,
    env: &Env<'_>,
) -> Result<(), ProcessError> {
    let Env { paths, health, metrics, started: t0, .. } = *env;
    let shutdown = env.shutdown.clone();
    let listen = opts.config.auth_listen_addr().map_err(|e| ProcessError::Config(e.to_string()))?;
    let host_id = host_uuid(paths)?;
    let (auth, report) = tokio::select! {
        r = AuthServer::start(backend, cfg) => r?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    // The audit log of teleport.storage.audit_events_uri (default: the file
    // log in <data_dir>/log); a log that cannot be opened stops the start.
    let uris = opts.config.storage().audit().audit_events_uri.to_vec();
    let audit = crate::events::registry::open(&uris, &paths.root, &host_id)
        .await
        .map_err(|e| ProcessError::Config(format!("cannot open the audit log (audit_events_uri): {e}")))?;
    tracing::info!(store = %audit.describe(), "audit log opened");
    // The session recording store of teleport.storage.audit_sessions_uri
    // (default <data_dir>/log/records), opened at start as upstream does (a
    // missing bucket or container is created), so a wrong URI or credentials
    // stop the start here rather than at the first recorded session.
    let sessions_uri = opts.config.storage().audit().audit_sessions_uri.clone();
    let recordings =
        crate::recordings::RecordingStore::open(sessions_uri.as_deref(), &paths.root, "audit_sessions_uri")
            .await
            .map_err(|e| ProcessError::Config(format!("cannot open the session recording store: {e}")))?;
    tracing::info!(store = %recordings.describe(), "session recording store opened");
    let auth = auth.with_audit_log(audit);
    if report.first_start {
        tracing::info!(
            cluster = %auth.cluster_name(),
            cas = %report.generated_cas.join(","),
            roles = %report.created_roles.join(","),
            "new cluster initialized"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|source| {
        ProcessError::Cluster(ClusterError::Listen {
            what: "auth API (auth_service.listen_addr)",
            addr: listen,
            source,
        })
    })?;
    let api = api::serve(auth.clone(), listener, &host_id, Some(metrics), shutdown.clone()).await?;
    write_admin_identity(&auth, paths, &host_id).await?;
    let addr_file = paths.auth_addr_file();
    std::fs::write(&addr_file, format!("{}\n", api.addr)).map_err(|source| ProcessError::File {
        what: "cannot write",
        path: addr_file,
        source,
    })?;
    health.set_ready("auth", true);
    tracing::info!(
        addr = %api.addr,
        cluster = %auth.cluster_name(),
        startup_ms = t0.elapsed().as_millis() as u64,
        "auth service ready"
    );
    let mut refresh = tokio::time::interval(ADMIN_IDENTITY_REFRESH);
    refresh.tick().await;
    let mut api_task = api.task;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = refresh.tick() => {
                if let Err(e) = write_admin_identity(&auth, paths, &host_id).await {
                    tracing::warn!(error = %e, "cannot refresh the admin identity");
                }
            }
            r = &mut api_task => {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                health.set_not_ready("auth", "the API server stopped");
                return Err(ProcessError::Config(format!("the auth API server stopped unexpectedly: {r:?}")));
            }
        }
    }
    health.set_not_ready("auth", "shutting down");
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, api_task).await;
    Ok(())
}
