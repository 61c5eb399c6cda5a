//! `session_contract`'s conformance harness for both SQLite fronts: a fresh
//! file in a temp dir, the store's manual clock, a second store on the same
//! file, and Go's own SQL to look behind the store's back.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use session_contract::conformance::{Harness, Options, TestResult};
use session_contract::{Entry, Listed, Session, SessionStore};
use sqlite3store::{AsyncSqliteStore, Builder, Error, Result, SqliteStore};

use super::{go_time, Fixture};

/// The synchronous store under the contract: each call runs inline on the
/// test's thread, so the suite exercises `SqliteStore`'s own methods with no
/// thread hop in between (what `AsyncSqliteStore` adds). Fine in a test;
/// an app would block its runtime this way, which is why the crate offers
/// the contract on `AsyncSqliteStore` only.
#[derive(Debug)]
pub struct SyncFront(pub SqliteStore);

impl From<SqliteStore> for SyncFront {
    fn from(store: SqliteStore) -> Self {
        Self(store)
    }
}

#[async_trait::async_trait]
impl SessionStore for SyncFront {
    type Error = Error;

    async fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        self.0.find(token)
    }
    async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>> {
        self.0.find_with_expiry(token)
    }
    async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        self.0.commit(token, data, expiry)
    }
    async fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.0.create(token, data, expiry)
    }
    async fn delete(&self, token: &str) -> Result<bool> {
        self.0.delete(token)
    }
    async fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        self.0.update(token, data, expiry)
    }
    async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.0.update_owned(token, data, expiry, owner)
    }
    async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        self.0.commit_owned(token, data, expiry, owner)
    }
    async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        self.0.create_owned(token, data, expiry, owner)
    }
    async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        self.0.touch(token, expiry)
    }
    async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>> {
        self.0.list_owner(owner, limit)
    }
    async fn count_owner(&self, owner: &str) -> Result<u64> {
        self.0.count_owner(owner)
    }
    async fn revoke_owner(&self, owner: &str) -> Result<u64> {
        self.0.revoke_owner(owner)
    }
    async fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        self.0.all()
    }
    async fn list(&self, limit: usize) -> Result<Vec<Listed>> {
        self.0.list(limit)
    }
    async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>> {
        self.0.export_page(after, limit)
    }
    async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>> {
        self.0.export_page_owned(after, limit)
    }
    async fn delete_expired(&self) -> Result<u64> {
        Ok(self.0.delete_expired()?.removed)
    }
    fn stop_cleanup(&self) {
        self.0.stop_cleanup();
    }
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// One conformance case's world: a temp file, a manual clock, the store.
pub struct SqliteHarness<F> {
    // Declared first so it closes before the temp dir goes.
    store: F,
    options: Options,
    fx: Fixture,
}

pub type SyncHarness = SqliteHarness<SyncFront>;
pub type AsyncHarness = SqliteHarness<AsyncSqliteStore>;

/// The builder for the fixture's file with the case's options.
fn builder(fx: &Fixture, options: &Options) -> Builder {
    let mut b = fx.builder();
    if let Some(every) = options.cleanup_interval {
        b = b.cleanup_interval(every).first_cleanup_delay(every);
    }
    if let Some(rows) = options.cleanup_batch_size {
        b = b.cleanup_batch_size(rows);
    }
    if let Some(bytes) = options.max_token_len {
        b = b.max_token_len(bytes);
    }
    if let Some(bytes) = options.max_data_len {
        b = b.max_data_len(bytes);
    }
    if let Some(key) = &options.hash_key {
        b = b.hash_tokens(key);
    }
    b
}

/// Opens the case's store behind either front: both are made from a
/// `SqliteStore` (the tests' one `Front` trait, which also drives the
/// dynamic cases, is `support::Front`).
fn open<F: From<SqliteStore>>(fx: &Fixture, options: &Options) -> Result<F> {
    builder(fx, options).build().map(F::from)
}

#[async_trait::async_trait]
impl<F> Harness for SqliteHarness<F>
where
    F: SessionStore<Error = Error> + From<SqliteStore>,
{
    type Store = F;

    async fn open(options: Options) -> TestResult<Self> {
        let fx = Fixture::new();
        let store = open(&fx, &options)?;
        Ok(Self { store, options, fx })
    }

    fn store(&self) -> &F {
        &self.store
    }

    fn now(&self) -> SystemTime {
        self.fx.now()
    }

    async fn advance(&self, by: Duration) -> TestResult {
        self.fx.clock.advance(by);
        Ok(())
    }

    async fn second_handle(&self) -> TestResult<F> {
        Ok(open(&self.fx, &self.options)?)
    }

    async fn insert_raw(&self, token: &str, data: &[u8], expiry: SystemTime) -> TestResult {
        // Go's Commit statement, with Go's time format.
        self.fx.raw().execute(
            "REPLACE INTO sessions (token, data, expiry) VALUES (?1, ?2, julianday(?3))",
            rusqlite::params![token, data, go_time(expiry)],
        )?;
        Ok(())
    }

    async fn count_rows(&self) -> TestResult<u64> {
        let n: i64 = self
            .fx
            .raw()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        Ok(u64::try_from(n)?)
    }
}
