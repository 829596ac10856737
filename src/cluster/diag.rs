//! The diagnostics HTTP server (`--diag-addr`, `teleport.diag_addr`), as
//! upstream's: `GET /healthz` (the process is up), `GET /readyz` (every
//! component is ready; what a load balancer should probe) and
//! `GET /metrics` (Prometheus text format). Part of the runtime room; it
//! knows components only by the names they register in [`Health`].
//!
//! It serves plain HTTP and exposes no secrets; bind it to a private address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ClusterError;
use super::metrics::Metrics;

/// The content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A component's readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    /// Serving.
    Ready,
    /// Not serving yet (or any more), and why.
    NotReady(String),
}

/// The process's readiness, shared by the components and the diag server.
///
/// The process is ready when at least one component has registered and
/// every registered component is ready. A component registers by calling
/// any of the setters; [`Health::register`] marks it "starting".
#[derive(Debug)]
pub struct Health {
    started: SystemTime,
    started_instant: Instant,
    components: Mutex<BTreeMap<String, ComponentState>>,
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl Health {
    /// No components yet; started now.
    pub fn new() -> Health {
        Health { started: SystemTime::now(), started_instant: Instant::now(), components: Mutex::new(BTreeMap::new()) }
    }

    fn components(&self) -> MutexGuard<'_, BTreeMap<String, ComponentState>> {
        self.components.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a component as not ready ("starting"), unless already known.
    pub fn register(&self, component: &str) {
        self.components().entry(component.to_string()).or_insert_with(|| ComponentState::NotReady("starting".into()));
    }

    /// Marks a component ready, or not ready without a particular reason.
    pub fn set_ready(&self, component: &str, ready: bool) {
        let state = if ready { ComponentState::Ready } else { ComponentState::NotReady("not ready".into()) };
        self.set(component, state);
    }

    /// Marks a component not ready, saying why (shown by `/readyz`; keep
    /// secrets out of it).
    pub fn set_not_ready(&self, component: &str, reason: impl Into<String>) {
        self.set(component, ComponentState::NotReady(reason.into()));
    }

    fn set(&self, component: &str, state: ComponentState) {
        let prev = self.components().insert(component.to_string(), state.clone());
        if prev.as_ref() != Some(&state) {
            match &state {
                ComponentState::Ready => tracing::info!(component, "component is ready"),
                ComponentState::NotReady(reason) => {
                    tracing::info!(component, reason = %reason, "component is not ready")
                }
            }
        }
    }

    /// A component's state, if it registered.
    pub fn state(&self, component: &str) -> Option<ComponentState> {
        self.components().get(component).cloned()
    }

    /// Whether at least one component registered and all are ready.
    pub fn is_ready(&self) -> bool {
        let c = self.components();
        !c.is_empty() && c.values().all(|s| *s == ComponentState::Ready)
    }

    /// The components that are not ready, with their reasons.
    pub fn not_ready(&self) -> BTreeMap<String, String> {
        self.components()
            .iter()
            .filter_map(|(k, v)| match v {
                ComponentState::Ready => None,
                ComponentState::NotReady(r) => Some((k.clone(), r.clone())),
            })
            .collect()
    }

    /// When the process started (this value was created).
    pub fn started_at(&self) -> SystemTime {
        self.started
    }

    /// Time since the start.
    pub fn uptime(&self) -> Duration {
        self.started_instant.elapsed()
    }
}

#[derive(Clone)]
struct DiagState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(s): State<DiagState>) -> Response {
    if s.health.is_ready() {
        return json(StatusCode::OK, serde_json::json!({ "status": "ok" }));
    }
    let not_ready = s.health.not_ready();
    let message = if not_ready.is_empty() {
        "no component has started yet".to_string()
    } else {
        let parts: Vec<String> = not_ready.iter().map(|(c, r)| format!("{c}: {r}")).collect();
        format!("waiting for {}", parts.join("; "))
    };
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "status": "not ready", "message": message, "components": not_ready }),
    )
}

async fn metrics(State(s): State<DiagState>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], s.metrics.render()).into_response()
}

/// The diag server's routes, for embedding or testing without a socket.
pub fn router(health: Arc<Health>, metrics_registry: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(DiagState { health, metrics: metrics_registry })
}

/// Binds `addr` (port 0 picks a free port) and serves the diag routes until
/// `shutdown` is cancelled, then finishes the requests in flight. Returns
/// the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<Result<(), ClusterError>>), ClusterError> {
    const WHAT: &str = "diagnostics server";
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ClusterError::Listen {
        what: WHAT,
        addr,
        source,
    })?;
    let bound = listener.local_addr().map_err(|source| ClusterError::Listen { what: WHAT, addr, source })?;
    tracing::info!(addr = %bound, "diagnostics server listening (/healthz, /readyz, /metrics)");
    let server = axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await });
    let task = tokio::spawn(async move {
        let res = server.await.map_err(|source| ClusterError::Serve { what: WHAT, source });
        tracing::debug!("diagnostics server stopped");
        res
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    /// A bare HTTP/1.1 GET over a fresh connection.
    async fn http_get(addr: SocketAddr, path: &str) -> Reply {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: diag\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = head.to_ascii_lowercase();
        assert!(!headers.contains("transfer-encoding: chunked"), "{head}");
        Reply { status, headers, body: body.to_string() }
    }

    #[tokio::test]
    async fn routes_over_a_real_socket() {
        let health = Arc::new(Health::new());
        let metrics = Arc::new(Metrics::new(crate::VERSION));
        let requests =
            metrics.counter("teleport_auth_api_requests_total", "Auth API requests.", &["method", "code"]).unwrap();
        requests.inc(&["GetUsers", "200"]);
        let token = CancellationToken::new();
        let (addr, task) =
            serve("127.0.0.1:0".parse().unwrap(), health.clone(), metrics.clone(), token.clone()).await.unwrap();
        assert_ne!(addr.port(), 0);

        let r = http_get(addr, "/healthz").await;
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));
        assert!(r.headers.contains("content-type: application/json"), "{}", r.headers);

        // Nothing registered yet: not ready.
        let r = http_get(addr, "/readyz").await;
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "not ready");
        assert!(v["message"].as_str().unwrap().contains("no component"), "{v}");

        health.register("auth");
        health.set_not_ready("proxy", "waiting for the auth server at 10.0.0.1:3025");
        let r = http_get(addr, "/readyz").await;
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["components"]["auth"], "starting");
        assert_eq!(v["components"]["proxy"], "waiting for the auth server at 10.0.0.1:3025");
        assert!(v["message"].as_str().unwrap().contains("proxy: waiting"), "{v}");

        health.set_ready("auth", true);
        health.set_ready("proxy", true);
        let r = http_get(addr, "/readyz").await;
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));
        health.set_ready("proxy", false);
        assert_eq!(http_get(addr, "/readyz").await.status, 503);

        let r = http_get(addr, "/metrics").await;
        assert_eq!(r.status, 200);
        assert!(r.headers.contains("content-type: text/plain; version=0.0.4"), "{}", r.headers);
        let samples = crate::cluster::metrics::tests::parse_exposition(&r.body);
        assert!(samples.iter().any(|(n, l, v)| n == "teleport_build_info"
            && l == &[("version".to_string(), crate::VERSION.to_string())]
            && *v == 1.0));
        assert!(samples.iter().any(|(n, _, v)| n == "teleport_auth_api_requests_total" && *v == 1.0), "{}", r.body);

        assert_eq!(http_get(addr, "/nope").await.status, 404);

        token.cancel();
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed after shutdown");
    }

    #[tokio::test]
    async fn busy_port_is_named() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = serve(addr, Arc::new(Health::new()), Arc::new(Metrics::new("v")), CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("diagnostics server") && e.contains(&addr.to_string()), "{e}");
    }

    #[test]
    fn health_states() {
        let h = Health::new();
        assert!(!h.is_ready());
        h.set_ready("a", true);
        assert!(h.is_ready());
        h.register("a");
        assert_eq!(h.state("a"), Some(ComponentState::Ready), "register keeps a known state");
        h.register("b");
        assert!(!h.is_ready());
        assert_eq!(h.not_ready().get("b").map(String::as_str), Some("starting"));
        assert!(h.uptime() < Duration::from_secs(60));
        assert!(h.started_at() <= SystemTime::now());
    }
}
