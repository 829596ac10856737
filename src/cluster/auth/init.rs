//! First-start init and the checks of every later start (upstream
//! `lib/auth/init.go`, reference section 9), run under the backend lock
//! `.locks/<cluster>` so that several auth servers sharing one backend
//! never initialize it twice:
//!
//! 1. the cluster name: first writer wins; a config naming another cluster
//!    than the stored one refuses to start, naming both;
//! 2. configuration singletons: the auth preference and static tokens from
//!    teleport.yaml (rewritten on every start, as upstream's "config-file"
//!    origin), networking, session recording and audit config (created when
//!    missing);
//! 3. every certificate authority that is missing, generated here;
//! 4. preset roles that are missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::bootstrap::{ApplyReport, Bundle};
use super::{AuthError, AuthErrorKind, presets};
use crate::backend::{Backend, lock};
use crate::crypto;
use crate::resources::store::{ResourceStore, WriteMode};
use crate::resources::{Resource, ResourceError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How long the init lock lives without a refresh (as upstream).
const INIT_LOCK_TTL: Duration = Duration::from_secs(30);
/// How long to wait for another auth server's init.
const INIT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// Validity of a generated TLS certificate authority.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The certificate authority types created on first start.
pub const GENERATED_CA_TYPES: &[&str] =
    &["host", "user", "db", "db_client", "openssh", "jwt", "saml_idp", "oidc_idp", "spiffe"];

/// A static join token from teleport.yaml (`auth_service.tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// System roles it joins as (`Node`, `Proxy`, ...).
    pub roles: Vec<String>,
    /// The secret.
    pub token: String,
}

/// What the auth service needs from teleport.yaml and the flags.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `auth_service.cluster_name`.
    pub cluster_name: String,
    /// `teleport.data_dir`.
    pub data_dir: PathBuf,
    /// `auth_service.tokens`.
    pub static_tokens: Vec<StaticToken>,
    /// `auth_service.authentication.type`.
    pub auth_type: String,
    /// `auth_service.authentication.second_factor`.
    pub second_factor: String,
    /// Extra names for the API's server certificate (public addresses).
    pub server_names: Vec<String>,
    /// bcrypt cost for new password hashes (>= 10 outside tests).
    pub bcrypt_cost: u32,
    /// `--bootstrap`: resources written on the first start only.
    pub bootstrap: Option<Bundle>,
    /// `--apply-on-startup`: resources upserted on every start.
    pub apply_on_startup: Option<Bundle>,
}

impl AuthConfig {
    /// Defaults for `cluster_name` in `data_dir`.
    pub fn new(cluster_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> AuthConfig {
        AuthConfig {
            cluster_name: cluster_name.into(),
            data_dir: data_dir.into(),
            static_tokens: Vec::new(),
            auth_type: "local".into(),
            second_factor: "otp".into(),
            server_names: Vec::new(),
            bcrypt_cost: crypto::secret::DEFAULT_BCRYPT_COST,
            bootstrap: None,
            apply_on_startup: None,
        }
    }
}

/// What init found and did.
#[derive(Debug, Clone, Default)]
pub struct InitReport {
    /// True when the host CA was missing (a new cluster).
    pub first_start: bool,
    /// CA types generated now.
    pub generated_cas: Vec<String>,
    /// Preset roles created now.
    pub created_roles: Vec<String>,
    /// What `--bootstrap` wrote (first start only).
    pub bootstrapped: Option<ApplyReport>,
    /// True when a bootstrap file was given on a later start and ignored.
    pub bootstrap_ignored: bool,
    /// What `--apply-on-startup` wrote.
    pub applied: Option<ApplyReport>,
}

/// Runs init under the backend lock.
pub async fn init(backend: Arc<dyn Backend>, cfg: &AuthConfig) -> Result<InitReport, AuthError> {
    if cfg.cluster_name.is_empty() {
        return Err(AuthError::bad("auth_service.cluster_name is empty"));
    }
    let store = ResourceStore::new(backend.clone());
    let name = cfg.cluster_name.clone();
    lock::run_while_locked(backend.clone(), &name, INIT_LOCK_TTL, INIT_LOCK_WAIT, || init_locked(&store, cfg))
        .await
        .map_err(|e| {
            AuthError::internal(format!("cannot take the init lock .locks/{name} in {}: {e}", backend.describe()))
        })?
}

async fn init_locked(store: &ResourceStore, cfg: &AuthConfig) -> Result<InitReport, AuthError> {
    let mut report = InitReport::default();
    // Every check comes before the first write: a refused start (another
    // cluster's backend, a bad bootstrap bundle) leaves the store untouched.
    match store.get("cluster_name", "", false).await {
        Ok(stored) => check_stored_name(store, &stored, &cfg.cluster_name)?,
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    report.first_start = match store.get("cert_authority", &format!("host/{}", cfg.cluster_name), false).await {
        Ok(_) => false,
        Err(e) if e.is_not_found() => true,
        Err(e) => return Err(e.into()),
    };
    if report.first_start
        && let Some(b) = &cfg.bootstrap
    {
        b.check(&cfg.cluster_name)?;
    }
    check_cluster_name(store, &cfg.cluster_name).await?;
    match &cfg.bootstrap {
        Some(b) if report.first_start => {
            let applied = b.write(store, &cfg.cluster_name).await?;
            tracing::info!(file = %b.source, applied = %applied.summary(), "bootstrap resources applied");
            report.bootstrapped = Some(applied);
        }
        Some(b) => {
            tracing::warn!(file = %b.source, "ignoring bootstrap resources: the cluster was initialized before");
            report.bootstrap_ignored = true;
        }
        None => {}
    }
    // Configuration from teleport.yaml wins on every start.
    let mut pref = Resource::new("cluster_auth_preference", "cluster-auth-preference").with_spec(json!({
        "type": cfg.auth_type,
        "second_factor": cfg.second_factor,
    }));
    pref.metadata.labels.insert("teleport.dev/origin".into(), "config-file".into());
    store.write(pref, WriteMode::Upsert).await?;
    let tokens: Vec<Value> = cfg
        .static_tokens
        .iter()
        .map(|t| json!({"roles": t.roles, "token": t.token, "expires": "0001-01-01T00:00:00Z"}))
        .collect();
    store
        .write(
            Resource::new("static_tokens", "static-tokens").with_spec(json!({"static_tokens": tokens})),
            WriteMode::Upsert,
        )
        .await?;
    for (kind, spec) in [
        ("cluster_networking_config", json!({"keep_alive_interval": "5m0s", "keep_alive_count_max": 3})),
        ("session_recording_config", json!({"mode": "node", "proxy_checks_host_keys": true})),
        ("cluster_audit_config", json!({})),
    ] {
        create_if_missing(store, Resource::new(kind, "").with_spec(spec)).await?;
    }
    for ca_type in GENERATED_CA_TYPES {
        let exists = match store.get("cert_authority", &format!("{ca_type}/{}", cfg.cluster_name), false).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e.into()),
        };
        if !exists {
            let ca = generate_ca(ca_type, &cfg.cluster_name)?;
            if create_if_missing(store, ca).await? {
                report.generated_cas.push(ca_type.to_string());
            }
        }
    }
    for role in presets::roles() {
        let name = role.metadata.name.clone();
        if create_if_missing(store, role).await? {
            report.created_roles.push(name);
        }
    }
    if let Some(a) = &cfg.apply_on_startup {
        let applied = a.apply(store).await?;
        tracing::info!(file = %a.source, applied = %applied.summary(), "resources applied on startup");
        report.applied = Some(applied);
    }
    Ok(report)
}

/// First writer wins; a different stored name refuses the start.
async fn check_cluster_name(store: &ResourceStore, wanted: &str) -> Result<(), AuthError> {
    let fresh = Resource::new("cluster_name", "cluster-name")
        .with_spec(json!({"cluster_name": wanted, "cluster_id": uuid::Uuid::new_v4().to_string()}));
    match store.write(fresh, WriteMode::Create).await {
        Ok(_) => return Ok(()),
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(e.into()),
    }
    let stored = store.get("cluster_name", "cluster-name", false).await?;
    check_stored_name(store, &stored, wanted)
}

fn check_stored_name(store: &ResourceStore, stored: &Resource, wanted: &str) -> Result<(), AuthError> {
    let stored_name = stored.spec_str("cluster_name").unwrap_or_default().to_string();
    if stored_name != wanted {
        return Err(AuthError::new(
            AuthErrorKind::Conflict,
            format!(
                "the backend {} belongs to cluster {stored_name:?} but the config names cluster {wanted:?}; \
                 a cluster cannot be renamed (its certificate authorities are bound to the name): set \
                 auth_service.cluster_name: {stored_name} or use an empty backend",
                store.backend().describe()
            ),
        ));
    }
    Ok(())
}

/// Creates `r`; false if it already existed.
async fn create_if_missing(store: &ResourceStore, r: Resource) -> Result<bool, AuthError> {
    match store.write(r, WriteMode::Create).await {
        Ok(_) => Ok(true),
        Err(ResourceError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(B64.encode(bytes))
}

/// A new certificate authority of `ca_type` for `cluster`, with keys, in
/// upstream's shape (byte fields base64 of PEM, SSH public keys base64 of
/// an authorized_keys line).
pub fn generate_ca(ca_type: &str, cluster: &str) -> Result<Resource, AuthError> {
    let (ssh, tls, jwt) = match ca_type {
        "host" | "user" => (true, true, false),
        "openssh" => (true, false, false),
        "jwt" | "oidc_idp" => (false, false, true),
        "db" | "db_client" | "saml_idp" => (false, true, false),
        "spiffe" => (false, true, true),
        other => return Err(AuthError::bad(format!("cannot generate a certificate authority of type {other:?}"))),
    };
    let mut keys = serde_json::Map::new();
    if ssh {
        let pair = crypto::ssh::generate_ssh_keypair()?;
        keys.insert(
            "ssh".into(),
            json!([{"public_key": b64(&pair.public_line), "private_key": b64(&pair.private_pem)}]),
        );
    }
    if tls {
        let pair = crypto::tls::generate_tls_ca(cluster, CA_VALIDITY)?;
        keys.insert("tls".into(), json!([{"cert": b64(&pair.cert_pem), "key": b64(&pair.key_pem)}]));
    }
    if jwt {
        let (private, public) = crypto::jwt::generate_jwt_keypair()?;
        keys.insert("jwt".into(), json!([{"public_key": b64(&public), "private_key": b64(&private)}]));
    }
    let mut r = Resource::new("cert_authority", cluster).with_spec(json!({
        "type": ca_type,
        "cluster_name": cluster,
        "active_keys": Value::Object(keys),
        "additional_trusted_keys": {},
    }));
    r.sub_kind = Some(ca_type.to_string());
    Ok(r)
}
