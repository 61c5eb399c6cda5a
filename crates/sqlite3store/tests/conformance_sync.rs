//! The conformance suite against the synchronous `SqliteStore`.

mod common;
mod support;

conformance!(sqlite3store::SqliteStore);
