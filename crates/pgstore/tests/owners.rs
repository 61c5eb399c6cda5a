//! Owners on a table Go's postgresstore shares: the owner column is added at
//! open (unless the store may not change the schema), Go's exact statements
//! keep working on a table with owners, and no path leaves a stale owner.
//! Also the revoke of a large owner, measured against concurrent commits.

mod support;

use std::time::{Duration, Instant, SystemTime};

use pgstore::{Error, PgStore};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

async fn go_table(client: &tokio_postgres::Client, table: &str) -> TestResult {
    // Made by hand, as Go's README says.
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL); \
             CREATE INDEX \"{table}_expiry_idx\" ON \"{table}\" (expiry);"
        ))
        .await?;
    Ok(())
}

/// Go's Commit, verbatim but for the table name.
async fn go_commit(
    client: &tokio_postgres::Client,
    table: &str,
    token: &str,
    data: &[u8],
    expiry: SystemTime,
) -> TestResult {
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (token, data, expiry) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry"
            ),
            &[&token, &data, &expiry],
        )
        .await?;
    Ok(())
}

async fn store(url: &str, table: &str) -> TestResult<PgStore> {
    Ok(PgStore::builder(url)
        .table(table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?)
}

#[tokio::test]
async fn gos_statements_work_on_a_table_with_owners() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("ownersgo");
    let client = support::raw_client(&url).await?;
    go_table(&client, &table).await?;
    go_commit(&client, &table, "before", b"go", SystemTime::now() + HOUR).await?;
    let store = store(&url, &table).await?;
    let now = SystemTime::now();
    for token in ["a1", "a2", "a3"] {
        store
            .commit_owned(token, b"rust", now + HOUR, Some("alice"))
            .await?;
    }
    store
        .commit_owned("a-old", b"rust", now - HOUR, Some("alice"))
        .await?;
    assert_eq!(store.count_owner("alice").await?, 3);

    // Go's Find and All read the owned rows.
    let found = client
        .query_opt(
            &format!(
                "SELECT data FROM \"{table}\" WHERE token = $1 AND current_timestamp < expiry"
            ),
            &[&"a1"],
        )
        .await?;
    assert_eq!(
        found.map(|r| r.get::<_, Vec<u8>>(0)),
        Some(b"rust".to_vec())
    );
    let all = client
        .query(
            &format!("SELECT token, data FROM \"{table}\" WHERE current_timestamp < expiry"),
            &[],
        )
        .await?;
    assert_eq!(all.len(), 4);
    // Go's Commit (an upsert naming three columns) keeps the owner of the
    // row it updates.
    go_commit(&client, &table, "a1", b"go", now + HOUR).await?;
    assert_eq!(store.find("a1").await?, Some(b"go".to_vec()));
    assert_eq!(store.count_owner("alice").await?, 3);
    // Go's Delete takes the owner with the row; Go's cleanup the expired one.
    client
        .execute(
            &format!("DELETE FROM \"{table}\" WHERE token = $1"),
            &[&"a2"],
        )
        .await?;
    assert_eq!(store.count_owner("alice").await?, 2);
    let cleaned = client
        .execute(
            &format!("DELETE FROM \"{table}\" WHERE expiry < current_timestamp"),
            &[],
        )
        .await?;
    assert_eq!(cleaned, 1);
    assert_eq!(store.revoke_owner("alice").await?, 2);
    assert_eq!(store.find("a1").await?, None);
    assert_eq!(store.find("before").await?, Some(b"go".to_vec()));
    let stats = store.stats().await?;
    assert_eq!((stats.owners, stats.owned, stats.active), (0, 0, 1));
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn a_table_the_store_may_not_change_works_without_owners() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("ownersnoalter");
    let client = support::raw_client(&url).await?;
    go_table(&client, &table).await?;
    let store = PgStore::builder(&url)
        .table(&table)
        .create_if_missing(false)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let exp = SystemTime::now() + HOUR;
    store.commit("t", b"x", exp).await?;
    assert!(store.create("u", b"x", exp).await?);
    assert!(store.update("t", b"y", exp).await?);
    assert!(store.touch("t", exp).await?);
    assert_eq!(store.count_owner("alice").await?, 0);
    assert!(store.list_owner("alice", 10).await?.is_empty());
    assert_eq!(store.revoke_owner("alice").await?, 0);
    let err = store
        .commit_owned("t", b"x", exp, Some("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ADD COLUMN owner"), "{err}");
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = $1",
            &[&table],
        )
        .await?
        .get(0);
    assert_eq!(columns, 3, "the schema was changed");
    support::drop_table(&client, &table).await
}

/// Revoking an owner with 10,000 sessions while another task commits. The
/// bound asserted is a generous timeout, not a performance claim; the
/// measured worst wait is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_large_owner_does_not_hold_up_other_writes() -> TestResult {
    const SESSIONS: u64 = 10_000;
    let url = pg_url!();
    let table = support::unique_table("ownersbig");
    let store = store(&url, &table).await?;
    let client = support::raw_client(&url).await?;
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (token, data, expiry, owner) \
                 SELECT 's' || i, '\\x00', now() + interval '1 hour', 'big' \
                 FROM generate_series(1, {SESSIONS}) AS i"
            ),
            &[],
        )
        .await?;
    assert_eq!(store.count_owner("big").await?, SESSIONS);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let (mut worst, mut n) = (Duration::ZERO, 0_u32);
            let exp = SystemTime::now() + HOUR;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let started = Instant::now();
                store.commit("other", b"x", exp).await?;
                worst = worst.max(started.elapsed());
                n += 1;
            }
            Ok::<_, Error>((worst, n))
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let removed = store.revoke_owner("big").await;
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Release);
    let (worst, commits) = other.await??;
    assert_eq!(removed?, SESSIONS);
    assert_eq!(store.count_owner("big").await?, 0);
    assert_eq!(support::count_rows(&client, &table).await?, 1);
    println!(
        "revoked {SESSIONS} sessions in {took:?}; {commits} concurrent commits, worst wait {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(2),
        "a commit waited {worst:?} behind the revoke"
    );
    support::drop_table(&client, &table).await
}
