//! The operations, and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use session_contract::{Entry, Listed, Session, TokenHasher};
use tokio_postgres::types::ToSql;

use crate::builder::{millis_setting, Builder};
use crate::cleanup::{self, CleanupOptions, CleanupReport, Outcome};
use crate::error::{Error, Result};
use crate::schema::{self, Sql, TableName};
use crate::tls;

/// A session store in a PostgreSQL table, sharing Go scs
/// `postgresstore`'s table and semantics.
///
/// Cheap to clone: clones share one pool and one cleanup task. Dropping the
/// last clone stops the task and closes the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// A snapshot of the table and the pool, from [`PgStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions whose expiry is after the database's now.
    pub active: u64,
    /// Expired sessions not yet cleaned up.
    pub expired: u64,
    /// Bytes of the table with its indexes and TOAST data
    /// (`pg_total_relation_size`).
    pub table_bytes: u64,
    /// Connections the pool holds now.
    pub pool_connections: usize,
    /// The most connections the pool may hold.
    pub pool_max: usize,
    /// The last cleanup run of this store (not of other replicas), if any.
    pub last_cleanup: Option<CleanupReport>,
    /// Distinct owners with at least one live session.
    pub owners: u64,
    /// Live sessions that have an owner.
    pub owned: u64,
    /// Expired rows this store's cleanup (task and explicit calls) removed
    /// since it opened.
    pub cleaned_total: u64,
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) sql: Sql,
    pub(crate) name: TableName,
    hasher: Option<TokenHasher>,
    max_token_len: usize,
    max_data_len: usize,
    wait_timeout: Duration,
    pub(crate) cleanup_options: CleanupOptions,
    cleanup_task: Mutex<Option<cleanup::Task>>,
    pub(crate) last_cleanup: Mutex<Option<CleanupReport>>,
    pub(crate) cleaned_total: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.name.qualified)
            .field("expiry_type", &self.sql.expiry_type)
            .field("pool", &self.pool.status())
            .field("token_hashing", &self.hasher.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The latest expiry stored: the end of year 9999, UTC (what sqlite3store
/// clamps to as well). Earlier than 1970 is stored as 1970: expired either
/// way.
const MAX_EXPIRY_SECS: u64 = 253_402_300_799;

fn clamp_expiry(t: SystemTime) -> SystemTime {
    t.clamp(
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(MAX_EXPIRY_SECS),
    )
}

impl PgStore {
    /// Connects to `conninfo` (a `postgres://` URL or a libpq `key=value`
    /// string) and opens the store with every default: table `sessions`,
    /// created when missing, cleanup every 5 minutes. Go's `New`.
    pub async fn new(conninfo: &str) -> Result<Self> {
        Self::builder(conninfo).build().await
    }

    /// Options for a store on `conninfo` (a `postgres://` URL or a libpq
    /// `key=value` string); a malformed string fails at
    /// [`build`](Builder::build).
    pub fn builder(conninfo: &str) -> Builder {
        Builder::new(conninfo)
    }

    /// Options for a store on an already built connection configuration.
    pub fn builder_from_config(config: tokio_postgres::Config) -> Builder {
        Builder::from_config(config)
    }

    pub(crate) async fn open_with(b: Builder) -> Result<Self> {
        let mut config = b.config.map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let name = TableName::new(b.schema.as_deref(), &b.table)?;
        config.connect_timeout(b.connect_timeout);
        if !b.statement_timeout.is_zero() {
            let mut options = config.get_options().unwrap_or_default().to_owned();
            options.push_str(&format!(
                " -c statement_timeout={}",
                millis_setting(b.statement_timeout)
            ));
            config.options(options.trim_start());
        }
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::connector(b.ssl_mode, b.ssl_root_cert.as_deref(), &mut config)? {
            Some(tls) => Manager::from_config(config, tls, manager_config()),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(b.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(b.wait_timeout))
            .create_timeout(Some(b.connect_timeout))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the connection pool: {e}")))?;
        let shape = {
            let mut client = pool
                .get()
                .await
                .map_err(|e| Error::from_pool(e, b.wait_timeout))?;
            schema::prepare(&mut client, &name, b.create_if_missing).await?
        };
        let hasher = b.token_hash_key.as_deref().map(TokenHasher::new);
        let inner = Arc::new(Inner {
            pool,
            sql: Sql::new(&name, shape.expiry_type, shape.owner_column),
            name,
            hasher,
            max_token_len: b.max_token_len,
            max_data_len: b.max_data_len,
            wait_timeout: b.wait_timeout,
            cleanup_options: CleanupOptions {
                batch_size: i64::try_from(b.cleanup_batch_size).unwrap_or(i64::MAX),
                statement_timeout: millis_setting(b.cleanup_statement_timeout),
            },
            cleanup_task: Mutex::new(None),
            last_cleanup: Mutex::new(None),
            cleaned_total: AtomicU64::new(0),
        });
        if !b.cleanup_interval.is_zero() {
            let task = cleanup::Task::spawn(Arc::downgrade(&inner), b.cleanup_interval);
            *inner.lock_task() = Some(task);
        }
        tracing::debug!(table = %inner.name.qualified, ?shape, "session store opened");
        Ok(Self { inner })
    }

    /// The data of the session `token`, or `None` when it is missing or
    /// expired (by the database's clock). An empty, over-long or NUL-holding
    /// token is simply not found.
    pub async fn find(&self, token: &str) -> Result<Option<Vec<u8>>> {
        let Some(key) = self.inner.lookup_key(token) else {
            return Ok(None);
        };
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.find).await?;
        let row = client.query_opt(&stmt, &[&key]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Like [`find`](Self::find), with the session's expiry (to the
    /// microsecond, as PostgreSQL stores it).
    pub async fn find_with_expiry(&self, token: &str) -> Result<Option<Session>> {
        let Some(key) = self.inner.lookup_key(token) else {
            return Ok(None);
        };
        let client = self.inner.client().await?;
        let stmt = client
            .prepare_cached(&self.inner.sql.find_with_expiry)
            .await?;
        let row = client.query_opt(&stmt, &[&key]).await?;
        Ok(row
            .map(|r| Ok::<_, tokio_postgres::Error>(Session::new(r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// Stores `data` under `token` until `expiry`, replacing any session with
    /// that token (an upsert, as Go's `Commit`). An expiry in the past is
    /// stored but never found. Expiries are clamped to 1970..=9999.
    pub async fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<()> {
        self.inner
            .write(&self.inner.sql.commit, token, data, expiry)
            .await
            .map(drop)
    }

    /// [`commit`](Self::commit) for every `(token, session)`, in one
    /// statement (one round trip, one transaction): all are stored or, on an
    /// error, none. Each token and its data is checked as `commit` checks
    /// it; a token given twice is stored with its last session. For bulk
    /// loads such as migrations; keep batches to thousands, not millions.
    pub async fn commit_many(&self, sessions: &[Entry]) -> Result<()> {
        let rows = sessions
            .iter()
            .map(|e| (e.token.as_str(), &e.session, None));
        self.commit_rows(rows, false).await
    }

    /// [`commit_many`](Self::commit_many) that also sets each session's
    /// owner (`None` clears it), as [`commit_owned`](Self::commit_owned)
    /// does: the import side of [`export_page_owned`](Self::export_page_owned).
    pub async fn commit_many_owned(&self, sessions: &[(Entry, Option<String>)]) -> Result<()> {
        let rows = sessions
            .iter()
            .map(|(e, o)| (e.token.as_str(), &e.session, o.as_deref()));
        self.commit_rows(rows, true).await
    }

    /// The one statement of [`commit_many`](Self::commit_many) and
    /// [`commit_many_owned`](Self::commit_many_owned); `owned` picks which.
    async fn commit_rows<'a>(
        &self,
        sessions: impl Iterator<Item = (&'a str, &'a Session, Option<&'a str>)>,
        owned: bool,
    ) -> Result<()> {
        let mut index = HashMap::new();
        let mut keys = Vec::new();
        let mut data = Vec::new();
        let mut expiries = Vec::new();
        let mut owners = Vec::new();
        for (token, session, owner) in sessions {
            let key = self.inner.commit_key(token, &session.data)?;
            let owner = if owned {
                self.inner.check_owner(owner)?
            } else {
                None
            };
            let expiry = clamp_expiry(session.expiry);
            match index.get(&key) {
                Some(&at) => {
                    data[at] = session.data.as_slice();
                    expiries[at] = expiry;
                    owners[at] = owner;
                }
                None => {
                    index.insert(key.clone(), keys.len());
                    keys.push(key);
                    data.push(session.data.as_slice());
                    expiries.push(expiry);
                    owners.push(owner);
                }
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let client = self.inner.client().await?;
        if owned {
            let stmt = client
                .prepare_cached(&self.inner.sql.commit_many_owned)
                .await?;
            client
                .execute(&stmt, &[&keys, &data, &expiries, &owners])
                .await?;
        } else {
            let stmt = client.prepare_cached(&self.inner.sql.commit_many).await?;
            client.execute(&stmt, &[&keys, &data, &expiries]).await?;
        }
        Ok(())
    }

    /// Stores a new session unless a live one holds `token`; returns whether
    /// it was stored. An expired row with that token (not yet cleaned up)
    /// counts as gone and is replaced. One statement (`INSERT ... ON
    /// CONFLICT DO UPDATE ... WHERE` the held row is expired), so of several
    /// replicas creating the same token at once exactly one wins.
    pub async fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        if self.inner.sql.owner_column {
            // Clears the owner of an expired row it replaces.
            return self.create_owned(token, data, expiry, None).await;
        }
        Ok(self
            .inner
            .write(&self.inner.sql.create, token, data, expiry)
            .await?
            > 0)
    }

    /// Like [`create`](Self::create), with an owner (see
    /// [`commit_owned`](Self::commit_owned)).
    pub async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        Ok(self
            .inner
            .write_owned(&self.inner.sql.create_owned, token, data, expiry, owner)
            .await?
            > 0)
    }

    /// Like [`commit`](Self::commit) (an upsert), and sets the session's
    /// owner (`None` clears it), so that [`revoke_owner`](Self::revoke_owner)
    /// can log a user out everywhere. Plain `commit`, like Go's, keeps the
    /// owner of the row it updates. An owner is a non-empty string of at
    /// most [`session_contract::MAX_OWNER_LEN`] bytes without NUL
    /// ([`Error::InvalidOwner`] otherwise).
    pub async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<()> {
        self.inner
            .write_owned(&self.inner.sql.commit_owned, token, data, expiry, owner)
            .await
            .map(drop)
    }

    /// Writes `data` and `expiry` over the session `token` only while it is
    /// live (by the database's clock), keeping its owner; returns false,
    /// writing nothing, when it is missing or expired. One `UPDATE`: a
    /// delete that committed before it never comes back.
    pub async fn update(&self, token: &str, data: &[u8], expiry: SystemTime) -> Result<bool> {
        Ok(self
            .inner
            .write(&self.inner.sql.update, token, data, expiry)
            .await?
            > 0)
    }

    /// Like [`update`](Self::update), and sets the owner (`None` clears it).
    pub async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<bool> {
        Ok(self
            .inner
            .write_owned(&self.inner.sql.update_owned, token, data, expiry, owner)
            .await?
            > 0)
    }

    /// Moves the expiry of the live session `token` without sending or
    /// rewriting its data; returns false, changing nothing, when it is
    /// missing or expired.
    pub async fn touch(&self, token: &str, expiry: SystemTime) -> Result<bool> {
        let Some(key) = self.inner.lookup_key(token) else {
            return Ok(false);
        };
        Ok(self
            .inner
            .execute(&self.inner.sql.touch, &[&key, &clamp_expiry(expiry)])
            .await?
            > 0)
    }

    /// Up to `limit` live sessions of `owner` as [`Listed`] (stored key, expiry),
    /// soonest to expire first. An invalid owner has none.
    pub async fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>> {
        if !self.inner.owner_readable(owner) {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.list_owner).await?;
        let rows = client.query(&stmt, &[&owner, &limit]).await?;
        rows.iter()
            .map(|r| Ok(Listed::new(r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// How many live sessions `owner` has.
    pub async fn count_owner(&self, owner: &str) -> Result<u64> {
        if !self.inner.owner_readable(owner) {
            return Ok(0);
        }
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.count_owner).await?;
        let n: i64 = client.query_one(&stmt, &[&owner]).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes every session of `owner`, live or expired ("log out
    /// everywhere"); returns how many rows it removed. One `DELETE` through
    /// the partial owner index: it locks only that owner's rows, so other
    /// requests go on meanwhile.
    pub async fn revoke_owner(&self, owner: &str) -> Result<u64> {
        if !self.inner.owner_readable(owner) {
            return Ok(0);
        }
        let removed = self
            .inner
            .execute(&self.inner.sql.revoke_owner, &[&owner])
            .await?;
        tracing::debug!(removed, "owner's sessions revoked");
        Ok(removed)
    }

    /// Removes the session `token`; returns whether a row was there (live or
    /// expired). A missing token is not an error.
    pub async fn delete(&self, token: &str) -> Result<bool> {
        let Some(key) = self.inner.lookup_key(token) else {
            return Ok(false);
        };
        Ok(self.inner.execute(&self.inner.sql.delete, &[&key]).await? > 0)
    }

    /// Every live session, token to data; empty when there are none. With
    /// token hashing on, the keys are the stored hashes.
    pub async fn all(&self) -> Result<HashMap<String, Vec<u8>>> {
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.all).await?;
        let rows = client.query(&stmt, &[]).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(r.try_get(0)?, r.try_get(1)?);
        }
        Ok(out)
    }

    /// Up to `limit` live sessions as [`Listed`] (stored key, expiry), soonest to
    /// expire first (ties by key), without their data. For operators'
    /// listings.
    pub async fn list(&self, limit: usize) -> Result<Vec<Listed>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.list).await?;
        let rows = client.query(&stmt, &[&limit]).await?;
        rows.iter()
            .map(|r| Ok(Listed::new(r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Up to `limit` live sessions whose stored key sorts after `after`
    /// (`""` for the first page), in key order, as [`Entry`] (stored key,
    /// [`Session`]): pages through the whole table without holding it in
    /// memory, for exports and migrations. Pass the last key of one page as
    /// `after` to get the next; an empty page is the end.
    pub async fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Entry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.inner.client().await?;
        let stmt = client.prepare_cached(&self.inner.sql.export_page).await?;
        let rows = client.query(&stmt, &[&after, &limit]).await?;
        rows.iter()
            .map(|r| {
                Ok(Entry::new(
                    r.try_get(0)?,
                    Session::new(r.try_get(1)?, r.try_get(2)?),
                ))
            })
            .collect()
    }

    /// [`export_page`](Self::export_page) with each session's owner (`None`
    /// for none, and for every row of a table without the owner column),
    /// for migrations that keep "log out everywhere" working.
    pub async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(Entry, Option<String>)>> {
        if !self.inner.sql.owner_column {
            let page = self.export_page(after, limit).await?;
            return Ok(page.into_iter().map(|e| (e, None)).collect());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.inner.client().await?;
        let stmt = client
            .prepare_cached(&self.inner.sql.export_page_owned)
            .await?;
        let rows = client.query(&stmt, &[&after, &limit]).await?;
        rows.iter()
            .map(|r| {
                let session = Session::new(r.try_get(1)?, r.try_get(2)?);
                Ok((Entry::new(r.try_get(0)?, session), r.try_get(3)?))
            })
            .collect()
    }

    /// Runs `VACUUM (ANALYZE)` on the table: the space of deleted and
    /// updated rows becomes reusable and the planner's statistics are
    /// refreshed. Unlike `VACUUM FULL` it takes no lock that blocks finds or
    /// commits, and it gives space back to the operating system only from
    /// the end of the table.
    pub async fn vacuum(&self) -> Result<()> {
        let client = self.inner.client().await?;
        client.batch_execute(&self.inner.sql.vacuum).await?;
        Ok(())
    }

    /// Deletes every session expired as of now (the database's clock) and
    /// reports how many this call removed. Works in batches of
    /// [`Builder::cleanup_batch_size`] rows, each its own short transaction
    /// under a statement timeout, skipping rows a commit holds. Replicas take
    /// turns through an advisory lock: when another one is cleaning the
    /// table, this waits for it (up to
    /// [`Builder::cleanup_statement_timeout`], then [`Error::Busy`]).
    pub async fn delete_expired(&self) -> Result<CleanupReport> {
        match cleanup::run(&self.inner, true).await? {
            Outcome::Done(report) => Ok(report),
            // Only a cleanup that does not wait gives way.
            Outcome::GaveWay => Ok(CleanupReport::nothing()),
        }
    }

    /// Stops the cleanup task, if one runs. Idempotent; never blocks (a
    /// running batch is abandoned and rolled back).
    pub fn stop_cleanup(&self) {
        self.inner.stop_cleanup();
    }

    /// Closes the store, for this handle and every clone: stops the cleanup
    /// task (a running batch is abandoned and rolled back) and closes the
    /// pool. Idle connections are closed at once; a call running now
    /// finishes, and its connection is closed when it returns. Later calls
    /// through any clone fail with [`Error::Closed`]; closing again returns
    /// `Ok`. Every write acknowledged before is committed on the server, so
    /// there is nothing to flush: this only lets go of the connections
    /// sooner than dropping the last clone would.
    pub async fn close(self) -> Result<()> {
        self.inner.close();
        Ok(())
    }

    /// Row counts, the table's size, the pool and the last cleanup. Counting
    /// reads the whole table: for operators, not request paths.
    pub async fn stats(&self) -> Result<Stats> {
        let inner = &self.inner;
        let client = inner.client().await?;
        let counts = client.query_one(&inner.sql.count, &[]).await?;
        let size = client
            .query_one(&inner.sql.size, &[&inner.name.qualified])
            .await?;
        let (owners, owned) = if inner.sql.owner_column {
            let row = client.query_one(&inner.sql.count_owners, &[]).await?;
            (row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?)
        } else {
            (0, 0)
        };
        let status = inner.pool.status();
        let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Stats {
            active: as_u64(counts.try_get(0)?),
            expired: as_u64(counts.try_get(1)?),
            table_bytes: as_u64(size.try_get(0)?),
            pool_connections: status.size,
            pool_max: status.max_size,
            last_cleanup: *inner.last_cleanup.lock().unwrap_or_else(|e| e.into_inner()),
            cleaned_total: inner.cleaned_total.load(Ordering::Relaxed),
            owners: as_u64(owners),
            owned: as_u64(owned),
        })
    }

    /// The database's current time (`current_timestamp`), the clock that
    /// decides what is live.
    pub async fn now(&self) -> Result<SystemTime> {
        let client = self.inner.client().await?;
        Ok(client
            .query_one(&self.inner.sql.now, &[])
            .await?
            .try_get(0)?)
    }

    /// The table, as quoted in SQL (`"sessions"`, `"app"."sessions"`).
    pub fn table(&self) -> &str {
        &self.inner.name.qualified
    }

    /// The longest token `commit` accepts, in bytes.
    pub fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    /// The largest data `commit` accepts, in bytes.
    pub fn max_data_len(&self) -> usize {
        self.inner.max_data_len
    }
}

impl Inner {
    pub(crate) async fn client(&self) -> Result<Client> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::from_pool(e, self.wait_timeout))
    }

    /// Writes `data` under `token` until `expiry` with `sql` (parameters:
    /// storage key, data, expiry), after the checks every write makes;
    /// returns how many rows it touched.
    async fn write(&self, sql: &str, token: &str, data: &[u8], expiry: SystemTime) -> Result<u64> {
        let key = self.commit_key(token, data)?;
        self.execute(sql, &[&key, &data, &clamp_expiry(expiry)])
            .await
    }

    /// [`write`](Self::write) with the session's owner as a fourth
    /// parameter (`None` clears it), checked first.
    async fn write_owned(
        &self,
        sql: &str,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> Result<u64> {
        let key = self.commit_key(token, data)?;
        let owner = self.check_owner(owner)?;
        self.execute(sql, &[&key, &data, &clamp_expiry(expiry), &owner])
            .await
    }

    /// Runs one write statement on a pooled connection (prepared once per
    /// connection) and returns how many rows it touched.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.execute(&stmt, params).await?)
    }

    fn stop_cleanup(&self) {
        if let Some(task) = self.lock_task().take() {
            task.stop();
        }
    }

    /// What [`PgStore::close`] and dropping the last clone do.
    fn close(&self) {
        self.stop_cleanup();
        self.pool.close();
    }

    fn lock_task(&self) -> std::sync::MutexGuard<'_, Option<cleanup::Task>> {
        self.cleanup_task.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn storage_key(&self, token: &str) -> String {
        match &self.hasher {
            Some(h) => h.hash(token),
            None => token.to_owned(),
        }
    }

    /// The stored key for a read or delete; `None` for a token no commit
    /// could have stored.
    fn lookup_key(&self, token: &str) -> Option<String> {
        let storable =
            !token.is_empty() && token.len() <= self.max_token_len && !token.contains('\0');
        storable.then(|| self.storage_key(token))
    }

    /// Whether reading by `owner` can find anything.
    fn owner_readable(&self, owner: &str) -> bool {
        self.sql.owner_column && session_contract::owner_problem(owner).is_none()
    }

    /// The owner to store, or why it cannot be.
    fn check_owner<'a>(&self, owner: Option<&'a str>) -> Result<Option<&'a str>> {
        if !self.sql.owner_column {
            return Err(Error::SchemaMismatch {
                table: self.name.qualified.clone(),
                reason: format!(
                    "no owner column; open once with create_if_missing on, or run \
                     ALTER TABLE {} ADD COLUMN owner TEXT",
                    self.name.qualified
                ),
            });
        }
        match owner.and_then(session_contract::owner_problem) {
            Some(problem) => Err(Error::InvalidOwner(problem)),
            None => Ok(owner),
        }
    }

    fn commit_key(&self, token: &str, data: &[u8]) -> Result<String> {
        if token.is_empty() {
            return Err(Error::EmptyToken);
        }
        if token.len() > self.max_token_len {
            return Err(Error::TokenTooLong {
                len: token.len(),
                max: self.max_token_len,
            });
        }
        if token.contains('\0') {
            return Err(Error::NulInToken);
        }
        if data.len() > self.max_data_len {
            return Err(Error::DataTooLarge {
                len: data.len(),
                max: self.max_data_len,
            });
        }
        Ok(self.storage_key(token))
    }
}
