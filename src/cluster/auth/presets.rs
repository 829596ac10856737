//! The preset roles every cluster starts with (`access`, `editor`,
//! `auditor`), shaped like upstream's. They are created when missing and
//! never overwritten: an operator's edits survive restarts (upstream merges
//! missing default rules into existing presets; we leave them alone and say
//! so in docs/auth.md).

use serde_json::json;

use crate::resources::Resource;

const ALL_VERBS: [&str; 5] = ["list", "create", "read", "update", "delete"];

fn role(name: &str, description: &str, spec: serde_json::Value) -> Resource {
    let mut r = Resource::new("role", name).with_spec(spec);
    r.metadata.description = Some(description.to_string());
    r.metadata.labels.insert("teleport.internal/resource-type".into(), "preset".into());
    r
}

/// The preset roles.
pub fn roles() -> Vec<Resource> {
    vec![
        role(
            "access",
            "Access cluster resources",
            json!({
                "options": {"max_session_ttl": "30h0m0s", "forward_agent": true, "port_forwarding": true},
                "allow": {
                    "logins": ["{{internal.logins}}"],
                    "node_labels": {"*": "*"},
                    "rules": [
                        {"resources": ["event"], "verbs": ["list", "read"]},
                        {"resources": ["session"], "verbs": ["read", "list"],
                         "where": "contains(session.participants, user.metadata.name)"},
                        {"resources": ["node"], "verbs": ["list", "read"]}
                    ]
                },
                "deny": {}
            }),
        ),
        role(
            "editor",
            "Edit cluster configuration",
            json!({
                "options": {"max_session_ttl": "8h0m0s"},
                "allow": {
                    "rules": [
                        {"resources": [
                            "user", "role", "token", "trusted_cluster", "github", "oidc", "saml",
                            "cluster_auth_preference", "cluster_networking_config", "session_recording_config",
                            "lock", "node"
                        ], "verbs": ALL_VERBS},
                        {"resources": ["cert_authority", "cluster_name", "cluster_audit_config", "static_tokens"],
                         "verbs": ["list", "read"]},
                        {"resources": ["event", "session"], "verbs": ["list", "read"]}
                    ]
                },
                "deny": {}
            }),
        ),
        role(
            "auditor",
            "Review cluster events and replay sessions",
            json!({
                "options": {"max_session_ttl": "30h0m0s"},
                "allow": {
                    "rules": [
                        {"resources": ["session", "event"], "verbs": ["list", "read"]}
                    ]
                },
                "deny": {}
            }),
        ),
    ]
}
