//! [`ContractStore`]: tower-sessions' `SessionStore` over any backend of the
//! shared contract. The SQL lives in the backends, the record's layout in
//! `record.rs`; this file only maps calls and errors.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use session_contract::SessionStore as Backend;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::record;

/// How many fresh ids [`SessionStore::create`] tries before giving up. With
/// 128-bit random ids a single collision is already all but impossible; the
/// bound only keeps a broken random source from looping forever.
const CREATE_ATTEMPTS: usize = 8;

/// A tower-sessions [`SessionStore`] over any
/// [`session_contract::SessionStore`] backend.
///
/// Each session is one row of the backend: the token is the session [`Id`]
/// as tower-sessions prints it (the cookie value; an HMAC of it when the
/// backend hashes tokens), the data is the [`Record`]'s data and expiry date
/// in MessagePack behind a two-byte version header, without the id, and the
/// expiry is the record's `expiry_date`. Rows written by earlier versions,
/// which hold the whole record with its id, still load.
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
///
/// Cheap to clone when the backend is; clones share one backend.
/// [`ExpiredDeletion`] runs the backend's `delete_expired`;
/// [`spawn_cleanup_task`](crate::spawn_cleanup_task) runs it on the tokio
/// runtime in a loop that errors do not end.
#[derive(Clone)]
pub struct ContractStore<S> {
    backend: S,
    /// The data key that names the session's owner, if any.
    owner_key: Option<Arc<str>>,
}

impl<S: fmt::Debug> fmt::Debug for ContractStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractStore")
            .field("backend", &self.backend)
            .field("owner_key", &self.owner_key)
            .finish()
    }
}

impl<S> ContractStore<S> {
    /// Serves tower-sessions from `backend`.
    #[must_use]
    pub fn new(backend: S) -> Self {
        Self {
            backend,
            owner_key: None,
        }
    }

    /// Takes each session's owner from the value under `key` in its data (a
    /// string, or a number written in decimal), on every create and save: a
    /// session without the key, or with another kind of value, has no owner.
    /// [`revoke_owner`](Self::revoke_owner) and
    /// [`count_owner`](Self::count_owner) then work per user. Default: no
    /// owners are kept.
    #[must_use]
    pub fn with_owner_key(mut self, key: &str) -> Self {
        self.owner_key = Some(key.into());
        self
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

    /// The backend, for everything tower-sessions does not ask for (stats,
    /// listing, ...).
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.backend
    }

    /// The backend, by value.
    #[must_use]
    pub fn into_inner(self) -> S {
        self.backend
    }
}

impl<S: Backend> ContractStore<S> {
    /// Deletes every session of `owner` (see
    /// [`with_owner_key`](Self::with_owner_key)); returns how many it
    /// removed. Each is gone for good: a request that loaded one before and
    /// saves after cannot bring it back.
    pub async fn revoke_owner(&self, owner: &str) -> Result<u64, S::Error> {
        self.backend.revoke_owner(owner).await
    }

    /// How many live sessions `owner` has.
    pub async fn count_owner(&self, owner: &str) -> Result<u64, S::Error> {
        self.backend.count_owner(owner).await
    }
}

impl<S> From<S> for ContractStore<S> {
    fn from(backend: S) -> Self {
        Self::new(backend)
    }
}

#[async_trait]
impl<S> SessionStore for ContractStore<S>
where
    S: Backend + Clone + fmt::Debug,
{
    /// Stores a new session, never over another live one: when the id is
    /// taken, the record gets a fresh [`Id`] and the insert is tried again.
    /// Each attempt is one atomic insert-if-absent in the backend.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let data = record::encode(record)?;
            let owner = self.owner_of(record);
            let stored = self
                .backend
                .create_owned(
                    &record.id.to_string(),
                    &data,
                    expiry(record),
                    owner.as_deref(),
                )
                .await
                .map_err(backend_error)?;
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
            None => self.backend.update(&token, &data, expiry(record)).await,
            Some(_) => {
                let owner = self.owner_of(record);
                self.backend
                    .update_owned(&token, &data, expiry(record), owner.as_deref())
                    .await
            }
        }
        .map_err(backend_error)?;
        if !written {
            tracing::debug!("save of a session that is gone; not recreated");
        }
        Ok(())
    }

    /// The session, unless it is missing or expired: when the backend's
    /// clock is past the row's expiry or the record's own `expiry_date`.
    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let Some(data) = self
            .backend
            .find(&session_id.to_string())
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let Some(record) = record::decode(*session_id, &data)? else {
            return Ok(None);
        };
        if expiry(&record) <= self.backend.now() {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Removes the session; a missing one is not an error.
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.backend
            .delete(&session_id.to_string())
            .await
            .map(drop)
            .map_err(backend_error)
    }
}

/// Deletes every expired session now (in the backend's bounded batches).
///
/// [`ExpiredDeletion::continuously_delete_expired`] works with this store,
/// but, as written in tower-sessions, it ends at its first error;
/// [`spawn_cleanup_task`](crate::spawn_cleanup_task) logs the error and tries
/// again at the next tick.
#[async_trait]
impl<S> ExpiredDeletion for ContractStore<S>
where
    S: Backend + Clone + fmt::Debug,
{
    async fn delete_expired(&self) -> session_store::Result<()> {
        let removed = self.backend.delete_expired().await.map_err(backend_error)?;
        tracing::debug!(removed, "expired sessions deleted");
        Ok(())
    }
}

/// The record's expiry as the backend wants it. `time` dates (years -9999
/// to 9999) fit in `SystemTime` on every platform std supports; should one
/// not, it is clamped (to the epoch, or to the end of year 9999, the latest
/// expiry SQLite stores) rather than panicking.
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

/// Flattens a backend error into tower-sessions' `Backend(String)`, keeping
/// the whole chain of causes (the backends' messages leave the cause to
/// `source()`), joined by ": ".
fn backend_error(err: impl std::error::Error) -> session_store::Error {
    session_store::Error::Backend(session_contract::error_chain(&err))
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
        // The extremes of `time` convert exactly (a round trip), in order.
        for extreme in [
            time::PrimitiveDateTime::MAX.assume_utc(),
            time::PrimitiveDateTime::MIN.assume_utc(),
        ] {
            assert_eq!(OffsetDateTime::from(expiry(&record(extreme))), extreme);
        }
        assert!(
            expiry(&record(time::PrimitiveDateTime::MAX.assume_utc())) > expiry(&record(later))
        );
        assert!(
            expiry(&record(time::PrimitiveDateTime::MIN.assume_utc())) < expiry(&record(earlier))
        );
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("i/o on the session database failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn backend_errors_keep_their_cause() {
        let err = backend_error(Outer(std::io::Error::other("disk on fire")));
        let session_store::Error::Backend(message) = err else {
            panic!("not a backend error: {err:?}");
        };
        assert_eq!(message, "i/o on the session database failed: disk on fire");
    }
}
