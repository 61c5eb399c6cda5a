//! Bad files and bad options: a clear error at open, and the file untouched.
//! (Bad tokens and data are in the conformance suite and hostile_input.rs.)

mod common;
mod support;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use common::Fixture;
use sqlite3store::{Error, Result, SqliteStore};

fn open(path: &std::path::Path) -> Result<SqliteStore> {
    SqliteStore::with_cleanup_interval(path, Duration::ZERO)
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.txt");
    let content = b"These are my notes, not a database. ".repeat(200);
    std::fs::write(&path, &content)?;
    let err = open(&path).unwrap_err();
    assert!(matches!(err, Error::NotADatabase(_)), "{err:?}");
    assert_eq!(err.to_string(), "file is not a SQLite database");
    assert!(err.source().is_some());
    assert_eq!(std::fs::read(&path)?, content, "the file was changed");
    assert!(!support::sidecar(&path, "-wal").exists());
    // Read-only open says the same.
    let err = SqliteStore::builder(&path)
        .read_only(true)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::NotADatabase(_)), "{err:?}");
    Ok(())
}

#[test]
fn a_directory_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot open session database"));
    assert!(err.source().is_some());
    Ok(())
}

#[test]
fn a_missing_directory_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let err = open(&dir.path().join("no/such/dir/s.db")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    Ok(())
}

#[test]
fn a_wrong_schema_is_an_error_at_open_and_nothing_changes() -> Result<()> {
    let fx = Fixture::new();
    fx.raw().execute_batch(
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY, payload TEXT);
         INSERT INTO sessions (payload) VALUES ('keep me');",
    )?;
    let err = fx.builder().build().unwrap_err();
    match &err {
        Error::SchemaMismatch { table, reason } => {
            assert_eq!(table, "sessions");
            assert!(reason.contains("token"), "{reason}");
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    let payload: String = fx
        .raw()
        .query_row("SELECT payload FROM sessions", [], |r| r.get(0))?;
    assert_eq!(payload, "keep me");
    // No expiry index was added to somebody else's table.
    let n: i64 = fx.raw().query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'sessions_expiry_idx'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(n, 0);
    Ok(())
}

/// Tables with Go's columns on which an operation would fail (cleanup
/// deletes by rowid; writes must succeed for any data and expiry) are
/// refused at open, by writers and readers alike, and left as they were.
#[test]
fn tables_an_operation_would_fail_on_are_refused_at_open() -> Result<()> {
    for (shape, why) in [
        (
            "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL) WITHOUT ROWID",
            "WITHOUT ROWID",
        ),
        (
            "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL UNIQUE)",
            "unique index",
        ),
        (
            "CREATE TABLE sessions (token TEXT COLLATE NOCASE PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL)",
            "binary collation",
        ),
    ] {
        let fx = Fixture::new();
        fx.raw().execute_batch(shape)?;
        common::go_insert(&fx.raw(), "old", b"x", fx.now() - Duration::from_secs(60));
        let before = std::fs::read(fx.path())?;
        for read_only in [false, true] {
            let err = fx.builder().read_only(read_only).build().unwrap_err();
            match &err {
                Error::SchemaMismatch { reason, .. } => {
                    assert!(reason.contains(why), "{shape}: {reason}")
                }
                other => panic!("{shape}: expected SchemaMismatch, got {other:?}"),
            }
        }
        assert_eq!(std::fs::read(fx.path())?, before, "{shape}: the file changed");
    }
    Ok(())
}

#[test]
fn another_table_name_lives_beside_gos() -> Result<()> {
    let fx = Fixture::new();
    let a = fx.builder().build()?;
    let b = fx.builder().table("admin_sessions").build()?;
    let exp = fx.now() + Duration::from_secs(60);
    a.commit("t", b"users", exp)?;
    b.commit("t", b"admins", exp)?;
    assert_eq!(a.find("t")?, Some(b"users".to_vec()));
    assert_eq!(b.find("t")?, Some(b"admins".to_vec()));
    Ok(())
}

#[test]
fn read_only_finds_work_and_writes_fail_clearly() -> Result<()> {
    let fx = Fixture::new();
    let exp = fx.now() + Duration::from_secs(60);
    fx.builder().build()?.commit("t", b"d", exp)?;
    let before = std::fs::read(fx.path())?;
    let ro = fx.builder().read_only(true).build()?;
    assert!(ro.is_read_only());
    assert_eq!(ro.find("t")?, Some(b"d".to_vec()));
    assert_eq!(ro.all()?.len(), 1);
    assert!(ro.stats()?.active == 1);
    for err in [
        ro.commit("t", b"x", exp).unwrap_err(),
        ro.delete("t").map(|_| ()).unwrap_err(),
        ro.delete_expired().map(|_| ()).unwrap_err(),
        ro.vacuum().unwrap_err(),
    ] {
        assert!(matches!(err, Error::ReadOnly(_)), "{err:?}");
        assert_eq!(err.to_string(), "session database is read-only");
    }
    drop(ro);
    assert_eq!(
        std::fs::read(fx.path())?,
        before,
        "read-only open changed the file"
    );
    Ok(())
}

#[test]
fn read_only_never_creates_a_file_or_table() -> Result<()> {
    let fx = Fixture::new();
    let err = fx.builder().read_only(true).build().unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!fx.path().exists());
    // An empty database without the table: a clear schema error.
    drop(rusqlite::Connection::open(fx.path())?);
    let err = fx.builder().read_only(true).build().unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
    Ok(())
}

#[test]
fn bad_options_are_refused_with_a_message() {
    let fx = Fixture::new();
    let cases: Vec<(sqlite3store::Builder, &str)> = vec![
        (fx.builder().table("bad name"), "table name"),
        (fx.builder().table(""), "table name"),
        (fx.builder().max_token_len(0), "max_token_len"),
        (fx.builder().max_data_len(usize::MAX), "max_data_len"),
        (fx.builder().readers(0), "readers"),
        (fx.builder().cleanup_batch_size(0), "cleanup_batch_size"),
        (fx.builder().checkpoint_pages(0), "checkpoint_pages"),
        (fx.builder().cache_size_kib(0), "cache_size_kib"),
        (fx.builder().hash_tokens(b""), "key"),
    ];
    for (builder, word) in cases {
        let err = builder.build().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        assert!(
            err.to_string().contains(word),
            "{err} should mention {word}"
        );
    }
    assert!(!fx.path().exists(), "a refused config created the file");
}

#[test]
fn past_and_pre_1970_expiries_never_panic() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    for t in [
        SystemTime::UNIX_EPOCH - Duration::from_secs(1),
        SystemTime::UNIX_EPOCH - Duration::from_secs(3_000 * 365 * 86_400),
        SystemTime::UNIX_EPOCH - Duration::from_nanos(1),
    ] {
        store.commit("old", b"x", t)?;
        assert_eq!(store.find("old")?, None);
    }
    Ok(())
}

#[test]
fn create_if_missing_false_creates_nothing() -> Result<()> {
    let fx = Fixture::new();
    let err = fx.builder().create_if_missing(false).build().unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!fx.path().exists());
    drop(rusqlite::Connection::open(fx.path())?.execute_batch("CREATE TABLE other (x)"));
    let before = std::fs::read(fx.path())?;
    let err = fx.builder().create_if_missing(false).build().unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
    assert_eq!(std::fs::read(fx.path())?, before, "the file was changed");
    // With the table there, it opens for writing.
    drop(fx.builder().build()?);
    let store = fx.builder().create_if_missing(false).build()?;
    store.commit("t", b"d", fx.now() + Duration::from_secs(60))?;
    Ok(())
}
