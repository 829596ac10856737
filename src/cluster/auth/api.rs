//! The Auth API: JSON over HTTP/1.1 inside mutual TLS (rustls, TLS 1.2
//! and 1.3 only). A client presenting a certificate must present one the
//! cluster's host or user CA signed, or the handshake fails; a client
//! presenting none is anonymous and may only ping, log in, join and
//! complete a signup. Every other call is authorized against the caller's
//! identity ([`Caller`]) before it runs.
//!
//! Errors are `{"error": {"kind": ..., "message": ...}}` with a status code
//! per kind; the client maps them back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::authz::{Caller, SystemRole, verb};
use super::service::{AuthServer, CertRequest, JoinRequest};
use super::{AuthError, AuthErrorKind};
use crate::cluster::metrics::{Counter, Metrics};
use crate::crypto;
use crate::resources::store::WriteMode;
use crate::resources::{Resource, codec, kinds};

struct Ctx {
    auth: AuthServer,
    requests: Option<Counter>,
}

type Shared = Arc<Ctx>;

/// An API error response.
#[derive(Debug)]
pub struct ApiError(pub AuthError);

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError(e)
    }
}

impl From<crate::backend::Error> for ApiError {
    fn from(e: crate::backend::Error) -> ApiError {
        ApiError(e.into())
    }
}

impl From<crate::resources::ResourceError> for ApiError {
    fn from(e: crate::resources::ResourceError) -> ApiError {
        ApiError(e.into())
    }
}

/// The wire name and status of an error kind.
pub fn kind_wire(kind: AuthErrorKind) -> (&'static str, StatusCode) {
    match kind {
        AuthErrorKind::BadParameter => ("bad_parameter", StatusCode::BAD_REQUEST),
        AuthErrorKind::NotFound => ("not_found", StatusCode::NOT_FOUND),
        AuthErrorKind::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        AuthErrorKind::AccessDenied => ("access_denied", StatusCode::UNAUTHORIZED),
        AuthErrorKind::Forbidden => ("forbidden", StatusCode::FORBIDDEN),
        AuthErrorKind::Conflict => ("conflict", StatusCode::CONFLICT),
        AuthErrorKind::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The error kind of a wire name.
pub fn kind_from_wire(s: &str) -> AuthErrorKind {
    match s {
        "bad_parameter" => AuthErrorKind::BadParameter,
        "not_found" => AuthErrorKind::NotFound,
        "already_exists" => AuthErrorKind::AlreadyExists,
        "access_denied" => AuthErrorKind::AccessDenied,
        "forbidden" => AuthErrorKind::Forbidden,
        "conflict" => AuthErrorKind::Conflict,
        _ => AuthErrorKind::Internal,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, status) = kind_wire(self.0.kind);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "auth API call failed");
        }
        (status, Json(json!({"error": {"kind": kind, "message": self.0.message}}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json<T: serde::Serialize>(v: T) -> ApiResult {
    serde_json::to_value(v).map(Json).map_err(|e| ApiError(AuthError::internal(e.to_string())))
}

/// The routes.
fn router(ctx: Shared) -> Router {
    Router::new()
        .route("/v1/ping", get(ping))
        .route("/v1/status", get(status))
        .route("/v1/resources/{kind}", get(get_resources).post(create_resources).delete(delete_resource))
        .route("/v1/users", post(add_user))
        .route("/v1/users/reset", post(reset_user))
        .route("/v1/signup", post(signup))
        .route("/v1/login", post(login))
        .route("/v1/join", post(join))
        .route("/v1/certs/user", post(sign_user))
        .route("/v1/tokens", get(list_tokens).post(add_token))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/authorities/{ca_type}", get(authorities))
        .with_state(ctx)
}

async fn ping(State(ctx): State<Shared>, Extension(caller): Extension<Caller>) -> ApiResult {
    Ok(Json(json!({
        "cluster_name": ctx.auth.cluster_name(),
        "server_version": crate::VERSION,
        "caller": caller.describe(),
    })))
}

async fn status(State(ctx): State<Shared>, Extension(caller): Extension<Caller>) -> ApiResult {
    ctx.auth.authorize(&caller, "cert_authority", verb::LIST).await?;
    to_json(ctx.auth.status().await?)
}

#[derive(Debug, Deserialize)]
struct ResourceQuery {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    with_secrets: bool,
}

async fn get_resources(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    Query(q): Query<ResourceQuery>,
) -> ApiResult {
    if q.with_secrets {
        caller.require_admin("read resources with secrets")?;
    }
    let store = ctx.auth.store();
    if kind == "all" {
        // Every kind that defines the cluster, in registry order (the order
        // bootstrap applies them).
        let exported: Vec<&str> = kinds::KINDS.iter().filter(|k| k.exported).map(|k| k.name).collect();
        ctx.auth.authorize_all(&caller, &exported, verb::LIST).await?;
        return to_json(store.list_all(q.with_secrets).await?);
    }
    let info = kinds::lookup(&kind)?;
    let list = match q.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            ctx.auth.authorize(&caller, info.name, verb::READ).await?;
            vec![store.get(info.name, name, q.with_secrets).await?]
        }
        None => {
            ctx.auth.authorize(&caller, info.name, verb::LIST).await?;
            store.list(info.name, q.with_secrets).await?
        }
    };
    to_json(list)
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    /// Multi-document YAML or JSON, as `tctl create` reads it.
    text: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    force: bool,
}

async fn create_resources(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(_kind): Path<String>,
    Json(body): Json<CreateBody>,
) -> ApiResult {
    let source = if body.source.is_empty() { "input".to_string() } else { body.source.clone() };
    let docs = codec::parse(&source, &body.text)?;
    // Check everything before writing anything.
    let mut checked = Vec::new();
    for d in docs {
        let at = format!("{source}: {}", d.position());
        let mut r = d.resource;
        let info = r.info().map_err(|e| AuthError::bad(format!("{at}: {e}")))?;
        info.validate(&mut r).map_err(|e| AuthError::bad(format!("{at}: {e}")))?;
        let verb = if body.force { verb::UPDATE } else { verb::CREATE };
        ctx.auth.authorize(&caller, info.name, verb).await?;
        if info.kind == kinds::Kind::CertAuthority {
            caller.require_admin("write certificate authorities")?;
        }
        checked.push((at, r));
    }
    // A user's roles must exist in the store or in the same file; roles are
    // written first (registry order), so a file may define both.
    let file_roles: Vec<String> =
        checked.iter().filter(|(_, r)| r.kind == "role").map(|(_, r)| r.metadata.name.clone()).collect();
    for (at, r) in checked.iter().filter(|(_, r)| r.kind == "user") {
        for role in crate::resources::strings(r.spec.get("roles")) {
            if file_roles.contains(&role) {
                continue;
            }
            match ctx.auth.store().get("role", &role, false).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    return Err(AuthError::bad(format!(
                        "{at}: user {:?}: role {role:?} does not exist (neither stored nor in this file); nothing was written",
                        r.metadata.name
                    ))
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !body.force {
        for (at, r) in checked.iter().filter(|(_, r)| r.kind != "cert_authority") {
            let key = r.info()?.key(r)?;
            match ctx.auth.store().backend().get(&key).await {
                Ok(_) => {
                    return Err(AuthError::new(
                        AuthErrorKind::AlreadyExists,
                        format!(
                            "{at}: {} already exists; use -f or --force to overwrite it; nothing was written",
                            r.reference()
                        ),
                    )
                    .into());
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    checked.sort_by_key(|(_, r)| kinds::apply_order(&r.kind));
    let mut out = Vec::new();
    for (_, r) in checked {
        let mode = if body.force || r.info()?.kind == kinds::Kind::CertAuthority {
            WriteMode::Upsert
        } else {
            WriteMode::Create
        };
        let reference = r.reference();
        let stored = ctx.auth.store().write(r, mode).await?;
        ctx.auth.audit_resource(&stored.kind, &stored.metadata.name, false, &caller, stored.spec.get("roles")).await;
        tracing::info!(resource = %reference, caller = %caller.describe(), "resource written");
        out.push(json!({"kind": stored.kind, "name": stored.metadata.name, "revision": stored.metadata.revision}));
    }
    Ok(Json(Value::Array(out)))
}

async fn delete_resource(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    Query(q): Query<ResourceQuery>,
) -> ApiResult {
    let info = kinds::lookup(&kind)?;
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| AuthError::bad("name the resource: <kind>/<name>"))?;
    ctx.auth.authorize(&caller, info.name, verb::DELETE).await?;
    if info.kind == kinds::Kind::CertAuthority {
        caller.require_admin("delete certificate authorities")?;
    }
    ctx.auth.store().delete(info.name, &name).await?;
    ctx.auth.audit_resource(info.name, &name, true, &caller, None).await;
    tracing::info!(resource = %format!("{}/{name}", info.name), caller = %caller.describe(), "resource deleted");
    Ok(Json(json!({"deleted": format!("{}/{name}", info.name)})))
}

#[derive(Debug, Deserialize)]
struct AddUserBody {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    logins: Vec<String>,
    #[serde(default)]
    password: Option<String>,
}

async fn add_user(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<AddUserBody>,
) -> ApiResult {
    ctx.auth.authorize(&caller, "user", verb::CREATE).await?;
    let token = ctx.auth.add_user(&b.name, &b.roles, &b.logins, b.password.as_deref()).await?;
    ctx.auth.audit_resource("user", &b.name, false, &caller, Some(&json!(b.roles))).await;
    Ok(Json(json!({"user": b.name, "token": token})))
}

#[derive(Debug, Deserialize)]
struct NameBody {
    name: String,
}

async fn reset_user(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<NameBody>,
) -> ApiResult {
    ctx.auth.authorize(&caller, "user", verb::UPDATE).await?;
    to_json(ctx.auth.reset_user(&b.name).await?)
}

#[derive(Debug, Deserialize)]
struct SignupBody {
    token: String,
    password: String,
    /// A base32 TOTP secret the user's device holds, with a current code.
    #[serde(default)]
    otp_secret: Option<String>,
    #[serde(default)]
    otp_code: Option<String>,
}

async fn signup(State(ctx): State<Shared>, Json(b): Json<SignupBody>) -> ApiResult {
    let otp = match (&b.otp_secret, &b.otp_code) {
        (Some(s), Some(c)) => Some((s.as_str(), c.as_str())),
        (None, None) => None,
        _ => return Err(AuthError::bad("send otp_secret and otp_code together").into()),
    };
    let user = ctx.auth.complete_signup(&b.token, &b.password, otp).await?;
    Ok(Json(json!({"user": user})))
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    user: String,
    password: String,
    #[serde(default)]
    otp: Option<String>,
    #[serde(flatten)]
    keys: CertRequest,
}

async fn login(State(ctx): State<Shared>, Json(b): Json<LoginBody>) -> ApiResult {
    let user = match ctx.auth.authenticate(&b.user, &b.password, b.otp.as_deref()).await {
        Ok(u) => u,
        Err(e) => {
            ctx.auth.audit_login(&b.user, Err(&e.to_string())).await;
            return Err(e.into());
        }
    };
    let creds = ctx.auth.issue_user_credentials(&user, &b.keys).await?;
    ctx.auth.audit_login(&b.user, Ok(())).await;
    let by = Caller::User { name: b.user.clone(), roles: Vec::new() };
    ctx.auth.audit_cert(&b.user, &by).await;
    to_json(creds)
}

async fn join(State(ctx): State<Shared>, Json(b): Json<JoinRequest>) -> ApiResult {
    to_json(ctx.auth.join(&b).await?)
}

#[derive(Debug, Deserialize)]
struct SignBody {
    user: String,
    #[serde(flatten)]
    keys: CertRequest,
}

async fn sign_user(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<SignBody>,
) -> ApiResult {
    caller.require_admin("sign user certificates")?;
    let user = ctx.auth.store().get("user", &b.user, false).await?;
    let creds = ctx.auth.issue_user_credentials(&user, &b.keys).await?;
    ctx.auth.audit_cert(&b.user, &caller).await;
    to_json(creds)
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    roles: Vec<String>,
    #[serde(default)]
    ttl_seconds: u64,
    #[serde(default)]
    value: Option<String>,
}

async fn add_token(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<TokenBody>,
) -> ApiResult {
    ctx.auth.authorize(&caller, "token", verb::CREATE).await?;
    let ttl = (b.ttl_seconds > 0).then(|| Duration::from_secs(b.ttl_seconds));
    let token = ctx.auth.create_token(&b.roles, ttl, b.value).await?;
    ctx.auth.audit_token(token.spec.get("roles").unwrap_or(&Value::Null), &caller).await;
    to_json(token)
}

async fn list_tokens(State(ctx): State<Shared>, Extension(caller): Extension<Caller>) -> ApiResult {
    ctx.auth.authorize(&caller, "token", verb::LIST).await?;
    let mut out: Vec<Resource> = ctx.auth.store().list("token", true).await?;
    if let Ok(st) = ctx.auth.store().get("static_tokens", "", true).await {
        for t in st.spec.get("static_tokens").and_then(Value::as_array).into_iter().flatten() {
            let name = t.get("token").and_then(Value::as_str).unwrap_or_default();
            let mut r =
                Resource::new("token", name).with_spec(json!({"roles": t.get("roles"), "join_method": "token"}));
            r.metadata.labels.insert("teleport.dev/origin".into(), "config-file".into());
            out.push(r);
        }
    }
    to_json(out)
}

async fn heartbeat(State(ctx): State<Shared>, Extension(caller): Extension<Caller>, Json(b): Json<Value>) -> ApiResult {
    ctx.auth.heartbeat(&caller, b).await?;
    Ok(Json(json!({})))
}

async fn list_nodes(State(ctx): State<Shared>, Extension(caller): Extension<Caller>) -> ApiResult {
    if !matches!(caller, Caller::System { role: SystemRole::Proxy, .. }) {
        ctx.auth.authorize(&caller, "node", verb::LIST).await?;
    }
    to_json(ctx.auth.list_servers("node").await?)
}

async fn authorities(
    State(ctx): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(ca_type): Path<String>,
) -> ApiResult {
    caller.require_authenticated("reading certificate authorities")?;
    let mut out = Vec::new();
    for ca in ctx.auth.store().list("cert_authority", false).await? {
        if ca.spec_str("type") == Some(ca_type.as_str()) || ca_type == "all" {
            out.push(ca);
        }
    }
    to_json(out)
}

/// Verifiers for each issuing CA, to tell host from user certificates.
struct Issuers {
    host: Arc<dyn ClientCertVerifier>,
    user: Arc<dyn ClientCertVerifier>,
}

fn roots(pems: &[Vec<u8>]) -> Result<Arc<rustls::RootCertStore>, AuthError> {
    let mut store = rustls::RootCertStore::empty();
    for pem in pems {
        for der in crypto::tls::certs_from_pem(pem)? {
            store
                .add(der)
                .map_err(|e| AuthError::internal(format!("a CA certificate is not usable as a trust root: {e}")))?;
        }
    }
    Ok(Arc::new(store))
}

fn verifier(roots: Arc<rustls::RootCertStore>, anonymous: bool) -> Result<Arc<dyn ClientCertVerifier>, AuthError> {
    let b = WebPkiClientVerifier::builder_with_provider(roots, Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let b = if anonymous { b.allow_unauthenticated() } else { b };
    b.build().map_err(|e| AuthError::internal(format!("cannot build the client certificate verifier: {e}")))
}

impl Issuers {
    fn caller(&self, certs: Option<&[CertificateDer<'static>]>) -> Caller {
        let Some(leaf) = certs.and_then(|c| c.first()) else { return Caller::Anonymous };
        let rest = certs.map(|c| &c[1..]).unwrap_or_default();
        let now = UnixTime::now();
        let Ok((id, _)) = crypto::tls::identity_from_cert_der(leaf.as_ref()) else { return Caller::Anonymous };
        if self.host.verify_client_cert(leaf, rest, now).is_ok() {
            if let Some(role) = id.groups.iter().find_map(|g| SystemRole::parse(g)) {
                return Caller::System { name: id.username, role };
            }
            return Caller::Anonymous;
        }
        if self.user.verify_client_cert(leaf, rest, now).is_ok() {
            return Caller::User { name: id.username, roles: id.groups };
        }
        Caller::Anonymous
    }
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Ends when the server has stopped.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the API on `listener`: issues the server's own certificate from
/// the host CA (valid for [`super::service::API_SERVER_NAME`], localhost
/// and the configured names) and serves until `shutdown`. With `metrics`,
/// requests are counted in `teleport_auth_api_requests_total{route,code}`.
pub async fn serve(
    auth: AuthServer,
    listener: TcpListener,
    host_id: &str,
    metrics: Option<&Metrics>,
    shutdown: CancellationToken,
) -> Result<ApiServer, AuthError> {
    crypto::install_default_provider();
    let addr = listener.local_addr().map_err(|e| AuthError::internal(format!("auth API listener: {e}")))?;
    let (key_pem, public_pem) = crypto::tls::generate_private_key()?;
    let req =
        CertRequest { tls_public_key: String::from_utf8_lossy(&public_pem).to_string(), ..CertRequest::default() };
    let names = auth.config().server_names.clone();
    let creds =
        auth.issue_system_credentials(host_id, SystemRole::Auth, &req, &names, super::service::HOST_CERT_TTL).await?;
    let host_roots = roots(&auth.tls_ca_certs("host").await?)?;
    let user_roots = roots(&auth.tls_ca_certs("user").await?)?;
    let mut all = rustls::RootCertStore::empty();
    all.roots.extend(host_roots.roots.iter().cloned());
    all.roots.extend(user_roots.roots.iter().cloned());
    let issuers = Arc::new(Issuers { host: verifier(host_roots, false)?, user: verifier(user_roots, false)? });
    let client_verifier = verifier(Arc::new(all), true)?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| AuthError::internal(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            crypto::tls::certs_from_pem(creds.tls_cert.as_bytes())?,
            crypto::tls::private_key_from_pem(&key_pem)?,
        )
        .map_err(|e| AuthError::internal(format!("auth API server certificate: {e}")))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let requests = match metrics {
        Some(m) => Some(
            m.counter(
                "teleport_auth_api_requests_total",
                "Auth API requests by route and status code.",
                &["route", "code"],
            )
            .map_err(|e| AuthError::internal(e.to_string()))?,
        ),
        None => None,
    };
    let ctx = Arc::new(Ctx { auth, requests });
    let app = router(ctx.clone()).layer(axum::middleware::from_fn_with_state(ctx, count_requests));
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "auth API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let issuers = issuers.clone();
            let app = app.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(peer = %peer, error = %e, "auth API: TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(peer = %peer, "auth API: TLS handshake timed out");
                        return;
                    }
                };
                let caller = issuers.caller(stream.get_ref().1.peer_certificates());
                let svc = hyper_util::service::TowerToHyperService::new(app.layer(Extension(caller)));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => if let Err(e) = r { tracing::debug!(peer = %peer, error = %e, "auth API connection ended") },
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
    });
    Ok(ApiServer { addr, task })
}

async fn count_requests(
    State(ctx): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let resp = next.run(req).await;
    if let Some(c) = &ctx.requests {
        c.inc(&[&route, resp.status().as_str()]);
    }
    resp
}
