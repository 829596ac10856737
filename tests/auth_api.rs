//! The Auth API in-process on the memory backend: init, the admin identity,
//! users, login, tokens and join through the real mutual-TLS client. The
//! process-level tests (teleport start + tctl) are in auth_service.rs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use teleport::backend::Backend;
use teleport::backend::memory::MemoryBackend;
use teleport::cluster::auth::service::Credentials;
use teleport::cluster::auth::{AuthConfig, AuthErrorKind, AuthServer, api};
use teleport::cluster::client::ApiClient;
use tokio_util::sync::CancellationToken;

async fn server(backend: Arc<dyn Backend>, cluster: &str) -> (AuthServer, String, CancellationToken) {
    server_with(backend, cluster, "off").await
}

async fn server_with(
    backend: Arc<dyn Backend>,
    cluster: &str,
    second_factor: &str,
) -> (AuthServer, String, CancellationToken) {
    let mut cfg = AuthConfig::new(cluster, "/nonexistent");
    cfg.second_factor = second_factor.into();
    cfg.bcrypt_cost = 4;
    let (auth, report) = AuthServer::start(backend, cfg).await.unwrap();
    assert!(report.first_start || report.generated_cas.is_empty());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let api = api::serve(auth.clone(), listener, "auth-1", None, stop.clone()).await.unwrap();
    (auth, api.addr.to_string(), stop)
}

#[tokio::test(flavor = "multi_thread")]
async fn init_users_login_tokens_join() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new().unwrap());
    let (auth, addr, stop) = server(backend.clone(), "api.test").await;
    let admin =
        ApiClient::new(&addr, &auth.issue_admin_identity("auth-1", Duration::from_secs(600)).await.unwrap()).unwrap();
    let ping: Value = admin.get("/v1/ping").await.unwrap();
    assert_eq!(ping["cluster_name"], "api.test");
    assert!(ping["caller"].as_str().unwrap().contains("Admin"), "{ping}");
    let status: Value = admin.get("/v1/status").await.unwrap();
    assert!(status["ca_pin"][0].as_str().unwrap().starts_with("sha256:"));

    let out: Value = admin
        .post(
            "/v1/users",
            &json!({"name": "u1", "roles": ["access"], "logins": ["u1", "ops"], "password": "pw-123456"}),
        )
        .await
        .unwrap();
    assert!(out["token"].is_null());
    let e = admin.post::<_, Value>("/v1/users", &json!({"name": "u2", "roles": ["nope"]})).await.unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::BadParameter, "{e}");

    let ca_certs: Vec<String> =
        auth.tls_ca_certs("host").await.unwrap().into_iter().map(|c| String::from_utf8(c).unwrap()).collect();
    let anon = ApiClient::anonymous(&addr, &ca_certs).unwrap();
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let creds: Credentials = anon
        .post("/v1/login", &json!({"user": "u1", "password": "pw-123456", "ssh_public_key": pair.public_line}))
        .await
        .unwrap();
    let info = teleport::crypto::ssh::parse_cert(&creds.ssh_cert).unwrap();
    assert_eq!(info.principals, vec!["ops".to_string(), "u1".to_string()]);
    let user_ca = auth.ssh_ca_keys("user").await.unwrap();
    let trusted: Vec<&str> = user_ca.iter().map(String::as_str).collect();
    teleport::crypto::ssh::verify_cert(&creds.ssh_cert, &trusted, std::time::SystemTime::now()).unwrap();
    let e = anon
        .post::<_, Value>("/v1/login", &json!({"user": "u1", "password": "bad", "ssh_public_key": pair.public_line}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::AccessDenied);
    let e = anon
        .post::<_, Value>("/v1/login", &json!({"user": "ghost", "password": "bad", "ssh_public_key": pair.public_line}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::AccessDenied);

    // A user's TLS identity is a user, not an admin.
    let (key, public) = teleport::crypto::tls::generate_private_key().unwrap();
    let creds: Credentials = anon
        .post(
            "/v1/login",
            &json!({"user": "u1", "password": "pw-123456", "tls_public_key": String::from_utf8_lossy(&public)}),
        )
        .await
        .unwrap();
    let user = ApiClient::new(
        &addr,
        &teleport::cluster::identity::Identity::from_credentials(&String::from_utf8_lossy(&key), &creds),
    )
    .unwrap();
    let ping: Value = user.get("/v1/ping").await.unwrap();
    assert_eq!(ping["caller"], "user \"u1\"");
    let e = user.get::<Value>("/v1/status").await.unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::Forbidden, "{e}");

    let token: Value = admin.post("/v1/tokens", &json!({"roles": ["node"], "ttl_seconds": 600})).await.unwrap();
    let secret = token["metadata"]["name"].as_str().unwrap().to_string();
    let (_, public) = teleport::crypto::tls::generate_private_key().unwrap();
    let join =
        json!({"token": secret, "role": "Node", "host_id": "h1", "tls_public_key": String::from_utf8_lossy(&public)});
    let creds: Credentials = anon.post("/v1/join", &join).await.unwrap();
    assert!(creds.tls_cert.contains("CERTIFICATE"));
    let bad =
        json!({"token": secret, "role": "Proxy", "host_id": "h1", "tls_public_key": String::from_utf8_lossy(&public)});
    assert_eq!(anon.post::<_, Value>("/v1/join", &bad).await.unwrap_err().kind, AuthErrorKind::AccessDenied);

    // A second server on the same backend with another name refuses.
    let mut cfg = AuthConfig::new("other.test", "/nonexistent");
    cfg.bcrypt_cost = 4;
    let e = AuthServer::start(backend.clone(), cfg).await.unwrap_err();
    assert!(e.to_string().contains("\"api.test\"") && e.to_string().contains("\"other.test\""), "{e}");
    // The same name: nothing regenerated.
    let mut cfg = AuthConfig::new("api.test", "/nonexistent");
    cfg.bcrypt_cost = 4;
    let (_, report) = AuthServer::start(backend, cfg).await.unwrap();
    assert!(!report.first_start && report.generated_cas.is_empty() && report.created_roles.is_empty());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_with_otp_then_login_needs_the_code() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new().unwrap());
    let (auth, addr, stop) = server_with(backend, "otp.test", "otp").await;
    let admin =
        ApiClient::new(&addr, &auth.issue_admin_identity("auth-1", Duration::from_secs(600)).await.unwrap()).unwrap();
    let out: Value =
        admin.post("/v1/users", &json!({"name": "olga", "roles": ["access"], "logins": ["olga"]})).await.unwrap();
    let token = out["token"]["token"].as_str().unwrap().to_string();
    let cas: Vec<String> =
        auth.tls_ca_certs("host").await.unwrap().into_iter().map(|c| String::from_utf8(c).unwrap()).collect();
    let anon = ApiClient::anonymous(&addr, &cas).unwrap();
    // The cluster requires OTP: a signup without a device is refused.
    let e = anon.post::<_, Value>("/v1/signup", &json!({"token": token, "password": "olga-pass-1"})).await.unwrap_err();
    assert!(e.to_string().contains("second factor"), "{e}");
    let secret = teleport::crypto::secret::totp_generate_secret().unwrap();
    let now = std::time::SystemTime::now();
    let e = anon
        .post::<_, Value>(
            "/v1/signup",
            &json!({"token": token, "password": "olga-pass-1", "otp_secret": secret, "otp_code": "000000x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::BadParameter, "{e}");
    let code = teleport::crypto::secret::totp_code(&secret, now).unwrap();
    let _: Value = anon
        .post("/v1/signup", &json!({"token": token, "password": "olga-pass-1", "otp_secret": secret, "otp_code": code}))
        .await
        .unwrap();
    // The token is single use.
    let e = anon.post::<_, Value>("/v1/signup", &json!({"token": token, "password": "x-123456"})).await.unwrap_err();
    assert_eq!(e.kind, AuthErrorKind::AccessDenied, "{e}");
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let login = |otp: Option<String>| json!({"user": "olga", "password": "olga-pass-1", "otp": otp, "ssh_public_key": pair.public_line});
    assert_eq!(anon.post::<_, Value>("/v1/login", &login(None)).await.unwrap_err().kind, AuthErrorKind::AccessDenied);
    assert_eq!(
        anon.post::<_, Value>("/v1/login", &login(Some("123456".into()))).await.unwrap_err().kind,
        AuthErrorKind::AccessDenied
    );
    let code = teleport::crypto::secret::totp_code(&secret, std::time::SystemTime::now()).unwrap();
    let creds: Credentials = anon.post("/v1/login", &login(Some(code))).await.unwrap();
    assert!(creds.ssh_cert.contains("cert-v01"));
    // The device is stored beside the user, and exported with secrets.
    let full: Vec<Value> = admin.get("/v1/resources/user?name=olga&with_secrets=true").await.unwrap();
    assert_eq!(full[0]["spec"]["local_auth"]["mfa"][0]["totp"]["key"], json!(secret));
    stop.cancel();
}
