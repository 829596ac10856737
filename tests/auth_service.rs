//! The auth service as operators run it: `teleport start --roles=auth` as a
//! real process on sqlite and on etcd, driven with the real `tctl`, plus
//! logins and joins through the API client, restarts, a renamed cluster,
//! a second process on the same data dir, and two auth servers sharing one
//! etcd (HA).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use teleport::cluster::client::ApiClient;
use teleport::cluster::identity::Identity;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// One auth server process and its config.
struct Auth {
    child: Option<Child>,
    config: PathBuf,
    data_dir: PathBuf,
    addr: String,
    diag: String,
    log: PathBuf,
}

impl Drop for Auth {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write_config(dir: &Path, cluster: &str, storage: &str) -> (PathBuf, PathBuf, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let data_dir = dir.join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let diag = format!("127.0.0.1:{}", free_port());
    let config = dir.join("teleport.yaml");
    let yaml = format!(
        "version: v3\nteleport:\n  nodename: test-auth\n  data_dir: {}\n  diag_addr: {diag}\n  log:\n    output: stderr\n    severity: INFO\n{storage}auth_service:\n  enabled: true\n  listen_addr: {addr}\n  cluster_name: {cluster}\n  authentication:\n    type: local\n    second_factor: \"off\"\n  tokens:\n    - \"node:static-join-token-1234\"\nproxy_service:\n  enabled: false\nssh_service:\n  enabled: false\n",
        data_dir.display()
    );
    std::fs::write(&config, yaml).unwrap();
    (config, data_dir, addr, diag)
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

fn start_with(config: &Path, data_dir: &Path, addr: &str, diag: &str) -> Auth {
    start_with_args(config, data_dir, addr, diag, &[])
}

fn start_with_args(config: &Path, data_dir: &Path, addr: &str, diag: &str, extra: &[&str]) -> Auth {
    let log = config.with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["start", "--roles=auth", "-c"])
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut auth = Auth {
        child: Some(child),
        config: config.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        addr: addr.to_string(),
        diag: diag.to_string(),
        log,
    };
    auth.wait_ready();
    auth
}

impl Auth {
    fn wait_ready(&mut self) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Some((200, _)) = http_get(&self.diag, "/readyz") {
                return t0.elapsed();
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("teleport exited with {status}: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("not ready after 30 s: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    fn tctl(&self, args: &[&str]) -> Output {
        self.tctl_stdin(args, "")
    }

    fn tctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tctl"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.tctl(args);
        assert!(out.status.success(), "tctl {args:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.tctl(args);
        assert!(!out.status.success(), "tctl {args:?} should fail: {}", text(&out.stdout));
        text(&out.stderr)
    }

    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        // SIGTERM: a clean shutdown.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "teleport exited with {status} after SIGTERM: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "teleport did not stop within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn identity(&self) -> Identity {
        Identity::load(&self.data_dir.join("admin-identity.pem")).unwrap()
    }
}

const PASSWORD: &str = "correct horse battery staple";

fn run_tctl_suite(auth: &Auth, cluster: &str, dir: &Path) {
    let status = auth.ok(&["status"]);
    assert!(status.contains(cluster) && status.contains("CA pin") && status.contains("sha256:"), "{status}");
    assert!(status.contains("host CA") && status.contains("user CA") && status.contains("SHA256:"), "{status}");

    let out = String::from_utf8(
        auth.tctl_stdin(&["users", "add", "alice", "--roles=access", "--logins=alice,root"], "").stdout,
    )
    .unwrap();
    assert!(out.contains("/web/invite/") && out.contains("valid for 1 hour"), "{out}");
    let out = auth.tctl_stdin(
        &["users", "add", "carol", "--roles=access,editor", "--logins=carol", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("User \"carol\" has been created"));
    let ls = auth.ok(&["users", "ls"]);
    assert!(ls.contains("alice") && ls.contains("carol") && ls.contains("access,editor"), "{ls}");
    let reset = auth.ok(&["users", "reset", "alice"]);
    assert!(reset.contains("/web/reset/"), "{reset}");

    let token_out = auth.ok(&["tokens", "add", "--type=node,proxy", "--ttl=1h"]);
    assert!(token_out.contains("The invite token:") && token_out.contains("--ca-pin=sha256:"), "{token_out}");
    let token = token_out.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    assert_eq!(token.len(), 64, "{token_out}");
    let fixed = auth.ok(&["nodes", "add", "--ttl=30m", "--token=my-fixed-node-token"]);
    assert!(fixed.contains("my-fixed-node-token") && fixed.contains("--roles=node"), "{fixed}");
    let tls = auth.ok(&["tokens", "ls"]);
    assert!(tls.contains(&token) && tls.contains("Node,Proxy") && tls.contains("static-join-token-1234"), "{tls}");
    auth.ok(&["tokens", "rm", "my-fixed-node-token"]);
    assert!(!auth.ok(&["tokens", "ls"]).contains("my-fixed-node-token"));

    let roles = auth.ok(&["get", "roles", "--format=json"]);
    let roles: Vec<Value> = serde_json::from_str(&roles).unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r["metadata"]["name"].as_str().unwrap()).collect();
    for preset in ["access", "editor", "auditor"] {
        assert!(names.contains(&preset), "{names:?}");
    }
    let text_roles = auth.ok(&["get", "roles", "--format=text"]);
    assert!(text_roles.contains("Allowed to login as") && text_roles.contains("{{internal.logins}}"), "{text_roles}");
    let carol = auth.ok(&["get", "user/carol"]);
    assert!(carol.contains("kind: user") && !carol.contains("password_hash"), "{carol}");
    let carol_secret = auth.ok(&["get", "user/carol", "--with-secrets"]);
    assert!(carol_secret.contains("password_hash"), "{carol_secret}");
    let cas = auth.ok(&["get", "cas", "--format=text"]);
    assert!(cas.contains("host") && cas.contains("jwt") && !cas.contains(" yes"), "{cas}");

    // create / create -f / rm
    let role_file = dir.join("role.yaml");
    std::fs::write(&role_file, "kind: role\nversion: v7\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [dev]\n")
        .unwrap();
    assert!(auth.ok(&["create", role_file.to_str().unwrap()]).contains("role \"dev\" has been created"));
    let e = auth.fails(&["create", role_file.to_str().unwrap()]);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    auth.ok(&["create", "-f", role_file.to_str().unwrap()]);
    assert!(auth.ok(&["rm", "role/dev"]).contains("deleted"));
    let e = auth.fails(&["get", "role/dev"]);
    assert!(e.contains("not found"), "{e}");

    // A file is checked whole before anything is written: the second
    // document exists, so the first is not created either.
    let two = dir.join("two.yaml");
    std::fs::write(&two, "kind: role\nversion: v7\nmetadata:\n  name: fresh\nspec: {}\n---\nkind: role\nversion: v7\nmetadata:\n  name: access\nspec: {}\n").unwrap();
    let e = auth.fails(&["create", two.to_str().unwrap()]);
    assert!(e.contains("role/access already exists") && e.contains("nothing was written"), "{e}");
    assert!(auth.fails(&["get", "role/fresh"]).contains("not found"));
    // A user and the role it names, in one file, user first.
    std::fs::write(&two, "kind: user\nversion: v2\nmetadata:\n  name: gus\nspec:\n  roles: [gus-role]\n---\nkind: role\nversion: v7\nmetadata:\n  name: gus-role\nspec: {}\n").unwrap();
    auth.ok(&["create", two.to_str().unwrap()]);
    assert!(auth.ok(&["users", "ls"]).contains("gus"));

    // Bad inputs, each named.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "kind: role\nmetadata:\n  name: ok\n---\nkind: role\nmetadata: [unclosed\n").unwrap();
    let e = auth.fails(&["create", bad.to_str().unwrap()]);
    assert!(e.contains("bad.yaml") && e.contains("document 2 (line 5)"), "{e}");
    std::fs::write(&bad, "kind: widget\nmetadata:\n  name: w\n").unwrap();
    let e = auth.fails(&["create", bad.to_str().unwrap()]);
    assert!(e.contains("unknown resource kind \"widget\""), "{e}");
    std::fs::write(&bad, "kind: role\nversion: v7\nmetadata:\n  labels: {a: b}\nspec: {}\n").unwrap();
    let e = auth.fails(&["create", bad.to_str().unwrap()]);
    assert!(e.contains("metadata.name is missing"), "{e}");
    std::fs::write(&bad, "kind: user\nversion: v2\nmetadata:\n  name: dave\nspec:\n  roles: [no-such-role]\n").unwrap();
    let e = auth.fails(&["create", bad.to_str().unwrap()]);
    assert!(e.contains("role \"no-such-role\" does not exist"), "{e}");
    let e = auth.fails(&["users", "add", "erin", "--roles=ghost"]);
    assert!(e.contains("ghost"), "{e}");

    // auth export
    let user_ca = auth.ok(&["auth", "export", "--type=user"]);
    assert!(
        user_ca.starts_with("cert-authority ssh-ed25519 ")
            && user_ca.contains(&format!("clustername={cluster}&type=user")),
        "{user_ca}"
    );
    let host_ca = auth.ok(&["auth", "export", "--type=host"]);
    assert!(host_ca.starts_with(&format!("@cert-authority {cluster},*.{cluster} ssh-ed25519 ")), "{host_ca}");
    let tls_ca = auth.ok(&["auth", "export", "--type=tls-host"]);
    assert!(tls_ca.contains("BEGIN CERTIFICATE"), "{tls_ca}");

    // auth sign (openssh): ssh-keygen reads it; principals are carol's logins.
    let out = dir.join("carol");
    auth.ok(&["auth", "sign", "--user=carol", "--format=openssh", "--ttl=1h", "-o", out.to_str().unwrap()]);
    let keygen = Command::new("ssh-keygen").arg("-L").arg("-f").arg(dir.join("carol-cert.pub")).output().unwrap();
    let listing = text(&keygen.stdout);
    assert!(keygen.status.success() && listing.contains("user certificate") && listing.contains("carol"), "{listing}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let e = auth.fails(&["auth", "sign", "--user=carol", "--format=openssh", "-o", out.to_str().unwrap()]);
    assert!(e.contains("--overwrite"), "{e}");

    // A user identity (not admin) is denied admin calls.
    let id = dir.join("carol.pem");
    auth.ok(&["auth", "sign", "--user=carol", "--format=file", "-o", id.to_str().unwrap()]);
    let as_carol = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tctl"))
            .args(["--auth-server", &auth.addr, "-i", id.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_carol(&["get", "users", "--with-secrets"]);
    assert!(!out.status.success() && text(&out.stderr).contains("admin only"), "{}", text(&out.stderr));
    let out = as_carol(&["auth", "sign", "--user=alice", "--format=file", "-o", dir.join("x.pem").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out.stderr).contains("may not"), "{}", text(&out.stderr));
    // carol is an editor: she may list users.
    let out = as_carol(&["users", "ls"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    auth.ok(&["users", "rm", "alice"]);
    assert!(!auth.ok(&["users", "ls"]).contains("alice"));
}

async fn api_checks(auth: &Auth, cluster: &str, dir: &Path) {
    let admin = auth.identity();
    let anon = ApiClient::anonymous(&auth.addr, &admin.tls_ca_certs).unwrap();
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    // Log in with a password: an SSH certificate ssh-keygen parses, naming
    // the user's logins, signed by the user CA.
    let creds: Value = anon
        .post("/v1/login", &json!({"user": "carol", "password": PASSWORD, "ssh_public_key": pair.public_line}))
        .await
        .unwrap();
    let cert_file = dir.join("login-cert.pub");
    std::fs::write(&cert_file, format!("{}\n", creds["ssh_cert"].as_str().unwrap())).unwrap();
    let keygen = Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert_file).output().unwrap();
    let listing = text(&keygen.stdout);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let principals: Vec<&str> = listing
        .split("Principals:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("                "))
        .map(str::trim)
        .collect();
    assert_eq!(principals, vec!["carol"], "{listing}");
    let user_ca = auth.ok(&["auth", "export", "--type=user"]);
    let ca_line = user_ca.lines().next().unwrap().split_whitespace().skip(1).take(2).collect::<Vec<_>>().join(" ");
    let fp = teleport::crypto::ssh::fingerprint(&ca_line).unwrap();
    assert!(listing.contains(&format!("Signing CA: ED25519 {fp}")), "{listing}\nwant {fp}");
    // Wrong password: denied without saying which part was wrong.
    let e = anon
        .post::<_, Value>(
            "/v1/login",
            &json!({"user": "carol", "password": "wrong", "ssh_public_key": pair.public_line}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, teleport::cluster::auth::AuthErrorKind::AccessDenied, "{e}");
    // Anonymous callers may not list anything.
    let e = anon.get::<Value>("/v1/resources/user").await.unwrap_err();
    assert!(!e.transport && e.to_string().contains("may not"), "{e}");

    // Join with a token: valid, static, expired.
    let (key, public) = teleport::crypto::tls::generate_private_key().unwrap();
    let join = |token: &str| {
        json!({"token": token, "role": "Node", "host_id": "node-1", "node_name": "node1",
               "tls_public_key": String::from_utf8_lossy(&public), "ssh_public_key": pair.public_line})
    };
    let creds: teleport::cluster::auth::service::Credentials =
        anon.post("/v1/join", &join("static-join-token-1234")).await.unwrap();
    assert!(creds.ssh_cert.contains("-cert-v01@openssh.com") && creds.tls_cert.contains("BEGIN CERTIFICATE"));
    // The node's identity may heartbeat, and is no admin.
    let node_id = Identity::from_credentials(&String::from_utf8_lossy(&key), &creds);
    let node = ApiClient::new(&auth.addr, &node_id).unwrap();
    let _: Value =
        node.post("/v1/heartbeat", &json!({"spec": {"hostname": "node1", "addr": "127.0.0.1:3022"}})).await.unwrap();
    let nodes = auth.ok(&["nodes", "ls"]);
    assert!(nodes.contains("node1") && nodes.contains("node-1"), "{nodes}");
    let e = node.get::<Value>("/v1/resources/user").await.unwrap_err();
    assert_eq!(e.kind, teleport::cluster::auth::AuthErrorKind::Forbidden, "{e}");
    let short = auth.ok(&["tokens", "add", "--type=node", "--ttl=1s"]);
    let short = short.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = anon.post::<_, Value>("/v1/join", &join(&short)).await.unwrap_err();
    assert_eq!(e.kind, teleport::cluster::auth::AuthErrorKind::AccessDenied, "{e}");
    let e = anon.post::<_, Value>("/v1/join", &join("not-a-token-at-all")).await.unwrap_err();
    assert_eq!(e.kind, teleport::cluster::auth::AuthErrorKind::AccessDenied, "{e}");

    // A certificate from another CA is refused at the TLS handshake.
    let other_ca = teleport::crypto::tls::generate_tls_ca(cluster, Duration::from_secs(3600)).unwrap();
    let issuer = teleport::crypto::tls::TlsIssuer::from_pem(&other_ca.cert_pem, &other_ca.key_pem).unwrap();
    let (k2, p2) = teleport::crypto::tls::generate_private_key().unwrap();
    let id = teleport::crypto::tls::TlsIdentity {
        username: "mallory".into(),
        groups: vec!["Admin".into()],
        cluster: cluster.into(),
        logins: vec![],
    };
    let forged = issuer.issue(&p2, &id, &[], &[], Duration::from_secs(600)).unwrap();
    let mut bad = admin.clone();
    bad.key_pem = String::from_utf8_lossy(&k2).to_string();
    bad.tls_cert = String::from_utf8_lossy(&forged).to_string();
    let e = ApiClient::new(&auth.addr, &bad).unwrap().get::<Value>("/v1/status").await.unwrap_err();
    assert!(e.transport, "a forged certificate must fail the handshake, got {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_on_sqlite_with_tctl_restart_and_rename() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data_dir, addr, diag) = write_config(dir.path(), "example.test", "");
    let t0 = Instant::now();
    let mut auth = start_with(&config, &data_dir, &addr, &diag);
    eprintln!("startup to /readyz: {:?}", t0.elapsed());
    let (code, metrics) = http_get(&diag, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("teleport_build_info"), "{metrics}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir.join("admin-identity.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The default session recording store is opened (created) at start.
    assert!(data_dir.join("log").join("records").is_dir());

    // A second process on the same data dir fails clearly.
    let second = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["start", "--roles=auth", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(text(&second.stderr).contains("another teleport process"), "{}", text(&second.stderr));

    run_tctl_suite(&auth, "example.test", dir.path());
    api_checks(&auth, "example.test", dir.path()).await;
    let pin = auth.ok(&["status"]).lines().find(|l| l.starts_with("CA pin")).unwrap().to_string();

    // Restart: same CAs, users and tokens.
    let token = auth.ok(&["tokens", "add", "--type=node", "--ttl=1h"]);
    let token = token.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    auth.stop();
    let mut auth = start_with(&config, &data_dir, &addr, &diag);
    let status = auth.ok(&["status"]);
    assert!(status.contains(&pin), "{status}\nwant {pin}");
    assert!(auth.ok(&["users", "ls"]).contains("carol"));
    assert!(auth.ok(&["tokens", "ls"]).contains(&token));
    let log = std::fs::read_to_string(&auth.log).unwrap();
    assert!(
        !log.contains(&token) && !log.contains(PASSWORD) && !log.contains("static-join-token-1234"),
        "a secret reached the log"
    );
    auth.stop();

    // The same backend under another cluster name refuses to start.
    let (config2, _, _, _) = write_config(&dir.path().join("renamed"), "other.test", "");
    let cfg = std::fs::read_to_string(&config2).unwrap().replace(
        &format!("data_dir: {}", dir.path().join("renamed").join("data").display()),
        &format!("data_dir: {}", data_dir.display()),
    );
    std::fs::write(&config2, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["start", "--roles=auth", "-c"])
        .arg(&config2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("\"example.test\"") && e.contains("\"other.test\""), "{e}");
}

#[test]
fn a_bad_audit_sessions_uri_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (uri, needle) in [
        ("ftp://nowhere/recs", "unsupported scheme"),
        ("file://host/recs", "takes no host"),
        ("s3://bucket/p?region=us-east-1&bogus=1", "bogus"),
    ] {
        let here = dir.path().join(needle.replace(' ', "-"));
        let storage = format!(
            "  storage:\n    type: sqlite\n    path: {}\n    audit_sessions_uri: '{uri}'\n",
            here.join("backend").display()
        );
        let (config, _, _, _) = write_config(&here, "example.test", &storage);
        let out = Command::new(env!("CARGO_BIN_EXE_teleport"))
            .args(["start", "--roles=auth", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{uri}: started");
        let e = text(&out.stderr);
        assert!(
            e.contains("session recording store") && e.contains("audit_sessions_uri") && e.contains(needle),
            "{uri}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_on_etcd_two_servers_share_state() {
    let Some(etcd) = testcontainers::etcd_or_skip().await else { return };
    let storage = format!(
        "  storage:\n    type: etcd\n    peers: [{}]\n    prefix: /auth-ha/\n    insecure: true\n",
        etcd.endpoint
    );
    let dir1 = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let (c1, d1, a1, g1) = write_config(dir1.path(), "ha.test", &storage);
    let (c2, d2, a2, g2) = write_config(dir2.path(), "ha.test", &storage);
    // Both start at once: init runs under the backend lock, once.
    let h1 = std::thread::spawn(move || start_with(&c1, &d1, &a1, &g1));
    let h2 = std::thread::spawn(move || start_with(&c2, &d2, &a2, &g2));
    let first = h1.join().unwrap();
    let second = h2.join().unwrap();
    run_tctl_suite(&first, "ha.test", dir1.path());
    api_checks(&first, "ha.test", dir1.path()).await;
    // The second server sees what the first wrote, with the same CAs.
    let pin = |a: &Auth| a.ok(&["status"]).lines().find(|l| l.starts_with("CA pin")).unwrap().to_string();
    assert_eq!(pin(&first), pin(&second));
    assert!(second.ok(&["users", "ls"]).contains("carol"));
    let out =
        second.tctl_stdin(&["users", "add", "frank", "--roles=auditor", "--password-stdin"], "frank's password\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(first.ok(&["users", "ls"]).contains("frank"));
    // carol logs in through the second server.
    let anon = ApiClient::anonymous(&second.addr, &second.identity().tls_ca_certs).unwrap();
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let creds: Value = anon
        .post("/v1/login", &json!({"user": "carol", "password": PASSWORD, "ssh_public_key": pair.public_line}))
        .await
        .unwrap();
    assert!(creds["ssh_cert"].as_str().unwrap().contains("-cert-v01@openssh.com"));
}

fn normalized(text: &str) -> Vec<Value> {
    teleport::resources::codec::parse("export", text)
        .unwrap()
        .into_iter()
        .map(|d| {
            let mut r = d.resource;
            r.metadata.revision = None;
            serde_json::to_value(r).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn get_all_then_bootstrap_with_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data_dir, addr, diag) = write_config(&dir.path().join("a"), "backup.test", "");
    let mut a = start_with(&config, &data_dir, &addr, &diag);
    let out = a.tctl_stdin(
        &["users", "add", "carol", "--roles=access,editor", "--logins=carol", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    a.ok(&["tokens", "add", "--type=node", "--ttl=2h", "--value=restore-node-token"]);
    let state = a.ok(&["get", "all", "--with-secrets"]);
    assert!(state.starts_with("# tctl get all --with-secrets: teleport "), "{}", &state[..200]);
    assert!(state.contains("password_hash") && state.contains("private_key"));
    let plain = a.tctl(&["get", "all"]);
    assert!(plain.status.success());
    assert!(text(&plain.stderr).contains("cannot restore the cluster"), "{}", text(&plain.stderr));
    assert!(!text(&plain.stdout).contains("password_hash") && !text(&plain.stdout).contains("restore-node-token"));
    a.stop();
    let state_file = dir.path().join("state.yaml");
    std::fs::write(&state_file, &state).unwrap();

    // A cluster of another name refuses the bundle before touching its store.
    let (other, other_dir, oa, od) = write_config(&dir.path().join("other"), "other.test", "");
    let out = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["start", "--roles=auth", "-c"])
        .arg(&other)
        .arg("--bootstrap")
        .arg(&state_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("\"backup.test\"") && e.contains("\"other.test\"") && e.contains("nothing was written"), "{e}");
    assert!(!other_dir.join("backend").join("sqlite.db").exists(), "a refused bootstrap created the store");
    let _ = (oa, od);

    // A fresh cluster of the same name restores it all.
    let (config_b, data_b, addr_b, diag_b) = write_config(&dir.path().join("b"), "backup.test", "");
    let mut b = start_with_args(&config_b, &data_b, &addr_b, &diag_b, &["--bootstrap", state_file.to_str().unwrap()]);
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(log.contains("bootstrap resources applied"), "{log}");
    let again = b.ok(&["get", "all", "--with-secrets"]);
    assert_eq!(normalized(&state), normalized(&again));
    let anon = ApiClient::anonymous(&b.addr, &b.identity().tls_ca_certs).unwrap();
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let _: Value = anon
        .post("/v1/login", &json!({"user": "carol", "password": PASSWORD, "ssh_public_key": pair.public_line}))
        .await
        .unwrap();
    b.stop();

    // Later starts ignore the bundle, and --apply-on-startup upserts.
    let apply = dir.path().join("apply.yaml");
    std::fs::write(
        &apply,
        "kind: user\nversion: v2\nmetadata:\n  name: dora\nspec:\n  roles: [ops]\n---\nkind: role\nversion: v7\nmetadata:\n  name: ops\nspec:\n  allow:\n    logins: [ops]\n",
    )
    .unwrap();
    let b = start_with_args(
        &config_b,
        &data_b,
        &addr_b,
        &diag_b,
        &["--bootstrap", state_file.to_str().unwrap(), "--apply-on-startup", apply.to_str().unwrap()],
    );
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(log.contains("ignoring bootstrap resources"), "{log}");
    assert!(log.contains("resources applied on startup"), "{log}");
    assert!(b.ok(&["users", "ls"]).contains("dora"));
    assert!(b.ok(&["get", "role/ops"]).contains("logins"));
}

/// The auth service writes its own audit events to the configured log (the
/// default file log here), and `tctl events search -c` reads them straight
/// from the store: user.create, join_token.create, user.login success and
/// failure, cert.create, user.delete; no secret in the log.
#[tokio::test(flavor = "multi_thread")]
async fn auth_emits_audit_events() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data_dir, addr, diag) = write_config(dir.path(), "audit.test", "");
    let mut auth = start_with(&config, &data_dir, &addr, &diag);
    let out =
        auth.tctl_stdin(&["users", "add", "dave", "--roles=access", "--logins=dave", "--password-stdin"], PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = auth.ok(&["tokens", "add", "--type=node", "--ttl=1h"]);
    let token = token.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let admin = auth.identity();
    let anon = ApiClient::anonymous(&auth.addr, &admin.tls_ca_certs).unwrap();
    let pair = teleport::crypto::ssh::generate_openssh_keypair().unwrap();
    let _: Value = anon
        .post("/v1/login", &json!({"user": "dave", "password": PASSWORD, "ssh_public_key": pair.public_line}))
        .await
        .unwrap();
    let bad = anon
        .post::<_, Value>(
            "/v1/login",
            &json!({"user": "dave", "password": "wrong", "ssh_public_key": pair.public_line}),
        )
        .await;
    assert!(bad.is_err());
    auth.ok(&["users", "rm", "dave"]);
    auth.stop();

    // No auth service running: tctl reads the store itself.
    let out = auth.ok(&["events", "search", "--format", "json"]);
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |ty: &str, code: &str| {
        events
            .iter()
            .find(|e| e["event"] == ty && e["code"] == code)
            .unwrap_or_else(|| panic!("no {ty} {code} in {out}"))
            .clone()
    };
    let created = find("user.create", "T1002I");
    assert_eq!((created["name"].as_str(), created["cluster_name"].as_str()), (Some("dave"), Some("audit.test")));
    find("join_token.create", "T7000I");
    let ok = find("user.login", "T1000I");
    assert_eq!((ok["user"].as_str(), ok["success"].as_bool()), (Some("dave"), Some(true)));
    let failed = find("user.login", "T1000W");
    assert_eq!(failed["success"].as_bool(), Some(false));
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    find("cert.create", "TC000I");
    assert_eq!(find("user.delete", "T1004I")["name"].as_str(), Some("dave"));
    let table = auth.ok(&["events", "search", "--type", "user.login"]);
    assert!(table.contains("T1000I") && table.contains("T1000W") && !table.contains("user.create"), "{table}");
    let host = std::fs::read_to_string(data_dir.join("host_uuid")).unwrap();
    let mut file = String::new();
    for f in std::fs::read_dir(data_dir.join("log").join(host.trim())).unwrap() {
        file.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    assert!(file.contains("user.login"));
    assert!(
        !file.contains(PASSWORD) && !file.contains(&token) && !file.contains("wrong\""),
        "a secret in the audit log"
    );
}
