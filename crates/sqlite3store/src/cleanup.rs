//! Cleanup: deleting expired sessions and giving freed pages back, paced so
//! that nobody waits long behind it, and the thread that runs it.
//!
//! # How a run is paced
//!
//! A run ([`run`]) has two phases, both driven by the one loop in
//! [`paced`]: first it deletes expired rows in batches
//! (`Maintenance::DeleteExpired`), then, when the file uses
//! `auto_vacuum = INCREMENTAL`, it frees pages in steps
//! (`Maintenance::IncrementalVacuum`). Each step is one write on the single
//! writer, so the loop sizes every step by who else wants the writer:
//!
//! - **While others write** (the writer has writes queued), a step is at
//!   most its base size: [`Builder::cleanup_batch_size`] rows (default 500)
//!   or [`VACUUM_STEP_PAGES`] pages. After a step that took longer than
//!   twice [`CONTENDED_STEP_TARGET`] the size halves (never below
//!   [`MIN_STEP`]); after one that took less than it, it grows by a quarter
//!   (never above the base). A commit queued behind cleanup so waits for
//!   about one `CONTENDED_STEP_TARGET`.
//! - **While nobody else writes**, steps double after each that took less
//!   than [`IDLE_BATCH_TARGET`], up to [`IDLE_BATCH_GROWTH`] times the base,
//!   so an idle store is cleaned fast in few transactions. Such a step
//!   gives way: the writer checks for a queued write every
//!   `YIELD_CHECK_STEPS` SQLite VM steps (in `writer.rs`) and, if one
//!   arrived, rolls the step back and reports that it gave way; the loop
//!   then goes on at the contended size.
//! - **The WAL pause.** While others write and the WAL is over
//!   [`MAINTENANCE_PAUSE_FACTOR`](crate::wal::MAINTENANCE_PAUSE_FACTOR)
//!   times [`Builder::checkpoint_pages`], the loop holds no step and wakes
//!   the checkpoint thread, polling every [`PAUSE_POLL`], for at most
//!   [`MAX_CHECKPOINT_PAUSE`]: cleanup never outruns the checkpoints, so a
//!   commit does not have to wait for the writer's backstop checkpoint
//!   ([`HARD_FACTOR`](crate::wal::HARD_FACTOR) times the threshold, see
//!   [`crate::wal`]).
//!
//! Every run ends whatever other processes do to the file: the deletes
//! stop after as many rows as were expired when the run started, the
//! vacuum after as many pages as were free when it started, and each phase
//! at the first step that does less than asked.
//!
//! [`REVOKE_BATCH`] paces [`SqliteStore::revoke_owner`] the same way as a
//! contended step, with a fixed size.
//!
//! The checkpoint thread's own constants (how often it looks, `TICK`; how
//! many PASSIVE rounds per wake-up, `PASSIVE_ROUNDS`; how few frames it
//! finishes while holding the writer, `FINISH_UNDER_WRITER`) are explained
//! in [`crate::wal`], beside the code they tune.
//!
//! The thread ([`spawn`]) holds only a `Weak` reference to the store,
//! upgrades it for one run, logs and survives errors, and stops early once
//! told to or when the last user handle is gone.
//!
//! [`Builder::cleanup_batch_size`]: crate::Builder::cleanup_batch_size
//! [`Builder::checkpoint_pages`]: crate::Builder::checkpoint_pages
//! [`SqliteStore::revoke_owner`]: crate::SqliteStore::revoke_owner

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::background::Background;
use crate::error::{Error, Result};
use crate::wal::WalState;
use crate::writer::{Maintenance, Outcome, Writer};

/// Pages freed per `incremental_vacuum` step while others write.
pub(crate) const VACUUM_STEP_PAGES: u64 = 256;
/// Idle steps grow while they take less than this. They give way to any
/// write that arrives, so this bounds wasted work, not anyone's wait.
/// Long batches pay: with random tokens, every batch rewrites most pages of
/// the token index whatever its size, so fewer, larger batches write less
/// (measured, 1,000,000 expired rows beside 100,000 live ones: 1 s instead
/// of 250 ms wrote 0.55x the bytes, in 0.62x the CPU time).
pub(crate) const IDLE_BATCH_TARGET: Duration = Duration::from_secs(1);
/// How long a step may hold the writer while others wait for it.
pub(crate) const CONTENDED_STEP_TARGET: Duration = Duration::from_millis(5);
/// The longest a run waits for checkpoints before its next step.
pub(crate) const MAX_CHECKPOINT_PAUSE: Duration = Duration::from_millis(500);
/// How often the WAL pause looks whether the checkpoints caught up.
pub(crate) const PAUSE_POLL: Duration = Duration::from_millis(1);
/// The smallest step (rows or pages).
pub(crate) const MIN_STEP: u64 = 16;
/// How far idle steps may grow, as a multiple of the base size.
pub(crate) const IDLE_BATCH_GROWTH: u64 = 256;
/// Rows [`SqliteStore::revoke_owner`](crate::SqliteStore::revoke_owner)
/// deletes per write, so a commit queued behind it waits for one short
/// batch, not for the whole owner.
pub(crate) const REVOKE_BATCH: u64 = 256;

/// What one cleanup run did. It may gain fields, so it is built only by
/// the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// When the run started.
    pub started: SystemTime,
    /// Expired rows it removed.
    pub removed: u64,
    /// How long it took, including giving free pages back.
    pub duration: Duration,
}

/// What cleanup reads, taken from the [`Builder`](crate::Builder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CleanupOptions {
    /// How often the thread runs; zero starts none.
    pub(crate) interval: Duration,
    /// When the thread first runs (capped at `interval`).
    pub(crate) first_delay: Duration,
    /// Rows per batch while others write: the base size of delete steps.
    pub(crate) batch_size: u64,
}

/// Cleanup's part of the store: its options and the last report.
#[derive(Debug)]
pub(crate) struct Cleanup {
    opts: CleanupOptions,
    /// Whether the file gives freed pages back (read at open).
    incremental_vacuum: bool,
    wal: Arc<WalState>,
    last: Mutex<Option<CleanupReport>>,
}

impl Cleanup {
    pub(crate) fn new(opts: CleanupOptions, incremental_vacuum: bool, wal: Arc<WalState>) -> Self {
        Self {
            opts,
            incremental_vacuum,
            wal,
            last: Mutex::new(None),
        }
    }

    /// The last run's report, if any has run.
    pub(crate) fn last(&self) -> Option<CleanupReport> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the file gives freed pages back after cleanup.
    pub(crate) fn incremental_vacuum(&self) -> bool {
        self.incremental_vacuum
    }
}

/// What a run needs from the store.
pub(crate) trait Host: Send + Sync + 'static {
    /// The writer, or why there is none (closed, read-only).
    fn writer(&self) -> Result<&Writer>;
    /// The current time, as stored.
    fn now(&self) -> f64;
    /// Rows expired as of `now`, as a reader sees them.
    fn count_expired(&self, now: f64) -> Result<u64>;
    /// Pages on the free list, as a reader sees them.
    fn free_pages(&self) -> Result<u64>;
    /// Cleanup's state.
    fn cleanup(&self) -> &Cleanup;
}

/// Deletes expired rows until none is left (as of the time the run
/// started) or `keep_going` says no, then gives free pages back; see the
/// module docs.
pub(crate) fn run(host: &impl Host, keep_going: &dyn Fn() -> bool) -> Result<CleanupReport> {
    let writer = host.writer()?;
    let cleanup = host.cleanup();
    let wal = &cleanup.wal;
    let started = SystemTime::now();
    let clock_started = Instant::now();
    // Fixed for the run, so a run always ends.
    let now = host.now();
    let base = cleanup.opts.batch_size;
    let mut removed = 0;
    let result = host.count_expired(now).and_then(|expired| {
        // At least one step even with nothing expired, so a run always
        // reports a writer that is busy or a file that is gone.
        let total = expired.max(1);
        let pace = Pace::new(base, keep_going);
        paced(writer, wal, pace, total, &mut removed, |limit| {
            Maintenance::DeleteExpired { now, limit }
        })
    });
    let deleted_in = clock_started.elapsed();
    // Give freed pages back to the file system, paced the same way. A
    // failure here still records what the deletes did.
    let vacuumed = if result.is_ok() && removed > 0 && cleanup.incremental_vacuum {
        host.free_pages().and_then(|free| {
            let pace = Pace::new(VACUUM_STEP_PAGES, keep_going);
            let mut freed = 0;
            paced(writer, wal, pace, free, &mut freed, |pages| {
                Maintenance::IncrementalVacuum { pages }
            })
        })
    } else {
        Ok(())
    };
    let report = CleanupReport {
        started,
        removed,
        duration: clock_started.elapsed(),
    };
    tracing::debug!(
        removed,
        delete_ms = deleted_in.as_millis() as u64,
        vacuum_ms = (report.duration - deleted_in).as_millis() as u64,
        "cleanup run"
    );
    *cleanup.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    result.and(vacuumed).map(|()| report)
}

/// The sizes one phase's steps move between.
struct Pace<'a> {
    /// The largest step while others write.
    base: u64,
    /// The largest step while nobody else writes.
    max: u64,
    keep_going: &'a dyn Fn() -> bool,
}

impl<'a> Pace<'a> {
    fn new(base: u64, keep_going: &'a dyn Fn() -> bool) -> Self {
        Self {
            base,
            max: base.saturating_mul(IDLE_BATCH_GROWTH),
            keep_going,
        }
    }
}

/// What one paced step did.
enum Step {
    /// Gave way to a write that arrived; nothing was done.
    Yielded,
    /// Did a full step; there is more.
    More,
    /// Nothing is left.
    Done,
}

/// Runs `step(limit)` until `total` units (rows or pages) are done, a
/// step does fewer than asked, or `keep_going` says no,
/// sizing each step as the module docs explain. Adds the units done to
/// `done` as it goes, so a failure still counts what came before.
fn paced(
    writer: &Writer,
    wal: &WalState,
    pace: Pace<'_>,
    total: u64,
    done: &mut u64,
    step: impl Fn(u64) -> Maintenance,
) -> Result<()> {
    let keep_going = pace.keep_going;
    let mut contended = pace.base;
    let mut size = pace.base;
    let mut units = 0;
    loop {
        // Others are writing and the WAL is growing faster than it is
        // copied back: give the checkpoint thread time, without holding the
        // writer, rather than make a commit wait for the backstop.
        let paused = Instant::now();
        while writer.contended()
            && wal.is_behind()
            && paused.elapsed() < MAX_CHECKPOINT_PAUSE
            && keep_going()
        {
            wal.wake_checkpoints();
            std::thread::sleep(PAUSE_POLL);
        }
        if !keep_going() {
            return Ok(());
        }
        let idle = !writer.contended();
        if !idle {
            size = size.min(contended);
        }
        let limit = size.min(total - units);
        let started = Instant::now();
        let outcome = if limit == 0 {
            Step::Done
        } else {
            // Large idle steps give way to any write that arrives.
            let gives_way = idle && size > contended;
            match writer.maintain(step(limit), gives_way)? {
                Outcome::GaveWay => Step::Yielded,
                Outcome::Done(n) => {
                    let n = n.min(limit);
                    units += n;
                    *done += n;
                    if n < limit {
                        Step::Done
                    } else {
                        Step::More
                    }
                }
            }
        };
        let took = started.elapsed();
        tracing::trace!(
            size,
            idle,
            took_us = took.as_micros() as u64,
            yielded = matches!(outcome, Step::Yielded),
            "maintenance step"
        );
        size = match outcome {
            Step::Done => return Ok(()),
            Step::Yielded => contended,
            Step::More if !idle || writer.contended() => {
                contended = if took > 2 * CONTENDED_STEP_TARGET {
                    (contended / 2).max(MIN_STEP)
                } else if took < CONTENDED_STEP_TARGET {
                    (contended + contended / 4 + 1).min(pace.base)
                } else {
                    contended
                };
                contended
            }
            Step::More if took < IDLE_BATCH_TARGET => (size * 2).min(pace.max),
            Step::More => size,
        };
    }
}

/// Starts the cleanup thread: first after `opts.first_delay` (at most the
/// interval), then every `opts.interval`.
pub(crate) fn spawn<H: Host>(host: Weak<H>, opts: CleanupOptions) -> Result<Background> {
    let first = opts.first_delay.min(opts.interval);
    Background::spawn("cleanup", first, opts.interval, move |stop| {
        let Some(host) = host.upgrade() else {
            return ControlFlow::Break(());
        };
        // Stop early if told to, or if every user handle is gone.
        let keep_going = || !stop.load(Ordering::Acquire) && Arc::strong_count(&host) > 1;
        match run(&*host, &keep_going) {
            Ok(report) => tracing::info!(
                removed = report.removed,
                took_ms = report.duration.as_millis() as u64,
                "expired sessions cleaned up"
            ),
            // Closing stops this thread; nothing went wrong.
            Err(Error::Closed) => return ControlFlow::Break(()),
            Err(err) => tracing::warn!(%err, "session cleanup failed; retrying next tick"),
        }
        ControlFlow::Continue(())
    })
}
