//! A blocking front over the same store, for code without an async runtime.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use session_contract::{Entry, Listed, Session};

use crate::builder::Builder;
use crate::cleanup::CleanupReport;
use crate::error::{Error, Result};
use crate::store::{PgStore, Stats};

/// [`PgStore`] for synchronous code (command-line tools, scripts, threaded
/// servers): each call blocks the calling thread until it completes.
///
/// It owns a small tokio runtime with one worker thread, which also runs the
/// cleanup task between calls; the operations are [`PgStore`]'s, not a
/// second implementation. Share it between threads by reference or `Arc`.
/// Calls made from inside an async runtime fail with
/// [`Error::BlockingInAsync`] instead of blocking it: use [`PgStore`] there.
///
/// ```no_run
/// # fn main() -> pgstore::Result<()> {
/// use std::time::{Duration, SystemTime};
/// use pgstore::PgStore;
///
/// let store = PgStore::builder("host=/run/postgresql dbname=app").build_blocking()?;
/// store.commit("token", b"data", SystemTime::now() + Duration::from_secs(60))?;
/// assert_eq!(store.find("token")?, Some(b"data".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlockingPgStore {
    // Dropped before the runtime.
    store: PgStore,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for BlockingPgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so dropping is safe even inside a runtime.
            rt.shutdown_background();
        }
    }
}

impl Builder {
    /// Like [`build`](Builder::build), for synchronous code: starts the
    /// store's own runtime and opens the store on it.
    pub fn build_blocking(self) -> Result<BlockingPgStore> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pgstore")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        // Built on the runtime, so its cleanup task and pool live there.
        let store = runtime.block_on(async { runtime_spawned(self.build()).await })?;
        Ok(BlockingPgStore {
            store,
            runtime: Some(runtime),
        })
    }
}

async fn runtime_spawned<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    // On a worker thread, so the store's task is spawned onto the
    // multi-thread scheduler rather than the blocking caller.
    tokio::spawn(fut).await.map_err(|_| Error::Closed)?
}

impl BlockingPgStore {
    fn block<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        match &self.runtime {
            Some(rt) => rt.block_on(fut),
            None => Err(Error::Closed),
        }
    }

    /// The async store underneath.
    pub fn as_async(&self) -> &PgStore {
        &self.store
    }

    /// See [`PgStore::find`].
    pub fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        self.block(self.store.find(token))
    }

    /// See [`PgStore::find_with_expiry`].
    pub fn find_with_expiry(&self, token: &str) -> Result<Option<Session>> {
        self.block(self.store.find_with_expiry(token))
    }

    /// See [`PgStore::commit`].
    pub fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        self.block(self.store.commit(token, data, expiry))
    }

    /// See [`PgStore::create`].
    pub fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.block(self.store.create(token, data, expiry))
    }

    /// See [`PgStore::delete`].
    pub fn delete(&self, token: &str) -> Result<bool> {
        self.block(self.store.delete(token))
    }

    /// See [`PgStore::all`].
    pub fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        self.block(self.store.all())
    }

    /// See [`PgStore::list`].
    pub fn list(&self, limit: usize) -> Result<Vec<Listed>> {
        self.block(self.store.list(limit))
    }

    /// See [`PgStore::delete_expired`].
    pub fn delete_expired(&self) -> Result<CleanupReport> {
        self.block(self.store.delete_expired())
    }

    /// See [`PgStore::stats`].
    pub fn stats(&self) -> Result<Stats> {
        self.block(self.store.stats())
    }

    /// See [`PgStore::stop_cleanup`].
    pub fn stop_cleanup(&self) {
        self.store.stop_cleanup();
    }

    /// See [`PgStore::close`]. Then stops the store's runtime, waiting up
    /// to 10 seconds for its tasks. Clones of [`as_async`](Self::as_async)
    /// taken before are closed too.
    pub fn close(mut self) -> Result<()> {
        let closed = self.block(self.store.clone().close());
        if closed.is_ok() {
            if let Some(rt) = self.runtime.take() {
                rt.shutdown_timeout(CLOSE_WAIT);
            }
        }
        closed
    }
}

/// How long [`BlockingPgStore::close`] waits for the runtime's tasks.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Writes that keep sessions revocable: updates, touches, owners and bulk
/// loads (see the [`PgStore`] methods of the same names).
impl BlockingPgStore {
    /// See [`PgStore::update`].
    pub fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.block(self.store.update(token, data, expiry))
    }

    /// See [`PgStore::update_owned`].
    pub fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.block(self.store.update_owned(token, data, expiry, owner))
    }

    /// See [`PgStore::commit_owned`].
    pub fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        self.block(self.store.commit_owned(token, data, expiry, owner))
    }

    /// See [`PgStore::create_owned`].
    pub fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.block(self.store.create_owned(token, data, expiry, owner))
    }

    /// See [`PgStore::touch`].
    pub fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        self.block(self.store.touch(token, expiry))
    }

    /// See [`PgStore::list_owner`].
    pub fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>> {
        self.block(self.store.list_owner(owner, limit))
    }

    /// See [`PgStore::count_owner`].
    pub fn count_owner(&self, owner: &str) -> Result<u64> {
        self.block(self.store.count_owner(owner))
    }

    /// See [`PgStore::revoke_owner`].
    pub fn revoke_owner(&self, owner: &str) -> Result<u64> {
        self.block(self.store.revoke_owner(owner))
    }

    /// See [`PgStore::commit_many`].
    pub fn commit_many(&self, sessions: &[Entry]) -> Result<()> {
        self.block(self.store.commit_many(sessions))
    }

    /// See [`PgStore::commit_many_owned`].
    pub fn commit_many_owned(&self, sessions: &[(Entry, Option<String>)]) -> Result<()> {
        self.block(self.store.commit_many_owned(sessions))
    }
}

/// Exports, maintenance and settings (see the [`PgStore`] methods of the
/// same names).
impl BlockingPgStore {
    /// See [`PgStore::export_page`].
    pub fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>> {
        self.block(self.store.export_page(after, limit))
    }

    /// See [`PgStore::export_page_owned`].
    pub fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>> {
        self.block(self.store.export_page_owned(after, limit))
    }

    /// See [`PgStore::vacuum`].
    pub fn vacuum(&self) -> Result<()> {
        self.block(self.store.vacuum())
    }

    /// See [`PgStore::now`].
    pub fn now(&self) -> Result<SystemTime> {
        self.block(self.store.now())
    }

    /// See [`PgStore::table`].
    pub fn table(&self) -> &str {
        self.store.table()
    }

    /// See [`PgStore::max_token_len`].
    pub fn max_token_len(&self) -> usize {
        self.store.max_token_len()
    }

    /// See [`PgStore::max_data_len`].
    pub fn max_data_len(&self) -> usize {
        self.store.max_data_len()
    }
}
