//! [`session_contract::SessionStore`] for [`PgStore`], and the error kinds.

use std::collections::HashMap;
use std::time::SystemTime;

use session_contract::{Entry, ErrorKind, Listed, Session, SessionStore, StoreError};

use crate::error::Error;
use crate::store::PgStore;

impl StoreError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig(_)
            | Error::EmptyToken
            | Error::NulInToken
            | Error::TokenTooLong { .. }
            | Error::DataTooLarge { .. }
            | Error::InvalidOwner(_)
            | Error::RootCertificate { .. } => ErrorKind::InvalidInput,
            Error::SchemaMismatch { .. } => ErrorKind::Schema,
            Error::Connect(_) | Error::ConnectionLost(_) => ErrorKind::ConnectionLost,
            Error::Busy(_) | Error::PoolTimeout(_) => ErrorKind::Busy,
            Error::Closed => ErrorKind::Closed,
            Error::BlockingInAsync => ErrorKind::InvalidInput,
            Error::Runtime(_) => ErrorKind::Io,
            Error::Tls { .. } | Error::Rejected(_) | Error::Postgres(_) => ErrorKind::Other,
        }
    }

    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

#[async_trait::async_trait]
impl SessionStore for PgStore {
    type Error = Error;

    async fn find(&self, token: &str) -> Result<Option<Vec<u8>>, Error> {
        PgStore::find(self, token).await
    }

    async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>, Error> {
        PgStore::find_with_expiry(self, token).await
    }

    async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<(), Error> {
        PgStore::commit(self, token, data, expiry).await
    }

    async fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool, Error> {
        PgStore::create(self, token, data, expiry).await
    }

    async fn delete(&self, token: &str) -> Result<bool, Error> {
        PgStore::delete(self, token).await
    }

    async fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool, Error> {
        PgStore::update(self, token, data, expiry).await
    }

    async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool, Error> {
        PgStore::update_owned(self, token, data, expiry, owner).await
    }

    async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<(), Error> {
        PgStore::commit_owned(self, token, data, expiry, owner).await
    }

    async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool, Error> {
        PgStore::create_owned(self, token, data, expiry, owner).await
    }

    async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool, Error> {
        PgStore::touch(self, token, expiry).await
    }

    async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>, Error> {
        PgStore::list_owner(self, owner, limit).await
    }

    async fn count_owner(&self, owner: &str) -> Result<u64, Error> {
        PgStore::count_owner(self, owner).await
    }

    async fn revoke_owner(&self, owner: &str) -> Result<u64, Error> {
        PgStore::revoke_owner(self, owner).await
    }

    async fn all(&self) -> Result<HashMap<String, Vec<u8>>, Error> {
        PgStore::all(self).await
    }

    async fn list(&self, limit: usize) -> Result<Vec<Listed>, Error> {
        PgStore::list(self, limit).await
    }

    async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>, Error> {
        PgStore::export_page(self, after, limit).await
    }

    async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>, Error> {
        PgStore::export_page_owned(self, after, limit).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        Ok(PgStore::delete_expired(self).await?.removed)
    }

    fn stop_cleanup(&self) {
        PgStore::stop_cleanup(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability_agree() {
        let cases = [
            (Error::EmptyToken, ErrorKind::InvalidInput, false),
            (Error::NulInToken, ErrorKind::InvalidInput, false),
            (
                Error::PoolTimeout(std::time::Duration::from_secs(1)),
                ErrorKind::Busy,
                true,
            ),
            (Error::Connect(None), ErrorKind::ConnectionLost, true),
            (Error::Closed, ErrorKind::Closed, false),
        ];
        for (err, kind, retryable) in cases {
            assert_eq!(StoreError::kind(&err), kind, "{err}");
            assert_eq!(StoreError::is_retryable(&err), retryable, "{err}");
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }
}
