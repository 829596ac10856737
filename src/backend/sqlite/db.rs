//! The SQLite file itself: opening (never creating unless asked), pragmas,
//! the upstream schema and its migrations, row decoding, event rows, and
//! mapping SQLite errors to backend error kinds.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, Transaction, params};

use super::timefmt;
use crate::backend::{BLANK_REVISION, Error, ErrorKind, Item, Key, OpType, Result};

/// The database file inside the configured directory.
pub const DB_FILE: &str = "sqlite.db";

/// A key bound as TEXT with its raw bytes (keys are TEXT upstream; binding
/// bytes keeps non-UTF-8 range bounds comparable with BINARY collation).
pub struct KeyText<'a>(pub &'a [u8]);

impl ToSql for KeyText<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// "now" in both forms expiry may be stored in: the driver's text, and unix
/// seconds for rows another program wrote as a number.
#[derive(Debug, Clone)]
pub struct Now {
    pub text: String,
    pub secs: i64,
    pub nanos: i64,
}

impl Now {
    pub fn at(t: SystemTime) -> Now {
        Now { text: timefmt::format(t), secs: timefmt::unix_secs(t), nanos: timefmt::unix_nanos(t) }
    }
}

/// SQL that is true for a live row; `?t` is now as text, `?s` as seconds
/// (for rows another program stored with a numeric expiry).
macro_rules! live {
    ($t:literal, $s:literal) => {
        concat!(
            "(expires IS NULL OR (typeof(expires) IN ('integer','real') AND expires > ?",
            $s,
            ") OR (typeof(expires) NOT IN ('integer','real') AND expires > ?",
            $t,
            "))"
        )
    };
}
pub(crate) use live;

/// Binds an optional expiry as the driver's text, or NULL.
pub fn expires_text(t: Option<SystemTime>) -> Option<String> {
    t.map(timefmt::format)
}

/// Reads an expiry column.
pub fn read_expires(v: ValueRef<'_>, key: &Key) -> Result<Option<SystemTime>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) => {
            let s = String::from_utf8_lossy(b);
            timefmt::parse(&s)
                .map(Some)
                .ok_or_else(|| Error::new(ErrorKind::Internal, format!("key {key:?} has an unreadable expiry {s:?}")))
        }
        ValueRef::Integer(secs) => Ok(Some(if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        })),
        ValueRef::Real(secs) if secs.is_finite() && secs >= 0.0 => {
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)))
        }
        other => Err(Error::new(
            ErrorKind::Internal,
            format!("key {key:?} has an expiry of unexpected type {:?}", other.data_type()),
        )),
    }
}

fn bytes_of(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    }
}

/// Decodes `key, value, expires, revision` columns.
pub fn read_item(row: &rusqlite::Row<'_>) -> Result<Item> {
    read_item_at(row, 0)
}

/// Decodes `key, value, expires, revision` columns starting at column `at`.
pub fn read_item_at(row: &rusqlite::Row<'_>, at: usize) -> Result<Item> {
    let key = Key::from(bytes_of(row.get_ref(at).map_err(sql_err)?));
    let value = bytes_of(row.get_ref(at + 1).map_err(sql_err)?);
    let expires = read_expires(row.get_ref(at + 2).map_err(sql_err)?, &key)?;
    let mut revision = String::from_utf8_lossy(&bytes_of(row.get_ref(at + 3).map_err(sql_err)?)).into_owned();
    if revision.is_empty() {
        revision = BLANK_REVISION.to_string();
    }
    Ok(Item { key, value, expires, revision })
}

/// Maps the caller's revision to what is stored: upstream keeps legacy rows'
/// revision empty and shows them as [`BLANK_REVISION`].
pub fn stored_revision(rev: &str) -> &str {
    if rev == BLANK_REVISION { "" } else { rev }
}

const INSERT_EVENT: &str = "INSERT INTO events(type, created, kv_key, kv_modified, kv_expires, kv_value, kv_revision) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const UPSERT_KV: &str =
    "INSERT OR REPLACE INTO kv(key, modified, expires, value, revision) VALUES (?1, ?2, ?3, ?4, ?5)";

/// The `type` column as upstream's driver writes it.
fn op_text(op: OpType) -> &'static str {
    match op {
        OpType::Put => "1",
        OpType::Delete => "2",
        OpType::Init => "0",
    }
}

/// Appends an event row, as every upstream mutation does.
pub fn insert_event(tx: &Transaction<'_>, op: OpType, now: &Now, item: &Item) -> Result<()> {
    let mut stmt = tx.prepare_cached(INSERT_EVENT).map_err(sql_err)?;
    execute_event(&mut stmt, op, now, item)
}

fn execute_event(stmt: &mut rusqlite::Statement<'_>, op: OpType, now: &Now, item: &Item) -> Result<()> {
    let value: Option<&[u8]> = if op == OpType::Put { Some(&item.value) } else { None };
    stmt.execute(params![
        op_text(op),
        now.text,
        KeyText(item.key.as_bytes()),
        now.nanos,
        expires_text(item.expires),
        value,
        item.revision,
    ])
    .map_err(sql_err)?;
    Ok(())
}

/// Writes items (and their event rows) in one transaction with the
/// statements prepared once: the batch path.
pub struct RowWriter<'tx> {
    kv: rusqlite::CachedStatement<'tx>,
    events: Option<rusqlite::CachedStatement<'tx>>,
}

impl<'tx> RowWriter<'tx> {
    /// Prepares the statements on `tx`.
    pub fn new(tx: &'tx Transaction<'_>, events: bool) -> Result<RowWriter<'tx>> {
        Ok(RowWriter {
            kv: tx.prepare_cached(UPSERT_KV).map_err(sql_err)?,
            events: if events { Some(tx.prepare_cached(INSERT_EVENT).map_err(sql_err)?) } else { None },
        })
    }

    /// Upserts `item`, which carries its new revision, and its event.
    pub fn put(&mut self, item: &Item, now: &Now) -> Result<()> {
        self.kv
            .execute(params![
                KeyText(item.key.as_bytes()),
                now.nanos,
                expires_text(item.expires),
                item.value,
                item.revision
            ])
            .map_err(sql_err)?;
        if let Some(ev) = &mut self.events {
            execute_event(ev, OpType::Put, now, item)?;
        }
        Ok(())
    }
}

/// Turns a SQLite error into a backend error of the right kind.
pub fn sql_err(e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::ConnectionProblem,
        Some(ErrorCode::ConstraintViolation) => ErrorKind::AlreadyExists,
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::AuthorizationForStatementDenied) => {
            ErrorKind::AccessDenied
        }
        Some(ErrorCode::TooBig) => ErrorKind::LimitExceeded,
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => ErrorKind::Internal,
        _ => ErrorKind::Internal,
    };
    let hint = match kind {
        ErrorKind::ConnectionProblem => " (another connection held the database lock past busy_timeout)",
        _ => "",
    };
    Error::new(kind, format!("sqlite{hint}")).with_source(e)
}

/// How to open the file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub create: bool,
    pub sync: String,
    pub journal: Option<String>,
    pub busy_timeout: Duration,
}

/// Opens (and, if allowed, creates) the database and brings its schema up
/// to date.
pub fn open(s: &Settings) -> Result<Connection> {
    let file = s.dir.join(DB_FILE);
    let exists = file.exists();
    if !exists && !s.create {
        return Err(missing_db(&s.dir));
    }
    if !exists {
        create_dir(&s.dir)?;
    }
    let flags = if s.create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(&file, flags)
        .map_err(|e| sql_err(e).context(format!("open {}", file.display())))?;
    if !exists {
        set_mode(&file, 0o600)?;
    }
    conn.busy_timeout(s.busy_timeout).map_err(sql_err)?;
    conn.pragma_update(None, "synchronous", &s.sync).map_err(sql_err)?;
    if let Some(j) = &s.journal {
        conn.pragma_update(None, "journal_mode", j).map_err(sql_err)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    if !exists || has_table(&conn, "kv")? {
        create_schema(&conn)?;
    } else {
        return Err(Error::new(
            ErrorKind::BadParameter,
            format!("{} is an SQLite database but not a teleport backend (it has no `kv` table)", file.display()),
        ));
    }
    Ok(conn)
}

fn missing_db(dir: &Path) -> Error {
    let mut msg = format!(
        "no database at {}: `path` must be the directory that holds {DB_FILE} (usually <data_dir>/backend)",
        dir.join(DB_FILE).display()
    );
    let nested = dir.join("backend").join(DB_FILE);
    if nested.exists() {
        msg.push_str(&format!("; did you mean path: {}?", dir.join("backend").display()));
    }
    msg.push_str("; nothing was created");
    Error::new(ErrorKind::NotFound, msg)
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
            ErrorKind::AccessDenied
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("create directory {}", dir.display())).with_source(e)
    })
}

fn set_mode(file: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::new(ErrorKind::Internal, format!("chmod {}", file.display())).with_source(e))?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode);
    Ok(())
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [name], |r| {
        r.get(0)
    })
    .map_err(sql_err)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)", [table, column], |r| r.get(0))
        .map_err(sql_err)
}

/// Upstream's DDL (lib/backend/lite/lite.go), verbatim: a database we create
/// has exactly the schema of one upstream creates. Tests use it too, to
/// build upstream-layout files "by another program".
pub const UPSTREAM_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kv (
   key TEXT NOT NULL PRIMARY KEY,
   modified INTEGER NOT NULL,
   expires DATETIME,
   value BLOB,
   revision TEXT NOT NULL DEFAULT ""
);
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires);
CREATE TABLE IF NOT EXISTS events (
   id INTEGER PRIMARY KEY,
   type TEXT NOT NULL,
   created INTEGER NOT NULL,
   kv_key TEXT NOT NULL,
   kv_modified INTEGER NOT NULL,
   kv_expires DATETIME,
   kv_value BLOB,
   kv_revision TEXT NOT NULL DEFAULT ""
);
CREATE INDEX IF NOT EXISTS events_created ON events (created);
DROP TABLE IF EXISTS meta;
"#;

/// Creates the upstream schema if missing, and adds the revision columns
/// that old databases lack.
fn create_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(UPSTREAM_SCHEMA).map_err(|e| sql_err(e).context("create schema"))?;
    for (table, column) in [("kv", "revision"), ("events", "kv_revision")] {
        if !has_column(conn, table, column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"))
                .map_err(|e| sql_err(e).context(format!("add column {table}.{column}")))?;
        }
    }
    Ok(())
}
