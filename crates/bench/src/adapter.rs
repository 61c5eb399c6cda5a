//! sqlite3store through tower-sessions: `SqliteSessionStore` driven by the
//! `SessionStore` trait exactly as the peers binary drives
//! tower-sessions-sqlx-store (the same records, the same runtime setup), so
//! the two compare like layers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinSet;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{ExpiredDeletion, SessionStore};
use tower_sessions_sqlite3store::sqlite3store::{Durability, SqliteStore};
use tower_sessions_sqlite3store::SqliteSessionStore;

use crate::go_style;
use crate::workload::{self, BoxError, Layer, SeedRow, System, Target, TOKEN_BYTES};

/// Saves in flight while preloading: enough for group commit to batch.
pub(crate) const PRELOAD_IN_FLIGHT: usize = 256;

/// `SqliteSessionStore` with the core's defaults (its cleanup task off: the
/// benchmark calls cleanup itself), on a multi-thread tokio runtime with
/// default settings, as the peers binary runs sqlx.
#[derive(Debug)]
pub(crate) struct Adapter {
    pub(crate) name: &'static str,
    pub(crate) durability: Durability,
    runtime: Runtime,
}

impl Adapter {
    pub(crate) fn new(name: &'static str, durability: Durability) -> Result<Self, BoxError> {
        Ok(Self {
            name,
            durability,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?,
        })
    }

    async fn open_store(
        path: &Path,
        durability: Durability,
    ) -> Result<SqliteSessionStore, BoxError> {
        let builder = SqliteStore::builder(path)
            .cleanup_interval(Duration::ZERO)
            .durability(durability);
        // Every save writes, as in every other system: the workloads save
        // the same record again and again, which the default expiry write
        // threshold would (rightly) skip, measuring nothing.
        Ok(SqliteSessionStore::new(builder.build_async().await?)
            .with_expiry_write_threshold(0.0)?)
    }
}

/// A record as the peers binary builds it for sqlx.
pub(crate) fn record(token: &[u8; TOKEN_BYTES], data: &[u8], expiry: SystemTime) -> Record {
    Record {
        id: Id(workload::session_id(token)),
        data: HashMap::from([(
            "data".to_owned(),
            serde_json::Value::String(workload::session_value(data)),
        )]),
        expiry_date: OffsetDateTime::from(expiry),
    }
}

/// An open tower-sessions store (ours on SQLite or on PostgreSQL); each
/// call blocks the calling worker on its future.
#[derive(Debug)]
pub(crate) struct TowerTarget<S> {
    pub(crate) store: S,
    pub(crate) runtime: Handle,
}

/// The rows a store holds, live or expired, for the cleanup runner (the
/// `SessionStore` trait has no such call).
pub(crate) trait Rows {
    fn rows(&self, runtime: &Handle) -> Result<u64, BoxError>;
}

impl Rows for SqliteSessionStore {
    fn rows(&self, runtime: &Handle) -> Result<u64, BoxError> {
        let stats = runtime.block_on(self.inner().stats())?;
        Ok(stats.active + stats.expired)
    }
}

/// Saves `live` through `store`, [`PRELOAD_IN_FLIGHT`] at once so group
/// commit batches them: setup, not measured.
pub(crate) fn save_all<S: SessionStore>(
    runtime: &Runtime,
    store: Arc<S>,
    live: Vec<Record>,
) -> Result<(), BoxError> {
    runtime.block_on(async {
        let mut saves = JoinSet::new();
        for record in live {
            if saves.len() >= PRELOAD_IN_FLIGHT {
                if let Some(done) = saves.join_next().await {
                    done??;
                }
            }
            let store = Arc::clone(&store);
            saves.spawn(async move { store.save(&record).await });
        }
        while let Some(done) = saves.join_next().await {
            done??;
        }
        Ok(())
    })
}

impl System for Adapter {
    type Target = TowerTarget<SqliteSessionStore>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn durability(&self) -> workload::Durability {
        crate::ours::label(self.durability)
    }

    fn layer(&self) -> Layer {
        Layer::SessionStore
    }

    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        // Setup, not measured. The store creates the file; every row goes in
        // by plain SQL in one transaction, in the seed's order (so expired
        // rows sit among the live ones as in the other systems' files),
        // under the token the adapter gives its id. The live rows are then
        // saved again through the adapter, many at once so group commit
        // batches them: updated in place, they hold the adapter's own
        // encoding. Expired rows keep the raw bytes, which cleanup never
        // reads.
        drop(
            self.runtime
                .block_on(Self::open_store(path, Durability::ProcessCrash))?,
        );
        let now = SystemTime::now();
        let mut live = Vec::new();
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        go_style::insert_rows_as(&conn, rows, &mut |row| {
            let record = record(&row.token, &row.data, row.expiry);
            let token = record.id.to_string();
            if row.expiry > now {
                live.push(record);
            }
            token
        })?;
        drop(conn);
        let store = self
            .runtime
            .block_on(Self::open_store(path, Durability::ProcessCrash))?;
        save_all(&self.runtime, Arc::new(store), live)
    }

    fn open(&self, path: &Path) -> Result<Self::Target, BoxError> {
        let store = self
            .runtime
            .block_on(Self::open_store(path, self.durability))?;
        Ok(TowerTarget {
            store,
            runtime: self.runtime.handle().clone(),
        })
    }
}

impl<S: SessionStore + ExpiredDeletion + Rows> Target for TowerTarget<S> {
    type Key = Record;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> Record {
        record(token, data, expiry)
    }

    fn find(&self, key: &Record) -> Result<bool, BoxError> {
        Ok(self.runtime.block_on(self.store.load(&key.id))?.is_some())
    }

    fn commit(&self, key: &Record) -> Result<(), BoxError> {
        Ok(self.runtime.block_on(self.store.save(key))?)
    }

    /// `create`: the store's `save` only updates a live session, so a
    /// `save` of a new one would store nothing.
    fn insert(&self, key: &Record) -> Result<(), BoxError> {
        let mut record = key.clone();
        Ok(self.runtime.block_on(self.store.create(&mut record))?)
    }

    fn delete(&self, key: &Record) -> Result<(), BoxError> {
        Ok(self.runtime.block_on(self.store.delete(&key.id))?)
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        None // SessionStore has no such operation.
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        self.runtime.block_on(self.store.delete_expired())?;
        Ok(None) // The trait does not say how many; the runner counts rows.
    }

    fn count(&self) -> Result<u64, BoxError> {
        self.store.rows(&self.runtime)
    }
}
