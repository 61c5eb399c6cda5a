//! One file, two implementations: rows written the way Go's package writes
//! them are read by the store, and rows the store writes are read by Go's
//! own queries.

mod common;

use std::time::{Duration, SystemTime};

use common::{go_insert, go_time, Fixture};
use rusqlite::params;
use sqlite3store::{julian_day, ManualClock, Result, SqliteStore};

const HOUR: Duration = Duration::from_secs(3600);

// The statements of Go's sqlite3store, verbatim but for placeholders.
const GO_FIND: &str = "SELECT data FROM sessions WHERE token = ?1 AND julianday('now') < expiry";
const GO_ALL: &str = "SELECT token, data FROM sessions WHERE julianday('now') < expiry";
const GO_DELETE: &str = "DELETE FROM sessions WHERE token = ?1";
const GO_CLEANUP: &str = "DELETE FROM sessions WHERE expiry < julianday('now')";

#[test]
fn go_rows_are_read_by_the_store() -> Result<()> {
    let fx = Fixture::new();
    // 2026-01-02T03:04:05.678Z
    let expiry = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
    fx.clock.set(expiry - Duration::from_millis(1));
    let store = fx.builder().build()?;
    fx.raw().execute(
        "REPLACE INTO sessions (token, data, expiry) VALUES (?1, ?2, julianday('2026-01-02T03:04:05.678'))",
        params!["go-token", b"go-data".as_slice()],
    )?;
    assert_eq!(store.find("go-token")?, Some(b"go-data".to_vec()));
    let exp = store.find_with_expiry("go-token")?.expect("found").expiry;
    assert_eq!(exp, expiry, "millisecond precision kept");
    // At the expiry instant the row is expired, to the millisecond.
    fx.clock.set(expiry);
    assert_eq!(store.find("go-token")?, None);
    Ok(())
}

#[test]
fn store_rows_are_read_by_gos_queries() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shared.db");
    // Real time here: Go's queries use julianday('now').
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    let now = SystemTime::now();
    store.commit("live", b"live-data", now + HOUR)?;
    store.commit("dead", b"dead-data", now - HOUR)?;

    let go = rusqlite::Connection::open(&path)?;
    let find = |token: &str| -> rusqlite::Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        go.query_row(GO_FIND, [token], |r| r.get(0)).optional()
    };
    assert_eq!(find("live")?, Some(b"live-data".to_vec()));
    assert_eq!(find("dead")?, None);
    let all: Vec<(String, Vec<u8>)> = go
        .prepare(GO_ALL)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    assert_eq!(all, vec![("live".to_string(), b"live-data".to_vec())]);

    // Go's cleanup and delete, on the store's rows, seen by the store.
    assert_eq!(go.execute(GO_CLEANUP, [])?, 1);
    go_insert(&go, "from-go", b"go", now + HOUR);
    assert_eq!(store.find("from-go")?, Some(b"go".to_vec()));
    assert_eq!(go.execute(GO_DELETE, ["live"])?, 1);
    assert_eq!(store.find("live")?, None);
    Ok(())
}

#[test]
fn expiry_is_bit_identical_to_gos() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    let conn = fx.raw();
    for ms in [
        0_u64,
        1,
        999,
        1_767_323_045_678,
        1_790_000_000_123,
        4_102_444_800_000,
    ] {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        store.commit("t", b"d", t)?;
        let (ours, gos): (f64, f64) = conn.query_row(
            "SELECT expiry, julianday(?1) FROM sessions WHERE token = 't'",
            [go_time(t)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!(ours.to_bits(), gos.to_bits(), "{ms} ms: {}", go_time(t));
        assert_eq!(ours, julian_day::from_system_time(t));
    }
    Ok(())
}

#[test]
fn a_file_created_by_go_opens_and_keeps_working() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("go.db");
    let now = SystemTime::now();
    {
        // What Go's README tells users to run, in a rollback-journal file.
        let go = rusqlite::Connection::open(&path)?;
        go.execute_batch(
            "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);
             CREATE INDEX sessions_expiry_idx ON sessions(expiry);",
        )?;
        go_insert(&go, "old-go-session", b"hello", now + HOUR);
    }
    let clock = std::sync::Arc::new(ManualClock::new(now));
    let store = SqliteStore::builder(&path)
        .clock(clock.clone())
        .cleanup_interval(Duration::ZERO)
        .build()?;
    assert_eq!(store.find("old-go-session")?, Some(b"hello".to_vec()));
    store.commit("new", b"rust", now + HOUR)?;
    clock.advance(2 * HOUR);
    assert_eq!(store.delete_expired()?.removed, 2);
    // Only the nullable owner column and its partial index were added to
    // Go's schema (see tests/owners.rs for Go's statements on it).
    let objects: Vec<String> = rusqlite::Connection::open(&path)?
        .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    assert_eq!(
        objects,
        ["sessions", "sessions_expiry_idx", "sessions_owner_idx"]
    );
    Ok(())
}

#[test]
fn the_schema_the_store_creates_is_gos() -> Result<()> {
    let fx = Fixture::new();
    drop(fx.builder().build()?);
    let sql: Vec<String> = fx
        .raw()
        .prepare("SELECT sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    assert_eq!(
        sql,
        [
            "CREATE TABLE \"sessions\" (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner TEXT)",
            "CREATE INDEX \"sessions_expiry_idx\" ON \"sessions\"(expiry)",
            "CREATE INDEX \"sessions_owner_idx\" ON \"sessions\"(owner) WHERE owner IS NOT NULL",
        ]
    );
    // Go's queries use the index we created.
    let plan: String = fx.raw().query_row(
        "EXPLAIN QUERY PLAN DELETE FROM sessions WHERE expiry < julianday('now')",
        [],
        |r| r.get(3),
    )?;
    assert!(plan.contains("sessions_expiry_idx"), "{plan}");
    Ok(())
}
