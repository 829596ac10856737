//! Malformed storage configs: each gives a clear error naming the file, the
//! field and (where the parser knows it) the line; no input panics.

use std::path::Path;

use proptest::prelude::*;
use teleport::config::{self, ConfigError};

fn err(text: &str) -> String {
    match config::parse_storage_source(Path::new("/etc/teleport.yaml"), text) {
        Ok(s) => panic!("expected an error, got {:?}", s.storage()),
        Err(e) => e.to_string(),
    }
}

fn has_all(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should contain {p:?}");
    }
}

#[test]
fn unknown_type() {
    let e = err("teleport:\n  storage:\n    type: mongodb\n    path: /x\n");
    has_all(&e, &["/etc/teleport.yaml", "unknown storage type \"mongodb\"", "sqlite", "dynamodb", "line 3"]);
}

#[test]
fn missing_table_name() {
    let e = err("type: dynamodb\nregion: us-east-1\n");
    has_all(&e, &["/etc/teleport.yaml", "missing field `table_name`"]);
    // Upstream's clone help text says `table`; that is an unknown field here.
    let e = err("type: dynamodb\nregion: us-east-1\ntable: teleport_backend\n");
    has_all(&e, &["unknown field `table`", "table_name", "line 3"]);
}

#[test]
fn wrong_types() {
    let e = err("type: sqlite\npath: /x\nbusy_timeout: soon\n");
    has_all(&e, &["busy_timeout", "invalid type", "line 3"]);
    let e = err("type: etcd\npeers: https://a:2379\nprefix: /t/\ninsecure: true\n");
    has_all(&e, &["peers", "invalid type", "line 2"]);
    let e = err("type: sqlite\npath: /x\npoll_stream_period: 5 minutes\n");
    has_all(&e, &["poll_stream_period", "unknown unit"]);
    let e = err("type: [sqlite]\npath: /x\n");
    has_all(&e, &["type", "line 1"]);
    let e = err("teleport:\n  storage: sqlite\n");
    has_all(&e, &["teleport.storage", "storage block"]);
}

#[test]
fn bad_values() {
    let e = err("type: sqlite\npath: ''\n");
    has_all(&e, &["storage.path", "directory that holds sqlite.db"]);
    let e = err("type: sqlite\npath: /x\njournal: fast\n");
    has_all(&e, &["storage.journal", "WAL"]);
    let e = err("type: etcd\npeers: [https://a:2379]\nprefix: /t/\n");
    has_all(&e, &["storage.tls_cert_file", "insecure"]);
    let e = err("teleport:\n  storage:\n    type: dynamodb\n    table_name: ''\n");
    has_all(&e, &["teleport.storage.table_name", "must not be empty"]);
}

#[test]
fn unknown_field_has_its_line() {
    let e = err("teleport:\n  data_dir: /d\n  storage:\n    type: sqlite\n    path: /d/backend\n    jornal: WAL\n");
    has_all(&e, &["unknown field `jornal`", "journal", "line 6"]);
}

#[test]
fn empty_and_garbage_files() {
    has_all(&err(""), &["/etc/teleport.yaml", "empty"]);
    has_all(&err("   \n\n"), &["empty"]);
    has_all(&err("just a string"), &["expected a mapping"]);
    has_all(&err("- a\n- b\n"), &["expected a mapping", "a list"]);
    has_all(&err("foo: bar\n"), &["neither a teleport.yaml", "type:"]);
    has_all(&err("src: {type: memory}\ndst: {type: memory}\n"), &["clone file"]);
    has_all(&err("type: sqlite\npath: [unclosed\n"), &["/etc/teleport.yaml"]);
    has_all(&err("\u{0}\u{1}\u{2}garbage"), &["/etc/teleport.yaml"]);
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("teleport.yaml");
    std::fs::write(&p, [0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0x00, 0x01]).unwrap();
    let e = config::load_storage_source(&p).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }));
    has_all(&e.to_string(), &[p.to_str().unwrap(), "not UTF-8", "binary"]);
    let missing = dir.path().join("missing.yaml");
    let e = config::load_storage_source(&missing).unwrap_err();
    has_all(&e.to_string(), &["missing.yaml", "cannot read"]);
}

#[test]
fn every_type_parses_its_upstream_example() {
    let examples = [
        ("type: sqlite\npath: /var/lib/teleport/backend\njournal: WAL\nsync: NORMAL\nbusy_timeout: 10000\n", "sqlite"),
        ("type: dir\npath: /var/lib/teleport/backend\n", "sqlite"),
        ("type: memory\n", "memory"),
        (
            "type: etcd\npeers: [https://172.17.0.1:4001]\nprefix: /teleport/\ntls_cert_file: /c.pem\ntls_key_file: /k.pem\ntls_ca_file: /ca.pem\ndial_timeout: 5s\netcd_max_client_msg_size_bytes: 15728640\n",
            "etcd",
        ),
        (
            "type: dynamodb\nregion: us-east-1\ntable_name: teleport_backend\ncontinuous_backups: true\nbilling_mode: provisioned\nread_capacity_units: 10\nwrite_capacity_units: 10\nauto_scaling: true\nread_min_capacity: 5\nread_max_capacity: 100\nread_target_value: 50.0\naudit_events_uri: ['dynamodb://events_table']\naudit_sessions_uri: 's3://bucket/records'\n",
            "dynamodb",
        ),
        (
            "type: firestore\ncollection_name: cluster-data\nproject_id: my-project\ncredentials_path: /var/lib/gcs_creds\n",
            "firestore",
        ),
        (
            "type: postgres\nconn_string: postgresql://user@pg.example.com:5432/teleport_backend?sslmode=verify-full\n",
            "postgres",
        ),
        ("type: cockroachdb\nconn_string: postgresql://root@crdb:26257/teleport\n", "postgres"),
    ];
    for (text, ty) in examples {
        let s =
            config::parse_storage_source(Path::new("x.yaml"), text).unwrap_or_else(|e| panic!("{text}: {e}")).storage();
        assert_eq!(s.type_name(), ty);
    }
}

#[test]
fn clone_file() {
    let cfg = config::parse_clone_config(
        Path::new("clone.yaml"),
        "src:\n  type: sqlite\n  path: /var/lib/teleport_data\ndst:\n  type: dynamodb\n  region: us-east-1\n  table_name: teleport_backend\nparallel: 100\nforce: false\n",
    )
    .unwrap();
    assert_eq!((cfg.src.type_name(), cfg.dst.type_name(), cfg.parallel, cfg.force), ("sqlite", "dynamodb", 100, false));
    let e = config::parse_clone_config(
        Path::new("clone.yaml"),
        "src:\n  type: sqlite\n  path: /x\ndst:\n  type: dynamodb\n",
    )
    .unwrap_err()
    .to_string();
    has_all(&e, &["clone.yaml", "dst", "missing field `table_name`"]);
}

/// Arbitrary YAML-ish text built from the tokens configs are made of.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("type: ".to_string()),
        Just("sqlite".to_string()),
        Just("dynamodb".to_string()),
        Just("etcd".to_string()),
        Just("path: ".to_string()),
        Just("table_name: ".to_string()),
        Just("teleport:".to_string()),
        Just("storage:".to_string()),
        Just("peers: [".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("- ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("poll_stream_period: ".to_string()),
        Just("1s".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        "[a-z0-9_/:.-]{0,8}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_panic_on_yamlish_input(text in yamlish()) {
        let _ = config::parse_storage_source(Path::new("fuzz.yaml"), &text);
        let _ = config::parse_clone_config(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn no_panic_on_any_text(text in "\\PC{0,200}") {
        let _ = config::parse_storage_source(Path::new("fuzz.yaml"), &text);
    }

    #[test]
    fn no_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yaml");
        std::fs::write(&p, &bytes).unwrap();
        let _ = config::load_storage_source(&p);
    }
}
