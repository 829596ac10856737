//! The Auth Service's own AUDIT EVENTS: what it emits (types and codes as
//! upstream) and how. The API layer, which knows the caller, calls these
//! after an operation; an emit that fails is logged and never fails the
//! call. Events carry names, roles and outcomes, never a secret (no
//! password, token value or key). This room may use `events`.

use std::sync::Arc;

use serde_json::Value;

use super::authz::Caller;
use super::service::AuthServer;
use crate::events::{AuditLog, Event};

/// `user.login` success.
pub const USER_LOGIN: (&str, &str) = ("user.login", "T1000I");
/// `user.login` failure.
pub const USER_LOGIN_FAILURE: (&str, &str) = ("user.login", "T1000W");
/// `user.create`.
pub const USER_CREATE: (&str, &str) = ("user.create", "T1002I");
/// `user.delete`.
pub const USER_DELETE: (&str, &str) = ("user.delete", "T1004I");
/// `role.created`.
pub const ROLE_CREATED: (&str, &str) = ("role.created", "T9000I");
/// `role.deleted`.
pub const ROLE_DELETED: (&str, &str) = ("role.deleted", "T9001I");
/// `join_token.create`.
pub const JOIN_TOKEN_CREATE: (&str, &str) = ("join_token.create", "T7000I");
/// `cert.create`.
pub const CERT_CREATE: (&str, &str) = ("cert.create", "TC000I");

/// The user an event names as its actor.
pub fn actor(caller: &Caller) -> String {
    match caller {
        Caller::Anonymous => String::new(),
        Caller::System { name, .. } => name.clone(),
        Caller::User { name, .. } => name.clone(),
    }
}

impl AuthServer {
    /// The same server writing its events to `log`.
    pub fn with_audit_log(mut self, log: Arc<dyn AuditLog>) -> AuthServer {
        self.audit = Some(log);
        self
    }

    /// The audit log, if one is configured.
    pub fn audit_log(&self) -> Option<&Arc<dyn AuditLog>> {
        self.audit.as_ref()
    }

    /// A new event of `kind` (type, code) by `user`, in this cluster.
    pub fn audit_event(&self, kind: (&str, &str), user: &str) -> Event {
        let e = Event::new(kind.0, kind.1).with("cluster_name", self.cluster_name());
        if user.is_empty() { e } else { e.with("user", user) }
    }

    /// Emits `event`; a failure is logged, never returned.
    pub async fn emit_audit(&self, event: Event) {
        let Some(log) = &self.audit else { return };
        if let Err(e) = log.emit(event.clone()).await {
            tracing::warn!(
                store = %log.describe(),
                event = event.event_type(),
                uid = event.uid(),
                error = %e,
                "could not write an audit event"
            );
        }
    }

    /// `user.login`: success with the method, or failure with the error.
    pub async fn audit_login(&self, user: &str, result: Result<(), &str>) {
        let e = match result {
            Ok(()) => self.audit_event(USER_LOGIN, user).with("success", true),
            Err(msg) => self.audit_event(USER_LOGIN_FAILURE, user).with("success", false).with("error", msg),
        };
        self.emit_audit(e.with("method", "local")).await;
    }

    /// `cert.create` for user certificates issued to `user`.
    pub async fn audit_cert(&self, user: &str, by: &Caller) {
        let e = self
            .audit_event(CERT_CREATE, &actor(by))
            .with("cert_type", "user")
            .with("identity", serde_json::json!({"user": user}));
        self.emit_audit(e).await;
    }

    /// `user.create` or `role.created` (or the delete twins) for a resource
    /// named `name` of `kind`; other kinds emit nothing.
    pub async fn audit_resource(&self, kind: &str, name: &str, deleted: bool, by: &Caller, roles: Option<&Value>) {
        let code = match (kind, deleted) {
            ("user", false) => USER_CREATE,
            ("user", true) => USER_DELETE,
            ("role", false) => ROLE_CREATED,
            ("role", true) => ROLE_DELETED,
            _ => return,
        };
        let mut e = self.audit_event(code, &actor(by)).with("name", name);
        if let Some(r) = roles {
            e = e.with("roles", r.clone());
        }
        self.emit_audit(e).await;
    }

    /// `join_token.create` (the token's roles, never its value).
    pub async fn audit_token(&self, roles: &Value, by: &Caller) {
        let e =
            self.audit_event(JOIN_TOKEN_CREATE, &actor(by)).with("roles", roles.clone()).with("join_method", "token");
        self.emit_audit(e).await;
    }
}
