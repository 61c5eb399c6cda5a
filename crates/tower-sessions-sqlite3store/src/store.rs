//! [`SqliteSessionStore`]: tower-sessions' `SessionStore` over the async
//! front of `sqlite3store`. The SQL lives in the core, the record's layout in
//! `record.rs`; this file only maps calls and errors.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlite3store::{AsyncSqliteStore, Builder, SqliteStore};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::record;

/// How many fresh ids [`SessionStore::create`] tries before giving up. With
/// 128-bit random ids a single collision is already all but impossible; the
/// bound only keeps a broken random source from looping forever.
const CREATE_ATTEMPTS: usize = 8;

/// A tower-sessions [`SessionStore`] that keeps sessions in a SQLite file
/// through [`sqlite3store`].
///
/// Each session is one row of Go scs' table: the token is the session
/// [`Id`] as tower-sessions prints it (the cookie value; with
/// [`Builder::hash_tokens`], an HMAC of it), `data` is the [`Record`]'s data
/// and expiry date in MessagePack behind a two-byte version header, without
/// the id, and `expiry` is the record's `expiry_date`. Rows written by
/// earlier versions, which hold the whole record with its id, still load.
///
/// Cheap to clone; clones share one store. Expired sessions are deleted by
/// the core store's cleanup thread (every 5 minutes unless the
/// [`Builder`] says otherwise); [`ExpiredDeletion`] and
/// [`spawn_cleanup_task`](crate::spawn_cleanup_task) are there if you would
/// rather run cleanup on the tokio runtime.
///
/// [`save`](SessionStore::save) writes over a live session only: when the
/// session was deleted (logged out, revoked) or expired after the request
/// loaded it, `save` stores nothing and returns `Ok(())`, so a late save
/// never brings a session back; the next request starts a new one.
/// [`create`](SessionStore::create) is the only way to make a session.
///
/// With [`with_owner_key`](Self::with_owner_key), each session's owner (a
/// user id from its data) is kept up to date on every create and save, and
/// [`revoke_owner`](Self::revoke_owner) logs that user out everywhere.
#[derive(Clone, Debug)]
pub struct SqliteSessionStore {
    store: AsyncSqliteStore,
    /// The data key that names the session's owner, if any.
    owner_key: Option<Arc<str>>,
}

impl SqliteSessionStore {
    /// Wraps an open store.
    #[must_use]
    pub fn new(store: AsyncSqliteStore) -> Self {
        Self {
            store,
            owner_key: None,
        }
    }

    /// Takes each session's owner from the value under `key` in its data (a
    /// string, or a number written in decimal), on every create and save: a
    /// session without the key, or with another kind of value, has no owner.
    /// [`revoke_owner`](Self::revoke_owner) and
    /// [`count_owner`](Self::count_owner) then work per user. Default: no
    /// owners are kept.
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
    pub fn with_owner_key(mut self, key: &str) -> Self {
        self.owner_key = Some(key.into());
        self
    }

    /// Deletes every session of `owner` (see
    /// [`with_owner_key`](Self::with_owner_key)); returns how many it
    /// removed. Each is gone for good: a request that loaded one before and
    /// saves after cannot bring it back.
    pub async fn revoke_owner(&self, owner: &str) -> sqlite3store::Result<u64> {
        self.store.revoke_owner(owner).await
    }

    /// How many live sessions `owner` has.
    pub async fn count_owner(&self, owner: &str) -> sqlite3store::Result<u64> {
        self.store.count_owner(owner).await
    }

    /// The owner of `record`, from its data under the owner key.
    fn owner_of<'r>(&self, record: &'r Record) -> Option<Cow<'r, str>> {
        let key = self.owner_key.as_deref()?;
        match record.data.get(key)? {
            serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    /// Opens (creating if missing) the store at `path` with the core's
    /// defaults, among them a cleanup thread every 5 minutes.
    pub async fn open(path: impl AsRef<Path>) -> sqlite3store::Result<Self> {
        Self::open_with(SqliteStore::builder(path)).await
    }

    /// Opens the store with `builder`'s options (cleanup interval,
    /// durability, size limits, clock, ...).
    pub async fn open_with(builder: Builder) -> sqlite3store::Result<Self> {
        Ok(Self::new(AsyncSqliteStore::open(builder).await?))
    }

    /// The store underneath, for everything tower-sessions does not ask for
    /// (stats, listing, vacuum, ...).
    #[must_use]
    pub fn inner(&self) -> &AsyncSqliteStore {
        &self.store
    }

    /// The store underneath, by value.
    #[must_use]
    pub fn into_inner(self) -> AsyncSqliteStore {
        self.store
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

#[async_trait]
impl SessionStore for SqliteSessionStore {
    /// Stores a new session, never over another active one: when the id is
    /// taken, the record gets a fresh [`Id`] and the insert is tried again.
    /// Each attempt is one atomic insert-if-absent in the core.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let data = record::encode(record)?;
            let owner = self.owner_of(record);
            let stored = self
                .store
                .create_owned(
                    &record.id.to_string(),
                    &data,
                    expiry(record),
                    owner.as_deref(),
                )
                .await
                .map_err(backend)?;
            if stored {
                return Ok(());
            }
            tracing::debug!("session id collision; retrying with a new id");
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(format!(
            "no free session id after {CREATE_ATTEMPTS} attempts"
        )))
    }

    /// Writes the record over its live session, and its owner with it when
    /// an owner key is set. A session that is gone (deleted, revoked or
    /// expired since it was loaded) stays gone: nothing is stored and the
    /// call succeeds.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = record::encode(record)?;
        let token = record.id.to_string();
        let written = match &self.owner_key {
            None => self.store.update(&token, &data, expiry(record)).await,
            Some(_) => {
                let owner = self.owner_of(record);
                self.store
                    .update_owned(&token, &data, expiry(record), owner.as_deref())
                    .await
            }
        }
        .map_err(backend)?;
        if !written {
            tracing::debug!("save of a session that is gone; not recreated");
        }
        Ok(())
    }

    /// The session, unless it is missing or expired: when the store's clock
    /// is past the row's expiry or the record's own `expiry_date`.
    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let Some(data) = self
            .store
            .find(&session_id.to_string())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let Some(record) = record::decode(*session_id, &data)? else {
            return Ok(None);
        };
        if expiry(&record) <= self.store.as_sync().now() {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Removes the session; a missing one is not an error.
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.store
            .delete(&session_id.to_string())
            .await
            .map(drop)
            .map_err(backend)
    }
}

/// Deletes every expired session now, in the core's bounded batches.
///
/// [`ExpiredDeletion::continuously_delete_expired`] works with this store,
/// but, as written in tower-sessions, it ends at its first error;
/// [`spawn_cleanup_task`](crate::spawn_cleanup_task) logs the error and tries
/// again at the next tick.
#[async_trait]
impl ExpiredDeletion for SqliteSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let removed = self.store.delete_expired().await.map_err(backend)?;
        tracing::debug!(removed, "expired sessions deleted");
        Ok(())
    }
}

/// The record's expiry as the core wants it. `time` dates (years -9999 to
/// 9999) fit in `SystemTime` on every platform std supports; should one not,
/// it is clamped (to the epoch, or to the end of year 9999, the latest expiry
/// the core stores) rather than panicking.
fn expiry(record: &Record) -> SystemTime {
    const END_OF_9999: Duration = Duration::from_secs(253_402_300_799);
    let since_epoch = record.expiry_date - OffsetDateTime::UNIX_EPOCH;
    let abs = Duration::new(
        since_epoch.whole_seconds().unsigned_abs(),
        since_epoch.subsec_nanoseconds().unsigned_abs(),
    );
    if since_epoch.is_negative() {
        SystemTime::UNIX_EPOCH
            .checked_sub(abs)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_add(abs)
            .unwrap_or(SystemTime::UNIX_EPOCH + END_OF_9999)
    }
}

/// Flattens a store error into tower-sessions' `Backend(String)`, keeping the
/// whole chain of causes (the core's messages leave the cause to `source()`).
fn backend(err: sqlite3store::Error) -> session_store::Error {
    session_store::Error::Backend(sqlite3store::error_chain(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_converts_both_sides_of_the_epoch() {
        let record = |expiry_date| Record {
            id: Id(1),
            data: Default::default(),
            expiry_date,
        };
        let later = OffsetDateTime::UNIX_EPOCH + time::Duration::new(90, 500);
        assert_eq!(
            expiry(&record(later)),
            SystemTime::UNIX_EPOCH + Duration::new(90, 500)
        );
        let earlier = OffsetDateTime::UNIX_EPOCH - time::Duration::new(90, 500);
        assert_eq!(
            expiry(&record(earlier)),
            SystemTime::UNIX_EPOCH - Duration::new(90, 500)
        );
        // The extremes of `time` do not panic.
        let _ = expiry(&record(time::PrimitiveDateTime::MAX.assume_utc()));
        let _ = expiry(&record(time::PrimitiveDateTime::MIN.assume_utc()));
    }

    #[test]
    fn backend_errors_keep_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let err = backend(sqlite3store::Error::Io(io));
        let session_store::Error::Backend(message) = err else {
            panic!("not a backend error: {err:?}");
        };
        assert_eq!(message, "i/o on the session database failed: disk on fire");
    }
}
