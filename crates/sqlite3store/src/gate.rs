//! The async front's bounds for one store, shared by all its async handles.
//! The store owns them (so every handle of one store shares them); the
//! async front ([`crate::async_store`]) waits on them.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Which lane a call waits in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Read,
    Write,
}

/// The async front's bounds for one store: a lane for reads and one for
/// writes, so stalled writes never hold the threads reads need.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) reads: Lane,
    pub(crate) writes: Lane,
}

/// One lane: its slots, and the calls running in it.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) permits: Arc<Semaphore>,
    /// Calls of this lane in flight now: reads running on the blocking
    /// pool, writes queued for or running on the writer.
    pub(crate) running: Arc<AtomicUsize>,
}

impl Gate {
    pub(crate) fn new(reads: usize, writes: usize) -> Self {
        let lane = |n| Lane {
            permits: Arc::new(Semaphore::new(n)),
            running: Arc::new(AtomicUsize::new(0)),
        };
        Self {
            reads: lane(reads),
            writes: lane(writes),
        }
    }

    /// Fails every call waiting for a slot, and every later one, with
    /// [`Error::Closed`](crate::Error::Closed).
    pub(crate) fn close(&self) {
        self.reads.permits.close();
        self.writes.permits.close();
    }

    pub(crate) fn lane(&self, kind: Kind) -> &Lane {
        match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        }
    }
}
