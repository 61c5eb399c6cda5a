//! The single writer connection and group commit.
//!
//! Every write (commit, delete, cleanup batch, vacuum step) goes through one
//! connection. Writers queue their operation; the first to find no leader
//! becomes the leader, takes everything queued, runs it in one transaction
//! and wakes the others with their results. A lone writer leads itself and
//! pays no hand-off. Under load the leader runs one batch only and then
//! passes the lead to the oldest waiting writer, so no caller keeps working
//! for others indefinitely and each waits for at most the batch in flight
//! plus its own.
//!
//! If a batch fails, it is rolled back and each operation is retried in a
//! transaction of its own, so one bad write never fails its neighbours and
//! every caller gets its own error.
//!
//! A write may carry a [`Cancel`] flag (the async front sets one per call
//! and raises it when the call's future is dropped). The writer looks at it
//! once it holds the write lock, just before running the write: a write
//! cancelled by then is skipped and answered [`Error::Cancelled`]; one that
//! has started is applied whole.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{params, Connection, TransactionBehavior};

use crate::connection::FileIdentity;
use crate::error::{Error, Result};
use crate::schema::{incremental_vacuum, pragma, Checkpoint, Sql};
use crate::wal::{checkpoint, WalState};

/// Raised when the caller of a write has gone away; see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

// Raised and scoped only by the async front.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl Cancel {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Runs `f` with every write it submits on this thread carrying this
    /// flag. The store's operations stay plain sync calls; the async front
    /// wraps each blocking task in this.
    pub(crate) fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Cancel>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT_CANCEL.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(CURRENT_CANCEL.with(|c| c.borrow_mut().replace(self.clone())));
        f()
    }

    /// The flag of the scope this thread runs in, if any.
    fn current() -> Option<Cancel> {
        CURRENT_CANCEL.with(|c| c.borrow().clone())
    }
}

thread_local! {
    static CURRENT_CANCEL: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

/// Whether `cancel` says to skip the write.
fn cancelled(cancel: Option<&Cancel>) -> bool {
    cancel.is_some_and(Cancel::is_cancelled)
}

/// What a `yield_to_writers` cleanup batch returns when it gave way.
pub(crate) const YIELDED: u64 = u64::MAX;

/// How many SQLite VM steps between checks for a queued writer.
const YIELD_CHECK_STEPS: std::ffi::c_int = 1000;

/// A boxed maintenance step that must run outside any transaction.
pub(crate) type Standalone = Box<dyn FnOnce(&mut Connection) -> Result<u64> + Send>;

/// What an update does to the row's owner.
pub(crate) enum SetOwner {
    Keep,
    To(Option<String>),
}

/// One write. Tokens are already validated (and hashed, if configured).
pub(crate) enum WriteOp {
    /// Insert or replace.
    Commit {
        key: String,
        data: Vec<u8>,
        expiry: f64,
    },
    /// Insert or replace, and set the owner.
    CommitOwned {
        key: String,
        data: Vec<u8>,
        expiry: f64,
        owner: Option<String>,
    },
    /// Insert unless an active row has the key; 1 if written, 0 if not.
    Create {
        key: String,
        data: Vec<u8>,
        expiry: f64,
        now: f64,
        owner: Option<String>,
    },
    /// Write over an active row only; 1 if written, 0 if it is gone.
    Update {
        key: String,
        data: Vec<u8>,
        expiry: f64,
        now: f64,
        owner: SetOwner,
    },
    /// Move an active row's expiry only; 1 if moved, 0 if it is gone.
    Touch { key: String, expiry: f64, now: f64 },
    /// Delete up to `limit` rows of `owner`; rows removed.
    RevokeOwner { owner: String, limit: u64 },
    /// Delete one key; rows removed.
    Delete { key: String },
    /// Delete up to `limit` expired rows; rows removed. With
    /// `yield_to_writers`, it runs in a transaction of its own that is
    /// abandoned (rolled back, returning [`YIELDED`]) the moment another
    /// write queues, so a large idle-time batch never delays a request.
    DeleteExpired {
        now: f64,
        limit: u64,
        yield_to_writers: bool,
    },
    /// Give up to `pages` free pages back to the file system; returns the
    /// pages freed (0 when `auto_vacuum` is not incremental).
    /// `yield_to_writers` as for `DeleteExpired`.
    IncrementalVacuum { pages: u64, yield_to_writers: bool },
    /// Run alone, outside a transaction (`VACUUM`).
    Standalone(Standalone),
}

impl WriteOp {
    /// Whether the op gives way to other writes.
    fn yields(&self) -> bool {
        matches!(
            self,
            WriteOp::DeleteExpired {
                yield_to_writers: true,
                ..
            } | WriteOp::IncrementalVacuum {
                yield_to_writers: true,
                ..
            }
        )
    }

    /// Whether the op must not share a transaction with others.
    fn runs_alone(&self) -> bool {
        matches!(
            self,
            WriteOp::Standalone(_)
                | WriteOp::DeleteExpired {
                    yield_to_writers: true,
                    ..
                }
                | WriteOp::IncrementalVacuum {
                    yield_to_writers: true,
                    ..
                }
        )
    }

    fn run(&self, conn: &Connection, sql: &Sql) -> rusqlite::Result<u64> {
        let changed = match self {
            WriteOp::Commit { key, data, expiry } => conn
                .prepare_cached(&sql.commit)?
                .execute(params![key, data, expiry])?,
            WriteOp::CommitOwned {
                key,
                data,
                expiry,
                owner,
            } => conn
                .prepare_cached(&sql.commit_owned)?
                .execute(params![key, data, expiry, owner])?,
            WriteOp::Create {
                key,
                data,
                expiry,
                now,
                owner,
            } => conn
                .prepare_cached(&sql.create)?
                .execute(params![key, data, expiry, now, owner])?,
            WriteOp::Update {
                key,
                data,
                expiry,
                now,
                owner: SetOwner::Keep,
            } => conn
                .prepare_cached(&sql.update)?
                .execute(params![key, data, expiry, now])?,
            WriteOp::Update {
                key,
                data,
                expiry,
                now,
                owner: SetOwner::To(owner),
            } => conn
                .prepare_cached(&sql.update_owned)?
                .execute(params![key, data, expiry, now, owner])?,
            WriteOp::Touch { key, expiry, now } => conn
                .prepare_cached(&sql.touch)?
                .execute(params![key, expiry, now])?,
            WriteOp::RevokeOwner { owner, limit } => conn
                .prepare_cached(&sql.revoke_owner_batch)?
                .execute(params![owner, i64::try_from(*limit).unwrap_or(i64::MAX)])?,
            WriteOp::Delete { key } => conn.prepare_cached(&sql.delete)?.execute([key])?,
            WriteOp::DeleteExpired { now, limit, .. } => conn
                .prepare_cached(&sql.delete_expired_batch)?
                .execute(params![now, i64::try_from(*limit).unwrap_or(i64::MAX)])?,
            WriteOp::IncrementalVacuum { pages, .. } => {
                let free = |conn: &Connection| {
                    conn.pragma_query_value(None, pragma::FREELIST_COUNT, |r| r.get::<_, i64>(0))
                };
                let before = free(conn)?;
                // Frees one page per step: step it to the end (a single
                // step, as `execute` would do, frees one page only). Ends
                // after `pages` steps at most.
                let mut stmt = conn.prepare_cached(&incremental_vacuum(*pages))?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
                return Ok(before.saturating_sub(free(conn)?).max(0) as u64);
            }
            WriteOp::Standalone(_) => unreachable!("standalone ops do not run in a batch"),
        };
        Ok(changed as u64)
    }
}

enum SlotState {
    Waiting,
    /// The leader passed the lead to this writer.
    Lead,
    Done(Result<u64>),
}

struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
    cancel: Option<Cancel>,
}

impl Slot {
    fn new(cancel: Option<Cancel>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState::Waiting),
            changed: Condvar::new(),
            cancel,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: SlotState) {
        *self.lock() = state;
        self.changed.notify_one();
    }
}

struct Queue {
    pending: Vec<(WriteOp, Arc<Slot>)>,
    /// Some writer is leading; new arrivals only queue.
    leading: bool,
}

pub(crate) struct Writer {
    /// None once closed.
    conn: Mutex<Option<Connection>>,
    queue: Mutex<Queue>,
    /// Writers queued and not yet taken into a batch (for cleanup pacing).
    queued: Arc<AtomicUsize>,
    /// Writers left waiting when the last batch finished.
    waiting_after_batch: AtomicUsize,
    sql: Arc<Sql>,
    group_commit: bool,
    wal: Arc<WalState>,
    file: Arc<FileIdentity>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("group_commit", &self.group_commit)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl Drop for Writer {
    /// Copies the WAL into the database and truncates it, so that a closed
    /// store is one self-contained file even if another connection of ours
    /// (a reader, the checkpoint thread) happens to close after the writer.
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(conn) = conn.as_mut() else {
            return; // closed already
        };
        if let Err(err) = checkpoint(conn, Checkpoint::Truncate) {
            tracing::debug!(%err, "final WAL checkpoint failed; the WAL is replayed on next open");
        }
    }
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        sql: Arc<Sql>,
        group_commit: bool,
        wal: Arc<WalState>,
        file: Arc<FileIdentity>,
    ) -> Self {
        Self {
            conn: Mutex::new(Some(conn)),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leading: false,
            }),
            queued: Arc::new(AtomicUsize::new(0)),
            waiting_after_batch: AtomicUsize::new(0),
            sql,
            group_commit,
            wal,
            file,
        }
    }

    /// The backstop for a WAL that could not start over (see
    /// [`crate::wal`]): finish the checkpoint while holding the
    /// writer, before the next batch.
    fn backstop_checkpoint(&self, conn: &Connection) {
        if self.wal.over_backstop() {
            // PASSIVE: with nothing appended meanwhile it copies all it may
            // without waiting for readers (another process's long read must
            // not hold our writes for busy_timeout); the next commit then
            // starts the WAL over.
            match checkpoint(conn, Checkpoint::Passive) {
                Ok((log, copied)) => tracing::debug!(log, copied, "backstop WAL checkpoint"),
                Err(err) => tracing::warn!(%err, "backstop WAL checkpoint failed"),
            }
        }
    }

    /// A PASSIVE checkpoint while holding the writer, so nothing is appended
    /// meanwhile; (frames in the WAL, frames copied).
    pub(crate) fn checkpoint(&self) -> Result<(i64, i64)> {
        let conn = self.lock_conn();
        let conn = conn.as_ref().ok_or(Error::Closed)?;
        Ok(checkpoint(conn, Checkpoint::Passive)?)
    }

    /// Waits for the batch in flight, copies the WAL into the database and
    /// truncates it, and closes the connection; later writes get
    /// [`Error::Closed`]. Closes it even when the checkpoint fails (another
    /// process reading), and then returns that error.
    pub(crate) fn close(&self) -> Result<()> {
        let Some(conn) = self.lock_conn().take() else {
            return Ok(());
        };
        // (busy, frames in the WAL, frames copied)
        let checkpointed = conn.query_row(Checkpoint::Truncate.sql(), [], |r| r.get::<_, i64>(0));
        conn.close().map_err(|(_, err)| err)?;
        match checkpointed? {
            0 => Ok(()),
            _ => Err(Error::Busy(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("another connection kept the WAL from being checkpointed".into()),
            ))),
        }
    }

    /// How many writes are waiting for the writer right now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether other writes are competing for the writer: some are queued
    /// now, or some were left waiting when the last batch ended.
    pub(crate) fn contended(&self) -> bool {
        self.queued() > 0 || self.waiting_after_batch.load(Ordering::Relaxed) > 0
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_conn(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic inside rusqlite leaves the connection usable: any open
        // transaction is rolled back before the next batch begins.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` and returns once its transaction has committed (or failed,
    /// or skipped it as cancelled).
    pub(crate) fn submit(&self, op: WriteOp) -> Result<u64> {
        let cancel = Cancel::current();
        if cancelled(cancel.as_ref()) {
            return Err(Error::Cancelled);
        }
        if !self.group_commit {
            self.queued.fetch_add(1, Ordering::Relaxed);
            let mut conn = self.lock_conn();
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let result = match conn.as_mut() {
                None => Err(Error::Closed),
                Some(_) if self.file.replaced() => Err(self.file.error()),
                Some(conn) => {
                    self.backstop_checkpoint(conn);
                    self.run_alone(conn, op, cancel.as_ref())
                }
            };
            self.waiting_after_batch
                .store(self.queued(), Ordering::Relaxed);
            return result;
        }
        let slot = Slot::new(cancel);
        let lead = {
            let mut q = self.lock_queue();
            q.pending.push((op, Arc::clone(&slot)));
            self.queued.fetch_add(1, Ordering::Relaxed);
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead {
            let mut st = slot.lock();
            loop {
                match std::mem::replace(&mut *st, SlotState::Waiting) {
                    SlotState::Waiting => {
                        st = slot.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    SlotState::Done(result) => return result,
                    SlotState::Lead => break,
                }
            }
        }
        self.lead(&slot)
    }

    /// Runs one batch (which holds this writer's own op), then hands the lead
    /// to the oldest waiter, or gives it up when none is left.
    fn lead(&self, own: &Arc<Slot>) -> Result<u64> {
        let batch = {
            let mut q = self.lock_queue();
            let batch = std::mem::take(&mut q.pending);
            self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            batch
        };
        {
            let mut guard = self.lock_conn();
            let Some(conn) = guard.as_mut() else {
                for (_, slot) in batch {
                    slot.set(SlotState::Done(Err(Error::Closed)));
                }
                drop(guard);
                self.hand_off();
                return own_result(own);
            };
            self.backstop_checkpoint(conn);
            if self.file.replaced() {
                for (_, slot) in batch {
                    slot.set(SlotState::Done(Err(self.file.error())));
                }
            } else {
                let slots: Vec<Arc<Slot>> =
                    batch.iter().map(|(_, slot)| Arc::clone(slot)).collect();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.run_batch(conn, batch)
                }));
                if let Err(panic) = run {
                    // Nobody may wait forever: fail what was not answered,
                    // pass the lead on, then let the panic go on.
                    for slot in &slots {
                        let mut st = slot.lock();
                        if matches!(*st, SlotState::Waiting) {
                            *st = SlotState::Done(Err(Error::WriterPanicked));
                            slot.changed.notify_one();
                        }
                    }
                    drop(guard);
                    self.hand_off();
                    std::panic::resume_unwind(panic);
                }
            }
        }
        self.hand_off();
        own_result(own)
    }

    /// Passes the lead to the oldest waiting writer, or gives it up.
    fn hand_off(&self) {
        {
            let mut q = self.lock_queue();
            self.waiting_after_batch
                .store(q.pending.len(), Ordering::Relaxed);
            match q.pending.first() {
                Some((_, next)) => next.set(SlotState::Lead),
                None => q.leading = false,
            }
        }
    }

    fn run_batch(&self, conn: &mut Connection, batch: Vec<(WriteOp, Arc<Slot>)>) {
        let shared = batch.len() > 1;
        let mut group: Vec<(WriteOp, Arc<Slot>)> = Vec::with_capacity(batch.len());
        for (op, slot) in batch {
            if shared && op.yields() {
                // Others arrived with it: give way before starting, as it
                // would the moment they queued.
                slot.set(SlotState::Done(Ok(YIELDED)));
            } else if op.runs_alone() {
                self.run_group(conn, std::mem::take(&mut group));
                slot.set(SlotState::Done(self.run_alone(
                    conn,
                    op,
                    slot.cancel.as_ref(),
                )));
            } else {
                group.push((op, slot));
            }
        }
        self.run_group(conn, group);
    }

    /// One transaction for all of `group`; on failure, one each.
    fn run_group(&self, conn: &mut Connection, group: Vec<(WriteOp, Arc<Slot>)>) {
        match group.len() {
            0 => {}
            1 => {
                let (op, slot) = group.into_iter().next().expect("one");
                slot.set(SlotState::Done(self.run_alone(
                    conn,
                    op,
                    slot.cancel.as_ref(),
                )));
            }
            _ => match self.transaction(
                conn,
                group.iter().map(|(op, slot)| (op, slot.cancel.as_ref())),
            ) {
                Ok(changes) => {
                    for ((_, slot), changed) in group.iter().zip(changes) {
                        slot.set(SlotState::Done(changed.ok_or(Error::Cancelled)));
                    }
                }
                Err(Error::Busy(err)) => {
                    // The lock was not to be had within busy_timeout; retrying
                    // each write alone would make callers wait that long again
                    // and again. Every write of the group gets the error.
                    for (_, slot) in group {
                        slot.set(SlotState::Done(Err(Error::Busy(duplicate(&err)))));
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, size = group.len(), "group commit failed; retrying each write alone");
                    for (op, slot) in group {
                        let result = self.run_alone(conn, op, slot.cancel.as_ref());
                        slot.set(SlotState::Done(result));
                    }
                }
            },
        }
    }

    fn run_alone(
        &self,
        conn: &mut Connection,
        op: WriteOp,
        cancel: Option<&Cancel>,
    ) -> Result<u64> {
        match op {
            // It takes the lock itself; we hold the only writer connection.
            WriteOp::Standalone(_) if cancelled(cancel) => Err(Error::Cancelled),
            WriteOp::Standalone(f) => f(conn),
            op @ (WriteOp::DeleteExpired {
                yield_to_writers: true,
                ..
            }
            | WriteOp::IncrementalVacuum {
                yield_to_writers: true,
                ..
            }) => self.run_yielding(conn, &op, cancel),
            op => only(self.transaction(conn, std::iter::once((&op, cancel)))?),
        }
    }

    /// Runs `op` in its own transaction, abandoning it as soon as another
    /// write is queued. Rolling back a WAL transaction only drops frames
    /// never committed, so giving way costs the waiting writer little.
    fn run_yielding(
        &self,
        conn: &mut Connection,
        op: &WriteOp,
        cancel: Option<&Cancel>,
    ) -> Result<u64> {
        let queued = Arc::clone(&self.queued);
        let result = with_progress_handler(
            conn,
            move || queued.load(Ordering::Relaxed) > 0,
            |conn| self.transaction(conn, std::iter::once((op, cancel))),
        )?;
        match result {
            Ok(changes) => only(changes),
            Err(Error::Sqlite(err))
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
            {
                Ok(YIELDED)
            }
            Err(err) => Err(err),
        }
    }

    /// Runs `ops` in one transaction; `None` for each op skipped because
    /// it was cancelled by the time the write lock was ours.
    fn transaction<'a>(
        &self,
        conn: &mut Connection,
        ops: impl Iterator<Item = (&'a WriteOp, Option<&'a Cancel>)>,
    ) -> Result<Vec<Option<u64>>> {
        // IMMEDIATE takes the write lock up front, so another process makes
        // us wait (busy_timeout) instead of failing mid-transaction.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changes = ops
            .map(|(op, cancel)| {
                if cancelled(cancel) {
                    Ok(None)
                } else {
                    op.run(&tx, &self.sql).map(Some)
                }
            })
            .collect::<rusqlite::Result<Vec<Option<u64>>>>()?;
        tx.commit()?;
        Ok(changes)
    }
}

/// The leader's own result, once its batch has answered every slot.
fn own_result(own: &Slot) -> Result<u64> {
    match std::mem::replace(&mut *own.lock(), SlotState::Waiting) {
        SlotState::Done(result) => result,
        // Unreachable: the batch held our op and fulfilled every slot.
        _ => Err(Error::WriterPanicked),
    }
}

/// The result of a transaction of one op.
fn only(changes: Vec<Option<u64>>) -> Result<u64> {
    changes.into_iter().next().flatten().ok_or(Error::Cancelled)
}

/// Runs `f` with `interrupt` installed as `conn`'s progress handler (checked
/// every [`YIELD_CHECK_STEPS`] VM steps; returning true interrupts the
/// statement). The handler is removed on every way out of `f`, a panic
/// included: left installed, it would interrupt every later write.
fn with_progress_handler<T>(
    conn: &mut Connection,
    interrupt: impl FnMut() -> bool + Send + 'static,
    f: impl FnOnce(&mut Connection) -> T,
) -> Result<T> {
    conn.progress_handler(YIELD_CHECK_STEPS, Some(interrupt))?;
    let guard = ProgressHandlerGuard(conn);
    Ok(f(&mut *guard.0))
}

/// Removes the connection's progress handler when dropped.
struct ProgressHandlerGuard<'c>(&'c mut Connection);

impl Drop for ProgressHandlerGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.0.progress_handler(0, None::<fn() -> bool>) {
            // Removing a handler only frees a box; SQLite cannot refuse it.
            tracing::warn!(%err, "could not remove the cleanup progress handler");
        }
    }
}

/// A copy of a SQLite error, for handing one failure to several callers
/// (rusqlite's error is not `Clone`).
fn duplicate(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, msg) => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code.extended_code),
            msg.clone(),
        ),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic inside the guarded scope must not leave the handler (which
    /// here interrupts everything) installed on the connection.
    #[test]
    fn progress_handler_is_removed_when_the_scope_panics() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE t (x INTEGER)")?;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_progress_handler(
                &mut conn,
                || true,
                |conn| {
                    // The handler is live inside the scope.
                    let err = conn
                        .execute_batch(
                            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c \
                             WHERE n < 100000) INSERT INTO t SELECT n FROM c",
                        )
                        .unwrap_err();
                    assert_eq!(
                        err.sqlite_error_code(),
                        Some(rusqlite::ErrorCode::OperationInterrupted)
                    );
                    panic!("a panic between installing and removing the handler");
                },
            )
        }));
        assert!(panicked.is_err());
        // Ordinary work is no longer interrupted.
        conn.execute_batch(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c \
             WHERE n < 100000) INSERT INTO t SELECT n FROM c",
        )?;
        let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
        assert_eq!(rows, 100_000);
        Ok(())
    }
}
