//! Go's scs `sqlite3store`, reproduced: its exact SQL, through plain rusqlite
//! connections set up as mattn/go-sqlite3 sets them up, pooled the way
//! `database/sql` pools them.
//!
//! What Go's package gets, and so what this does:
//! - rollback journal (`journal_mode=DELETE`, nothing sets WAL),
//!   `synchronous=NORMAL`, which in rollback mode still syncs every commit, and `busy_timeout=5000` (the driver's defaults),
//!   serialized connections (`SQLITE_OPEN_FULLMUTEX`, as the driver opens);
//! - every call prepares its statement and finalizes it (the driver prepares
//!   per query; nothing is cached);
//! - a pool that grows to the number of concurrent callers and reuses
//!   connections (generous: `database/sql` keeps only 2 idle by default and
//!   closes the rest);
//! - the expiry passed as text, `expiry.UTC().Format("2006-01-02T15:04:05.999")`,
//!   into `julianday(?)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::workload::{
    token_string, BoxError, Durability, Layer, SeedRow, System, Target, TOKEN_BYTES,
};
use crate::TokenKey;

const FIND: &str = "SELECT data FROM sessions WHERE token = ? AND julianday('now') < expiry";
const COMMIT: &str = "REPLACE INTO sessions (token, data, expiry) VALUES (?, ?, julianday(?))";
const DELETE: &str = "DELETE FROM sessions WHERE token = ?";
const ALL: &str = "SELECT token, data FROM sessions WHERE julianday('now') < expiry";
const DELETE_EXPIRED: &str = "DELETE FROM sessions WHERE expiry < julianday('now')";
/// The schema Go's README tells users to create.
pub(crate) const SCHEMA: &str =
    "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);
CREATE INDEX sessions_expiry_idx ON sessions(expiry);";

/// The Go-style baseline.
#[derive(Debug)]
pub(crate) struct GoStyle;

/// An open Go-style database: a `database/sql`-like pool.
#[derive(Debug)]
pub(crate) struct GoStyleDb {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl System for GoStyle {
    type Target = GoStyleDb;

    fn name(&self) -> &'static str {
        "go-style"
    }

    /// A rollback journal syncs the journal and the file on every commit,
    /// `synchronous=NORMAL` included.
    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::Raw
    }

    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(SCHEMA)?;
        insert_rows(&conn, rows)?;
        Ok(())
    }

    fn open(&self, path: &Path) -> Result<GoStyleDb, BoxError> {
        let db = GoStyleDb {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        // database/sql's Open connects lazily; Ping would open one.
        drop(db.conn()?);
        Ok(db)
    }
}

/// Inserts `rows` in one transaction (setup, not measured), each under its
/// 43-character token. Expiries are stored as the Julian day numbers both
/// stores write.
pub(crate) fn insert_rows(
    conn: &Connection,
    rows: &mut dyn Iterator<Item = SeedRow>,
) -> Result<(), BoxError> {
    insert_rows_as(conn, rows, &mut |row| token_string(&row.token))
}

/// [`insert_rows`], each row under the token `token` gives it.
pub(crate) fn insert_rows_as(
    conn: &Connection,
    rows: &mut dyn Iterator<Item = SeedRow>,
    token: &mut dyn FnMut(&SeedRow) -> String,
) -> Result<(), BoxError> {
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    conn.execute_batch("BEGIN")?;
    {
        let mut insert =
            conn.prepare("INSERT INTO sessions (token, data, expiry) VALUES (?1, ?2, ?3)")?;
        for row in rows {
            let expiry = sqlite3store::julian_day::from_system_time(row.expiry);
            insert.execute(params![token(&row), &row.data[..], expiry])?;
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// A pooled connection, returned on drop.
struct Pooled<'a> {
    db: &'a GoStyleDb,
    conn: Option<Connection>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.lock().push(conn);
        }
    }
}

impl GoStyleDb {
    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, or a new one: the pool grows to the concurrency.
    fn conn(&self) -> Result<Pooled<'_>, BoxError> {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_like_mattn(&self.path)?,
        };
        Ok(Pooled {
            db: self,
            conn: Some(conn),
        })
    }
}

/// Opens a connection as mattn/go-sqlite3 does by default.
fn open_like_mattn(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_FULL_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(5000))?;
    conn.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl Target for GoStyleDb {
    type Key = TokenKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> TokenKey {
        TokenKey::new(token, data, expiry)
    }

    fn find(&self, key: &TokenKey) -> Result<bool, BoxError> {
        let conn = self.conn()?;
        let found = conn
            .prepare(FIND)?
            .query_row([&key.token], |r| r.get::<_, Vec<u8>>(0))
            .optional()?;
        Ok(found.is_some())
    }

    fn commit(&self, key: &TokenKey) -> Result<(), BoxError> {
        let conn = self.conn()?;
        let expiry = go_time_format(key.expiry);
        conn.prepare(COMMIT)?
            .execute(params![key.token, &key.data[..], expiry])?;
        Ok(())
    }

    fn delete(&self, key: &TokenKey) -> Result<(), BoxError> {
        let conn = self.conn()?;
        conn.prepare(DELETE)?.execute([&key.token])?;
        Ok(())
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        let all = || -> Result<usize, BoxError> {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(ALL)?;
            let mut rows = stmt.query([])?;
            let mut sessions = HashMap::new();
            while let Some(row) = rows.next()? {
                sessions.insert(row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?);
            }
            Ok(sessions.len())
        };
        Some(all())
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        let conn = self.conn()?;
        let removed = conn.prepare(DELETE_EXPIRED)?.execute([])?;
        Ok(Some(removed as u64))
    }

    fn count(&self) -> Result<u64, BoxError> {
        let conn = self.conn()?;
        let n: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

/// Go's `t.UTC().Format("2006-01-02T15:04:05.999")`: milliseconds with
/// trailing zeros dropped (and the dot, when they are all zero), truncated.
fn go_time_format(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t.max(UNIX_EPOCH));
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ms = t.millisecond();
    if ms > 0 {
        let frac = format!("{ms:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn go_format_matches_go() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_120);
        assert_eq!(go_time_format(t), "2023-11-14T22:13:20.12");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(go_time_format(t), "2000-02-29T00:00:00");
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_999_999_999);
        assert_eq!(go_time_format(t), "2023-11-14T22:13:20.999");
    }

    #[test]
    fn julianday_of_go_format_is_what_sqlite3store_stores() -> Result<(), BoxError> {
        let conn = Connection::open_in_memory()?;
        for ms in [0u64, 1, 120, 999, 1_700_000_000_123, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let go: f64 =
                conn.query_row("SELECT julianday(?)", [go_time_format(t)], |r| r.get(0))?;
            assert_eq!(go, sqlite3store::julian_day::from_system_time(t), "{ms}");
        }
        Ok(())
    }
}
