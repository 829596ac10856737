//! The kind registry: every resource kind with its names, versions, backend
//! key, validation and secret fields. `tctl get`, `tctl create`, `get all`
//! and `--bootstrap` all go through this one table, so what one exports the
//! other imports (the asymmetry upstream users keep hitting).

use base64::Engine;
use serde_json::Value;

use super::{Resource, ResourceError, strings};
use crate::backend::Key;

/// Every kind this project handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Certificate authorities (host, user, jwt, openssh, db, ...).
    CertAuthority,
    /// The cluster's name (first writer wins).
    ClusterName,
    /// `cluster_auth_preference`.
    AuthPreference,
    /// `cluster_networking_config`.
    NetworkingConfig,
    /// `session_recording_config`.
    SessionRecordingConfig,
    /// `cluster_audit_config`.
    AuditConfig,
    /// Static join tokens from teleport.yaml.
    StaticTokens,
    /// Roles.
    Role,
    /// Local and SSO users.
    User,
    /// Provision (join) tokens.
    Token,
    /// Trusted (leaf/root) cluster relationships.
    TrustedCluster,
    /// GitHub SSO connectors.
    Github,
    /// Locks.
    Lock,
}

/// One kind's entry.
#[derive(Debug)]
pub struct KindInfo {
    /// Which kind.
    pub kind: Kind,
    /// The canonical name (`cert_authority`).
    pub name: &'static str,
    /// Other names `tctl get` accepts (`cas`, `roles`, ...).
    pub aliases: &'static [&'static str],
    /// The version written when a document gives none.
    pub default_version: &'static str,
    /// Versions accepted.
    pub versions: &'static [&'static str],
    /// The fixed resource name of a singleton.
    pub singleton: Option<&'static str>,
    /// The key prefix every resource of the kind lives under.
    pub prefix: &'static [&'static str],
    /// Part of `tctl get all` (the cluster's configuration and identity).
    pub exported: bool,
    /// What `--with-secrets` adds for this kind, for docs and messages.
    pub secrets: &'static str,
}

/// The registry, in the order `get all` writes and bootstrap applies:
/// cluster identity and configuration first, then roles before the users
/// that name them.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: Kind::ClusterName,
        name: "cluster_name",
        aliases: &[],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("cluster-name"),
        prefix: &["cluster_configuration", "name"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::CertAuthority,
        name: "cert_authority",
        aliases: &["cert_authorities", "ca", "cas"],
        default_version: "v2",
        versions: &["v2"],
        singleton: None,
        prefix: &["authorities"],
        exported: true,
        secrets: "private keys (ssh private_key, tls key, jwt private_key)",
    },
    KindInfo {
        kind: Kind::AuthPreference,
        name: "cluster_auth_preference",
        aliases: &["cap", "auth_preference"],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("cluster-auth-preference"),
        prefix: &["authentication", "preference", "general"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::NetworkingConfig,
        name: "cluster_networking_config",
        aliases: &["networking_config"],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("cluster-networking-config"),
        prefix: &["cluster_configuration", "networking"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::SessionRecordingConfig,
        name: "session_recording_config",
        aliases: &["recording_config"],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("session-recording-config"),
        prefix: &["cluster_configuration", "session_recording"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::AuditConfig,
        name: "cluster_audit_config",
        aliases: &["audit_config"],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("cluster-audit-config"),
        prefix: &["cluster_configuration", "audit"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::StaticTokens,
        name: "static_tokens",
        aliases: &[],
        default_version: "v2",
        versions: &["v2"],
        singleton: Some("static-tokens"),
        prefix: &["cluster_configuration", "static_tokens"],
        exported: true,
        secrets: "token values",
    },
    KindInfo {
        kind: Kind::Role,
        name: "role",
        aliases: &["roles"],
        default_version: "v7",
        versions: &["v3", "v4", "v5", "v6", "v7", "v8"],
        singleton: None,
        prefix: &["roles"],
        exported: true,
        secrets: "",
    },
    KindInfo {
        kind: Kind::User,
        name: "user",
        aliases: &["users"],
        default_version: "v2",
        versions: &["v2"],
        singleton: None,
        prefix: &["web", "users"],
        exported: true,
        secrets: "local auth (password hash, MFA devices)",
    },
    KindInfo {
        kind: Kind::Token,
        name: "token",
        aliases: &["tokens"],
        default_version: "v2",
        versions: &["v2"],
        singleton: None,
        prefix: &["tokens"],
        exported: true,
        secrets: "token values (the token's name)",
    },
    KindInfo {
        kind: Kind::TrustedCluster,
        name: "trusted_cluster",
        aliases: &["trusted_clusters", "tc"],
        default_version: "v2",
        versions: &["v2"],
        singleton: None,
        prefix: &["trustedclusters"],
        exported: true,
        secrets: "the join token",
    },
    KindInfo {
        kind: Kind::Github,
        name: "github",
        aliases: &["github_connector", "githubs"],
        default_version: "v3",
        versions: &["v3"],
        singleton: None,
        prefix: &["web", "connectors", "github", "connectors"],
        exported: true,
        secrets: "client_secret",
    },
    KindInfo {
        kind: Kind::Lock,
        name: "lock",
        aliases: &["locks"],
        default_version: "v2",
        versions: &["v2"],
        singleton: None,
        prefix: &["locks"],
        exported: true,
        secrets: "",
    },
];

/// Every certificate authority type upstream defines; all are stored and
/// exported even where nothing here uses them.
pub const CA_TYPES: &[&str] = &[
    "host",
    "user",
    "db",
    "db_client",
    "openssh",
    "jwt",
    "saml_idp",
    "oidc_idp",
    "spiffe",
    "okta",
    "awsra",
    "bound_keypair",
];

/// Roles a join token may grant (upstream's system roles).
pub const SYSTEM_ROLES: &[&str] = &[
    "Auth",
    "Node",
    "Proxy",
    "App",
    "Db",
    "Kube",
    "WindowsDesktop",
    "Discovery",
    "Bot",
    "Trusted_cluster",
    "Instance",
    "Okta",
    "MDM",
];

/// The entry for a kind or alias (`role`, `roles`, `cas`).
pub fn lookup(name: &str) -> Result<&'static KindInfo, ResourceError> {
    let n = name.trim().to_ascii_lowercase();
    KINDS.iter().find(|k| k.name == n || k.aliases.contains(&n.as_str())).ok_or_else(|| ResourceError::UnknownKind {
        kind: name.to_string(),
        known: KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
    })
}

fn check_name(r: &Resource) -> Result<(), ResourceError> {
    let n = &r.metadata.name;
    if n.is_empty() {
        return Err(r.invalid("metadata.name is missing"));
    }
    if n.contains('/') || n == "." || n == ".." || n.chars().any(char::is_control) {
        return Err(r.invalid(format!("metadata.name {n:?} may not contain '/' or control characters")));
    }
    Ok(())
}

fn b64(r: &Resource, field: &str, v: &Value) -> Result<Vec<u8>, ResourceError> {
    let s = v.as_str().ok_or_else(|| r.invalid(format!("{field} must be a base64 string")))?;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| r.invalid(format!("{field} is not valid base64: {e}")))
}

/// Checks that a base64 field holds a PEM block (the restore failure users
/// hit upstream, "expected PEM-encoded block", is caught here, by name).
fn pem_field(r: &Resource, field: &str, v: &Value) -> Result<(), ResourceError> {
    let bytes = b64(r, field, v)?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN ") {
        return Err(r.invalid(format!("{field} is not a PEM-encoded block")));
    }
    Ok(())
}

impl KindInfo {
    /// The backend key of a resource's main item.
    pub fn key(&self, r: &Resource) -> Result<Key, ResourceError> {
        let name = r.metadata.name.as_str();
        Ok(match self.kind {
            Kind::CertAuthority => {
                let (ca_type, cluster) = ca_id(r)?;
                Key::new(["authorities", ca_type.as_str(), cluster.as_str()])
            }
            Kind::User => Key::new(["web", "users", name, "params"]),
            Kind::Role => Key::new(["roles", name, "params"]),
            Kind::Token => Key::new(["tokens", name]),
            Kind::TrustedCluster => Key::new(["trustedclusters", name]),
            Kind::Github => Key::new(["web", "connectors", "github", "connectors", name]),
            Kind::Lock => Key::new(["locks", name]),
            _ => Key::new(self.prefix),
        })
    }

    /// Checks a resource and fills in what upstream defaults (version,
    /// singleton name, CA sub-kind).
    pub fn validate(&self, r: &mut Resource) -> Result<(), ResourceError> {
        if r.version.is_empty() {
            r.version = self.default_version.to_string();
        }
        if !self.versions.contains(&r.version.as_str()) {
            return Err(r.invalid(format!(
                "version {:?} is not supported; supported: {}",
                r.version,
                self.versions.join(", ")
            )));
        }
        if let Some(fixed) = self.singleton {
            if r.metadata.name.is_empty() {
                r.metadata.name = fixed.to_string();
            }
        } else {
            check_name(r)?;
        }
        if !r.spec.is_object() {
            return Err(r.invalid("spec must be a mapping"));
        }
        r.expires()?;
        match self.kind {
            Kind::CertAuthority => validate_ca(r),
            Kind::Role => validate_role(r),
            Kind::User => validate_user(r),
            Kind::Token => validate_token(r),
            Kind::AuthPreference => validate_auth_preference(r),
            Kind::ClusterName => match r.spec_str("cluster_name") {
                Some(n) if !n.is_empty() => Ok(()),
                _ => Err(r.invalid("spec.cluster_name is missing")),
            },
            Kind::Lock => match r.spec.get("target") {
                Some(Value::Object(t)) if !t.is_empty() => Ok(()),
                _ => Err(r.invalid("spec.target must name what is locked (user, role, login, node, ...)")),
            },
            Kind::TrustedCluster => {
                if r.spec_str("proxy_address").is_none_or(str::is_empty) {
                    return Err(r.invalid("spec.proxy_address is missing"));
                }
                Ok(())
            }
            Kind::Github => {
                if r.spec_str("client_id").is_none_or(str::is_empty) {
                    return Err(r.invalid("spec.client_id is missing"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Removes secret fields (what `--with-secrets` would add).
    pub fn strip_secrets(&self, r: &mut Resource) {
        match self.kind {
            Kind::User => {
                r.spec_mut().remove("local_auth");
            }
            Kind::CertAuthority => {
                for set in ["active_keys", "additional_trusted_keys"] {
                    if let Some(Value::Object(keys)) = r.spec_mut().get_mut(set) {
                        for list in keys.values_mut() {
                            if let Value::Array(pairs) = list {
                                for p in pairs.iter_mut().filter_map(Value::as_object_mut) {
                                    p.remove("private_key");
                                    p.remove("key");
                                }
                            }
                        }
                    }
                }
            }
            Kind::Github => {
                r.spec_mut().remove("client_secret");
            }
            Kind::TrustedCluster => {
                r.spec_mut().remove("token");
            }
            Kind::Token => {
                r.metadata.name = redact(&r.metadata.name);
            }
            Kind::StaticTokens => {
                if let Some(Value::Array(list)) = r.spec_mut().get_mut("static_tokens") {
                    for t in list.iter_mut().filter_map(Value::as_object_mut) {
                        if let Some(Value::String(v)) = t.get("token") {
                            let red = redact(v);
                            t.insert("token".into(), Value::String(red));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// True if a key under the kind's prefix is one of its resources' main
    /// items (users keep password and MFA items beside `params`; CAs keep
    /// deactivated copies under `deactivated/`).
    pub fn is_main_key(&self, key: &Key) -> bool {
        let k = key.to_string_lossy();
        match self.kind {
            Kind::User | Kind::Role => k.ends_with("/params") && k.matches('/').count() == self.prefix.len() + 2,
            Kind::CertAuthority => !k.starts_with("/authorities/deactivated/") && k.matches('/').count() == 3,
            Kind::Github | Kind::Token | Kind::TrustedCluster | Kind::Lock => {
                k.matches('/').count() == self.prefix.len() + 1
            }
            _ => true,
        }
    }
}

/// A secret replaced by something that tells two apart without revealing either.
fn redact(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("redacted-{}", hex::encode(&Sha256::digest(secret.as_bytes())[..6]))
}

/// Where a kind stands in [`KINDS`]: the order `get all` writes and
/// bootstrap and `tctl create` apply (unknown kinds last).
pub fn apply_order(kind: &str) -> usize {
    KINDS.iter().position(|k| k.name == kind).unwrap_or(usize::MAX)
}

/// The key pairs of a CA's `spec.active_keys.<set>` (`ssh`, `tls`, `jwt`).
pub fn ca_key_pairs<'a>(
    ca: &'a Resource,
    set: &str,
) -> impl Iterator<Item = &'a serde_json::Map<String, Value>> + use<'a> {
    ca.spec
        .get("active_keys")
        .and_then(|k| k.get(set))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// A cert_authority's type and cluster.
pub fn ca_id(r: &Resource) -> Result<(String, String), ResourceError> {
    let ca_type = r
        .spec_str("type")
        .or(r.sub_kind.as_deref())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| r.invalid("spec.type is missing (host, user, jwt, ...)"))?
        .to_string();
    let cluster = r.spec_str("cluster_name").filter(|c| !c.is_empty()).unwrap_or(&r.metadata.name).to_string();
    if cluster.is_empty() {
        return Err(r.invalid("spec.cluster_name is missing"));
    }
    Ok((ca_type, cluster))
}

/// True if a cert_authority carries signing keys (any private key).
pub fn ca_has_private_keys(r: &Resource) -> bool {
    let Some(Value::Object(keys)) = r.spec.get("active_keys") else { return false };
    keys.values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_object)
        .any(|p| p.get("private_key").or(p.get("key")).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
}

fn validate_ca(r: &mut Resource) -> Result<(), ResourceError> {
    let (ca_type, cluster) = ca_id(r)?;
    if !CA_TYPES.contains(&ca_type.as_str()) {
        return Err(r.invalid(format!("unknown cert_authority type {ca_type:?}; known types: {}", CA_TYPES.join(", "))));
    }
    if r.metadata.name.is_empty() {
        r.metadata.name = cluster.clone();
    }
    if r.sub_kind.is_none() {
        r.sub_kind = Some(ca_type.clone());
    }
    let spec = r.spec_mut();
    spec.entry("type").or_insert_with(|| Value::String(ca_type));
    spec.entry("cluster_name").or_insert_with(|| Value::String(cluster));
    let keys = r.spec.get("active_keys").cloned();
    if let Some(keys) = keys {
        let Value::Object(keys) = keys else {
            return Err(r.invalid("spec.active_keys must be a mapping of ssh, tls and jwt key lists"));
        };
        for (set, list) in &keys {
            let Value::Array(pairs) = list else {
                return Err(r.invalid(format!("spec.active_keys.{set} must be a list")));
            };
            for (i, p) in pairs.iter().enumerate() {
                let at = format!("spec.active_keys.{set}[{i}]");
                let Value::Object(p) = p else {
                    return Err(r.invalid(format!("{at} must be a mapping")));
                };
                match set.as_str() {
                    "ssh" => {
                        let public =
                            p.get("public_key").ok_or_else(|| r.invalid(format!("{at}.public_key is missing")))?;
                        let line = String::from_utf8_lossy(&b64(r, &format!("{at}.public_key"), public)?).to_string();
                        if !line.starts_with("ssh-") && !line.starts_with("ecdsa-") {
                            return Err(r.invalid(format!("{at}.public_key is not an OpenSSH public key")));
                        }
                        if let Some(k) = p.get("private_key").filter(|v| !v.as_str().is_some_and(str::is_empty)) {
                            pem_field(r, &format!("{at}.private_key"), k)?;
                        }
                    }
                    "tls" => {
                        let cert = p.get("cert").ok_or_else(|| r.invalid(format!("{at}.cert is missing")))?;
                        pem_field(r, &format!("{at}.cert"), cert)?;
                        if let Some(k) = p.get("key").filter(|v| !v.as_str().is_some_and(str::is_empty)) {
                            pem_field(r, &format!("{at}.key"), k)?;
                        }
                    }
                    "jwt" => {
                        let public =
                            p.get("public_key").ok_or_else(|| r.invalid(format!("{at}.public_key is missing")))?;
                        pem_field(r, &format!("{at}.public_key"), public)?;
                        if let Some(k) = p.get("private_key").filter(|v| !v.as_str().is_some_and(str::is_empty)) {
                            pem_field(r, &format!("{at}.private_key"), k)?;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn validate_role(r: &mut Resource) -> Result<(), ResourceError> {
    for side in ["allow", "deny"] {
        match r.spec.get(side) {
            None | Some(Value::Null) => {}
            Some(Value::Object(c)) => {
                if let Some(l) = c.get("logins")
                    && !matches!(l, Value::Array(_) | Value::Null)
                {
                    return Err(r.invalid(format!("spec.{side}.logins must be a list")));
                }
                if let Some(rules) = c.get("rules") {
                    let Value::Array(rules) = rules else {
                        return Err(r.invalid(format!("spec.{side}.rules must be a list")));
                    };
                    for (i, rule) in rules.iter().enumerate() {
                        if strings(rule.get("resources")).is_empty() || strings(rule.get("verbs")).is_empty() {
                            return Err(r.invalid(format!("spec.{side}.rules[{i}] needs resources and verbs")));
                        }
                    }
                }
            }
            Some(_) => return Err(r.invalid(format!("spec.{side} must be a mapping"))),
        }
    }
    Ok(())
}

fn validate_user(r: &mut Resource) -> Result<(), ResourceError> {
    if let Some(roles) = r.spec.get("roles")
        && !matches!(roles, Value::Array(_) | Value::Null)
    {
        return Err(r.invalid("spec.roles must be a list of role names"));
    }
    if let Some(Value::Object(la)) = r.spec.get("local_auth")
        && let Some(h) = la.get("password_hash")
    {
        let hash = b64(r, "spec.local_auth.password_hash", h)?;
        if !hash.starts_with(b"$2") {
            return Err(r.invalid("spec.local_auth.password_hash is not a bcrypt hash"));
        }
    }
    Ok(())
}

fn validate_token(r: &mut Resource) -> Result<(), ResourceError> {
    let roles = strings(r.spec.get("roles"));
    if roles.is_empty() {
        return Err(r.invalid("spec.roles must list what the token joins as (Node, Proxy, ...)"));
    }
    for role in &roles {
        if !SYSTEM_ROLES.iter().any(|s| s.eq_ignore_ascii_case(role)) {
            return Err(
                r.invalid(format!("spec.roles: {role:?} is not a system role; known: {}", SYSTEM_ROLES.join(", ")))
            );
        }
    }
    Ok(())
}

fn validate_auth_preference(r: &mut Resource) -> Result<(), ResourceError> {
    if let Some(t) = r.spec_str("type")
        && !["local", "github", "oidc", "saml"].contains(&t)
    {
        return Err(r.invalid(format!("spec.type {t:?} is not one of local, github, oidc, saml")));
    }
    if let Some(sf) = r.spec.get("second_factor") {
        let s = match sf {
            Value::String(s) => s.clone(),
            // YAML 1.1 readers turn `off` into false.
            Value::Bool(false) => "off".into(),
            Value::Bool(true) => "on".into(),
            _ => return Err(r.invalid("spec.second_factor must be off, otp, optional, on or webauthn")),
        };
        if !["off", "otp", "optional", "on", "webauthn"].contains(&s.as_str()) {
            return Err(r.invalid(format!("spec.second_factor {s:?} is not one of off, otp, optional, on, webauthn")));
        }
        r.spec_mut().insert("second_factor".into(), Value::String(s));
    }
    Ok(())
}
