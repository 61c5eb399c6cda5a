//! What every PostgreSQL test needs: the server's address (or a reason to
//! skip), a private table name, and a plain client that goes behind the
//! store's back.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `PGSTORE_TEST_URL`, set by scripts/pg-test-server.sh (which scripts/test.sh
/// wraps around `cargo test`). Unset: under CI the test fails; locally it is
/// skipped with a message saying how to run it.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("PGSTORE_TEST_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: PGSTORE_TEST_URL is not set under CI; run through scripts/test.sh")
        }
        _ => {
            skip(&format!(
                "{test}: PGSTORE_TEST_URL is not set \
                 (run `bash scripts/pg-test-server.sh run cargo test -p pgstore`)"
            ));
            None
        }
    }
}

/// Says why a test is skipped, past libtest's output capture (which only
/// takes `print!`/`eprint!`), so it shows in a plain `cargo test`.
pub fn skip(why: &str) {
    use std::io::Write as _;
    // Nothing to do if stderr is gone.
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// The server URL, or return `Ok(())` from the test (skipped, see [`url`]).
#[macro_export]
macro_rules! pg_url {
    () => {
        match support::url(module_path!()) {
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
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    format!("t_{tag}_{}_{n}_{nanos}", std::process::id())
}

/// A plain connection, for setting up and checking rows directly.
pub async fn raw_client(url: &str) -> TestResult<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped.
        if let Err(err) = conn.await {
            eprintln!("raw test connection ended: {err}");
        }
    });
    Ok(client)
}

/// Rows in `table`, live or expired.
pub async fn count_rows(client: &tokio_postgres::Client, table: &str) -> TestResult<u64> {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
        .await?
        .get(0);
    Ok(u64::try_from(n)?)
}

pub async fn drop_table(client: &tokio_postgres::Client, table: &str) -> TestResult {
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await?;
    Ok(())
}
