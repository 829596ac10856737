//! Export and restore: `get all --with-secrets` -> fresh store ->
//! `--bootstrap` -> `get all --with-secrets` gives the same documents, on
//! sqlite, etcd and across sqlite <-> DynamoDB (moto); bad bundles are
//! refused with nothing written; an export without secrets holds none.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use futures::TryStreamExt;
use serde_json::{Value, json};
use teleport::backend::registry::{self, OpenOptions};
use teleport::backend::{Backend, ItemsParams, Key};
use teleport::cluster::auth::bootstrap::Bundle;
use teleport::cluster::auth::init::generate_ca;
use teleport::cluster::auth::service::CertRequest;
use teleport::cluster::auth::{AuthConfig, AuthServer, SystemRole};
use teleport::config::{SqliteConfig, StorageConfig};
use teleport::resources::store::WriteMode;
use teleport::resources::{Resource, codec, kinds};

async fn open(cfg: &StorageConfig) -> Arc<dyn Backend> {
    registry::open(cfg, OpenOptions::create()).await.expect("open store")
}

fn sqlite(dir: &Path) -> StorageConfig {
    StorageConfig::Sqlite(SqliteConfig::new(dir))
}

fn config(cluster: &str, bootstrap: Option<Bundle>) -> AuthConfig {
    let mut cfg = AuthConfig::new(cluster, "/nonexistent");
    cfg.second_factor = "optional".into();
    cfg.bcrypt_cost = 4;
    cfg.static_tokens = vec![teleport::cluster::auth::StaticToken {
        roles: vec!["Node".into()],
        token: "static-secret-token-77".into(),
    }];
    cfg.bootstrap = bootstrap;
    cfg
}

/// Every live item of a store (internal keys such as locks included).
async fn all_items(b: &dyn Backend) -> Vec<String> {
    let items: Vec<teleport::backend::Item> =
        b.items(ItemsParams::range(Key::from("."), Key::no_end())).try_collect().await.unwrap();
    items.iter().map(|i| i.key.to_string_lossy()).collect()
}

const PASSWORD: &str = "restore-me-please";

/// A varied cluster: roles, users with passwords and OTP devices, tokens
/// with expiry, trusted clusters with key-less CAs, a github connector, a
/// lock.
async fn varied_state(auth: &AuthServer, users: usize) {
    let store = auth.store();
    for i in 0..5 {
        let role = Resource::new("role", &format!("team-{i}")).with_spec(json!({
            "options": {"max_session_ttl": "8h0m0s"},
            "allow": {"logins": [format!("team{i}"), "{{internal.logins}}"], "node_labels": {"team": format!("{i}")},
                      "rules": [{"resources": ["node"], "verbs": ["list"]}]},
            "deny": {"logins": ["root"]}
        }));
        store.write(role, WriteMode::Create).await.unwrap();
    }
    for i in 0..users {
        let roles = vec![format!("team-{}", i % 5), "access".to_string()];
        let pw = if i % 3 == 0 { None } else { Some(PASSWORD) };
        auth.add_user(&format!("user-{i:03}"), &roles, &[format!("u{i}")], pw).await.unwrap();
        if i % 4 == 1 {
            let device = json!({"kind": "mfa_device", "version": "v1", "metadata": {"name": "otp"},
                                "id": format!("dev-{i}"), "totp": {"key": format!("SECRETOTPKEY{i:03}AAAA")}});
            store.put_mfa_device(&format!("user-{i:03}"), &device).await.unwrap();
        }
    }
    for i in 0..5 {
        auth.create_token(
            &["node".into()],
            Some(Duration::from_secs(3600 * (i + 1))),
            Some(format!("join-token-{i}-secret")),
        )
        .await
        .unwrap();
    }
    for leaf in ["leaf-one.example", "leaf-two.example"] {
        for t in ["host", "user"] {
            let mut ca = generate_ca(t, leaf).unwrap();
            kinds::lookup("cert_authority").unwrap().strip_secrets(&mut ca);
            store.write(ca, WriteMode::Upsert).await.unwrap();
        }
        let tc = Resource::new("trusted_cluster", leaf).with_spec(json!({
            "enabled": true, "token": format!("tc-secret-{leaf}"), "proxy_address": format!("{leaf}:3080"),
            "reverse_tunnel_address": format!("{leaf}:3024"), "role_map": [{"remote": "access", "local": ["access"]}]
        }));
        store.write(tc, WriteMode::Create).await.unwrap();
    }
    let gh = Resource::new("github", "github").with_spec(json!({
        "client_id": "gh-client", "client_secret": "gh-client-secret-xyz", "display": "GitHub",
        "redirect_url": "https://proxy.example:3080/v1/webapi/github/callback",
        "teams_to_roles": [{"organization": "acme", "team": "ops", "roles": ["access"]}]
    }));
    store.write(gh, WriteMode::Create).await.unwrap();
    let lock =
        Resource::new("lock", "lock-1").with_spec(json!({"target": {"user": "user-001"}, "message": "on leave"}));
    store.write(lock, WriteMode::Create).await.unwrap();
}

/// The export as text, as `tctl get all` writes it.
async fn export(auth: &AuthServer, with_secrets: bool) -> String {
    codec::to_yaml(&auth.store().list_all(with_secrets).await.unwrap()).unwrap()
}

/// Documents without revisions, for comparison.
fn normalized(text: &str) -> Vec<Value> {
    codec::parse("export", text)
        .unwrap()
        .into_iter()
        .map(|d| {
            let mut r = d.resource;
            r.metadata.revision = None;
            serde_json::to_value(r).unwrap()
        })
        .collect()
}

async fn round_trip(src: Arc<dyn Backend>, dst: Arc<dyn Backend>) {
    let (a, _) = AuthServer::start(src, config("restore.test", None)).await.unwrap();
    varied_state(&a, 30).await;
    let (_, public) = teleport::crypto::tls::generate_private_key().unwrap();
    let host_key = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let req = CertRequest {
        ssh_public_key: host_key.public_line.clone(),
        tls_public_key: String::from_utf8_lossy(&public).to_string(),
        ttl_seconds: 0,
    };
    let host_creds =
        a.issue_system_credentials("node-9", SystemRole::Node, &req, &[], Duration::from_secs(3600)).await.unwrap();
    let before = export(&a, true).await;

    let bundle = Bundle::parse("state.yaml", &before).unwrap();
    let (b, report) = AuthServer::start(dst, config("restore.test", Some(bundle))).await.unwrap();
    let applied = report.bootstrapped.expect("bootstrap applied on first start");
    assert!(report.generated_cas.is_empty(), "every CA came from the bundle: {:?}", report.generated_cas);
    assert_eq!(applied.per_kind.get("user"), Some(&30), "{}", applied.summary());
    let after = export(&b, true).await;
    assert_eq!(normalized(&before), normalized(&after), "the restored cluster exports the same documents");

    // A user keeps the password; a host certificate issued before the
    // export verifies against the restored host CA.
    // (user-002 has a password and no OTP device; second_factor is optional.)
    b.authenticate("user-002", PASSWORD, None).await.unwrap();
    assert!(b.authenticate("user-002", "wrong", None).await.is_err());
    let host_ca = b.ssh_ca_keys("host").await.unwrap();
    let trusted: Vec<&str> = host_ca.iter().map(String::as_str).collect();
    let info = teleport::crypto::ssh::verify_cert(&host_creds.ssh_cert, &trusted, SystemTime::now()).unwrap();
    assert_eq!(info.key_id, "node-9");
    assert_eq!(b.ca_pins().await.unwrap(), a.ca_pins().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(open(&sqlite(&dir.path().join("a"))).await, open(&sqlite(&dir.path().join("b"))).await).await;
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread")]
async fn round_trip_on_etcd() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let cfg = |prefix: &str| -> StorageConfig {
        serde_norway::from_str(&format!("type: etcd\npeers: [{}]\nprefix: /{prefix}/\ninsecure: true\n", etcd.endpoint))
            .unwrap()
    };
    round_trip(open(&cfg("restore-a")).await, open(&cfg("restore-b")).await).await;
}

#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread")]
async fn cross_backend_sqlite_dynamodb_both_ways() {
    let Some(db) = testcontainers::dynamodb_or_skip().await else { return };
    let dynamo = |table: &str| -> StorageConfig {
        serde_norway::from_str(&format!(
            "type: dynamodb\ntable_name: {table}\nregion: {}\nendpoint: {}\naccess_key: {}\nsecret_key: {}\n",
            db.region, db.endpoint, db.access_key_id, db.secret_access_key
        ))
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    round_trip(open(&sqlite(&dir.path().join("src"))).await, open(&dynamo("restore_dst")).await).await;
    round_trip(open(&dynamo("restore_src")).await, open(&sqlite(&dir.path().join("dst"))).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_export_restores() {
    let text = include_str!("data/upstream-export-sample.yaml");
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&sqlite(dir.path())).await;
    let (auth, report) =
        AuthServer::start(backend, config("me.localhost", Some(Bundle::parse("sample.yaml", text).unwrap())))
            .await
            .unwrap();
    assert_eq!(report.bootstrapped.unwrap().per_kind.get("cert_authority"), Some(&4));
    // The four CAs are upstream's, the missing types generated.
    assert!(!report.generated_cas.contains(&"host".to_string()) && report.generated_cas.contains(&"db".to_string()));
    let ca = auth.store().get("cas", "host/me.localhost", true).await.unwrap();
    let want = codec::parse("s", text).unwrap().remove(0).resource;
    assert_eq!(ca.spec["active_keys"], want.spec["active_keys"]);
    // The restored user CA signs.
    let user = auth.store().get("user", "myuser", false).await.unwrap();
    let key = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let creds = auth
        .issue_user_credentials(&user, &CertRequest { ssh_public_key: key.public_line, ..CertRequest::default() })
        .await
        .unwrap();
    assert!(teleport::crypto::ssh::parse_cert(&creds.ssh_cert).unwrap().principals.contains(&"admin".to_string()));
    // A later start ignores the bundle.
    let backend = open(&sqlite(dir.path())).await;
    let (_, report) =
        AuthServer::start(backend, config("me.localhost", Some(Bundle::parse("sample.yaml", text).unwrap())))
            .await
            .unwrap();
    assert!(report.bootstrap_ignored && report.bootstrapped.is_none());
}

/// A good export of a small cluster, to break in different ways.
async fn good_export() -> String {
    let (a, _) = AuthServer::start(
        Arc::new(teleport::backend::memory::MemoryBackend::new().unwrap()),
        config("restore.test", None),
    )
    .await
    .unwrap();
    varied_state(&a, 3).await;
    export(&a, true).await
}

async fn refused(text: &str, cluster: &str, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&sqlite(dir.path())).await;
    let e = match Bundle::parse("state.yaml", text) {
        Err(e) => e,
        Ok(bundle) => AuthServer::start(backend.clone(), config(cluster, Some(bundle))).await.unwrap_err(),
    };
    assert!(e.to_string().contains(want), "want {want:?} in: {e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(all_items(backend.as_ref()).await, Vec::<String>::new(), "a refused bootstrap wrote items");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bundles_are_refused_and_write_nothing() {
    let good = good_export().await;
    refused(
        &good,
        "another.test",
        "belongs to cluster \"restore.test\" but this auth server is configured for cluster \"another.test\"",
    )
    .await;
    // A local CA without its keys (an export without --with-secrets).
    let (a, _) = AuthServer::start(
        Arc::new(teleport::backend::memory::MemoryBackend::new().unwrap()),
        config("restore.test", None),
    )
    .await
    .unwrap();
    let mut docs: Vec<Resource> = a.store().list_all(true).await.unwrap();
    let plain = a.store().list_all(false).await.unwrap();
    let text = codec::to_yaml(&plain).unwrap();
    // Without keys the bundle has no cluster_name source but its own
    // cluster_name document, so the key check is what refuses it.
    refused(&text, "restore.test", "has no private key").await;
    // A trusted cluster's CA with keys.
    let mut leaf_ca = generate_ca("host", "leaf.example").unwrap();
    leaf_ca.metadata.revision = None;
    docs.push(leaf_ca);
    refused(&codec::to_yaml(&docs).unwrap(), "restore.test", "carries private keys").await;
    docs.pop();
    // A user whose role is missing.
    docs.push(Resource::new("user", "orphan").with_spec(json!({"roles": ["ghost-role"]})));
    refused(&codec::to_yaml(&docs).unwrap(), "restore.test", "names role \"ghost-role\"").await;
    docs.pop();
    // An unknown kind, a truncated file, one invalid document among valid ones.
    refused(
        &format!("{good}---\nkind: widget\nmetadata:\n  name: w\n"),
        "restore.test",
        "unknown resource kind \"widget\"",
    )
    .await;
    // Truncated right after a document's first line: that document has
    // no name any more.
    let cut = good.rfind("kind: user\n").unwrap() + "kind: user\n".len();
    refused(&good[..cut], "restore.test", "metadata.name is missing").await;
    refused(
        &format!("{good}---\nkind: role\nversion: v7\nmetadata:\n  name: broken\nspec:\n  allow:\n    rules: [{{resources: [user]}}]\n"),
        "restore.test",
        "needs resources and verbs",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_without_secrets_holds_none() {
    let (a, _) = AuthServer::start(
        Arc::new(teleport::backend::memory::MemoryBackend::new().unwrap()),
        config("restore.test", None),
    )
    .await
    .unwrap();
    varied_state(&a, 12).await;
    let plain = export(&a, false).await;
    let full = a.store().list_all(true).await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets: Vec<String> = vec![
        "gh-client-secret-xyz".into(),
        "tc-secret-leaf-one.example".into(),
        "static-secret-token-77".into(),
        "SECRETOTPKEY".into(),
        "join-token-0-secret".into(),
    ];
    for r in &full {
        if let Some(Value::Object(keys)) = r.spec.get("active_keys") {
            for p in keys.values().filter_map(Value::as_array).flatten() {
                for f in ["private_key", "key"] {
                    if let Some(s) = p.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                        secrets.push(s.to_string());
                        let pem = String::from_utf8(b64.decode(s).unwrap()).unwrap();
                        secrets.push(pem.lines().nth(1).unwrap().to_string());
                    }
                }
            }
        }
        if let Some(h) = r.spec.get("local_auth").and_then(|l| l.get("password_hash")).and_then(Value::as_str) {
            secrets.push(h.to_string());
            secrets.push(String::from_utf8(b64.decode(h).unwrap()).unwrap());
        }
    }
    assert!(secrets.len() > 20, "the state holds secrets to look for");
    for s in &secrets {
        assert!(!plain.contains(s.as_str()), "a secret leaked into get all without --with-secrets: {s}");
    }
}
