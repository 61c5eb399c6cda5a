//! The async front: the same store, run on tokio's blocking pool.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::store::{CleanupReport, SqliteStore, Stats};

/// The async face of [`SqliteStore`]: the same operations as `async fn`s.
///
/// Each call moves its SQLite work to tokio's blocking pool
/// ([`tokio::task::spawn_blocking`]), so no runtime worker thread ever waits
/// on SQLite or on the store's locks; it works on a `current_thread` runtime
/// and with time paused. A write that was started finishes even if its future
/// is dropped, so an acknowledged commit is never lost and a cancelled one is
/// either wholly committed or not at all.
///
/// Cheap to clone; converts to and from [`SqliteStore`] for free, and both
/// share one store.
///
/// One exception to "never blocks": dropping the *last* handle closes the
/// database, and closing checkpoints the WAL into the file (a short write
/// and fsync) on whichever thread drops it. Keep a handle in your app state
/// and drop it after the runtime's work is done, or drop it inside
/// `spawn_blocking`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sqlite3store::Result<()> {
/// use std::time::{Duration, SystemTime};
/// use sqlite3store::{AsyncSqliteStore, SqliteStore};
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("sessions.db");
/// let store = AsyncSqliteStore::open(SqliteStore::builder(&path)).await?;
/// store.commit("token", b"data", SystemTime::now() + Duration::from_secs(60)).await?;
/// assert_eq!(store.find("token").await?, Some(b"data".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncSqliteStore {
    store: SqliteStore,
}

impl AsyncSqliteStore {
    /// Opens a store with `builder`'s options, off the runtime's threads.
    pub async fn open(builder: Builder) -> Result<Self> {
        let store = tokio::task::spawn_blocking(move || builder.build())
            .await
            .map_err(Error::Task)??;
        Ok(Self { store })
    }

    /// The synchronous handle to the same store.
    pub fn as_sync(&self) -> &SqliteStore {
        &self.store
    }

    /// Runs `f` on the blocking pool with a handle to the store.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(Error::Task)?
    }

    /// See [`SqliteStore::find`].
    pub async fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        let token = token.to_owned();
        self.run(move |s| s.find(&token)).await
    }

    /// See [`SqliteStore::find_with_expiry`].
    pub async fn find_with_expiry(&self, token: &str) -> Result<Option<(Vec<u8>, SystemTime)>> {
        let token = token.to_owned();
        self.run(move |s| s.find_with_expiry(&token)).await
    }

    /// See [`SqliteStore::commit`].
    pub async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        let (token, data) = (token.to_owned(), data.to_vec());
        self.run(move |s| s.commit(&token, &data, expiry)).await
    }

    /// See [`SqliteStore::create`].
    pub async fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        let (token, data) = (token.to_owned(), data.to_vec());
        self.run(move |s| s.create(&token, &data, expiry)).await
    }

    /// See [`SqliteStore::delete`].
    pub async fn delete(&self, token: &str) -> Result<bool> {
        let token = token.to_owned();
        self.run(move |s| s.delete(&token)).await
    }

    /// See [`SqliteStore::all`].
    pub async fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        self.run(SqliteStore::all).await
    }

    /// See [`SqliteStore::list`].
    pub async fn list(&self, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        self.run(move |s| s.list(limit)).await
    }

    /// See [`SqliteStore::delete_expired`].
    pub async fn delete_expired(&self) -> Result<u64> {
        self.run(SqliteStore::delete_expired).await
    }

    /// See [`SqliteStore::delete_expired_report`].
    pub async fn delete_expired_report(&self) -> Result<CleanupReport> {
        self.run(SqliteStore::delete_expired_report).await
    }

    /// See [`SqliteStore::stats`].
    pub async fn stats(&self) -> Result<Stats> {
        self.run(SqliteStore::stats).await
    }

    /// See [`SqliteStore::vacuum`].
    pub async fn vacuum(&self) -> Result<()> {
        self.run(SqliteStore::vacuum).await
    }

    /// See [`SqliteStore::stop_cleanup`]; never blocks.
    pub fn stop_cleanup(&self) {
        self.store.stop_cleanup();
    }
}

impl From<SqliteStore> for AsyncSqliteStore {
    fn from(store: SqliteStore) -> Self {
        Self { store }
    }
}

impl From<AsyncSqliteStore> for SqliteStore {
    fn from(store: AsyncSqliteStore) -> Self {
        store.store
    }
}

/// Owners, revocation and touch (see the [`SqliteStore`] methods of the same
/// names).
impl AsyncSqliteStore {
    /// See [`SqliteStore::update`].
    pub async fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        let (token, data) = (token.to_owned(), data.to_vec());
        self.run(move |s| s.update(&token, &data, expiry)).await
    }

    /// See [`SqliteStore::update_owned`].
    pub async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        let (token, data, owner) = (token.to_owned(), data.to_vec(), owner.map(str::to_owned));
        self.run(move |s| s.update_owned(&token, &data, expiry, owner.as_deref()))
            .await
    }

    /// See [`SqliteStore::commit_owned`].
    pub async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        let (token, data, owner) = (token.to_owned(), data.to_vec(), owner.map(str::to_owned));
        self.run(move |s| s.commit_owned(&token, &data, expiry, owner.as_deref()))
            .await
    }

    /// See [`SqliteStore::create_owned`].
    pub async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        let (token, data, owner) = (token.to_owned(), data.to_vec(), owner.map(str::to_owned));
        self.run(move |s| s.create_owned(&token, &data, expiry, owner.as_deref()))
            .await
    }

    /// See [`SqliteStore::touch`].
    pub async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        let token = token.to_owned();
        self.run(move |s| s.touch(&token, expiry)).await
    }

    /// See [`SqliteStore::list_owner`].
    pub async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<(String, SystemTime)>> {
        let owner = owner.to_owned();
        self.run(move |s| s.list_owner(&owner, limit)).await
    }

    /// See [`SqliteStore::count_owner`].
    pub async fn count_owner(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        self.run(move |s| s.count_owner(&owner)).await
    }

    /// See [`SqliteStore::revoke_owner`].
    pub async fn revoke_owner(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        self.run(move |s| s.revoke_owner(&owner)).await
    }
}
