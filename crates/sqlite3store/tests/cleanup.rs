//! Cleanup: batches, the background thread, giving space back, stats.

mod common;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{eventually, go_insert, Fixture};
use sqlite3store::{Result, SqliteStore};

const MINUTE: Duration = Duration::from_secs(60);

/// Inserts `n` rows straight into the file in one transaction (fast), with
/// expiry `at + i ms`.
fn preload(
    fx: &Fixture,
    prefix: &str,
    n: usize,
    at: std::time::SystemTime,
    data: &[u8],
) -> Result<()> {
    let mut conn = fx.raw();
    let tx = conn.transaction()?;
    for i in 0..n {
        go_insert(
            &tx,
            &format!("{prefix}{i}"),
            data,
            at + Duration::from_millis(i as u64),
        );
    }
    tx.commit()?;
    Ok(())
}

#[test]
fn a_large_backlog_is_removed_in_batches_while_commits_go_on() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().cleanup_batch_size(100).build()?;
    let backlog = 20_000;
    preload(&fx, "old", backlog, fx.now() - MINUTE, b"x")?;
    preload(&fx, "live", 500, fx.now() + MINUTE, b"y")?;
    let t = fx.now() + MINUTE;
    let cleaned = AtomicBool::new(false);
    let (started_tx, started_rx) = mpsc::channel();
    let (report, written) = std::thread::scope(|s| {
        // A writer commits before, during and after the cleanup run, and
        // after each acknowledgement notes how much backlog is left.
        let writer = s.spawn(|| -> Result<(usize, BTreeSet<u64>)> {
            let mut left = BTreeSet::new();
            let mut n = 0;
            while n < 300 || !cleaned.load(Ordering::Acquire) {
                store.commit(&format!("during{n}"), b"z", t)?;
                n += 1;
                if n == 1 {
                    started_tx.send(()).ok();
                }
                left.insert(store.stats()?.expired);
            }
            Ok((n, left))
        });
        // The cleanup starts once the writer is committing.
        let report = started_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the writer never committed")
            .map(|()| store.delete_expired());
        cleaned.store(true, Ordering::Release);
        let written = writer.join().expect("writer thread");
        (report, written)
    });
    let report = report.expect("writer started")?;
    let (commits, partial) = written?;
    assert_eq!(report.removed, backlog as u64);
    // Commits were acknowledged between batches: after them the backlog
    // stood at several levels strictly between all and nothing (one
    // transaction, or a writer held off until the end, would show none).
    let between: Vec<&u64> = partial
        .iter()
        .filter(|&&left| left > 0 && left < backlog as u64)
        .collect();
    println!(
        "cleanup: {commits} commits around a {backlog}-row cleanup saw {} backlog levels in between",
        between.len()
    );
    assert!(
        between.len() >= 3,
        "commits saw the backlog only at {partial:?}: no interleaving with batches"
    );
    let stats = store.stats()?;
    assert_eq!(stats.expired, 0);
    assert_eq!(stats.active, 500 + commits as u64);
    assert_eq!(stats.last_cleanup, Some(report));
    Ok(())
}

#[test]
fn freed_space_is_given_back_to_the_file_system() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    preload(&fx, "burst", 4_000, fx.now() - MINUTE, &[7; 2048])?;
    store.commit("live", b"small", fx.now() + MINUTE)?;
    let before = store.stats()?;
    assert!(before.incremental_vacuum);
    assert!(before.page_count > 2_000, "{before:?}");
    assert_eq!(store.delete_expired()?.removed, 4_000);
    let after = store.stats()?;
    assert_eq!(after.free_pages, 0, "{after:?}");
    assert!(
        after.page_count < before.page_count / 10,
        "{before:?} -> {after:?}"
    );
    drop(store); // closing checkpoints the WAL into the file
    let size = std::fs::metadata(fx.path())?.len();
    assert!(size < 200 * 1024, "file is still {size} bytes");
    assert_eq!(fx.builder().build()?.find("live")?, Some(b"small".to_vec()));
    Ok(())
}

/// Runs `f` on a thread and waits for it, failing (not hanging) the test if
/// it has not returned within a generous limit.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what} did not return within 120 s"))
}

#[test]
fn cleanup_ends_when_another_connection_switches_auto_vacuum_off() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    assert!(store.stats()?.incremental_vacuum);
    preload(&fx, "old", 2_000, fx.now() - MINUTE, &[3; 2048])?;
    // Another connection changes the file's mode under the open store.
    fx.raw()
        .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")?;
    let auto_vacuum: i64 = fx.raw().query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    assert_eq!(auto_vacuum, 0);

    let cleaner = store.clone();
    let removed = within("delete_expired", move || cleaner.delete_expired())?.removed;
    assert_eq!(removed, 2_000);
    // The pages stay free (nothing gives them back now) ...
    assert!(store.stats()?.free_pages > 0);
    // ... until an operator vacuum, which also returns.
    let vacuumer = store.clone();
    within("vacuum", move || vacuumer.vacuum())?;
    assert_eq!(store.stats()?.free_pages, 0);
    store.commit("after", b"still works", fx.now() + MINUTE)?;
    assert_eq!(store.find("after")?, Some(b"still works".to_vec()));
    Ok(())
}

#[test]
fn a_cleanup_run_ends_while_others_keep_adding_expired_sessions() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().cleanup_batch_size(1).build()?;
    preload(&fx, "old", 300, fx.now() - MINUTE, b"x")?;
    // Meanwhile other writers keep adding sessions that are already
    // expired, one batch's worth per batch: the run must still end (it stops
    // at the count of expired rows it started with).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (store, stop, past) = (store.clone(), Arc::clone(&stop), fx.now() - MINUTE);
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 1_000_000 {
                    store.commit(&format!("late{w}-{n}"), b"x", past)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let cleaner = store.clone();
    let removed = within("delete_expired", move || cleaner.delete_expired());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer thread")?;
    }
    // Every row expired at the start was counted, so the run removed at
    // least as many.
    assert!(removed?.removed >= 300);
    Ok(())
}

#[test]
fn files_without_auto_vacuum_still_clean_up() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().incremental_vacuum(false).build()?;
    preload(&fx, "old", 1_000, fx.now() - MINUTE, &[1; 1024])?;
    assert_eq!(store.delete_expired()?.removed, 1_000);
    let stats = store.stats()?;
    assert!(!stats.incremental_vacuum);
    assert!(stats.free_pages > 0, "{stats:?}");
    // An operator vacuum gives it back.
    store.vacuum()?;
    assert_eq!(store.stats()?.free_pages, 0);
    Ok(())
}

#[test]
fn the_cleanup_thread_runs_shortly_after_open() -> Result<()> {
    let fx = Fixture::new();
    preload_with_store_closed(&fx)?;
    // The interval is an hour; the first run still comes right away.
    let store = fx
        .builder()
        .cleanup_interval(Duration::from_secs(3600))
        .first_cleanup_delay(Duration::from_millis(10))
        .build()?;
    assert!(
        eventually(Duration::from_secs(20), || store
            .stats()
            .map(|s| s.expired == 0 && s.last_cleanup.is_some())
            .unwrap_or(false)),
        "no cleanup ran after open"
    );
    let report = store.stats()?.last_cleanup.expect("report");
    assert_eq!(report.removed, 100);
    assert_eq!(store.stats()?.active, 1);
    Ok(())
}

fn preload_with_store_closed(fx: &Fixture) -> Result<()> {
    drop(fx.builder().build()?);
    preload(fx, "stale", 100, fx.now() - MINUTE, b"x")?;
    go_insert(&fx.raw(), "fresh", b"y", fx.now() + MINUTE);
    Ok(())
}

const STOP_TEST: &str = "stop_cleanup_stops_further_runs";

/// `stop_cleanup` ends the cleanup thread itself, observed as the thread
/// leaving the process; no run happens after. Runs in a child process, so
/// no other test's cleanup thread is counted.
#[test]
fn stop_cleanup_stops_further_runs() -> support::TestResult {
    if support::child_role().is_some() {
        return stop_child();
    }
    let ended = support::run_to_end(&mut support::child_command(STOP_TEST, "stop")?)?;
    match ended.lines.last().and_then(|l| l.strip_prefix("skip ")) {
        Some(reason) => support::skip(reason),
        None if ended.done() => Ok(()),
        None => Err(format!("child: {ended:?}").into()),
    }
}

fn stop_child() -> support::TestResult {
    const CLEANUP_THREAD: &str = "sqlite3store-cl";
    let fx = Fixture::new();
    let store = fx
        .builder()
        .cleanup_interval(Duration::from_millis(10))
        .first_cleanup_delay(Duration::from_millis(10))
        .build()?;
    assert!(eventually(Duration::from_secs(20), || store
        .stats()
        .map(|s| s.last_cleanup.is_some())
        .unwrap_or(false)));
    match support::threads_named(CLEANUP_THREAD) {
        Ok(1) => {}
        Ok(n) => panic!("{n} cleanup threads before the stop"),
        Err(err) => {
            support::emit(&format!("skip cannot list threads: {err}"));
            return Ok(());
        }
    }
    store.stop_cleanup();
    store.stop_cleanup();
    // The stop is seen: the thread ends (after the run it may be in).
    assert!(
        eventually(Duration::from_secs(20), || support::threads_named(
            CLEANUP_THREAD
        )
        .is_ok_and(|n| n == 0)),
        "the cleanup thread still runs 20 s after stop_cleanup"
    );
    let last = store.stats()?.last_cleanup;
    store.commit("old", b"x", fx.now() - MINUTE)?;
    let stats = store.stats()?;
    assert_eq!(stats.last_cleanup, last, "a run after the stop");
    assert_eq!(stats.expired, 1);
    // The store itself works on, and cleans up when asked.
    assert_eq!(store.delete_expired()?.removed, 1);
    support::emit("done");
    Ok(())
}

#[test]
fn stats_count_what_is_there() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    let empty = store.stats()?;
    assert_eq!((empty.active, empty.expired), (0, 0));
    assert!(empty.file_size > 0);
    assert!(empty.page_size >= 512);
    assert_eq!(empty.last_cleanup, None);
    for i in 0..5 {
        store.commit(&format!("a{i}"), b"x", fx.now() + MINUTE)?;
    }
    for i in 0..3 {
        store.commit(&format!("e{i}"), b"x", fx.now() - MINUTE)?;
    }
    let s = store.stats()?;
    assert_eq!((s.active, s.expired), (5, 3));
    assert!(s.wal_size > 0, "writes go to the WAL first");
    Ok(())
}

#[test]
fn a_clock_shared_with_the_cleanup_thread_drives_it() -> Result<()> {
    let fx = Fixture::new();
    let clock = Arc::clone(&fx.clock);
    let store: SqliteStore = fx
        .builder()
        .cleanup_interval(Duration::from_millis(10))
        .first_cleanup_delay(Duration::from_millis(10))
        .build()?;
    store.commit("t", b"x", fx.now() + MINUTE)?;
    clock.advance(2 * MINUTE);
    assert!(eventually(Duration::from_secs(20), || fx.rows() == 0));
    Ok(())
}
