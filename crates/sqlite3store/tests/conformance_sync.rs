//! The conformance suite against the synchronous `SqliteStore`.

mod common;

conformance!(sqlite3store::SqliteStore);
