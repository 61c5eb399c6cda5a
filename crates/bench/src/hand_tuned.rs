//! "Hand-tuned": what plain rusqlite does on this machine with a few
//! well-known settings, as issue 13 describes it, to show how far the store
//! is from SQLite's own speed:
//! - WAL, `synchronous=NORMAL` (survives a process crash, like the store's
//!   default);
//! - one read-only connection per thread (thread-local), each with
//!   `mmap_size` 256 MiB and a 16 MiB page cache, statements cached;
//! - one writer connection behind a mutex, autocommit per write;
//! - cleanup as one `DELETE`.
//!
//! Go's table and Julian-day expiries, so the same file format as the other
//! systems; `all()` builds the same map as sqlite3store's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::go_style;
use crate::workload::{BoxError, Durability, Layer, SeedRow, System, Target, TOKEN_BYTES};
use crate::TokenKey;

const FIND: &str = "SELECT data FROM sessions WHERE token = ?1 AND julianday('now') < expiry";
const COMMIT: &str = "INSERT INTO sessions (token, data, expiry) VALUES (?1, ?2, ?3) \
     ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry";
const DELETE: &str = "DELETE FROM sessions WHERE token = ?1";
const ALL: &str = "SELECT token, data FROM sessions WHERE julianday('now') < expiry";
const DELETE_EXPIRED: &str = "DELETE FROM sessions WHERE expiry < julianday('now')";
/// `mmap_size` of each reader: 256 MiB.
const MMAP_BYTES: i64 = 256 << 20;
/// Page cache of each reader: 16 MiB (negative: KiB).
const CACHE_KIB: i64 = -16 * 1024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tells open databases apart in each thread's map of readers.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's read-only connection to each open database, by id.
    /// A worker thread's connections close when it ends.
    static READERS: RefCell<HashMap<usize, Connection>> = RefCell::new(HashMap::new());
}

/// The hand-tuned rusqlite program.
#[derive(Debug)]
pub(crate) struct HandTuned;

/// An open database: the writer, and where the readers open.
#[derive(Debug)]
pub(crate) struct HandTunedDb {
    id: usize,
    path: PathBuf,
    writer: Mutex<Connection>,
}

impl System for HandTuned {
    type Target = HandTunedDb;

    fn name(&self) -> &'static str {
        crate::HAND_TUNED
    }

    fn durability(&self) -> Durability {
        Durability::ProcessCrash
    }

    fn layer(&self) -> Layer {
        Layer::Raw
    }

    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(go_style::SCHEMA)?;
        go_style::insert_rows(&conn, rows)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        Ok(())
    }

    fn open(&self, path: &Path) -> Result<HandTunedDb, BoxError> {
        let writer = Connection::open(path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        writer.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(HandTunedDb {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            writer: Mutex::new(writer),
        })
    }
}

impl HandTunedDb {
    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on this thread's reader, opening it on first use.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, BoxError>) -> Result<T, BoxError> {
        READERS.with(|readers| {
            let mut readers = readers.borrow_mut();
            let conn = match readers.entry(self.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.open_reader()?),
            };
            f(conn)
        })
    }

    fn open_reader(&self) -> Result<Connection, BoxError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        Ok(conn)
    }
}

impl Drop for HandTunedDb {
    fn drop(&mut self) {
        // The reader of the thread that drops it (the driver's, from all()
        // and count()); workers' readers closed when their threads ended.
        // (Nothing to do if this thread is already tearing its locals down.)
        if let Ok(Some(reader)) = READERS.try_with(|readers| readers.borrow_mut().remove(&self.id))
        {
            drop(reader);
        }
    }
}

impl Target for HandTunedDb {
    type Key = TokenKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> TokenKey {
        TokenKey::new(token, data, expiry)
    }

    fn find(&self, key: &TokenKey) -> Result<bool, BoxError> {
        self.read(|conn| {
            let found = conn
                .prepare_cached(FIND)?
                .query_row([&key.token], |r| r.get::<_, Vec<u8>>(0))
                .optional()?;
            Ok(found.is_some())
        })
    }

    fn commit(&self, key: &TokenKey) -> Result<(), BoxError> {
        let expiry = sqlite3store::julian_day::from_system_time(key.expiry);
        let conn = self.writer();
        conn.prepare_cached(COMMIT)?
            .execute(params![key.token, &key.data[..], expiry])?;
        Ok(())
    }

    fn delete(&self, key: &TokenKey) -> Result<(), BoxError> {
        let conn = self.writer();
        conn.prepare_cached(DELETE)?.execute([&key.token])?;
        Ok(())
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        Some(self.read(|conn| {
            let mut stmt = conn.prepare_cached(ALL)?;
            let mut rows = stmt.query([])?;
            let mut sessions: HashMap<String, Vec<u8>> = HashMap::new();
            while let Some(row) = rows.next()? {
                sessions.insert(row.get(0)?, row.get(1)?);
            }
            Ok(sessions.len())
        }))
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        let conn = self.writer();
        let removed = conn.prepare_cached(DELETE_EXPIRED)?.execute([])?;
        Ok(Some(removed as u64))
    }

    fn count(&self) -> Result<u64, BoxError> {
        let conn = self.writer();
        let n: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        Ok(u64::try_from(n)?)
    }
}
