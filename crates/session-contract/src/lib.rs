//! The contract every session store backend in this workspace implements
//! (SQLite, PostgreSQL): the [`SessionStore`] trait with its [`Session`] and
//! [`Listed`] values, typed error kinds ([`ErrorKind`], [`StoreError`]), and
//! the [`TokenHasher`] that keeps tokens hashed at rest the same way on
//! every backend.
//!
//! With the `conformance` feature, `conformance` holds the one test suite
//! every backend runs (Go scs's store tests, ported, plus this workspace's
//! extras).
//!
//! Code written against [`SessionStore`] serves any backend:
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use session_contract::SessionStore;
//!
//! /// Logs a session out, whatever the database.
//! async fn log_out<S: SessionStore>(store: &S, token: &str) -> Result<bool, S::Error> {
//!     store.delete(token).await
//! }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod hash;
mod store;

pub use error::{error_chain, ErrorKind, StoreError};
pub use hash::TokenHasher;
pub use store::{Listed, Session, SessionStore};
