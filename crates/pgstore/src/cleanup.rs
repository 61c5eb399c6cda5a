//! Deleting expired sessions: one run, and the task that paces runs.
//!
//! A run holds one pooled connection. It takes a session-level advisory
//! lock keyed by the table name, so of several replicas on one table only
//! one cleans at a time (the background task tries the lock and gives way;
//! an explicit call waits for it, up to the cleanup statement timeout). It
//! then deletes rows expired before the run's start, in batches of
//! `cleanup_batch_size`, each batch one statement (its own short
//! transaction) under cleanup's `statement_timeout`, `FOR UPDATE SKIP LOCKED` so it never waits for a
//! commit and a commit waits at most one batch for it. The cutoff is fixed
//! at the start, so a run ends once a batch comes back short (or after
//! `MAX_BATCHES_PER_RUN`).
//!
//! The connection holding the lock is thrown away instead of going back to
//! the pool whenever the unlock did not certainly happen (an error, or the
//! run being cancelled): closing it releases the lock on the server.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{Client, Object};

use crate::error::Result;
use crate::schema;
use crate::store::Inner;

/// The most batches one run deletes (10 million rows at the default batch
/// size); the next run goes on from there.
const MAX_BATCHES_PER_RUN: u64 = 10_000;

/// What one cleanup run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// When the run started (local clock).
    pub started: SystemTime,
    /// Expired rows it removed.
    pub removed: u64,
    /// Batches (transactions) it took.
    pub batches: u64,
    /// How long it took, waiting for the lock included.
    pub duration: Duration,
}

impl CleanupReport {
    pub(crate) fn nothing() -> Self {
        Self {
            started: SystemTime::now(),
            removed: 0,
            batches: 0,
            duration: Duration::ZERO,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done(CleanupReport),
    /// Another replica (or this one) holds the cleanup lock.
    GaveWay,
}

/// The cleanup settings a run reads.
#[derive(Debug, Clone)]
pub(crate) struct CleanupOptions {
    pub(crate) batch_size: i64,
    /// A `statement_timeout` / `lock_timeout` setting, like `5000ms`.
    pub(crate) statement_timeout: String,
}

/// A pooled connection that may hold the cleanup lock or cleanup's
/// statement timeout: discarded on drop unless both were given back.
struct LockedClient {
    client: Option<Client>,
    held: bool,
}

impl Drop for LockedClient {
    fn drop(&mut self) {
        if self.held {
            if let Some(client) = self.client.take() {
                // Out of the pool and closed: the server drops the lock.
                drop(Object::take(client));
            }
        }
    }
}

impl LockedClient {
    fn get(&mut self) -> &mut Client {
        // Only taken in Drop.
        self.client.as_mut().expect("client present until drop")
    }
}

pub(crate) async fn run(inner: &Inner, wait: bool) -> Result<Outcome> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let options = &inner.cleanup_options;
    let key = inner.name.lock_name("cleanup");
    // Counted as held from before the first attempt: whatever fails from
    // here on, the connection does not go back to the pool locked (or with
    // cleanup's statement timeout).
    let mut locked = LockedClient {
        client: Some(inner.client().await?),
        held: true,
    };
    let got = if wait {
        let tx = locked.get().transaction().await?;
        tx.execute(
            schema::cleanup::SET_LOCK_TIMEOUT,
            &[&options.statement_timeout],
        )
        .await?;
        tx.execute(schema::cleanup::LOCK, &[&key]).await?;
        tx.commit().await?;
        true
    } else {
        let client = locked.get();
        // Prepared once per connection: replicas try this every interval.
        let try_lock = client.prepare_cached(schema::cleanup::TRY_LOCK).await?;
        client.query_one(&try_lock, &[&key]).await?.try_get(0)?
    };
    if !got {
        locked.held = false;
        return Ok(Outcome::GaveWay);
    }

    let client = locked.get();
    // For this connection's session until the RESET below; a connection
    // that misses the RESET is thrown away with the lock.
    let start = client.prepare_cached(&inner.sql.start_cleanup).await?;
    let cutoff: SystemTime = client
        .query_one(&start, &[&options.statement_timeout])
        .await?
        .try_get(0)?;
    let stmt = client.prepare_cached(&inner.sql.delete_batch).await?;
    let mut removed = 0u64;
    let mut batches = 0u64;
    loop {
        // One statement, its own transaction: one round trip a batch.
        let n = client
            .execute(&stmt, &[&cutoff, &options.batch_size])
            .await?;
        removed += n;
        batches += 1;
        // Counted per committed batch, so a run that fails later still
        // counts what it removed.
        inner.cleaned_total.fetch_add(n, Ordering::Relaxed);
        // A short batch means none are left as of the cutoff. The cap ends
        // a run even if other clients keep writing already-expired rows.
        if n < options.batch_size.unsigned_abs() || batches >= MAX_BATCHES_PER_RUN {
            break;
        }
    }
    client
        .batch_execute(schema::cleanup::RESET_STATEMENT_TIMEOUT)
        .await?;
    let unlock = client.prepare_cached(schema::cleanup::UNLOCK).await?;
    client.execute(&unlock, &[&key]).await?;
    locked.held = false;

    let report = CleanupReport {
        started,
        removed,
        batches,
        duration: clock.elapsed(),
    };
    *inner.last_cleanup.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    if removed > 0 {
        tracing::debug!(removed, batches, ?report.duration, "deleted expired sessions");
    }
    Ok(Outcome::Done(report))
}

/// The background cleanup task. It holds only a weak reference to the
/// store, so it never keeps it alive; it ends when stopped, when the store
/// is dropped, or with the runtime.
#[derive(Debug)]
pub(crate) struct Task {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Task {
    pub(crate) fn spawn(inner: Weak<Inner>, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + every;
            let mut ticker = tokio::time::interval_at(start, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    // A stop, or the store dropped its sender.
                    _ = stopped.changed() => break,
                }
                let Some(inner) = inner.upgrade() else { break };
                let result = tokio::select! {
                    r = run(&inner, false) => r,
                    _ = stopped.changed() => break,
                };
                drop(inner);
                match result {
                    Ok(Outcome::Done(_)) => {}
                    Ok(Outcome::GaveWay) => {
                        tracing::debug!("another replica is cleaning the session table; skipped");
                    }
                    Err(err) => {
                        let err = crate::error::error_chain(&err);
                        tracing::warn!(%err, "session cleanup failed; retrying next tick");
                    }
                }
            }
        });
        Self { stop }
    }

    /// Tells the task to end; it does within its current statement.
    pub(crate) fn stop(&self) {
        // Fails only when the task has ended already.
        let _ = self.stop.send(true);
    }
}
