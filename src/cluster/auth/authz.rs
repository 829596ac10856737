//! Who is calling and what they may do. A caller is known by the client
//! certificate it presented: certificates issued by the host CA carry a
//! system role (`Admin`, `Node`, `Proxy`, ...) in their organization;
//! certificates issued by the user CA carry the user's roles. A user
//! certificate naming a role called `Admin` is still a user: the issuing CA
//! decides, never the name.
//!
//! Users are authorized by the `rules` of their roles (resources x verbs,
//! deny wins), as upstream.

use serde_json::Value;

use super::AuthError;
use crate::resources::{Resource, strings};

/// A built-in identity of a cluster component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemRole {
    /// Full access: local `tctl`, identities from `tctl auth sign` for admins.
    Admin,
    /// An auth server.
    Auth,
    /// A proxy.
    Proxy,
    /// An SSH node.
    Node,
}

impl SystemRole {
    /// The role as written in certificates and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemRole::Admin => "Admin",
            SystemRole::Auth => "Auth",
            SystemRole::Proxy => "Proxy",
            SystemRole::Node => "Node",
        }
    }

    /// Parses a role name, case-insensitively.
    pub fn parse(s: &str) -> Option<SystemRole> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Some(SystemRole::Admin),
            "auth" => Some(SystemRole::Auth),
            "proxy" => Some(SystemRole::Proxy),
            "node" => Some(SystemRole::Node),
            _ => None,
        }
    }
}

/// The caller of an API request.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// No client certificate: only ping, login, join and signup.
    Anonymous,
    /// A component, from a host-CA certificate.
    System {
        /// The host or identity name (certificate CN).
        name: String,
        /// Its role.
        role: SystemRole,
    },
    /// A user, from a user-CA certificate.
    User {
        /// The user name (certificate CN).
        name: String,
        /// The roles in the certificate.
        roles: Vec<String>,
    },
}

/// Verbs of resource rules, as upstream.
pub mod verb {
    /// List resources.
    pub const LIST: &str = "list";
    /// Read one resource.
    pub const READ: &str = "read";
    /// Create a resource.
    pub const CREATE: &str = "create";
    /// Update a resource.
    pub const UPDATE: &str = "update";
    /// Delete a resource.
    pub const DELETE: &str = "delete";
}

impl Caller {
    /// A short description for logs and errors (never secret).
    pub fn describe(&self) -> String {
        match self {
            Caller::Anonymous => "an unauthenticated client".into(),
            Caller::System { name, role } => format!("{} {name:?}", role.as_str()),
            Caller::User { name, .. } => format!("user {name:?}"),
        }
    }

    /// The user's name, for user callers.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::User { name, .. } => Some(name),
            _ => None,
        }
    }

    /// True for the admin identity.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::System { role: SystemRole::Admin, .. })
    }

    /// Fails unless the caller is the admin.
    pub fn require_admin(&self, what: &str) -> Result<(), AuthError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AuthError::forbidden(format!("{} may not {what}: admin only", self.describe())))
        }
    }

    /// Fails unless the caller is one of `roles` (or the admin).
    pub fn require_system(&self, roles: &[SystemRole], what: &str) -> Result<(), AuthError> {
        match self {
            Caller::System { role, .. } if *role == SystemRole::Admin || roles.contains(role) => Ok(()),
            _ => Err(AuthError::forbidden(format!(
                "{} may not {what}: only {} may",
                self.describe(),
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Fails unless a caller authenticated at all.
    pub fn require_authenticated(&self, what: &str) -> Result<(), AuthError> {
        if matches!(self, Caller::Anonymous) {
            Err(AuthError::denied(format!("{what} needs a client certificate signed by the cluster")))
        } else {
            Ok(())
        }
    }
}

/// Does `rule` (a role rule) match `kind` and `verb`?
fn rule_matches(rule: &Value, kind: &str, verb: &str) -> bool {
    let resources = strings(rule.get("resources"));
    let verbs = strings(rule.get("verbs"));
    let kind_ok = resources.iter().any(|r| r == "*" || r == kind || r.trim_end_matches('s') == kind);
    let verb_ok = verbs.iter().any(|v| v == "*" || v == verb);
    kind_ok && verb_ok
}

/// Checks a user's roles (already read from the backend) for `verb` on
/// `kind`: allowed when a role's allow rules match and no deny rule does.
pub fn roles_allow(roles: &[Resource], kind: &str, verb: &str) -> bool {
    let rules = |side: &str| {
        roles
            .iter()
            .filter_map(move |r| r.spec.get(side).and_then(|s| s.get("rules")).and_then(Value::as_array))
            .flatten()
            .collect::<Vec<_>>()
    };
    if rules("deny").into_iter().any(|r| rule_matches(r, kind, verb)) {
        return false;
    }
    rules("allow").into_iter().any(|r| rule_matches(r, kind, verb))
}

/// The logins (SSH principals) a user's roles grant, with `{{internal.logins}}`
/// and `{{external.logins}}` expanded from the user's traits; deny wins.
pub fn logins_for(user: &Resource, roles: &[Resource]) -> Vec<String> {
    let traits = user.spec.get("traits");
    let trait_logins = strings(traits.and_then(|t| t.get("logins")));
    let expand = |l: &str| -> Vec<String> {
        let t = l.trim();
        if t.starts_with("{{") && t.ends_with("}}") {
            let inner = t[2..t.len() - 2].trim();
            if inner == "internal.logins" || inner == "external.logins" {
                return trait_logins.clone();
            }
            if let Some(name) = inner.strip_prefix("internal.").or(inner.strip_prefix("external.")) {
                return strings(traits.and_then(|t| t.get(name)));
            }
            return Vec::new();
        }
        vec![t.to_string()]
    };
    let collect = |side: &str| {
        let mut out: Vec<String> = roles
            .iter()
            .flat_map(|r| strings(r.spec.get(side).and_then(|s| s.get("logins"))))
            .flat_map(|l| expand(&l))
            .filter(|l| !l.is_empty())
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let deny = collect("deny");
    collect("allow").into_iter().filter(|l| !deny.contains(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, spec: Value) -> Resource {
        Resource::new("role", name).with_spec(spec)
    }

    #[test]
    fn rules_allow_and_deny_wins() {
        let editor = role("editor", json!({"allow": {"rules": [{"resources": ["user", "role"], "verbs": ["*"]}]}}));
        let no_delete = role("nd", json!({"deny": {"rules": [{"resources": ["*"], "verbs": ["delete"]}]}}));
        assert!(roles_allow(std::slice::from_ref(&editor), "user", "create"));
        assert!(roles_allow(std::slice::from_ref(&editor), "role", "list"));
        assert!(!roles_allow(std::slice::from_ref(&editor), "token", "list"));
        assert!(!roles_allow(&[editor, no_delete], "user", "delete"));
        assert!(!roles_allow(&[], "user", "read"));
    }

    #[test]
    fn logins_expand_traits() {
        let user = Resource::new("user", "alice").with_spec(json!({"traits": {"logins": ["alice", "ubuntu"]}}));
        let access = role(
            "access",
            json!({"allow": {"logins": ["{{internal.logins}}", "guest"]}, "deny": {"logins": ["ubuntu"]}}),
        );
        assert_eq!(logins_for(&user, &[access]), vec!["alice".to_string(), "guest".to_string()]);
    }

    #[test]
    fn callers() {
        let admin = Caller::System { name: "x".into(), role: SystemRole::Admin };
        let node = Caller::System { name: "n".into(), role: SystemRole::Node };
        let user = Caller::User { name: "bob".into(), roles: vec!["Admin".into()] };
        assert!(admin.require_admin("x").is_ok());
        assert!(user.require_admin("read secrets").unwrap_err().to_string().contains("user \"bob\" may not"));
        assert!(node.require_system(&[SystemRole::Node], "heartbeat").is_ok());
        assert!(user.require_system(&[SystemRole::Node], "heartbeat").is_err());
        assert!(Caller::Anonymous.require_authenticated("listing").is_err());
    }
}
