//! Reading and writing resources in a cluster-state backend, at upstream's
//! keys. A user's secrets live beside its `params` item, never inside it:
//! the bcrypt hash at `/web/users/<name>/pwd` (the raw hash bytes, as
//! upstream) and each MFA device at `/web/users/<name>/mfa/<id>` (the
//! device's JSON). Reading a user "with secrets" merges them into
//! `spec.local_auth`, exactly as upstream's `tctl get users --with-secrets`
//! prints them; writing such a user splits them out again.
//!
//! Writes of a resource and its secret items are one atomic write, so a
//! crash never leaves a user without its password or a half-written CA.

use std::sync::Arc;

use base64::Engine;
use futures::TryStreamExt;
use serde_json::{Map, Value};

use super::kinds::{self, Kind, KindInfo};
use super::{Resource, ResourceError, strings};
use crate::backend::{Action, Backend, Condition, ConditionalAction, Item, ItemsParams, Key};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How a write treats an existing resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with AlreadyExists if it exists (`tctl create`).
    Create,
    /// Create or replace (`tctl create -f`).
    Upsert,
    /// Replace only if it exists (NotFound otherwise).
    Update,
}

/// Resources in a backend.
#[derive(Debug, Clone)]
pub struct ResourceStore {
    backend: Arc<dyn Backend>,
}

/// The key prefix of a user's items (`/web/users/<name>/`).
pub fn user_prefix(name: &str) -> Key {
    Key::exact(["web", "users", name])
}

/// The key of a user's password hash.
pub fn user_password_key(name: &str) -> Key {
    Key::new(["web", "users", name, "pwd"])
}

/// The key of one of a user's MFA devices.
pub fn user_mfa_key(name: &str, id: &str) -> Key {
    Key::new(["web", "users", name, "mfa", id])
}

impl ResourceStore {
    /// Resources stored in `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> ResourceStore {
        ResourceStore { backend }
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// One resource. `name` is the resource name; for cert authorities it
    /// is `<type>/<cluster>`. Secrets are stripped unless `with_secrets`.
    pub async fn get(&self, kind: &str, name: &str, with_secrets: bool) -> Result<Resource, ResourceError> {
        let info = kinds::lookup(kind)?;
        let key = key_for_name(info, name)?;
        let item = self.backend.get(&key).await.map_err(|e| not_found_named(e, info, name))?;
        let mut r = decode(info, &item)?;
        if info.kind == Kind::User && with_secrets {
            self.merge_user_secrets(&mut r).await?;
        }
        if !with_secrets {
            info.strip_secrets(&mut r);
        }
        Ok(r)
    }

    /// Every resource of a kind, in key order. Secrets are stripped unless
    /// `with_secrets`. Items under the kind's prefix that are not resources
    /// of it (a user's password item, deactivated CAs) are skipped.
    pub async fn list(&self, kind: &str, with_secrets: bool) -> Result<Vec<Resource>, ResourceError> {
        let info = kinds::lookup(kind)?;
        let items: Vec<Item> = if info.singleton.is_some() {
            match self.backend.get(&Key::new(info.prefix)).await {
                Ok(item) => vec![item],
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        } else {
            let prefix = Key::exact(info.prefix);
            self.backend.items(ItemsParams::prefix(&prefix)).try_collect().await?
        };
        let mut out = Vec::new();
        for item in items.iter().filter(|i| info.is_main_key(&i.key)) {
            let mut r = decode(info, item)?;
            if info.kind == Kind::User && with_secrets {
                self.merge_user_secrets(&mut r).await?;
            }
            if !with_secrets {
                info.strip_secrets(&mut r);
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Every resource of every exported kind, in registry order (the order
    /// bootstrap applies them): what `tctl get all` prints.
    pub async fn list_all(&self, with_secrets: bool) -> Result<Vec<Resource>, ResourceError> {
        let mut out = Vec::new();
        for info in kinds::KINDS.iter().filter(|k| k.exported) {
            out.extend(self.list(info.name, with_secrets).await?);
        }
        Ok(out)
    }

    /// Writes a resource (validated first). Returns it as stored, with its
    /// new revision. A user's roles must exist.
    pub async fn write(&self, mut r: Resource, mode: WriteMode) -> Result<Resource, ResourceError> {
        let info = r.info()?;
        info.validate(&mut r)?;
        if info.kind == Kind::User {
            self.check_user_roles(&r).await?;
        }
        let items = items_for(info, &r)?;
        let main_key = items[0].key.clone();
        let main_condition = match mode {
            WriteMode::Create => Condition::NotExists,
            WriteMode::Upsert => Condition::Whatever,
            WriteMode::Update => Condition::Exists,
        };
        let mut actions = Vec::new();
        if info.kind == Kind::User && has_local_auth(&r) {
            // Replace the secrets wholesale: drop devices no longer listed.
            let name = r.metadata.name.clone();
            let old: Vec<Item> = self
                .backend
                .items(ItemsParams::prefix(&Key::exact(["web", "users", &name, "mfa"])))
                .try_collect()
                .await?;
            for it in old {
                if !items.iter().any(|n| n.key == it.key) {
                    actions.push(ConditionalAction::new(it.key, Condition::Whatever, Action::Delete));
                }
            }
            if !items.iter().any(|n| n.key == user_password_key(&name)) {
                actions.push(ConditionalAction::new(user_password_key(&name), Condition::Whatever, Action::Delete));
            }
        }
        for (i, item) in items.into_iter().enumerate() {
            let condition = if i == 0 { main_condition.clone() } else { Condition::Whatever };
            actions.push(ConditionalAction::new(item.key.clone(), condition, Action::Put(item)));
        }
        let revision = match self.backend.atomic_write(actions).await {
            Ok(rev) => rev,
            Err(e) if e.is_compare_failed() => {
                return Err(match mode {
                    WriteMode::Create => ResourceError::AlreadyExists {
                        kind: r.kind.clone(),
                        name: r.metadata.name.clone(),
                        key: main_key.to_string_lossy(),
                    },
                    _ => ResourceError::NotFound { kind: r.kind.clone(), name: r.metadata.name.clone() },
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut stored = r;
        stored.metadata.revision = Some(revision);
        Ok(stored)
    }

    /// Deletes a resource and every item it owns (a user's secrets, a
    /// role's sub-keys). NotFound if it does not exist.
    pub async fn delete(&self, kind: &str, name: &str) -> Result<(), ResourceError> {
        let info = kinds::lookup(kind)?;
        let key = key_for_name(info, name)?;
        self.backend.get(&key).await.map_err(|e| not_found_named(e, info, name))?;
        match info.kind {
            Kind::User => {
                let p = user_prefix(name);
                self.backend.delete_range(&p, &p.range_end()).await?;
            }
            Kind::Role => {
                let p = Key::exact(["roles", name]);
                self.backend.delete_range(&p, &p.range_end()).await?;
            }
            _ => self.backend.delete(&key).await?,
        }
        Ok(())
    }

    /// The stored bcrypt hash of a user's password, if one is set.
    pub async fn password_hash(&self, user: &str) -> Result<Option<Vec<u8>>, ResourceError> {
        match self.backend.get(&user_password_key(user)).await {
            Ok(item) => Ok(Some(item.value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a user's password hash (the user must exist).
    pub async fn set_password_hash(&self, user: &str, hash: &[u8]) -> Result<(), ResourceError> {
        let actions = vec![
            ConditionalAction::new(Key::new(["web", "users", user, "params"]), Condition::Exists, Action::Nop),
            ConditionalAction::new(
                user_password_key(user),
                Condition::Whatever,
                Action::Put(Item::new(user_password_key(user), hash.to_vec())),
            ),
        ];
        match self.backend.atomic_write(actions).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_compare_failed() => Err(ResourceError::NotFound { kind: "user".into(), name: user.into() }),
            Err(e) => Err(e.into()),
        }
    }

    /// A user's MFA devices (their stored JSON).
    pub async fn mfa_devices(&self, user: &str) -> Result<Vec<Value>, ResourceError> {
        let items: Vec<Item> =
            self.backend.items(ItemsParams::prefix(&Key::exact(["web", "users", user, "mfa"]))).try_collect().await?;
        items
            .iter()
            .map(|i| {
                serde_json::from_slice(&i.value).map_err(|e| ResourceError::Invalid {
                    kind: "user".into(),
                    name: user.into(),
                    message: format!("MFA device {} is not valid JSON: {e}", i.key.to_string_lossy()),
                })
            })
            .collect()
    }

    /// Stores one MFA device of a user (JSON with an `id`).
    pub async fn put_mfa_device(&self, user: &str, device: &Value) -> Result<(), ResourceError> {
        let id = device_id(device).ok_or_else(|| ResourceError::Invalid {
            kind: "user".into(),
            name: user.into(),
            message: "MFA device has no id".into(),
        })?;
        let bytes = serde_json::to_vec(device).map_err(|e| ResourceError::Parse(e.to_string()))?;
        self.backend.put(Item::new(user_mfa_key(user, &id), bytes)).await?;
        Ok(())
    }

    async fn merge_user_secrets(&self, r: &mut Resource) -> Result<(), ResourceError> {
        let name = r.metadata.name.clone();
        let hash = self.password_hash(&name).await?;
        let devices = self.mfa_devices(&name).await?;
        if hash.is_none() && devices.is_empty() {
            return Ok(());
        }
        let mut la = match r.spec.get("local_auth") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Some(h) = hash {
            la.insert("password_hash".into(), Value::String(B64.encode(h)));
        }
        if !devices.is_empty() {
            la.insert("mfa".into(), Value::Array(devices));
        }
        r.spec_mut().insert("local_auth".into(), Value::Object(la));
        Ok(())
    }

    async fn check_user_roles(&self, r: &Resource) -> Result<(), ResourceError> {
        for role in strings(r.spec.get("roles")) {
            match self.backend.get(&Key::new(["roles", role.as_str(), "params"])).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    return Err(r.invalid(format!(
                        "role {role:?} does not exist; create it first (tctl get roles lists them)"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn device_id(device: &Value) -> Option<String> {
    device
        .get("id")
        .and_then(Value::as_str)
        .or_else(|| device.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(str::to_string)
}

fn has_local_auth(r: &Resource) -> bool {
    matches!(r.spec.get("local_auth"), Some(Value::Object(_)))
}

fn not_found_named(e: crate::backend::Error, info: &KindInfo, name: &str) -> ResourceError {
    if e.is_not_found() {
        ResourceError::NotFound { kind: info.name.to_string(), name: name.to_string() }
    } else {
        e.into()
    }
}

/// The key of the main item of the resource of `info` named `name`.
fn key_for_name(info: &KindInfo, name: &str) -> Result<Key, ResourceError> {
    let mut probe = Resource::new(info.name, name);
    if info.kind == Kind::CertAuthority {
        let Some((ca_type, cluster)) = name.split_once('/') else {
            return Err(ResourceError::Invalid {
                kind: info.name.into(),
                name: name.into(),
                message: "name a certificate authority as <type>/<cluster>, e.g. host/example.com".into(),
            });
        };
        probe.metadata.name = cluster.to_string();
        probe.spec_mut().insert("type".into(), Value::String(ca_type.to_string()));
    } else if info.singleton.is_none() && (name.is_empty() || name.contains('/')) {
        return Err(ResourceError::Invalid {
            kind: info.name.into(),
            name: name.into(),
            message: "a resource name may not be empty or contain '/'".into(),
        });
    }
    info.key(&probe)
}

/// Decodes a stored item of `info`'s kind.
fn decode(info: &KindInfo, item: &Item) -> Result<Resource, ResourceError> {
    let mut r = Resource::from_stored_json(&item.value, &item.revision)
        .map_err(|e| ResourceError::Parse(format!("{} ({}): {e}", item.key.to_string_lossy(), info.name)))?;
    if r.kind.is_empty() {
        r.kind = info.name.to_string();
    }
    if r.metadata.expires.is_none()
        && let Some(t) = item.expires
    {
        r.set_expires(Some(t));
    }
    Ok(r)
}

/// The backend items a (validated) resource is stored as: its main item
/// first, then a user's password and MFA items. Bootstrap writes these
/// directly, as upstream's `itemsFromResource`.
pub fn items_for(info: &KindInfo, r: &Resource) -> Result<Vec<Item>, ResourceError> {
    let key = info.key(r)?;
    let expires = r.expires()?;
    let mut main = r.clone();
    let mut extra = Vec::new();
    if info.kind == Kind::User
        && let Some(Value::Object(la)) = main.spec_mut().remove("local_auth")
    {
        let name = r.metadata.name.as_str();
        if let Some(h) = la.get("password_hash").filter(|v| !v.is_null()) {
            let s = h.as_str().ok_or_else(|| r.invalid("spec.local_auth.password_hash must be a base64 string"))?;
            let bytes = B64
                .decode(s.trim())
                .map_err(|e| r.invalid(format!("spec.local_auth.password_hash is not valid base64: {e}")))?;
            if !bytes.is_empty() {
                extra.push(Item::new(user_password_key(name), bytes));
            }
        }
        if let Some(Value::Array(devices)) = la.get("mfa") {
            for (i, d) in devices.iter().enumerate() {
                let id = device_id(d).ok_or_else(|| r.invalid(format!("spec.local_auth.mfa[{i}] has no id")))?;
                let bytes = serde_json::to_vec(d).map_err(|e| r.invalid(format!("spec.local_auth.mfa[{i}]: {e}")))?;
                extra.push(Item::new(user_mfa_key(name, &id), bytes));
            }
        }
        // Anything else upstream keeps in local_auth (webauthn user id,
        // the deprecated totp_key) stays with the user, unchanged.
        let rest: Map<String, Value> = la.into_iter().filter(|(k, _)| k != "password_hash" && k != "mfa").collect();
        if !rest.is_empty() {
            main.spec_mut().insert("local_auth".into(), Value::Object(rest));
        }
    }
    let mut item = Item::new(key, main.to_stored_json()?);
    if let Some(t) = expires {
        item = item.expires_at(t);
    }
    let mut out = vec![item];
    for mut e in extra {
        e.expires = expires;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::resources::codec;

    const SAMPLE: &str = include_str!("../../tests/data/upstream-export-sample.yaml");

    fn store() -> ResourceStore {
        ResourceStore::new(Arc::new(MemoryBackend::new().unwrap()))
    }

    #[tokio::test]
    async fn upstream_sample_writes_to_upstream_keys_and_reads_back_unchanged() {
        let s = store();
        let docs = codec::parse("sample.yaml", SAMPLE).unwrap();
        assert_eq!(docs.len(), 10);
        for d in &docs {
            s.write(d.resource.clone(), WriteMode::Create).await.unwrap_or_else(|e| panic!("{}: {e}", d.position()));
        }
        let b = s.backend();
        for key in [
            "/authorities/host/me.localhost",
            "/authorities/user/me.localhost",
            "/authorities/jwt/me.localhost",
            "/authorities/openssh/me.localhost",
            "/roles/admin/params",
            "/web/users/myuser/params",
            "/tokens/github-token",
            "/locks/b1c785d8-8165-41fc-8dd6-252d534334d3",
            "/cluster_configuration/networking",
            "/authentication/preference/general",
        ] {
            b.get(&Key::from(key)).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        // Expiry becomes the item's expiry.
        let role = b.get(&Key::new(["roles", "admin", "params"])).await.unwrap();
        assert!(role.expires.is_some());
        // With secrets, every document reads back equal (revision aside).
        for d in &docs {
            let info = d.resource.info().unwrap();
            let name = if info.kind == Kind::CertAuthority {
                format!("{}/{}", d.resource.spec_str("type").unwrap(), d.resource.metadata.name)
            } else {
                d.resource.metadata.name.clone()
            };
            let mut got = s.get(&d.resource.kind, &name, true).await.unwrap();
            let mut want = d.resource.clone();
            info.validate(&mut want).unwrap();
            got.metadata.revision = None;
            want.metadata.revision = None;
            assert_eq!(got, want, "{}", d.position());
        }
        // Without secrets, CA private keys are gone.
        let ca = s.get("cas", "host/me.localhost", false).await.unwrap();
        assert!(!kinds::ca_has_private_keys(&ca));
        assert_eq!(s.list("cert_authority", true).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn user_secrets_live_beside_the_user_item() {
        let s = store();
        s.write(
            Resource::new("role", "access").with_spec(serde_json::json!({"allow": {"logins": ["root"]}})),
            WriteMode::Create,
        )
        .await
        .unwrap();
        let hash = B64.encode(b"$2a$10$abcdefghijklmnopqrstuuCjY2K0bqfTkZ8s6Y2uYQ7tB9O7o1.m2");
        let user = Resource::new("user", "alice").with_spec(serde_json::json!({
            "roles": ["access"],
            "local_auth": {"password_hash": hash, "mfa": [{"id": "dev1", "kind": "mfa_device", "totp": {"key": "ABC"}}]}
        }));
        s.write(user, WriteMode::Create).await.unwrap();
        let b = s.backend();
        let params = b.get(&Key::new(["web", "users", "alice", "params"])).await.unwrap();
        let text = String::from_utf8(params.value).unwrap();
        assert!(!text.contains("local_auth") && !text.contains("password_hash"), "{text}");
        let pwd = b.get(&user_password_key("alice")).await.unwrap();
        assert!(pwd.value.starts_with(b"$2a$10$"));
        b.get(&user_mfa_key("alice", "dev1")).await.unwrap();
        let plain = s.get("user", "alice", false).await.unwrap();
        assert!(plain.spec.get("local_auth").is_none());
        let full = s.get("users", "alice", true).await.unwrap();
        assert_eq!(full.spec["local_auth"]["password_hash"], serde_json::json!(hash));
        assert_eq!(full.spec["local_auth"]["mfa"][0]["id"], "dev1");
        // Only main items are listed.
        assert_eq!(s.list("user", false).await.unwrap().len(), 1);
        // Deleting the user removes its secrets.
        s.delete("user", "alice").await.unwrap();
        assert!(b.get(&user_password_key("alice")).await.unwrap_err().is_not_found());
        assert!(s.delete("user", "alice").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn bad_writes_are_refused_with_names() {
        let s = store();
        let e = s
            .write(Resource::new("user", "bob").with_spec(serde_json::json!({"roles": ["nope"]})), WriteMode::Create)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("role \"nope\" does not exist"), "{e}");
        let role = Resource::new("role", "r1");
        s.write(role.clone(), WriteMode::Create).await.unwrap();
        let e = s.write(role.clone(), WriteMode::Create).await.unwrap_err();
        assert!(e.is_already_exists() && e.to_string().contains("--force"), "{e}");
        s.write(role, WriteMode::Upsert).await.unwrap();
        let e = s.write(Resource::new("role", "r2"), WriteMode::Update).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = s.write(Resource::new("role", ""), WriteMode::Create).await.unwrap_err();
        assert!(e.to_string().contains("metadata.name is missing"), "{e}");
        let e = s.get("widget", "x", false).await.unwrap_err();
        assert!(e.to_string().contains("unknown resource kind"), "{e}");
        let e = s.get("cas", "justaname", false).await.unwrap_err();
        assert!(e.to_string().contains("<type>/<cluster>"), "{e}");
        let e = s
            .write(Resource::new("token", "t").with_spec(serde_json::json!({"roles": ["Wizard"]})), WriteMode::Create)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not a system role"), "{e}");
    }
}
