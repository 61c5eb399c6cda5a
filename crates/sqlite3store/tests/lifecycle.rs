//! No thread outlives the store. In a file of its own: it counts this
//! process's threads, so no other test may run beside it.

use std::time::Duration;

use sqlite3store::{Result, SqliteStore};

/// Threads of this process whose name starts with "sqlite3store-".
fn store_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with("sqlite3store-"))
                .count()
        })
        .unwrap_or(0)
}

fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn dropping_the_last_clone_ends_every_thread() -> Result<()> {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("no /proc: thread counting is Linux-only");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::new(dir.path().join("s.db"))?; // Go's New: cleanup thread on
    let clone = store.clone();
    // A new thread names itself as it starts, so wait for the names.
    assert!(
        eventually(|| store_threads() == 2),
        "cleanup and checkpoint threads"
    );
    store.stop_cleanup();
    drop(store);
    assert!(store_threads() >= 1, "a clone still holds the store");
    drop(clone);
    // Drop joins the threads: they are gone when it returns.
    assert_eq!(store_threads(), 0);

    // A store without cleanup has only the checkpoint thread.
    let store = SqliteStore::with_cleanup_interval(dir.path().join("t.db"), Duration::ZERO)?;
    assert!(
        eventually(|| store_threads() == 1),
        "checkpoint thread only"
    );
    drop(store);
    assert_eq!(store_threads(), 0);
    Ok(())
}
