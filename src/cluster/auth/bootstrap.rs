//! Restoring a cluster from an export: `teleport start --bootstrap` (on the
//! first start only) and `--apply-on-startup` (on every start).
//!
//! A bundle is checked completely before anything is written, in two
//! steps: [`Bundle::read`] (the file alone: every document parses, every
//! kind is known, every resource is valid) and [`Bundle::check`] (against
//! the cluster: the bundle's cluster name is the configured one, local CAs
//! carry their private keys, CAs of other clusters carry none, users' roles
//! exist in the bundle or among the presets, no trusted cluster is named
//! like the local one). Only then are its items written, the local host CA
//! last: "first start" means the host CA is missing, so a crash half-way
//! leaves a state where the next start bootstraps again (writes are
//! upserts, so doing it twice gives the same result).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::{AuthError, presets};
use crate::backend::Item;
use crate::resources::kinds::{self, Kind};
use crate::resources::store::{ResourceStore, WriteMode, items_for};
use crate::resources::{Resource, codec, strings};

/// A parsed, individually valid set of resources from a file.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The file, for messages.
    pub source: String,
    /// The resources with their position (`document 3 (line 40)`), validated.
    pub resources: Vec<(String, Resource)>,
}

/// What a bootstrap or apply-on-startup wrote.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Resources written, per kind.
    pub per_kind: BTreeMap<String, usize>,
    /// Backend items written (a user with a password is two).
    pub items: usize,
}

impl ApplyReport {
    /// "3 cert_authority, 2 role, 5 user (14 items)".
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self.per_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("{} ({} items)", kinds.join(", "), self.items)
    }
}

fn refuse(source: &str, message: impl std::fmt::Display) -> AuthError {
    AuthError::bad(format!("{source}: {message}; nothing was written"))
}

impl Bundle {
    /// Reads and checks a file on its own.
    pub fn read(path: &Path) -> Result<Bundle, AuthError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::bad(format!("cannot read {source}: {e}")))?;
        Bundle::parse(&source, &text)
    }

    /// Parses and checks text on its own; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Bundle, AuthError> {
        let docs = codec::parse(source, text).map_err(|e| refuse(source, e))?;
        let mut resources = Vec::new();
        for d in docs {
            let at = d.position();
            let mut r = d.resource;
            let info = r.info().map_err(|e| refuse(source, format!("{at}: {e}")))?;
            info.validate(&mut r).map_err(|e| refuse(source, format!("{at}: {e}")))?;
            resources.push((at, r));
        }
        // Apply in registry order (cluster identity, CAs, config, roles
        // before the users naming them), keeping the file's order within
        // a kind.
        resources.sort_by_key(|(_, r)| kinds::apply_order(&r.kind));
        Ok(Bundle { source: source.to_string(), resources })
    }

    /// The cluster the bundle belongs to: its `cluster_name` resource, else
    /// the cluster of its CAs that carry private keys.
    pub fn cluster_name(&self) -> Option<String> {
        self.resources
            .iter()
            .find(|(_, r)| r.kind == "cluster_name")
            .and_then(|(_, r)| r.spec_str("cluster_name").map(str::to_string))
            .or_else(|| {
                self.resources
                    .iter()
                    .filter(|(_, r)| r.kind == "cert_authority" && kinds::ca_has_private_keys(r))
                    .find_map(|(_, r)| kinds::ca_id(r).ok().map(|(_, c)| c))
            })
    }

    /// Checks the bundle against the cluster it is restored into.
    pub fn check(&self, cluster: &str) -> Result<(), AuthError> {
        let src = &self.source;
        if let Some(theirs) = self.cluster_name()
            && theirs != cluster
        {
            return Err(refuse(
                src,
                format!(
                    "the bundle belongs to cluster {theirs:?} but this auth server is configured for cluster {cluster:?}; \
                     restore into a cluster of the same name (set auth_service.cluster_name: {theirs})"
                ),
            ));
        }
        let mut roles: BTreeSet<String> = presets::roles().into_iter().map(|r| r.metadata.name).collect();
        for (_, r) in &self.resources {
            if r.kind == "role" {
                roles.insert(r.metadata.name.clone());
            }
        }
        for (at, r) in &self.resources {
            match r.kind.as_str() {
                "cert_authority" => {
                    let (ca_type, ca_cluster) = kinds::ca_id(r).map_err(|e| refuse(src, format!("{at}: {e}")))?;
                    if ca_cluster == cluster {
                        if let Some(set) = missing_private_key(r) {
                            return Err(refuse(
                                src,
                                format!(
                                    "{at}: the {ca_type} certificate authority of the local cluster {cluster:?} has no private key in \
                                     active_keys.{set}; export with `tctl get all --with-secrets`"
                                ),
                            ));
                        }
                    } else if kinds::ca_has_private_keys(r) {
                        return Err(refuse(
                            src,
                            format!(
                                "{at}: the {ca_type} certificate authority of cluster {ca_cluster:?} (not this cluster, {cluster:?}) \
                                 carries private keys; a trusted cluster's CA holds public keys only"
                            ),
                        ));
                    }
                }
                "user" => {
                    for role in strings(r.spec.get("roles")) {
                        if !roles.contains(&role) {
                            return Err(refuse(
                                src,
                                format!(
                                    "{at}: user {:?} names role {role:?}, which is neither in the bundle nor a preset role",
                                    r.metadata.name
                                ),
                            ));
                        }
                    }
                }
                "trusted_cluster" if r.metadata.name == cluster => {
                    return Err(refuse(
                        src,
                        format!("{at}: a trusted cluster may not be named like this cluster ({cluster:?})"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes every resource as upserts, the local host CA last. Call
    /// [`Bundle::check`] first.
    pub async fn write(&self, store: &ResourceStore, cluster: &str) -> Result<ApplyReport, AuthError> {
        let mut report = ApplyReport::default();
        let mut items: Vec<Item> = Vec::new();
        let mut last: Vec<Item> = Vec::new();
        for (at, r) in &self.resources {
            let info = r.info().map_err(|e| refuse(&self.source, format!("{at}: {e}")))?;
            let these = items_for(info, r).map_err(|e| refuse(&self.source, format!("{at}: {e}")))?;
            *report.per_kind.entry(info.name.to_string()).or_default() += 1;
            report.items += these.len();
            let is_local_host_ca =
                info.kind == Kind::CertAuthority && kinds::ca_id(r).is_ok_and(|(t, c)| t == "host" && c == cluster);
            if is_local_host_ca { last.extend(these) } else { items.extend(these) }
        }
        let backend = store.backend();
        let limits = backend.limits();
        for chunk in items.chunks(limits.max_batch_items.max(1)) {
            backend.put_batch(chunk.to_vec()).await?;
        }
        for item in last {
            backend.put(item).await?;
        }
        Ok(report)
    }

    /// Upserts every resource through the store (validation, role checks),
    /// in registry order: what `--apply-on-startup` does on every start.
    pub async fn apply(&self, store: &ResourceStore) -> Result<ApplyReport, AuthError> {
        let mut report = ApplyReport::default();
        for (at, r) in &self.resources {
            let kind = r.info()?.kind;
            if !matches!(
                kind,
                Kind::Role
                    | Kind::User
                    | Kind::Token
                    | Kind::NetworkingConfig
                    | Kind::AuthPreference
                    | Kind::SessionRecordingConfig
                    | Kind::Lock
                    | Kind::Github
                    | Kind::TrustedCluster
            ) {
                return Err(AuthError::bad(format!(
                    "{}: {at}: {} resources cannot be applied on startup (roles, users, tokens, locks, connectors, trusted \
                     clusters and cluster configuration can); use --bootstrap for a new cluster",
                    self.source, r.kind
                )));
            }
            store
                .write(r.clone(), WriteMode::Upsert)
                .await
                .map_err(|e| AuthError::bad(format!("{}: {at}: {e}", self.source)))?;
            *report.per_kind.entry(r.kind.clone()).or_default() += 1;
            report.items += 1;
        }
        Ok(report)
    }
}

/// The first key set of a CA with a key pair lacking its private key.
fn missing_private_key(ca: &Resource) -> Option<String> {
    let Some(keys) = ca.spec.get("active_keys").and_then(Value::as_object) else {
        return Some("(none: the CA has no keys at all)".into());
    };
    if keys.values().all(|v| v.as_array().is_none_or(Vec::is_empty)) {
        return Some("(none: the CA has no keys at all)".into());
    }
    for (set, list) in keys {
        let field = if set == "tls" { "key" } else { "private_key" };
        for p in list.as_array().into_iter().flatten() {
            if p.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Some(set.clone());
            }
        }
    }
    None
}
