//! The peer side of the sqlite3store benchmark: tower-sessions-sqlx-store's
//! `SqliteStore` and `PostgresStore`, as a user gets them, under the
//! workloads of the `bench-workload` crate (a path dependency, so both sides
//! measure the same way).
//!
//! It lives outside the workspace because sqlx links its own bundled SQLite,
//! which clashes with rusqlite's. The `bench` binary runs it with `--serve`,
//! once per system: the first line on stdin ([`workload::Start`]) names the
//! system and, for `PostgresStore`, the server; then it hands it one cell at
//! a time over stdin and stdout ([`workload::serve`]); progress goes to
//! stderr.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use time::OffsetDateTime;
use tokio::runtime::{Handle, Runtime};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::sqlx::postgres::PgConnectOptions;
use tower_sessions_sqlx_store::sqlx::{self, PgPool, SqlitePool};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use bench_workload as workload;
use workload::{BoxError, Durability, Layer, Runner, Runs, SeedRow, System, Target, TOKEN_BYTES};

/// The SQLite system's name in the results.
const SQLITE_NAME: &str = "tower-sessions-sqlx";
/// The PostgreSQL system's name in the results.
const PG_NAME: &str = "tower-sessions-sqlx postgres";
/// The table `SqliteStore::new` uses.
const TABLE: &str = "tower_sessions";
/// The schema of the PostgreSQL system: its own, so it collides with no
/// `sessions` table (pgstore's, Go's) and no other benchmark table; dropped
/// and made afresh for every preload, and dropped at the end.
const PG_SCHEMA: &str = "bench_sqlx";
/// The table in it: `PostgresStore::new`'s default.
const PG_TABLE: &str = "session";
/// Rows per INSERT statement while preloading SQLite.
const PRELOAD_CHUNK: usize = 100;
/// Rows per INSERT statement while preloading PostgreSQL (through `unnest`).
const PG_PRELOAD_CHUNK: usize = 10_000;

/// tower-sessions-sqlx-store 0.15 with SQLite, on a tokio runtime.
#[derive(Debug)]
struct Sqlx {
    runtime: Runtime,
}

/// tower-sessions-sqlx-store 0.15 with PostgreSQL, on a tokio runtime.
#[derive(Debug)]
struct SqlxPg {
    runtime: Runtime,
    options: PgConnectOptions,
}

/// The pool under a store, for counting rows.
#[derive(Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open store; each call blocks the calling worker on its future, as a
/// request handler awaits it.
#[derive(Debug)]
struct SqlxTarget<St> {
    store: St,
    pool: Pool,
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
    type Target = SqlxTarget<SqliteStore>;

    fn name(&self) -> &'static str {
        SQLITE_NAME
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

    fn open(&self, path: &Path) -> Result<SqlxTarget<SqliteStore>, BoxError> {
        // What the crate's README does: connect with the defaults, migrate.
        self.runtime.block_on(async {
            let pool = SqlitePool::connect(&url(path)).await?;
            let store = SqliteStore::new(pool.clone());
            store.migrate().await?;
            Ok(SqlxTarget {
                store,
                pool: Pool::Sqlite(pool),
                runtime: self.runtime.handle().clone(),
            })
        })
    }
}

/// `PostgresStore` in [`PG_SCHEMA`], on `pool`.
fn pg_store(pool: PgPool) -> Result<PostgresStore, BoxError> {
    Ok(PostgresStore::new(pool).with_schema_name(PG_SCHEMA)?)
}

impl System for SqlxPg {
    type Target = SqlxTarget<PostgresStore>;

    fn name(&self) -> &'static str {
        PG_NAME
    }

    /// PostgreSQL's default `synchronous_commit=on`: the WAL is flushed
    /// before each acknowledgement.
    fn durability(&self) -> Durability {
        Durability::PowerLoss
    }

    fn layer(&self) -> Layer {
        Layer::SessionStore
    }

    /// Drops the schema, migrates afresh and loads `rows`; the path is
    /// unused (the data lives in the server).
    fn create(&self, _: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        self.runtime.block_on(async {
            let pool = PgPool::connect_with(self.options.clone()).await?;
            sqlx::query(&format!(r#"drop schema if exists "{PG_SCHEMA}" cascade"#))
                .execute(&pool)
                .await?;
            pg_store(pool.clone())?.migrate().await?;
            // Setup, not measured: one statement per chunk, one
            // transaction, encoded exactly as the store's save() encodes.
            let sql = format!(
                r#"insert into "{PG_SCHEMA}"."{PG_TABLE}" (id, data, expiry_date)
                   select * from unnest($1::text[], $2::bytea[], $3::timestamptz[])"#
            );
            let mut tx = pool.begin().await?;
            loop {
                let (mut ids, mut datas, mut expiries) = (Vec::new(), Vec::new(), Vec::new());
                for row in (&mut *rows).take(PG_PRELOAD_CHUNK) {
                    let r = record(&row.token, &row.data, row.expiry);
                    ids.push(r.id.to_string());
                    datas.push(rmp_serde::to_vec(&r)?);
                    expiries.push(r.expiry_date);
                }
                if ids.is_empty() {
                    break;
                }
                sqlx::query(&sql)
                    .bind(ids)
                    .bind(datas)
                    .bind(expiries)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            sqlx::query(&format!(r#"analyze "{PG_SCHEMA}"."{PG_TABLE}""#))
                .execute(&pool)
                .await?;
            pool.close().await;
            Ok(())
        })
    }

    fn open(&self, _: &Path) -> Result<SqlxTarget<PostgresStore>, BoxError> {
        // What the crate's README does: connect with the defaults (a pool
        // of 10), migrate.
        self.runtime.block_on(async {
            let pool = PgPool::connect_with(self.options.clone()).await?;
            let store = pg_store(pool.clone())?;
            store.migrate().await?;
            Ok(SqlxTarget {
                store,
                pool: Pool::Postgres(pool),
                runtime: self.runtime.handle().clone(),
            })
        })
    }
}

/// Drops the PostgreSQL system's schema (at the end of the run).
fn drop_pg_schema(options: &PgConnectOptions) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = PgPool::connect_with(options.clone()).await?;
        sqlx::query(&format!(r#"drop schema if exists "{PG_SCHEMA}" cascade"#))
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    })
}

/// sqlx's connect options for `conninfo`: a `postgres://` URL as sqlx
/// parses it, or libpq's key=value form (unquoted values only), as the
/// `bench` binary and `scripts/pg-test-server.sh` pass it.
fn pg_options(conninfo: &str) -> Result<PgConnectOptions, BoxError> {
    let conninfo = conninfo.trim();
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        return Ok(conninfo.parse()?);
    }
    let mut options = PgConnectOptions::new();
    for pair in conninfo.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("conninfo: expected key=value, got {pair:?}"))?;
        if value.contains(['\'', '\\']) {
            return Err(format!(
                "conninfo: quoted values are not supported ({key}); pass a postgres:// URL"
            )
            .into());
        }
        options = match key {
            "host" if value.starts_with('/') => options.socket(value),
            "host" | "hostaddr" => options.host(value),
            "port" => options.port(
                value
                    .parse()
                    .map_err(|e| format!("conninfo: port {value:?}: {e}"))?,
            ),
            "user" => options.username(value),
            "password" => options.password(value),
            "dbname" => options.database(value),
            "application_name" => options.application_name(value),
            "sslmode" => options.ssl_mode(value.parse()?),
            other => return Err(format!("conninfo: unsupported key {other:?}").into()),
        };
    }
    Ok(options)
}

impl<St: SessionStore + ExpiredDeletion> Target for SqlxTarget<St> {
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

    /// `create`, as tower-sessions stores a new session.
    fn insert(&self, key: &SqlxKey) -> Result<(), BoxError> {
        let mut record = key.record.clone();
        Ok(self.runtime.block_on(self.store.create(&mut record))?)
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
        let n: i64 = match &self.pool {
            Pool::Sqlite(pool) => self.runtime.block_on(
                sqlx::query_scalar(&format!("select count(*) from {TABLE}")).fetch_one(pool),
            )?,
            Pool::Postgres(pool) => self.runtime.block_on(
                sqlx::query_scalar(&format!(
                    r#"select count(*) from "{PG_SCHEMA}"."{PG_TABLE}""#
                ))
                .fetch_one(pool),
            )?,
        };
        Ok(u64::try_from(n)?)
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
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    // Set when the PostgreSQL system runs, to drop its schema at the end.
    let mut pg: Option<PgConnectOptions> = None;
    let served = workload::serve(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        |start| -> Result<Box<dyn Runs>, BoxError> {
            let cfg = start.config.clone();
            match start.system.as_str() {
                SQLITE_NAME => Ok(Box::new(Runner::new(
                    Sqlx {
                        runtime: runtime()?,
                    },
                    cfg,
                ))),
                PG_NAME => {
                    let url = start
                        .postgres
                        .as_deref()
                        .ok_or("tower-sessions-sqlx postgres needs a PostgreSQL URL")?;
                    let options = pg_options(url)?;
                    pg = Some(options.clone());
                    Ok(Box::new(Runner::new(
                        SqlxPg {
                            runtime: runtime()?,
                            options,
                        },
                        cfg,
                    )))
                }
                other => Err(format!(
                    "no system {other:?} here; expected {SQLITE_NAME:?} or {PG_NAME:?}"
                )
                .into()),
            }
        },
    );
    // The runner is gone (its pool closed): drop the schema, even after an
    // error.
    let dropped = pg.as_ref().map_or(Ok(()), drop_pg_schema);
    served?;
    dropped.map_err(|err| format!("dropping schema {PG_SCHEMA} failed: {err}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_becomes_sqlx_options() -> Result<(), BoxError> {
        // What scripts/pg-test-server.sh exports.
        let o = pg_options("host=/tmp/pgstore.x user=postgres dbname=postgres")?;
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()),
            Some("/tmp/pgstore.x".to_owned())
        );
        assert_eq!(
            (o.get_username(), o.get_database()),
            ("postgres", Some("postgres"))
        );
        let o = pg_options("host=db.example port=6543 user=app")?;
        assert_eq!((o.get_host(), o.get_port()), ("db.example", 6543));
        assert!(o.get_socket().is_none());
        let o = pg_options("postgres://app@db.example:7000/sessions")?;
        assert_eq!((o.get_host(), o.get_port()), ("db.example", 7000));
        assert_eq!(o.get_database(), Some("sessions"));
        // Clear errors, never a silent default.
        for bad in [
            "host",
            "port=x",
            "password='a b'",
            "target_session_attrs=any",
        ] {
            assert!(pg_options(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
