//! A [tower-sessions] store that keeps sessions in a SQLite file through
//! [`sqlite3store`]: group commit, reads that never wait for writes, expiry
//! in Go scs' format, and cleanup that survives errors.
//!
//! [tower-sessions]: https://docs.rs/tower-sessions/0.15
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, http::Request, http::StatusCode, routing::get, Router};
//! use tower::ServiceExt as _;
//! use tower_sessions::{Expiry, Session, SessionManagerLayer};
//! use tower_sessions_sqlite3store::SqliteSessionStore;
//!
//! async fn count_visits(session: Session) -> Result<String, StatusCode> {
//!     let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
//!     let visits = session.get::<u64>("visits").await.map_err(fail)?.unwrap_or(0) + 1;
//!     session.insert("visits", visits).await.map_err(fail)?;
//!     Ok(format!("visit number {visits}"))
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("sessions.db");
//! // Creates the file on first use; expired sessions are deleted every 5 minutes.
//! let store = SqliteSessionStore::open(&path).await?;
//! let sessions = SessionManagerLayer::new(store.clone())
//!     .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
//! let app = Router::new().route("/", get(count_visits)).layer(sessions);
//!
//! // `axum::serve(listener, app)` would serve it; here, one request:
//! let response = app.oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert!(response.headers().contains_key("set-cookie"));
//! assert_eq!(store.inner().stats().await?.active, 1);
//! # Ok(()) }
//! ```
//!
//! # Storage
//! One row per session in Go scs' `sessions` table: the token is the session
//! id as tower-sessions prints it (an HMAC of it with
//! [`hash_tokens`](sqlite3store::Builder::hash_tokens)), `data` the record's
//! data and expiry date in MessagePack, without the id, `expiry` the record's
//! expiry date. With hashing on, the file therefore holds no session id.
//! All the SQL is in `sqlite3store`; see [`sqlite3store::Builder`] for its
//! options (durability, size limits, the cleanup interval, a test clock) and
//! [`SqliteSessionStore::open`] for how to use them. The adapter itself is
//! [`ContractStore`], shared with every backend of the workspace.
//!
//! # Cleanup
//! The core store deletes expired sessions on a background thread (every 5
//! minutes by default), so nothing more is needed. If you would rather run
//! cleanup on the tokio runtime, open the store with
//! `cleanup_interval(Duration::ZERO)` and either
//! - [`spawn_cleanup_task`], which logs a failed run and tries again at the
//!   next tick, until its [`CleanupTask`] handle is stopped or dropped; or
//! - tower-sessions' own
//!   [`ExpiredDeletion::continuously_delete_expired`](tower_sessions_core::ExpiredDeletion::continuously_delete_expired),
//!   which works too but ends at the first error.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod store;

pub use store::SqliteSessionStore;
pub use tower_sessions_contract::{spawn_cleanup_task, CleanupTask, ContractStore};

/// The adapter shared by every backend, re-exported for its error type.
pub use tower_sessions_contract;

/// The core store, re-exported for its builder, clock and error types.
pub use sqlite3store;

// Compiles every Rust example of the project's README as a doctest (this
// crate depends on everything they use).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
