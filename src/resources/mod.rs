//! RESOURCES: the cluster's typed resources (users, roles, certificate
//! authorities, tokens, connectors, locks and the cluster configuration),
//! their backend keys, their YAML/JSON form, validation, and the one kind
//! registry that `tctl get/create`, export and bootstrap all use.
//!
//! A [`Resource`] is read liberally: it keeps `kind`, `sub_kind`, `version`,
//! `metadata` and `spec` as upstream writes them, and every field this
//! project does not interpret (in `metadata`, `spec` or at the top level) is
//! kept and written back unchanged. Typed views (`role::RoleView`, ...) read
//! the parts the cluster acts on. Byte fields (keys, certificates, password
//! hashes) stay base64 strings, exactly as upstream's JSON and YAML carry
//! them.
//!
//! This module may use `backend`; it never reaches up into the CLI or the
//! runtime.

pub mod codec;
pub mod kinds;
pub mod store;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use kinds::{Kind, KindInfo};

/// Errors about resources: malformed documents, unknown kinds, invalid
/// fields. Each names the resource (kind/name) and, from files, the document.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A document could not be parsed.
    #[error("{0}")]
    Parse(String),
    /// The kind is not one this project handles.
    #[error("unknown resource kind {kind:?}; known kinds: {known}")]
    UnknownKind {
        /// The kind given.
        kind: String,
        /// The kinds that are known.
        known: String,
    },
    /// A field is missing or wrong.
    #[error("{kind} {name:?}: {message}")]
    Invalid {
        /// The resource kind.
        kind: String,
        /// The resource name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The resource does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The resource kind.
        kind: String,
        /// The resource name.
        name: String,
    },
    /// The resource exists already (a create without force).
    #[error("{kind} {name:?} already exists (key {key}); use -f or --force to overwrite it")]
    AlreadyExists {
        /// The resource kind.
        kind: String,
        /// The resource name.
        name: String,
        /// Its backend key.
        key: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] crate::backend::Error),
}

impl ResourceError {
    /// True for a missing resource (or a NotFound from the backend).
    pub fn is_not_found(&self) -> bool {
        match self {
            ResourceError::NotFound { .. } => true,
            ResourceError::Backend(e) => e.is_not_found(),
            _ => false,
        }
    }

    /// True for a resource that exists already.
    pub fn is_already_exists(&self) -> bool {
        match self {
            ResourceError::AlreadyExists { .. } => true,
            ResourceError::Backend(e) => e.is_already_exists(),
            _ => false,
        }
    }
}

/// `metadata` of a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The resource's name (unique per kind, or per kind and sub-kind).
    #[serde(default)]
    pub name: String,
    /// Upstream's namespace (always `default` when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When the resource expires (RFC 3339), as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The backend revision it was read at (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Metadata fields this project does not interpret, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource: the upstream envelope around a `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// `user`, `role`, `cert_authority`, ...
    pub kind: String,
    /// Upstream's sub-kind (`host`, `user` for a cert_authority; `github`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_kind: Option<String>,
    /// The resource version (`v2`, `v7`, ...); defaulted per kind when absent.
    #[serde(default)]
    pub version: String,
    /// Name, labels, expiry, revision.
    #[serde(default)]
    pub metadata: Metadata,
    /// The body, kept as given; read through typed views.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub spec: Value,
    /// Top-level fields this project does not interpret (`status`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_empty_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

impl Resource {
    /// A resource of `kind` named `name`, with its registry's default
    /// version and an empty spec.
    pub fn new(kind: &str, name: &str) -> Resource {
        let version = kinds::lookup(kind).map(|k| k.default_version.to_string()).unwrap_or_else(|_| "v1".into());
        Resource {
            kind: kind.to_string(),
            sub_kind: None,
            version,
            metadata: Metadata { name: name.to_string(), ..Metadata::default() },
            spec: empty_object(),
            extra: Map::new(),
        }
    }

    /// The same resource with `spec`.
    pub fn with_spec(mut self, spec: Value) -> Resource {
        self.spec = spec;
        self
    }

    /// `kind/name`, for messages.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind, self.metadata.name)
    }

    /// The kind's registry entry.
    pub fn info(&self) -> Result<&'static KindInfo, ResourceError> {
        kinds::lookup(&self.kind)
    }

    /// An error about this resource.
    pub fn invalid(&self, message: impl Into<String>) -> ResourceError {
        ResourceError::Invalid { kind: self.kind.clone(), name: self.metadata.name.clone(), message: message.into() }
    }

    /// The parsed expiry, if any.
    pub fn expires(&self) -> Result<Option<SystemTime>, ResourceError> {
        match &self.metadata.expires {
            None => Ok(None),
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(SystemTime::from(t.with_timezone(&chrono::Utc))))
                .map_err(|e| self.invalid(format!("metadata.expires {s:?} is not an RFC 3339 time: {e}"))),
        }
    }

    /// Sets the expiry.
    pub fn set_expires(&mut self, t: Option<SystemTime>) {
        self.metadata.expires = t.map(|t| {
            let dt: chrono::DateTime<chrono::Utc> = t.into();
            dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        });
    }

    /// A spec field as a string.
    pub fn spec_str(&self, field: &str) -> Option<&str> {
        self.spec.get(field).and_then(Value::as_str)
    }

    /// The spec as an object, creating it when it is not one.
    pub fn spec_mut(&mut self) -> &mut Map<String, Value> {
        if !self.spec.is_object() {
            self.spec = empty_object();
        }
        match &mut self.spec {
            Value::Object(m) => m,
            _ => unreachable!("spec was just made an object"),
        }
    }

    /// The JSON stored in the backend: the resource without its revision.
    pub fn to_stored_json(&self) -> Result<Vec<u8>, ResourceError> {
        let mut r = self.clone();
        r.metadata.revision = None;
        serde_json::to_vec(&r).map_err(|e| self.invalid(format!("encode: {e}")))
    }

    /// Reads the JSON stored in the backend, filling in the revision.
    pub fn from_stored_json(bytes: &[u8], revision: &str) -> Result<Resource, ResourceError> {
        let mut r: Resource = serde_json::from_slice(bytes)
            .map_err(|e| ResourceError::Parse(format!("stored resource is not valid JSON: {e}")))?;
        r.metadata.revision = Some(revision.to_string());
        Ok(r)
    }
}

/// Reads a list of strings from a JSON value (`["a","b"]` or `"a"`).
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}
