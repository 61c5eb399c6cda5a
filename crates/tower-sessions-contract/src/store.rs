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
use crate::throttle::{Stored, Throttle};
use crate::Error;

/// How many fresh ids [`SessionStore::create`] tries before giving up. With
/// 128-bit random ids a single collision is already all but impossible; the
/// bound only keeps a broken random source from looping forever.
const CREATE_ATTEMPTS: usize = 8;

/// The default [expiry write threshold](ContractStore::with_expiry_write_threshold):
/// 1% of the session's lifetime, in parts per million.
const DEFAULT_THRESHOLD_PPM: u32 = 10_000;

/// How many sessions a store remembers by default for the threshold: at 48
/// bytes an entry in two tables of up to 32,768 slots, about 3 MB at most.
const DEFAULT_MEMORY: usize = 50_000;

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
/// A save that changes nothing but moves the expiry a little later (what
/// tower-sessions sends on every request under `with_always_save(true)`)
/// is not written: see [`with_expiry_write_threshold`](Self::with_expiry_write_threshold).
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
    /// The expiry write threshold, in parts per million of the lifetime.
    threshold_ppm: u32,
    /// How many sessions `throttle` remembers.
    memory: usize,
    /// `None` when every save writes.
    throttle: Option<Arc<Throttle>>,
}

impl<S: fmt::Debug> fmt::Debug for ContractStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractStore")
            .field("backend", &self.backend)
            .field("owner_key", &self.owner_key)
            .field("threshold_ppm", &self.threshold_ppm)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl<S> ContractStore<S> {
    /// Serves tower-sessions from `backend`.
    #[must_use]
    pub fn new(backend: S) -> Self {
        Self {
            backend,
            owner_key: None,
            threshold_ppm: DEFAULT_THRESHOLD_PPM,
            memory: DEFAULT_MEMORY,
            throttle: Throttle::new(DEFAULT_THRESHOLD_PPM, DEFAULT_MEMORY).map(Arc::new),
        }
    }

    /// Skips writing a save that changes nothing but its expiry, while that
    /// expiry is at most `fraction` of the session's lifetime later than
    /// the stored one. Default: `0.01` (1%). `0.0` writes every save.
    ///
    /// tower-sessions saves a session when it changed, and on every request
    /// under `with_always_save(true)`: then, with
    /// `Expiry::OnInactivity(lifetime)`, each request moves the expiry to
    /// now + `lifetime` and rewrites the row for that alone. With the
    /// threshold, such a save is written only once the expiry moved by
    /// more than `fraction × lifetime` (the lifetime being the save's
    /// expiry minus now); in between, the store writes nothing.
    ///
    /// What it costs, exactly: the stored expiry may be up to `fraction` of
    /// the lifetime older than the last save asked for. An idle session
    /// therefore ends between `(1 - fraction) × lifetime` and `lifetime`
    /// after its last request (59 min 24 s to 1 h for an hour at 1%; for
    /// tower-sessions' default of two weeks, up to 3 h 22 min early), while
    /// its cookie, which tower-sessions sets on every save, says the full
    /// `lifetime`. Cleanup deletes rows by the stored expiry, and other
    /// processes or replicas load by it, so they see the same earlier end;
    /// no session ever lives past the expiry a save asked for. With
    /// `Expiry::AtDateTime` the expiry does not move, so an unchanged save
    /// is never written.
    ///
    /// Why 1%: someone who turned on `with_always_save(true)` with
    /// `OnInactivity` wants idle sessions to end about `lifetime` after
    /// their last request, and active ones never to; an end that may come
    /// 1% early keeps both, while a session in use is written at most once
    /// per 1% of its lifetime (every 36 s for an hour) instead of on every
    /// request. Set `0.0` if the stored expiry must follow every request.
    ///
    /// What it never does: skip a save whose data differs from the row's
    /// (every change is written, with its expiry), or one that moves the
    /// expiry earlier. "The row's" is as this process last read or wrote
    /// it, remembered per session in a bounded memory (see
    /// [`with_expiry_write_memory`](Self::with_expiry_write_memory)); a
    /// session it does not remember is written. A skipped save is one that
    /// would have written what the row already held: as if it had run
    /// just before any write another replica made since.
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`] unless `0.0 <= fraction < 1.0`. Fractions
    /// below one millionth count as `0.0`.
    pub fn with_expiry_write_threshold(mut self, fraction: f64) -> Result<Self, Error> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::InvalidThreshold(fraction));
        }
        // In range, so the product is in 0..=1e6 and fits.
        self.threshold_ppm = (fraction * 1e6).round() as u32;
        Ok(self.with_new_throttle())
    }

    /// How many sessions the store remembers (what their rows hold, by a
    /// digest of the data, and their expiry) to tell
    /// [saves that change nothing](Self::with_expiry_write_threshold).
    /// Sessions not loaded or saved for the longest are forgotten first; a
    /// forgotten session's next save is written. Default: 50,000 (about
    /// 3 MB at most). Fewer than 2 remembers none, so every save writes.
    #[must_use]
    pub fn with_expiry_write_memory(mut self, sessions: usize) -> Self {
        self.memory = sessions;
        self.with_new_throttle()
    }

    /// A fresh throttle for the current settings (nothing remembered).
    fn with_new_throttle(mut self) -> Self {
        self.throttle = Throttle::new(self.threshold_ppm, self.memory).map(Arc::new);
        self
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
        // The id is not in the encoding: one for every attempt.
        let encoded = record::encode(record)?;
        let digest = self.throttle.as_ref().map(|t| t.digest(encoded.data()));
        let data = encoded.with_expiry(record.expiry_date)?;
        let expiry = expiry(record);
        for _ in 0..CREATE_ATTEMPTS {
            let owner = self.owner_of(record);
            let writing = self.throttle.as_ref().map(|t| t.begin_write(record.id.0));
            let created = self
                .backend
                .create_owned(&record.id.to_string(), &data, expiry, owner.as_deref())
                .await;
            if let (Some(throttle), Some(writing), Some(digest)) = (&self.throttle, writing, digest)
            {
                let stored = matches!(created, Ok(true)).then(|| Stored::new(digest, expiry));
                throttle.written(record.id.0, writing, stored);
            }
            if created.map_err(backend_error)? {
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
    ///
    /// A save that changes nothing but moves the expiry a little later is
    /// not written; see
    /// [`with_expiry_write_threshold`](ContractStore::with_expiry_write_threshold).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let encoded = record::encode(record)?;
        let (id, expiry) = (record.id.0, expiry(record));
        let mut writing = None;
        if let Some(throttle) = &self.throttle {
            let digest = throttle.digest(encoded.data());
            if !throttle.must_write(id, digest, expiry, self.backend.now()) {
                tracing::trace!("unchanged session, expiry within the threshold: not written");
                return Ok(());
            }
            writing = Some((throttle, throttle.begin_write(id), digest));
        }
        let data = encoded.with_expiry(record.expiry_date)?;
        let token = record.id.to_string();
        let written = match &self.owner_key {
            None => self.backend.update(&token, &data, expiry).await,
            Some(_) => {
                let owner = self.owner_of(record);
                self.backend
                    .update_owned(&token, &data, expiry, owner.as_deref())
                    .await
            }
        };
        if let Some((throttle, writing, digest)) = writing {
            let stored = matches!(written, Ok(true)).then(|| Stored::new(digest, expiry));
            throttle.written(id, writing, stored);
        }
        if !written.map_err(backend_error)? {
            tracing::debug!("save of a session that is gone; not recreated");
        }
        Ok(())
    }

    /// The session, unless it is missing or expired: when the backend's
    /// clock is past the row's expiry or the record's own `expiry_date`.
    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let ticket = self.throttle.as_ref().map(|t| t.ticket());
        let Some(data) = self
            .backend
            .find(&session_id.to_string())
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let Some(decoded) = record::decode(*session_id, &data)? else {
            return Ok(None);
        };
        let expiry = expiry(&decoded.record);
        if expiry <= self.backend.now() {
            return Ok(None);
        }
        if let (Some(throttle), Some(ticket)) = (&self.throttle, ticket) {
            let stored = decoded
                .data
                .map(|data| Stored::new(throttle.digest(data), expiry));
            throttle.loaded(session_id.0, ticket, stored);
        }
        Ok(Some(decoded.record))
    }

    /// Removes the session; a missing one is not an error.
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let writing = self
            .throttle
            .as_ref()
            .map(|t| (t, t.begin_write(session_id.0)));
        let deleted = self.backend.delete(&session_id.to_string()).await;
        if let Some((throttle, writing)) = writing {
            throttle.written(session_id.0, writing, None);
        }
        deleted.map(drop).map_err(backend_error)
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
