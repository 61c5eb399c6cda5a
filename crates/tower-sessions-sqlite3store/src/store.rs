//! [`SqliteSessionStore`]: the contract's tower-sessions adapter over the
//! async front of `sqlite3store`, with SQLite's constructors. The logic is in
//! `tower-sessions-contract`, shared with every backend; this file only
//! opens the store and forwards.

use std::path::Path;

use async_trait::async_trait;
use sqlite3store::{AsyncSqliteStore, SqliteStore};
use tower_sessions_contract::ContractStore;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

/// A tower-sessions [`SessionStore`] that keeps sessions in a SQLite file
/// through [`sqlite3store`].
///
/// Each session is one row of Go scs' table: the token is the session
/// [`Id`] as tower-sessions prints it (the cookie value; with
/// [`Builder::hash_tokens`](sqlite3store::Builder::hash_tokens), an HMAC of it), `data` is the [`Record`]'s data
/// and expiry date in MessagePack behind a two-byte version header, without
/// the id, and `expiry` is the record's `expiry_date`. Rows written by
/// earlier versions, which hold the whole record with its id, still load.
///
/// This is [`ContractStore`] over [`AsyncSqliteStore`]: the same adapter,
/// record layout and collision-safe `create` as on every other backend.
///
/// Cheap to clone; clones share one store. Expired sessions are deleted by
/// the core store's cleanup thread (every 5 minutes unless the
/// [`Builder`](sqlite3store::Builder) says otherwise); [`ExpiredDeletion`] and
/// [`spawn_cleanup_task`](crate::spawn_cleanup_task) are there if you would
/// rather run cleanup on the tokio runtime.
#[derive(Clone, Debug)]
pub struct SqliteSessionStore {
    adapter: ContractStore<AsyncSqliteStore>,
}

impl SqliteSessionStore {
    /// Wraps an open store.
    #[must_use]
    pub fn new(store: AsyncSqliteStore) -> Self {
        Self {
            adapter: ContractStore::new(store),
        }
    }

    /// Opens (creating if missing) the store at `path` with the core's
    /// defaults, among them a cleanup thread every 5 minutes. With options,
    /// open the core store the one way every front does, and wrap it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> sqlite3store::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("sessions.db");
    /// use std::time::Duration;
    /// use sqlite3store::SqliteStore;
    /// use tower_sessions_sqlite3store::SqliteSessionStore;
    ///
    /// let store = SqliteStore::builder(&path)
    ///     .cleanup_interval(Duration::from_secs(600))
    ///     .build_async()
    ///     .await?;
    /// let store = SqliteSessionStore::new(store);
    /// # drop(store);
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> sqlite3store::Result<Self> {
        Ok(Self::new(SqliteStore::builder(path).build_async().await?))
    }

    /// Keeps each session's owner from the value under `key` in its data;
    /// see [`ContractStore::with_owner_key`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("sessions.db");
    /// use tower_sessions_sqlite3store::SqliteSessionStore;
    ///
    /// let store = SqliteSessionStore::open(&path).await?.with_owner_key("user_id");
    /// // After `session.insert("user_id", 42)` and a save: one session of "42".
    /// // "Log out everywhere":
    /// let revoked = store.revoke_owner("42").await?;
    /// # assert_eq!(revoked, 0);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_owner_key(self, key: &str) -> Self {
        Self {
            adapter: self.adapter.with_owner_key(key),
        }
    }

    /// Skips writing a save that changes nothing but moves the expiry by at
    /// most `fraction` of the session's lifetime; see
    /// [`ContractStore::with_expiry_write_threshold`] for exactly how stale
    /// the stored expiry may get. Default: `0.01`; `0.0` writes every save.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("sessions.db");
    /// use tower_sessions::{Expiry, SessionManagerLayer};
    /// use tower_sessions_sqlite3store::SqliteSessionStore;
    ///
    /// // Every request saves; the row is rewritten once the expiry moved by
    /// // more than 5% of the hour (3 minutes), or when the data changes.
    /// let store = SqliteSessionStore::open(&path)
    ///     .await?
    ///     .with_expiry_write_threshold(0.05)?;
    /// let layer = SessionManagerLayer::new(store)
    ///     .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)))
    ///     .with_always_save(true);
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Unless `0.0 <= fraction < 1.0`.
    pub fn with_expiry_write_threshold(
        self,
        fraction: f64,
    ) -> Result<Self, tower_sessions_contract::Error> {
        Ok(Self {
            adapter: self.adapter.with_expiry_write_threshold(fraction)?,
        })
    }

    /// How many sessions are remembered for
    /// [`with_expiry_write_threshold`](Self::with_expiry_write_threshold);
    /// see [`ContractStore::with_expiry_write_memory`]. Default: 50,000.
    #[must_use]
    pub fn with_expiry_write_memory(self, sessions: usize) -> Self {
        Self {
            adapter: self.adapter.with_expiry_write_memory(sessions),
        }
    }

    /// Deletes every session of `owner`; see [`ContractStore::revoke_owner`].
    pub async fn revoke_owner(&self, owner: &str) -> sqlite3store::Result<u64> {
        self.adapter.revoke_owner(owner).await
    }

    /// How many live sessions `owner` has.
    pub async fn count_owner(&self, owner: &str) -> sqlite3store::Result<u64> {
        self.adapter.count_owner(owner).await
    }

    /// The store underneath, for everything tower-sessions does not ask for
    /// (stats, listing, vacuum, ...).
    #[must_use]
    pub fn inner(&self) -> &AsyncSqliteStore {
        self.adapter.inner()
    }

    /// The store underneath, by value.
    #[must_use]
    pub fn into_inner(self) -> AsyncSqliteStore {
        self.adapter.into_inner()
    }
}

impl From<AsyncSqliteStore> for SqliteSessionStore {
    fn from(store: AsyncSqliteStore) -> Self {
        Self::new(store)
    }
}

impl From<SqliteStore> for SqliteSessionStore {
    fn from(store: SqliteStore) -> Self {
        Self::new(store.into())
    }
}

impl From<SqliteSessionStore> for ContractStore<AsyncSqliteStore> {
    fn from(store: SqliteSessionStore) -> Self {
        store.adapter
    }
}

/// See [`ContractStore`]'s implementation.
#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.adapter.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.adapter.save(record).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        self.adapter.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.adapter.delete(session_id).await
    }
}

/// Deletes every expired session now, in the core's bounded batches. See
/// [`ContractStore`]'s implementation.
#[async_trait]
impl ExpiredDeletion for SqliteSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.adapter.delete_expired().await
    }
}
