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
pub(crate) const HARD_FACTOR: i64 = 8;

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

/// Starts the checkpoint thread.
pub(crate) fn spawn(wal: &Arc<WalState>, b: &Builder) -> Result<Background> {
    let b = b.clone();
    let state = Arc::clone(wal);
    let mut conn: Option<Connection> = None;
    let thread = Background::spawn("checkpoint", TICK, TICK, move |_| {
        let seen = state.pages.load(Ordering::Relaxed);
        if seen == 0 {
            return ControlFlow::Continue(());
        }
        let result = (|| -> Result<()> {
            if conn.is_none() {
                let c = Connection::open_with_flags(
                    &b.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(b.busy_timeout)?;
                conn = Some(c);
            }
            let (log, copied) = checkpoint(conn.as_ref().expect("opened above"), "PASSIVE")?;
            if copied == log {
                // All copied: nothing to do until the next commit says so.
                let _ = state
                    .pages
                    .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
            Ok(())
        })();
        if let Err(err) = result {
            tracing::warn!(%err, "WAL checkpoint failed; retrying next tick");
        }
        ControlFlow::Continue(())
    })?;
    let _ = wal.waker.set(thread.waker());
    Ok(thread)
}
