//! Bad input and bad options: each a typed error, never a panic or a hang.

mod support;

use std::time::{Duration, Instant, SystemTime};

use pgstore::{Error, PgStore};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

async fn open(url: &str, tag: &str) -> TestResult<(PgStore, String)> {
    let table = support::unique_table(tag);
    let store = PgStore::builder(url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .max_token_len(64)
        .max_data_len(1024)
        .build()
        .await?;
    Ok((store, table))
}

#[tokio::test]
async fn a_nul_byte_in_a_token_is_not_found_and_refused() -> TestResult {
    let url = pg_url!();
    let (store, table) = open(&url, "nul").await?;
    store.commit("a", b"x", SystemTime::now() + HOUR).await?;
    for token in ["a\0", "\0", "a\0b"] {
        assert_eq!(store.find(token).await?, None, "{token:?}");
        assert_eq!(store.find_with_expiry(token).await?, None, "{token:?}");
        assert!(!store.delete(token).await?, "{token:?}");
        let err = store
            .commit(token, b"x", SystemTime::now() + HOUR)
            .await
            .expect_err(token);
        assert!(matches!(err, Error::NulInToken), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "session token holds a NUL byte");
        let err = store
            .create(token, b"x", SystemTime::now() + HOUR)
            .await
            .expect_err(token);
        assert!(matches!(err, Error::NulInToken), "{err:?}");
    }
    assert_eq!(store.find("a").await?, Some(b"x".to_vec()));
    let client = support::raw_client(&url).await?;
    assert_eq!(support::count_rows(&client, &table).await?, 1);
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn limits_are_typed_errors_with_clear_messages() -> TestResult {
    let url = pg_url!();
    let (store, table) = open(&url, "limits").await?;
    let exp = SystemTime::now() + HOUR;
    let err = store.commit("t", &[0; 1025], exp).await.expect_err("data");
    assert!(
        matches!(
            err,
            Error::DataTooLarge {
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "session data is 1025 bytes, over the limit of 1024"
    );
    let err = store
        .commit(&"t".repeat(65), b"", exp)
        .await
        .expect_err("token");
    assert!(
        matches!(err, Error::TokenTooLong { len: 65, max: 64 }),
        "{err:?}"
    );
    let err = store.commit("", b"", exp).await.expect_err("empty");
    assert!(matches!(err, Error::EmptyToken), "{err:?}");
    // Data of every byte value round-trips.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    store.commit("bytes", &all_bytes, exp).await?;
    assert_eq!(store.find("bytes").await?, Some(all_bytes));
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn bad_options_are_invalid_config() -> TestResult {
    // No server needed: every one fails before connecting.
    let url = "host=/nonexistent user=nobody";
    let cases = [
        PgStore::builder(url).pool_size(0),
        PgStore::builder(url).max_token_len(0),
        PgStore::builder(url).max_data_len(usize::MAX),
        PgStore::builder(url).cleanup_batch_size(0),
        PgStore::builder(url).wait_timeout(Duration::ZERO),
        PgStore::builder(url).connect_timeout(Duration::ZERO),
        PgStore::builder(url).hash_tokens(b""),
        PgStore::builder(url).table("bad name"),
        PgStore::builder("postgres://[::1"),
        PgStore::builder("host=x port=notaport"),
        PgStore::builder("host=x sslmode=allow"),
        PgStore::builder("host=x sslmode=verify-full"),
    ];
    for b in cases {
        let shown = format!("{b:?}");
        let err = b.build().await.expect_err(&shown);
        assert!(matches!(err, Error::InvalidConfig(_)), "{shown}: {err:?}");
        assert!(!err.is_retryable());
    }
    Ok(())
}

#[tokio::test]
async fn the_password_never_shows() -> TestResult {
    let b = PgStore::builder("host=/nowhere user=u password=hunter2").hash_tokens(b"key-bytes");
    let shown = format!("{b:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("key-bytes"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_fails_within_the_connect_timeout() -> TestResult {
    let timeout = Duration::from_secs(1);
    for conninfo in [
        // Refused at once.
        "host=127.0.0.1 port=1 user=postgres",
        // No socket in this directory.
        "host=/nonexistent/dir user=postgres",
        // Never answers (a non-routable address): the timeout decides.
        "host=10.255.255.1 port=5432 user=postgres",
    ] {
        let started = Instant::now();
        let err = PgStore::builder(conninfo)
            .connect_timeout(timeout)
            .build()
            .await
            .expect_err(conninfo);
        let took = started.elapsed();
        assert!(matches!(err, Error::Connect(_)), "{conninfo}: {err:?}");
        assert!(err.is_retryable());
        // Generous: a timeout, not a performance bound.
        assert!(
            took < timeout + Duration::from_secs(10),
            "{conninfo}: {took:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_database_is_not_retryable() -> TestResult {
    let url = pg_url!();
    let err = PgStore::builder(&format!("{url} dbname=no_such_database_here"))
        .build()
        .await
        .expect_err("no such database");
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        pgstore::error_chain(&err).contains("does not exist"),
        "{}",
        pgstore::error_chain(&err)
    );
    Ok(())
}
