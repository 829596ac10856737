//! PostgreSQL: `psql` runs queries over TCP (connection string) and over the
//! fixture's unix socket.

use std::process::Command;

use testcontainers::{Fixture, Server};

use crate::common::{assert_removed, assert_stopped};

#[tokio::test]
async fn psql_select_over_tcp_and_unix_socket() {
    let Some(pg) = testcontainers::postgres_or_skip().await else {
        return;
    };
    let psql = testcontainers::find_binary(Server::Postgres, "psql").expect("psql next to initdb");

    let tcp =
        Command::new(&psql).args([pg.connection_string.as_str(), "-XAtc", "select 1 + 1"]).output().expect("run psql");
    assert!(tcp.status.success(), "{}", String::from_utf8_lossy(&tcp.stderr));
    assert_eq!(String::from_utf8_lossy(&tcp.stdout).trim(), "2");

    // Logical decoding is on, and wal2json can decode a temporary slot.
    let decode = Command::new(&psql)
        .args([pg.connection_string.as_str(), "-qXAt"])
        .args(["-c", "show wal_level"])
        .args(["-c", "select 'slot' from pg_create_logical_replication_slot('fixture_check', 'wal2json', true)"])
        .args(["-c", "create table w(v int); insert into w values (7)"])
        .args([
            "-c",
            "select data from pg_logical_slot_get_changes('fixture_check', null, null, 'format-version', '2')",
        ])
        .output()
        .expect("run psql");
    assert!(decode.status.success(), "{}", String::from_utf8_lossy(&decode.stderr));
    let out = String::from_utf8_lossy(&decode.stdout);
    assert!(out.starts_with("logical\nslot\n"), "{out}");
    assert!(out.contains(r#""action":"I""#) && out.contains(r#""value":7"#), "wal2json decoded the insert: {out}");

    let socket_dir = pg.socket_dir.clone().expect("local socket dir");
    let unix = Command::new(&psql)
        .arg("-h")
        .arg(&socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", &pg.user, "-d", &pg.database])
        .args(["-qXAtc", "create table t(v text); insert into t values ('ok'); select v from t"])
        .output()
        .expect("run psql");
    assert!(unix.status.success(), "{}", String::from_utf8_lossy(&unix.stderr));
    assert_eq!(String::from_utf8_lossy(&unix.stdout).trim(), "ok");

    let (pid, port) = (pg.pid().expect("local pid"), pg.port);
    drop(pg);
    assert_stopped(pid, port);
    assert_removed(&socket_dir);
}
