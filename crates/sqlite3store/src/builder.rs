//! Options for opening a store, each with its default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cleanup::CleanupOptions;
use crate::clock::{Clock, SystemClock};
use crate::connection::ConnectionOptions;
use crate::error::{Error, Result};
use crate::schema::pragma;
use crate::wal::WalOptions;

/// How long an acknowledged commit is guaranteed to survive.
///
/// Whatever the mode, a crash never corrupts the file and never leaves a
/// half-written transaction: SQLite's write-ahead log (WAL) either holds a
/// whole transaction or none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `commit` returns once its transaction is in the WAL file in the
    /// operating system's cache (`synchronous = NORMAL`). Survives a crash
    /// or kill of the process at any moment; a power loss or kernel panic
    /// may lose the last commits before the OS wrote them out. The default:
    /// this is what web session stores need, at no fsync cost.
    #[default]
    ProcessCrash,
    /// `commit` returns only after the WAL was fsynced (`synchronous =
    /// FULL`): acknowledged commits also survive power loss. Group commit
    /// shares one fsync among all commits that arrive together, so the cost
    /// falls as concurrency rises.
    PowerLoss,
}

impl Durability {
    /// The `PRAGMA synchronous` value.
    pub(crate) fn synchronous(self) -> &'static str {
        match self {
            Durability::ProcessCrash => pragma::NORMAL,
            Durability::PowerLoss => pragma::FULL,
        }
    }
}

/// Options for [`SqliteStore`](crate::SqliteStore); start with
/// [`SqliteStore::builder`](crate::SqliteStore::builder).
///
/// This is the one way to open with options, whatever the front: finish
/// with [`build`](Self::build) for a [`SqliteStore`](crate::SqliteStore), or
/// `build_async().await` for an `AsyncSqliteStore` (feature `tokio`). The
/// tower-sessions store wraps the async one
/// (`SqliteSessionStore::new(builder.build_async().await?)`).
///
/// ```no_run
/// # fn main() -> sqlite3store::Result<()> {
/// use std::time::Duration;
/// use sqlite3store::{Durability, SqliteStore};
///
/// let store = SqliteStore::builder("sessions.db")
///     .cleanup_interval(Duration::from_secs(600))
///     .durability(Durability::PowerLoss)
///     .max_data_len(64 * 1024)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    pub(crate) path: PathBuf,
    pub(crate) table: String,
    pub(crate) cleanup_interval: Duration,
    pub(crate) first_cleanup_delay: Duration,
    pub(crate) cleanup_batch_size: usize,
    pub(crate) durability: Durability,
    pub(crate) max_token_len: usize,
    pub(crate) max_data_len: usize,
    pub(crate) readers: usize,
    pub(crate) busy_timeout: Duration,
    pub(crate) cache_size_kib: u32,
    pub(crate) writer_cache_size_kib: u32,
    pub(crate) mmap_size: u64,
    pub(crate) checkpoint_pages: u32,
    pub(crate) group_commit: bool,
    pub(crate) incremental_vacuum: bool,
    pub(crate) read_only: bool,
    pub(crate) create_if_missing: bool,
    pub(crate) max_file_size: Option<u64>,
    pub(crate) token_hash_key: Option<Arc<[u8]>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The async front's bounds (set in `async_store.rs`); reads default to
    /// `readers` when `None`.
    pub(crate) max_async_reads: Option<usize>,
    pub(crate) max_async_writes: usize,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("path", &self.path)
            .field("table", &self.table)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("first_cleanup_delay", &self.first_cleanup_delay)
            .field("cleanup_batch_size", &self.cleanup_batch_size)
            .field("durability", &self.durability)
            .field("max_token_len", &self.max_token_len)
            .field("max_data_len", &self.max_data_len)
            .field("readers", &self.readers)
            .field("busy_timeout", &self.busy_timeout)
            .field("cache_size_kib", &self.cache_size_kib)
            .field("writer_cache_size_kib", &self.writer_cache_size_kib)
            .field("mmap_size", &self.mmap_size)
            .field("checkpoint_pages", &self.checkpoint_pages)
            .field("group_commit", &self.group_commit)
            .field("incremental_vacuum", &self.incremental_vacuum)
            .field("read_only", &self.read_only)
            .field("create_if_missing", &self.create_if_missing)
            .field("max_file_size", &self.max_file_size)
            // Never print the key.
            .field("token_hashing", &self.token_hash_key.is_some())
            .field("clock", &self.clock)
            .field("max_async_reads", &self.async_read_limit())
            .field("max_async_writes", &self.max_async_writes)
            .finish()
    }
}

/// The largest blob SQLite accepts by default (`SQLITE_MAX_LENGTH`), less
/// room for the row's other fields.
pub const MAX_DATA_LEN_LIMIT: usize = 1_000_000_000 - 64 * 1024;

/// Default of `max_async_writes`: enough for group commit to batch well,
/// few enough to keep the writer's queue (and the memory its writes hold)
/// small. Queued writes hold no thread.
pub(crate) const DEFAULT_MAX_ASYNC_WRITES: usize = 64;
/// The largest `max_async_reads` and `max_async_writes` accepted.
pub(crate) const MAX_ASYNC_CALLS: usize = 4096;

/// The smallest [`Builder::max_file_size`] accepted.
pub const MIN_FILE_SIZE: u64 = 64 * 1024;

/// The longest busy timeout SQLite takes (`int` milliseconds).
const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The largest page cache SQLite takes (`PRAGMA cache_size` is an `int`).
const MAX_CACHE_KIB: u32 = i32::MAX as u32;

impl Builder {
    pub(crate) fn new(path: impl AsRef<Path>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            path: path.as_ref().to_path_buf(),
            table: "sessions".into(),
            cleanup_interval: Duration::from_secs(300),
            first_cleanup_delay: Duration::from_secs(1),
            cleanup_batch_size: 500,
            durability: Durability::default(),
            max_token_len: 1024,
            max_data_len: 1 << 20,
            readers: (2 * cores).clamp(4, 16),
            busy_timeout: Duration::from_secs(5),
            cache_size_kib: 8 * 1024,
            writer_cache_size_kib: 64 * 1024,
            mmap_size: 0,
            checkpoint_pages: 1000,
            group_commit: true,
            incremental_vacuum: true,
            read_only: false,
            create_if_missing: true,
            max_file_size: None,
            token_hash_key: None,
            clock: Arc::new(SystemClock),
            max_async_reads: None,
            max_async_writes: DEFAULT_MAX_ASYNC_WRITES,
        }
    }

    /// The async front's read bound: as set, or one per reader connection.
    pub(crate) fn async_read_limit(&self) -> usize {
        self.max_async_reads.unwrap_or(self.readers)
    }

    /// How often the background thread deletes expired sessions;
    /// `Duration::ZERO` starts no thread (call
    /// [`SqliteStore::delete_expired`](crate::SqliteStore::delete_expired) yourself). Default: 5 minutes, as Go's
    /// `New`.
    pub fn cleanup_interval(mut self, every: Duration) -> Self {
        self.cleanup_interval = every;
        self
    }

    /// How long after open the cleanup thread first runs, so a store that
    /// was down for a while starts clean without slowing `build`. Capped at
    /// the cleanup interval. Default: 1 second.
    pub fn first_cleanup_delay(mut self, after: Duration) -> Self {
        self.first_cleanup_delay = after;
        self
    }

    /// Rows deleted per transaction by `delete_expired` while other writes
    /// are waiting: the bound on how long cleanup holds the write lock.
    /// When no other write is waiting, batches grow (up to 256 times this) so
    /// an idle store is cleaned fast. 1 to 1,000,000; other values give
    /// [`Error::InvalidConfig`]. Default: 500.
    pub fn cleanup_batch_size(mut self, rows: usize) -> Self {
        self.cleanup_batch_size = rows;
        self
    }

    /// The table name: a plain identifier (ASCII letters, digits and
    /// underscores, not starting with a digit or `sqlite_`, at most 64
    /// bytes); others give [`Error::InvalidConfig`]. Its index is
    /// `<table>_expiry_idx`. Default: `sessions` (Go's).
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// What an acknowledged commit survives. Default:
    /// [`Durability::ProcessCrash`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The longest token, in bytes, that `commit` accepts; `find` of a
    /// longer one is simply not found. 1 to 1 MiB; other values give
    /// [`Error::InvalidConfig`]. Default: 1024.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// The largest session data, in bytes, that `commit` accepts; with
    /// `max_token_len`, at most [`MAX_DATA_LEN_LIMIT`]. Default: 1 MiB.
    pub fn max_data_len(mut self, bytes: usize) -> Self {
        self.max_data_len = bytes;
        self
    }

    /// The most read-only connections kept for `find` and `all`; readers
    /// beyond this wait for a free one. 1 to 256; other values give
    /// [`Error::InvalidConfig`]. Default: twice the number of CPUs, between
    /// 4 and 16.
    pub fn readers(mut self, max: usize) -> Self {
        self.readers = max;
        self
    }

    /// How long a write waits for another process's lock before failing
    /// with [`Error::Busy`], in whole milliseconds (rounded down). SQLite
    /// takes at most 2^31 - 1 ms (about 24.8 days); longer timeouts count as
    /// that. Default: 5 seconds (what Go's driver uses).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
        self
    }

    /// SQLite page cache of each reader connection, in KiB; values over
    /// 2^31 - 1 (SQLite's limit) count as that, 0 gives
    /// [`Error::InvalidConfig`]. Default: 8192 (8 MiB).
    ///
    /// The store's private memory for page caches is at most `readers *
    /// cache_size_kib + writer_cache_size_kib`, whatever the table size; the
    /// readers' file mappings ([`mmap_size`](Self::mmap_size)) come on top as
    /// shared, reclaimable file cache.
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib.min(MAX_CACHE_KIB);
        self
    }

    /// SQLite page cache of the writer connection, in KiB: the pages a
    /// batch of writes or a cleanup step touches are kept here between
    /// transactions; values over 2^31 - 1 count as that, 0 gives
    /// [`Error::InvalidConfig`]. Default: 65536 (64 MiB).
    pub fn writer_cache_size_kib(mut self, kib: u32) -> Self {
        self.writer_cache_size_kib = kib.min(MAX_CACHE_KIB);
        self
    }

    /// Bytes of the file each reader connection maps into memory (`PRAGMA
    /// mmap_size`); 0 reads through the page cache only. Mapping speeds up
    /// reads while nothing is written (find-hit +40% in the benchmark), but
    /// SQLite drops a reader's mapping whenever another connection commits,
    /// so with writes in the mix it costs more than it saves (the 90/9/1
    /// mixed workload ran at half the speed). Mapped pages are shared file
    /// cache, though they show in the resident size. SQLite maps at most
    /// its build's limit (`SQLITE_MAX_MMAP_SIZE`, about 2 GiB for the bundled
    /// build); larger values count as that. Default: 0.
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        // SQLite reads a negative size as "the default", so never let the
        // conversion to its signed type wrap.
        self.mmap_size = bytes.min(i64::MAX as u64);
        self
    }

    /// WAL size, in pages, at which the background thread checkpoints it
    /// back into the database, concurrently with reads and writes. When
    /// writes never pause long enough for the WAL to start over, the thread
    /// copies the last few hundred frames while holding the writer once the
    /// WAL passes 4 times this, and cleanup waits for it there; a write
    /// checkpoints by itself only at 16 times this (a backstop should the
    /// thread fall behind). 0 gives [`Error::InvalidConfig`]. Default: 1000
    /// (SQLite's own auto-checkpoint size).
    pub fn checkpoint_pages(mut self, pages: u32) -> Self {
        self.checkpoint_pages = pages;
        self
    }

    /// Whether concurrent writes share one transaction (group commit). When
    /// off, every write takes the writer connection in turn and runs its own
    /// transaction. Default: true.
    ///
    /// **Benchmark only.** `false` exists so the benchmark can compare group
    /// commit with a plain single-writer mutex; it is never faster and has
    /// a worse tail, so do not turn it off in an application.
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Whether a newly created file uses `auto_vacuum = INCREMENTAL`, so
    /// cleanup gives freed pages back to the file system. Existing files
    /// keep their mode. Default: true.
    pub fn incremental_vacuum(mut self, on: bool) -> Self {
        self.incremental_vacuum = on;
        self
    }

    /// Opens the file read-only: finds work; commits, deletes and cleanup
    /// fail with [`Error::ReadOnly`]; nothing is created or changed. A file
    /// the process cannot write is opened this way on its own. Default: false.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Whether a missing file and a missing table are created. When false,
    /// opening fails instead ([`Error::Open`] for the file,
    /// [`Error::SchemaMismatch`] for the table) and nothing is written:
    /// for tools that must only ever touch an existing store. Default: true.
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// The most bytes the database file may grow to (`PRAGMA
    /// max_page_count`); past it, writes fail with [`Error::DiskFull`] while
    /// finds keep working, and they work again once cleanup frees pages.
    /// Rounded down to whole pages, and never below the file's size at open.
    /// At least [`MIN_FILE_SIZE`] (room for the table, its indexes and a few
    /// sessions); less is refused. Default: no limit.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// Stores an HMAC-SHA-256 of each token, keyed with `key`, instead of
    /// the token itself, so a leaked file or backup holds no usable session
    /// tokens. Every call hashes the token it is given, so the API is
    /// unchanged except that [`SqliteStore::all`](crate::SqliteStore::all) returns the hashed keys
    /// (64 hex digits). Files written with hashing are not readable by Go's
    /// package, nor by a store with another key. Default: off.
    pub fn hash_tokens(mut self, key: impl AsRef<[u8]>) -> Self {
        self.token_hash_key = Some(Arc::from(key.as_ref()));
        self
    }

    /// Where the store reads the current time, for expiry. Default: the
    /// system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// What connections read, for the file at `path` (absolute).
    pub(crate) fn connection_options(&self, path: PathBuf) -> ConnectionOptions {
        ConnectionOptions {
            path,
            busy_timeout: self.busy_timeout,
            synchronous: self.durability.synchronous(),
            cache_size_kib: self.cache_size_kib,
            writer_cache_size_kib: self.writer_cache_size_kib,
            mmap_size: self.mmap_size,
            create_if_missing: self.create_if_missing,
            incremental_vacuum: self.incremental_vacuum,
            max_file_size: self.max_file_size,
        }
    }

    /// What cleanup reads.
    pub(crate) fn cleanup_options(&self) -> CleanupOptions {
        CleanupOptions {
            interval: self.cleanup_interval,
            first_delay: self.first_cleanup_delay,
            batch_size: self.cleanup_batch_size as u64,
        }
    }

    /// What WAL tracking reads.
    pub(crate) fn wal_options(&self) -> WalOptions {
        WalOptions {
            checkpoint_pages: self.checkpoint_pages,
        }
    }

    /// Checks every option; `build` runs it first.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        if self.max_token_len == 0 || self.max_token_len > 1 << 20 {
            return bad(format!(
                "max_token_len must be 1 to {} bytes, got {}",
                1 << 20,
                self.max_token_len
            ));
        }
        // A row holds the token and the data: both at their limits must
        // still fit SQLite's row size, so oversize input gets DataTooLarge
        // or TokenTooLong, never a SQLite error.
        if self.max_data_len.saturating_add(self.max_token_len) > MAX_DATA_LEN_LIMIT {
            return bad(format!(
                "max_data_len plus max_token_len must be at most {MAX_DATA_LEN_LIMIT} bytes, got {} + {}",
                self.max_data_len, self.max_token_len
            ));
        }
        if !(1..=256).contains(&self.readers) {
            return bad(format!("readers must be 1 to 256, got {}", self.readers));
        }
        if !(1..=1_000_000).contains(&self.cleanup_batch_size) {
            return bad(format!(
                "cleanup_batch_size must be 1 to 1000000, got {}",
                self.cleanup_batch_size
            ));
        }
        if self.checkpoint_pages == 0 {
            return bad("checkpoint_pages must be at least 1".into());
        }
        if self.cache_size_kib == 0 || self.writer_cache_size_kib == 0 {
            return bad("cache_size_kib and writer_cache_size_kib must be at least 1".into());
        }
        if let Some(bytes) = self.max_file_size.filter(|&b| b < MIN_FILE_SIZE) {
            return bad(format!(
                "max_file_size must be at least {MIN_FILE_SIZE} bytes, got {bytes}"
            ));
        }
        for (name, n) in [
            ("max_async_reads", self.async_read_limit()),
            ("max_async_writes", self.max_async_writes),
        ] {
            if !(1..=MAX_ASYNC_CALLS).contains(&n) {
                return bad(format!("{name} must be 1 to {MAX_ASYNC_CALLS}, got {n}"));
            }
        }
        if self.token_hash_key.as_ref().is_some_and(|k| k.is_empty()) {
            return bad("the token hashing key must not be empty".into());
        }
        Ok(())
    }
}
