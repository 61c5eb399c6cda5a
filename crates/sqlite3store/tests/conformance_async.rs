//! The conformance suite against `AsyncSqliteStore` on a current-thread
//! runtime.

mod common;

conformance!(common::AsyncFront);
