//! What a caller can tell apart about a backend's error, whatever the backend.

use std::fmt;

/// The kind of failure behind a [`StoreError`], the same words on every
/// backend, so callers (the tower-sessions adapter, retry loops) decide
/// without knowing which database they talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input was refused: an empty or over-long token, data over
    /// the size limit, a token the backend cannot store, a bad option.
    InvalidInput,
    /// Another connection or process holds a lock; retrying later may work.
    Busy,
    /// The connection to the database was lost (a server restart, a network
    /// failure); retrying later may work.
    ConnectionLost,
    /// The store was closed, or its storage went away under it (a deleted
    /// file); reopen the store.
    Closed,
    /// The operation was cancelled before it completed (its future dropped
    /// before the write started, a runtime shutting down). A statement
    /// timeout is [`Busy`](Self::Busy): retrying later may work.
    Cancelled,
    /// The table exists but does not have the session schema.
    Schema,
    /// The stored data is damaged.
    Corrupt,
    /// Storage failed: a file-system call, a full disk, a read-only medium.
    Io,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Busy => "busy",
            ErrorKind::ConnectionLost => "connection lost",
            ErrorKind::Closed => "closed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Schema => "schema mismatch",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "i/o",
            ErrorKind::Other => "other",
        })
    }
}

/// The error type of a [`SessionStore`](crate::SessionStore): a normal
/// error with its `source()` chain, plus its [`ErrorKind`].
pub trait StoreError: std::error::Error + Send + Sync + 'static {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;

    /// Whether the same call may succeed if tried again later without any
    /// change by the caller. By default: [`ErrorKind::Busy`] and
    /// [`ErrorKind::ConnectionLost`]; a backend may add cases (SQLite adds a
    /// full disk).
    fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Busy | ErrorKind::ConnectionLost)
    }
}

/// An error and its whole `source()` chain on one line, joined by ": ", for
/// logs, command-line messages and APIs that take a string (every backend's
/// messages leave the cause to `source()`, as the error conventions want).
///
/// ```
/// let err = std::io::Error::other("disk on fire");
/// assert_eq!(session_contract::error_chain(&err), "disk on fire");
/// ```
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
