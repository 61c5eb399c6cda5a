//! Owners on a file Go's package shares: the owner column is added at open,
//! Go's exact statements keep reading, writing and deleting sessions on a
//! file with owners, and no path leaves a stale owner behind. Also the
//! revoke of a large owner, measured against a concurrent commit.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{go_insert, Fixture};
use rusqlite::OptionalExtension;
use sqlite3store::{Result, SqliteStore};

const HOUR: Duration = Duration::from_secs(3600);

// The statements of Go's sqlite3store, verbatim but for placeholders.
const GO_FIND: &str = "SELECT data FROM sessions WHERE token = ?1 AND julianday('now') < expiry";
const GO_ALL: &str = "SELECT token, data FROM sessions WHERE julianday('now') < expiry";
const GO_DELETE: &str = "DELETE FROM sessions WHERE token = ?1";
const GO_CLEANUP: &str = "DELETE FROM sessions WHERE expiry < julianday('now')";
const GO_SCHEMA: &str =
    "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);
     CREATE INDEX sessions_expiry_idx ON sessions(expiry);";

fn has_owner_column(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'owner'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

#[test]
fn gos_statements_work_on_a_file_with_owners() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shared.db");
    // Real time: Go's statements use julianday('now').
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    let now = SystemTime::now();
    for token in ["a1", "a2", "a3", "a4"] {
        store.commit_owned(token, b"rust", now + HOUR, Some("alice"))?;
    }
    store.commit_owned("a-old", b"rust", now - HOUR, Some("alice"))?;
    assert_eq!(store.count_owner("alice")?, 4);

    let go = rusqlite::Connection::open(&path)?;
    go.busy_timeout(Duration::from_secs(5))?;
    // Go reads the owned sessions.
    let find = |token: &str| -> rusqlite::Result<Option<Vec<u8>>> {
        go.query_row(GO_FIND, [token], |r| r.get(0)).optional()
    };
    assert_eq!(find("a1")?, Some(b"rust".to_vec()));
    let all: i64 = go
        .prepare(GO_ALL)?
        .query_map([], |r| r.get::<_, String>(0))?
        .count() as i64;
    assert_eq!(all, 4);
    // Go's Commit (REPLACE naming three columns) rewrites the row without
    // an owner: the session is no longer counted as alice's.
    go_insert(&go, "a1", b"go", now + HOUR);
    assert_eq!(store.find("a1")?, Some(b"go".to_vec()));
    assert_eq!(store.count_owner("alice")?, 3);
    // Go's Delete takes the owner with the row.
    assert_eq!(go.execute(GO_DELETE, ["a2"])?, 1);
    assert_eq!(store.count_owner("alice")?, 2);
    // Go's cleanup removes the expired owned row.
    assert_eq!(go.execute(GO_CLEANUP, [])?, 1);
    // Go inserts new sessions; they have no owner.
    go_insert(&go, "from-go", b"go", now + HOUR);
    assert_eq!(store.count_owner("alice")?, 2);
    let listed: Vec<String> = store
        .list_owner("alice", 10)?
        .into_iter()
        .map(|l| l.token)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t == "a3" || t == "a4"), "{listed:?}");
    // Revoking removes exactly what is left, nothing Go wrote.
    assert_eq!(store.revoke_owner("alice")?, 2);
    assert_eq!(find("a3")?, None);
    assert_eq!(find("a1")?, Some(b"go".to_vec()));
    assert_eq!(find("from-go")?, Some(b"go".to_vec()));
    let stats = store.stats()?;
    assert_eq!((stats.owners, stats.owned, stats.active), (0, 0, 2));
    Ok(())
}

#[test]
fn a_go_file_gets_the_owner_column_at_open_and_go_keeps_working() -> Result<()> {
    let fx = Fixture::new();
    let go = fx.raw();
    go.execute_batch(GO_SCHEMA)?;
    go_insert(&go, "before", b"go", fx.now() + HOUR);
    assert!(!has_owner_column(&go)?);
    // Go's connection stays open while the store adds the column.
    let mut go_find = go.prepare("SELECT data FROM sessions WHERE token = ?1")?;
    let store = fx.builder().build()?;
    assert!(has_owner_column(&go)?);
    store.commit_owned("mine", b"rust", fx.now() + HOUR, Some("alice"))?;
    // Go's statements, prepared before the column existed, still run.
    let data: Vec<u8> = go_find.query_row(["mine"], |r| r.get(0))?;
    assert_eq!(data, b"rust");
    go_insert(&go, "after", b"go", fx.now() + HOUR);
    assert_eq!(store.find("before")?, Some(b"go".to_vec()));
    assert_eq!(store.find("after")?, Some(b"go".to_vec()));
    assert_eq!(store.count_owner("alice")?, 1);
    // Opening again adds nothing more.
    drop(store);
    drop(fx.builder().build()?);
    let objects: i64 = fx.raw().query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'sessions_owner_idx'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(objects, 1);
    Ok(())
}

#[test]
fn a_read_only_store_on_a_go_file_finds_no_owners_and_changes_nothing() -> Result<()> {
    let fx = Fixture::new();
    let go = fx.raw();
    go.execute_batch(GO_SCHEMA)?;
    go_insert(&go, "t", b"go", fx.now() + HOUR);
    let store = fx.builder().read_only(true).build()?;
    assert_eq!(store.count_owner("alice")?, 0);
    assert!(store.list_owner("alice", 10)?.is_empty());
    let stats = store.stats()?;
    assert_eq!((stats.active, stats.owners, stats.owned), (1, 0, 0));
    assert!(matches!(
        store.revoke_owner("alice"),
        Err(sqlite3store::Error::ReadOnly(_))
    ));
    assert!(
        !has_owner_column(&go)?,
        "a read-only open changed the schema"
    );
    Ok(())
}

#[test]
fn an_owner_column_of_the_wrong_shape_is_refused() -> Result<()> {
    let fx = Fixture::new();
    fx.raw().execute_batch(
        "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner INTEGER)",
    )?;
    let err = fx.builder().build().unwrap_err();
    assert!(
        matches!(err, sqlite3store::Error::SchemaMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("owner"), "{err}");
    Ok(())
}

/// Revoking an owner with 10,000 sessions while another thread commits:
/// the revoke works in batches, so the commits keep going. The bound
/// asserted is a generous timeout, not a performance claim; the measured
/// worst wait is printed.
#[test]
fn revoking_a_large_owner_does_not_hold_up_other_writes() -> Result<()> {
    const SESSIONS: usize = 10_000;
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    let exp = fx.now() + HOUR;
    for i in 0..SESSIONS {
        store.commit_owned(&format!("s{i:05}"), &[7; 64], exp, Some("big"))?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let other = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        std::thread::spawn(move || -> Result<(Duration, u32)> {
            let (mut worst, mut n) = (Duration::ZERO, 0_u32);
            while !done.load(Ordering::Acquire) {
                let started = Instant::now();
                store.commit("other", b"x", exp)?;
                worst = worst.max(started.elapsed());
                n += 1;
            }
            Ok((worst, n))
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let removed = store.revoke_owner("big");
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    let (worst, commits) = other.join().expect("commit thread")?;
    assert_eq!(removed?, SESSIONS as u64);
    assert_eq!(store.count_owner("big")?, 0);
    assert_eq!(fx.rows(), 1);
    println!(
        "revoked {SESSIONS} sessions in {took:?}; {commits} concurrent commits, worst wait {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(2),
        "a commit waited {worst:?} behind the revoke"
    );
    Ok(())
}
