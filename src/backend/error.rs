//! Backend errors: one error type carrying a kind that callers branch on
//! (retry logic, `tctl create`, clone) and a message that says what failed and
//! where. Stores map their client errors into these kinds in their own file.

use std::fmt;

/// What went wrong, in the terms callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key is missing or expired (Get, Update, Delete, KeepAlive).
    NotFound,
    /// A live item already holds the key (Create).
    AlreadyExists,
    /// A value, revision or atomic-write condition did not match.
    CompareFailed,
    /// The request is malformed (empty key, invalid atomic write, bad config).
    BadParameter,
    /// The store could not be reached or answered with a transient failure;
    /// retrying may help.
    ConnectionProblem,
    /// The request exceeds a limit of the store (item size, key length,
    /// request size, number of actions).
    LimitExceeded,
    /// The backend or watcher was closed.
    Closed,
    /// Permission denied by the store or the file system.
    AccessDenied,
    /// Anything else: corrupt data, unexpected answers, local I/O errors.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::CompareFailed => "compare failed",
            ErrorKind::BadParameter => "bad parameter",
            ErrorKind::ConnectionProblem => "connection problem",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Closed => "closed",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(s)
    }
}

/// A backend error: a kind, a message naming the store and key, and the
/// underlying cause when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias for backend operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    /// Attaches the underlying cause. Its text is appended to the message so
    /// that a one-line display tells the whole story.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.message = format!("{}: {}", self.message, source);
        self.source = Some(Box::new(source));
        self
    }

    /// Prefixes the message with context (`"sqlite /var/lib/...: "`).
    pub fn context(mut self, ctx: impl fmt::Display) -> Error {
        self.message = format!("{ctx}: {}", self.message);
        self
    }

    /// The kind callers branch on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True if retrying the same request may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind == ErrorKind::ConnectionProblem
    }

    /// Shorthand for `kind() == NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Shorthand for `kind() == AlreadyExists`.
    pub fn is_already_exists(&self) -> bool {
        self.kind == ErrorKind::AlreadyExists
    }

    /// Shorthand for `kind() == CompareFailed`.
    pub fn is_compare_failed(&self) -> bool {
        self.kind == ErrorKind::CompareFailed
    }

    /// `key` is missing or expired.
    pub fn not_found(key: &super::Key) -> Error {
        Error::new(ErrorKind::NotFound, format!("key {key:?} is not found"))
    }

    /// `key` is held by a live item.
    pub fn already_exists(key: &super::Key) -> Error {
        Error::new(ErrorKind::AlreadyExists, format!("key {key:?} already exists"))
    }

    /// A malformed request.
    pub fn bad_parameter(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadParameter, message)
    }

    /// The stored revision of `key` differs from the one given (or the key is
    /// missing): upstream's `ErrIncorrectRevision`.
    pub fn incorrect_revision(key: &super::Key) -> Error {
        Error::new(
            ErrorKind::CompareFailed,
            format!(
                "key {key:?} was concurrently modified or deleted (its revision changed since it was read); \
                 read it again and retry, or use --force to overwrite"
            ),
        )
    }

    /// An atomic write's condition failed: upstream's `ErrConditionFailed`.
    pub fn condition_failed() -> Error {
        Error::new(
            ErrorKind::CompareFailed,
            "one or more resources were concurrently created, modified or deleted; please try again",
        )
    }

    /// The backend has been closed.
    pub fn closed(what: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Closed, format!("{what} is closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_context_make_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::new(ErrorKind::AccessDenied, "open /x/sqlite.db").with_source(io).context("sqlite /x");
        assert_eq!(e.to_string(), "sqlite /x: open /x/sqlite.db: denied");
        assert_eq!(e.kind(), ErrorKind::AccessDenied);
        assert!(std::error::Error::source(&e).is_some());
        assert!(!e.is_temporary());
        assert!(Error::new(ErrorKind::ConnectionProblem, "x").is_temporary());
    }
}
