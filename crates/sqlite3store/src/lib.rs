//! A session store in SQLite, file-compatible with Go's scs `sqlite3store`.
//!
//! ```
//! # fn main() -> sqlite3store::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use sqlite3store::SqliteStore;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("sessions.db");
//! let store = SqliteStore::new(&path)?; // cleanup every 5 minutes, as Go's New
//! store.commit("token", b"data", SystemTime::now() + Duration::from_secs(3600))?;
//! assert_eq!(store.find("token")?, Some(b"data".to_vec()));
//! assert_eq!(store.all()?.len(), 1);
//! store.delete("token")?;
//! assert_eq!(store.find("token")?, None);
//! # Ok(()) }
//! ```
//!
//! # Design
//! - One table, exactly Go's: `token TEXT PRIMARY KEY, data BLOB NOT NULL,
//!   expiry REAL NOT NULL` with an index on `expiry`, expiry a Julian day
//!   number in UTC. A file written by Go's package works here and back.
//! - WAL mode; one writer thread that owns the write connection, with
//!   group commit (writes queued together share a transaction); a pool of
//!   read-only connections, so reads never wait for writes.
//! - Cleanup in bounded batches on a background thread that holds only a
//!   weak reference, survives errors, and ends with the store; WAL
//!   checkpoints on a thread of their own, off the commit path.
//! - [`AsyncSqliteStore`] (feature `tokio`, on by default) runs the same
//!   store: writes are awaited from the writer thread (no thread waits per
//!   pending write), reads run in place or on tokio's blocking pool, with
//!   separate bounds on the reads and the writes in flight.
//!
//! See [`Durability`] for what an acknowledged commit survives.
//!
//! # Modules
//!
//! Each concern has one home, and imports run one way (top to bottom; no
//! module imports one above it):
//!
//! ```text
//! contract      the session-contract traits over both fronts
//! async_store   the async front: awaited writes, reads in place or on the blocking pool
//! store         public types (SqliteStore, Stats), opening, reads, writes
//! builder       public options; turns them into the narrow options below
//! cleanup       cleanup pacing (its doc explains every constant), its thread
//! writer        the writer thread, its bounded queue and group commit
//! wal           WAL size tracking, the checkpoint thread (WalOptions)
//! connection    every connection open, PRAGMAs, header check, file identity
//! schema        every SQL statement and PRAGMA name; schema create/verify
//! pool          read-only connections
//! gate          the async front's bounds, owned by the store
//! background    background threads and their handles
//! reply         the one-shot answer from the writer (blocked on or awaited)
//! error, clock, hash, julian   leaves
//! ```
//!
//! For example `store` imports `cleanup`, `wal`, `writer` and `connection`;
//! `cleanup` imports `writer` and `wal`; `writer` imports `wal`,
//! `connection` and `reply`; `wal` imports `connection`; `connection` imports only
//! `schema` and `error`.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod async_store;
mod background;
mod builder;
mod cleanup;
mod clock;
mod connection;
pub mod contract;
mod error;
#[cfg(feature = "tokio")]
mod gate;
mod hash;
mod julian;
mod pool;
mod reply;
mod schema;
mod store;
mod wal;
mod writer;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_store::{AsyncSqliteStore, InFlight};
pub use builder::{Builder, Durability, MAX_DATA_LEN_LIMIT, MIN_FILE_SIZE};
pub use cleanup::CleanupReport;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{error_chain, Error, Result};
pub use session_contract::{Entry, Listed, Session, TokenHasher, MAX_OWNER_LEN};
pub use store::{SqliteStore, Stats};

/// Converts between `SystemTime` and the Julian day numbers stored in the
/// `expiry` column, exactly as SQLite's `julianday()` does.
pub mod julian_day {
    use std::time::SystemTime;

    /// The Julian day number stored for `t` (millisecond precision, clamped
    /// to the years 0000 to 9999).
    #[must_use]
    pub fn from_system_time(t: SystemTime) -> f64 {
        crate::julian::to_julian(t)
    }

    /// The time a stored Julian day number stands for.
    #[must_use]
    pub fn to_system_time(jd: f64) -> SystemTime {
        crate::julian::from_julian(jd)
    }
}
