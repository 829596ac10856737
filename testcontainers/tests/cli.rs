//! The `teleport-testcontainers` binary: `up` prints export lines, servers
//! answer while it runs and are gone after Ctrl-C; missing servers and an
//! unreachable Docker engine give clear errors.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_teleport-testcontainers");

fn exports(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[test]
fn up_prints_exports_and_ctrl_c_stops_the_servers() {
    if testcontainers::find_binary(testcontainers::Server::Etcd, "etcd").is_err()
        || testcontainers::find_binary(testcontainers::Server::S3, "s3s-fs").is_err()
    {
        // Same policy as the fixtures: skip locally, fail in CI.
        assert!(
            !testcontainers::services_required(),
            "etcd or s3s-fs is missing; run scripts/install-test-services.sh etcd s3s-fs"
        );
        eprintln!("SKIPPED: etcd or s3s-fs missing; run scripts/install-test-services.sh etcd s3s-fs");
        return;
    }
    let mut child = Command::new(BIN)
        .args(["up", "etcd", "s3"])
        .env_remove("TELEPORT_TEST_PROVIDER")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start teleport-testcontainers");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line == "# ready" {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx.recv_timeout(Duration::from_secs(120)).expect("`up` printed `# ready`");
    let vars = exports(&text);
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    let etcd_port: u16 = get("TELEPORT_TEST_ETCD_PORT").parse().expect("port");
    let s3_endpoint = get("TELEPORT_TEST_S3_ENDPOINT");
    assert_eq!(get("TELEPORT_TEST_S3_ACCESS_KEY_ID"), testcontainers::s3::ACCESS_KEY_ID);
    let s3_port: u16 = s3_endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("s3 port");
    assert!(TcpStream::connect(("127.0.0.1", etcd_port)).is_ok());
    assert!(TcpStream::connect(("127.0.0.1", s3_port)).is_ok());

    // SAFETY: SIGINT to the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().expect("wait for teleport-testcontainers");
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", etcd_port)).is_err(), "etcd still listens");
    assert!(TcpStream::connect(("127.0.0.1", s3_port)).is_err(), "s3s-fs still listens");
}

#[test]
fn a_missing_server_names_itself_and_the_install_command() {
    let out = Command::new(BIN)
        .args(["up", "s3"])
        .env("TELEPORT_TEST_SERVICES_DIR", "/nonexistent/test-services")
        .env("PATH", "/nonexistent/bin")
        .env_remove("TELEPORT_TEST_PROVIDER")
        .output()
        .expect("run teleport-testcontainers");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("s3: s3s-fs is not installed"), "{stderr}");
    assert!(stderr.contains("scripts/install-test-services.sh s3s-fs"), "{stderr}");

    let out = Command::new(BIN)
        .args(["check", "gcs", "azure"])
        .env("TELEPORT_TEST_SERVICES_DIR", "/nonexistent/test-services")
        .env("PATH", "/nonexistent/bin")
        .output()
        .expect("run teleport-testcontainers check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("install-test-services.sh gcs"), "{stdout}");
    assert!(stdout.contains("install-test-services.sh azurite"), "{stdout}");
}

#[test]
fn container_provider_without_docker_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["up", "etcd"])
        .env("TELEPORT_TEST_PROVIDER", "container")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run teleport-testcontainers");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    if cfg!(feature = "containers") {
        assert!(stderr.contains("no Docker engine answers at unix:///nonexistent/docker.sock"), "{stderr}");
    } else {
        assert!(stderr.contains("without its `containers` feature"), "{stderr}");
    }
}

#[test]
fn servers_die_with_a_killed_parent() {
    if testcontainers::find_binary(testcontainers::Server::Etcd, "etcd").is_err() {
        assert!(!testcontainers::services_required(), "etcd is missing; run scripts/install-test-services.sh etcd");
        eprintln!("SKIPPED: etcd missing; run scripts/install-test-services.sh etcd");
        return;
    }
    let mut child = Command::new(BIN)
        .args(["up", "etcd"])
        .env_remove("TELEPORT_TEST_PROVIDER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start teleport-testcontainers");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut text = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        text.push_str(&line);
        text.push('\n');
        if line == "# ready" {
            break;
        }
    }
    let port: u16 = exports(&text)
        .into_iter()
        .find(|(k, _)| k == "TELEPORT_TEST_ETCD_PORT")
        .and_then(|(_, v)| v.parse().ok())
        .expect("etcd port exported");
    // SIGKILL: no Drop runs in the parent; the kernel must stop etcd.
    child.kill().expect("kill");
    let _ = child.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "etcd outlived its killed parent");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn up_firestore_serves_in_process_until_ctrl_c() {
    let mut child = Command::new(BIN)
        .args(["up", "firestore"])
        .env_remove("TELEPORT_TEST_PROVIDER")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start teleport-testcontainers");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line == "# ready" {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx.recv_timeout(Duration::from_secs(60)).expect("`up firestore` printed `# ready`");
    let vars = exports(&text);
    let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("TELEPORT_TEST_FIRESTORE_PROJECT"), testcontainers::firestore::PROJECT, "{text}");
    let port: u16 = get("TELEPORT_TEST_FIRESTORE_PORT").parse().expect("port");
    assert_eq!(get("TELEPORT_TEST_FIRESTORE_EMULATOR_HOST"), format!("127.0.0.1:{port}"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    // SAFETY: SIGINT to the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().expect("wait for teleport-testcontainers");
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the Firestore test server still listens");

    let out = Command::new(BIN).args(["check", "firestore"]).output().expect("run check");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("firestore     built in"));
}
