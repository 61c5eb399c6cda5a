//! The crate's error type.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Errors returned by this crate.
///
/// Messages are short and lowercase; the underlying cause, where there is one,
/// is available through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file could not be opened (missing directory, a directory
    /// in place of the file, no permission, ...).
    #[error("cannot open session database {path:?}")]
    Open {
        /// The path that was given.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not a SQLite database.
    #[error("file is not a SQLite database")]
    NotADatabase(#[source] rusqlite::Error),
    /// The database file is damaged (truncated, corrupted pages).
    #[error("session database is corrupt")]
    Corrupt(#[source] rusqlite::Error),
    /// The table exists but does not have the session schema, or is missing
    /// from a read-only database.
    #[error("table {table:?} does not have the session schema: {reason}")]
    SchemaMismatch {
        /// The table that was checked.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value is out of range or malformed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// `commit` was given an empty token.
    #[error("session token is empty")]
    EmptyToken,
    /// `commit` was given a token longer than the configured maximum.
    #[error("session token is {len} bytes, over the limit of {max}")]
    TokenTooLong {
        /// The token's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// `commit` was given data larger than the configured maximum.
    #[error("session data is {len} bytes, over the limit of {max}")]
    DataTooLarge {
        /// The data's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An owner (`commit_owned`, ...) was empty, over
    /// [`MAX_OWNER_LEN`](crate::MAX_OWNER_LEN) bytes, or held a NUL byte.
    #[error("invalid session owner: {0}")]
    InvalidOwner(String),
    /// The store was opened read-only, or the file cannot be written.
    #[error("session database is read-only")]
    ReadOnly(#[source] Option<rusqlite::Error>),
    /// Another connection held the database lock longer than the busy
    /// timeout. Retrying later may succeed.
    #[error("session database is busy (locked by another connection)")]
    Busy(#[source] rusqlite::Error),
    /// The disk (or the configured page limit) is full. Finds keep working;
    /// commits work again once space is freed.
    #[error("session database is full")]
    DiskFull(#[source] rusqlite::Error),
    /// The database file was deleted or replaced at its path while the store
    /// had it open; writes are refused rather than go to the orphaned file,
    /// and once the store has seen this, reads are refused too (so they never
    /// answer from two different files). Reopen the store.
    #[error("session database {path:?} was deleted or replaced while open")]
    FileReplaced {
        /// The path the store opened.
        path: PathBuf,
    },
    /// The write was abandoned because the writer panicked while running its
    /// batch (a bug: please report it). The store keeps working.
    #[error("session write abandoned: the writer panicked")]
    WriterPanicked,
    /// An async write's future was dropped before the writer started it, so
    /// it was not applied. Only the abandoned call itself sees this.
    #[error("session write cancelled before it was applied")]
    Cancelled,
    /// The store was closed ([`SqliteStore::close`](crate::SqliteStore::close),
    /// through this handle's clone or on drop).
    #[error("session store is closed")]
    Closed,
    /// Any other SQLite failure.
    #[error("sqlite operation failed")]
    Sqlite(#[source] rusqlite::Error),
    /// A file-system call outside SQLite failed (file size for stats, ...).
    #[error("i/o on the session database failed")]
    Io(#[from] std::io::Error),
    /// A background thread could not be started.
    #[error("cannot start the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
    /// The blocking task running an async operation panicked or was cancelled
    /// by the runtime shutting down.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[error("async session operation did not complete")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Whether the same call may succeed if tried again later without any
    /// change by the caller (a lock held by another process, a full disk).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Busy(_) | Error::DiskFull(_))
    }
}

impl From<rusqlite::Error> for Error {
    /// Sorts a SQLite error into the variant a caller can act on.
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy(err),
            Some(ErrorCode::DiskFull) => Error::DiskFull(err),
            Some(ErrorCode::ReadOnly) => Error::ReadOnly(Some(err)),
            Some(ErrorCode::NotADatabase) => Error::NotADatabase(err),
            Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt(err),
            _ => Error::Sqlite(err),
        }
    }
}

/// An error and its whole `source()` chain on one line, joined by ": ", for
/// logs and command-line messages (`Display` shows only the outermost
/// message, as the error conventions want).
///
/// ```
/// let err = sqlite3store::Error::Io(std::io::Error::other("disk on fire"));
/// assert_eq!(sqlite3store::error_chain(&err), "i/o on the session database failed: disk on fire");
/// ```
pub use session_contract::error_chain;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn sqlite_errors_are_sorted_and_keep_their_source() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        let err = Error::from(busy);
        assert!(matches!(err, Error::Busy(_)));
        assert!(err.is_retryable());
        assert!(err.source().is_some());

        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(matches!(Error::from(full), Error::DiskFull(_)));

        let other = rusqlite::Error::InvalidQuery;
        let err = Error::from(other);
        assert!(matches!(err, Error::Sqlite(_)));
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "sqlite operation failed");
    }
}
