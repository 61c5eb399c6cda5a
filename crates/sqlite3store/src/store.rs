//! The store: its public types, opening, and every read and write
//! operation. Connections come from [`crate::connection`], statements from
//! [`crate::schema`], writes go through [`crate::writer`], cleanup runs in
//! [`crate::cleanup`] and checkpoints in [`crate::wal`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension};
use session_contract::{Entry, Listed, Session};

use crate::background::Background;
use crate::builder::Builder;
use crate::cleanup::{self, Cleanup, CleanupReport, REVOKE_BATCH};
use crate::clock::Clock;
use crate::connection::{self, open_reader, open_writer, FileIdentity};
use crate::error::{Error, Result};
use crate::hash::{storage_key, TokenHasher};
use crate::julian::{from_julian, to_julian};
use crate::pool::ReaderPool;
use crate::reply::Cancel;
use crate::schema::{pragma, Sql};
use crate::wal::{self, WalState};
use crate::writer::{SetOwner, WriteOp, Writer};

/// A session store in a SQLite file, file-compatible with Go's scs
/// `sqlite3store`.
///
/// Cheap to clone: clones share one store (one writer connection, one pool of
/// readers, one cleanup thread).
///
/// # Closing
///
/// [`close`](Self::close) (or [`AsyncSqliteStore::close`](crate::AsyncSqliteStore::close))
/// closes the store for every clone: it returns once the background threads
/// have stopped, the WAL is copied into the database file and truncated, and
/// every connection is closed, so the database file alone, copied right
/// after, holds every session. Calls through any clone after that fail with
/// [`Error::Closed`].
///
/// Dropping the last clone (sync or async) does the same, with one
/// exception: dropped inside a tokio runtime (in a task, or on its blocking
/// pool), it hands closing to a thread of the runtime's blocking pool and
/// returns at once, so a runtime thread never waits for it. The file is
/// then closed shortly after, and at the latest when the runtime shuts
/// down. Errors while closing on drop are only logged. The background
/// threads never hold a handle, so they never delay closing.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Handles>,
}

/// What the user's handles share: the store, closed when the last goes.
/// The background threads hold the store itself (`Weak<Inner>`), never this.
#[derive(Debug)]
struct Handles(Arc<Inner>);

impl std::ops::Deref for Handles {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        #[cfg(feature = "tokio")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Never block a runtime thread. Should the task not run (the
            // runtime is shutting down), dropping it drops the store,
            // which closes it there.
            let inner = Arc::clone(&self.0);
            drop(runtime.spawn_blocking(move || inner.close_logged()));
            return;
        }
        self.0.close_logged();
    }
}

/// A snapshot of the store's contents and file, from [`SqliteStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions whose expiry is after now.
    pub active: u64,
    /// Expired sessions not yet cleaned up.
    pub expired: u64,
    /// Bytes of the database file.
    pub file_size: u64,
    /// Bytes of the write-ahead log beside it (0 when absent).
    pub wal_size: u64,
    /// Database page size in bytes.
    pub page_size: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Pages on the free list (reusable, or returned by vacuum).
    pub free_pages: u64,
    /// Whether freed pages are given back to the file system after cleanup
    /// (`auto_vacuum = INCREMENTAL`).
    pub incremental_vacuum: bool,
    /// The last cleanup run of this store, if any has run.
    pub last_cleanup: Option<CleanupReport>,
    /// Distinct owners with at least one active session.
    pub owners: u64,
    /// Active sessions that have an owner.
    pub owned: u64,
}

// `close` stops the threads first, then closes the readers, and the writer
// last, so it checkpoints the WAL into the file and removes it (a read-only
// connection closing last could not).
pub(crate) struct Inner {
    cleanup_thread: Mutex<Option<Background>>,
    checkpoint_thread: Mutex<Option<Background>>,
    readers: ReaderPool,
    /// None when read-only.
    writer: Option<Arc<Writer>>,
    path: PathBuf,
    /// The file opened; once it is seen replaced, reads fail as writes do.
    file: Arc<FileIdentity>,
    sql: Arc<Sql>,
    clock: Arc<dyn Clock>,
    hasher: Option<TokenHasher>,
    max_token_len: usize,
    max_data_len: usize,
    /// Restored on a reader after a read that ran with it off.
    #[cfg(feature = "tokio")]
    busy_timeout: Duration,
    cleanup: Cleanup,
    /// Whether the table has the owner column: always once a writable store
    /// opened it; a read-only store on a file Go created finds no owners.
    owner_column: bool,
    /// Set once closing starts: every operation fails with `Closed`.
    closed: AtomicBool,
    /// Held while closing, so a second close waits for the first.
    closing: Mutex<()>,
    /// The async front's bounds, shared by every async handle of the store.
    #[cfg(feature = "tokio")]
    async_gate: crate::gate::Gate,
}

impl Drop for Inner {
    /// Only when no handle closed it: the last handle was dropped inside a
    /// runtime and the task closing it never ran.
    fn drop(&mut self) {
        self.close_logged();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("table", &self.sql.table)
            .field("read_only", &self.writer.is_none())
            .field("writer", &self.writer)
            .field("readers", &self.readers)
            .field("token_hashing", &self.hasher.is_some())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Opens the store with these options.
    pub fn build(self) -> Result<SqliteStore> {
        self.validate()?;
        SqliteStore::open_with(self)
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `path`, with a cleanup thread
    /// that deletes expired sessions every 5 minutes. Go's `New`.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).build()
    }

    /// Opens the store with cleanup every `every`; `Duration::ZERO` starts
    /// no cleanup thread. Go's `NewWithCleanupInterval`.
    pub fn with_cleanup_interval(path: impl AsRef<Path>, every: Duration) -> Result<Self> {
        Self::builder(path).cleanup_interval(every).build()
    }

    /// Every other option; see [`Builder`].
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder::new(path)
    }

    pub(crate) fn open_with(b: Builder) -> Result<Self> {
        // Every connection (readers open lazily) and the file-identity check
        // must see the same file even if the process changes directory.
        let path = std::path::absolute(&b.path)?;
        let conn_opts = b.connection_options(path.clone());
        let sql = Arc::new(Sql::new(&b.table)?);
        let writer_conn = if b.read_only {
            None
        } else {
            open_writer(&conn_opts, &sql)?
        };
        let read_only = writer_conn.is_none();
        let (incremental_vacuum, owner_column) = match &writer_conn {
            Some(conn) => (connection::incremental_vacuum(conn)?, true),
            None => {
                // Check the file and table without writing anything.
                let conn = connection::open_to_check(&conn_opts)?;
                sql.verify(&conn)?;
                (
                    connection::incremental_vacuum(&conn)?,
                    sql.has_owner_column(&conn)?,
                )
            }
        };

        // Taken once the file is open: every later check compares with it.
        let file = FileIdentity::of(&path)?;
        let wal = WalState::new(b.wal_options());
        let writer = match writer_conn {
            Some(mut conn) => {
                wal.install_hook(&mut conn)?;
                Some(Arc::new(Writer::new(
                    conn,
                    Arc::clone(&sql),
                    b.group_commit,
                    Arc::clone(&wal),
                    Arc::clone(&file),
                )?))
            }
            None => None,
        };

        let reader_opts = conn_opts.clone();
        let reader_file = Arc::clone(&file);
        let readers = ReaderPool::new(b.readers, move || {
            open_reader(&reader_opts, Some(&reader_file))
        });
        readers.warm()?;

        let cleanup_opts = b.cleanup_options();
        let inner = Arc::new(Inner {
            path,
            file,
            sql,
            writer,
            readers,
            clock: Arc::clone(&b.clock),
            hasher: b.token_hash_key.as_ref().map(TokenHasher::new),
            max_token_len: b.max_token_len,
            max_data_len: b.max_data_len,
            #[cfg(feature = "tokio")]
            busy_timeout: b.busy_timeout,
            cleanup: Cleanup::new(cleanup_opts, incremental_vacuum, Arc::clone(&wal)),
            owner_column,
            cleanup_thread: Mutex::new(None),
            checkpoint_thread: Mutex::new(None),
            closed: AtomicBool::new(false),
            closing: Mutex::new(()),
            #[cfg(feature = "tokio")]
            async_gate: crate::gate::Gate::new(b.async_read_limit(), b.max_async_writes),
        });
        if let Some(writer) = &inner.writer {
            // The thread holds the writer, not the store, so the store is
            // never closed on this thread: `close` always joins it from
            // another (Background::stop_and_join skips only its own thread).
            let writer = Arc::clone(writer);
            let thread = wal::spawn(&wal, conn_opts, move || writer.checkpoint())?;
            *lock(&inner.checkpoint_thread) = Some(thread);
        }

        if !cleanup_opts.interval.is_zero() && !read_only {
            let thread = cleanup::spawn(Arc::downgrade(&inner), cleanup_opts)?;
            *lock(&inner.cleanup_thread) = Some(thread);
        }
        tracing::debug!(path = %inner.path.display(), table = %b.table, read_only, "session store opened");
        Ok(Self {
            inner: Arc::new(Handles(inner)),
        })
    }

    /// The data of the session `token`, or `None` when it is missing or
    /// expired. An empty or over-long token is simply not found.
    pub fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        self.lookup(token, &self.inner.sql.find, |r| r.get(0))
    }

    /// Like [`find`](Self::find), with the session's expiry.
    pub fn find_with_expiry(&self, token: &str) -> Result<Option<Session>> {
        self.lookup(token, &self.inner.sql.find_with_expiry, session_row)
    }

    /// Runs a by-token query (`?1` token, `?2` now) on a reader.
    fn lookup<T>(
        &self,
        token: &str,
        sql: &str,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let inner = &self.inner;
        if !inner.token_fits(token) {
            return Ok(None);
        }
        let key = storage_key(inner.hasher.as_ref(), token);
        let now = inner.now();
        inner.read(|conn| query_by_key(conn, sql, &key, now, row))
    }

    /// [`find`](Self::find) if it can answer without waiting: on an idle
    /// reader, with SQLite's busy handler off. `None` when no reader is
    /// idle or SQLite reports a lock (the caller then waits on a thread).
    #[cfg(feature = "tokio")]
    pub(crate) fn try_find_now(&self, token: &str) -> Option<Result<Option<Vec<u8>>>> {
        self.try_lookup_now(token, &self.inner.sql.find, |r| r.get(0))
    }

    /// [`find_with_expiry`](Self::find_with_expiry), as [`try_find_now`](Self::try_find_now).
    #[cfg(feature = "tokio")]
    pub(crate) fn try_find_with_expiry_now(&self, token: &str) -> Option<Result<Option<Session>>> {
        self.try_lookup_now(token, &self.inner.sql.find_with_expiry, session_row)
    }

    #[cfg(feature = "tokio")]
    fn try_lookup_now<T>(
        &self,
        token: &str,
        sql: &str,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Option<T>>> {
        let inner = &self.inner;
        if !inner.token_fits(token) {
            return Some(Ok(None));
        }
        let key = storage_key(inner.hasher.as_ref(), token);
        let now = inner.now();
        inner.try_read_now(|conn| query_by_key(conn, sql, &key, now, row))
    }

    /// Stores `data` under `token` until `expiry`, replacing any session with
    /// that token. Returns once the transaction has committed (durably, as
    /// the [`Durability`](crate::Durability) mode promises). An expiry in the
    /// past is stored but never found.
    pub fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        self.inner.run(self.prepare_commit(token, data, expiry)?)
    }

    pub(crate) fn prepare_commit(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> Result<Prepared<()>> {
        let inner = &self.inner;
        inner.check_commit(token, data)?;
        let op = WriteOp::Commit {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
            data: data.to_vec(),
            expiry: to_julian(expiry),
        };
        Ok(Prepared::Write(op, |_| ()))
    }

    /// Stores a new session unless an active one already holds `token`, in
    /// one atomic step; returns whether it was stored. An expired session
    /// with that token is replaced.
    pub fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.inner
            .run(self.prepare_create(token, data, expiry, None)?)
    }

    /// Like [`create`](Self::create), with an owner (see
    /// [`commit_owned`](Self::commit_owned)).
    pub fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.inner
            .run(self.prepare_create(token, data, expiry, Some(owner))?)
    }

    /// `owner`: `None` for plain `create`, `Some` for `create_owned`.
    pub(crate) fn prepare_create(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<Option<&str>>,
    ) -> Result<Prepared<bool>> {
        let inner = &self.inner;
        inner.check_commit(token, data)?;
        let owner = match owner {
            Some(owner) => check_owner(owner)?,
            None => None,
        };
        let op = WriteOp::Create {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
            data: data.to_vec(),
            expiry: to_julian(expiry),
            now: inner.now(),
            owner,
        };
        Ok(Prepared::Write(op, |stored| stored > 0))
    }

    /// Like [`commit`](Self::commit) (insert or replace), and sets the
    /// session's owner (`None` clears it): a user id, say, so that
    /// [`revoke_owner`](Self::revoke_owner) can log them out everywhere.
    /// Plain `commit` keeps the owner a row has. An owner is a non-empty
    /// string of at most [`MAX_OWNER_LEN`](crate::MAX_OWNER_LEN) bytes
    /// without NUL ([`Error::InvalidOwner`] otherwise).
    pub fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        self.inner
            .run(self.prepare_commit_owned(token, data, expiry, owner)?)
    }

    pub(crate) fn prepare_commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<Prepared<()>> {
        let inner = &self.inner;
        inner.check_commit(token, data)?;
        let owner = check_owner(owner)?;
        let op = WriteOp::CommitOwned {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
            data: data.to_vec(),
            expiry: to_julian(expiry),
            owner,
        };
        Ok(Prepared::Write(op, |_| ()))
    }

    /// Writes `data` and `expiry` over the session `token` only while it is
    /// active, keeping its owner; returns false, writing nothing, when it is
    /// missing or expired. Unlike [`commit`](Self::commit), it never brings
    /// back a session that was deleted or revoked meanwhile: the write and
    /// the check are one statement on the single writer, so a delete that
    /// returned before it began always wins.
    pub fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.inner
            .run(self.prepare_update(token, data, expiry, None)?)
    }

    /// Like [`update`](Self::update), and sets the owner (`None` clears it).
    pub fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.inner
            .run(self.prepare_update(token, data, expiry, Some(owner))?)
    }

    /// `owner`: `None` keeps the row's owner (`update`), `Some` sets it
    /// (`update_owned`).
    pub(crate) fn prepare_update(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<Option<&str>>,
    ) -> Result<Prepared<bool>> {
        let owner = match owner {
            Some(owner) => SetOwner::To(check_owner(owner)?),
            None => SetOwner::Keep,
        };
        let inner = &self.inner;
        inner.check_commit(token, data)?;
        let op = WriteOp::Update {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
            data: data.to_vec(),
            expiry: to_julian(expiry),
            now: inner.now(),
            owner,
        };
        Ok(Prepared::Write(op, |written| written > 0))
    }

    /// Moves the expiry of the active session `token` without rewriting its
    /// data; returns false, changing nothing, when it is missing or expired
    /// (a gone session is never brought back).
    pub fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        self.inner.run(self.prepare_touch(token, expiry)?)
    }

    pub(crate) fn prepare_touch(&self, token: &str, expiry: SystemTime) -> Result<Prepared<bool>> {
        let inner = &self.inner;
        inner.writer()?;
        if !inner.token_fits(token) {
            return Ok(Prepared::Answered(false));
        }
        let op = WriteOp::Touch {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
            expiry: to_julian(expiry),
            now: inner.now(),
        };
        Ok(Prepared::Write(op, |moved| moved > 0))
    }

    /// Up to `limit` active sessions of `owner` as [`Listed`] (stored key, expiry),
    /// soonest to expire first. An empty or invalid owner has none.
    pub fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>> {
        let inner = &self.inner;
        if !inner.owner_column || session_contract::owner_problem(owner).is_some() {
            return Ok(Vec::new());
        }
        let now = inner.now();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        inner.read(|conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.list_owner)?;
            let rows = stmt.query_map(params![owner, now, limit], |r| {
                Ok(Listed::new(r.get(0)?, from_julian(r.get::<_, f64>(1)?)))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// How many active sessions `owner` has.
    pub fn count_owner(&self, owner: &str) -> Result<u64> {
        let inner = &self.inner;
        if !inner.owner_column || session_contract::owner_problem(owner).is_some() {
            return Ok(0);
        }
        let now = inner.now();
        inner.read(|conn| {
            let n: i64 = conn
                .prepare_cached(&inner.sql.count_owner)?
                .query_row(params![owner, now], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    /// Deletes every session of `owner`, active or expired ("log out
    /// everywhere"); returns how many rows it removed. Works in writes of
    /// 256 rows, so requests queued meanwhile wait for one short batch,
    /// never for the whole owner. It stops after as many rows as the owner
    /// had when it began (so it always ends): if another process adds
    /// sessions for the owner meanwhile, call it again.
    pub fn revoke_owner(&self, owner: &str) -> Result<u64> {
        self.revoke_owner_cancellable(owner, &Cancel::default())
    }

    /// [`revoke_owner`](Self::revoke_owner), whose batches not yet started
    /// are skipped once `cancel` is raised.
    pub(crate) fn revoke_owner_cancellable(&self, owner: &str, cancel: &Cancel) -> Result<u64> {
        let inner = &self.inner;
        let writer = inner.writer()?;
        if session_contract::owner_problem(owner).is_some() {
            return Ok(0);
        }
        // Fixed at the start, so the loop ends even if another process keeps
        // adding sessions for this owner.
        let total = inner.read(|conn| {
            let n: i64 = conn
                .prepare_cached(&inner.sql.count_owner)?
                .query_row(params![owner, f64::MIN], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })?;
        let mut removed = 0;
        for _ in 0..=total / REVOKE_BATCH {
            let n = writer.submit_cancellable(
                WriteOp::RevokeOwner {
                    owner: owner.to_owned(),
                    limit: REVOKE_BATCH,
                },
                cancel,
            )?;
            removed += n;
            if n < REVOKE_BATCH {
                break;
            }
        }
        tracing::debug!(removed, "owner's sessions revoked");
        Ok(removed)
    }

    /// Removes the session `token`; returns whether one was there. A missing
    /// token is not an error.
    pub fn delete(&self, token: &str) -> Result<bool> {
        self.inner.run(self.prepare_delete(token)?)
    }

    pub(crate) fn prepare_delete(&self, token: &str) -> Result<Prepared<bool>> {
        let inner = &self.inner;
        inner.writer()?;
        if !inner.token_fits(token) {
            return Ok(Prepared::Answered(false));
        }
        let op = WriteOp::Delete {
            key: storage_key(inner.hasher.as_ref(), token).into_owned(),
        };
        Ok(Prepared::Write(op, |removed| removed > 0))
    }

    /// Every active session, token to data; empty when there are none. With
    /// token hashing on, the keys are the stored hashes.
    pub fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        let inner = &self.inner;
        let now = inner.now();
        inner.read(|conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.all)?;
            let rows = stmt.query_map([now], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (token, data) = row?;
                out.insert(token, data);
            }
            Ok(out)
        })
    }

    /// Up to `limit` active sessions as [`Listed`] (stored key, expiry), soonest to
    /// expire first, without their data. For operators' listings.
    pub fn list(&self, limit: usize) -> Result<Vec<Listed>> {
        let inner = &self.inner;
        let now = inner.now();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        inner.read(|conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.list)?;
            let rows = stmt.query_map(params![now, limit], |r| {
                Ok(Listed::new(r.get(0)?, from_julian(r.get::<_, f64>(1)?)))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Up to `limit` active sessions whose stored key sorts after `after`
    /// (`""` for the first page), in key order, as [`Entry`] (stored key, [`Session`]): pages through the whole store without holding it in memory,
    /// for exports and migrations. Pass the last key of one page as `after`
    /// to get the next; an empty page is the end.
    pub fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>> {
        let inner = &self.inner;
        let now = inner.now();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        inner.read(|conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.export_page)?;
            let rows = stmt.query_map(params![now, after, limit], |r| {
                let session = Session::new(r.get(1)?, from_julian(r.get::<_, f64>(2)?));
                Ok(Entry::new(r.get(0)?, session))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// [`export_page`](Self::export_page) with each session's owner (`None`
    /// for none, and for every row of a file without the owner column), for
    /// migrations that keep "log out everywhere" working; import with
    /// [`commit_owned`](Self::commit_owned).
    pub fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>> {
        let inner = &self.inner;
        if !inner.owner_column {
            let page = self.export_page(after, limit)?;
            return Ok(page.into_iter().map(|e| (e, None)).collect());
        }
        let now = inner.now();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        inner.read(|conn| {
            let mut stmt = conn.prepare_cached(&inner.sql.export_page_owned)?;
            let rows = stmt.query_map(params![now, after, limit], |r| {
                let session = Session::new(r.get(1)?, from_julian(r.get::<_, f64>(2)?));
                Ok((Entry::new(r.get(0)?, session), r.get(3)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Deletes every expired session now and reports how many were removed
    /// (see [`CleanupReport`]): what the cleanup thread runs. Works in
    /// batches (see [`Builder::cleanup_batch_size`]) so commits never wait
    /// behind a large backlog, then gives freed pages back to the file
    /// system when the file uses incremental vacuum.
    pub fn delete_expired(&self) -> Result<CleanupReport> {
        cleanup::run(&*self.inner.0, &|| true)
    }

    /// [`delete_expired`](Self::delete_expired) that stops
    /// before its next step once `keep_going` says no.
    #[cfg(feature = "tokio")]
    pub(crate) fn delete_expired_while(
        &self,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<CleanupReport> {
        cleanup::run(&*self.inner.0, keep_going)
    }

    /// Stops the cleanup thread, if one runs. Idempotent; never blocks (the
    /// thread ends after the batch it may be running).
    pub fn stop_cleanup(&self) {
        if let Some(cleanup) = lock(&self.inner.cleanup_thread).as_ref() {
            cleanup.stop();
        }
    }

    /// Counts, file sizes and the last cleanup.
    pub fn stats(&self) -> Result<Stats> {
        let inner = &self.inner;
        let now = inner.now();
        inner.read(|conn| {
            let count = |sql: &str| -> Result<u64> {
                Ok(conn
                    .prepare_cached(sql)?
                    .query_row([now], |r| r.get::<_, i64>(0))? as u64)
            };
            let active = count(&inner.sql.count_active)?;
            let expired = count(&inner.sql.count_expired)?;
            let (owners, owned) = if inner.owner_column {
                conn.prepare_cached(&inner.sql.count_owners)?
                    .query_row([now], |r| {
                        Ok((
                            r.get::<_, i64>(0)?.max(0) as u64,
                            r.get::<_, i64>(1)?.max(0) as u64,
                        ))
                    })?
            } else {
                (0, 0)
            };
            let pragma = |name: &str| -> Result<u64> {
                Ok(connection::pragma_i64(conn, name)?.max(0) as u64)
            };
            let file_size = std::fs::metadata(&inner.path)?.len();
            let wal_size =
                std::fs::metadata(connection::wal_path(&inner.path)).map_or(0, |m| m.len());
            Ok(Stats {
                active,
                expired,
                file_size,
                wal_size,
                page_size: pragma(pragma::PAGE_SIZE)?,
                page_count: pragma(pragma::PAGE_COUNT)?,
                free_pages: pragma(pragma::FREELIST_COUNT)?,
                incremental_vacuum: inner.cleanup.incremental_vacuum(),
                last_cleanup: inner.cleanup.last(),
                owners,
                owned,
            })
        })
    }

    /// Rebuilds the file (`VACUUM`), giving all free space back. Holds the
    /// write lock for the whole rebuild; for operators, not request paths.
    pub fn vacuum(&self) -> Result<()> {
        self.inner.writer()?.vacuum()
    }

    /// Closes the store, for this handle and every clone (see
    /// [Closing](Self#closing)). Returns once the cleanup and checkpoint
    /// threads have stopped (after the step they may be running), running
    /// calls have finished, the WAL is copied into the database file and
    /// truncated, and every connection is closed. Calls through clones
    /// then fail with [`Error::Closed`]; closing again returns `Ok`.
    ///
    /// Blocks for as long as that takes, at most about `busy_timeout` when
    /// another process holds the lock. The store is closed even when this
    /// returns an error: [`Error::Busy`] when another process's reader kept
    /// the WAL from being checkpointed (the next open replays it).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// The current time by the store's clock (see [`Builder::clock`]): the
    /// time expiry is compared against.
    pub fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// The database file's path, made absolute at open.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the store was opened (or fell back to) read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.writer.is_none()
    }

    /// The largest token `commit` accepts, in bytes.
    pub fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    /// The largest data `commit` accepts, in bytes.
    pub fn max_data_len(&self) -> usize {
        self.inner.max_data_len
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn async_gate(&self) -> &crate::gate::Gate {
        &self.inner.async_gate
    }

    /// The writer itself, for unit tests of its queue.
    #[cfg(test)]
    pub(crate) fn writer_for_tests(&self) -> Result<Arc<Writer>> {
        self.inner.writer.clone().ok_or(Error::ReadOnly(None))
    }

    /// The writer; [`Error::Closed`] or [`Error::ReadOnly`] when there is
    /// none to write with.
    #[cfg(feature = "tokio")]
    pub(crate) fn writer(&self) -> Result<&Writer> {
        self.inner.writer()
    }
}

/// A write checked and ready for the writer: its operation, and how the
/// rows it changed answer the caller; or the answer already, when there is
/// nothing to write (a token that cannot be stored). Built once, then run by
/// the sync store (blocking) or the async front (awaiting).
pub(crate) enum Prepared<T> {
    Answered(T),
    Write(WriteOp, fn(u64) -> T),
}

impl Inner {
    /// Runs a prepared write, blocking until the writer answers.
    fn run<T>(&self, prepared: Prepared<T>) -> Result<T> {
        match prepared {
            Prepared::Answered(answer) => Ok(answer),
            Prepared::Write(op, answer) => Ok(answer(self.writer()?.submit(op)?)),
        }
    }
}

impl Inner {
    fn now(&self) -> f64 {
        to_julian(self.clock.now())
    }

    /// Runs `f` on a reader connection, unless the file is known to be
    /// replaced. A read that fails (a connection opened on the replacement
    /// may find an old `-wal` beside it) reports a replaced file as such.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let replaced_or = |err: Error| {
            if self.file.replaced() {
                self.file.error()
            } else {
                err
            }
        };
        self.file.check_known()?;
        let conn = self.readers.get().map_err(replaced_or)?;
        f(&conn).map_err(replaced_or)
    }

    /// Runs `f` here, on an idle reader with SQLite's busy handler off, so
    /// it never sleeps waiting for a lock. `None` (do it the waiting way)
    /// when no reader is idle, the store is closing, or SQLite reports a
    /// lock.
    #[cfg(feature = "tokio")]
    fn try_read_now<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if let Err(err) = self.file.check_known() {
            return Some(Err(err));
        }
        let conn = self.readers.try_get()?;
        conn.busy_timeout(Duration::ZERO).ok()?;
        let result = f(&conn);
        // The connection goes back to the pool with its usual timeout.
        if let Err(err) = conn.busy_timeout(self.busy_timeout) {
            return Some(Err(err.into()));
        }
        match result {
            Err(Error::Busy(_)) => None,
            Err(err) if self.file.replaced() => {
                tracing::debug!(%err, "read failed on a replaced file");
                Some(Err(self.file.error()))
            }
            other => Some(other),
        }
    }

    fn writer(&self) -> Result<&Writer> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.writer.as_deref().ok_or(Error::ReadOnly(None))
    }

    /// See [`SqliteStore::close`]. Idempotent; the first error wins, and
    /// every step runs even after one failed.
    fn close(&self) -> Result<()> {
        let _one_at_a_time = self.closing.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        #[cfg(feature = "tokio")]
        self.async_gate.close();
        // Take each thread out of its lock before joining it: the cleanup
        // thread may be stopping itself through the same lock.
        let cleanup = lock(&self.cleanup_thread).take();
        if let Some(thread) = cleanup {
            thread.stop_and_join();
        }
        // The checkpoint thread holds the writer and a connection of its
        // own; both are released when it ends.
        let checkpoint = lock(&self.checkpoint_thread).take();
        if let Some(thread) = checkpoint {
            thread.stop_and_join();
        }
        // The readers first: the writer, closing last, removes the WAL.
        let readers = self.readers.close();
        let writer = self.writer.as_ref().map_or(Ok(()), |w| w.close());
        tracing::debug!(path = %self.path.display(), "session store closed");
        readers.and(writer)
    }

    /// `close` for drop, where errors can only be logged.
    fn close_logged(&self) {
        if let Err(err) = self.close() {
            tracing::warn!(%err, path = %self.path.display(), "closing the session store failed");
        }
    }

    fn token_fits(&self, token: &str) -> bool {
        !token.is_empty() && token.len() <= self.max_token_len
    }

    fn check_commit(&self, token: &str, data: &[u8]) -> Result<()> {
        if token.is_empty() {
            return Err(Error::EmptyToken);
        }
        if token.len() > self.max_token_len {
            return Err(Error::TokenTooLong {
                len: token.len(),
                max: self.max_token_len,
            });
        }
        if data.len() > self.max_data_len {
            return Err(Error::DataTooLarge {
                len: data.len(),
                max: self.max_data_len,
            });
        }
        Ok(())
    }
}

impl cleanup::Host for Inner {
    fn writer(&self) -> Result<&Writer> {
        Inner::writer(self)
    }

    fn now(&self) -> f64 {
        Inner::now(self)
    }

    fn count_expired(&self, now: f64) -> Result<u64> {
        self.read(|conn| {
            let n: i64 = conn
                .prepare_cached(&self.sql.count_expired)?
                .query_row([now], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    fn free_pages(&self) -> Result<u64> {
        self.read(connection::free_pages)
    }

    fn cleanup(&self) -> &Cleanup {
        &self.cleanup
    }
}

/// Locks a thread slot; a panic elsewhere never leaves one inconsistent.
fn lock(slot: &Mutex<Option<Background>>) -> std::sync::MutexGuard<'_, Option<Background>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `data, expiry` row.
fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session::new(r.get(0)?, from_julian(r.get(1)?)))
}

/// The owner as stored, or [`Error::InvalidOwner`].
fn check_owner(owner: Option<&str>) -> Result<Option<String>> {
    match owner {
        None => Ok(None),
        Some(owner) => match session_contract::owner_problem(owner) {
            Some(problem) => Err(Error::InvalidOwner(problem)),
            None => Ok(Some(owner.to_owned())),
        },
    }
}

/// One row by storage key (`?1`) and the current time (`?2`).
fn query_by_key<T>(
    conn: &Connection,
    sql: &str,
    key: &str,
    now: f64,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![key, now], row)
        .optional()?)
}
