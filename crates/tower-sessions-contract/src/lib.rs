//! A [tower-sessions] store over any backend of the workspace's shared
//! contract ([`session_contract::SessionStore`]): SQLite through
//! `sqlite3store`, PostgreSQL through `pgstore`. One adapter, so every
//! backend gets the same record layout, the same collision-safe `create`
//! and the same error mapping.
//!
//! [tower-sessions]: https://docs.rs/tower-sessions/0.15
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use session_contract::SessionStore;
//! use tower_sessions_contract::ContractStore;
//!
//! /// Any backend becomes a tower-sessions store.
//! fn layer<S: SessionStore + Clone + std::fmt::Debug>(
//!     backend: S,
//! ) -> tower_sessions::SessionManagerLayer<ContractStore<S>> {
//!     tower_sessions::SessionManagerLayer::new(ContractStore::new(backend))
//! }
//! ```
//!
//! `tower-sessions-sqlite3store`'s `SqliteSessionStore` is this store over
//! `sqlite3store::AsyncSqliteStore`, with SQLite's constructors.
//!
//! # Cleanup
//! Backends delete expired sessions on their own schedule. To run cleanup on
//! the tokio runtime instead, turn the backend's off and use either
//! - [`spawn_cleanup_task`], which logs a failed run and tries again at the
//!   next tick, until its [`CleanupTask`] handle is stopped or dropped; or
//! - tower-sessions' own
//!   [`ExpiredDeletion::continuously_delete_expired`](tower_sessions_core::ExpiredDeletion::continuously_delete_expired),
//!   which works too but ends at the first error.

mod cleanup;
mod record;
mod store;
mod throttle;

pub use cleanup::{spawn_cleanup_task, CleanupTask};
pub use store::ContractStore;

/// Errors returned by this crate (its own; the store's calls return
/// tower-sessions' errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An [expiry write threshold](ContractStore::with_expiry_write_threshold)
    /// outside `0.0..1.0` (NaN included).
    #[error("the expiry write threshold must be at least 0 and below 1, got {0}")]
    InvalidThreshold(f64),
}
