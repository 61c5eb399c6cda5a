//! Background threads (cleanup, WAL checkpoints) and their handles.
//!
//! A thread never keeps the store alive: the cleanup thread holds a `Weak`
//! and upgrades it only for the length of one run. It keeps running through
//! errors (logged, retried on the next tick) and stops on
//! [`Background::stop`], when its handle is dropped, or when the store is gone.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{Error, Result};

/// A running background thread.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Arc<AtomicBool>,
    wake: SyncSender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts `work` on a thread named `name`, first after `first`, then
    /// every `every` or whenever woken. `work` gets the stop flag (to end a
    /// long run early) and returns `Break` to end the thread.
    pub(crate) fn spawn(
        name: &'static str,
        first: Duration,
        every: Duration,
        mut work: impl FnMut(&AtomicBool) -> ControlFlow<()> + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        // One slot: wake-ups that arrive while one is pending coalesce.
        let (wake, rx) = mpsc::sync_channel::<()>(1);
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name(format!("sqlite3store-{name}"))
            .spawn(move || {
                let mut wait = first;
                // Ends when every sender is gone (Disconnected) or on a break.
                while let Ok(()) | Err(RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                    if flag.load(Ordering::Acquire) || work(&flag).is_break() {
                        break;
                    }
                    wait = every;
                }
                tracing::debug!(thread = name, "background thread stopped");
            })
            .map_err(|e| Error::Thread(name, e))?;
        Ok(Self {
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// A handle that wakes the thread early; never blocks.
    pub(crate) fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Asks the thread to stop after its current step; never blocks.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
    }

    /// Stops the thread and waits for it to end, wherever it is called
    /// (the store's `close`), except on the thread itself.
    pub(crate) fn stop_and_join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != thread::current().id() && thread.join().is_err() {
                tracing::warn!("a background thread of the session store panicked");
            }
        }
    }
}

impl Drop for Background {
    /// The store's `close` stops its threads with `stop_and_join`; this is
    /// for any other owner, and never blocks a runtime thread.
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // Not on the thread itself, nor on an async runtime's thread:
            // there it ends by itself after its current step.
            if thread.thread().id() != thread::current().id() && !in_async_context() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(feature = "tokio")]
fn in_async_context() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

#[cfg(not(feature = "tokio"))]
fn in_async_context() -> bool {
    false
}

/// Wakes a background thread without blocking.
#[derive(Debug, Clone)]
pub(crate) struct Waker(SyncSender<()>);

impl Waker {
    pub(crate) fn wake(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[test]
    fn runs_when_woken_and_stops_on_drop() {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&runs);
        let bg = Background::spawn(
            "test",
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        bg.waker().wake();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            thread::yield_now();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Drop joins even though the next tick is an hour away.
        let started = Instant::now();
        drop(bg);
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn work_that_breaks_ends_the_thread() {
        let bg = Background::spawn("test", Duration::ZERO, Duration::ZERO, |_| {
            ControlFlow::Break(())
        })
        .unwrap();
        let handle = bg.thread.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !handle.is_finished() && Instant::now() < deadline {
            thread::yield_now();
        }
        assert!(handle.is_finished());
    }
}
