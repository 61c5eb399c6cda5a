//! A small pool of read-only connections for `find`, `all` and stats.
//!
//! In WAL mode a reader never waits for the writer, so reads scale with the
//! number of connections; the pool bounds that number (and so the memory of
//! their page caches) and opens connections only as concurrency asks for them.
//!
//! There is no shared lock on the way to a connection: each connection sits
//! in its own slot (a mutex), and a thread takes the first slot it can lock
//! without waiting, trying them in order. A thread that the OS preempts
//! while it holds a connection so delays nobody as long as another slot is
//! free, and only when every slot is busy does a thread sleep until one
//! comes back.
//!
//! In order, not from a slot per thread: the first slots stay busy and
//! their page caches warm, where threads spread over every slot would each
//! reload the pages a commit made stale (every commit empties a reader's
//! cache). Measured against hand-tuned at 16 workers, 4 paired runs:
//! mixed 3.83x instead of 2.83x, find-hit 0.87x instead of 0.62x (medians).

use std::ops::Deref;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// One connection's place; `None` until it is first needed, and after close.
type Slot = Mutex<Option<Connection>>;

pub(crate) struct ReaderPool {
    slots: Box<[Slot]>,
    /// Set by [`ReaderPool::close`]: nothing more is lent or opened.
    closed: AtomicBool,
    /// Connections that exist, idle or lent out (for `Debug`).
    open_count: AtomicUsize,
    /// Threads sleeping in `get` until a connection comes back. A return
    /// takes `sleep` and wakes one only if this is not 0, so the usual
    /// find makes no system call on the way back.
    waiting: AtomicUsize,
    sleep: Mutex<()>,
    freed: Condvar,
    open: Box<dyn Fn() -> Result<Connection> + Send + Sync>,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool")
            .field("max", &self.slots.len())
            .field("open", &self.open_count.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// A locked slot: with a connection to lend, or empty (one may open there).
type Held<'a> = MutexGuard<'a, Option<Connection>>;

impl ReaderPool {
    pub(crate) fn new(
        max: usize,
        open: impl Fn() -> Result<Connection> + Send + Sync + 'static,
    ) -> Self {
        Self {
            slots: (0..max.max(1)).map(|_| Mutex::new(None)).collect(),
            closed: AtomicBool::new(false),
            open_count: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            freed: Condvar::new(),
            open: Box::new(open),
        }
    }

    /// Locks `slot` if nobody holds it. A panic while it was held cannot
    /// leave an `Option<Connection>` inconsistent, so poisoning is ignored.
    fn try_lock(slot: &Slot) -> Option<Held<'_>> {
        match slot.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// One pass over the slots in order, never waiting: the first idle
    /// connection, else the first slot without one (so connections open
    /// only when all open ones are busy), else `None` (every slot busy).
    fn scan(&self) -> Option<Held<'_>> {
        let mut empty = None;
        for slot in self.slots.iter() {
            let Some(held) = Self::try_lock(slot) else {
                continue;
            };
            if held.is_some() {
                return Some(held);
            }
            if empty.is_none() {
                empty = Some(held);
            }
        }
        empty
    }

    /// Lends a connection: an idle one, a new one while under `max`, or the
    /// first one returned.
    pub(crate) fn get(&self) -> Result<Lease<'_>> {
        let mut held = match self.scan() {
            Some(held) => held,
            None => self.wait()?,
        };
        // Checked with the slot held: `close` sets the flag before it takes
        // the slots, so a slot it emptied is never filled again.
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if held.is_none() {
            // Opened in the slot, so `close` waits for it; other threads
            // meanwhile take other slots.
            *held = Some((self.open)()?);
            self.open_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Lease::new(self, held))
    }

    /// Sleeps until a pass finds a slot (or the pool closes).
    fn wait(&self) -> Result<Held<'_>> {
        let mut sleep = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `WakeOnDrop`: either this pass sees the
        // slot that return freed, or that return sees `waiting` and wakes us.
        fence(Ordering::SeqCst);
        let held = loop {
            if self.closed.load(Ordering::Acquire) {
                break Err(Error::Closed);
            }
            if let Some(held) = self.scan() {
                break Ok(held);
            }
            sleep = self.freed.wait(sleep).unwrap_or_else(|e| e.into_inner());
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        held
    }

    /// Lends an idle connection, or `None` at once when none is idle or the
    /// pool is closed: never waits, never opens one, takes no shared lock.
    // Only the async front reads in place.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_get(&self) -> Option<Lease<'_>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        // An empty slot comes back only when no connection is idle.
        let held = self.scan().filter(|held| held.is_some())?;
        Some(Lease::new(self, held))
    }

    /// Closes every connection, waiting for those lent out to come back
    /// (each is lent for one query); later `get`s fail with
    /// [`Error::Closed`].
    pub(crate) fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        // Wake the sleepers, so they see the flag. Taking `sleep` first
        // means none is between its check and its wait.
        drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
        self.freed.notify_all();
        let mut first_err = None;
        for slot in self.slots.iter() {
            let conn = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(conn) = conn {
                self.open_count.fetch_sub(1, Ordering::Relaxed);
                if let Err((_, err)) = conn.close() {
                    first_err.get_or_insert(err);
                }
            }
        }
        match first_err {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    /// Opens one connection now, so a bad file fails at open.
    pub(crate) fn warm(&self) -> Result<()> {
        self.get().map(drop)
    }
}

/// A lent connection; goes back to its slot on drop.
pub(crate) struct Lease<'a> {
    /// Always holds a connection (checked when lent). Declared before
    /// `_wake`, so it is unlocked first: a sleeper `_wake` rouses finds the
    /// slot free.
    held: Held<'a>,
    _wake: WakeOnDrop<'a>,
}

impl<'a> Lease<'a> {
    fn new(pool: &'a ReaderPool, held: Held<'a>) -> Self {
        Self {
            held,
            _wake: WakeOnDrop(pool),
        }
    }
}

impl Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.held
            .as_ref()
            .expect("a lease always holds a connection")
    }
}

/// Wakes a thread sleeping in [`ReaderPool::get`], if any, once the lease's
/// slot is unlocked.
struct WakeOnDrop<'a>(&'a ReaderPool);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        let pool = self.0;
        // Pairs with the fence in `ReaderPool::wait`.
        fence(Ordering::SeqCst);
        if pool.waiting.load(Ordering::SeqCst) > 0 {
            // Taking `sleep` means the sleeper is in its wait, not between
            // its pass over the slots and the wait.
            drop(pool.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            pool.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    /// More threads than connections: a return must wake a waiting thread
    /// (returns skip the wake-up when nobody waits), and no more than `max`
    /// connections are ever opened.
    #[test]
    fn waiters_are_woken_and_connections_stay_bounded() {
        let opened = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&opened);
        let pool = Arc::new(ReaderPool::new(2, move || {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(Connection::open_in_memory()?)
        }));
        let (done, finished) = mpsc::channel();
        for _ in 0..8 {
            let (pool, done) = (Arc::clone(&pool), done.clone());
            std::thread::spawn(move || {
                let mut served = 0;
                for _ in 0..200 {
                    if let Ok(conn) = pool.get() {
                        if conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)) == Ok(1) {
                            served += 1;
                        }
                        std::thread::yield_now();
                    }
                }
                let _ = done.send(served);
            });
        }
        for _ in 0..8 {
            // Generous: a missed wake-up hangs, it does not slow down.
            let served = finished
                .recv_timeout(Duration::from_secs(120))
                .expect("a thread waiting for a connection was never woken");
            assert_eq!(served, 200);
        }
        assert!(opened.load(Ordering::SeqCst) <= 2);
    }

    fn memory_pool(max: usize) -> ReaderPool {
        ReaderPool::new(max, || Ok(Connection::open_in_memory()?))
    }

    /// A thread that holds a connection (as one the OS preempted would)
    /// makes nobody wait while another slot has one: `try_get`, which never
    /// waits, still gets it; only with every slot held does it say no.
    #[test]
    fn a_held_connection_stalls_nobody_while_another_is_idle() -> Result<()> {
        let pool = memory_pool(2);
        let held = pool.get()?;
        drop(pool.get()?); // opens the second connection
        for _ in 0..10 {
            let other = pool.try_get().expect("the second connection is idle");
            assert_eq!(other.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?, 1);
        }
        let both = pool.get()?;
        assert!(pool.try_get().is_none(), "every connection is lent");
        drop((held, both));
        assert!(pool.try_get().is_some());
        Ok(())
    }

    /// `try_get` never opens a connection: the async front's in-place
    /// finds use only idle ones.
    #[test]
    fn try_get_opens_nothing() -> Result<()> {
        let pool = memory_pool(2);
        assert!(pool.try_get().is_none());
        pool.warm()?;
        assert!(pool.try_get().is_some());
        Ok(())
    }

    /// `close` waits for a lent connection to come back, closes it, and
    /// every later `get` fails with `Closed` (and `try_get` says no), also
    /// for a thread that was waiting for a connection.
    #[test]
    fn close_waits_for_leases_then_refuses() -> Result<()> {
        let pool = Arc::new(memory_pool(1));
        let lease = pool.get()?;
        let waiter = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || pool.get().map(drop))
        };
        let closer = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || pool.close())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!closer.is_finished(), "close returned with a lease out");
        drop(lease);
        closer.join().expect("close panicked")?;
        assert!(matches!(
            waiter.join().expect("get panicked"),
            Err(Error::Closed)
        ));
        assert!(matches!(pool.get().map(drop), Err(Error::Closed)));
        assert!(pool.try_get().is_none());
        assert_eq!(pool.open_count.load(Ordering::Relaxed), 0);
        Ok(())
    }
}
