//! The operations every session store backend provides.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::error::StoreError;

/// One session as stored: its data and when it expires.
///
/// Its `Debug` shows the data's length, never the data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The session's data, opaque to the store.
    pub data: Vec<u8>,
    /// When the session stops being found, as stored (backends keep at least
    /// millisecond precision).
    pub expiry: SystemTime,
}

impl Session {
    /// A session with `data` that expires at `expiry`.
    #[must_use]
    pub fn new(data: Vec<u8>, expiry: SystemTime) -> Self {
        Self { data, expiry }
    }
}

/// How many leading characters of a token `Debug` output shows: enough to
/// tell sessions apart in a log, far too few to use one.
const SHOWN_TOKEN_CHARS: usize = 6;

/// A token for `Debug` output: its first [`SHOWN_TOKEN_CHARS`] characters.
struct ShortToken<'a>(&'a str);

impl std::fmt::Debug for ShortToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(SHOWN_TOKEN_CHARS) {
            Some((end, _)) => write!(f, "\"{}…\"", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// One live session in a [listing](SessionStore::list), without its data.
///
/// A token is a credential: `Debug` shows only its first few characters.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listed {
    /// The stored key: the token, or its hash when the store hashes tokens.
    pub token: String,
    /// When the session expires.
    pub expiry: SystemTime,
}

impl Listed {
    /// A listing entry for `token`, expiring at `expiry`.
    #[must_use]
    pub fn new(token: String, expiry: SystemTime) -> Self {
        Self { token, expiry }
    }
}

impl std::fmt::Debug for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listed")
            .field("token", &ShortToken(&self.token))
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// One live session with its stored key: an entry of an export page, or a
/// session to import.
///
/// `Debug` shows only the token's first few characters and the data's length.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The stored key: the token, or its hash when the store hashes tokens.
    pub token: String,
    /// The session's data and expiry.
    pub session: Session,
}

impl Entry {
    /// An entry for `token` holding `session`.
    #[must_use]
    pub fn new(token: String, session: Session) -> Self {
        Self { token, session }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("token", &ShortToken(&self.token))
            .field("session", &self.session)
            .finish()
    }
}

/// A session store: Go scs's store contract, plus what the Rust stores add.
///
/// A session is *live* while the store's clock is before its expiry; from
/// its expiry on it is never found, listed or returned, though its row may
/// stay until [`delete_expired`](Self::delete_expired) or the cleanup task
/// removes it.
///
/// Tokens are opaque strings. An empty token, or one longer than the
/// store's limit, is never found and never deleted; `commit` and `create`
/// refuse it with an [`ErrorKind::InvalidInput`](crate::ErrorKind) error, as
/// they refuse data over the store's size limit.
///
/// When the store hashes tokens (an HMAC key, see [`TokenHasher`](crate::TokenHasher)),
/// every call still takes the raw token; only [`all`](Self::all) and
/// [`list`](Self::list) show the stored keys (the hashes), since the raw
/// tokens are not kept.
///
/// # Owners
///
/// A session may have an *owner* (a user id, say): an opaque, non-empty
/// string of at most [`MAX_OWNER_LEN`](crate::MAX_OWNER_LEN) bytes, without
/// NUL. Writing an empty, over-long or NUL-holding owner fails with an
/// [`ErrorKind::InvalidInput`](crate::ErrorKind) error; reading by one finds
/// nothing. The owner lives in the session's own row, so a session deleted
/// or expired by any path takes its owner with it.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The backend's error type.
    type Error: StoreError;

    /// The data of the live session `token`, or `None`.
    async fn find(&self, token: &str) -> Result<Option<Vec<u8>>, Self::Error>;

    /// The data and expiry of the live session `token`, or `None`.
    async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>, Self::Error>;

    /// Stores `data` under `token` until `expiry`, replacing any session with
    /// that token (Go's `Commit`: an upsert). An expiry in the past is stored
    /// but never found.
    async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime)
        -> Result<(), Self::Error>;

    /// Stores a new session unless a live one holds `token`, in one atomic
    /// step; returns whether it was stored. An expired row with that token
    /// counts as gone and is replaced.
    async fn create(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> Result<bool, Self::Error>;

    /// Writes `data` and `expiry` over the live session `token`, keeping its
    /// owner; returns false, writing nothing, when it is missing or expired.
    /// Unlike [`commit`](Self::commit) it never brings back a session that
    /// was deleted or revoked meanwhile: what a late save should call.
    async fn update(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> Result<bool, Self::Error>;

    /// Like [`update`](Self::update), and sets the session's owner (`None`
    /// clears it).
    async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool, Self::Error>;

    /// Like [`commit`](Self::commit) (an upsert), and sets the session's
    /// owner (`None` clears it). Plain `commit` keeps the owner a live row
    /// has.
    async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<(), Self::Error>;

    /// Like [`create`](Self::create), with an owner. Plain `create` stores a
    /// session without one.
    async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool, Self::Error>;

    /// Moves the expiry of the live session `token` without sending or
    /// rewriting its data; returns false, changing nothing, when it is
    /// missing or expired.
    async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool, Self::Error>;

    /// Up to `limit` live sessions of `owner`, soonest expiry first, without
    /// their data (stored keys, as [`list`](Self::list) shows them).
    async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>, Self::Error>;

    /// How many live sessions `owner` has.
    async fn count_owner(&self, owner: &str) -> Result<u64, Self::Error>;

    /// Deletes every session of `owner` ("log out everywhere"), live or
    /// expired; returns how many rows it removed. Once it returns, a save
    /// can no longer bring any of them back. It works in short steps, or
    /// locks only that owner's rows, so other requests are not held up
    /// behind a large owner.
    async fn revoke_owner(&self, owner: &str) -> Result<u64, Self::Error>;

    /// Removes the session `token`, live or expired; returns whether a row
    /// was there. A missing token is not an error.
    async fn delete(&self, token: &str) -> Result<bool, Self::Error>;

    /// Every live session, stored key to data.
    async fn all(&self) -> Result<HashMap<String, Vec<u8>>, Self::Error>;

    /// Up to `limit` live sessions, soonest expiry first, without their data.
    async fn list(&self, limit: usize) -> Result<Vec<Listed>, Self::Error>;

    /// Up to `limit` live sessions whose stored key sorts after `after`
    /// (`""` for the first page), in key order, with their data and expiry:
    /// pages through the whole store without holding it in memory, for
    /// exports and migrations. Pass the last key of a page as `after` to get
    /// the next; an empty page is the end.
    async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>, Self::Error>;

    /// Like [`export_page`](Self::export_page), with each session's owner
    /// (`None` for none): import with [`commit_owned`](Self::commit_owned)
    /// and "log out everywhere" keeps working after a migration.
    async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>, Self::Error>;

    /// Deletes every expired row now; returns how many.
    async fn delete_expired(&self) -> Result<u64, Self::Error>;

    /// Stops the background cleanup, if it runs. Idempotent; never blocks.
    fn stop_cleanup(&self);

    /// The time by which this store judges expiry, as well as the app can
    /// know it without a round trip: a store with an injectable clock returns
    /// that clock; one that uses the database's clock returns the local
    /// clock (the default). For checks an adapter makes on top of the store
    /// (an expiry held inside the data), never for the store's own.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn debug_output_never_shows_a_whole_token_or_any_data() {
        let token = "Zt7QpX2mK9vLr4WsYb8NcE1dHu6JfGa3Tk0OiVqPz5S";
        let expiry = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let session = Session::new(b"user_id=42;secret".to_vec(), expiry);
        let printed = [
            format!("{:?}", Listed::new(token.to_owned(), expiry)),
            format!("{:?}", Entry::new(token.to_owned(), session.clone())),
            format!("{session:?}"),
        ];
        for out in &printed {
            assert!(!out.contains(token), "{out}");
            assert!(!out.contains("secret"), "{out}");
            assert!(!out.contains("117, 115"), "data bytes leaked: {out}");
        }
        assert!(printed[0].contains("\"Zt7QpX…\""), "{}", printed[0]);
        assert!(printed[1].contains("<17 bytes>"), "{}", printed[1]);
        // Short and multi-byte tokens: shown whole when short, cut on a
        // character boundary otherwise (never a panic).
        assert!(format!("{:?}", Listed::new("abc".into(), expiry)).contains("\"abc\""));
        let wide = "ééééééééé";
        assert!(format!("{:?}", Listed::new(wide.into(), expiry)).contains("\"éééééé…\""));
    }
}
