//! The systems measured in this process: sqlite3store itself, with group
//! commit (a) and without (a2).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlite3store::{Durability, SqliteStore};

use crate::go_style;
use crate::workload::{self, BoxError, Layer, SeedRow, System, Target, TOKEN_BYTES};
use crate::TokenKey;

/// sqlite3store with default options, except that the cleanup thread is off
/// (the benchmark calls cleanup itself); `group_commit(false)` gives the
/// plain single-writer-mutex variant.
#[derive(Debug)]
pub(crate) struct Ours {
    pub(crate) name: &'static str,
    pub(crate) group_commit: bool,
    /// The default, or `PowerLoss` (an fsync per transaction), where group
    /// commit has the most to share.
    pub(crate) durability: Durability,
}

impl Ours {
    fn builder(&self, path: &Path) -> sqlite3store::Builder {
        SqliteStore::builder(path)
            .cleanup_interval(Duration::ZERO)
            .group_commit(self.group_commit)
            .durability(self.durability)
    }
}

/// What a store with `durability` survives.
pub(crate) fn label(durability: Durability) -> workload::Durability {
    match durability {
        Durability::PowerLoss => workload::Durability::PowerLoss,
        // ProcessCrash, and any mode added later until it is labelled here.
        _ => workload::Durability::ProcessCrash,
    }
}

/// An open sqlite3store.
#[derive(Debug)]
pub(crate) struct OursStore(SqliteStore);

impl System for Ours {
    type Target = OursStore;

    fn name(&self) -> &'static str {
        self.name
    }

    fn durability(&self) -> workload::Durability {
        label(self.durability)
    }

    fn layer(&self) -> Layer {
        Layer::Raw
    }

    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
        // The store sets the file up (WAL, incremental vacuum, table); the
        // rows go in through one plain transaction, with a rollback journal
        // meanwhile so they are not written twice.
        drop(self.builder(path).build()?);
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        go_style::insert_rows(&conn, rows)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(())
    }

    fn open(&self, path: &Path) -> Result<OursStore, BoxError> {
        Ok(OursStore(self.builder(path).build()?))
    }
}

impl Target for OursStore {
    type Key = TokenKey;

    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> TokenKey {
        TokenKey::new(token, data, expiry)
    }

    fn find(&self, key: &TokenKey) -> Result<bool, BoxError> {
        Ok(self.0.find(&key.token)?.is_some())
    }

    fn commit(&self, key: &TokenKey) -> Result<(), BoxError> {
        Ok(self.0.commit(&key.token, &key.data, key.expiry)?)
    }

    fn delete(&self, key: &TokenKey) -> Result<(), BoxError> {
        self.0.delete(&key.token)?;
        Ok(())
    }

    fn all(&self) -> Option<Result<usize, BoxError>> {
        Some(self.0.all().map(|all| all.len()).map_err(Into::into))
    }

    fn cleanup(&self) -> Result<Option<u64>, BoxError> {
        Ok(Some(self.0.delete_expired()?.removed))
    }

    fn count(&self) -> Result<u64, BoxError> {
        let stats = self.0.stats()?;
        Ok(stats.active + stats.expired)
    }
}
