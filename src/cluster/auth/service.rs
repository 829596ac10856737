//! The Auth Service's operations, independent of the transport: users and
//! their credentials, certificate issuance, join tokens, presence. `api`
//! exposes them over mutual TLS after `authz` has checked the caller.
//!
//! Secrets: passwords are checked with bcrypt, tokens are compared in
//! constant time against every candidate, and no secret (password, token,
//! private key) ever reaches a log line or an error message.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::authz::{self, Caller, SystemRole};
use super::init::{self, AuthConfig, InitReport};
use super::{AuthError, AuthErrorKind};
use crate::backend::{Backend, Clock, Item, Key};
use crate::crypto;
use crate::resources::store::{ResourceStore, WriteMode};
use crate::resources::{Resource, kinds, strings};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Default TTL of user certificates when none is asked for (as upstream).
pub const DEFAULT_USER_CERT_TTL: Duration = Duration::from_secs(12 * 3600);
/// Longest user certificate TTL when roles set no `max_session_ttl`.
pub const MAX_USER_CERT_TTL: Duration = Duration::from_secs(30 * 3600);
/// Default TTL of join tokens (`tctl tokens add` without `--ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long invite and reset links stay valid.
pub const USER_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long a heartbeat keeps a server listed.
pub const SERVER_TTL: Duration = Duration::from_secs(10 * 60);
/// The name every auth server's certificate carries and every client
/// verifies (as upstream's `teleport.cluster.local`), so clients can reach
/// the API by any address.
pub const API_SERVER_NAME: &str = "teleport.cluster.local";
/// Validity of host certificates issued at join.
pub const HOST_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The Auth Service over one backend.
#[derive(Debug, Clone)]
pub struct AuthServer {
    store: ResourceStore,
    cfg: Arc<AuthConfig>,
    clock: Arc<dyn Clock>,
    /// Where its audit events go (see `audit`); none: not emitted.
    pub(super) audit: Option<Arc<dyn crate::events::AuditLog>>,
}

/// A key pair and the certificates issued for it: what a client needs to
/// call the API and to use SSH.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Credentials {
    /// The subject (user name or host id).
    pub name: String,
    /// The cluster.
    pub cluster: String,
    /// TLS certificate (PEM), if a TLS public key was sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_cert: String,
    /// SSH certificate (OpenSSH line), if an SSH public key was sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ssh_cert: String,
    /// The TLS CA certificates clients trust (host CA first).
    pub tls_ca_certs: Vec<String>,
    /// SSH public keys of the host CA (to trust nodes) as authorized_keys lines.
    pub ssh_host_ca_keys: Vec<String>,
    /// SSH public keys of the user CA (nodes trust users signed by these).
    pub ssh_user_ca_keys: Vec<String>,
    /// When the certificates expire (RFC 3339).
    pub expires: String,
}

/// A request for user certificates (login or `tctl auth sign`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CertRequest {
    /// The user's SSH public key (authorized_keys line), if an SSH cert is wanted.
    #[serde(default)]
    pub ssh_public_key: String,
    /// The user's TLS public key (SPKI PEM), if a TLS cert is wanted.
    #[serde(default)]
    pub tls_public_key: String,
    /// Requested TTL in seconds (0: the default).
    #[serde(default)]
    pub ttl_seconds: u64,
}

/// A join request from a node or proxy.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct JoinRequest {
    /// The join token.
    pub token: String,
    /// `Node` or `Proxy`.
    pub role: String,
    /// The host's UUID.
    pub host_id: String,
    /// The host's name.
    #[serde(default)]
    pub node_name: String,
    /// Extra DNS names and addresses for its certificates.
    #[serde(default)]
    pub additional_principals: Vec<String>,
    /// Certificates to issue.
    #[serde(flatten)]
    pub keys: CertRequest,
}

/// What `tctl status` shows about one CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaStatus {
    /// CA type.
    pub ca_type: String,
    /// Cluster.
    pub cluster: String,
    /// SSH key fingerprints (`SHA256:...`).
    pub ssh_fingerprints: Vec<String>,
    /// CA pins of the TLS certificates (`sha256:<hex>`).
    pub tls_pins: Vec<String>,
    /// Rotation state (`standby` when never rotated).
    pub rotation: String,
}

/// What `tctl status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub cluster_name: String,
    /// Server version.
    pub version: String,
    /// The CA pin of the host CA (for `teleport start --ca-pin`).
    pub ca_pin: Vec<String>,
    /// Every CA.
    pub authorities: Vec<CaStatus>,
}

fn now_rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl AuthServer {
    /// Runs init on `backend` and returns the service.
    pub async fn start(backend: Arc<dyn Backend>, cfg: AuthConfig) -> Result<(AuthServer, InitReport), AuthError> {
        let report = init::init(backend.clone(), &cfg).await?;
        let clock = backend.clock();
        Ok((AuthServer { store: ResourceStore::new(backend), cfg: Arc::new(cfg), clock, audit: None }, report))
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.cfg.cluster_name
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// The resources.
    pub fn store(&self) -> &ResourceStore {
        &self.store
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// A local CA with its keys.
    async fn ca(&self, ca_type: &str) -> Result<Resource, AuthError> {
        self.store.get("cert_authority", &format!("{ca_type}/{}", self.cluster_name()), true).await.map_err(|e| {
            if e.is_not_found() {
                AuthError::internal(format!(
                    "the {ca_type} certificate authority of {} is missing",
                    self.cluster_name()
                ))
            } else {
                e.into()
            }
        })
    }

    fn field(ca: &Resource, pair: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, AuthError> {
        let s = pair.get(name).and_then(Value::as_str).unwrap_or_default();
        B64.decode(s.trim()).map_err(|e| AuthError::internal(format!("{} has an invalid {name}: {e}", ca.reference())))
    }

    /// The TLS issuer of a local CA (its first key pair with a key).
    pub async fn tls_issuer(&self, ca_type: &str) -> Result<crypto::tls::TlsIssuer, AuthError> {
        let ca = self.ca(ca_type).await?;
        let pair = kinds::ca_key_pairs(&ca, "tls")
            .find(|p| p.get("key").and_then(Value::as_str).is_some_and(|k| !k.is_empty()))
            .ok_or_else(|| {
                AuthError::internal(format!("the {ca_type} certificate authority has no TLS signing key"))
            })?;
        Ok(crypto::tls::TlsIssuer::from_pem(&Self::field(&ca, pair, "cert")?, &Self::field(&ca, pair, "key")?)?)
    }

    /// The SSH signer of a local CA.
    pub async fn ssh_signer(&self, ca_type: &str) -> Result<crypto::ssh::SshSigner, AuthError> {
        let ca = self.ca(ca_type).await?;
        let pair = kinds::ca_key_pairs(&ca, "ssh")
            .find(|p| p.get("private_key").and_then(Value::as_str).is_some_and(|k| !k.is_empty()))
            .ok_or_else(|| {
                AuthError::internal(format!("the {ca_type} certificate authority has no SSH signing key"))
            })?;
        Ok(crypto::ssh::SshSigner::from_pem(&Self::field(&ca, pair, "private_key")?)?)
    }

    /// The TLS CA certificates (PEM) of a CA type, every active one.
    pub async fn tls_ca_certs(&self, ca_type: &str) -> Result<Vec<Vec<u8>>, AuthError> {
        let ca = self.ca(ca_type).await?;
        kinds::ca_key_pairs(&ca, "tls").map(|p| Self::field(&ca, p, "cert")).collect()
    }

    /// The SSH public keys (authorized_keys lines) of a CA type.
    pub async fn ssh_ca_keys(&self, ca_type: &str) -> Result<Vec<String>, AuthError> {
        let ca = self.ca(ca_type).await?;
        kinds::ca_key_pairs(&ca, "ssh")
            .map(|p| Ok(String::from_utf8_lossy(&Self::field(&ca, p, "public_key")?).trim().to_string()))
            .collect()
    }

    /// The CA pins of the host CA's TLS certificates.
    pub async fn ca_pins(&self) -> Result<Vec<String>, AuthError> {
        let mut out = Vec::new();
        for cert in self.tls_ca_certs("host").await? {
            out.push(crypto::tls::ca_pin(&cert)?);
        }
        Ok(out)
    }

    /// Status of the cluster and every CA.
    pub async fn status(&self) -> Result<ClusterStatus, AuthError> {
        let mut authorities = Vec::new();
        for ca in self.store.list("cert_authority", false).await? {
            let (ca_type, cluster) = kinds::ca_id(&ca)?;
            let mut st = CaStatus {
                ca_type,
                cluster,
                ssh_fingerprints: Vec::new(),
                tls_pins: Vec::new(),
                rotation: ca
                    .spec
                    .get("rotation")
                    .and_then(|r| r.get("state"))
                    .and_then(Value::as_str)
                    .unwrap_or("standby")
                    .to_string(),
            };
            for p in kinds::ca_key_pairs(&ca, "ssh") {
                let line = Self::field(&ca, p, "public_key")?;
                st.ssh_fingerprints.push(crypto::ssh::fingerprint(String::from_utf8_lossy(&line).trim())?);
            }
            for p in kinds::ca_key_pairs(&ca, "tls") {
                st.tls_pins.push(crypto::tls::ca_pin(&Self::field(&ca, p, "cert")?)?);
            }
            authorities.push(st);
        }
        Ok(ClusterStatus {
            cluster_name: self.cluster_name().to_string(),
            version: crate::VERSION.to_string(),
            ca_pin: self.ca_pins().await?,
            authorities,
        })
    }

    async fn trust_bundle(&self, creds: &mut Credentials) -> Result<(), AuthError> {
        for ca_type in ["host", "user"] {
            for c in self.tls_ca_certs(ca_type).await? {
                creds.tls_ca_certs.push(String::from_utf8_lossy(&c).to_string());
            }
        }
        creds.ssh_host_ca_keys = self.ssh_ca_keys("host").await?;
        creds.ssh_user_ca_keys = self.ssh_ca_keys("user").await?;
        Ok(())
    }

    /// Issues TLS (and, with an SSH key, SSH host) credentials for a
    /// component, signed by the host CA. Used for the auth server's own
    /// identity, the local admin identity and joins.
    pub async fn issue_system_credentials(
        &self,
        name: &str,
        role: SystemRole,
        req: &CertRequest,
        principals: &[String],
        ttl: Duration,
    ) -> Result<Credentials, AuthError> {
        let now = self.now();
        let expires = now + ttl;
        let mut creds = Credentials {
            name: name.to_string(),
            cluster: self.cluster_name().to_string(),
            expires: now_rfc3339(expires),
            ..Credentials::default()
        };
        if !req.tls_public_key.is_empty() {
            let issuer = self.tls_issuer("host").await?;
            let id = crypto::tls::TlsIdentity {
                username: name.to_string(),
                groups: vec![role.as_str().to_string()],
                cluster: self.cluster_name().to_string(),
                logins: Vec::new(),
            };
            let (dns, ips): (Vec<String>, Vec<IpAddr>) = {
                let mut dns =
                    vec![API_SERVER_NAME.to_string(), format!("*.{API_SERVER_NAME}"), "localhost".to_string()];
                let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
                for p in principals {
                    match p.parse::<IpAddr>() {
                        Ok(ip) => ips.push(ip),
                        Err(_) => dns.push(p.clone()),
                    }
                }
                (dns, ips)
            };
            let cert = issuer.issue(req.tls_public_key.as_bytes(), &id, &dns, &ips, ttl)?;
            creds.tls_cert = String::from_utf8_lossy(&cert).to_string();
        }
        if !req.ssh_public_key.is_empty() {
            let signer = self.ssh_signer("host").await?;
            let mut all = vec![name.to_string(), format!("{name}.{}", self.cluster_name())];
            all.extend(principals.iter().cloned());
            all.dedup();
            creds.ssh_cert = signer.sign_host_cert(&req.ssh_public_key, name, &all, expires)?;
        }
        self.trust_bundle(&mut creds).await?;
        Ok(creds)
    }

    /// A fresh admin identity (key generated here, certificate from the
    /// host CA with the `Admin` role): what local `tctl` uses.
    pub async fn issue_admin_identity(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<crate::cluster::identity::Identity, AuthError> {
        let (key, public) = crypto::tls::generate_private_key()?;
        let req =
            CertRequest { tls_public_key: String::from_utf8_lossy(&public).to_string(), ..CertRequest::default() };
        let creds = self.issue_system_credentials(name, SystemRole::Admin, &req, &[], ttl).await?;
        Ok(crate::cluster::identity::Identity::from_credentials(&String::from_utf8_lossy(&key), &creds))
    }

    /// The roles of a user, read from the backend (missing roles skipped
    /// with a warning: a user whose role was deleted keeps the others).
    pub async fn user_roles(&self, user: &Resource) -> Result<Vec<Resource>, AuthError> {
        let mut out = Vec::new();
        for name in strings(user.spec.get("roles")) {
            match self.store.get("role", &name, false).await {
                Ok(r) => out.push(r),
                Err(e) if e.is_not_found() => {
                    tracing::warn!(user = %user.metadata.name, role = %name, "user names a role that does not exist")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Issues user certificates: SSH (principals = the logins the user's
    /// roles grant) signed by the user CA, and TLS (CN = user, O = roles).
    pub async fn issue_user_credentials(&self, user: &Resource, req: &CertRequest) -> Result<Credentials, AuthError> {
        let roles = self.user_roles(user).await?;
        let mut max = MAX_USER_CERT_TTL;
        for r in &roles {
            if let Some(s) = r.spec.get("options").and_then(|o| o.get("max_session_ttl")).and_then(Value::as_str)
                && let Ok(d) = crate::config::duration::parse(s)
                && !d.is_zero()
            {
                max = max.min(d);
            }
        }
        let ttl = match req.ttl_seconds {
            0 => DEFAULT_USER_CERT_TTL.min(max),
            s => Duration::from_secs(s).min(max),
        };
        let now = self.now();
        let expires = now + ttl;
        let name = user.metadata.name.clone();
        let logins = authz::logins_for(user, &roles);
        let role_names: Vec<String> = roles.iter().map(|r| r.metadata.name.clone()).collect();
        let mut creds = Credentials {
            name: name.clone(),
            cluster: self.cluster_name().to_string(),
            expires: now_rfc3339(expires),
            ..Credentials::default()
        };
        if req.ssh_public_key.is_empty() && req.tls_public_key.is_empty() {
            return Err(AuthError::bad("send an ssh_public_key, a tls_public_key or both"));
        }
        if !req.ssh_public_key.is_empty() {
            let signer = self.ssh_signer("user").await?;
            // A certificate names at least one principal; upstream gives users
            // without logins a principal nobody can log in as.
            let principals = if logins.is_empty() {
                vec![format!("-teleport-nologin-{}", uuid::Uuid::new_v4())]
            } else {
                logins.clone()
            };
            let mut cert_req = crypto::ssh::UserCertRequest::new(
                req.ssh_public_key.clone(),
                name.clone(),
                principals,
                now - Duration::from_secs(60),
                expires,
            );
            cert_req.serial = rand::random();
            creds.ssh_cert = signer.sign_user_cert(&cert_req)?;
        }
        if !req.tls_public_key.is_empty() {
            let issuer = self.tls_issuer("user").await?;
            let id = crypto::tls::TlsIdentity {
                username: name.clone(),
                groups: role_names,
                cluster: self.cluster_name().to_string(),
                logins,
            };
            let cert = issuer.issue(req.tls_public_key.as_bytes(), &id, &[], &[], ttl)?;
            creds.tls_cert = String::from_utf8_lossy(&cert).to_string();
        }
        self.trust_bundle(&mut creds).await?;
        tracing::info!(user = %name, ttl_secs = ttl.as_secs(), "issued user certificates");
        Ok(creds)
    }

    /// Checks a user's password (and OTP code when the auth preference or
    /// the user's devices require it). The error never says which part was
    /// wrong.
    pub async fn authenticate(&self, user: &str, password: &str, otp: Option<&str>) -> Result<Resource, AuthError> {
        let denied = || AuthError::denied("invalid user name, password or second factor");
        let u = match self.store.get("user", user, false).await {
            Ok(u) => u,
            Err(e) if e.is_not_found() => {
                // Spend the same time as a real check.
                let _ = crypto::secret::verify_password(password, dummy_hash(self.cfg.bcrypt_cost));
                return Err(denied());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(hash) = self.store.password_hash(user).await? else {
            let _ = crypto::secret::verify_password(password, dummy_hash(self.cfg.bcrypt_cost));
            return Err(denied());
        };
        if !crypto::secret::verify_password(password, &hash) {
            tracing::info!(user = %user, "login failed");
            return Err(denied());
        }
        let second_factor = self.second_factor().await?;
        let devices = self.store.mfa_devices(user).await?;
        let otp_keys: Vec<String> = devices
            .iter()
            .filter_map(|d| d.get("totp").and_then(|t| t.get("key")).and_then(Value::as_str).map(str::to_string))
            .collect();
        let needs_otp =
            matches!(second_factor.as_str(), "otp" | "on") || (second_factor == "optional" && !otp_keys.is_empty());
        if needs_otp && second_factor != "off" {
            let code = otp.unwrap_or_default();
            let now = self.now();
            let ok = otp_keys.iter().fold(false, |acc, k| crypto::secret::totp_verify(k, code, now) | acc);
            if !ok {
                tracing::info!(user = %user, "login failed: second factor");
                return Err(denied());
            }
        }
        Ok(u)
    }

    async fn second_factor(&self) -> Result<String, AuthError> {
        let pref = self.store.get("cluster_auth_preference", "", false).await?;
        Ok(pref.spec_str("second_factor").unwrap_or("off").to_string())
    }

    /// Creates a user with roles and logins; with a password the user can
    /// log in at once, otherwise a signup token is returned.
    pub async fn add_user(
        &self,
        name: &str,
        roles: &[String],
        logins: &[String],
        password: Option<&str>,
    ) -> Result<Option<UserToken>, AuthError> {
        if roles.is_empty() {
            return Err(AuthError::bad(format!("user {name:?} needs at least one role (--roles)")));
        }
        let mut traits = serde_json::Map::new();
        if !logins.is_empty() {
            traits.insert("logins".into(), json!(logins));
        }
        let mut user = Resource::new("user", name).with_spec(json!({
            "roles": roles,
            "traits": traits,
            "created_by": {"time": now_rfc3339(self.now()), "user": {"name": "tctl"}},
        }));
        if let Some(p) = password {
            let hash = crypto::secret::hash_password_with_cost(p, self.cfg.bcrypt_cost)?;
            user.spec_mut().insert("local_auth".into(), json!({"password_hash": B64.encode(hash)}));
        }
        self.store.write(user, WriteMode::Create).await?;
        if password.is_some() {
            return Ok(None);
        }
        Ok(Some(self.create_user_token(name, "invite").await?))
    }

    /// A new reset token for a user; the user's password and devices are
    /// removed until the user completes the reset.
    pub async fn reset_user(&self, name: &str) -> Result<UserToken, AuthError> {
        self.store.get("user", name, false).await?;
        let backend = self.store.backend();
        backend.delete(&crate::resources::store::user_password_key(name)).await.or_else(ignore_not_found)?;
        let mfa = Key::exact(["web", "users", name, "mfa"]);
        backend.delete_range(&mfa, &mfa.range_end()).await?;
        self.create_user_token(name, "reset").await
    }

    async fn create_user_token(&self, user: &str, kind: &str) -> Result<UserToken, AuthError> {
        let token = crypto::secret::random_token()?;
        let expires = self.now() + USER_TOKEN_TTL;
        let doc = json!({
            "kind": "user_token", "sub_kind": kind, "version": "v3",
            "metadata": {"name": token, "expires": now_rfc3339(expires)},
            "spec": {"user": user, "created": now_rfc3339(self.now())}
        });
        let bytes = serde_json::to_vec(&doc).map_err(|e| AuthError::internal(e.to_string()))?;
        self.store.backend().put(Item::new(Key::new(["usertoken", token.as_str()]), bytes).expires_at(expires)).await?;
        Ok(UserToken {
            token,
            user: user.to_string(),
            kind: kind.to_string(),
            expires: now_rfc3339(expires),
            ttl_secs: USER_TOKEN_TTL.as_secs(),
        })
    }

    /// Completes an invite or reset: sets the password and, with `otp`
    /// (a base32 TOTP secret and a current code from it), registers a TOTP
    /// device; consumes the token. When the cluster requires a second factor
    /// (`second_factor: otp|on`), the device is required.
    pub async fn complete_signup(
        &self,
        token: &str,
        password: &str,
        otp: Option<(&str, &str)>,
    ) -> Result<String, AuthError> {
        let key = Key::new(["usertoken", token]);
        let item = match self.store.backend().get(&key).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => {
                return Err(AuthError::denied("the invite or reset token is invalid or expired"));
            }
            Err(e) => return Err(e.into()),
        };
        let doc: Value =
            serde_json::from_slice(&item.value).map_err(|e| AuthError::internal(format!("user token: {e}")))?;
        let user = doc.get("spec").and_then(|s| s.get("user")).and_then(Value::as_str).unwrap_or_default().to_string();
        let second_factor = self.second_factor().await?;
        let device = match otp {
            Some((secret, code)) => {
                if !crypto::secret::totp_verify(secret, code, self.now()) {
                    return Err(AuthError::bad("the OTP code does not match the OTP secret; check the device's clock"));
                }
                let now = now_rfc3339(self.now());
                Some(json!({
                    "kind": "mfa_device", "version": "v1",
                    "metadata": {"name": "otp"},
                    "id": uuid::Uuid::new_v4().to_string(),
                    "added_at": now, "last_used": now,
                    "totp": {"key": secret}
                }))
            }
            None if matches!(second_factor.as_str(), "otp" | "on") => {
                return Err(AuthError::bad(format!(
                    "this cluster requires a second factor (second_factor: {second_factor}): register an OTP device with the signup"
                )));
            }
            None => None,
        };
        let hash = crypto::secret::hash_password_with_cost(password, self.cfg.bcrypt_cost)?;
        self.store.set_password_hash(&user, &hash).await?;
        if let Some(d) = device {
            self.store.put_mfa_device(&user, &d).await?;
        }
        self.store.backend().conditional_delete(&key, &item.revision).await.or_else(ignore_not_found)?;
        tracing::info!(user = %user, "user completed signup");
        Ok(user)
    }

    /// Creates a join token.
    pub async fn create_token(
        &self,
        roles: &[String],
        ttl: Option<Duration>,
        value: Option<String>,
    ) -> Result<Resource, AuthError> {
        let mut canonical = Vec::new();
        for r in roles {
            let found = kinds::SYSTEM_ROLES.iter().find(|s| s.eq_ignore_ascii_case(r.trim())).ok_or_else(|| {
                AuthError::bad(format!("--type {r:?} is not a role a token can join as; use node, proxy, ..."))
            })?;
            canonical.push(found.to_string());
        }
        if canonical.is_empty() {
            return Err(AuthError::bad("a token needs at least one role (--type=node,proxy)"));
        }
        let token = match value {
            Some(v) if v.len() < 8 => return Err(AuthError::bad("a token --value must be at least 8 characters")),
            Some(v) => v,
            None => crypto::secret::random_token()?,
        };
        let mut r = Resource::new("token", &token).with_spec(json!({"roles": canonical, "join_method": "token"}));
        r.set_expires(Some(self.now() + ttl.unwrap_or(DEFAULT_TOKEN_TTL)));
        Ok(self.store.write(r, WriteMode::Create).await?)
    }

    /// Checks a join token for `role` in constant time against every
    /// candidate (static and dynamic); consumes a single-use token.
    async fn check_join_token(&self, token: &str, role: &str) -> Result<(), AuthError> {
        let denied =
            || AuthError::denied(format!("the join token is invalid, expired or does not allow role {role:?}"));
        let mut matched: Option<(Vec<String>, Option<Resource>)> = None;
        let statics = match self.store.get("static_tokens", "", true).await {
            Ok(r) => r.spec.get("static_tokens").and_then(Value::as_array).cloned().unwrap_or_default(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for t in &statics {
            let secret = t.get("token").and_then(Value::as_str).unwrap_or_default();
            if crypto::secret::constant_time_eq(secret.as_bytes(), token.as_bytes()) {
                matched = Some((strings(t.get("roles")), None));
            }
        }
        let now = self.now();
        for t in self.store.list("token", true).await? {
            if crypto::secret::constant_time_eq(t.metadata.name.as_bytes(), token.as_bytes()) {
                let live = t.expires().ok().flatten().is_none_or(|e| e > now);
                if live {
                    matched = Some((strings(t.spec.get("roles")), Some(t)));
                }
            }
        }
        let Some((roles, resource)) = matched else { return Err(denied()) };
        if !roles.iter().any(|r| r.eq_ignore_ascii_case(role)) {
            return Err(denied());
        }
        if let Some(t) = resource
            && t.spec.get("single_use").and_then(Value::as_bool) == Some(true)
        {
            let key = kinds::lookup("token")?.key(&t)?;
            let rev = t.metadata.revision.clone().unwrap_or_default();
            self.store.backend().conditional_delete(&key, &rev).await.map_err(|_| denied())?;
        }
        Ok(())
    }

    /// A node or proxy joins with a token and gets host credentials.
    pub async fn join(&self, req: &JoinRequest) -> Result<Credentials, AuthError> {
        let role = SystemRole::parse(&req.role)
            .filter(|r| matches!(r, SystemRole::Node | SystemRole::Proxy))
            .ok_or_else(|| AuthError::bad(format!("cannot join as {:?}: use Node or Proxy", req.role)))?;
        if req.host_id.is_empty() || req.host_id.contains('/') {
            return Err(AuthError::bad("host_id is missing or contains '/'"));
        }
        self.check_join_token(&req.token, role.as_str()).await?;
        let mut principals = req.additional_principals.clone();
        if !req.node_name.is_empty() {
            principals.push(req.node_name.clone());
        }
        let creds = self.issue_system_credentials(&req.host_id, role, &req.keys, &principals, HOST_CERT_TTL).await?;
        tracing::info!(host_id = %req.host_id, role = role.as_str(), "host joined the cluster");
        Ok(creds)
    }

    /// Records a heartbeat of the calling node or proxy.
    pub async fn heartbeat(&self, caller: &Caller, mut server: Value) -> Result<(), AuthError> {
        let (name, role) = match caller {
            Caller::System { name, role }
                if matches!(role, SystemRole::Node | SystemRole::Proxy | SystemRole::Admin) =>
            {
                (name.clone(), *role)
            }
            _ => return Err(AuthError::forbidden(format!("{} may not send heartbeats", caller.describe()))),
        };
        let (kind, key) = match role {
            SystemRole::Proxy => ("proxy", Key::new(["proxies", name.as_str()])),
            _ => ("node", Key::new(["nodes", "default", name.as_str()])),
        };
        let expires = self.now() + SERVER_TTL;
        let Some(obj) = server.as_object_mut() else { return Err(AuthError::bad("a heartbeat is a JSON object")) };
        obj.insert("kind".into(), json!(kind));
        obj.entry("version").or_insert(json!("v2"));
        let meta = obj.entry("metadata").or_insert(json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert("name".into(), json!(name));
            m.insert("namespace".into(), json!("default"));
            m.insert("expires".into(), json!(now_rfc3339(expires)));
        }
        let bytes = serde_json::to_vec(&server).map_err(|e| AuthError::internal(e.to_string()))?;
        self.store.backend().put(Item::new(key, bytes).expires_at(expires)).await?;
        Ok(())
    }

    /// The servers that sent a heartbeat recently.
    pub async fn list_servers(&self, kind: &str) -> Result<Vec<Value>, AuthError> {
        use futures::TryStreamExt;
        let prefix = match kind {
            "proxy" => Key::exact(["proxies"]),
            _ => Key::exact(["nodes", "default"]),
        };
        let items: Vec<Item> =
            self.store.backend().items(crate::backend::ItemsParams::prefix(&prefix)).try_collect().await?;
        items
            .iter()
            .map(|i| {
                serde_json::from_slice(&i.value)
                    .map_err(|e| AuthError::internal(format!("{}: {e}", i.key.to_string_lossy())))
            })
            .collect()
    }

    /// Fails unless `caller` may do `verb` on resources of `kind`.
    pub async fn authorize(&self, caller: &Caller, kind: &str, verb: &str) -> Result<(), AuthError> {
        self.authorize_all(caller, &[kind], verb).await
    }

    /// Fails unless `caller` may do `verb` on every kind of `kinds`; a
    /// user's roles are read once for all of them.
    pub async fn authorize_all(&self, caller: &Caller, kinds: &[&str], verb: &str) -> Result<(), AuthError> {
        match caller {
            Caller::System { role: SystemRole::Admin, .. } => Ok(()),
            Caller::User { name, .. } => {
                let user = self.store.get("user", name, false).await.map_err(|e| {
                    if e.is_not_found() {
                        AuthError::forbidden(format!("user {name:?} no longer exists"))
                    } else {
                        e.into()
                    }
                })?;
                let roles = self.user_roles(&user).await?;
                match kinds.iter().find(|kind| !authz::roles_allow(&roles, kind, verb)) {
                    None => Ok(()),
                    Some(kind) => Err(AuthError::forbidden(format!("user {name:?} may not {verb} {kind} resources"))),
                }
            }
            other => match kinds.first() {
                None => Ok(()),
                Some(kind) => Err(AuthError::new(
                    AuthErrorKind::Forbidden,
                    format!("{} may not {verb} {kind} resources", other.describe()),
                )),
            },
        }
    }
}

fn ignore_not_found(e: crate::backend::Error) -> Result<(), crate::backend::Error> {
    if e.is_not_found() { Ok(()) } else { Err(e) }
}

/// A bcrypt hash (at the configured cost) checked when the user is unknown
/// or has no password, so that failed logins take the same time either way.
fn dummy_hash(cost: u32) -> &'static [u8] {
    static HASH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crypto::secret::hash_password_with_cost("not a password of anyone", cost).unwrap_or_default())
}

/// An invite or reset token for a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserToken {
    /// The secret.
    pub token: String,
    /// The user.
    pub user: String,
    /// `invite` or `reset`.
    pub kind: String,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// Its TTL in seconds.
    pub ttl_secs: u64,
}
