//! tower-sessions' own conformance suite (`route_tests!` from its
//! `tests/common/mod.rs`, the cases every backend runs), against our store
//! on SQLite and, when `PGSTORE_TEST_URL` names a server, on PostgreSQL.
//!
//! The suite is not copied here: `build.rs` finds it in the cargo registry,
//! where cargo puts tower-sessions 0.15 as this crate's dev-dependency. This
//! crate is not published, so no user's build of the adapter runs that
//! search.

#[cfg(tower_sessions_suite)]
#[macro_use]
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod common {
    include!(env!("TOWER_SESSIONS_COMMON"));
}

#[cfg(tower_sessions_suite)]
#[allow(clippy::all)]
mod sqlite3store_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use axum::Router;
    use tower_sessions::SessionManagerLayer;
    use tower_sessions_sqlite3store::sqlite3store::SqliteStore;
    use tower_sessions_sqlite3store::SqliteSessionStore;

    use crate::common::build_app;

    /// A fresh store per app, in a temp dir that lives as long as the test
    /// process: the suite's apps may outlive the router that built them, and
    /// the store refuses to write once its file is deleted.
    async fn app(max_age: Option<Duration>, domain: Option<String>) -> Router {
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
        let file = format!("sessions-{}.db", NEXT.fetch_add(1, Ordering::Relaxed));
        let builder =
            SqliteStore::builder(dir.path().join(file)).cleanup_interval(std::time::Duration::ZERO);
        let store = SqliteSessionStore::new(builder.build_async().await.expect("open store"));
        let session_manager = SessionManagerLayer::new(store).with_secure(true);
        build_app(session_manager, max_age, domain)
    }

    route_tests!(app);
}

/// The same suite on PostgreSQL: `PgStore` through the generic adapter, on
/// the server `PGSTORE_TEST_URL` names (scripts/pg-test-server.sh sets it).
#[cfg(all(tower_sessions_suite, pgstore_test_url))]
#[allow(clippy::all)]
mod pgstore_tests {
    use axum::Router;
    use pgstore::PgStore;
    use tower_sessions::SessionManagerLayer;
    use tower_sessions_contract::ContractStore;

    use crate::common::build_app;

    /// Every app shares one table (its sessions have distinct ids); the
    /// table is created at the first open, under the store's advisory lock.
    const TABLE: &str = "tower_sessions_suite";

    async fn app(max_age: Option<Duration>, domain: Option<String>) -> Router {
        let url = std::env::var("PGSTORE_TEST_URL")
            .expect("PGSTORE_TEST_URL was set when this test was built; set it to run it");
        let store = PgStore::builder(&url)
            .table(TABLE)
            .cleanup_interval(std::time::Duration::ZERO)
            .build()
            .await
            .expect("open the PostgreSQL store");
        let session_manager = SessionManagerLayer::new(ContractStore::new(store)).with_secure(true);
        build_app(session_manager, max_age, domain)
    }

    route_tests!(app);
}

/// Without a PostgreSQL server the suite's run on it is not built: under
/// `CI` that fails, locally it is a skip that says why.
#[cfg(all(tower_sessions_suite, not(pgstore_test_url)))]
#[test]
fn tower_sessions_suite_on_postgres() {
    let why = "PGSTORE_TEST_URL is not set, so tower-sessions' suite was not built for PostgreSQL; \
               run `bash scripts/pg-test-server.sh run cargo test -p tower-sessions-sqlite3store-tests`";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED tower-sessions' suite on PostgreSQL: {why}");
}

/// Without the suite there is nothing to run: under `CI` that fails, locally
/// it is a skip that says why.
#[cfg(not(tower_sessions_suite))]
#[test]
fn tower_sessions_suite_found() {
    let why = "tower-sessions' tests/common/mod.rs (the version in Cargo.lock) was not found in the \
               cargo registry; run `cargo fetch`, or set TOWER_SESSIONS_COMMON_RS to the file's path";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED tower-sessions' suite: {why}");
}
