//! Cleanup: the background task (ZERO disables it, stop_cleanup ends it,
//! errors do not), bounded batches that skip rows a commit holds, and one
//! replica at a time through the advisory lock.

mod support;

use std::time::{Duration, SystemTime};

use pgstore::{Error, PgStore};
use support::TestResult;

const PATIENCE: Duration = Duration::from_secs(30);

/// Stores `n` sessions that expired a minute ago, straight into the table.
async fn insert_expired(client: &tokio_postgres::Client, table: &str, n: i64) -> TestResult {
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (token, data, expiry) \
                 SELECT 'old' || i, 'x', now() - interval '1 minute' FROM generate_series(1, $1::bigint) i"
            ),
            &[&n],
        )
        .await?;
    Ok(())
}

async fn wait_for_rows(client: &tokio_postgres::Client, table: &str, want: u64) -> TestResult {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let n = support::count_rows(client, table).await?;
        if n == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{n} rows, not {want}, after {PATIENCE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_interval_runs_no_cleanup_and_stop_ends_it() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let idle_table = support::unique_table("idle");
    let idle = PgStore::builder(&url)
        .table(&idle_table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    insert_expired(&client, &idle_table, 5).await?;
    let busy_table = support::unique_table("busy");
    let busy = PgStore::builder(&url)
        .table(&busy_table)
        .cleanup_interval(Duration::from_millis(20))
        .build()
        .await?;
    insert_expired(&client, &busy_table, 5).await?;
    // The running task cleans; by then the disabled one has had many ticks.
    wait_for_rows(&client, &busy_table, 0).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(support::count_rows(&client, &idle_table).await?, 5);
    assert!(idle.stats().await?.last_cleanup.is_none());

    busy.stop_cleanup();
    busy.stop_cleanup();
    // Let a run that had already started finish, then add more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    insert_expired(&client, &busy_table, 3).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(support::count_rows(&client, &busy_table).await?, 3);
    // Explicit cleanup still works.
    assert_eq!(busy.delete_expired().await?.removed, 3);
    support::drop_table(&client, &idle_table).await?;
    support::drop_table(&client, &busy_table).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_survives_errors() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("survives");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::from_millis(20))
        .cleanup_statement_timeout(Duration::from_millis(50))
        .build()
        .await?;
    insert_expired(&client, &table, 10).await?;
    // Lock the table for longer than the cleanup statement timeout: every
    // run meanwhile fails (statement timeout), and the task goes on.
    let mut locker = support::raw_client(&url).await?;
    let tx = locker.transaction().await?;
    tx.batch_execute(&format!("LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE"))
        .await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // An explicit run fails the same way, as a retryable error.
    let err = store.delete_expired().await.expect_err("table is locked");
    assert!(matches!(err, Error::Busy(_)), "{err:?}");
    assert!(err.is_retryable());
    tx.rollback().await?;
    wait_for_rows(&client, &table, 0).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_skip_rows_a_commit_holds() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("skiplocked");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .cleanup_batch_size(4)
        .build()
        .await?;
    insert_expired(&client, &table, 21).await?;
    let mut holder = support::raw_client(&url).await?;
    let tx = holder.transaction().await?;
    tx.execute(
        &format!("SELECT 1 FROM \"{table}\" WHERE token = 'old1' FOR UPDATE"),
        &[],
    )
    .await?;
    // Does not wait for the held row.
    let report = tokio::time::timeout(PATIENCE, store.delete_expired()).await??;
    assert_eq!(report.removed, 20);
    assert!(report.batches >= 5, "{report:?}");
    tx.rollback().await?;
    assert_eq!(store.delete_expired().await?.removed, 1);
    assert_eq!(store.stats().await?.expired, 0);
    support::drop_table(&client, &table).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_cleans_at_a_time() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("onecleaner");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::from_millis(20))
        .cleanup_statement_timeout(Duration::from_millis(200))
        .build()
        .await?;
    // Another replica holds the cleanup lock.
    let other = support::raw_client(&url).await?;
    let key = format!("pgstore cleanup \"{table}\"");
    other
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
        .await?;
    insert_expired(&client, &table, 7).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The task gave way every time.
    assert_eq!(support::count_rows(&client, &table).await?, 7);
    // An explicit call waits, then fails as busy.
    let err = store.delete_expired().await.expect_err("lock is held");
    assert!(err.is_retryable(), "{err:?}");
    other
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    wait_for_rows(&client, &table, 0).await?;
    store.stop_cleanup();
    support::drop_table(&client, &table).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_cleanup_leaves_no_lock_behind() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("cancelled");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .cleanup_batch_size(10)
        .pool_size(2)
        .build()
        .await?;
    insert_expired(&client, &table, 20_000).await?;
    // Dropped mid-run, holding the lock.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), store.delete_expired()).await;
    assert!(
        cancelled.is_err(),
        "20,000 rows in batches of 10 take longer"
    );
    // The lock went with the discarded connection: the next run (on either
    // handle) gets it at once and finishes.
    let second = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .cleanup_statement_timeout(Duration::from_secs(10))
        .build()
        .await?;
    let removed = second.delete_expired().await?.removed;
    assert!(removed > 0);
    assert_eq!(support::count_rows(&client, &table).await?, 0);
    // Every pooled connection of the first store still works.
    for _ in 0..4 {
        store
            .commit("t", b"d", SystemTime::now() + PATIENCE)
            .await?;
    }
    support::drop_table(&client, &table).await
}

/// Finds and commits go on while cleanup deletes a large backlog: the
/// slowest call and the calls over 25 ms are printed (the target of issue
/// 11; not asserted, since the machine is shared), and no call may take
/// longer than a generous hang timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_goes_on_while_cleanup_deletes_a_backlog() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("backlog");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let rows = 100_000;
    insert_expired(&client, &table, rows).await?;
    for i in 0..100 {
        store
            .commit(&format!("live{i}"), b"data", SystemTime::now() + PATIENCE)
            .await?;
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, done) = (store.clone(), std::sync::Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && i < 10_000_000 {
                let token = format!("live{}", (i * 7 + w) % 100);
                i += 1;
                let started = std::time::Instant::now();
                let found = tokio::time::timeout(PATIENCE, store.find(&token)).await??;
                assert!(found.is_some(), "{token}");
                tokio::time::timeout(
                    PATIENCE,
                    store.commit(&token, b"data", SystemTime::now() + PATIENCE),
                )
                .await??;
                latencies.push(started.elapsed() / 2);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let started = std::time::Instant::now();
    let report = store.delete_expired().await?;
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    assert_eq!(report.removed, rows as u64);
    latencies.sort();
    let slow = latencies
        .iter()
        .filter(|l| **l > Duration::from_millis(25))
        .count();
    eprintln!(
        "cleanup removed {} rows in {took:?} ({:.0} rows/s, {} batches) while {} finds+commits ran: \
         p99 {:?}, max {:?}, {slow} over 25 ms (mean of a find and a commit)",
        report.removed,
        report.removed as f64 / took.as_secs_f64(),
        report.batches,
        latencies.len(),
        latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default(),
        latencies.last().copied().unwrap_or_default(),
    );
    assert!(!latencies.is_empty());
    support::drop_table(&client, &table).await
}

/// A commit to a token whose expired row cleanup is deleting waits for
/// that batch, then stores the session: the commit is never lost to the
/// cleanup that raced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_racing_cleanup_of_its_expired_row_is_kept() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let table = support::unique_table("commitrace");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    insert_expired(&client, &table, 3).await?;
    // A cleanup batch in flight: the expired row deleted, not yet committed.
    let mut cleaner = support::raw_client(&url).await?;
    let tx = cleaner.transaction().await?;
    let n = tx
        .execute(
            &format!("DELETE FROM \"{table}\" WHERE token = 'old1' AND expiry < now()"),
            &[],
        )
        .await?;
    assert_eq!(n, 1);
    let committing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .commit("old1", b"fresh", SystemTime::now() + PATIENCE)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!committing.is_finished(), "the commit waits for the batch");
    tx.commit().await?;
    tokio::time::timeout(PATIENCE, committing).await???;
    assert_eq!(store.find("old1").await?, Some(b"fresh".to_vec()));
    // And the other way round: a create races it too.
    let tx = cleaner.transaction().await?;
    tx.execute(
        &format!("DELETE FROM \"{table}\" WHERE token = 'old2'"),
        &[],
    )
    .await?;
    let creating = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create("old2", b"new", SystemTime::now() + PATIENCE)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.commit().await?;
    assert!(tokio::time::timeout(PATIENCE, creating).await???);
    assert_eq!(store.find("old2").await?, Some(b"new".to_vec()));
    support::drop_table(&client, &table).await
}
