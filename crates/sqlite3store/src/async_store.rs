//! The async front: the same store, with writes awaited from the writer
//! thread and reads run in place or on tokio's blocking pool, with the calls
//! in flight bounded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use session_contract::{Entry, Listed, Session};

use crate::builder::Builder;
use crate::cleanup::CleanupReport;
use crate::error::{Error, Result};
use crate::gate::Kind;
use crate::reply::Cancel;
use crate::store::{Prepared, SqliteStore, Stats};
use crate::writer::Admission;

/// The async face of [`SqliteStore`]: the same operations as `async fn`s.
///
/// No runtime worker thread ever waits on a lock or on the writer. Writes
/// are sent to the store's writer thread and awaited: a pending write is a
/// future, not a parked thread (see [Writes](#writes)). Reads that may wait
/// move to tokio's blocking pool ([`tokio::task::spawn_blocking`]); finds
/// that cannot wait run in place (see
/// [Reads without a thread](#reads-without-a-thread)). It works on a
/// `current_thread` runtime and with time paused.
///
/// Cheap to clone; converts to and from [`SqliteStore`] for free, and both
/// share one store.
///
/// # Writes
///
/// `commit`, `create`, `update`, `touch`, `delete` (and their `_owned`
/// forms) and `vacuum` queue their operation for the writer thread, which
/// runs whatever is queued in one transaction (group commit) and answers
/// each caller; the calling task is woken with its answer. Queuing takes the
/// writer queue's mutex, which is held only to push or take messages, never
/// across SQL. `delete_expired` and `revoke_owner`, which run in several
/// steps, run on the blocking pool.
///
/// # Cancellation
///
/// Dropping a future (a request timeout, a client gone) never loses an
/// acknowledged write, and never leaves half of one. A write whose future is
/// dropped before the writer starts it (while it waits for a slot, for the
/// writer, or for another process's write lock) is not applied at all, so
/// a timed-out write can never land after, and overwrite, the retry that
/// followed it. One the writer has started is applied whole. For
/// `revoke_owner`, batches already done stay done. `delete_expired` starts
/// no new batch (one already queued may still run; it only removes expired
/// rows).
///
/// # Reads without a thread
///
/// Handing a call to the blocking pool and waking the caller back up costs
/// more than a find itself (a few microseconds). So `find` and
/// `find_with_expiry` run on the calling runtime thread when a reader
/// connection is idle, and go to the blocking pool otherwise. Such a
/// read may wait only on:
/// - the reader pool's mutex, held by others only to push or pop a
///   connection, never across SQL or I/O;
/// - the pages of one indexed lookup, read from the OS page cache (or the
///   disk, for a page not cached);
/// - in WAL mode, SQLite's few short retries while another connection
///   rewrites the WAL index header (the start of a checkpoint's restart).
///
/// It never waits for a lock held by a writer or another process: the
/// busy handler is off for it, and when SQLite reports a lock
/// (`SQLITE_BUSY`, e.g. a file not in WAL mode under a writer), the read
/// goes to the blocking pool and waits there, up to `busy_timeout`.
/// Reads run this way take no slot of [`max_async_reads`](Builder::max_async_reads)
/// and do not show in [`in_flight`](Self::in_flight).
///
/// # Bounded
///
/// At most [`max_async_reads`](Builder::max_async_reads) reads (`find`,
/// `find_with_expiry`, `all`, `list`, `list_owner`, `count_owner`, `stats`,
/// `export_page`, `export_page_owned`)
/// of one store run on the blocking pool at once, and at most
/// [`max_async_writes`](Builder::max_async_writes) writes (every other
/// call: `commit`, `create`, `update`, `touch`, `delete`, `revoke_owner`,
/// `delete_expired`, `vacuum`, ...) are in the writer's queue or running;
/// the limits are shared by every async handle of the store. Further calls
/// wait, as futures without a thread, in a first-come queue of their own
/// kind. A write holds its slot until the writer has answered it, even when
/// its future was dropped, so the queue stays bounded. Writes that stall
/// (another process holds the write lock for up to `busy_timeout`, or a
/// `vacuum` runs) hold no thread (only `delete_expired` and `revoke_owner`
/// take one each), and finds keep answering.
/// [`in_flight`](Self::in_flight) shows the calls running now.
///
/// # Closing
///
/// Dropping the last handle never blocks a runtime thread: closing goes to
/// the blocking pool (see [Closing](SqliteStore#closing)). To know the file
/// is closed and complete, call [`close`](Self::close)`().await` instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sqlite3store::Result<()> {
/// use std::time::{Duration, SystemTime};
/// use sqlite3store::{AsyncSqliteStore, SqliteStore};
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("sessions.db");
/// let store = SqliteStore::builder(&path).build_async().await?;
/// store.commit("token", b"data", SystemTime::now() + Duration::from_secs(60)).await?;
/// assert_eq!(store.find("token").await?, Some(b"data".to_vec()));
/// store.close().await?; // the file alone is now complete
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncSqliteStore {
    store: SqliteStore,
}

impl AsyncSqliteStore {
    /// The synchronous handle to the same store.
    pub fn as_sync(&self) -> &SqliteStore {
        &self.store
    }

    /// The calls of this store's async front in flight right now: reads on
    /// the blocking pool, and writes queued for or running on the writer
    /// (until answered); never more than the limits set on the [`Builder`].
    pub fn in_flight(&self) -> InFlight {
        let gate = self.store.async_gate();
        InFlight {
            reads: gate.reads.running.load(Ordering::Acquire),
            writes: gate.writes.running.load(Ordering::Acquire),
        }
    }

    /// Runs `f` on the blocking pool with a handle to the store, once a
    /// permit of `kind`'s lane is free. The permit goes with the blocking
    /// task, so a dropped future frees it only when the task has ended.
    async fn run<T: Send + 'static>(
        &self,
        kind: Kind,
        f: impl FnOnce(&SqliteStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let lane = self.store.async_gate().lane(kind);
        let permit = Arc::clone(&lane.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let running = Arc::clone(&lane.running);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::start(running);
            f(&store)
        })
        .await
        .map_err(Error::Task)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(Kind::Read, f).await
    }

    /// Sends a prepared write to the writer thread once a write slot is
    /// free, and awaits its answer: no thread waits for it. The slot goes
    /// with the message and is freed once the writer has answered, so a
    /// dropped future still holds it while its write is queued. Dropped
    /// before the writer starts it, the write is not applied.
    async fn write<T>(&self, prepared: Result<Prepared<T>>) -> Result<T> {
        let (op, answer) = match prepared? {
            Prepared::Answered(answer) => return Ok(answer),
            Prepared::Write(op, answer) => (op, answer),
        };
        let writer = self.store.writer()?;
        let admission = self.admit_write().await?;
        let changed = writer.send(op, admission)?.await?;
        Ok(answer(changed))
    }

    /// Waits for a write slot; the slot is held until the returned
    /// admission is dropped (by the writer, once it has answered).
    async fn admit_write(&self) -> Result<Admission> {
        let lane = self.store.async_gate().lane(Kind::Write);
        let permit = Arc::clone(&lane.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        // A tuple drops its fields in order: the count goes down before the
        // slot is freed, so `in_flight` never shows one more than the bound.
        Ok(Box::new((
            Running::start(Arc::clone(&lane.running)),
            permit,
        )))
    }

    /// Runs a write of several steps on the blocking pool; if this future is
    /// dropped, the steps `f` has not had started by the writer are skipped
    /// (`f` gets the flag to pass on).
    async fn write_steps<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore, &Cancel) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cancel = CancelOnDrop(Cancel::default());
        let flag = cancel.0.clone();
        self.run(Kind::Write, move |s| f(s, &flag)).await
    }

    /// See [`SqliteStore::find`]. Answered on the calling thread when it
    /// cannot wait (see [Reads without a thread](Self#reads-without-a-thread)).
    pub async fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        if let Some(found) = self.store.try_find_now(token) {
            return found;
        }
        let token = token.to_owned();
        self.read(move |s| s.find(&token)).await
    }

    /// See [`SqliteStore::find_with_expiry`]; answered on the calling thread
    /// as [`find`](Self::find) is.
    pub async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>> {
        if let Some(found) = self.store.try_find_with_expiry_now(token) {
            return found;
        }
        let token = token.to_owned();
        self.read(move |s| s.find_with_expiry(&token)).await
    }

    /// See [`SqliteStore::commit`].
    pub async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        self.write(self.store.prepare_commit(token, data, expiry))
            .await
    }

    /// See [`SqliteStore::create`].
    pub async fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.write(self.store.prepare_create(token, data, expiry, None))
            .await
    }

    /// See [`SqliteStore::delete`].
    pub async fn delete(&self, token: &str) -> Result<bool> {
        self.write(self.store.prepare_delete(token)).await
    }

    /// See [`SqliteStore::all`].
    pub async fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        self.read(SqliteStore::all).await
    }

    /// See [`SqliteStore::list`].
    pub async fn list(&self, limit: usize) -> Result<Vec<Listed>> {
        self.read(move |s| s.list(limit)).await
    }

    /// See [`SqliteStore::delete_expired`].
    pub async fn delete_expired(&self) -> Result<CleanupReport> {
        self.write_steps(|s, cancel| s.delete_expired_while(&|| !cancel.is_cancelled()))
            .await
    }

    /// See [`SqliteStore::stats`].
    pub async fn stats(&self) -> Result<Stats> {
        self.read(SqliteStore::stats).await
    }

    /// See [`SqliteStore::export_page`]; a read, on the blocking pool.
    pub async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>> {
        let after = after.to_owned();
        self.read(move |s| s.export_page(&after, limit)).await
    }

    /// See [`SqliteStore::export_page_owned`]; a read, on the blocking pool.
    pub async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>> {
        let after = after.to_owned();
        self.read(move |s| s.export_page_owned(&after, limit)).await
    }

    /// See [`SqliteStore::vacuum`].
    pub async fn vacuum(&self) -> Result<()> {
        let writer = self.store.writer()?;
        let admission = self.admit_write().await?;
        writer.send_vacuum(admission)?.await
    }

    /// Closes the store, for this handle and every clone, on the blocking
    /// pool; see [`SqliteStore::close`]. Returns once the file is closed
    /// and complete. Calls waiting for a slot, and any later call, fail with
    /// [`Error::Closed`]. If this future is dropped, closing goes on.
    pub async fn close(self) -> Result<()> {
        tokio::task::spawn_blocking(move || self.store.close())
            .await
            .map_err(Error::Task)?
    }

    /// See [`SqliteStore::stop_cleanup`]; never blocks.
    pub fn stop_cleanup(&self) {
        self.store.stop_cleanup();
    }

    /// See [`SqliteStore::now`].
    pub fn now(&self) -> SystemTime {
        self.store.now()
    }

    /// See [`SqliteStore::path`].
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// See [`SqliteStore::is_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.store.is_read_only()
    }

    /// See [`SqliteStore::max_token_len`].
    pub fn max_token_len(&self) -> usize {
        self.store.max_token_len()
    }

    /// See [`SqliteStore::max_data_len`].
    pub fn max_data_len(&self) -> usize {
        self.store.max_data_len()
    }
}

/// Calls of the async front in flight, from
/// [`AsyncSqliteStore::in_flight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InFlight {
    /// Reads running on the blocking pool now; at most
    /// [`Builder::max_async_reads`].
    pub reads: usize,
    /// Writes queued for or running on the writer, not yet answered; at
    /// most [`Builder::max_async_writes`].
    pub writes: usize,
}

impl Builder {
    /// Opens the store with these options as an [`AsyncSqliteStore`], off
    /// the runtime's threads: [`build`](Self::build) for async code.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn build_async(self) -> Result<AsyncSqliteStore> {
        let store = tokio::task::spawn_blocking(move || self.build())
            .await
            .map_err(Error::Task)??;
        Ok(AsyncSqliteStore { store })
    }

    /// The most reads (`find`, `find_with_expiry`, `all`, `list`,
    /// `list_owner`, `count_owner`, `stats`) the async front runs on tokio's blocking pool at once; more wait, as
    /// futures, for a free slot. 1 to 4096; 0 or more than 4096 is
    /// [`Error::InvalidConfig`] at `build`. Default: the number of
    /// [`readers`](Self::readers), so a running read never waits for a
    /// connection.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn max_async_reads(mut self, calls: usize) -> Self {
        self.max_async_reads = Some(calls);
        self
    }

    /// The most writes (every call that is not a read: `commit`, `create`,
    /// `update`, `touch`, `delete`, `revoke_owner`, `delete_expired`,
    /// `vacuum`, ...) of the async front in the writer's queue or running at
    /// once; more wait, as futures, for a free slot. Queued writes hold no
    /// thread (`delete_expired` and `revoke_owner` hold one each while they
    /// run). Group commit batches the writes queued together. 1 to 4096; 0
    /// or more than 4096 is [`Error::InvalidConfig`] at `build`.
    /// Default: 64.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn max_async_writes(mut self, calls: usize) -> Self {
        self.max_async_writes = calls;
        self
    }
}

/// Raises its flag when dropped: when a multi-step write's future completes
/// (too late to matter) or is dropped (the writer then skips what it has
/// not started).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Counts one call in flight while alive.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl From<SqliteStore> for AsyncSqliteStore {
    fn from(store: SqliteStore) -> Self {
        Self { store }
    }
}

impl From<AsyncSqliteStore> for SqliteStore {
    fn from(store: AsyncSqliteStore) -> Self {
        store.store
    }
}

/// Owners, revocation and touch (see the [`SqliteStore`] methods of the same
/// names).
impl AsyncSqliteStore {
    /// See [`SqliteStore::update`].
    pub async fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.write(self.store.prepare_update(token, data, expiry, None))
            .await
    }

    /// See [`SqliteStore::update_owned`].
    pub async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.write(self.store.prepare_update(token, data, expiry, Some(owner)))
            .await
    }

    /// See [`SqliteStore::commit_owned`].
    pub async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        self.write(self.store.prepare_commit_owned(token, data, expiry, owner))
            .await
    }

    /// See [`SqliteStore::create_owned`].
    pub async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.write(self.store.prepare_create(token, data, expiry, Some(owner)))
            .await
    }

    /// See [`SqliteStore::touch`].
    pub async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        self.write(self.store.prepare_touch(token, expiry)).await
    }

    /// See [`SqliteStore::list_owner`].
    pub async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>> {
        let owner = owner.to_owned();
        self.read(move |s| s.list_owner(&owner, limit)).await
    }

    /// See [`SqliteStore::count_owner`].
    pub async fn count_owner(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        self.read(move |s| s.count_owner(&owner)).await
    }

    /// See [`SqliteStore::revoke_owner`].
    pub async fn revoke_owner(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        self.write_steps(move |s, cancel| s.revoke_owner_cancellable(&owner, cancel))
            .await
    }
}
