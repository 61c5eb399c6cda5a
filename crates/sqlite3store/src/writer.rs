//! The single writer: a thread that owns the write connection, and group
//! commit.
//!
//! Every write (commit, delete, cleanup step, vacuum) goes to the writer
//! thread as a message over a bounded queue: the operation and a one-shot
//! [`Answer`] (see [`crate::reply`]). The thread takes everything queued,
//! runs it in one transaction, and answers each caller. Sync callers block
//! on the answer; async callers await it, so no thread waits per pending
//! write. The queue holds at most [`SYNC_QUEUE`] sync writes (a sync caller
//! blocks while they fill it) plus the async writes the async front
//! admitted: each carries one of its `max_async_writes` permits until it is
//! answered, so a write whose future was dropped still counts.
//!
//! One exception saves a sync caller two thread hand-offs: when nothing is
//! queued and no batch is running, it runs its write itself, as a batch of
//! one on its own thread, through the same code as the writer thread. The
//! connection is marked busy meanwhile, so the writer thread takes no batch
//! until it is done and writes that arrive meanwhile queue and commit
//! together after it, as before. Async callers always queue: a runtime
//! thread never runs SQL that may wait for the write lock.
//!
//! If a batch fails, it is rolled back and each operation is retried in a
//! transaction of its own, so one bad write never fails its neighbours and
//! every caller gets its own error. When the write lock cannot be had
//! within `busy_timeout`, every write of the batch gets [`Error::Busy`] at
//! once, instead of waiting that long again one by one. Should a batch
//! panic, its writes not yet answered get [`Error::WriterPanicked`] (their
//! answers are dropped unsent) and the thread goes on with the next batch.
//!
//! A write whose caller has gone (its future dropped, or its [`Cancel`]
//! raised) by the time the writer holds the write lock, just before running
//! it, is skipped and answered [`Error::Cancelled`]; one that has started is
//! applied whole.
//!
//! A maintenance step that gives way to writers runs in a transaction of its
//! own that is rolled back the moment another write queues
//! ([`Outcome::GaveWay`]), so a large idle-time batch never delays a
//! request. `VACUUM` and checkpoints run alone, outside any transaction.
//!
//! Closing stops taking writes, runs every write already queued (so none is
//! left unanswered), copies the WAL into the database and truncates it,
//! closes the connection and ends the thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::connection::FileIdentity;
use crate::error::{Error, Result};
use crate::reply::{self, Answer, Cancel, Pending};
use crate::schema::{incremental_vacuum, pragma, Checkpoint, Sql, VACUUM};
use crate::wal::{checkpoint, WalState};

/// How many SQLite VM steps between checks for a queued writer.
const YIELD_CHECK_STEPS: std::ffi::c_int = 1000;
/// The most sync writes queued at once; further sync callers wait for room.
const SYNC_QUEUE: usize = 1024;

/// What a maintenance step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran: rows removed, or pages freed.
    Done(u64),
    /// It gave way to a write that queued, and changed nothing.
    GaveWay,
}

/// One step of cleanup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Maintenance {
    /// Delete up to `limit` rows expired at `now`; rows removed.
    DeleteExpired { now: f64, limit: u64 },
    /// Give up to `pages` free pages back to the file system; pages freed
    /// (0 when `auto_vacuum` is not incremental).
    IncrementalVacuum { pages: u64 },
}

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
}

impl WriteOp {
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
        };
        Ok(changed as u64)
    }
}

impl Maintenance {
    fn run(&self, conn: &Connection, sql: &Sql) -> rusqlite::Result<u64> {
        match *self {
            Maintenance::DeleteExpired { now, limit } => Ok(conn
                .prepare_cached(&sql.delete_expired_batch)?
                .execute(params![now, i64::try_from(limit).unwrap_or(i64::MAX)])?
                as u64),
            Maintenance::IncrementalVacuum { pages } => {
                let free = |conn: &Connection| {
                    conn.pragma_query_value(None, pragma::FREELIST_COUNT, |r| r.get::<_, i64>(0))
                };
                let before = free(conn)?;
                // Frees one page per step: step it to the end (a single
                // step, as `execute` would do, frees one page only). Ends
                // after `pages` steps at most.
                let mut stmt = conn.prepare_cached(&incremental_vacuum(pages))?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
                Ok(before.saturating_sub(free(conn)?).max(0) as u64)
            }
        }
    }
}

/// Held for as long as a write is queued or running: the async front's
/// admission (its permit), so its bound also covers writes whose future was
/// dropped. `None` for sync callers, who count against [`SYNC_QUEUE`].
pub(crate) type Admission = Box<dyn Send>;

/// What the writer thread is asked to do, with the answer to send back.
enum Job {
    /// An ordinary write, batched with its neighbours.
    Write(WriteOp, Answer<u64>),
    /// A cleanup step; with `gives_way`, alone and abandoned for any write
    /// that queues.
    Maintain {
        step: Maintenance,
        gives_way: bool,
        answer: Answer<Outcome>,
    },
    /// `VACUUM`, alone, outside any transaction.
    Vacuum(Answer<()>),
    /// A PASSIVE checkpoint on the writer connection, between batches, so
    /// nothing is appended meanwhile: (frames in the WAL, frames copied).
    Checkpoint(Answer<(i64, i64)>),
}

impl Job {
    fn fail(self, err: Error) {
        match self {
            Job::Write(_, answer) => answer.send(Err(err)),
            Job::Maintain { answer, .. } => answer.send(Err(err)),
            Job::Vacuum(answer) => answer.send(Err(err)),
            Job::Checkpoint(answer) => answer.send(Err(err)),
        }
    }
}

struct Message {
    job: Job,
    admission: Option<Admission>,
}

/// A write that may share a transaction with others.
enum Member {
    Write(WriteOp, Answer<u64>),
    Step(Maintenance, Answer<Outcome>),
}

impl Member {
    fn abandoned(&self) -> bool {
        match self {
            Member::Write(_, answer) => answer.abandoned(),
            Member::Step(_, answer) => answer.abandoned(),
        }
    }

    fn run(&self, conn: &Connection, sql: &Sql) -> rusqlite::Result<u64> {
        match self {
            Member::Write(op, _) => op.run(conn, sql),
            Member::Step(step, _) => step.run(conn, sql),
        }
    }

    /// Sends the result; `Ok(None)`: skipped as cancelled.
    fn answer(self, result: Result<Option<u64>>) {
        let result = result.and_then(|n| n.ok_or(Error::Cancelled));
        match self {
            Member::Write(_, answer) => answer.send(result),
            Member::Step(_, answer) => answer.send(result.map(Outcome::Done)),
        }
    }
}

struct Queue {
    messages: VecDeque<Message>,
    /// Sync writes among `messages`.
    sync: usize,
    /// Checkpoints among `messages` (not writes: nothing gives way to them).
    checkpoints: usize,
    /// Set by `close`: no write is taken any more.
    closed: bool,
    /// A batch is running (on the writer thread, or inline on a sync
    /// caller's): the writer thread takes no new one until it is cleared.
    busy: bool,
}

/// What the callers and the writer thread share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signals the writer thread: a message queued, or closing.
    work: Condvar,
    /// Signals sync callers: room in the queue, or closing.
    room: Condvar,
    /// Writes (messages other than checkpoints) queued and not yet taken
    /// into a batch.
    queued: AtomicUsize,
    /// Messages left queued when the last batch finished.
    waiting_after_batch: AtomicUsize,
    /// The most sync writes queued: [`SYNC_QUEUE`] (smaller in tests).
    sync_capacity: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Held only to push or take messages, never across SQL.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the batch that ran done: the writer thread may take the next.
    fn batch_done(&self) {
        let mut queue = self.lock();
        queue.busy = false;
        let wake = queue.closed || !queue.messages.is_empty();
        self.waiting_after_batch
            .store(self.queued.load(Ordering::Relaxed), Ordering::Relaxed);
        drop(queue);
        if wake {
            self.work.notify_one();
        }
    }
}

/// Clears [`Queue::busy`] when an inline batch ends, however it ends.
struct BatchDone<'a>(&'a Shared);

impl Drop for BatchDone<'_> {
    fn drop(&mut self) {
        self.0.batch_done();
    }
}

/// The connection and what running a batch needs; `None` once the writer
/// thread has closed it.
type EngineSlot = Mutex<Option<Engine>>;

/// The handle to the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    engine: Arc<EngineSlot>,
    /// None once closed.
    thread: Mutex<Option<JoinHandle<Result<()>>>>,
    group_commit: bool,
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
    /// Closes, if nobody did: every queued write is answered, and the file
    /// is left self-contained.
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::debug!(%err, "final WAL checkpoint failed; the WAL is replayed on next open");
        }
    }
}

impl Writer {
    /// Starts the writer thread, which owns `conn` from now on.
    pub(crate) fn new(
        conn: Connection,
        sql: Arc<Sql>,
        group_commit: bool,
        wal: Arc<WalState>,
        file: Arc<FileIdentity>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                sync: 0,
                checkpoints: 0,
                closed: false,
                busy: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            queued: AtomicUsize::new(0),
            waiting_after_batch: AtomicUsize::new(0),
            sync_capacity: AtomicUsize::new(SYNC_QUEUE),
        });
        let engine = Arc::new(Mutex::new(Some(Engine {
            conn,
            sql,
            wal,
            file,
            shared: Arc::clone(&shared),
        })));
        let worker = Worker {
            engine: Arc::clone(&engine),
            shared: Arc::clone(&shared),
            group_commit,
        };
        let thread = std::thread::Builder::new()
            .name("sqlite3store-writer".into())
            .spawn(move || worker.run())?;
        Ok(Self {
            shared,
            engine,
            thread: Mutex::new(Some(thread)),
            group_commit,
        })
    }

    /// Runs `job` for a sync caller and waits for its answer: on this
    /// thread when the writer is idle with nothing queued, else queued.
    fn call<T>(&self, job: Job, pending: Pending<T>) -> Result<T> {
        if let Err(job) = self.run_inline(job) {
            self.push(job, None)?;
        }
        pending.wait()
    }

    /// Runs `job` as a batch of one on the calling thread, if nothing is
    /// queued, no batch is running and the writer is open; gives it back
    /// otherwise. Writes queued meanwhile wait for it, as for any batch.
    fn run_inline(&self, job: Job) -> std::result::Result<(), Job> {
        {
            let mut queue = self.shared.lock();
            if queue.closed || queue.busy || !queue.messages.is_empty() {
                return Err(job);
            }
            queue.busy = true;
        }
        let _done = BatchDone(&self.shared);
        // Never contended: whoever runs a batch first sets `busy`, and the
        // writer thread takes the engine out only once closed and idle.
        let mut engine = match self.engine.try_lock() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(job),
        };
        let Some(engine) = engine.as_mut() else {
            return Err(job);
        };
        engine.run_caught(vec![Message {
            job,
            admission: None,
        }]);
        Ok(())
    }

    /// Queues `job`. A sync caller (`admission` is `None`) waits while the
    /// queue holds [`SYNC_QUEUE`] sync writes; an admitted async one never
    /// waits. Fails with [`Error::Closed`] once closing has begun.
    fn push(&self, job: Job, admission: Option<Admission>) -> Result<()> {
        let mut queue = self.shared.lock();
        if admission.is_none() {
            while queue.sync >= self.shared.sync_capacity.load(Ordering::Relaxed) && !queue.closed {
                queue = self
                    .shared
                    .room
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        if queue.closed {
            drop(queue);
            job.fail(Error::Closed);
            return Err(Error::Closed);
        }
        if admission.is_none() {
            queue.sync += 1;
        }
        if matches!(job, Job::Checkpoint(_)) {
            queue.checkpoints += 1;
        }
        queue.messages.push_back(Message { job, admission });
        self.shared
            .queued
            .store(queue.messages.len() - queue.checkpoints, Ordering::Relaxed);
        drop(queue);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Runs `op` and returns once its transaction has committed (or failed).
    pub(crate) fn submit(&self, op: WriteOp) -> Result<u64> {
        let (answer, pending) = reply::channel(None);
        self.call(Job::Write(op, answer), pending)
    }

    /// [`submit`](Self::submit), skipped (answered [`Error::Cancelled`])
    /// if `cancel` is raised before the writer starts it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn submit_cancellable(&self, op: WriteOp, cancel: &Cancel) -> Result<u64> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let (answer, pending) = reply::channel(Some(cancel.clone()));
        self.call(Job::Write(op, answer), pending)
    }

    /// Queues `op` for an async caller admitted by `admission`, without
    /// waiting; await the answer. Dropping it before the writer starts the
    /// write means the write is not applied.
    #[cfg(feature = "tokio")]
    pub(crate) fn send(&self, op: WriteOp, admission: Admission) -> Result<Pending<u64>> {
        let (answer, pending) = reply::channel(None);
        self.push(Job::Write(op, answer), Some(admission))?;
        Ok(pending)
    }

    /// Runs one cleanup step; with `gives_way`, it runs alone and gives way
    /// to any write queued before or while it runs.
    pub(crate) fn maintain(&self, step: Maintenance, gives_way: bool) -> Result<Outcome> {
        let (answer, pending) = reply::channel(None);
        self.call(
            Job::Maintain {
                step,
                gives_way,
                answer,
            },
            pending,
        )
    }

    /// Rebuilds the file (`VACUUM`), then truncates the WAL.
    pub(crate) fn vacuum(&self) -> Result<()> {
        let (answer, pending) = reply::channel(None);
        self.call(Job::Vacuum(answer), pending)
    }

    /// [`vacuum`](Self::vacuum) for an async caller, as [`send`](Self::send).
    #[cfg(feature = "tokio")]
    pub(crate) fn send_vacuum(&self, admission: Admission) -> Result<Pending<()>> {
        let (answer, pending) = reply::channel(None);
        self.push(Job::Vacuum(answer), Some(admission))?;
        Ok(pending)
    }

    /// A PASSIVE checkpoint on the writer connection between batches, so
    /// nothing is appended meanwhile; (frames in the WAL, frames copied).
    pub(crate) fn checkpoint(&self) -> Result<(i64, i64)> {
        let (answer, pending) = reply::channel(None);
        self.call(Job::Checkpoint(answer), pending)
    }

    /// Stops taking writes, lets the thread run every write already queued,
    /// copy the WAL into the database and truncate it, and close the
    /// connection; waits for the thread to end. Later writes get
    /// [`Error::Closed`]. The connection is closed even when the checkpoint
    /// fails (another process reading), and then that error is returned.
    /// Blocks: never call it on a runtime thread.
    pub(crate) fn close(&self) -> Result<()> {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        self.shared.room.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or(Err(Error::WriterPanicked)),
        }
    }

    /// Lowers the sync queue's bound, so a test can fill it.
    #[cfg(test)]
    pub(crate) fn set_sync_capacity(&self, capacity: usize) {
        self.shared.sync_capacity.store(capacity, Ordering::Relaxed);
    }

    /// Runs `f` on the write connection, waiting for any batch to end.
    #[cfg(test)]
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> Option<T> {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.as_mut().map(|engine| f(&mut engine.conn))
    }

    /// How many writes are waiting for the writer right now.
    pub(crate) fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Whether other writes are competing for the writer: some are queued
    /// now, or some were left waiting when the last batch ended.
    pub(crate) fn contended(&self) -> bool {
        self.queued() > 0 || self.shared.waiting_after_batch.load(Ordering::Relaxed) > 0
    }
}

/// The writer thread.
struct Worker {
    engine: Arc<EngineSlot>,
    shared: Arc<Shared>,
    group_commit: bool,
}

/// The write connection and what running a batch needs: used by the writer
/// thread, and by a sync caller that runs its write inline.
struct Engine {
    conn: Connection,
    sql: Arc<Sql>,
    wal: Arc<WalState>,
    file: Arc<FileIdentity>,
    shared: Arc<Shared>,
}

/// Closes the queue when the writer thread ends, however it ends, and
/// answers whatever is left, so no caller waits for a thread that is gone.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        let left: Vec<Message> = {
            let mut queue = self.0.lock();
            queue.closed = true;
            queue.sync = 0;
            queue.checkpoints = 0;
            queue.messages.drain(..).collect()
        };
        self.0.room.notify_all();
        for message in left {
            message.job.fail(Error::Closed);
        }
    }
}

impl Worker {
    /// Runs batches until closed, drained and idle, then closes the
    /// connection.
    fn run(self) -> Result<()> {
        let _close_on_exit = CloseOnExit(Arc::clone(&self.shared));
        while let Some(batch) = self.next_batch() {
            let _done = BatchDone(&self.shared);
            let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            match engine.as_mut() {
                Some(engine) => engine.run_caught(batch),
                None => batch.into_iter().for_each(|m| m.job.fail(Error::Closed)),
            }
        }
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        engine.map_or(Ok(()), Engine::finish)
    }

    /// Waits until messages are queued and no batch runs, and takes them
    /// all (one without group commit), marking a batch running; `None`
    /// once closed with nothing left to run.
    fn next_batch(&self) -> Option<Vec<Message>> {
        let mut queue = self.shared.lock();
        while queue.busy || queue.messages.is_empty() {
            if queue.closed && !queue.busy && queue.messages.is_empty() {
                return None;
            }
            queue = self
                .shared
                .work
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
        queue.busy = true;
        let batch: Vec<Message> = if self.group_commit {
            queue.messages.drain(..).collect()
        } else {
            queue.messages.pop_front().into_iter().collect()
        };
        let sync = batch.iter().filter(|m| m.admission.is_none()).count();
        queue.sync -= sync;
        queue.checkpoints -= batch
            .iter()
            .filter(|m| matches!(m.job, Job::Checkpoint(_)))
            .count();
        self.shared
            .queued
            .store(queue.messages.len() - queue.checkpoints, Ordering::Relaxed);
        drop(queue);
        if sync > 0 {
            self.shared.room.notify_all();
        }
        Some(batch)
    }
}

impl Engine {
    /// [`run_batch`](Self::run_batch), surviving a panic: the batch's
    /// unanswered callers then get [`Error::WriterPanicked`] as their
    /// answers are dropped, and any open transaction rolls back.
    fn run_caught(&mut self, batch: Vec<Message>) {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_batch(batch);
        }));
        if run.is_err() {
            tracing::error!("the session writer panicked in a batch; carrying on");
        }
    }

    /// Runs one batch in order and answers every message of it. Async
    /// admissions are released once the batch is done.
    fn run_batch(&mut self, batch: Vec<Message>) {
        self.backstop_checkpoint();
        let mut admissions = Vec::new();
        let jobs: Vec<Job> = batch
            .into_iter()
            .map(|m| {
                admissions.extend(m.admission);
                m.job
            })
            .collect();
        if self.file.replaced() {
            for job in jobs {
                job.fail(self.file.error());
            }
            return;
        }
        // A step gives way to writes only, not to a checkpoint.
        let shared = jobs
            .iter()
            .filter(|job| !matches!(job, Job::Checkpoint(_)))
            .count()
            > 1;
        let mut group: Vec<Member> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                Job::Write(op, answer) => group.push(Member::Write(op, answer)),
                Job::Maintain {
                    step,
                    gives_way: false,
                    answer,
                } => group.push(Member::Step(step, answer)),
                // Others arrived with it: give way before starting, as it
                // would the moment they queued.
                Job::Maintain { answer, .. } if shared => answer.send(Ok(Outcome::GaveWay)),
                Job::Maintain { step, answer, .. } => {
                    self.run_group(std::mem::take(&mut group));
                    let result = self.run_giving_way(step, &answer);
                    answer.send(result);
                }
                Job::Vacuum(answer) => {
                    self.run_group(std::mem::take(&mut group));
                    let result = if answer.abandoned() {
                        Err(Error::Cancelled)
                    } else {
                        self.vacuum()
                    };
                    answer.send(result);
                }
                Job::Checkpoint(answer) => {
                    self.run_group(std::mem::take(&mut group));
                    answer.send(checkpoint(&self.conn, Checkpoint::Passive).map_err(Error::from));
                }
            }
        }
        self.run_group(group);
        drop(admissions);
    }

    /// One transaction for all of `group`; on failure, one each.
    fn run_group(&mut self, group: Vec<Member>) {
        if group.len() <= 1 {
            for member in group {
                let result = self.transaction(std::slice::from_ref(&member));
                member.answer(result.map(first));
            }
            return;
        }
        match self.transaction(&group) {
            Ok(changes) => {
                for (member, changed) in group.into_iter().zip(changes) {
                    member.answer(Ok(changed));
                }
            }
            Err(Error::Busy(err)) => {
                // The lock was not to be had within busy_timeout; retrying
                // each write alone would make callers wait that long again
                // and again. Every write of the group gets the error.
                for member in group {
                    member.answer(Err(Error::Busy(duplicate(&err))));
                }
            }
            Err(err) => {
                tracing::debug!(%err, size = group.len(), "group commit failed; retrying each write alone");
                for member in group {
                    let result = self.transaction(std::slice::from_ref(&member));
                    member.answer(result.map(first));
                }
            }
        }
    }

    /// Runs `members` in one transaction; `None` for each skipped because
    /// its caller had gone by the time the write lock was ours.
    fn transaction(&mut self, members: &[Member]) -> Result<Vec<Option<u64>>> {
        // IMMEDIATE takes the write lock up front, so another process makes
        // us wait (busy_timeout) instead of failing mid-transaction.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changes = members
            .iter()
            .map(|member| {
                if member.abandoned() {
                    Ok(None)
                } else {
                    member.run(&tx, &self.sql).map(Some)
                }
            })
            .collect::<rusqlite::Result<Vec<Option<u64>>>>()?;
        tx.commit()?;
        Ok(changes)
    }

    /// Runs `step` in its own transaction, abandoning it as soon as another
    /// write is queued. Rolling back a WAL transaction only drops frames
    /// never committed, so giving way costs the waiting writer little.
    fn run_giving_way(&mut self, step: Maintenance, answer: &Answer<Outcome>) -> Result<Outcome> {
        let shared = Arc::clone(&self.shared);
        let sql = Arc::clone(&self.sql);
        let result = with_progress_handler(
            &mut self.conn,
            move || shared.queued.load(Ordering::Relaxed) > 0,
            |conn| -> Result<Option<u64>> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if answer.abandoned() {
                    return Ok(None);
                }
                let n = step.run(&tx, &sql)?;
                tx.commit()?;
                Ok(Some(n))
            },
        )?;
        match result {
            Ok(Some(n)) => Ok(Outcome::Done(n)),
            Ok(None) => Err(Error::Cancelled),
            Err(Error::Sqlite(err))
                if err.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
            {
                Ok(Outcome::GaveWay)
            }
            Err(err) => Err(err),
        }
    }

    fn vacuum(&mut self) -> Result<()> {
        // It takes the lock itself; we hold the only writer connection.
        self.conn.execute_batch(VACUUM)?;
        // In WAL mode the rebuilt pages sit in the WAL; copy them back and
        // truncate now, so the file shrinks at once.
        checkpoint(&self.conn, Checkpoint::Truncate)?;
        Ok(())
    }

    /// The backstop for a WAL that could not start over (see
    /// [`crate::wal`]): finish the checkpoint here, before the
    /// next batch.
    fn backstop_checkpoint(&self) {
        if self.wal.over_backstop() {
            // PASSIVE: with nothing appended meanwhile it copies all it may
            // without waiting for readers (another process's long read must
            // not hold our writes for busy_timeout); the next commit then
            // starts the WAL over.
            match checkpoint(&self.conn, Checkpoint::Passive) {
                Ok((log, copied)) => tracing::debug!(log, copied, "backstop WAL checkpoint"),
                Err(err) => tracing::warn!(%err, "backstop WAL checkpoint failed"),
            }
        }
    }

    /// Copies the WAL into the database, truncates it, and closes the
    /// connection, so a closed store is one self-contained file.
    fn finish(self) -> Result<()> {
        // (busy, frames in the WAL, frames copied)
        let checkpointed = self
            .conn
            .query_row(Checkpoint::Truncate.sql(), [], |r| r.get::<_, i64>(0));
        self.conn.close().map_err(|(_, err)| err)?;
        match checkpointed? {
            0 => Ok(()),
            _ => Err(Error::Busy(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("another connection kept the WAL from being checkpointed".into()),
            ))),
        }
    }
}

/// The result of a transaction of one member.
fn first(changes: Vec<Option<u64>>) -> Option<u64> {
    changes.into_iter().next().flatten()
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

    /// A store without a cleanup thread whose writes wait a minute for a
    /// lock that a test holds.
    fn open(path: &std::path::Path) -> Result<crate::SqliteStore> {
        crate::SqliteStore::builder(path)
            .cleanup_interval(std::time::Duration::ZERO)
            .busy_timeout(std::time::Duration::from_secs(60))
            .build()
    }

    /// Sync writers beyond the queue's bound wait for room instead of
    /// queuing; once the writer moves on, every one of them is answered.
    #[test]
    fn sync_writers_wait_for_room_in_a_full_queue() -> Result<()> {
        const CAPACITY: usize = 2;
        const WRITERS: usize = 6;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.db");
        let store = open(&path)?;
        let writer = store.writer_for_tests()?;
        writer.set_sync_capacity(CAPACITY);
        // Another connection holds the write lock: the writer stalls on
        // its first batch, and the rest queue behind it.
        let mut raw = Connection::open(&path)?;
        let tx = raw.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let expiry = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.commit(&format!("t{i}"), b"d", expiry))
            })
            .collect();
        let mut peak = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(500) {
            peak = peak.max(writer.queued());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            peak <= CAPACITY,
            "{peak} sync writes queued, bound {CAPACITY}"
        );
        assert!(peak > 0, "nothing ever queued");
        assert!(writers.iter().all(|w| !w.is_finished()), "the lock is held");
        tx.commit()?;
        for w in writers {
            w.join().expect("join")?;
        }
        let rows: i64 = raw.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        assert_eq!(rows, WRITERS as i64);
        store.close()
    }

    /// The names of the threads that commit on `writer`'s connection, in
    /// order.
    fn record_commits(writer: &Writer) -> Arc<Mutex<Vec<String>>> {
        let commits = Arc::new(Mutex::new(Vec::new()));
        let hook = Arc::clone(&commits);
        writer
            .with_connection(move |conn| {
                conn.commit_hook(Some(move || {
                    let name = std::thread::current().name().unwrap_or("?").to_owned();
                    hook.lock().expect("hook").push(name);
                    false
                }))
            })
            .expect("open")
            .expect("hook installed");
        commits
    }

    fn expiry() -> std::time::SystemTime {
        std::time::SystemTime::now() + std::time::Duration::from_secs(60)
    }

    /// With nothing queued and no batch running, a sync write commits on
    /// its caller's thread: no hand-off to the writer thread and back.
    #[test]
    fn a_sync_write_on_an_idle_writer_commits_on_the_callers_thread() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = open(&dir.path().join("s.db"))?;
        let commits = record_commits(&*store.writer_for_tests()?);
        let caller = std::thread::Builder::new()
            .name("the-caller".into())
            .spawn(move || -> Result<()> {
                store.commit("a", b"1", expiry())?;
                assert!(store.delete("a")?);
                store.close()
            })?;
        caller.join().expect("join")?;
        assert_eq!(*commits.lock().expect("hook"), ["the-caller", "the-caller"]);
        Ok(())
    }

    /// Writes that arrive while a sync caller runs its write inline queue,
    /// and commit together after it on the writer thread; every caller is
    /// answered and every write is applied.
    #[test]
    fn writes_arriving_during_an_inline_write_commit_together_after_it() -> Result<()> {
        const LATER: usize = 5;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.db");
        let store = open(&path)?;
        let writer = store.writer_for_tests()?;
        let commits = record_commits(&writer);
        // Another connection holds the write lock: the inline write waits
        // for it inside its batch.
        let mut raw = Connection::open(&path)?;
        let tx = raw.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let first = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("inline".into())
                .spawn(move || store.commit("first", b"1", expiry()))?
        };
        // It runs inline: nothing queues while it waits.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(writer.queued(), 0);
        assert!(!first.is_finished(), "the lock is held");
        let later: Vec<_> = (0..LATER)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.commit(&format!("later{i}"), b"2", expiry()))
            })
            .collect();
        let started = std::time::Instant::now();
        while writer.queued() < LATER {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "only {} of {LATER} writes queued behind the inline write",
                writer.queued()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!first.is_finished(), "the lock is still held");
        tx.commit()?;
        first.join().expect("join")?;
        for w in later {
            w.join().expect("join")?;
        }
        let rows: i64 = raw.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        assert_eq!(rows, 1 + LATER as i64);
        assert_eq!(
            *commits.lock().expect("hook"),
            ["inline", "sqlite3store-writer"],
            "the inline write first, then the queued ones in one transaction"
        );
        store.close()
    }

    /// Closing while a write runs inline waits for it: it is applied and
    /// acknowledged, and writes after the close are refused.
    #[test]
    fn close_waits_for_an_inline_write() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.db");
        let store = open(&path)?;
        let mut raw = Connection::open(&path)?;
        let tx = raw.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inline = {
            let store = store.clone();
            std::thread::spawn(move || store.commit("kept", b"1", expiry()))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let closing = {
            let store = store.clone();
            std::thread::spawn(move || store.close())
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!inline.is_finished() && !closing.is_finished());
        tx.commit()?;
        inline.join().expect("join")?;
        closing.join().expect("join")?;
        assert!(matches!(
            store.commit("refused", b"2", expiry()),
            Err(Error::Closed)
        ));
        let rows: Vec<String> = raw
            .prepare("SELECT token FROM sessions")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(rows, ["kept"]);
        Ok(())
    }

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
