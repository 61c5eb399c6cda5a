//! A one-shot answer from the writer thread to the caller of one write,
//! who either blocks for it (sync) or awaits it (async).
//!
//! A std `Mutex` + `Condvar` + `Waker` slot rather than tokio's oneshot:
//! a sync caller must be able to block inside a runtime (tokio's
//! `blocking_recv` panics there), and the crate works without tokio.
//!
//! The slot also carries the caller's interest: dropping the [`Pending`]
//! side before the answer (a dropped future) marks the write abandoned, and
//! the writer skips an abandoned write it has not started. An [`Answer`]
//! dropped without sending (the writer panicked) answers
//! [`Error::WriterPanicked`], so no caller ever waits forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// A flag raised when the caller of a blocking call has gone away (the
/// async front runs a few multi-step writes on the blocking pool and raises
/// it when their future is dropped); the writer skips writes not started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicBool>);

// Raised only by the async front.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl Cancel {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct State<T> {
    value: Option<Result<T>>,
    /// The task awaiting the answer, woken when it is sent.
    waker: Option<Waker>,
    /// The [`Pending`] side was dropped: nobody wants the answer.
    abandoned: bool,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Held only to read or write the fields above, never across a call
        // that could panic: a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new answer slot; `cancel`, if any, also marks the write abandoned.
pub(crate) fn channel<T>(cancel: Option<Cancel>) -> (Answer<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            waker: None,
            abandoned: false,
        }),
        ready: Condvar::new(),
    });
    (
        Answer {
            slot: Arc::clone(&slot),
            cancel,
            sent: false,
        },
        Pending { slot },
    )
}

/// The writer's side: sends the result once.
pub(crate) struct Answer<T> {
    slot: Arc<Slot<T>>,
    cancel: Option<Cancel>,
    sent: bool,
}

impl<T> Answer<T> {
    /// Whether the caller no longer wants the write done.
    pub(crate) fn abandoned(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled) || self.slot.lock().abandoned
    }

    pub(crate) fn send(mut self, result: Result<T>) {
        self.put(result);
    }

    fn put(&mut self, result: Result<T>) {
        self.sent = true;
        let waker = {
            let mut state = self.slot.lock();
            state.value = Some(result);
            state.waker.take()
        };
        self.slot.ready.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        if !self.sent {
            self.put(Err(Error::WriterPanicked));
        }
    }
}

impl<T> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("sent", &self.sent).finish()
    }
}

/// The caller's side: block with [`wait`](Self::wait), or await it.
/// Dropping it before the answer abandons the write.
pub(crate) struct Pending<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Pending<T> {
    /// Blocks this thread until the answer comes. Never panics inside a
    /// tokio runtime (it blocks the thread it is called on, as any sync
    /// call does).
    pub(crate) fn wait(self) -> Result<T> {
        let mut state = self.slot.lock();
        loop {
            if let Some(result) = state.value.take() {
                return result;
            }
            state = self
                .slot
                .ready
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = self.slot.lock();
        if let Some(result) = state.value.take() {
            return Poll::Ready(result);
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        state.abandoned = true;
        state.waker = None;
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reaches_a_blocked_caller() {
        let (answer, pending) = channel::<u64>(None);
        let sender = std::thread::spawn(move || answer.send(Ok(7)));
        assert_eq!(pending.wait().ok(), Some(7));
        sender.join().expect("sender");
    }

    #[test]
    fn an_answer_never_sent_reports_a_panicked_writer() {
        let (answer, pending) = channel::<u64>(None);
        drop(answer);
        assert!(matches!(pending.wait(), Err(Error::WriterPanicked)));
    }

    #[test]
    fn a_dropped_caller_or_a_raised_flag_abandons_the_write() {
        let (answer, pending) = channel::<u64>(None);
        assert!(!answer.abandoned());
        drop(pending);
        assert!(answer.abandoned());
        let cancel = Cancel::default();
        let (answer, _pending) = channel::<u64>(Some(cancel.clone()));
        assert!(!answer.abandoned());
        cancel.cancel();
        assert!(answer.abandoned());
    }
}
