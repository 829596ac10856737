//! `teleport configure` run as a real process: the sample it prints loads
//! with the strict teleport.yaml loader, `-o` writes a private file and
//! refuses to overwrite it, and `--test` checks a file.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use teleport::config::FileConfig;

fn teleport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teleport")).args(args).env_remove("RUST_LOG").output().expect("run teleport")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn printed_sample_loads_with_the_given_cluster_name() {
    let out = teleport(&["configure", "--cluster-name", "dr.example.com", "--data-dir", "/srv/teleport"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let cfg = FileConfig::from_str_named(&yaml, "stdout").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(cfg.cluster_name(), "dr.example.com");
    assert_eq!(cfg.data_dir(), std::path::PathBuf::from("/srv/teleport"));
    assert!(cfg.auth_service.is_enabled() && cfg.proxy_service.is_enabled() && cfg.ssh_service.is_enabled());
    assert_eq!(cfg.storage().type_name(), "sqlite");
}

#[test]
fn output_file_is_private_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("teleport.yaml");
    let ps = p.to_str().unwrap();
    let out = teleport(&["configure", "--cluster-name", "one", "-o", ps]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("teleport start --config="), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(FileConfig::load(&p).unwrap().cluster_name(), "one");

    let out = teleport(&["configure", "--cluster-name", "two", "-o", &format!("file://{ps}")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    assert_eq!(FileConfig::load(&p).unwrap().cluster_name(), "one");

    let out = teleport(&["configure", "--cluster-name", "two", "-o", ps, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(FileConfig::load(&p).unwrap().cluster_name(), "two");

    let out = teleport(&["configure", "--test", ps]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
}

#[test]
fn test_flag_reports_errors_and_ignored_settings() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, "auth_service:\n  listn_addr: 0.0.0.0:3025\n").unwrap();
    let out = teleport(&["configure", "--test", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for part in [p.to_str().unwrap(), "auth_service.listn_addr", "did you mean `listen_addr`?", "line 2"] {
        assert!(err.contains(part), "{err:?} should contain {part:?}");
    }

    std::fs::write(&p, "teleport:\n  cache:\n    type: in-memory\nkubernetes_service:\n  enabled: no\n").unwrap();
    let out = teleport(&["configure", "--test", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("teleport.cache") && stdout.contains("kubernetes_service"), "{stdout}");
    assert!(text(&out.stderr).contains("teleport.cache"), "a warning is logged: {}", text(&out.stderr));
}
