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
pub use store::{Entry, Listed, Session, SessionStore};

/// The longest owner (see [`SessionStore::commit_owned`]) any backend
/// accepts, in bytes.
pub const MAX_OWNER_LEN: usize = 1024;

/// Why `owner` cannot be stored, or `None` when it can: empty, longer than
/// [`MAX_OWNER_LEN`], or holding a NUL byte (which PostgreSQL `TEXT`
/// refuses). Every backend checks owners with this.
#[must_use]
pub fn owner_problem(owner: &str) -> Option<String> {
    if owner.is_empty() {
        Some("the owner is empty".into())
    } else if owner.len() > MAX_OWNER_LEN {
        Some(format!(
            "the owner is {} bytes, over the limit of {MAX_OWNER_LEN}",
            owner.len()
        ))
    } else if owner.contains('\0') {
        Some("the owner holds a NUL byte".into())
    } else {
        None
    }
}
