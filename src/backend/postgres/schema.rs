//! The tables, exactly as upstream's `lib/backend/pgbk` creates them, and
//! opening a database: creating (only when allowed) or checking them.
//!
//! - `kv`: one row per item (see the store's module doc);
//! - `backend_version(version, created)`: one row per applied schema
//!   version; upstream's migrations are [`SCHEMAS`], applied in order in one
//!   serializable transaction, so several processes may open a new database
//!   at once.

use tokio_postgres::{Client, IsolationLevel};

use super::conn::ConnSpec;
use super::sql::{PgFailure, pg_err, retry_delay};
use crate::backend::{Error, ErrorKind, Result};

/// The table that records applied schema versions (upstream's name).
pub const VERSION_TABLE: &str = "backend_version";

/// Upstream's schema versions, in order. Version 1 makes `kv`; version 2
/// makes the change feed carry whole old rows (needed to rebuild a Put whose
/// large value did not change, as a keep-alive's).
pub const SCHEMAS: &[&str] = &[
    "CREATE TABLE kv (
        key bytea NOT NULL,
        value bytea NOT NULL,
        expires timestamptz,
        revision uuid NOT NULL,
        CONSTRAINT kv_pkey PRIMARY KEY (key)
    );
    CREATE INDEX kv_expires_idx ON kv (expires) WHERE expires IS NOT NULL;",
    "ALTER TABLE kv REPLICA IDENTITY FULL;",
];

/// The DDL of the version table.
pub const VERSION_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS backend_version (
    version integer PRIMARY KEY CHECK (version > 0),
    created timestamptz NOT NULL DEFAULT now()
)";

/// Creates the database named in `spec` if it is missing, through the
/// `postgres` maintenance database (upstream's `TryEnsureDatabase`). Errors
/// are returned to be reported with the original connection failure.
pub async fn create_database(spec: &ConnSpec) -> Result<()> {
    let db = spec.dbname();
    let admin = spec.with_dbname("postgres").connect().await?;
    let sql =
        format!("CREATE DATABASE {} TEMPLATE template0 ENCODING UTF8 LC_COLLATE 'C' LC_CTYPE 'C'", quote_ident(&db));
    match admin.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(server = %spec.target, "created database");
            Ok(())
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(pg_err(e).context(format!("create database {db}"))),
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Brings the schema up to date, creating the tables if they are missing.
pub async fn create_or_migrate(client: &mut Client) -> Result<()> {
    // Split off: a role without CREATE may still use tables made for it.
    if let Err(e) = client.batch_execute(VERSION_TABLE_DDL).await {
        tracing::debug!(error = %pg_err(e), "could not make sure the backend_version table exists");
    }
    let mut attempt = 1;
    loop {
        match migrate_once(client).await {
            Ok(Ok(from)) => {
                if from < SCHEMAS.len() {
                    tracing::info!(from, to = SCHEMAS.len(), "postgres: migrated the backend schema");
                }
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                // Two processes creating the same tables race; one loses with
                // a conflict or a duplicate type and retries.
                let dup = matches!(PgFailure::of(&e), PgFailure::Server { code, .. } if code.code() == "23505" || code.code() == "42P07");
                match retry_delay(&e, true, attempt) {
                    Some(d) => tokio::time::sleep(d).await,
                    None if dup && attempt < 5 => {}
                    None => return Err(pg_err(e).context("create the backend tables")),
                }
                attempt += 1;
            }
        }
    }
}

/// One migration transaction: the version found, or a refusal.
async fn migrate_once(client: &mut Client) -> std::result::Result<Result<usize>, tokio_postgres::Error> {
    let tx = client.build_transaction().isolation_level(IsolationLevel::Serializable).start().await?;
    let version: i32 = tx.query_one("SELECT COALESCE(max(version), 0) FROM backend_version", &[]).await?.try_get(0)?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > SCHEMAS.len() {
        return Ok(Err(too_new(version)));
    }
    if version < SCHEMAS.len() {
        for s in &SCHEMAS[version..] {
            tx.batch_execute(s).await?;
        }
        let v = i32::try_from(SCHEMAS.len()).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO backend_version (version) VALUES ($1)", &[&v]).await?;
    }
    tx.commit().await?;
    Ok(Ok(version))
}

fn too_new(version: usize) -> Error {
    Error::new(
        ErrorKind::BadParameter,
        format!(
            "the database has backend schema version {version}; this build knows versions up to {} \
             (a newer teleport wrote it): upgrade this build",
            SCHEMAS.len()
        ),
    )
}

/// Checks, creating nothing, that the database holds a backend. A missing
/// `kv` table is NotFound; an older schema is accepted with a warning.
pub async fn check_existing(client: &Client, db: &str) -> Result<()> {
    let row = client
        .query_one("SELECT to_regclass('kv') IS NOT NULL, to_regclass('backend_version') IS NOT NULL", &[])
        .await
        .map_err(|e| pg_err(e).context("look for the kv table"))?;
    let has_kv: bool = row.try_get(0).map_err(|e| pg_err(e).context("look for the kv table"))?;
    let has_version: bool = row.try_get(1).map_err(|e| pg_err(e).context("look for the kv table"))?;
    if !has_kv {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "database {db:?} holds no teleport backend (it has no `kv` table in the search path); \
                 nothing was created: check the database name in conn_string"
            ),
        ));
    }
    let version = if has_version {
        let v: i32 = client
            .query_one("SELECT COALESCE(max(version), 0) FROM backend_version", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err(e).context("read the schema version"))?;
        usize::try_from(v).unwrap_or(0)
    } else {
        0
    };
    if version > SCHEMAS.len() {
        return Err(too_new(version));
    }
    if version < SCHEMAS.len() {
        tracing::warn!(
            version,
            current = SCHEMAS.len(),
            "postgres: the backend schema is older than this build's; it is opened as it is \
             (a service opening it normally migrates it)"
        );
    }
    Ok(())
}
