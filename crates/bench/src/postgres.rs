//! The PostgreSQL systems (`--postgres URL`): pgstore's `PgStore`, the same
//! through tower-sessions (`ContractStore<PgStore>`), and a go-style
//! baseline, Go scs postgresstore's SQL over a plain deadpool-postgres pool.
//! Each has its own table in the given database, dropped and made afresh for
//! every preload, and dropped at the end.
//!
//! The workloads hand every system a file path; these systems ignore it
//! (their data lives in the server), so the cleanup sizes read 0.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::{Handle, Runtime};
use tokio_postgres::NoTls;
use tower_sessions_contract::ContractStore;

use crate::adapter;
use crate::workload::{BoxError, Durability, Layer, SeedRow, System, Target, TOKEN_BYTES};
use crate::TokenKey;

/// Go's postgresstore statements, `{t}` standing for the table.
const FIND: &str = "SELECT data FROM {t} WHERE token = $1 AND current_timestamp < expiry";
const COMMIT: &str = "INSERT INTO {t} (token, data, expiry) VALUES ($1, $2, $3) \
     ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry";
const DELETE: &str = "DELETE FROM {t} WHERE token = $1";
const ALL: &str = "SELECT token, data FROM {t} WHERE current_timestamp < expiry";
const DELETE_EXPIRED: &str = "DELETE FROM {t} WHERE expiry < current_timestamp";
/// The table Go's README tells users to create.
const SCHEMA: &str = "CREATE TABLE {t} (token TEXT PRIMARY KEY, data BYTEA NOT NULL, \
     expiry TIMESTAMPTZ NOT NULL); CREATE INDEX {t}_expiry_idx ON {t} (expiry);";

/// Table of the pgstore system.
pub(crate) const OURS_TABLE: &str = "bench_pgstore";
/// Table of the go-style system.
pub(crate) const GO_TABLE: &str = "bench_go_style";
/// Table of the tower-sessions-pgstore system.
pub(crate) const ADAPTER_TABLE: &str = "bench_pgstore_ts";

fn sql(template: &str, table: &str) -> String {
    template.replace("{t}", table)
}

fn runtime(threads: usize) -> Result<Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

/// A plain pool of `size` connections to `url`.
fn pool(url: &str, size: usize) -> Result<Pool, BoxError> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// Drops `table` and makes it afresh (Go's schema) holding `rows`: setup,
/// not measured, in batches of 10,000 through `unnest`.
fn load(url: &str, table: &str, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
    load_as(url, table, rows, &mut |row| {
        crate::workload::token_string(&row.token)
    })
}

/// [`load`], each row under the token `token_of` gives it.
fn load_as(
    url: &str,
    table: &str,
    rows: &mut dyn Iterator<Item = SeedRow>,
    token_of: &mut dyn FnMut(&SeedRow) -> String,
) -> Result<(), BoxError> {
    let rt = runtime(1)?;
    rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; {}",
                sql(SCHEMA, table)
            ))
            .await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} (token, data, expiry) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::timestamptz[])"
            ))
            .await?;
        let (mut tokens, mut datas, mut expiries) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            tokens.clear();
            datas.clear();
            expiries.clear();
            for row in rows.by_ref().take(10_000) {
                tokens.push(token_of(&row));
                datas.push(row.data.to_vec());
                expiries.push(row.expiry);
            }
            tx.execute(&insert, &[&tokens, &datas, &expiries]).await?;
        }
        tx.commit().await?;
        client.batch_execute(&format!("ANALYZE {table}")).await?;
        drop(client);
        conn.await??;
        Ok::<_, BoxError>(())
    })
}

/// Drops `table` (at the end of the run).
pub(crate) fn drop_table(url: &str, table: &str) -> Result<(), BoxError> {
    let rt = runtime(1)?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
        drop(client);
        conn.await??;
        Ok::<_, BoxError>(())
    })
}

/// Rows in `table`, through `client`.
async fn count(client: &tokio_postgres::Client, table: &str) -> Result<u64, BoxError> {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    Ok(u64::try_from(n)?)
}

/// pgstore's `PgStore` with its defaults (its cleanup task off: the
/// benchmark calls cleanup itself), through its blocking front.
#[derive(Debug)]
pub(crate) struct PgOurs {
    pub(crate) name: &'static str,
    pub(crate) url: String,
}

/// An open `PgStore`, and a pool for counting rows.
#[derive(Debug)]
pub(crate) struct PgOursStore {
    store: pgstore::BlockingPgStore,
}

impl System for PgOurs {
    type Target = PgOursStore;

    fn name(&self) -> &'static str {
        self.name
    }

    /// PostgreSQL's default `synchronous_commit=on`: WAL flushed before
    /// each acknowledgement.
    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::Raw
    }

    fn create(
        &self,
        _path: &std::path::Path,
        rows: &mut dyn Iterator<Item = SeedRow>,
    ) -> Result<(), BoxError> {
        load(&self.url, OURS_TABLE, rows)
    }

    fn open(&self, _path: &std::path::Path) -> Result<PgOursStore, BoxError> {
        let store = pgstore::PgStore::builder(&self.url)
            .table(OURS_TABLE)
            .cleanup_interval(Duration::ZERO)
            .build_blocking()?;
        Ok(PgOursStore { store })
    }
}

impl Target for PgOursStore {
    type Key = TokenKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> TokenKey {
        TokenKey::new(token, data, expiry)
    }

    fn find(&self, key: &TokenKey) -> Result<bool, BoxError> {
        Ok(self.store.find(&key.token)?.is_some())
    }

    fn commit(&self, key: &TokenKey) -> Result<(), BoxError> {
        Ok(self.store.commit(&key.token, &key.data, key.expiry)?)
    }

    fn delete(&self, key: &TokenKey) -> Result<(), BoxError> {
        self.store.delete(&key.token)?;
        Ok(())
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        Some(self.store.all().map(|all| all.len()).map_err(Into::into))
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        Ok(Some(self.store.delete_expired()?.removed))
    }

    fn count(&self) -> Result<u64, BoxError> {
        let stats = self.store.stats()?;
        Ok(stats.active + stats.expired)
    }
}

/// pgstore through tower-sessions: `ContractStore<PgStore>` (pgstore's
/// defaults, its cleanup task off) driven by the `SessionStore` trait
/// exactly as the peers binary drives tower-sessions-sqlx-store's
/// `PostgresStore`: the same records, the same runtime setup.
#[derive(Debug)]
pub(crate) struct PgAdapter {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    runtime: Runtime,
}

impl PgAdapter {
    pub(crate) fn new(name: &'static str, url: &str) -> Result<Self, BoxError> {
        Ok(Self {
            name,
            url: url.to_owned(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?,
        })
    }

    async fn open_store(&self) -> Result<ContractStore<pgstore::PgStore>, BoxError> {
        let store = pgstore::PgStore::builder(&self.url)
            .table(ADAPTER_TABLE)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?;
        // Every save writes, as in every other system (see the SQLite
        // adapter system): the workloads save unchanged records.
        Ok(ContractStore::new(store).with_expiry_write_threshold(0.0)?)
    }
}

impl adapter::Rows for ContractStore<pgstore::PgStore> {
    fn rows(&self, runtime: &Handle) -> Result<u64, BoxError> {
        let stats = runtime.block_on(self.inner().stats())?;
        Ok(stats.active + stats.expired)
    }
}

impl System for PgAdapter {
    type Target = adapter::TowerTarget<ContractStore<pgstore::PgStore>>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::SessionStore
    }

    /// Every row goes in by plain SQL under the token the store gives its
    /// id; the live ones are then saved again through the store, many at
    /// once, so they hold its own encoding (expired rows keep the raw
    /// bytes, which cleanup never reads). Setup, not measured.
    fn create(
        &self,
        _path: &std::path::Path,
        rows: &mut dyn Iterator<Item = SeedRow>,
    ) -> Result<(), BoxError> {
        let now = SystemTime::now();
        let mut live = Vec::new();
        load_as(&self.url, ADAPTER_TABLE, rows, &mut |row| {
            let record = adapter::record(&row.token, &row.data, row.expiry);
            let token = record.id.to_string();
            if row.expiry > now {
                live.push(record);
            }
            token
        })?;
        let store = self.runtime.block_on(self.open_store())?;
        adapter::save_all(&self.runtime, std::sync::Arc::new(store), live)
    }

    fn open(&self, _path: &std::path::Path) -> Result<Self::Target, BoxError> {
        Ok(adapter::TowerTarget {
            store: self.runtime.block_on(self.open_store())?,
            runtime: self.runtime.handle().clone(),
        })
    }
}

/// Go scs postgresstore reproduced: its SQL, each call an unnamed statement
/// parsed and executed (as lib/pq does with arguments; nothing cached),
/// over a deadpool-postgres pool as large as the most workers in the run
/// (`database/sql` grows without a limit by default).
#[derive(Debug)]
pub(crate) struct PgGoStyle {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    pub(crate) pool_size: usize,
}

/// An open go-style store: its runtime and pool.
pub(crate) struct PgGoStyleDb {
    // Dropped before the runtime.
    pool: Pool,
    rt: Runtime,
    find: String,
    commit: String,
    delete: String,
    all: String,
    delete_expired: String,
}

impl std::fmt::Debug for PgGoStyleDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgGoStyleDb").finish_non_exhaustive()
    }
}

impl System for PgGoStyle {
    type Target = PgGoStyleDb;

    fn name(&self) -> &'static str {
        self.name
    }

    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::Raw
    }

    fn create(
        &self,
        _path: &std::path::Path,
        rows: &mut dyn Iterator<Item = SeedRow>,
    ) -> Result<(), BoxError> {
        load(&self.url, GO_TABLE, rows)
    }

    fn open(&self, _path: &std::path::Path) -> Result<PgGoStyleDb, BoxError> {
        // The same runtime shape as BlockingPgStore's: one worker thread,
        // each benchmark worker blocking on its own call.
        let rt = runtime(1)?;
        let pool = {
            let _guard = rt.enter();
            pool(&self.url, self.pool_size)?
        };
        let db = PgGoStyleDb {
            pool,
            rt,
            find: sql(FIND, GO_TABLE),
            commit: sql(COMMIT, GO_TABLE),
            delete: sql(DELETE, GO_TABLE),
            all: sql(ALL, GO_TABLE),
            delete_expired: sql(DELETE_EXPIRED, GO_TABLE),
        };
        // Like Ping: one connection now.
        db.rt.block_on(async { db.pool.get().await.map(drop) })?;
        Ok(db)
    }
}

impl Target for PgGoStyleDb {
    type Key = TokenKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> TokenKey {
        TokenKey::new(token, data, expiry)
    }

    fn find(&self, key: &TokenKey) -> Result<bool, BoxError> {
        self.rt.block_on(async {
            let client = self.pool.get().await?;
            let row = client.query_opt(self.find.as_str(), &[&key.token]).await?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)).is_some())
        })
    }

    fn commit(&self, key: &TokenKey) -> Result<(), BoxError> {
        self.rt.block_on(async {
            let client = self.pool.get().await?;
            client
                .execute(
                    self.commit.as_str(),
                    &[&key.token, &&key.data[..], &key.expiry],
                )
                .await?;
            Ok(())
        })
    }

    fn delete(&self, key: &TokenKey) -> Result<(), BoxError> {
        self.rt.block_on(async {
            let client = self.pool.get().await?;
            client.execute(self.delete.as_str(), &[&key.token]).await?;
            Ok(())
        })
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        Some(self.rt.block_on(async {
            let client = self.pool.get().await?;
            let rows = client.query(self.all.as_str(), &[]).await?;
            let mut sessions = std::collections::HashMap::with_capacity(rows.len());
            for row in rows {
                sessions.insert(row.try_get::<_, String>(0)?, row.try_get::<_, Vec<u8>>(1)?);
            }
            Ok(sessions.len())
        }))
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        self.rt.block_on(async {
            let client = self.pool.get().await?;
            Ok(Some(
                client.execute(self.delete_expired.as_str(), &[]).await?,
            ))
        })
    }

    fn count(&self) -> Result<u64, BoxError> {
        self.rt.block_on(async {
            let client = self.pool.get().await?;
            count(&client, GO_TABLE).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{seed_rows, token_string};

    /// The server from `scripts/pg-test-server.sh`, or `None` (a skip
    /// locally; under `CI` the test fails instead).
    fn url() -> Option<String> {
        match std::env::var("PGSTORE_TEST_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PGSTORE_TEST_URL is not set; run under scripts/pg-test-server.sh"
                );
                eprintln!("skipped: PGSTORE_TEST_URL is not set (scripts/pg-test-server.sh)");
                None
            }
        }
    }

    /// Both systems answer the workloads' calls as Go's store would, on
    /// their own tables: preloaded rows found, expired ones not, commits
    /// upserted, deletes and cleanup removing what they should.
    #[test]
    fn both_systems_do_what_the_workloads_expect() -> Result<(), BoxError> {
        let Some(url) = url() else { return Ok(()) };
        let path = std::path::Path::new("unused");
        let ours = PgOurs {
            name: "pgstore",
            url: url.clone(),
        };
        let go = PgGoStyle {
            name: "go-style postgres",
            url: url.clone(),
            pool_size: 4,
        };
        check(&ours, path)?;
        check(&go, path)?;
        drop_table(&url, OURS_TABLE)?;
        drop_table(&url, GO_TABLE)?;
        Ok(())
    }

    /// The tower-sessions system finds its preloaded live records (saved
    /// through the store), not the expired ones, and saves, deletes and
    /// cleans up through the trait.
    #[test]
    fn the_tower_sessions_system_does_what_the_workloads_expect() -> Result<(), BoxError> {
        let Some(url) = url() else { return Ok(()) };
        let path = std::path::Path::new("unused");
        let system = PgAdapter::new("tower-sessions-pgstore", &url)?;
        let rows: Vec<SeedRow> = seed_rows(9, 20, 5).collect();
        system.create(path, &mut seed_rows(9, 20, 5))?;
        let db = system.open(path)?;
        assert_eq!(db.count()?, 25);
        let now = SystemTime::now();
        let key = |r: &SeedRow| db.key(&r.token, &Arc::from(&r.data[..]), r.expiry);
        let live: Vec<&SeedRow> = rows.iter().filter(|r| r.expiry > now).collect();
        for row in &live {
            assert!(db.find(&key(row))?);
        }
        let dead = rows.iter().find(|r| r.expiry < now).ok_or("no dead row")?;
        assert!(!db.find(&key(dead))?);
        let fresh = db.key(
            &[7; TOKEN_BYTES],
            &Arc::from(&[1u8; 256][..]),
            now + Duration::from_secs(600),
        );
        assert!(!db.find(&fresh)?);
        // A save of a new session stores nothing; a create does.
        db.commit(&fresh)?;
        assert!(!db.find(&fresh)?);
        db.insert(&fresh)?;
        assert!(db.find(&fresh)?);
        db.delete(&key(live[0]))?;
        assert!(!db.find(&key(live[0]))?);
        assert!(db.all().is_none());
        assert_eq!(db.cleanup()?, None);
        assert_eq!(db.count()?, 20);
        drop(db);
        drop_table(&url, ADAPTER_TABLE)?;
        Ok(())
    }

    fn check<S: System>(system: &S, path: &std::path::Path) -> Result<(), BoxError>
    where
        S::Target: Target<Key = TokenKey>,
    {
        let rows: Vec<SeedRow> = seed_rows(7, 20, 5).collect();
        system.create(path, &mut seed_rows(7, 20, 5))?;
        let db = system.open(path)?;
        assert_eq!(db.count()?, 25, "{}", system.name());
        let live = rows
            .iter()
            .find(|r| r.expiry > SystemTime::now())
            .ok_or("no live row")?;
        let dead = rows
            .iter()
            .find(|r| r.expiry < SystemTime::now())
            .ok_or("no dead row")?;
        let key = |r: &SeedRow| db.key(&r.token, &Arc::from(&r.data[..]), r.expiry);
        assert!(db.find(&key(live))?, "{}", system.name());
        assert!(!db.find(&key(dead))?, "{}", system.name());
        assert_eq!(db.all().transpose()?, Some(20), "{}", system.name());
        // Commit an expired row again with a future expiry: an upsert.
        let revived = db.key(
            &dead.token,
            &Arc::from(&dead.data[..]),
            SystemTime::now() + Duration::from_secs(600),
        );
        db.commit(&revived)?;
        assert!(db.find(&revived)?, "{}", system.name());
        db.delete(&key(live))?;
        assert!(!db.find(&key(live))?, "{}", system.name());
        assert_eq!(db.cleanup()?, Some(4), "{}", system.name());
        assert_eq!(db.count()?, 20, "{}", system.name());
        assert_eq!(token_string(&live.token).len(), 43);
        Ok(())
    }
}
