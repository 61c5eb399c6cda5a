//! What the conformance suite does not cover: stats, the database clock,
//! expiry precision, and clones sharing one store.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgstore::{Entry, Error, PgStore, Session};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn stats_count_live_and_expired_rows() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("stats");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .pool_size(3)
        .build()
        .await?;
    let now = SystemTime::now();
    for i in 0..5 {
        store.commit(&format!("live{i}"), b"x", now + HOUR).await?;
    }
    for i in 0..3 {
        store.commit(&format!("dead{i}"), b"x", now - HOUR).await?;
    }
    let stats = store.stats().await?;
    assert_eq!((stats.active, stats.expired), (5, 3));
    assert!(stats.table_bytes > 0);
    assert_eq!(stats.pool_max, 3);
    assert!(stats.pool_connections >= 1 && stats.pool_connections <= 3);
    assert_eq!(stats.last_cleanup, None);
    let report = store.delete_expired().await?;
    assert_eq!(report.removed, 3);
    let stats = store.stats().await?;
    assert_eq!(
        (stats.active, stats.expired, stats.cleaned_total),
        (5, 0, 3)
    );
    assert_eq!(stats.last_cleanup, Some(report));
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn the_database_clock_decides_what_is_live() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("dbclock");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let client = support::raw_client(&url).await?;
    // Rows whose expiry is set by the server's clock, whatever ours says.
    client
        .batch_execute(&format!(
            "INSERT INTO \"{table}\" VALUES \
             ('ahead', 'a', current_timestamp + interval '2 seconds'), \
             ('behind', 'b', current_timestamp - interval '1 millisecond')"
        ))
        .await?;
    assert_eq!(store.find("ahead").await?, Some(b"a".to_vec()));
    assert_eq!(store.find("behind").await?, None);
    let db_now = store.now().await?;
    let local = SystemTime::now();
    let skew = local
        .duration_since(db_now)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(5),
        "one machine, one clock: {skew:?}"
    );
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn expiries_keep_microseconds_and_are_clamped() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("precision");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let exact = UNIX_EPOCH + Duration::new(4_102_444_800, 123_456_000);
    store.commit("exact", b"x", exact).await?;
    assert_eq!(
        store.find_with_expiry("exact").await?,
        Some(Session::new(b"x".to_vec(), exact))
    );
    // Nanoseconds below a microsecond are dropped, never rounded up.
    store
        .commit("nanos", b"x", exact + Duration::from_nanos(999))
        .await?;
    assert_eq!(
        store.find_with_expiry("nanos").await?.map(|f| f.expiry),
        Some(exact)
    );
    // Beyond year 9999: clamped to its end, still live.
    store
        .commit("far", b"x", UNIX_EPOCH + Duration::from_secs(u64::MAX / 4))
        .await?;
    let far = store
        .find_with_expiry("far")
        .await?
        .ok_or("far not found")?
        .expiry;
    assert_eq!(far, UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn clones_share_one_store_and_errors_keep_their_source() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("clones");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let clone = store.clone();
    store.commit("t", b"d", SystemTime::now() + HOUR).await?;
    assert_eq!(clone.find("t").await?, Some(b"d".to_vec()));
    drop(store);
    assert!(clone.delete("t").await?);
    // A failure from the server keeps its cause.
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await?;
    let err = clone.find("t").await.expect_err("table dropped");
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        pgstore::error_chain(&err).contains("does not exist"),
        "{}",
        pgstore::error_chain(&err)
    );
    Ok(())
}

#[test]
fn building_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let fut = PgStore::builder("host=/nowhere").build();
    // Polled by a runtime-less executor.
    let err = futures_lite_block_on(fut).expect_err("no runtime");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}

/// A minimal executor with no tokio runtime around it.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn export_pages_walk_the_live_sessions_in_key_order_and_vacuum_runs() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("export");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let now = SystemTime::now();
    for i in [3, 0, 4, 1, 2] {
        let expiry = now + HOUR + Duration::from_micros(i);
        store
            .commit(&format!("k{i}"), format!("d{i}").as_bytes(), expiry)
            .await?;
    }
    store.commit("k1-dead", b"x", now - HOUR).await?;
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = store.export_page(&after, 2).await?;
        let Some(last) = page.last() else { break };
        after = last.token.clone();
        pages += 1;
        seen.extend(page);
    }
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    let keys: Vec<_> = seen.iter().map(|e| e.token.as_str()).collect();
    assert_eq!(
        keys,
        ["k0", "k1", "k2", "k3", "k4"],
        "key order, no expired row"
    );
    for (i, session) in seen.iter().map(|e| &e.session).enumerate() {
        assert_eq!(session.data, format!("d{i}").as_bytes());
        let micros = session.expiry.duration_since(UNIX_EPOCH)?.as_micros();
        let want = (now + HOUR + Duration::from_micros(i as u64))
            .duration_since(UNIX_EPOCH)?
            .as_micros();
        assert_eq!(micros, want, "expiry to the microsecond");
    }
    store.vacuum().await?;
    assert_eq!(store.stats().await?.active, 5);
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn commit_many_stores_all_in_one_statement_or_none() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("many");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let now = SystemTime::now();
    store.commit("old", b"before", now + HOUR).await?;
    let batch: Vec<_> = (0..500_u64)
        .map(|i| {
            let session = Session::new(
                vec![i as u8; (i % 7) as usize],
                now + HOUR + Duration::from_micros(i),
            );
            Entry::new(format!("t{i}"), session)
        })
        .chain([
            Entry::new(
                "old".to_owned(),
                Session::new(b"after".to_vec(), now + 2 * HOUR),
            ),
            Entry::new(
                "t0".to_owned(),
                Session::new(b"last wins".to_vec(), now + HOUR),
            ),
        ])
        .collect();
    store.commit_many(&batch).await?;
    assert_eq!(store.stats().await?.active, 501);
    assert_eq!(store.find("old").await?, Some(b"after".to_vec()));
    assert_eq!(store.find("t0").await?, Some(b"last wins".to_vec()));
    let Session { data, expiry, .. } = store
        .find_with_expiry("t499")
        .await?
        .ok_or("t499 missing")?;
    assert_eq!(data, vec![499_u64 as u8; 2]);
    let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_micros());
    assert_eq!(
        micros(expiry)?,
        micros(now + HOUR + Duration::from_micros(499))?
    );
    // One bad token: nothing of the batch is stored.
    let bad = [
        Entry::new("fine".to_owned(), Session::new(b"x".to_vec(), now + HOUR)),
        Entry::new("nul\0".to_owned(), Session::new(b"x".to_vec(), now + HOUR)),
    ];
    assert!(matches!(
        store.commit_many(&bad).await,
        Err(Error::NulInToken)
    ));
    assert_eq!(store.find("fine").await?, None);
    store.commit_many(&[]).await?;
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn close_lets_go_of_the_connections_of_every_clone() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("close");
    // A name of its own, to find this store's connections on the server.
    let store = PgStore::builder(&format!("{url} application_name={table}"))
        .table(&table)
        .cleanup_interval(Duration::from_millis(50))
        .build()
        .await?;
    store.commit("t", b"kept", SystemTime::now() + HOUR).await?;
    let clone = store.clone();
    assert!(clone.stats().await?.pool_connections >= 1);
    let client = support::raw_client(&url).await?;
    let open_connections = || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&table],
            )
            .await?;
        row.try_get::<_, i64>(0)
    };
    assert!(
        open_connections().await? >= 1,
        "the store's connections show"
    );
    store.close().await?;
    let err = clone.find("t").await.expect_err("closed");
    assert!(matches!(err, Error::Closed), "{err:?}");
    let err = clone
        .commit("t", b"lost", SystemTime::now() + HOUR)
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::Closed), "{err:?}");
    // The server sees the store's connections go, while a clone lives on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while open_connections().await? > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed store's connections are still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Closing again is fine; what was acknowledged before is there.
    clone.close().await?;
    let row = client
        .query_one(
            &format!("SELECT data FROM \"{table}\" WHERE token = 't'"),
            &[],
        )
        .await?;
    assert_eq!(row.try_get::<_, Vec<u8>>(0)?, b"kept");
    support::drop_table(&client, &table).await
}
