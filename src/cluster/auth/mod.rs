//! The Auth Service: the cluster's certificate authorities, users, roles and
//! join tokens, kept in the cluster-state backend at upstream's keys, and the
//! calls that act on them (log in, join, sign, heartbeat).
//!
//! `init` brings a backend to a running cluster on first start and checks
//! it on every later one; `service` holds the operations; `authz` decides
//! who may call what; `api` serves them over mutual TLS; `presets` are the
//! preset roles. This room uses `backend`, `resources` and `crypto`; it
//! never reaches into the CLI.

pub mod api;
pub mod audit;
pub mod authz;
pub mod bootstrap;
pub mod init;
pub mod presets;
pub mod service;

use std::path::PathBuf;

pub use authz::{Caller, SystemRole};
pub use init::{AuthConfig, StaticToken};
pub use service::AuthServer;

/// What kind of failure an [`AuthError`] is, for API status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// Malformed request or resource.
    BadParameter,
    /// Missing resource.
    NotFound,
    /// Existing resource.
    AlreadyExists,
    /// Wrong credentials (password, OTP, token).
    AccessDenied,
    /// The caller may not do this.
    Forbidden,
    /// The state the call expects does not hold (cluster name mismatch...).
    Conflict,
    /// Anything else.
    Internal,
}

/// An Auth Service error: a kind and a message that names what failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// What kind of failure.
    pub kind: AuthErrorKind,
    /// What failed, where.
    pub message: String,
}

impl AuthError {
    /// An error of `kind`.
    pub fn new(kind: AuthErrorKind, message: impl Into<String>) -> AuthError {
        AuthError { kind, message: message.into() }
    }

    /// A bad request.
    pub fn bad(message: impl Into<String>) -> AuthError {
        AuthError::new(AuthErrorKind::BadParameter, message)
    }

    /// Wrong credentials. The message never says which part was wrong.
    pub fn denied(message: impl Into<String>) -> AuthError {
        AuthError::new(AuthErrorKind::AccessDenied, message)
    }

    /// Not allowed for this caller.
    pub fn forbidden(message: impl Into<String>) -> AuthError {
        AuthError::new(AuthErrorKind::Forbidden, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> AuthError {
        AuthError::new(AuthErrorKind::Internal, message)
    }

    /// A file could not be read or written.
    pub fn io(path: &std::path::Path, what: &str, e: std::io::Error) -> AuthError {
        AuthError::internal(format!("{what} {}: {e}", path.display()))
    }
}

impl From<crate::resources::ResourceError> for AuthError {
    fn from(e: crate::resources::ResourceError) -> AuthError {
        use crate::resources::ResourceError as R;
        let kind = match &e {
            R::NotFound { .. } => AuthErrorKind::NotFound,
            R::AlreadyExists { .. } => AuthErrorKind::AlreadyExists,
            R::Parse(_) | R::UnknownKind { .. } | R::Invalid { .. } => AuthErrorKind::BadParameter,
            R::Backend(b) if b.is_not_found() => AuthErrorKind::NotFound,
            R::Backend(b) if b.is_already_exists() => AuthErrorKind::AlreadyExists,
            R::Backend(_) => AuthErrorKind::Internal,
        };
        AuthError::new(kind, e.to_string())
    }
}

impl From<crate::backend::Error> for AuthError {
    fn from(e: crate::backend::Error) -> AuthError {
        crate::resources::ResourceError::Backend(e).into()
    }
}

impl From<crate::crypto::CryptoError> for AuthError {
    fn from(e: crate::crypto::CryptoError) -> AuthError {
        AuthError::internal(e.to_string())
    }
}

/// Where the auth service keeps its files in the data dir.
#[derive(Debug, Clone)]
pub struct DataDirPaths {
    /// The data dir.
    pub root: PathBuf,
}

impl DataDirPaths {
    /// Paths under `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDirPaths {
        DataDirPaths { root: root.into() }
    }

    /// The admin identity local `tctl` uses (0600).
    pub fn admin_identity(&self) -> PathBuf {
        self.root.join("admin-identity.pem")
    }

    /// The file naming the address the auth API listens on, so local tools
    /// find it without the config file.
    pub fn auth_addr_file(&self) -> PathBuf {
        self.root.join("auth-addr")
    }

    /// This host's UUID (as upstream's `host_uuid`).
    pub fn host_uuid(&self) -> PathBuf {
        self.root.join("host_uuid")
    }
}
