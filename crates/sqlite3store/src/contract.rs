//! sqlite3store under the workspace's shared contract
//! ([`session_contract::SessionStore`]), so code written against the
//! contract (the tower-sessions adapter, the conformance suite) serves SQLite
//! as it serves PostgreSQL.
//!
//! `AsyncSqliteStore` (feature `tokio`) implements the contract.
//! [`SqliteStore`] does not:
//! its calls block, and an `async fn` that blocks stalls the runtime. Convert
//! it for free with `AsyncSqliteStore::from(store)`; both share one store.
//!
//! [`SqliteStore`]: crate::SqliteStore

pub use session_contract::{ErrorKind, Listed, Session, SessionStore, StoreError};

use crate::error::Error;

impl StoreError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::EmptyToken
            | Error::TokenTooLong { .. }
            | Error::DataTooLarge { .. }
            | Error::InvalidOwner(_)
            | Error::InvalidConfig(_) => ErrorKind::InvalidInput,
            Error::Busy(_) => ErrorKind::Busy,
            Error::FileReplaced { .. } | Error::Closed => ErrorKind::Closed,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::SchemaMismatch { .. } => ErrorKind::Schema,
            Error::NotADatabase(_) | Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Open { .. } | Error::ReadOnly(_) | Error::DiskFull(_) | Error::Io(_) => {
                ErrorKind::Io
            }
            #[cfg(feature = "tokio")]
            Error::Task(err) if err.is_cancelled() => ErrorKind::Cancelled,
            #[cfg(feature = "tokio")]
            Error::Task(_) => ErrorKind::Other,
            Error::WriterPanicked | Error::Sqlite(_) | Error::Thread(..) => ErrorKind::Other,
        }
    }

    /// [`Error::is_retryable`]: a busy database, and a full disk too (finds
    /// keep working and commits work again once space is freed).
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

#[cfg(feature = "tokio")]
mod async_front {
    use std::collections::HashMap;
    use std::time::SystemTime;

    use session_contract::Entry;

    use super::{Error, Listed, Session, SessionStore};

    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[async_trait::async_trait]
    impl SessionStore for crate::AsyncSqliteStore {
        type Error = Error;

        async fn find(&self, token: &str) -> Result<Option<Vec<u8>>, Error> {
            crate::AsyncSqliteStore::find(self, token).await
        }

        async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>, Error> {
            crate::AsyncSqliteStore::find_with_expiry(self, token).await
        }

        async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<(), Error> {
            crate::AsyncSqliteStore::commit(self, token, data, expiry).await
        }

        async fn create(
            &self,
            token: &str,
            data: &[u8],
            expiry: SystemTime,
        ) -> Result<bool, Error> {
            crate::AsyncSqliteStore::create(self, token, data, expiry).await
        }

        async fn update(
            &self,
            token: &str,
            data: &[u8],
            expiry: SystemTime,
        ) -> Result<bool, Error> {
            crate::AsyncSqliteStore::update(self, token, data, expiry).await
        }

        async fn update_owned(
            &self,
            token: &str,
            data: &[u8],
            expiry: SystemTime,
            owner: Option<&str>,
        ) -> Result<bool, Error> {
            crate::AsyncSqliteStore::update_owned(self, token, data, expiry, owner).await
        }

        async fn commit_owned(
            &self,
            token: &str,
            data: &[u8],
            expiry: SystemTime,
            owner: Option<&str>,
        ) -> Result<(), Error> {
            crate::AsyncSqliteStore::commit_owned(self, token, data, expiry, owner).await
        }

        async fn create_owned(
            &self,
            token: &str,
            data: &[u8],
            expiry: SystemTime,
            owner: Option<&str>,
        ) -> Result<bool, Error> {
            crate::AsyncSqliteStore::create_owned(self, token, data, expiry, owner).await
        }

        async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool, Error> {
            crate::AsyncSqliteStore::touch(self, token, expiry).await
        }

        async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>, Error> {
            crate::AsyncSqliteStore::list_owner(self, owner, limit).await
        }

        async fn count_owner(&self, owner: &str) -> Result<u64, Error> {
            crate::AsyncSqliteStore::count_owner(self, owner).await
        }

        async fn revoke_owner(&self, owner: &str) -> Result<u64, Error> {
            crate::AsyncSqliteStore::revoke_owner(self, owner).await
        }

        async fn delete(&self, token: &str) -> Result<bool, Error> {
            crate::AsyncSqliteStore::delete(self, token).await
        }

        async fn all(&self) -> Result<HashMap<String, Vec<u8>>, Error> {
            crate::AsyncSqliteStore::all(self).await
        }

        async fn list(&self, limit: usize) -> Result<Vec<Listed>, Error> {
            crate::AsyncSqliteStore::list(self, limit).await
        }

        async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>, Error> {
            crate::AsyncSqliteStore::export_page(self, after, limit).await
        }

        async fn export_page_owned(
            &self,
            after: &str,
            limit: usize,
        ) -> Result<Vec<(Entry, Option<String>)>, Error> {
            crate::AsyncSqliteStore::export_page_owned(self, after, limit).await
        }

        async fn delete_expired(&self) -> Result<u64, Error> {
            Ok(crate::AsyncSqliteStore::delete_expired(self).await?.removed)
        }

        fn stop_cleanup(&self) {
            crate::AsyncSqliteStore::stop_cleanup(self);
        }

        /// The store's injectable clock (see `Builder::clock`).
        fn now(&self) -> SystemTime {
            self.as_sync().now()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retries() {
        assert_eq!(Error::EmptyToken.kind(), ErrorKind::InvalidInput);
        let data = Error::DataTooLarge { len: 2, max: 1 };
        assert_eq!(data.kind(), ErrorKind::InvalidInput);
        assert!(!StoreError::is_retryable(&data));
        let busy = Error::Busy(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(busy.kind(), ErrorKind::Busy);
        assert!(StoreError::is_retryable(&busy));
        let full = Error::DiskFull(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert_eq!(full.kind(), ErrorKind::Io);
        assert!(StoreError::is_retryable(&full));
        let replaced = Error::FileReplaced {
            path: "x.db".into(),
        };
        assert_eq!(replaced.kind(), ErrorKind::Closed);
        assert!(!StoreError::is_retryable(&replaced));
        let schema = Error::SchemaMismatch {
            table: "t".into(),
            reason: "r".into(),
        };
        assert_eq!(schema.kind(), ErrorKind::Schema);
        assert_eq!(Error::Io(std::io::Error::other("x")).kind(), ErrorKind::Io);
    }
}
