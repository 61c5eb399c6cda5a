//! Every connection the store opens: the writer, the readers and the
//! checkpoint thread's. Open flags, per-connection settings (PRAGMAs), the
//! header check before SQLite may write over a file, the new file's mode,
//! and the identity of the file opened.
//!
//! The statement and PRAGMA texts live in [`crate::schema`]; this module
//! decides which run on which connection, and when.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::schema::{pragma, Sql, PROBE};

/// The WAL file is truncated to this after a checkpoint resets it.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;
/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 16;

/// What opening and configuring a connection reads, taken from the
/// [`Builder`](crate::Builder) once at open. The fields repeat some of the
/// builder's on purpose: the reader pool and the checkpoint thread keep
/// this, never the builder (with its HMAC key and clock).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionOptions {
    /// Absolute, so every connection opens the same file even if the
    /// process changes directory.
    pub(crate) path: PathBuf,
    pub(crate) busy_timeout: Duration,
    /// `PRAGMA synchronous`, from the durability mode.
    pub(crate) synchronous: &'static str,
    pub(crate) cache_size_kib: u32,
    pub(crate) writer_cache_size_kib: u32,
    pub(crate) mmap_size: u64,
    pub(crate) create_if_missing: bool,
    pub(crate) incremental_vacuum: bool,
    pub(crate) max_file_size: Option<u64>,
}

/// The `-wal` file beside the database at `path`.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push("-wal");
    PathBuf::from(os)
}

/// Refuses a non-empty file that does not start with SQLite's header.
/// SQLite itself takes a file shorter than one page for an empty database
/// and would write a new one over it.
fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    // Only regular files: opening a FIFO to read would block. Missing files
    // (created later), directories and the rest are SQLite's to report.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(()),
    }
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)?.take(16).read_to_end(&mut head)?;
    if head.is_empty() || head == MAGIC {
        Ok(())
    } else {
        Err(Error::NotADatabase(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            Some("the file does not start with the SQLite header".into()),
        )))
    }
}

/// Creates a missing database file with mode 0600 (owner only), whatever the
/// umask, before SQLite would create it with 0644 less the umask. SQLite
/// gives the `-wal` and `-shm` files it creates the database file's own mode
/// (ignoring the umask), so they are private too. An existing file, and its
/// mode, are left alone. Any failure is left for SQLite's own open to report.
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // create_new: never touches a file that is there (nor follows a
        // symlink there).
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        if let Ok(file) = created {
            // The umask may have taken bits from 0600 too (0o277 leaves
            // 0400): set the mode exactly, through the descriptor.
            if let Err(err) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(%err, path = %path.display(), "cannot set the new database file's mode to 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Reads the schema table, which fails for a file that is not a database.
fn probe(conn: &Connection) -> Result<()> {
    conn.query_row(PROBE, [], |r| r.get::<_, i64>(0))?;
    Ok(())
}

/// Whether the file gives freed pages back (`auto_vacuum = INCREMENTAL`).
pub(crate) fn incremental_vacuum(conn: &Connection) -> Result<bool> {
    Ok(pragma_i64(conn, pragma::AUTO_VACUUM)? == 2)
}

/// Pages on the free list.
pub(crate) fn free_pages(conn: &Connection) -> Result<u64> {
    Ok(pragma_i64(conn, pragma::FREELIST_COUNT)?.max(0) as u64)
}

/// The value of an integer PRAGMA.
pub(crate) fn pragma_i64(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))?)
}

/// Opens the writer connection, sets the file up and checks the table.
/// Returns None when the file can only be read.
pub(crate) fn open_writer(opts: &ConnectionOptions, sql: &Sql) -> Result<Option<Connection>> {
    let path = &opts.path;
    check_header(path)?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if opts.create_if_missing {
        create_private(path);
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open {
        path: path.clone(),
        source,
    })?;
    conn.busy_timeout(opts.busy_timeout)?;
    // Before anything is written: a file that is not a database fails here
    // and is left exactly as it was.
    probe(&conn)?;
    if !sql.verify_if_present(&conn)? && !opts.create_if_missing {
        return Err(Error::SchemaMismatch {
            table: sql.table.clone(),
            reason: "the table does not exist".into(),
        });
    }
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        tracing::info!(path = %path.display(), "session database is not writable; opened read-only");
        return Ok(None);
    }
    let new_file = pragma_i64(&conn, pragma::PAGE_COUNT)? == 0;
    if new_file && opts.incremental_vacuum {
        // Only takes effect before the first table is created.
        conn.pragma_update(None, pragma::AUTO_VACUUM, pragma::INCREMENTAL)?;
    }
    let mode: String =
        conn.pragma_update_and_check(None, pragma::JOURNAL_MODE, pragma::WAL, |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case(pragma::WAL) {
        tracing::warn!(path = %path.display(), %mode, "WAL mode unavailable; readers will wait for writers");
    }
    configure(&conn, opts, opts.writer_cache_size_kib)?;
    conn.pragma_update(None, pragma::JOURNAL_SIZE_LIMIT, JOURNAL_SIZE_LIMIT)?;
    if let Some(bytes) = opts.max_file_size {
        let page_size = pragma_i64(&conn, pragma::PAGE_SIZE)?;
        let pages = (bytes / page_size.max(1) as u64).max(1);
        conn.pragma_update(
            None,
            pragma::MAX_PAGE_COUNT,
            i64::try_from(pages).unwrap_or(i64::MAX),
        )?;
    }
    sql.create(&mut conn)?;
    sql.verify(&conn)?;
    Ok(Some(conn))
}

/// Per-connection settings shared by the writer and the readers.
fn configure(conn: &Connection, opts: &ConnectionOptions, cache_kib: u32) -> Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    conn.pragma_update(None, pragma::SYNCHRONOUS, opts.synchronous)?;
    conn.pragma_update(None, pragma::CACHE_SIZE, -i64::from(cache_kib))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Opens a read-only connection. With `file`, refuses one that opened a
/// file other than the store's (replaced at the path meanwhile): it would
/// read the new file while the others read the old one. Checked before
/// anything is read, so an old `-wal` is never replayed into the new file.
pub(crate) fn open_reader(
    opts: &ConnectionOptions,
    file: Option<&FileIdentity>,
) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&opts.path, flags)?;
    if let Some(file) = file.filter(|f| f.replaced()) {
        return Err(file.error());
    }
    configure(&conn, opts, opts.cache_size_kib)?;
    // Only readers map (when asked): the writer needs private copies of the
    // pages it changes anyway.
    if opts.mmap_size > 0 {
        conn.pragma_update(
            None,
            pragma::MMAP_SIZE,
            i64::try_from(opts.mmap_size).unwrap_or(i64::MAX),
        )?;
    }
    Ok(conn)
}

/// Opens a read-only connection to check the file without writing
/// anything: its header, and that SQLite reads it as a database.
pub(crate) fn open_to_check(opts: &ConnectionOptions) -> Result<Connection> {
    check_header(&opts.path)?;
    let conn = open_reader(opts, None).map_err(|e| match e {
        Error::Sqlite(source) => Error::Open {
            path: opts.path.clone(),
            source,
        },
        other => other,
    })?;
    probe(&conn)?;
    Ok(conn)
}

/// Opens the checkpoint thread's connection: read-write, so it can copy the
/// WAL back, but it never writes a row.
pub(crate) fn open_checkpointer(opts: &ConnectionOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        &opts.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(opts.busy_timeout)?;
    Ok(conn)
}

/// The identity of the database file the store opened, so a write into a
/// file that was deleted or replaced at its path (where SQLite in WAL mode
/// would carry on, unseen, in the orphaned file) fails instead. Shared by
/// the writer, the reads and the reader pool: once any of them sees the
/// file replaced, every operation fails, so the store never answers from
/// two different files.
#[derive(Debug)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    #[cfg(unix)]
    id: (u64, u64),
    /// Set once the file was seen replaced; never cleared.
    replaced: AtomicBool,
}

impl FileIdentity {
    pub(crate) fn of(path: &Path) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            #[cfg(unix)]
            id: unix_id(path)?,
            replaced: AtomicBool::new(false),
        }))
    }

    /// Whether the file at the path is no longer the one opened (one
    /// `stat` call until it is; always false where file identity is not
    /// available). Once true, stays true for everyone.
    pub(crate) fn replaced(&self) -> bool {
        if self.known_replaced() {
            return true;
        }
        #[cfg(unix)]
        if unix_id(&self.path).ok() != Some(self.id) {
            self.replaced.store(true, Ordering::Release);
            tracing::warn!(path = %self.path.display(), "session database was deleted or replaced while open; reopen the store");
            return true;
        }
        false
    }

    /// Whether the file was already seen replaced (no system call).
    pub(crate) fn known_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Fails with [`Error::FileReplaced`] once the file was seen replaced.
    pub(crate) fn check_known(&self) -> Result<()> {
        if self.known_replaced() {
            Err(self.error())
        } else {
            Ok(())
        }
    }

    pub(crate) fn error(&self) -> Error {
        Error::FileReplaced {
            path: self.path.clone(),
        }
    }
}

#[cfg(unix)]
fn unix_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}
