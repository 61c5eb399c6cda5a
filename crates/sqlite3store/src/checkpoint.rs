//! Keeping the WAL small without making committers pay for it.
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
//! not get the chance to start over. As a backstop, when it reaches
//! [`HARD_FACTOR`] times the threshold the writer itself runs a `RESTART`
//! checkpoint before its next batch: by then the thread has copied nearly
//! everything, so only the remainder is left to copy while writes wait.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::background::{Background, Waker};
use crate::builder::Builder;
use crate::error::Result;

/// How often the checkpoint thread looks at the WAL when nobody wakes it.
const TICK: Duration = Duration::from_secs(1);
/// The backstop, as a multiple of the threshold.
pub(crate) const HARD_FACTOR: i64 = 16;
/// Frames few enough to copy while holding the writer.
const FINISH_UNDER_WRITER: i64 = 512;
/// Maintenance steps pause while the WAL is over this many times the
/// threshold and others are writing, so they never outrun the checkpoints.
const MAINTENANCE_PAUSE_FACTOR: i64 = 4;

/// The WAL's size as last reported by the writer's hook.
#[derive(Debug)]
pub(crate) struct WalState {
    pages: AtomicI64,
    soft: i64,
    waker: OnceLock<Waker>,
}

impl WalState {
    pub(crate) fn new(soft_pages: u32) -> Arc<Self> {
        Arc::new(Self {
            pages: AtomicI64::new(0),
            soft: i64::from(soft_pages),
            waker: OnceLock::new(),
        })
    }

    /// Whether the writer should checkpoint before its next batch.
    pub(crate) fn over_backstop(&self) -> bool {
        self.pages.load(Ordering::Relaxed) >= self.soft * HARD_FACTOR
    }

    /// Whether maintenance should let the checkpoint thread catch up
    /// before its next step; wakes the thread if so.
    pub(crate) fn behind(&self) -> bool {
        let behind = self.pages.load(Ordering::Relaxed) >= self.soft * MAINTENANCE_PAUSE_FACTOR;
        if behind {
            if let Some(waker) = self.waker.get() {
                waker.wake();
            }
        }
        behind
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
                    if let Some(waker) = state.waker.get() {
                        waker.wake();
                    }
                }
                Ok(())
            },
        ))?;
        Ok(())
    }
}

/// Checkpoints `conn`'s database in `mode` (PASSIVE, RESTART, ...);
/// returns (frames in the WAL, frames copied), both -1 when not in WAL mode.
pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// Starts the checkpoint thread. `finish` runs a checkpoint while holding
/// the writer (so nothing is appended meanwhile) and returns (frames in the
/// WAL, frames copied); `None` when there is no writer.
pub(crate) fn spawn(
    wal: &Arc<WalState>,
    b: &Builder,
    finish: impl Fn() -> Option<Result<(i64, i64)>> + Send + 'static,
) -> Result<Background> {
    let b = b.clone();
    let state = Arc::clone(wal);
    let mut conn: Option<Connection> = None;
    let thread = Background::spawn("checkpoint", TICK, TICK, move |_| {
        let seen = state.pages.load(Ordering::Relaxed);
        if seen == 0 {
            return ControlFlow::Continue(());
        }
        let result = (|| -> Result<Option<()>> {
            if conn.is_none() {
                let c = Connection::open_with_flags(
                    &b.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(b.busy_timeout)?;
                conn = Some(c);
            }
            let c = conn.as_ref().expect("opened above");
            // The bulk, concurrently; again while that leaves much behind.
            let (mut log, mut copied) = checkpoint(c, "PASSIVE")?;
            for _ in 0..4 {
                if log - copied <= FINISH_UNDER_WRITER {
                    break;
                }
                (log, copied) = checkpoint(c, "PASSIVE")?;
            }
            if copied < log
                && log >= state.soft * MAINTENANCE_PAUSE_FACTOR
                && log - copied <= FINISH_UNDER_WRITER
            {
                // Commits keep coming, so the WAL never gets to start over:
                // copy the few frames left while holding the writer.
                let Some(done) = finish() else {
                    return Ok(None);
                };
                (log, copied) = done?;
            }
            if copied == log {
                // All copied: nothing to do until the next commit says so.
                let _ = state
                    .pages
                    .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
            Ok(Some(()))
        })();
        match result {
            Ok(Some(())) => ControlFlow::Continue(()),
            Ok(None) => ControlFlow::Break(()),
            Err(err) => {
                tracing::warn!(%err, "WAL checkpoint failed; retrying next tick");
                ControlFlow::Continue(())
            }
        }
    })?;
    let _ = wal.waker.set(thread.waker());
    Ok(thread)
}
