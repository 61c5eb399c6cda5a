//! The async front never blocks the runtime and loses nothing when its
//! futures are dropped.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Fixture;
use sqlite3store::{AsyncSqliteStore, Error, Result, SqliteStore};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn works_on_a_current_thread_runtime_with_time_paused() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build_async().await?;
    store.commit("t", b"d", fx.now() + MINUTE).await?;
    assert_eq!(store.find("t").await?, Some(b"d".to_vec()));
    assert_eq!(store.all().await?.len(), 1);
    assert!(store.create("u", b"e", fx.now() + MINUTE).await?);
    assert!(store.delete("t").await?);
    fx.clock.advance(2 * MINUTE);
    assert_eq!(store.delete_expired().await?.removed, 1);
    assert_eq!(store.stats().await?.active, 0);
    // Paused tokio time does not disturb the store's own clock.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(store.find("u").await?, None);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_write_does_not_block_the_runtime() -> Result<()> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(30))
        .build_async()
        .await?;
    // Another connection holds the write lock: our commit must wait for it.
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let pending = tokio::spawn({
        let store = store.clone();
        let exp = fx.now() + MINUTE;
        async move { store.commit("t", b"d", exp).await }
    });
    // On the runtime's only thread, other tasks keep running meanwhile.
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            for _ in 0..1000 {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    ticker.await.expect("ticker");
    assert_eq!(ticks.load(Ordering::Relaxed), 1000);
    assert!(
        !pending.is_finished(),
        "the commit cannot finish while the lock is held"
    );
    tx.commit()?; // release the lock
    pending.await.expect("join")?;
    assert_eq!(store.find("t").await?, Some(b"d".to_vec()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_futures_lose_nothing_acknowledged() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build_async().await?;
    let exp = fx.now() + MINUTE;
    let data = |i: usize| format!("data-{i}").into_bytes();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.commit(&format!("t{i}"), &data(i), exp).await })
        })
        .collect();
    // Cancel every other task, wherever it is.
    let mut acknowledged = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if i % 2 == 0 {
            task.abort();
            match task.await {
                // It finished before the abort: acknowledged like the rest.
                Ok(result) => {
                    result?;
                    acknowledged.push(i);
                }
                Err(err) => assert!(err.is_cancelled(), "t{i}: {err}"),
            }
        } else {
            task.await.expect("join")?;
            acknowledged.push(i);
        }
    }
    // Also drop futures mid-flight with a timeout of zero.
    for i in 200..250 {
        let (token, value) = (format!("t{i}"), data(i));
        let commit = store.commit(&token, &value, exp);
        // Elapsed: dropped mid-flight. A commit that won the race is
        // acknowledged, and must be kept.
        if let Ok(result) = tokio::time::timeout(Duration::ZERO, commit).await {
            result?;
            acknowledged.push(i);
        }
    }
    // Let the blocking pool finish what was started.
    let sync: SqliteStore = store.clone().into();
    tokio::task::spawn_blocking(move || sync.stats())
        .await
        .expect("join")?;

    let all = store.all().await?;
    for i in &acknowledged {
        assert_eq!(
            all.get(&format!("t{i}")),
            Some(&data(*i)),
            "acknowledged t{i} lost"
        );
    }
    // Whatever was cancelled is either wholly there or not at all.
    for (token, value) in &all {
        let i: usize = token[1..].parse().expect("our token");
        assert_eq!(value, &data(i));
    }
    let check: String = fx
        .raw()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn sync_and_async_handles_convert_and_share() -> Result<()> {
    let fx = Fixture::new();
    let sync = fx.builder().build()?;
    let asy = AsyncSqliteStore::from(sync.clone());
    asy.commit("t", b"d", fx.now() + MINUTE).await?;
    // The sync call is quick here (no contention), but keep it off the runtime.
    let back: SqliteStore = asy.clone().into();
    let found = tokio::task::spawn_blocking(move || back.find("t"))
        .await
        .expect("join")?;
    assert_eq!(found, Some(b"d".to_vec()));
    assert_eq!(asy.as_sync().path(), sync.path());
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn errors_come_through_unchanged() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().max_data_len(4).build_async().await?;
    let err = store
        .commit("t", b"too large", fx.now() + MINUTE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DataTooLarge { len: 9, max: 4 }),
        "{err:?}"
    );
    let err = SqliteStore::builder(fx.dir.path())
        .build_async()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_answer_while_writes_are_stalled() -> Result<()> {
    const READS: usize = 4;
    const WRITES: usize = 8;
    const COMMITS: usize = 2000;
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(120))
        .max_async_reads(READS)
        .max_async_writes(WRITES)
        .build_async()
        .await?;
    let exp = fx.now() + MINUTE;
    store.commit("seen", b"here", exp).await?;

    // Another connection holds the write lock: every commit stalls.
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let commits: Vec<_> = (0..COMMITS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.commit(&format!("t{i}"), b"d", exp).await })
        })
        .collect();
    // Watch the calls in flight, from their start to the end of the test.
    let peak = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (store, peak, watching) = (store.clone(), Arc::clone(&peak), Arc::clone(&watching));
        async move {
            while watching.load(Ordering::Relaxed) {
                let now = store.in_flight();
                peak.0.fetch_max(now.reads as u64, Ordering::Relaxed);
                peak.1.fetch_max(now.writes as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let full = tokio::time::timeout(Duration::from_secs(60), async {
        while store.in_flight().writes < WRITES {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(full.is_ok(), "the stalled writes never filled their lane");

    // Finds answer at once, one after another...
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let started = std::time::Instant::now();
        assert_eq!(store.find("seen").await?, Some(b"here".to_vec()));
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("slowest of 100 finds while {COMMITS} commits were stalled: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(50),
        "a find took {slowest:?} while writes were stalled"
    );
    // ... and more side by side than the read bound lets run at once.
    let finds: Vec<_> = (0..READS * 4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.find("seen").await })
        })
        .collect();
    for find in finds {
        let found = tokio::time::timeout(Duration::from_secs(10), find).await;
        let found = found.expect("a find waited behind the stalled writes");
        assert_eq!(found.expect("join")?, Some(b"here".to_vec()));
    }
    assert!(commits.iter().all(|c| !c.is_finished()), "the lock is held");

    tx.commit()?; // release: every stalled commit goes through
    for commit in commits {
        commit.await.expect("join")?;
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("join");
    let (reads, writes) = (
        peak.0.load(Ordering::Relaxed),
        peak.1.load(Ordering::Relaxed),
    );
    eprintln!("peak blocking tasks: {reads} reads, {writes} writes");
    assert_eq!(writes, WRITES as u64, "writes in flight over the bound");
    assert!(reads <= READS as u64, "{reads} reads in flight");
    // So the blocking threads the store used never passed the two bounds.
    assert!(reads + writes <= (READS + WRITES) as u64);
    let idle = store.in_flight();
    assert_eq!((idle.reads, idle.writes), (0, 0));
    assert_eq!(fx.rows(), COMMITS as i64 + 1);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn async_bounds_are_checked() -> Result<()> {
    let fx = Fixture::new();
    for bad in [0, 4097, usize::MAX] {
        for builder in [
            fx.builder().max_async_reads(bad),
            fx.builder().max_async_writes(bad),
        ] {
            let err = builder.build_async().await.unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        }
    }
    // One of each is enough to work.
    let store = fx
        .builder()
        .max_async_reads(1)
        .max_async_writes(1)
        .build_async()
        .await?;
    store.commit("t", b"d", fx.now() + MINUTE).await?;
    assert_eq!(store.find("t").await?, Some(b"d".to_vec()));
    Ok(())
}

/// Waits until no async call of `store` runs on the blocking pool.
async fn settled(store: &AsyncSqliteStore) {
    let quiet = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let now = store.in_flight();
            if (now.reads, now.writes) == (0, 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(quiet.is_ok(), "async calls still running after a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_never_lands_after_its_retry() -> Result<()> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(60))
        .build_async()
        .await?;
    let exp = fx.now() + MINUTE;
    store.commit("t", b"v0", exp).await?;
    store.commit("r", b"v0", exp).await?;

    // Another process holds the write lock.
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Requests time out meanwhile: two that are retried, one that is not.
    for (token, data) in [("t", "v1"), ("r", "v1"), ("u", "gone")] {
        let write = store.commit(token, data.as_bytes(), exp);
        let timed_out = tokio::time::timeout(Duration::from_millis(100), write).await;
        assert!(
            timed_out.is_err(),
            "{token} committed while the lock was held"
        );
    }
    // The retry of `t` is served by the other process (another replica),
    // which commits v2 and releases the lock.
    tx.execute(
        "UPDATE sessions SET data = ?1 WHERE token = 't'",
        [&b"v2"[..]],
    )?;
    // The retry of `r` comes back to this store and waits for the lock.
    let retry = tokio::spawn({
        let store = store.clone();
        async move { store.commit("r", b"v2", exp).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    tx.commit()?;
    retry.await.expect("join")?;
    settled(&store).await;

    assert_eq!(
        store.find("t").await?,
        Some(b"v2".to_vec()),
        "v1 overwrote t's retry"
    );
    assert_eq!(
        store.find("r").await?,
        Some(b"v2".to_vec()),
        "v1 overwrote r's retry"
    );
    assert_eq!(
        store.find("u").await?,
        None,
        "an abandoned write was applied"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_taken_before_its_future_was_dropped_is_applied_whole() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build_async().await?;
    let exp = fx.now() + MINUTE;
    let data = vec![7u8; 256 * 1024];
    // Dropped once its blocking task is running: either not applied, or
    // applied whole, never in part; and the store goes on working.
    for i in 0..20 {
        let token = format!("t{i}");
        let write = store.commit(&token, &data, exp);
        let _ = tokio::time::timeout(Duration::from_micros(200 * i), write).await;
    }
    settled(&store).await;
    for (token, value) in store.all().await? {
        assert_eq!(value, data, "{token} holds part of a write");
    }
    store.commit("after", b"ok", exp).await?;
    assert_eq!(store.find("after").await?, Some(b"ok".to_vec()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_answers_calls_waiting_for_a_slot_at_once() -> Result<()> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(60))
        .max_async_writes(1)
        .build_async()
        .await?;
    let exp = fx.now() + MINUTE;
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let commit = |token: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { store.commit(token, b"d", exp).await })
    };
    // One write holds the only slot, stalled on the lock; three wait for it.
    let stalled = commit("a");
    settled_at(&store, 1).await;
    let waiting = [commit("b"), commit("c"), commit("d")];
    let closing = tokio::spawn(store.clone().close());
    for call in waiting {
        let answered = tokio::time::timeout(Duration::from_secs(10), call).await;
        let result = answered.expect("answered while the lock is still held");
        let err = result.expect("join").unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
    }
    // The running write is not abandoned: closing waits for it, it commits
    // once the lock is free, and it is in the closed file.
    tx.commit()?;
    stalled.await.expect("join")?;
    closing.await.expect("join")?;
    let err = store.find("a").await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    let rows: i64 = fx
        .raw()
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
    assert_eq!(rows, 1);
    Ok(())
}

/// Waits until `writes` async writes of `store` run on the blocking pool.
async fn settled_at(store: &AsyncSqliteStore, writes: usize) {
    let reached = tokio::time::timeout(Duration::from_secs(60), async {
        while store.in_flight().writes != writes {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "never {writes} writes in flight");
}

#[tokio::test(flavor = "current_thread")]
async fn finds_answer_in_place_while_the_write_lock_is_held() -> Result<()> {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(30))
        .build_async()
        .await?;
    store.commit("t", b"d", fx.now() + MINUTE).await?;
    // Another connection holds the write lock, with a change not committed.
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM sessions", [])?;
    let pending = tokio::spawn({
        let store = store.clone();
        let exp = fx.now() + MINUTE;
        async move { store.commit("u", b"e", exp).await }
    });
    tokio::task::yield_now().await; // the commit now waits for the lock
                                    // Each find is ready at its first poll: it ran here, did not go to a
                                    // thread, and did not wait for the lock. It sees the last commit.
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100 {
        let mut find = std::pin::pin!(store.find("t"));
        match find.as_mut().poll(&mut cx) {
            Poll::Ready(found) => assert_eq!(found?, Some(b"d".to_vec())),
            Poll::Pending => panic!("a find waited while the write lock was held"),
        }
        let mut find = std::pin::pin!(store.find_with_expiry("nope"));
        match find.as_mut().poll(&mut cx) {
            Poll::Ready(found) => assert_eq!(found?, None),
            Poll::Pending => panic!("a find waited while the write lock was held"),
        }
    }
    assert_eq!(store.in_flight().reads, 0);
    assert!(!pending.is_finished(), "the lock is held");
    tx.rollback()?; // release the lock
    pending.await.expect("join")?;
    assert_eq!(store.find("u").await?, Some(b"e".to_vec()));
    Ok(())
}

/// Pending async writes wait as futures, not on threads: thousands queue
/// behind a held write lock on a runtime whose blocking pool has two
/// threads, and finds keep answering meanwhile.
#[test]
fn pending_writes_hold_no_blocking_thread() -> Result<()> {
    const COMMITS: usize = 3000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let fx = Fixture::new();
        let store = fx
            .builder()
            .busy_timeout(Duration::from_secs(120))
            .max_async_writes(4096)
            .build_async()
            .await?;
        let exp = fx.now() + MINUTE;
        store.commit("seen", b"here", exp).await?;
        let mut raw = fx.raw();
        let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let commits: Vec<_> = (0..COMMITS)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.commit(&format!("t{i}"), b"d", exp).await })
            })
            .collect();
        // Every commit is admitted and waiting: far more than the blocking
        // pool has threads.
        let all_pending = tokio::time::timeout(Duration::from_secs(60), async {
            while store.in_flight().writes < COMMITS {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(all_pending.is_ok(), "the commits never all got in line");
        // Finds answer, in place or on the two blocking threads, and so
        // do reads that always take a blocking thread.
        for _ in 0..20 {
            let found = tokio::time::timeout(Duration::from_secs(10), store.find("seen")).await;
            assert_eq!(
                found.expect("a find waited behind the writes")?,
                Some(b"here".to_vec())
            );
        }
        let stats = tokio::time::timeout(Duration::from_secs(10), store.stats()).await;
        assert_eq!(stats.expect("stats waited behind the writes")?.active, 1);
        assert!(commits.iter().all(|c| !c.is_finished()), "the lock is held");
        tx.commit()?;
        for commit in commits {
            commit.await.expect("join")?;
        }
        assert_eq!(fx.rows(), COMMITS as i64 + 1);
        store.close().await
    })
}

/// The sync API called on a runtime thread (not a good idea, as it blocks
/// that thread, but allowed) works and does not panic.
#[tokio::test(flavor = "current_thread")]
async fn sync_calls_inside_a_runtime_work() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    store.commit("t", b"d", fx.now() + MINUTE)?;
    assert!(store.create("u", b"e", fx.now() + MINUTE)?);
    assert_eq!(store.find("t")?, Some(b"d".to_vec()));
    assert!(store.delete("t")?);
    store.vacuum()?;
    let asy = AsyncSqliteStore::from(store.clone());
    asy.commit("v", b"f", fx.now() + MINUTE).await?;
    assert_eq!(store.find("v")?, Some(b"f".to_vec()));
    store.close()
}

/// Closing answers every write queued before it: all are applied, none
/// hangs, and the closed file holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_answers_every_queued_write() -> Result<()> {
    const ASYNC: usize = 200;
    const SYNC: usize = 8;
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(120))
        .max_async_writes(ASYNC)
        .build_async()
        .await?;
    let exp = fx.now() + MINUTE;
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let asyncs: Vec<_> = (0..ASYNC)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.commit(&format!("a{i}"), b"d", exp).await })
        })
        .collect();
    let syncs: Vec<_> = (0..SYNC)
        .map(|i| {
            let store = store.as_sync().clone();
            std::thread::spawn(move || store.commit(&format!("s{i}"), b"d", exp))
        })
        .collect();
    let queued = tokio::time::timeout(Duration::from_secs(60), async {
        while store.in_flight().writes < ASYNC {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(queued.is_ok(), "the async commits never all got in line");
    // Give the sync callers time to queue too; one that comes after
    // closing began is answered Closed, which the check below allows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closing = tokio::spawn(store.clone().close());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !closing.is_finished(),
        "closing waits for the queued writes"
    );
    tx.commit()?;
    let mut applied = 0;
    for commit in asyncs {
        let answered = tokio::time::timeout(Duration::from_secs(60), commit).await;
        answered
            .expect("a queued async write was never answered")
            .expect("join")?;
        applied += 1;
    }
    for commit in syncs {
        match commit.join().expect("join") {
            Ok(()) => applied += 1,
            Err(Error::Closed) => {}
            Err(err) => return Err(err),
        }
    }
    closing.await.expect("join")?;
    assert!(applied >= ASYNC);
    assert_eq!(fx.rows(), applied as i64, "an acknowledged write was lost");
    Ok(())
}

/// A write whose future is dropped while it waits in the writer's queue is
/// not applied; the writes queued beside it are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_write_is_not_applied() -> Result<()> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .busy_timeout(Duration::from_secs(60))
        .build_async()
        .await?;
    let exp = fx.now() + MINUTE;
    let mut raw = fx.raw();
    let tx = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let kept = tokio::spawn({
        let store = store.clone();
        async move { store.commit("kept", b"d", exp).await }
    });
    settled_at(&store, 1).await;
    let dropped = store.commit("dropped", b"d", exp);
    let timed_out = tokio::time::timeout(Duration::from_millis(50), dropped).await;
    assert!(timed_out.is_err(), "committed while the lock was held");
    let also_kept = tokio::spawn({
        let store = store.clone();
        async move { store.commit("also kept", b"d", exp).await }
    });
    // The dropped write still holds its slot until the writer answers it.
    settled_at(&store, 3).await;
    tx.commit()?;
    kept.await.expect("join")?;
    also_kept.await.expect("join")?;
    settled(&store).await;
    assert_eq!(
        store.find("dropped").await?,
        None,
        "a cancelled write was applied"
    );
    assert_eq!(store.find("kept").await?, Some(b"d".to_vec()));
    assert_eq!(store.find("also kept").await?, Some(b"d".to_vec()));
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_front_exports_pages_and_shows_the_settings_of_the_sync_one() -> Result<()> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .max_token_len(100)
        .max_data_len(1000)
        .build_async()
        .await?;
    let later = fx.now() + MINUTE;
    for t in ["k2", "k0", "k3", "k1"] {
        store.commit(t, t.as_bytes(), later).await?;
    }
    store
        .commit_owned("k4", b"k4", later, Some("alice"))
        .await?;
    store.commit("dead", b"x", fx.now()).await?;
    fx.clock.advance(Duration::from_secs(1));

    // Page by page, in key order, without the expired row.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.export_page(&after, 2).await?;
        assert_eq!(page, store.as_sync().export_page(&after, 2)?);
        let Some(last) = page.last() else { break };
        after = last.token.clone();
        seen.extend(page);
    }
    let keys: Vec<_> = seen.iter().map(|e| e.token.as_str()).collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(seen[2].session.data, b"k2");
    let owned = store.export_page_owned("k2", 10).await?;
    let owners: Vec<_> = owned
        .iter()
        .map(|(e, o)| (e.token.as_str(), o.as_deref()))
        .collect();
    assert_eq!(owners, [("k3", None), ("k4", Some("alice"))]);

    // The sync store's accessors, on the async handle.
    assert_eq!(store.now(), fx.now());
    assert_eq!(store.path(), store.as_sync().path());
    assert!(!store.is_read_only());
    assert_eq!((store.max_token_len(), store.max_data_len()), (100, 1000));
    store.close().await
}
