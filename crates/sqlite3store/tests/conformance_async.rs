//! `session_contract`'s conformance suite against `AsyncSqliteStore`, on
//! tokio's current-thread runtime: the strictest setting, where any blocking
//! call would stall the only worker.

mod common;

session_contract::conformance_tests!(common::harness::AsyncHarness);
