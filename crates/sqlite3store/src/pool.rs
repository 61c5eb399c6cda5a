//! A small pool of read-only connections for `find`, `all` and stats.
//!
//! In WAL mode a reader never waits for the writer, so reads scale with the
//! number of connections; the pool bounds that number (and so the memory of
//! their page caches) and opens connections only as concurrency asks for them.

use std::ops::Deref;
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::error::{Error, Result};

pub(crate) struct ReaderPool {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
    open: Box<dyn Fn() -> Result<Connection> + Send + Sync>,
}

struct State {
    idle: Vec<Connection>,
    /// Connections that exist, idle or lent out.
    total: usize,
    /// Threads waiting in `get` or `close` for a connection to come back.
    /// A return wakes someone only if this is not 0: std's `notify_one`
    /// always makes a system call, which cost every find one futex call.
    waiting: usize,
    /// Set by [`ReaderPool::close`]: nothing more is lent or kept.
    closed: bool,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("ReaderPool")
            .field("max", &self.max)
            .field("open", &st.total)
            .field("idle", &st.idle.len())
            .finish()
    }
}

impl ReaderPool {
    pub(crate) fn new(
        max: usize,
        open: impl Fn() -> Result<Connection> + Send + Sync + 'static,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::with_capacity(max),
                total: 0,
                waiting: 0,
                closed: false,
            }),
            freed: Condvar::new(),
            max,
            open: Box::new(open),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lends a connection: an idle one, a new one while under `max`, or the
    /// first one returned.
    pub(crate) fn get(&self) -> Result<Lease<'_>> {
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(Error::Closed);
            }
            if let Some(conn) = st.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if st.total < self.max {
                st.total += 1;
                drop(st);
                // Open outside the lock: it touches the file.
                return match (self.open)() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(err) => {
                        self.lock().total -= 1;
                        // Wakes `close` too, if it waits.
                        self.freed.notify_all();
                        Err(err)
                    }
                };
            }
            st = self.wait(st);
        }
    }

    /// Waits for a connection to come back (or for `close`).
    fn wait<'a>(&self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.waiting += 1;
        let mut st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        st.waiting -= 1;
        st
    }

    /// Lends an idle connection, or `None` at once when none is idle or the
    /// pool is closed: never waits, never opens one. Holds the pool's mutex
    /// only to pop from its list (it is never held across SQL or I/O).
    // Only the async front reads in place.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_get(&self) -> Option<Lease<'_>> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        let conn = st.idle.pop()?;
        Some(Lease {
            pool: self,
            conn: Some(conn),
        })
    }

    /// Closes every connection, waiting for those lent out to come back
    /// (each is lent for one query); later `get`s fail with
    /// [`Error::Closed`].
    pub(crate) fn close(&self) -> Result<()> {
        let mut st = self.lock();
        st.closed = true;
        self.freed.notify_all();
        let idle = std::mem::take(&mut st.idle);
        st.total -= idle.len();
        while st.total > 0 {
            st = self.wait(st);
        }
        drop(st);
        for conn in idle {
            conn.close().map_err(|(_, err)| err)?;
        }
        Ok(())
    }

    /// Opens one connection now, so a bad file fails at open.
    pub(crate) fn warm(&self) -> Result<()> {
        self.get().map(drop)
    }
}

/// A lent connection; goes back to the pool on drop.
pub(crate) struct Lease<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut st = self.pool.lock();
            if st.closed {
                st.total -= 1;
                drop(st);
                drop(conn);
                // `close` waits for the last one back.
                self.pool.freed.notify_all();
            } else {
                st.idle.push(conn);
                let waiting = st.waiting > 0;
                drop(st);
                if waiting {
                    self.pool.freed.notify_one();
                }
            }
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
}
