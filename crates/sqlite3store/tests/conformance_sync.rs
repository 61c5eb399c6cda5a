//! `session_contract`'s conformance suite against the synchronous
//! `SqliteStore`, called inline through a thin wrapper.

mod common;

session_contract::conformance_tests!(common::harness::SyncHarness);
