//! Keeping the WAL small without making committers pay for it: the WAL's
//! size as the writer last saw it ([`WalState`]), and the checkpoint
//! thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the
//! threshold, so one unlucky caller waits for thousands of pages to be
//! copied. Instead, a hook on the writer records the WAL's size after every
//! commit and wakes the checkpoint thread, which copies the WAL into the
//! database on its own connection (`PASSIVE`: concurrently with readers and
//! the writer, blocking nobody). When the WAL is fully copied, the next
//! commit starts it over from the beginning.
//!
//! Under writes that never pause, or readers that never let go, the WAL may
//! not get the chance to start over. Then, in order:
//! - past [`MAINTENANCE_PAUSE_FACTOR`] times the threshold, the thread
//!   copies the last few frames (at most [`FINISH_UNDER_WRITER`]) while
//!   holding the writer, and cleanup steps pause while others write (see
//!   [`crate::cleanup`]);
//! - past [`HARD_FACTOR`] times the threshold, the writer itself runs a
//!   `PASSIVE` checkpoint before its next batch (a backstop should the
//!   thread fall behind): holding the writer, nothing is appended meanwhile,
//!   so it copies all that readers allow without waiting for them.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::Connection;

use crate::background::{Background, Waker};
use crate::connection::{open_checkpointer, ConnectionOptions};
use crate::error::{Error, Result};
use crate::schema::Checkpoint;

/// How often the checkpoint thread looks at the WAL when nobody wakes it.
const TICK: Duration = Duration::from_secs(1);
/// The writer's backstop checkpoint, as a multiple of the threshold.
pub(crate) const HARD_FACTOR: i64 = 16;
/// Frames few enough to copy while holding the writer.
const FINISH_UNDER_WRITER: i64 = 512;
/// Maintenance steps pause while the WAL is over this many times the
/// threshold and others are writing, so they never outrun the checkpoints;
/// the thread also finishes its checkpoint under the writer from here.
pub(crate) const MAINTENANCE_PAUSE_FACTOR: i64 = 4;
/// PASSIVE checkpoints the thread runs per wake-up, at most, while each
/// leaves more than [`FINISH_UNDER_WRITER`] frames behind.
const PASSIVE_ROUNDS: usize = 5;

/// What WAL tracking reads, taken from the [`Builder`](crate::Builder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalOptions {
    /// The threshold, in pages ([`Builder::checkpoint_pages`](crate::Builder::checkpoint_pages)).
    pub(crate) checkpoint_pages: u32,
}

/// The WAL's size as last reported by the writer's hook.
#[derive(Debug)]
pub(crate) struct WalState {
    pages: AtomicI64,
    soft: i64,
    waker: OnceLock<Waker>,
}

impl WalState {
    pub(crate) fn new(opts: WalOptions) -> Arc<Self> {
        Arc::new(Self {
            pages: AtomicI64::new(0),
            soft: i64::from(opts.checkpoint_pages),
            waker: OnceLock::new(),
        })
    }

    /// Whether the writer should checkpoint before its next batch.
    pub(crate) fn over_backstop(&self) -> bool {
        self.pages.load(Ordering::Relaxed) >= self.soft * HARD_FACTOR
    }

    /// Whether the WAL is far enough behind that maintenance should let
    /// the checkpoint thread catch up before its next step.
    pub(crate) fn is_behind(&self) -> bool {
        self.pages.load(Ordering::Relaxed) >= self.soft * MAINTENANCE_PAUSE_FACTOR
    }

    /// Wakes the checkpoint thread (if it runs); never blocks.
    pub(crate) fn wake_checkpoints(&self) {
        if let Some(waker) = self.waker.get() {
            waker.wake();
        }
    }

    /// Replaces SQLite's automatic checkpoint on the writer connection.
    pub(crate) fn install_hook(self: &Arc<Self>, conn: &mut Connection) -> Result<()> {
        let state = Arc::clone(self);
        conn.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                // Never return an error here: SQLite would report the
                // (already committed) transaction as failed.
                let pages = i64::from(pages);
                state.pages.store(pages, Ordering::Relaxed);
                if pages >= state.soft {
                    state.wake_checkpoints();
                }
                Ok(())
            },
        ))?;
        Ok(())
    }
}

/// Checkpoints `conn`'s database in `mode`; returns (frames in the WAL,
/// frames copied), both -1 when not in WAL mode.
pub(crate) fn checkpoint(conn: &Connection, mode: Checkpoint) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(mode.sql(), [], |r| Ok((r.get(1)?, r.get(2)?)))
}

/// The checkpoint thread's state between wake-ups.
struct Checkpointer {
    state: Arc<WalState>,
    opts: ConnectionOptions,
    /// Opened on the first checkpoint, kept for the thread's life.
    conn: Option<Connection>,
    /// Runs a checkpoint while holding the writer (so nothing is appended
    /// meanwhile); (frames in the WAL, frames copied).
    finish: Box<dyn Fn() -> Result<(i64, i64)> + Send>,
}

impl Checkpointer {
    /// One wake-up: copies what the WAL holds, if anything.
    fn run(&mut self) -> Result<()> {
        let seen = self.state.pages.load(Ordering::Relaxed);
        if seen == 0 {
            return Ok(());
        }
        if self.conn.is_none() {
            self.conn = Some(open_checkpointer(&self.opts)?);
        }
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        // The bulk, concurrently; again while that leaves much behind.
        let (mut log, mut copied) = checkpoint(conn, Checkpoint::Passive)?;
        for _ in 1..PASSIVE_ROUNDS {
            if log - copied <= FINISH_UNDER_WRITER {
                break;
            }
            (log, copied) = checkpoint(conn, Checkpoint::Passive)?;
        }
        if copied < log
            && log >= self.state.soft * MAINTENANCE_PAUSE_FACTOR
            && log - copied <= FINISH_UNDER_WRITER
        {
            // Commits keep coming, so the WAL never gets to start over:
            // copy the few frames left while holding the writer.
            (log, copied) = (self.finish)()?;
        }
        if copied == log {
            // All copied: nothing to do until the next commit says so. A
            // commit since `seen` keeps its own count.
            let _ =
                self.state
                    .pages
                    .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Starts the checkpoint thread, opening its connection with `opts`.
/// `finish` runs a checkpoint while holding the writer and returns (frames
/// in the WAL, frames copied); once it fails with [`Error::Closed`], the
/// thread ends.
pub(crate) fn spawn(
    wal: &Arc<WalState>,
    opts: ConnectionOptions,
    finish: impl Fn() -> Result<(i64, i64)> + Send + 'static,
) -> Result<Background> {
    let mut checkpointer = Checkpointer {
        state: Arc::clone(wal),
        opts,
        conn: None,
        finish: Box::new(finish),
    };
    let thread = Background::spawn("checkpoint", TICK, TICK, move |_| {
        match checkpointer.run() {
            Ok(()) => ControlFlow::Continue(()),
            Err(Error::Closed) => ControlFlow::Break(()),
            Err(err) => {
                tracing::warn!(%err, "WAL checkpoint failed; retrying next tick");
                ControlFlow::Continue(())
            }
        }
    })?;
    // Set once: the store starts one checkpoint thread.
    let _ = wal.waker.set(thread.waker());
    Ok(thread)
}
