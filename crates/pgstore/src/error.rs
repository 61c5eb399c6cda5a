//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;

use crate::tls::{self, TlsFailure};

/// Errors returned by this crate.
///
/// Messages are short and lowercase; the underlying cause, where there is
/// one, is available through [`std::error::Error::source`].
/// [`is_retryable`](Error::is_retryable) tells which ones may go away by
/// themselves (a busy or restarting server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or malformed (including a
    /// connection string that does not parse, and a bad table name).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// `commit` or `create` was given an empty token.
    #[error("session token is empty")]
    EmptyToken,
    /// `commit` or `create` was given a token holding a NUL byte, which a
    /// PostgreSQL `TEXT` column cannot store.
    #[error("session token holds a NUL byte")]
    NulInToken,
    /// `commit` or `create` was given a token longer than the configured
    /// maximum.
    #[error("session token is {len} bytes, over the limit of {max}")]
    TokenTooLong {
        /// The token's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// `commit` or `create` was given data larger than the configured
    /// maximum.
    #[error("session data is {len} bytes, over the limit of {max}")]
    DataTooLarge {
        /// The data's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An owner (`commit_owned`, ...) was empty, over
    /// [`session_contract::MAX_OWNER_LEN`] bytes, or held a NUL byte.
    #[error("invalid session owner: {0}")]
    InvalidOwner(String),
    /// The table exists but does not have the session schema, or is missing
    /// and the store was told not to create it.
    #[error("table {table} does not have the session schema: {reason}")]
    SchemaMismatch {
        /// The table that was checked, as quoted in SQL.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection to the server could be made (unreachable, refused,
    /// shutting down, or no answer within the connect timeout). Retryable.
    #[error("cannot connect to the session database")]
    Connect(#[source] Option<tokio_postgres::Error>),
    /// The connection broke during the operation (server restart, network
    /// failure). The operation may or may not have taken effect; retrying it
    /// is safe for every operation of this store. Retryable.
    #[error("connection to the session database was lost")]
    ConnectionLost(#[source] tokio_postgres::Error),
    /// The server refused for now: a lock or statement timeout, a
    /// serialization failure or deadlock, too many connections. Retryable.
    #[error("session database is busy")]
    Busy(#[source] tokio_postgres::Error),
    /// Every pooled connection stayed in use for the whole wait timeout.
    /// Retryable.
    #[error("no session database connection became free within {0:?}")]
    PoolTimeout(Duration),
    /// TLS with the server failed: see [`TlsFailure`] for why. Not
    /// retryable: the server's certificate or the store's settings must
    /// change.
    #[error("tls with the session database failed: {kind}")]
    Tls {
        /// What failed.
        kind: TlsFailure,
        /// tokio-postgres's error, with rustls's below it.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The root certificate file (`sslrootcert`,
    /// [`Builder::ssl_root_cert`](crate::Builder::ssl_root_cert)) cannot be
    /// read or holds no usable PEM certificate.
    #[error("cannot use the root certificate file {path:?}: {reason}")]
    RootCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused this client at connect (SQLSTATE class 28): no
    /// `pg_hba.conf` entry matches (for example, the server takes only TLS
    /// connections and this one is plain), or the password is wrong. Not
    /// retryable.
    #[error("the session database refused the connection")]
    Rejected(#[source] tokio_postgres::Error),
    /// The store was closed.
    #[error("session store is closed")]
    Closed,
    /// A [`BlockingPgStore`](crate::BlockingPgStore) call was made from
    /// inside an async runtime, where blocking would stall it; use
    /// [`PgStore`](crate::PgStore) there.
    #[error("blocking session store called inside an async runtime")]
    BlockingInAsync,
    /// The runtime of a [`BlockingPgStore`](crate::BlockingPgStore) could
    /// not be started.
    #[error("cannot start the session store's runtime")]
    Runtime(#[source] std::io::Error),
    /// Any other PostgreSQL failure.
    #[error("postgres operation failed")]
    Postgres(#[source] tokio_postgres::Error),
}

impl Error {
    /// Whether the same call may succeed if tried again later without any
    /// change by the caller: [`Busy`](Error::Busy),
    /// [`PoolTimeout`](Error::PoolTimeout), [`Connect`](Error::Connect) and
    /// [`ConnectionLost`](Error::ConnectionLost).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy(_) | Error::PoolTimeout(_) | Error::Connect(_) | Error::ConnectionLost(_)
        )
    }

    /// Sorts a pool error; `wait` is the pool's wait timeout, for the message.
    pub(crate) fn from_pool(err: PoolError, wait: Duration) -> Self {
        match err {
            PoolError::Timeout(TimeoutType::Wait) => Error::PoolTimeout(wait),
            PoolError::Timeout(_) => Error::Connect(None),
            PoolError::Backend(e) if tls::classify(&e).is_some() || is_rejection(&e) => {
                match tls::classify(&e) {
                    Some(kind) => Error::Tls { kind, source: e },
                    None => Error::Rejected(e),
                }
            }
            PoolError::Backend(e) => match Error::from(e) {
                // No connection, or the server cannot take one now (too many
                // connections, starting up): a connect failure, retryable.
                Error::ConnectionLost(e) | Error::Busy(e) => Error::Connect(Some(e)),
                Error::Postgres(e) if e.code().is_none() => Error::Connect(Some(e)),
                // The server refused for good (bad password, no such
                // database): retrying will not help.
                other => other,
            },
            PoolError::Closed => Error::Closed,
            // Neither can happen: the pool has a runtime and no hooks.
            PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => Error::Connect(None),
        }
    }
}

/// SQLSTATE class 28, invalid authorization: no `pg_hba.conf` entry, a
/// wrong password.
fn is_rejection(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|c| c.code().starts_with("28"))
}

impl From<tokio_postgres::Error> for Error {
    /// Sorts a PostgreSQL error into the variant a caller can act on.
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(code) = err.code() else {
            // No SQLSTATE: a client-side failure. Broken sockets and closed
            // connections are connection losses; anything else (a type
            // mismatch) is a plain failure.
            let io = std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>());
            return if err.is_closed() || io {
                Error::ConnectionLost(err)
            } else {
                Error::Postgres(err)
            };
        };
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            Error::Busy(err)
        } else if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08")
        {
            // 08xxx: connection exceptions.
            Error::ConnectionLost(err)
        } else {
            Error::Postgres(err)
        }
    }
}

/// An error and its whole `source()` chain on one line, joined by ": ", for
/// logs and command-line messages (the contract's, re-exported).
pub use session_contract::error_chain;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
