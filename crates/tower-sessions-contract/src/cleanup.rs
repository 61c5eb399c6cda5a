//! Deleting expired sessions from the tokio runtime, in a loop that an error
//! does not end.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};
use tower_sessions_core::ExpiredDeletion;

/// A cleanup task started by [`spawn_cleanup_task`].
///
/// The task runs as long as this handle lives: dropping it, or calling
/// [`stop`](Self::stop), ends the task (after the cleanup run in progress, if
/// any).
#[derive(Debug)]
#[must_use = "the cleanup task stops when its handle is dropped"]
pub struct CleanupTask {
    /// Dropping the sender is the stop signal.
    stop: oneshot::Sender<()>,
    /// None when no task was started (a zero period).
    task: Option<JoinHandle<()>>,
}

impl CleanupTask {
    /// Stops the task and waits for it to end; a cleanup run in progress
    /// finishes first. Returns the task's panic, should the store's
    /// `delete_expired` have panicked.
    pub async fn stop(self) -> Result<(), JoinError> {
        drop(self.stop);
        match self.task {
            Some(task) => task.await,
            None => Ok(()),
        }
    }

    /// Whether the task has ended (it never started, was stopped, or
    /// panicked).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

/// Spawns a task that calls `store.delete_expired()` every `period`, the
/// first time one `period` from now, until the returned handle is stopped or
/// dropped.
///
/// Unlike [`ExpiredDeletion::continuously_delete_expired`], which ends at its
/// first error, a failed run is logged (`tracing::warn!`) and the next tick
/// tries again. A run that takes longer than `period` delays the next one
/// rather than starting a burst. A zero `period` starts no task (as a zero
/// cleanup interval does in the backends).
///
/// The backends already delete expired sessions on their own schedule
/// (sqlite3store on a thread of its own), so you may not need this at all.
/// Use it to run cleanup on the runtime instead (and open the backend with
/// its own cleanup off), or with any other store that implements
/// [`ExpiredDeletion`].
///
/// # Panics
/// When called outside a tokio runtime, as [`tokio::spawn`].
pub fn spawn_cleanup_task<S: ExpiredDeletion>(store: S, period: Duration) -> CleanupTask {
    let (stop, stopped) = oneshot::channel();
    let task = (!period.is_zero()).then(|| tokio::spawn(run(store, period, stopped)));
    CleanupTask { stop, task }
}

async fn run<S: ExpiredDeletion>(store: S, period: Duration, mut stopped: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            // Resolves when the handle is stopped or dropped.
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        if let Err(err) = store.delete_expired().await {
            tracing::warn!(%err, "session cleanup failed; retrying next tick");
        }
    }
    tracing::debug!("session cleanup task stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use tower_sessions_core::session::{Id, Record};
    use tower_sessions_core::session_store::{self, SessionStore};

    use super::*;

    /// Counts cleanup runs; the runs numbered in `failing` fail.
    #[derive(Debug, Clone)]
    struct Flaky {
        runs: Arc<AtomicUsize>,
        failing: &'static [usize],
    }

    impl Flaky {
        fn new(failing: &'static [usize]) -> Self {
            Self {
                runs: Arc::default(),
                failing,
            }
        }

        fn runs(&self) -> usize {
            self.runs.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl SessionStore for Flaky {
        async fn save(&self, _: &Record) -> session_store::Result<()> {
            Ok(())
        }
        async fn load(&self, _: &Id) -> session_store::Result<Option<Record>> {
            Ok(None)
        }
        async fn delete(&self, _: &Id) -> session_store::Result<()> {
            Ok(())
        }
    }

    #[async_trait]
    impl ExpiredDeletion for Flaky {
        async fn delete_expired(&self) -> session_store::Result<()> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if self.failing.contains(&run) {
                return Err(session_store::Error::Backend("disk on fire".into()));
            }
            Ok(())
        }
    }

    const PERIOD: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn keeps_running_after_errors_and_stops_on_request() {
        let store = Flaky::new(&[1, 2]);
        let task = spawn_cleanup_task(store.clone(), PERIOD);

        tokio::time::sleep(PERIOD / 2).await;
        assert_eq!(store.runs(), 0, "the first run waits one period");
        // Runs 1 and 2 fail; 3 and 4 still happen.
        tokio::time::sleep(PERIOD * 4).await;
        assert_eq!(store.runs(), 4);
        assert!(!task.is_finished());

        task.stop().await.expect("the task did not panic");
        tokio::time::sleep(PERIOD * 10).await;
        assert_eq!(store.runs(), 4, "no run after stop");
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_handle_stops_the_task() {
        let store = Flaky::new(&[]);
        let task = spawn_cleanup_task(store.clone(), PERIOD);
        tokio::time::sleep(PERIOD + PERIOD / 2).await;
        assert_eq!(store.runs(), 1);

        drop(task);
        tokio::time::sleep(PERIOD * 10).await;
        assert_eq!(store.runs(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_period_starts_nothing() {
        let store = Flaky::new(&[]);
        let task = spawn_cleanup_task(store.clone(), Duration::ZERO);
        assert!(task.is_finished());
        tokio::time::sleep(PERIOD * 10).await;
        assert_eq!(store.runs(), 0);
        task.stop().await.expect("nothing to stop");
    }
}
