//! No thread outlives the store, and closing leaves one complete file. In
//! a file of its own: it counts this process's threads, so its tests take
//! turns (`serial`) and no other test may run beside them.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use common::eventually;
use sqlite3store::{AsyncSqliteStore, Error, Result, SqliteStore};

mod common;
mod support;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether threads can be counted here; under `CI` they must be.
fn threads_countable() -> bool {
    let ok = Path::new("/proc/self/task").exists();
    if !ok {
        support::skip("no /proc: thread counting is Linux-only")
            .expect("skip returns Ok or panics");
    }
    ok
}

/// Threads of this process whose name starts with "sqlite3store-".
fn store_threads() -> usize {
    support::threads_named("sqlite3store-").expect("/proc/self/task lists this process's threads")
}

#[test]
fn dropping_the_last_clone_ends_every_thread() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::new(dir.path().join("s.db"))?; // Go's New: cleanup thread on
    let clone = store.clone();
    // A new thread names itself as it starts, so wait for the names.
    assert!(
        eventually(Duration::from_secs(20), || store_threads() == 3),
        "writer, cleanup and checkpoint threads"
    );
    store.stop_cleanup();
    drop(store);
    assert!(store_threads() >= 1, "a clone still holds the store");
    drop(clone);
    // Drop joins the threads: they are gone when it returns.
    assert_eq!(store_threads(), 0);

    // A store without cleanup has only the writer and checkpoint threads.
    let store = SqliteStore::with_cleanup_interval(dir.path().join("t.db"), Duration::ZERO)?;
    assert!(
        eventually(Duration::from_secs(20), || store_threads() == 2),
        "writer and checkpoint threads only"
    );
    drop(store);
    assert_eq!(store_threads(), 0);
    Ok(())
}

const SESSIONS: usize = 300;

/// A store with both background threads and `SESSIONS` sessions committed,
/// whose WAL is not empty.
fn busy_store(dir: &Path) -> Result<SqliteStore> {
    let store = SqliteStore::builder(dir.join("s.db"))
        .cleanup_interval(Duration::from_secs(3600))
        .first_cleanup_delay(Duration::from_secs(3600))
        .build()?;
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    for i in 0..SESSIONS {
        store.commit(&format!("token-{i}"), b"data", expiry)?;
    }
    assert!(
        eventually(Duration::from_secs(20), || store_threads() == 3),
        "writer, cleanup and checkpoint threads"
    );
    assert!(wal_len(store.path()) > 0, "the WAL holds the commits");
    Ok(store)
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(support::sidecar(db, "-wal")).map_or(0, |m| m.len())
}

/// Copies the database file alone (no `-wal`, no `-shm`) and counts the
/// sessions in the copy.
fn sessions_in_a_copy(db: &Path) -> Result<usize> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("copy.db");
    std::fs::copy(db, &copy)?;
    let conn = rusqlite::Connection::open(&copy)?;
    let n: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
    Ok(n as usize)
}

/// The store is closed: no thread left, the WAL empty or gone, and the
/// database file alone holds every session.
fn assert_closed(db: &Path) -> Result<()> {
    assert_eq!(store_threads(), 0, "a store thread outlived closing");
    assert_eq!(wal_len(db), 0, "the WAL was not checkpointed");
    assert_eq!(
        sessions_in_a_copy(db)?,
        SESSIONS,
        "the copy misses sessions"
    );
    Ok(())
}

#[test]
fn close_leaves_one_complete_file_and_clones_get_closed() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = busy_store(dir.path())?;
    let db = store.path().to_path_buf();
    let clone = store.clone();
    let other = AsyncSqliteStore::from(store.clone());
    store.close()?;
    assert_closed(&db)?;

    // Every call through a clone gets a clear error, never a panic.
    let expiry = SystemTime::now() + Duration::from_secs(60);
    let closed = |r: Result<()>| assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    closed(clone.find("token-1").map(drop));
    closed(clone.find_with_expiry("token-1").map(drop));
    closed(clone.commit("token-1", b"new", expiry));
    closed(clone.create("new", b"new", expiry).map(drop));
    closed(clone.delete("token-1").map(drop));
    closed(clone.all().map(drop));
    closed(clone.list(10).map(drop));
    closed(clone.stats().map(drop));
    closed(clone.delete_expired().map(drop));
    closed(clone.vacuum());
    clone.stop_cleanup();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    closed(rt.block_on(other.find("token-1")).map(drop));
    closed(rt.block_on(other.commit("token-1", b"new", expiry)));
    // Closing again is fine, sync or async.
    clone.close()?;
    rt.block_on(other.close())?;
    assert_eq!(
        sessions_in_a_copy(&db)?,
        SESSIONS,
        "nothing changed after close"
    );
    Ok(())
}

#[test]
fn close_await_returns_with_one_complete_file() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = AsyncSqliteStore::from(busy_store(dir.path())?);
    let db = store.as_sync().path().to_path_buf();
    let clone = store.clone();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(store.close())?;
    assert_closed(&db)?;
    let err = rt.block_on(clone.find("token-1")).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    Ok(())
}

#[test]
fn dropping_the_last_handle_outside_a_runtime_closes_before_returning() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = busy_store(dir.path())?;
    let db = store.path().to_path_buf();
    drop(store);
    assert_closed(&db)
}

#[test]
fn dropping_the_last_handle_while_cleanup_runs_closes_before_returning() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("s.db");
    drop(SqliteStore::with_cleanup_interval(&db, Duration::ZERO)?);
    // Plenty of expired rows, removed in small batches.
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
         INSERT INTO sessions (token, data, expiry) SELECT 'old-' || i, zeroblob(100), 2400000.5 FROM n",
    )?;
    drop(conn);
    let store = SqliteStore::builder(&db)
        .cleanup_interval(Duration::from_secs(3600))
        .first_cleanup_delay(Duration::ZERO)
        .cleanup_batch_size(1)
        .build()?;
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    for i in 0..SESSIONS {
        store.commit(&format!("token-{i}"), b"data", expiry)?;
    }
    // The cleanup thread is running (it holds the store for its run).
    assert!(eventually(Duration::from_secs(20), || store_threads() == 3));
    drop(store);
    assert_closed_with_old_rows(&db)
}

/// `assert_closed`, where some expired rows may remain.
fn assert_closed_with_old_rows(db: &Path) -> Result<()> {
    assert_eq!(store_threads(), 0, "a store thread outlived closing");
    assert_eq!(wal_len(db), 0, "the WAL was not checkpointed");
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("copy.db");
    std::fs::copy(db, &copy)?;
    let conn = rusqlite::Connection::open(&copy)?;
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sessions WHERE token LIKE 'token-%'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(n as usize, SESSIONS, "the copy misses sessions");
    Ok(())
}

#[test]
fn dropping_the_last_handle_inside_a_runtime_closes_soon_after() -> Result<()> {
    let _serial = serial();
    if !threads_countable() {
        return Ok(());
    }
    // In a task: drop returns at once, and the blocking pool closes the file.
    let dir = tempfile::tempdir()?;
    let store = AsyncSqliteStore::from(busy_store(dir.path())?);
    let db = store.as_sync().path().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()?;
    rt.block_on(async move { drop(store) });
    assert!(
        eventually(Duration::from_secs(20), || store_threads() == 0
            && wal_len(&db) == 0),
        "closed on the blocking pool"
    );
    assert_closed(&db)?;
    drop(rt);

    // At the latest, when the runtime shuts down.
    let dir = tempfile::tempdir()?;
    let store = AsyncSqliteStore::from(busy_store(dir.path())?);
    let db = store.as_sync().path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async move { drop(store) });
    drop(rt);
    assert_closed(&db)
}
