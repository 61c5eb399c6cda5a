//! The peer side of the sqlite3store benchmark: tower-sessions-sqlx-store's
//! `SqliteStore`, as a user gets it, under the workloads of the
//! `bench-workload` crate (a path dependency, so both sides measure the same
//! way).
//!
//! It lives outside the workspace because sqlx links its own bundled SQLite,
//! which clashes with rusqlite's. The `bench` binary runs it with `--serve`
//! and hands it one cell at a time over stdin and stdout
//! ([`workload::serve`]); progress goes to stderr.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use time::OffsetDateTime;
use tokio::runtime::{Handle, Runtime};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::sqlx::{self, SqlitePool};
use tower_sessions_sqlx_store::SqliteStore;

use bench_workload as workload;
use workload::{BoxError, Durability, Layer, SeedRow, System, Target, TOKEN_BYTES};

/// The table `SqliteStore::new` uses.
const TABLE: &str = "tower_sessions";
/// Rows per INSERT statement while preloading.
const PRELOAD_CHUNK: usize = 100;

/// tower-sessions-sqlx-store 0.15 with SQLite, on a tokio runtime.
#[derive(Debug)]
struct Sqlx {
    runtime: Runtime,
}

/// An open store; each call blocks the calling worker on its future, as a
/// request handler awaits it.
#[derive(Debug)]
struct SqlxTarget {
    store: SqliteStore,
    pool: SqlitePool,
    runtime: Handle,
}

/// A session record as tower-sessions keeps it: an i128 id, the data in one
/// field, an expiry.
#[derive(Debug)]
struct SqlxKey {
    record: Record,
}

fn url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The record the benchmark's tower-sessions-sqlite3store system builds too.
fn record(token: &[u8; TOKEN_BYTES], data: &[u8], expiry: SystemTime) -> Record {
    Record {
        id: Id(workload::session_id(token)),
        data: HashMap::from([(
            "data".to_owned(),
            serde_json::Value::String(workload::session_value(data)),
        )]),
        expiry_date: OffsetDateTime::from(expiry),
    }
}

impl System for Sqlx {
    type Target = SqlxTarget;

    fn name(&self) -> &'static str {
        "tower-sessions-sqlx"
    }

    /// sqlx 0.8 opens SQLite with a rollback journal and
    /// `synchronous=FULL`: an fsync per commit.
    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::SessionStore
    }

    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        self.runtime.block_on(async {
            let pool = SqlitePool::connect(&url(path)).await?;
            SqliteStore::new(pool.clone()).migrate().await?;
            // Setup, not measured: many rows per statement, one transaction,
            // encoded exactly as the store's save() encodes them.
            let mut tx = pool.begin().await?;
            let mut chunk = Vec::with_capacity(PRELOAD_CHUNK);
            loop {
                chunk.clear();
                chunk.extend((&mut *rows).take(PRELOAD_CHUNK));
                if chunk.is_empty() {
                    break;
                }
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let sql = format!("insert into {TABLE} (id, data, expiry_date) values {values}");
                let mut query = sqlx::query(&sql);
                for row in &chunk {
                    let r = record(&row.token, &row.data, row.expiry);
                    query = query
                        .bind(r.id.to_string())
                        .bind(rmp_serde::to_vec(&r)?)
                        .bind(r.expiry_date);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            pool.close().await;
            Ok(())
        })
    }

    fn open(&self, path: &Path) -> Result<SqlxTarget, BoxError> {
        // What the crate's README does: connect with the defaults, migrate.
        self.runtime.block_on(async {
            let pool = SqlitePool::connect(&url(path)).await?;
            let store = SqliteStore::new(pool.clone());
            store.migrate().await?;
            Ok(SqlxTarget {
                store,
                pool,
                runtime: self.runtime.handle().clone(),
            })
        })
    }
}

impl Target for SqlxTarget {
    type Key = SqlxKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> SqlxKey {
        SqlxKey {
            record: record(token, data, expiry),
        }
    }

    fn find(&self, key: &SqlxKey) -> Result<bool, BoxError> {
        let found = self.runtime.block_on(self.store.load(&key.record.id))?;
        Ok(found.is_some())
    }

    fn commit(&self, key: &SqlxKey) -> Result<(), BoxError> {
        Ok(self.runtime.block_on(self.store.save(&key.record))?)
    }

    fn delete(&self, key: &SqlxKey) -> Result<(), BoxError> {
        Ok(self.runtime.block_on(self.store.delete(&key.record.id))?)
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        None // SessionStore has no such operation.
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        self.runtime.block_on(self.store.delete_expired())?;
        Ok(None) // It does not say how many; the runner counts rows.
    }

    fn count(&self) -> Result<u64, BoxError> {
        let n: i64 = self.runtime.block_on(
            sqlx::query_scalar(&format!("select count(*) from {TABLE}")).fetch_one(&self.pool),
        )?;
        Ok(n as u64)
    }
}

fn main() {
    if let Err(err) = run() {
        eprintln!("bench-peers: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() != Some("--serve") {
        return Err("usage: bench-peers --serve (run by `bench --peers`)".into());
    }
    let system = Sqlx {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    workload::serve(system, std::io::stdin().lock(), std::io::stdout().lock())
}
