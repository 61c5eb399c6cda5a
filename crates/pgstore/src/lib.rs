//! A session store in PostgreSQL that shares Go scs `postgresstore`'s table,
//! so a Go service and a Rust service can serve the same sessions.
//!
//! ```no_run
//! # async fn f() -> pgstore::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use pgstore::PgStore;
//!
//! // Cleanup every 5 minutes, as Go's New; the table is created when missing.
//! let store = PgStore::new("postgres://app@db.internal/app").await?;
//! store.commit("token", b"data", SystemTime::now() + Duration::from_secs(3600)).await?;
//! assert_eq!(store.find("token").await?, Some(b"data".to_vec()));
//! store.delete("token").await?;
//! # Ok(()) }
//! ```
//!
//! # The table
//! Go's, created by [`Builder::build`] when missing (under an advisory lock,
//! so replicas starting together create it once):
//! ```sql
//! CREATE TABLE sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
//! CREATE INDEX sessions_expiry_idx ON sessions (expiry);
//! ```
//! Tables from older copies of Go's README, with `expiry TIMESTAMP(6)`
//! (no time zone), work too: Go's scs wrote their expiries in UTC, so this
//! store reads and writes them as UTC and compares them with the database
//! clock in UTC (`current_timestamp AT TIME ZONE 'UTC'`), whatever the
//! connection's `TimeZone`. Any other shape fails with
//! [`Error::SchemaMismatch`] at open.
//!
//! # Semantics (Go's)
//! - A session is live while `current_timestamp < expiry`: the database's
//!   clock, one clock for every app server.
//! - [`commit`](PgStore::commit) is an upsert; [`delete`](PgStore::delete)
//!   of a missing token is not an error; [`all`](PgStore::all) returns the
//!   live sessions.
//! - [`create`](PgStore::create) stores a session unless a live one holds
//!   the token, in one statement (`INSERT ... ON CONFLICT DO UPDATE ...
//!   WHERE` the held row is expired), so of replicas racing for one token
//!   exactly one wins.
//! - Cleanup every 5 minutes by default ([`Builder::cleanup_interval`];
//!   `Duration::ZERO` disables it; [`PgStore::stop_cleanup`] stops it). An
//!   error is logged and the next tick tries again. Replicas take turns
//!   through an advisory lock and delete in short batches (`FOR UPDATE SKIP
//!   LOCKED`) under a statement timeout; see [`PgStore::delete_expired`].
//!
//! [`BlockingPgStore`] ([`Builder::build_blocking`]) is the same store for
//! synchronous code, on a runtime of its own.
//!
//! # Why deadpool-postgres
//! The store needs an async pool of tokio-postgres connections that keeps
//! each connection's prepared statements. deadpool-postgres is exactly
//! that: built for tokio-postgres, with a per-connection statement cache
//! (`prepare_cached`, so every statement is parsed once per connection), a
//! cheap recycle check (`is_closed`, so connections broken by a server
//! restart are replaced rather than handed out), and separate wait and
//! create timeouts that map onto [`Error::PoolTimeout`] and
//! [`Error::Connect`]. bb8 would need our own statement cache; sqlx's pool
//! would bring a second PostgreSQL driver.
//!
//! # Requirements
//! PostgreSQL 11 or later (advisory lock keys use `hashtextextended`). The
//! database user
//! needs SELECT, INSERT, UPDATE and DELETE on the table, and CREATE on the
//! schema only if the store is to create the table.
//!
//! # TLS
//! The connection string's `sslmode` and `sslrootcert` work as in libpq,
//! on rustls: `disable`, `prefer` (the default), `require`, `verify-ca` and
//! `verify-full`; see [`SslMode`] for what each one checks. Across a
//! network you do not control, use
//! `?sslmode=verify-full&sslrootcert=/path/to/ca.pem`: `require` encrypts
//! but accepts any certificate. TLS failures are [`Error::Tls`], with a
//! [`TlsFailure`] saying why (no TLS offered, untrusted certificate, host
//! name mismatch).
//!
//! # Errors
//! [`Error::is_retryable`] is true for a busy server (lock or statement
//! timeout, serialization failure, too many connections), an exhausted
//! pool, and a lost or refused connection, as `Busy` is on sqlite3store.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod blocking;
mod builder;
mod cleanup;
mod contract;
mod error;
mod schema;
mod store;
mod tls;

pub use blocking::BlockingPgStore;
pub use builder::{Builder, MAX_DATA_LEN_LIMIT};
pub use cleanup::CleanupReport;
pub use error::{error_chain, Error, Result};
pub use session_contract::{Entry, Listed, Session};
pub use store::{PgStore, Stats};
pub use tls::{SslMode, TlsFailure};
/// The PostgreSQL driver this crate is built on, for
/// [`PgStore::builder_from_config`].
pub use tokio_postgres;
