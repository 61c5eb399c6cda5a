//! Shared by the behaviour tests: a temp-dir fixture with a manual clock,
//! Go's way of writing a row, and (in `harness`) the conformance harness
//! that runs `session_contract`'s suite against both fronts.
#![allow(dead_code, unreachable_pub)]

pub mod harness;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sqlite3store::{Builder, ManualClock, SqliteStore};
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
