//! File modes: a database the store creates, and its `-wal` and `-shm`, are
//! 0600 (owner only) whatever the umask; an existing file keeps the mode its
//! owner gave it.
//!
//! The umask is process-wide, so each case runs in a child process started
//! through `sh -c 'umask NNN && exec ...'` (no `unsafe` call in the tests).
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sqlite3store::SqliteStore;
use support::{emit, far_future, sidecar, TestResult};

const CHILD_TEST: &str = "new_files_are_private_whatever_the_umask";

fn mode(path: &Path) -> TestResult<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

/// The modes of the database, `-wal` and `-shm` while the store is open.
fn modes_while_open(store: &SqliteStore) -> TestResult<[u32; 3]> {
    let path = store.path();
    Ok([
        mode(path)?,
        mode(&sidecar(path, "-wal"))?,
        mode(&sidecar(path, "-shm"))?,
    ])
}

#[test]
fn new_files_are_private_whatever_the_umask() -> TestResult {
    if support::child_role().is_some() {
        return child_main();
    }
    for umask in ["022", "000", "077", "277"] {
        let dir = tempfile::tempdir()?;
        let wrapper = format!("umask {umask} && exec \"$@\"");
        let mut child =
            support::wrapped_child_command(&["sh", "-c", &wrapper, "sh"], CHILD_TEST, "modes")?
                .env("MODES_DIR", dir.path())
                .spawn()?;
        let lines: Vec<String> = support::lines(child.stdout.take().ok_or("no stdout")?)
            .iter()
            .collect();
        let status = child.wait()?;
        assert!(
            status.success(),
            "umask {umask}: child {status}, said {lines:?}"
        );
        // The child saw the umask it was given (a plain file shows it) ...
        let plain = u32::from_str_radix(umask, 8)?;
        assert!(
            lines.contains(&format!("plain {:o}", 0o666 & !plain)),
            "umask {umask}: {lines:?}"
        );
        // ... and the store's files were private regardless.
        assert!(
            lines.contains(&"store 600 600 600".to_owned()),
            "umask {umask}: {lines:?}"
        );
        assert_eq!(
            mode(&dir.path().join("sessions.db"))?,
            0o600,
            "umask {umask}"
        );
    }
    Ok(())
}

fn child_main() -> TestResult {
    let dir = std::path::PathBuf::from(support::child_env("MODES_DIR"));
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, b"x")?;
    emit(&format!("plain {:o}", mode(&plain)?));
    let store = SqliteStore::with_cleanup_interval(dir.join("sessions.db"), Duration::ZERO)?;
    store.commit("token", b"data", far_future())?;
    let [db, wal, shm] = modes_while_open(&store)?;
    emit(&format!("store {db:o} {wal:o} {shm:o}"));
    Ok(())
}

#[test]
fn an_existing_files_mode_is_left_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    // Made by its owner (or by Go's package) and shared with a group.
    rusqlite::Connection::open(&path)?.execute_batch(
        "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);",
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    store.commit("token", b"data", far_future())?;
    // The -wal and -shm follow the database's mode, as SQLite makes them.
    assert_eq!(modes_while_open(&store)?, [0o640; 3]);
    store.vacuum()?;
    drop(store);
    assert_eq!(mode(&path)?, 0o640);
    Ok(())
}

#[test]
fn a_file_that_exists_is_never_created_over() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    // An empty file (SQLite takes it for an empty database) keeps its mode
    // and is used as it is.
    std::fs::write(&path, b"")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604))?;
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    store.commit("token", b"data", far_future())?;
    assert_eq!(modes_while_open(&store)?, [0o604; 3]);
    Ok(())
}
