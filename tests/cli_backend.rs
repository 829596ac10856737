//! `teleport backend ls|get|rm|edit` run as a real process against SQLite
//! databases, including one built by plain SQL with the upstream schema.

use std::path::Path;
use std::process::{Command, Output};

use rusqlite::Connection;

use teleport::backend::sqlite::UPSTREAM_SCHEMA;

fn teleport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teleport")).args(args).env_remove("RUST_LOG").output().expect("run teleport")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Builds `<dir>/backend/sqlite.db` as upstream would have written it, and a
/// storage block pointing at it.
fn upstream_db(dir: &Path) -> std::path::PathBuf {
    let backend = dir.join("backend");
    std::fs::create_dir_all(&backend).unwrap();
    let conn = Connection::open(backend.join("sqlite.db")).unwrap();
    conn.execute_batch(UPSTREAM_SCHEMA).unwrap();
    conn.execute_batch(
        r#"INSERT INTO kv VALUES ('/web/users/alice/params', 1700000000000000000, NULL,
               '{"kind":"user","version":"v2","metadata":{"name":"alice"}}', '5b6a1c2e-0000-4000-8000-000000000001');
           INSERT INTO kv VALUES ('/web/users/alice/pwd', 1700000000000000000, NULL, X'2432612431302478', 'rev-pwd');
           INSERT INTO kv VALUES ('/web/users/bob/params', 1700000000000000000, NULL, '{}', 'rev-bob');
           INSERT INTO kv VALUES ('/web/usersx', 1700000000000000000, NULL, 'not a user', 'rev-x');
           INSERT INTO kv VALUES ('/tokens/join', 1700000000000000000, '2999-01-01 00:00:00.5+00:00', 'tok', 'rev-tok');
           INSERT INTO kv VALUES ('/tokens/old', 1700000000000000000, '2001-01-01 00:00:00+00:00', 'gone', 'rev-old');
           INSERT INTO kv VALUES ('.locks/c1', 1700000000000000000, '2999-01-01 00:00:00+00:00', 'lock', 'rev-lock');"#,
    )
    .unwrap();
    let cfg = dir.join("storage.yaml");
    std::fs::write(&cfg, format!("type: sqlite\npath: {}\n", backend.display())).unwrap();
    cfg
}

#[test]
fn ls_and_get_read_an_upstream_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = upstream_db(dir.path());
    let cfg = cfg.to_str().unwrap();

    let out = teleport(&["backend", "-c", cfg, "ls"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for k in ["/web/users/alice/params", "/web/users/bob/params", "/tokens/join", ".locks/c1"] {
        assert!(stdout.contains(k), "ls lists {k}:\n{stdout}");
    }
    assert!(!stdout.contains("/tokens/old"), "expired items are not listed:\n{stdout}");
    assert!(stdout.contains("2999-01-01T00:00:00.500Z "), "expiry shown:\n{stdout}");
    assert!(text(&out.stderr).contains("6 item(s)"), "{}", text(&out.stderr));

    // A prefix lists that key's subtree only, not /web/usersx.
    let out = teleport(&["backend", "-c", cfg, "ls", "/web/users", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --format json is JSON");
    let keys: Vec<&str> = v.as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["/web/users/alice/params", "/web/users/alice/pwd", "/web/users/bob/params"]);

    let out = teleport(&["backend", "-c", cfg, "get", "/web/users/alice/params"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Revision: 5b6a1c2e-0000-4000-8000-000000000001"), "{stdout}");
    assert!(stdout.contains(r#"{"kind":"user""#), "{stdout}");

    let out = teleport(&["backend", "-c", cfg, "get", "/web/users/alice/pwd", "--format", "yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value_encoding"].as_str(), Some("utf8"));

    let out = teleport(&["backend", "-c", cfg, "get", "/nope"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("\"/nope\" is not found"), "{}", text(&out.stderr));
}

#[test]
fn teleport_yaml_storage_section_is_used() {
    let dir = tempfile::tempdir().unwrap();
    upstream_db(dir.path());
    let cfg = dir.path().join("teleport.yaml");
    std::fs::write(&cfg, format!("teleport:\n  data_dir: {}\n", dir.path().display())).unwrap();
    // No storage section: the default, sqlite under <data_dir>/backend.
    let out = teleport(&["backend", "-c", cfg.to_str().unwrap(), "get", "/tokens/join", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value"], "tok");
    assert_eq!(v["expires"], "2999-01-01T00:00:00.500Z");
}

#[test]
fn never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    upstream_db(dir.path());
    // The classic mistake: path points at the data dir, not <data_dir>/backend.
    let cfg = dir.path().join("wrong.yaml");
    std::fs::write(&cfg, format!("type: sqlite\npath: {}\n", dir.path().display())).unwrap();
    let out = teleport(&["backend", "-c", cfg.to_str().unwrap(), "ls"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(err.contains("did you mean path:"), "{err}");
    assert!(!dir.path().join("sqlite.db").exists(), "no database was created");

    let empty = tempfile::tempdir().unwrap();
    let cfg = empty.path().join("s.yaml");
    let missing = empty.path().join("nothing-here");
    std::fs::write(&cfg, format!("type: sqlite\npath: {}\n", missing.display())).unwrap();
    let out = teleport(&["backend", "-c", cfg.to_str().unwrap(), "get", "/x"]);
    assert!(!out.status.success());
    assert!(!missing.exists(), "no directory was created");
}

#[test]
fn rm_needs_confirmation_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = upstream_db(dir.path());
    let cfg = cfg.to_str().unwrap();
    // stdin is not a terminal here: without --yes nothing is deleted.
    let out = teleport(&["backend", "-c", cfg, "rm", "/web/users/bob/params"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("pass --yes"), "{}", text(&out.stderr));
    assert!(teleport(&["backend", "-c", cfg, "get", "/web/users/bob/params"]).status.success());

    let out = teleport(&["backend", "-c", cfg, "rm", "--yes", "/web/users/bob/params"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!teleport(&["backend", "-c", cfg, "get", "/web/users/bob/params"]).status.success());
    let out = teleport(&["backend", "-c", cfg, "rm", "--yes", "/web/users/bob/params"]);
    assert!(!out.status.success(), "deleting a missing key fails");
}

#[cfg(unix)]
#[test]
fn edit_writes_back_with_a_conditional_update() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = upstream_db(dir.path());
    let cfg = cfg.to_str().unwrap();
    // An "editor" that renames alice to alicia in the pretty-printed JSON.
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/\"alice\"/\"alicia\"/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["backend", "-c", cfg, "edit", "/web/users/alice/params"])
        .env("TELEPORT_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = teleport(&["backend", "-c", cfg, "get", "/web/users/alice/params", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = v["value"].as_str().unwrap();
    assert_eq!(value, r#"{"kind":"user","metadata":{"name":"alicia"},"version":"v2"}"#, "stored compact");
    assert_ne!(v["revision"], "5b6a1c2e-0000-4000-8000-000000000001", "new revision");

    // An editor that breaks the JSON: nothing is written.
    std::fs::write(&editor, "#!/bin/sh\necho '{broken' > \"$1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_teleport"))
        .args(["backend", "-c", cfg, "edit", "/web/users/alice/params"])
        .env("TELEPORT_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not valid JSON"), "{}", text(&out.stderr));
    let out = teleport(&["backend", "-c", cfg, "get", "/web/users/alice/params", "--format", "json"]);
    let v2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v2["value"], v["value"], "unchanged after a failed edit");
}

#[test]
fn version_of_each_binary() {
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_teleport"), "teleport"),
        (env!("CARGO_BIN_EXE_tctl"), "tctl"),
        (env!("CARGO_BIN_EXE_tsh"), "tsh"),
    ] {
        let out = Command::new(bin).arg("version").output().unwrap();
        assert!(out.status.success());
        let s = text(&out.stdout);
        assert!(s.starts_with(&format!("{name} v{}", env!("CARGO_PKG_VERSION"))), "{s}");
    }
}

#[test]
fn quickstart_example_seeds_a_store_that_ls_reads() {
    // `cargo test` builds examples next to the binaries' directory.
    let bin = Path::new(env!("CARGO_BIN_EXE_teleport"));
    let example = bin.parent().unwrap().join("examples").join("seed_sqlite");
    assert!(example.exists(), "cargo builds examples before tests: {}", example.display());
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("backend");
    let out = Command::new(&example).arg(&backend).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = dir.path().join("storage.yaml");
    std::fs::write(&cfg, format!("type: sqlite\npath: {}\njournal: WAL\n", backend.display())).unwrap();
    let out = teleport(&["backend", "-c", cfg.to_str().unwrap(), "ls", "--format", "yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v.as_sequence().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["/cluster_configuration/name", "/roles/access/params", "/tokens/quickstart-node-token"]);
    assert!(v[2]["expires"].is_string(), "the token expires");
}
