//! The PostgreSQL store against a real PostgreSQL 15 (testcontainers):
//! the whole compliance suite, then what only this store has: upstream's
//! table layout read and written by a plain SQL client, `create: false`
//! creating nothing, one clear error for a wrong port or password, and the
//! change feed delivering writes made outside the store.
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use teleport::backend::postgres::PostgresBackend;
use teleport::backend::registry::OpenOptions;
use teleport::backend::{Backend, Clock, ErrorKind, Item, Key, OpType, Watch, suite};
use teleport::config::PostgresConfig;
use testcontainers::Postgres;
use tokio_postgres::NoTls;

/// A connection string for database `db` on the fixture.
fn url(pg: &Postgres, user: &str, db: &str) -> String {
    format!("postgresql://{user}@{}:{}/{db}?sslmode=disable", pg.host, pg.port)
}

/// A store config with test-speed polling and expiry.
fn config(conn: String) -> PostgresConfig {
    let mut c = PostgresConfig::new(conn);
    c.change_feed_poll_interval = Some(Duration::from_millis(100));
    c.expiry_interval = Some(Duration::from_millis(200));
    c
}

/// A plain SQL client on the fixture, as an operator or upstream would use.
async fn sql(pg: &Postgres, db: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&url(pg, "postgres", db), NoTls).await.expect("connect with psql-like client");
    tokio::spawn(conn);
    client
}

async fn open(cfg: &PostgresConfig, clock: Arc<dyn Clock>) -> teleport::backend::Result<Arc<dyn Backend>> {
    let b: Arc<dyn Backend> = Arc::new(PostgresBackend::open(cfg, OpenOptions { clock, create: true }).await?);
    Ok(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compliance() {
    let Some(pg) = testcontainers::postgres_or_skip().await else { return };
    // A database the store creates itself (upstream's TryEnsureDatabase).
    let cfg = config(url(&pg, "postgres", "teleport_backend"));
    suite::run_all(&move |clock: Arc<dyn Clock>| {
        let cfg = cfg.clone();
        async move { open(&cfg, clock).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_is_upstreams_and_outside_writes_reach_watchers() {
    let Some(pg) = testcontainers::postgres_or_skip().await else { return };
    let b = open(&config(url(&pg, "postgres", "layout")), teleport::backend::clock::system()).await.expect("open");
    let db = sql(&pg, "layout").await;

    // The tables, column types, key, index and replica identity upstream makes.
    let cols: Vec<(String, String, String)> = db
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_name = 'kv' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = [
        ("key", "bytea", "NO"),
        ("value", "bytea", "NO"),
        ("expires", "timestamp with time zone", "YES"),
        ("revision", "uuid", "NO"),
    ];
    assert_eq!(cols.len(), 4, "{cols:?}");
    for (got, want) in cols.iter().zip(want) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
    }
    let row = db
        .query_one(
            "SELECT (SELECT relreplident::text FROM pg_class WHERE relname = 'kv'), \
                    (SELECT indexdef FROM pg_indexes WHERE indexname = 'kv_pkey'), \
                    (SELECT indexdef FROM pg_indexes WHERE indexname = 'kv_expires_idx'), \
                    (SELECT max(version) FROM backend_version)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "f", "REPLICA IDENTITY FULL");
    assert!(row.get::<_, String>(1).contains("(key)"));
    assert!(row.get::<_, String>(2).contains("WHERE (expires IS NOT NULL)"));
    assert_eq!(row.get::<_, i32>(3), 2);

    // What the store writes, read back raw.
    let expires = SystemTime::UNIX_EPOCH + Duration::from_micros(4_102_444_800_123_456);
    let key = Key::from(&b"/web/users/alice/\xffparams"[..]);
    let lease = b.put(Item::new(key.clone(), &b"\x00{\"kind\":\"user\"}"[..]).expires_at(expires)).await.unwrap();
    let r =
        db.query_one("SELECT value, expires, revision::text FROM kv WHERE key = $1", &[&key.as_bytes()]).await.unwrap();
    assert_eq!(r.get::<_, Vec<u8>>(0), b"\x00{\"kind\":\"user\"}");
    assert_eq!(r.get::<_, SystemTime>(1), expires);
    assert_eq!(r.get::<_, String>(2), lease.revision);
    b.put(Item::new("/forever", "v")).await.unwrap();
    let r = db.query_one("SELECT expires FROM kv WHERE key = $1", &[&&b"/forever"[..]]).await.unwrap();
    assert_eq!(r.get::<_, Option<SystemTime>>(0), None, "no expiry is NULL");

    // Limits are data, and enforced before the server sees the write.
    let limits = b.limits();
    assert_eq!(limits.max_key_len, Some(teleport::backend::postgres::MAX_KEY_BYTES));
    let long = Key::from(vec![b'k'; teleport::backend::postgres::MAX_KEY_BYTES + 1]);
    assert_eq!(b.put(Item::new(long, "v")).await.unwrap_err().kind(), ErrorKind::LimitExceeded);

    // Rows another program (upstream) writes are read, and reach watchers.
    let mut w = b.new_watcher(Watch::prefixes("outside", [Key::from("/outside/")])).await.unwrap();
    assert_eq!(w.recv().await.unwrap().op, OpType::Init);
    db.batch_execute(
        "INSERT INTO kv (key, value, expires, revision) \
         VALUES ('\\x2f6f7574736964652f61'::bytea, 'hello', NULL, '5b6a1c2e-0000-4000-8000-000000000001');
         UPDATE kv SET value = 'hello again' WHERE key = '/outside/a'::bytea;
         DELETE FROM kv WHERE key = '/outside/a'::bytea;",
    )
    .await
    .unwrap();
    let deadline = Duration::from_secs(10);
    let e = tokio::time::timeout(deadline, w.recv()).await.unwrap().unwrap();
    assert_eq!(
        (e.op, e.item.key.as_bytes(), e.item.value.as_slice()),
        (OpType::Put, &b"/outside/a"[..], &b"hello"[..])
    );
    assert_eq!(e.item.revision, "5b6a1c2e-0000-4000-8000-000000000001");
    let e = tokio::time::timeout(deadline, w.recv()).await.unwrap().unwrap();
    assert_eq!((e.op, e.item.value.as_slice()), (OpType::Put, &b"hello again"[..]));
    let e = tokio::time::timeout(deadline, w.recv()).await.unwrap().unwrap();
    assert_eq!((e.op, e.item.key.as_bytes()), (OpType::Delete, &b"/outside/a"[..]));

    db.execute("INSERT INTO kv VALUES ('/raw'::bytea, 'raw value', NULL, '00000000-0000-0000-0000-000000000000')", &[])
        .await
        .unwrap();
    let got = b.get(&Key::from("/raw")).await.unwrap();
    assert_eq!((got.value.as_slice(), got.revision.as_str()), (&b"raw value"[..], teleport::backend::BLANK_REVISION));
    b.conditional_delete(&Key::from("/raw"), teleport::backend::BLANK_REVISION).await.expect("blank revision matches");

    // One temporary slot per watching handle, gone when the handle closes.
    async fn slots(db: &tokio_postgres::Client) -> i64 {
        let q = "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'teleport_%'";
        db.query_one(q, &[]).await.unwrap().get(0)
    }
    assert_eq!(slots(&db).await, 1);
    b.close().await.unwrap();
    let t = Instant::now();
    while slots(&db).await != 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the temporary slot is dropped with its connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn create_false_creates_nothing() {
    let Some(pg) = testcontainers::postgres_or_skip().await else { return };
    let admin = sql(&pg, "postgres").await;
    admin.batch_execute("CREATE DATABASE empty").await.unwrap();
    let existing = OpenOptions::existing();

    // An empty database: refused, and still empty.
    let err = PostgresBackend::open(&config(url(&pg, "postgres", "empty")), existing.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("postgres {}:{}/empty", pg.host, pg.port)), "{msg}");
    assert!(msg.contains("no `kv` table") && msg.contains("nothing was created"), "{msg}");
    let empty = sql(&pg, "empty").await;
    let n: i64 = empty
        .query_one("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no table, index or sequence was created");

    // A missing database: refused, and not created.
    let err = PostgresBackend::open(&config(url(&pg, "postgres", "missing")), existing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("nothing was created"), "{err}");
    let n: i64 =
        admin.query_one("SELECT count(*) FROM pg_database WHERE datname = 'missing'", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);

    // With create, the same database is made and opened.
    let b = PostgresBackend::open(&config(url(&pg, "postgres", "missing")), OpenOptions::create()).await.unwrap();
    b.put(Item::new("/a", "b")).await.unwrap();
    b.close().await.unwrap();
    let b = PostgresBackend::open(&config(url(&pg, "postgres", "missing")), OpenOptions::existing()).await.unwrap();
    assert_eq!(b.get(&Key::from("/a")).await.unwrap().value, b"b");
    b.close().await.unwrap();
}

#[tokio::test]
async fn connection_and_credential_problems_are_one_clear_error() {
    let Some(pg) = testcontainers::postgres_or_skip().await else { return };
    let admin = sql(&pg, "postgres").await;

    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Instant::now();
    let cfg = config(format!("postgresql://teleport:hunter2@127.0.0.1:{port}/teleport_backend?sslmode=disable"));
    let err = PostgresBackend::open(&cfg, OpenOptions::create()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "a closed port fails fast, took {:?}", t.elapsed());
    assert_eq!(err.kind(), ErrorKind::ConnectionProblem, "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("postgres 127.0.0.1:{port}/teleport_backend: connect")), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    // A role with a password, checked by scram for TCP connections.
    admin.batch_execute("CREATE ROLE teleport LOGIN PASSWORD 'right-password'").await.unwrap();
    admin
        .batch_execute("GRANT ALL ON DATABASE postgres TO teleport; GRANT ALL ON SCHEMA public TO teleport")
        .await
        .unwrap();
    let hba = pg.data_dir.as_ref().expect("local fixture").join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all teleport 127.0.0.1/32 scram-sha-256\n{old}")).unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t = Instant::now();
    let cfg = config(format!("postgresql://teleport:hunter2@{}:{}/postgres?sslmode=disable", pg.host, pg.port));
    let err = PostgresBackend::open(&cfg, OpenOptions::create()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "a wrong password is not retried, took {:?}", t.elapsed());
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("postgres {}:{}/postgres: connect", pg.host, pg.port)), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    // The right password works; without REPLICATION, watching says why.
    let cfg = config(format!("postgresql://teleport:right-password@{}:{}/postgres?sslmode=disable", pg.host, pg.port));
    let b = PostgresBackend::open(&cfg, OpenOptions::create()).await.expect("open with the right password");
    b.put(Item::new("/a", "b")).await.unwrap();
    let err = b.new_watcher(Watch::all("w")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    assert!(err.to_string().contains("REPLICATION"), "{err}");
    assert!(!format!("{b:?}").contains("right-password"));
    b.close().await.unwrap();

    // Cloud IAM modes are refused up front.
    let mut cfg = cfg;
    cfg.auth_mode = Some("azure".into());
    let err = PostgresBackend::open(&cfg, OpenOptions::create()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadParameter, "{err}");
}
