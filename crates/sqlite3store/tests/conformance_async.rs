//! The conformance suite against `AsyncSqliteStore` on a current-thread
//! runtime.

mod common;
mod support;

conformance!(support::AsyncFront);
