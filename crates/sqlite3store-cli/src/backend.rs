//! Where the sessions are: a SQLite file or a PostgreSQL table, behind one
//! blocking interface that every command uses.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgstore::tokio_postgres;
use pgstore::PgStore;
use sqlite3store::{Entry, Listed, Session, SqliteStore};

use crate::failure::Failure;

/// Most PostgreSQL connections one command opens (a purge polls the
/// expired count while it runs).
const PG_CONNECTIONS: usize = 2;

/// The longest token a migration target takes (both stores' default); its
/// data limit is the store's ceiling less this, so it takes whatever the
/// source holds.
const TARGET_MAX_TOKEN_LEN: usize = 1024;

/// What a command does to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only: a SQLite file is opened read-only, a PostgreSQL session
    /// is read-only (`default_transaction_read_only`).
    Read,
    /// Writes, but never creates a database or a table.
    Write,
    /// Writes, creating the SQLite file or the table when missing (the
    /// target of a migration).
    Create,
}

/// One exported session (its stored key and the session) and its owner.
pub(crate) type Exported = (Entry, Option<String>);

/// A `--db`, `--from` or `--to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL, or a libpq `key=value`
    /// conninfo (its first word is `name=` and no file of that name exists),
    /// is PostgreSQL; anything else is a SQLite path.
    pub(crate) fn parse(db: &OsStr) -> Self {
        let Some(text) = db.to_str() else {
            return Self::Sqlite(PathBuf::from(db));
        };
        let trimmed = text.trim_start();
        let url = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| trimmed.starts_with(scheme));
        let conninfo = trimmed
            .split_whitespace()
            .next()
            .and_then(|word| word.split_once('='))
            .is_some_and(|(key, _)| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            && !Path::new(text).exists();
        if url || conninfo {
            Self::Postgres(text.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(db))
        }
    }
}

/// An open store of either kind.
#[derive(Debug)]
pub(crate) enum Backend {
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL table, with the runtime its calls block on.
    Postgres(Postgres),
}

/// A PostgreSQL store and the runtime that drives it.
#[derive(Debug)]
pub(crate) struct Postgres {
    store: PgStore,
    runtime: tokio::runtime::Runtime,
}

impl Postgres {
    /// `VACUUM (ANALYZE)` of the table.
    pub(crate) fn vacuum(&self) -> Result<(), Failure> {
        self.block_on(self.store.vacuum())
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = pgstore::Result<T>>,
    ) -> Result<T, Failure> {
        Ok(self.runtime.block_on(f)?)
    }
}

/// [`Backend::stats`]: what each kind can tell.
#[derive(Debug)]
pub(crate) enum StoreStats {
    /// Counts and the file's sizes.
    Sqlite(sqlite3store::Stats),
    /// Counts and the table's size.
    Postgres(pgstore::Stats),
}

impl StoreStats {
    /// Active sessions.
    pub(crate) fn active(&self) -> u64 {
        match self {
            Self::Sqlite(s) => s.active,
            Self::Postgres(s) => s.active,
        }
    }

    /// Expired sessions not yet deleted.
    pub(crate) fn expired(&self) -> u64 {
        match self {
            Self::Sqlite(s) => s.expired,
            Self::Postgres(s) => s.expired,
        }
    }
}

impl Backend {
    /// Opens the store at `location` without a cleanup task. Read access
    /// never writes; write access never creates a database or a table.
    pub(crate) fn open(location: &Location, table: &str, access: Access) -> Result<Self, Failure> {
        match location {
            Location::Sqlite(path) => open_sqlite(path, table, access).map(Self::Sqlite),
            Location::Postgres(conninfo) => {
                open_postgres(conninfo, table, access).map(Self::Postgres)
            }
        }
    }

    /// Counts and sizes.
    pub(crate) fn stats(&self) -> Result<StoreStats, Failure> {
        match self {
            Self::Sqlite(s) => Ok(StoreStats::Sqlite(s.stats()?)),
            Self::Postgres(pg) => pg.block_on(pg.store.stats()).map(StoreStats::Postgres),
        }
    }

    /// Up to `limit` active sessions, soonest to expire first.
    pub(crate) fn list(&self, limit: usize) -> Result<Vec<Listed>, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.list(limit)?),
            Self::Postgres(pg) => pg.block_on(pg.store.list(limit)),
        }
    }

    /// Up to `limit` active sessions of `owner`, soonest to expire first.
    pub(crate) fn list_owner(&self, owner: &str, limit: usize) -> Result<Vec<Listed>, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.list_owner(owner, limit)?),
            Self::Postgres(pg) => pg.block_on(pg.store.list_owner(owner, limit)),
        }
    }

    /// Deletes every session of `owner`, live or expired; how many.
    pub(crate) fn revoke_owner(&self, owner: &str) -> Result<u64, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.revoke_owner(owner)?),
            Self::Postgres(pg) => pg.block_on(pg.store.revoke_owner(owner)),
        }
    }

    /// The data and expiry of the active session `token`.
    pub(crate) fn find_with_expiry(&self, token: &str) -> Result<Option<Session>, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.find_with_expiry(token)?),
            Self::Postgres(pg) => pg.block_on(pg.store.find_with_expiry(token)),
        }
    }

    /// Deletes the session `token`; whether it was there.
    pub(crate) fn delete(&self, token: &str) -> Result<bool, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.delete(token)?),
            Self::Postgres(pg) => pg.block_on(pg.store.delete(token)),
        }
    }

    /// Deletes every expired session; how many, and how long it took.
    pub(crate) fn delete_expired(&self) -> Result<(u64, Duration), Failure> {
        match self {
            Self::Sqlite(s) => {
                let report = s.delete_expired()?;
                Ok((report.removed, report.duration))
            }
            Self::Postgres(pg) => {
                let report = pg.block_on(pg.store.delete_expired())?;
                Ok((report.removed, report.duration))
            }
        }
    }

    /// Up to `limit` active sessions with stored keys after `after`, in key
    /// order, each with its owner (see `SqliteStore::export_page_owned`).
    pub(crate) fn export_page(&self, after: &str, limit: usize) -> Result<Vec<Exported>, Failure> {
        match self {
            Self::Sqlite(s) => Ok(s.export_page_owned(after, limit)?),
            Self::Postgres(pg) => pg.block_on(pg.store.export_page_owned(after, limit)),
        }
    }

    /// Stores every session as given, owner included (an upsert each; the
    /// keys are stored as they are, since neither side hashes them here).
    /// Returns once all are stored; on PostgreSQL in one statement.
    pub(crate) fn commit_all(&self, sessions: &[Exported]) -> Result<(), Failure> {
        match self {
            Self::Sqlite(s) => {
                for (entry, owner) in sessions {
                    let session = &entry.session;
                    s.commit_owned(
                        &entry.token,
                        &session.data,
                        session.expiry,
                        owner.as_deref(),
                    )?;
                }
                Ok(())
            }
            Self::Postgres(pg) => pg.block_on(pg.store.commit_many_owned(sessions)),
        }
    }

    /// A short name of the kind, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

fn open_sqlite(db: &Path, table: &str, access: Access) -> Result<SqliteStore, Failure> {
    // The store would refuse these too; checking first makes the message plain.
    match std::fs::metadata(db) {
        Err(err) if err.kind() == io::ErrorKind::NotFound && access != Access::Create => {
            return Err(Failure::Missing(db.to_path_buf()))
        }
        Ok(meta) if meta.is_dir() => return Err(Failure::Directory(db.to_path_buf())),
        _ => {}
    }
    let mut builder = SqliteStore::builder(db)
        .table(table)
        .cleanup_interval(Duration::ZERO)
        .readers(1)
        .create_if_missing(access == Access::Create);
    if access == Access::Create {
        // A migration target takes whatever the source holds.
        builder = builder
            .max_token_len(TARGET_MAX_TOKEN_LEN)
            .max_data_len(sqlite3store::MAX_DATA_LEN_LIMIT - TARGET_MAX_TOKEN_LEN);
    }
    if access == Access::Read {
        return Ok(builder.read_only(true).build()?);
    }
    let store = builder.build()?;
    if store.is_read_only() {
        return Err(Failure::NotWritable(db.to_path_buf()));
    }
    Ok(store)
}

/// Makes every transaction of a connection read-only, so the server
/// refuses any write.
fn read_only(config: &mut tokio_postgres::Config) {
    let mut options = config.get_options().unwrap_or_default().to_owned();
    options.push_str(" -c default_transaction_read_only=on");
    config.options(options.trim_start());
}

fn open_postgres(conninfo: &str, table: &str, access: Access) -> Result<Postgres, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    // The builder reads the string, TLS settings (sslmode=verify-full,
    // sslrootcert) included.
    let mut builder = PgStore::builder(conninfo)
        .configure(|config| {
            if access == Access::Read {
                read_only(config);
            }
        })
        .table(table)
        .cleanup_interval(Duration::ZERO)
        .pool_size(PG_CONNECTIONS)
        .create_if_missing(access == Access::Create);
    if access == Access::Create {
        // A migration target takes whatever the source holds.
        builder = builder
            .max_token_len(TARGET_MAX_TOKEN_LEN)
            .max_data_len(pgstore::MAX_DATA_LEN_LIMIT - TARGET_MAX_TOKEN_LEN);
    }
    let store = runtime.block_on(builder.build())?;
    Ok(Postgres { store, runtime })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_access_makes_every_transaction_read_only() -> Result<(), Box<dyn std::error::Error>> {
        let mut config: tokio_postgres::Config =
            "host=/tmp dbname=app options='-c work_mem=4MB'".parse()?;
        read_only(&mut config);
        assert_eq!(
            config.get_options(),
            Some("-c work_mem=4MB -c default_transaction_read_only=on")
        );
        let mut config: tokio_postgres::Config = "postgres://app@db/app".parse()?;
        read_only(&mut config);
        assert_eq!(
            config.get_options(),
            Some("-c default_transaction_read_only=on")
        );
        Ok(())
    }

    #[test]
    fn urls_and_conninfo_are_postgres_and_the_rest_is_a_path() {
        let pg = |s: &str| Location::Postgres(s.to_owned());
        let file = |s: &str| Location::Sqlite(PathBuf::from(s));
        for db in [
            "postgres://app@db/app",
            "postgresql://localhost/x?sslmode=disable",
            "host=/tmp dbname=app",
            "dbname=app",
        ] {
            assert_eq!(Location::parse(OsStr::new(db)), pg(db), "{db}");
        }
        for db in [
            "sessions.db",
            "/var/lib/app/sessions.db",
            "./a=b.db x",
            "=x",
            "postgres",
        ] {
            assert_eq!(Location::parse(OsStr::new(db)), file(db), "{db}");
        }
    }
}
