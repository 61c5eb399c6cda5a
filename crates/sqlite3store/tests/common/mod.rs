//! The conformance suite: what every front of the store (sync, async) must
//! do, as plain generic functions. `conformance!` stamps out the `#[test]`
//! wrappers for one front. Most cases port Go's own sqlite3store tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sqlite3store::{Builder, ManualClock, Result, SqliteStore};
use tempfile::TempDir;

/// A temp dir with a database path and a manual clock.
pub struct Fixture {
    pub dir: TempDir,
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            // A fixed, recent instant: tests never depend on the real date.
            clock: Arc::new(ManualClock::new(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            )),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("sessions.db")
    }

    /// Options with the manual clock and no cleanup thread.
    pub fn builder(&self) -> Builder {
        SqliteStore::builder(self.path())
            .clock(self.clock.clone())
            .cleanup_interval(Duration::ZERO)
    }

    pub fn now(&self) -> SystemTime {
        self.clock.get()
    }

    /// Rows in the table, expired or not, counted by a plain connection.
    pub fn rows(&self) -> i64 {
        self.raw()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .expect("count rows")
    }

    /// A plain connection to the same file, as Go (or a person) would open it.
    pub fn raw(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.path()).expect("raw connection");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }
}

// One front trait for sync and async, shared with the other suites.
use crate::support::Front;

/// Inserts a row the way Go's package does (its Commit statement).
pub fn go_insert(conn: &rusqlite::Connection, token: &str, data: &[u8], expiry: SystemTime) {
    conn.execute(
        "REPLACE INTO sessions (token, data, expiry) VALUES (?1, ?2, julianday(?3))",
        rusqlite::params![token, data, go_time(expiry)],
    )
    .expect("go-style insert");
}

/// Formats a time as Go's package does: `expiry.UTC().Format("2006-01-02T15:04:05.999")`.
pub fn go_time(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let milli = t.millisecond();
    if milli != 0 {
        // Go's .999 drops trailing zeros.
        let frac = format!("{milli:03}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// Polls `cond` until it holds or `limit` passes; for background threads.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const MINUTE: Duration = Duration::from_secs(60);

// ---- Go's own tests, ported ----

/// Go's TestFind: a row inserted directly is found.
pub fn find_existing<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    go_insert(
        &fx.raw(),
        "session_token",
        b"encoded_data",
        fx.now() + MINUTE,
    );
    assert_eq!(store.find("session_token")?, Some(b"encoded_data".to_vec()));
    Ok(())
}

/// Go's TestFindMissing.
pub fn find_missing<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    assert_eq!(store.find("missing_session_token")?, None);
    Ok(())
}

/// Go's TestSaveNew: the row is in the table with its data and expiry.
pub fn commit_new<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    let expiry = fx.now() + MINUTE;
    store.commit("session_token", b"encoded_data", expiry)?;
    let (data, jd): (Vec<u8>, f64) = fx.raw().query_row(
        "SELECT data, expiry FROM sessions WHERE token = 'session_token'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!(data, b"encoded_data");
    assert_eq!(jd, sqlite3store::julian_day::from_system_time(expiry));
    Ok(())
}

/// Go's TestSaveUpdated: commit over an existing token replaces data and expiry.
pub fn commit_updates<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    go_insert(
        &fx.raw(),
        "session_token",
        b"encoded_data",
        fx.now() + MINUTE,
    );
    store.commit("session_token", b"new_encoded_data", fx.now() + 2 * MINUTE)?;
    assert_eq!(
        store.find("session_token")?,
        Some(b"new_encoded_data".to_vec())
    );
    assert_eq!(fx.rows(), 1);
    // A shorter expiry is honoured too (replace, not max).
    store.commit("session_token", b"x", fx.now() + Duration::from_millis(10))?;
    fx.clock.advance(Duration::from_millis(10));
    assert_eq!(store.find("session_token")?, None);
    Ok(())
}

/// Go's TestExpiry: found until the expiry passes, then not; the row is
/// still there until cleanup.
pub fn expiry<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    store.commit(
        "session_token",
        b"encoded_data",
        fx.now() + Duration::from_millis(100),
    )?;
    assert_eq!(store.find("session_token")?, Some(b"encoded_data".to_vec()));
    fx.clock.advance(Duration::from_millis(99));
    assert!(store.find("session_token")?.is_some());
    // Expired exactly at its expiry: "not after now" is expired.
    fx.clock.advance(Duration::from_millis(1));
    assert_eq!(store.find("session_token")?, None);
    assert!(store.all()?.is_empty());
    assert_eq!(fx.rows(), 1);
    Ok(())
}

/// Go's TestCleanup: the background thread removes expired rows on its
/// interval.
pub fn cleanup_thread_removes_expired<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(
        fx.builder()
            .cleanup_interval(Duration::from_millis(20))
            .first_cleanup_delay(Duration::from_millis(20)),
    )?;
    store.commit(
        "session_token",
        b"encoded_data",
        fx.now() + Duration::from_millis(100),
    )?;
    store.commit("keeper", b"stays", fx.now() + MINUTE)?;
    assert_eq!(fx.rows(), 2);
    fx.clock.advance(Duration::from_millis(200));
    assert!(
        eventually(Duration::from_secs(20), || fx.rows() == 1),
        "cleanup did not run"
    );
    assert_eq!(store.find("keeper")?, Some(b"stays".to_vec()));
    store.stop_cleanup();
    Ok(())
}

/// Go's TestStopNilCleanup: stopping a store whose cleanup never started.
pub fn stop_without_cleanup<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder().cleanup_interval(Duration::ZERO))?;
    store.stop_cleanup();
    store.stop_cleanup(); // idempotent
                          // The store works on after the stops; expired rows wait for a cleanup
                          // on demand, which still runs.
    store.commit("live", b"x", fx.now() + MINUTE)?;
    store.commit("old", b"y", fx.now() - MINUTE)?;
    assert_eq!(store.find("live")?, Some(b"x".to_vec()));
    assert_eq!(fx.rows(), 2);
    assert_eq!(store.delete_expired()?, 1);
    assert_eq!(fx.rows(), 1);
    Ok(())
}

// ---- the rest of the contract ----

pub fn delete_is_idempotent<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    store.commit("t", b"d", fx.now() + MINUTE)?;
    assert!(store.delete("t")?);
    assert_eq!(store.find("t")?, None);
    assert!(!store.delete("t")?);
    assert!(!store.delete("never-existed")?);
    Ok(())
}

pub fn all_returns_active_only<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    assert!(store.all()?.is_empty());
    store.commit("a", b"1", fx.now() + MINUTE)?;
    store.commit("b", b"2", fx.now() + 2 * MINUTE)?;
    store.commit("gone", b"3", fx.now() - MINUTE)?;
    let all = store.all()?;
    assert_eq!(all.len(), 2);
    assert_eq!(all["a"], b"1");
    assert_eq!(all["b"], b"2");
    fx.clock.advance(MINUTE);
    assert_eq!(store.all()?.keys().collect::<Vec<_>>(), ["b"]);
    Ok(())
}

pub fn delete_expired_on_demand<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder().cleanup_batch_size(7))?;
    for i in 0..50 {
        store.commit(&format!("old{i}"), b"x", fx.now() + Duration::from_secs(i))?;
    }
    for i in 0..10 {
        store.commit(&format!("new{i}"), b"y", fx.now() + 10 * MINUTE)?;
    }
    fx.clock.advance(Duration::from_secs(30)); // old0..=old30 expired
    assert_eq!(store.delete_expired()?, 31);
    assert_eq!(store.delete_expired()?, 0);
    assert_eq!(store.all()?.len(), 19 + 10);
    Ok(())
}

pub fn past_expiry_is_stored_but_never_found<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    let long_ago = SystemTime::UNIX_EPOCH - Duration::from_secs(100 * 365 * 86_400);
    store.commit("past", b"x", long_ago)?;
    store.commit("epoch", b"x", SystemTime::UNIX_EPOCH)?;
    assert_eq!(store.find("past")?, None);
    assert_eq!(store.find("epoch")?, None);
    assert_eq!(fx.rows(), 2);
    assert_eq!(store.delete_expired()?, 2);
    Ok(())
}

pub fn far_future_expiry_is_found<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    let centuries = fx.now() + Duration::from_secs(800 * 365 * 86_400);
    store.commit("future", b"x", centuries)?;
    // Beyond year 9999 is clamped, never a panic; still active.
    store.commit(
        "beyond",
        b"y",
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 2),
    )?;
    assert_eq!(store.find("future")?, Some(b"x".to_vec()));
    assert_eq!(store.find("beyond")?, Some(b"y".to_vec()));
    Ok(())
}

pub fn create_does_not_overwrite_active<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    assert!(store.create("id", b"first", fx.now() + MINUTE)?);
    assert!(!store.create("id", b"second", fx.now() + MINUTE)?);
    assert_eq!(store.find("id")?, Some(b"first".to_vec()));
    fx.clock.advance(2 * MINUTE);
    // An expired holder of the id may be replaced.
    assert!(store.create("id", b"third", fx.now() + MINUTE)?);
    assert_eq!(store.find("id")?, Some(b"third".to_vec()));
    Ok(())
}

pub fn odd_tokens_round_trip<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder())?;
    let tokens = [
        "'; DROP TABLE sessions; --",
        "\"quoted\"",
        "nul\0byte",
        "ümlaut ☃ 🦀",
        "مرحبا\u{202e}",
        "tab\tnew\nline",
        "%_*?",
        " ",
    ];
    for (i, t) in tokens.iter().enumerate() {
        store.commit(t, &[i as u8; 3], fx.now() + MINUTE)?;
    }
    let all = store.all()?;
    assert_eq!(all.len(), tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(store.find(t)?, Some(vec![i as u8; 3]), "{t:?}");
        assert_eq!(all.get(*t), Some(&vec![i as u8; 3]), "{t:?}");
    }
    // A prefix of a stored token is a different token.
    assert_eq!(store.find("nul")?, None);
    Ok(())
}

pub fn bad_tokens_are_not_found<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    let store = F::open(fx.builder().max_token_len(16))?;
    assert_eq!(store.find("")?, None);
    assert_eq!(store.find(&"x".repeat(17))?, None);
    assert_eq!(store.find(&"x".repeat(1 << 20))?, None);
    assert!(!store.delete("")?);
    Ok(())
}

pub fn bad_commits_are_refused_and_write_nothing<F: Front>() -> Result<()> {
    use sqlite3store::Error;
    let fx = Fixture::new();
    let store = F::open(fx.builder().max_token_len(16).max_data_len(100))?;
    let exp = fx.now() + MINUTE;
    assert!(matches!(
        store.commit("", b"x", exp),
        Err(Error::EmptyToken)
    ));
    assert!(matches!(
        store.commit(&"x".repeat(17), b"x", exp),
        Err(Error::TokenTooLong { len: 17, max: 16 })
    ));
    assert!(matches!(
        store.commit("ok", &[0; 101], exp),
        Err(Error::DataTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        store.create("", b"x", exp),
        Err(Error::EmptyToken)
    ));
    // The limits themselves are accepted.
    store.commit(&"x".repeat(16), &[7; 100], exp)?;
    store.commit("empty-data", b"", exp)?;
    assert_eq!(store.find("empty-data")?, Some(Vec::new()));
    assert_eq!(fx.rows(), 2);
    Ok(())
}

pub fn data_survives_reopen<F: Front>() -> Result<()> {
    let fx = Fixture::new();
    {
        let store = F::open(fx.builder())?;
        store.commit("persist", b"across opens", fx.now() + MINUTE)?;
    }
    let store = F::open(fx.builder())?;
    assert_eq!(store.find("persist")?, Some(b"across opens".to_vec()));
    Ok(())
}

/// Stamps out one `#[test]` per conformance case for a front type.
#[macro_export]
macro_rules! conformance {
    ($front:ty: $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() -> sqlite3store::Result<()> {
                common::$case::<$front>()
            }
        )*
    };
    ($front:ty) => {
        $crate::conformance!($front:
            find_existing, find_missing, commit_new, commit_updates, expiry,
            cleanup_thread_removes_expired, stop_without_cleanup,
            delete_is_idempotent, all_returns_active_only, delete_expired_on_demand,
            past_expiry_is_stored_but_never_found, far_future_expiry_is_found,
            create_does_not_overwrite_active, odd_tokens_round_trip,
            bad_tokens_are_not_found, bad_commits_are_refused_and_write_nothing,
            data_survives_reopen,
        );
    };
}
