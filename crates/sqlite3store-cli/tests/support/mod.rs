//! What the PostgreSQL tests of the CLI need: the server (or a reason to
//! skip), a private table, a runtime for the library calls, the binary.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use assert_cmd::Command;

pub type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// `PGSTORE_TEST_URL`, set by scripts/pg-test-server.sh. Unset: under CI the
/// test fails; locally it is skipped with a message saying how to run it.
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var("PGSTORE_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: PGSTORE_TEST_URL is not set under CI; run through scripts/test.sh")
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: PGSTORE_TEST_URL is not set (run `bash \
                 scripts/pg-test-server.sh run cargo test -p sqlite3store-cli`)"
            );
            None
        }
    }
}

/// The server's conninfo, or return `Ok(())` from the test (skipped).
#[macro_export]
macro_rules! pg_url {
    ($test:expr) => {
        match support::pg_url($test) {
            Some(url) => url,
            None => return Ok(()),
        }
    };
}

/// A table name no other test (in this process or another) uses.
pub fn unique_table(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("cli_{tag}_{}_{n}_{nanos}", std::process::id())
}

/// A runtime for the library calls a test makes itself.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The `sqlite3store` binary, with the environment not pointing elsewhere.
pub fn bin() -> Result<Command> {
    let mut cmd = Command::cargo_bin("sqlite3store")?;
    cmd.env_remove("SQLITE3STORE_DB")
        .env_remove("SQLITE3STORE_LOG");
    Ok(cmd)
}

/// Drops `table` (the tests' tables do not outlive them).
pub async fn drop_table(url: &str, table: &str) -> Result {
    let (client, conn) =
        pgstore::tokio_postgres::connect(url, pgstore::tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await?;
    drop(client);
    conn.await??;
    Ok(())
}

/// Whether `table` exists.
pub async fn table_exists(url: &str, table: &str) -> Result<bool> {
    let (client, conn) =
        pgstore::tokio_postgres::connect(url, pgstore::tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("\"{table}\"")],
        )
        .await?
        .get(0);
    drop(client);
    conn.await??;
    Ok(exists)
}
