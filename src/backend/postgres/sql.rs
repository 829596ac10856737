//! Errors of the postgres store in two levels: [`PgFailure`] is what
//! happened, exactly (a SQLSTATE and the server's message, or the client's
//! own failure), and [`pg_err`] maps it to the [`ErrorKind`] callers branch
//! on. [`retry_delay`] decides, at the same place, which failures are
//! retried inside the store and how soon.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::backend::{Error, ErrorKind};

/// Attempts of one operation when transactions conflict (serialization
/// failures, deadlocks): these always succeed eventually, so the budget is
/// generous.
pub const CONFLICT_ATTEMPTS: u32 = 20;
/// Attempts of an idempotent operation whose connection broke.
pub const BROKEN_ATTEMPTS: u32 = 3;

/// What failed, as told by the server or the client library.
#[derive(Debug)]
pub enum PgFailure<'a> {
    /// The server answered with an error.
    Server {
        /// The SQLSTATE.
        code: &'a SqlState,
        /// The server's message (with its detail when there is one).
        message: String,
    },
    /// The connection could not be made or was lost.
    Connection(String),
    /// Authentication failed before the server said why (for instance no
    /// password in the connection string when the server asks for one).
    Credentials(String),
    /// TLS could not be set up.
    Tls(String),
    /// Anything else the client reports (bad rows, encoding).
    Client(String),
}

/// The full text of an error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl<'a> PgFailure<'a> {
    /// Classifies a client error.
    pub fn of(e: &'a tokio_postgres::Error) -> PgFailure<'a> {
        if let Some(db) = e.as_db_error() {
            let mut message = db.message().to_string();
            if let Some(d) = db.detail() {
                message.push_str(" (");
                message.push_str(d);
                message.push(')');
            }
            return PgFailure::Server { code: db.code(), message };
        }
        let text = chain(e);
        if e.is_closed() {
            return PgFailure::Connection(text);
        }
        if text.starts_with("error performing TLS handshake") {
            return PgFailure::Tls(text);
        }
        if text.starts_with("authentication error") || text.contains("password missing") {
            return PgFailure::Credentials(text);
        }
        if text.starts_with("error connecting to server")
            || text.starts_with("error communicating with the server")
            || text.starts_with("timeout waiting for server")
            || has_io_source(e)
        {
            return PgFailure::Connection(text);
        }
        PgFailure::Client(text)
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        if c.is::<std::io::Error>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// True for the SQLSTATEs of transactions that lost a conflict.
pub fn is_conflict(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

/// Maps a client error to a backend error of the right kind, with a message
/// that says what the server said. The caller adds which store and which
/// operation.
pub fn pg_err(e: tokio_postgres::Error) -> Error {
    let (kind, message) = match PgFailure::of(&e) {
        PgFailure::Server { code, message } => {
            let kind = kind_of(code);
            let hint = hint_of(code);
            (kind, format!("{message} (SQLSTATE {}){hint}", code.code()))
        }
        PgFailure::Connection(m) => (ErrorKind::ConnectionProblem, m),
        PgFailure::Credentials(m) => {
            (ErrorKind::AccessDenied, format!("{m}; check the user and password in conn_string"))
        }
        PgFailure::Tls(m) => {
            (ErrorKind::ConnectionProblem, format!("{m}; check sslmode and sslrootcert in conn_string"))
        }
        PgFailure::Client(m) => (ErrorKind::Internal, m),
    };
    Error::new(kind, message)
}

fn kind_of(code: &SqlState) -> ErrorKind {
    let c = code.code();
    if is_conflict(code) || c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "55P03" {
        // Conflicts, connection exceptions, server shutting down or
        // starting, too many connections, lock not available: transient.
        return ErrorKind::ConnectionProblem;
    }
    if c.starts_with("28") || c == "42501" || c == "25006" {
        // Invalid authorization, insufficient privilege, read-only
        // transaction (a standby).
        return ErrorKind::AccessDenied;
    }
    match c {
        "23505" => ErrorKind::AlreadyExists,
        "3D000" => ErrorKind::NotFound,
        "54000" | "54001" | "22001" | "53200" => ErrorKind::LimitExceeded,
        "22P02" | "22023" | "55000" | "58P01" | "42704" => ErrorKind::BadParameter,
        _ => ErrorKind::Internal,
    }
}

fn hint_of(code: &SqlState) -> &'static str {
    match code.code() {
        "28P01" | "28000" => "; check the user and password in conn_string",
        "3D000" => "; create the database, or let the service create it (it needs CREATEDB)",
        "42501" => "; grant the role the privileges listed in docs/backends.md",
        "25006" => "; conn_string points at a read-only server (a standby?)",
        "53300" => "; the server has no free connection slots (raise max_connections or lower pool_max_conns)",
        _ => "",
    }
}

/// How long to wait before trying `attempt + 1`, or `None` to give up:
/// conflicts are retried at once the first time and then after a short,
/// growing, jittered pause; a broken connection only for idempotent
/// operations (a write may have been applied before the connection broke).
pub fn retry_delay(err: &tokio_postgres::Error, idempotent: bool, attempt: u32) -> Option<Duration> {
    match PgFailure::of(err) {
        PgFailure::Server { code, .. } if is_conflict(code) && attempt < CONFLICT_ATTEMPTS => {
            if attempt == 1 {
                return Some(Duration::ZERO);
            }
            let base = 5 * u64::from(attempt.min(10));
            Some(Duration::from_millis(base + jitter(base)))
        }
        PgFailure::Server { code, .. } if idempotent && attempt < BROKEN_ATTEMPTS => {
            let c = code.code();
            (c.starts_with("08") || c.starts_with("57P")).then(|| Duration::from_millis(100 * u64::from(attempt)))
        }
        PgFailure::Connection(_) if idempotent && attempt < BROKEN_ATTEMPTS => {
            Some(Duration::from_millis(100 * u64::from(attempt)))
        }
        _ => None,
    }
}

/// A pseudo-random number in `0..=max` (spreads out retries of transactions
/// that conflicted with each other).
fn jitter(max: u64) -> u64 {
    let n = uuid::Uuid::new_v4().as_u128() as u64;
    if max == 0 { 0 } else { n % (max + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of(&SqlState::T_R_SERIALIZATION_FAILURE), ErrorKind::ConnectionProblem);
        assert_eq!(kind_of(&SqlState::INVALID_PASSWORD), ErrorKind::AccessDenied);
        assert_eq!(kind_of(&SqlState::INSUFFICIENT_PRIVILEGE), ErrorKind::AccessDenied);
        assert_eq!(kind_of(&SqlState::UNIQUE_VIOLATION), ErrorKind::AlreadyExists);
        assert_eq!(kind_of(&SqlState::INVALID_CATALOG_NAME), ErrorKind::NotFound);
        assert_eq!(kind_of(&SqlState::PROGRAM_LIMIT_EXCEEDED), ErrorKind::LimitExceeded);
        assert_eq!(kind_of(&SqlState::ADMIN_SHUTDOWN), ErrorKind::ConnectionProblem);
        assert_eq!(kind_of(&SqlState::UNDEFINED_TABLE), ErrorKind::Internal);
    }
}
