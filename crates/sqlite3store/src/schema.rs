//! Every SQL statement the store runs, built once per table name, and the
//! checks that make an opened database fit for use. The statements that
//! name no table (checkpoints, vacuum, the probe) and the PRAGMA names and
//! values the connections set ([`pragma`]) live here too; no other module
//! holds SQL text outside its tests.
//!
//! The table is exactly Go's scs sqlite3store table, so one file serves both:
//! `token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL`, with an
//! index on `expiry`. `expiry` is a Julian day number (see [`crate::julian`]);
//! every query compares the bare column against a bound parameter so SQLite
//! uses the index.
//!
//! One column is ours: a nullable `owner TEXT` with a partial index
//! (`WHERE owner IS NOT NULL`), added to the table when the store opens it
//! for writing (Go's file gets it too: `ALTER TABLE ADD COLUMN` of a
//! nullable column only rewrites the schema, and Go's statements, which name
//! their three columns, leave it NULL).

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

/// Reads the schema table: fails for a file that is not a database.
pub(crate) const PROBE: &str = "SELECT count(*) FROM sqlite_schema";

/// Rebuilds the whole file ([`SqliteStore::vacuum`](crate::SqliteStore::vacuum)).
pub(crate) const VACUUM: &str = "VACUUM";

/// `PRAGMA wal_checkpoint` in one of its modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkpoint {
    /// Copies what it can without waiting for anyone.
    Passive,
    /// Copies everything, waiting for readers, then truncates the WAL.
    Truncate,
}

impl Checkpoint {
    /// The statement; its row is (busy, frames in the WAL, frames copied).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Checkpoint::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            Checkpoint::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        }
    }
}

/// Frees up to `pages` pages from the end of the file (one per step).
pub(crate) fn incremental_vacuum(pages: u64) -> String {
    format!("PRAGMA incremental_vacuum({pages})")
}

/// The PRAGMA names and values the connections set or read (see
/// [`crate::connection`]); run through rusqlite's `pragma_*` calls.
pub(crate) mod pragma {
    pub(crate) const AUTO_VACUUM: &str = "auto_vacuum";
    pub(crate) const INCREMENTAL: &str = "INCREMENTAL";
    pub(crate) const JOURNAL_MODE: &str = "journal_mode";
    pub(crate) const WAL: &str = "WAL";
    pub(crate) const JOURNAL_SIZE_LIMIT: &str = "journal_size_limit";
    pub(crate) const SYNCHRONOUS: &str = "synchronous";
    /// `synchronous` for [`Durability::ProcessCrash`](crate::Durability::ProcessCrash).
    pub(crate) const NORMAL: &str = "NORMAL";
    /// `synchronous` for [`Durability::PowerLoss`](crate::Durability::PowerLoss).
    pub(crate) const FULL: &str = "FULL";
    pub(crate) const CACHE_SIZE: &str = "cache_size";
    pub(crate) const MMAP_SIZE: &str = "mmap_size";
    pub(crate) const PAGE_SIZE: &str = "page_size";
    pub(crate) const PAGE_COUNT: &str = "page_count";
    pub(crate) const MAX_PAGE_COUNT: &str = "max_page_count";
    pub(crate) const FREELIST_COUNT: &str = "freelist_count";
}

/// The longest table name accepted.
const MAX_TABLE_NAME: usize = 64;

/// The statements for one table.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) table: String,
    pub(crate) create_table: String,
    pub(crate) create_index: String,
    /// `?1` token, `?2` now.
    pub(crate) find: String,
    /// `?1` token, `?2` now: data and expiry.
    pub(crate) find_with_expiry: String,
    /// `?1` now.
    pub(crate) all: String,
    /// `?1` token, `?2` data, `?3` expiry. Updates in place (unlike Go's
    /// `REPLACE`, which deletes and re-inserts the row and so rewrites both
    /// indexes); the stored result is the same.
    pub(crate) commit: String,
    /// `?1` token, `?2` data, `?3` expiry, `?4` now, `?5` owner: inserts
    /// unless an active row holds the token (changes() tells which). An
    /// expired row it replaces loses its owner.
    pub(crate) create: String,
    /// `?1` token, `?2` data, `?3` expiry, `?4` owner: [`Sql::commit`]
    /// that also sets the owner.
    pub(crate) commit_owned: String,
    /// `?1` token, `?2` data, `?3` expiry, `?4` now: writes a live row only,
    /// keeping its owner.
    pub(crate) update: String,
    /// `?1` token, `?2` data, `?3` expiry, `?4` now, `?5` owner: writes a
    /// live row only, and sets its owner.
    pub(crate) update_owned: String,
    /// `?1` token, `?2` expiry, `?3` now: moves a live row's expiry.
    pub(crate) touch: String,
    /// `?1` owner, `?2` now, `?3` limit: an owner's live sessions, soonest
    /// to expire first.
    pub(crate) list_owner: String,
    /// `?1` owner, `?2` now.
    pub(crate) count_owner: String,
    /// `?1` owner, `?2` batch size: deletes up to that many of the owner's
    /// rows, live or expired.
    pub(crate) revoke_owner_batch: String,
    /// `?1` now: distinct owners with a live session, and live sessions
    /// with an owner.
    pub(crate) count_owners: String,
    pub(crate) add_owner_column: String,
    pub(crate) create_owner_index: String,
    /// `?1` token.
    pub(crate) delete: String,
    /// `?1` now, `?2` batch size. Picks expired rows through the expiry
    /// index; a row whose expiry is not after now is expired.
    ///
    /// Why this order: a batch's cost is the pages it dirties, and with
    /// random tokens nearly every row deleted dirties its own leaf of the
    /// token index, whatever the order. Measured in WAL pages per 1,000
    /// rows deleted, 100,000 expired rows among 100,000 live ones laid out
    /// as the benchmark does (expiry rising with rowid), 500-row batches:
    /// expiry order (this) 1,127; rowid order the same, 1,127; token order
    /// 1,523, in 2.4x the CPU time, as the table's and the expiry index's
    /// pages then become the random ones. Rowid order writes less only
    /// where expiry and rowid are unrelated (1,862 against 2,197 in
    /// 200-row batches), at the price of reading every live row each run.
    /// Only larger batches write less per row (906 at 2,000 rows, 647 at
    /// 5,000), which is what idle steps do.
    pub(crate) delete_expired_batch: String,
    /// `?1` now.
    pub(crate) count_active: String,
    /// `?1` now.
    pub(crate) count_expired: String,
    /// `?1` now, `?2` limit: tokens and expiries of active sessions,
    /// soonest to expire first.
    pub(crate) list: String,
    /// `?1` now, `?2` after, `?3` limit: active sessions with their data
    /// and expiry, in token order after `?2` (keyset pages through the
    /// primary key).
    pub(crate) export_page: String,
    /// [`Sql::export_page`] with each row's owner, as a fourth column.
    pub(crate) export_page_owned: String,
}

impl Sql {
    /// Builds the statements for `table`, after checking that the name is a
    /// plain identifier (it is also quoted, but a plain name keeps the index
    /// name and error messages readable).
    pub(crate) fn new(table: &str) -> Result<Self> {
        validate_table_name(table)?;
        let t = format!("\"{table}\"");
        let idx = format!("\"{table}_expiry_idx\"");
        let owner_idx = format!("\"{table}_owner_idx\"");
        Ok(Self {
            table: table.to_owned(),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL)"
            ),
            create_index: format!("CREATE INDEX IF NOT EXISTS {idx} ON {t}(expiry)"),
            find: format!("SELECT data FROM {t} WHERE token = ?1 AND expiry > ?2"),
            find_with_expiry: format!("SELECT data, expiry FROM {t} WHERE token = ?1 AND expiry > ?2"),
            all: format!("SELECT token, data FROM {t} WHERE expiry > ?1"),
            commit: format!(
                "INSERT INTO {t} (token, data, expiry) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry"
            ),
            create: format!(
                "INSERT INTO {t} (token, data, expiry, owner) VALUES (?1, ?2, ?3, ?5) \
                 ON CONFLICT(token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry, \
                 owner = excluded.owner WHERE {t}.expiry <= ?4"
            ),
            commit_owned: format!(
                "INSERT INTO {t} (token, data, expiry, owner) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry, \
                 owner = excluded.owner"
            ),
            update: format!(
                "UPDATE {t} SET data = ?2, expiry = ?3 WHERE token = ?1 AND expiry > ?4"
            ),
            update_owned: format!(
                "UPDATE {t} SET data = ?2, expiry = ?3, owner = ?5 WHERE token = ?1 AND expiry > ?4"
            ),
            touch: format!("UPDATE {t} SET expiry = ?2 WHERE token = ?1 AND expiry > ?3"),
            list_owner: format!(
                "SELECT token, expiry FROM {t} WHERE owner = ?1 AND expiry > ?2 ORDER BY expiry LIMIT ?3"
            ),
            count_owner: format!("SELECT count(*) FROM {t} WHERE owner = ?1 AND expiry > ?2"),
            revoke_owner_batch: format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE owner = ?1 LIMIT ?2)"
            ),
            count_owners: format!(
                "SELECT count(DISTINCT owner), count(owner) FROM {t} WHERE owner IS NOT NULL AND expiry > ?1"
            ),
            add_owner_column: format!("ALTER TABLE {t} ADD COLUMN owner TEXT"),
            create_owner_index: format!(
                "CREATE INDEX IF NOT EXISTS {owner_idx} ON {t}(owner) WHERE owner IS NOT NULL"
            ),
            delete: format!("DELETE FROM {t} WHERE token = ?1"),
            delete_expired_batch: format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE expiry <= ?1 LIMIT ?2)"
            ),
            count_active: format!("SELECT count(*) FROM {t} WHERE expiry > ?1"),
            count_expired: format!("SELECT count(*) FROM {t} WHERE expiry <= ?1"),
            list: format!(
                "SELECT token, expiry FROM {t} WHERE expiry > ?1 ORDER BY expiry LIMIT ?2"
            ),
            export_page: format!(
                "SELECT token, data, expiry FROM {t} WHERE token > ?2 AND expiry > ?1 \
                 ORDER BY token LIMIT ?3"
            ),
            export_page_owned: format!(
                "SELECT token, data, expiry, owner FROM {t} WHERE token > ?2 AND expiry > ?1 \
                 ORDER BY token LIMIT ?3"
            ),
        })
    }

    /// Creates the table and its index if they are missing, in one
    /// transaction. Existing tables are left alone (and checked by
    /// [`Sql::verify`]).
    pub(crate) fn create(&self, conn: &mut Connection) -> Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(&self.create_table, [])?;
        tx.execute(&self.create_index, [])?;
        if !self.has_owner_column(&tx)? {
            tx.execute(&self.add_owner_column, [])?;
            tracing::info!(table = %self.table, "added the owner column to the session table");
        }
        tx.execute(&self.create_owner_index, [])?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the table has the `owner` column (a file Go created has not,
    /// until a writable store opens it).
    pub(crate) fn has_owner_column(&self, conn: &Connection) -> Result<bool> {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'owner' COLLATE NOCASE",
            [&self.table],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Checks that the table exists with the columns the store reads and
    /// writes, so a wrong file fails at open rather than at the first query.
    pub(crate) fn verify(&self, conn: &Connection) -> Result<()> {
        if self.verify_if_present(conn)? {
            Ok(())
        } else {
            Err(Error::SchemaMismatch {
                table: self.table.clone(),
                reason: "the table does not exist".into(),
            })
        }
    }

    /// Like [`Sql::verify`], but a missing table is fine (`Ok(false)`): run
    /// before anything is written, so a wrong file is never changed.
    pub(crate) fn verify_if_present(&self, conn: &Connection) -> Result<bool> {
        let mismatch = |reason: String| Error::SchemaMismatch {
            table: self.table.clone(),
            reason,
        };
        let kind: Option<String> = conn
            .query_row(
                "SELECT type FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view')",
                [&self.table],
                |r| r.get(0),
            )
            .optional()?;
        match kind.as_deref() {
            None => return Ok(false),
            Some("table") => {}
            Some(other) => return Err(mismatch(format!("it is a {other}, not a table"))),
        }
        // (name, declared type, notnull, pk)
        let mut stmt = conn.prepare(
            "SELECT name, type, \"notnull\", pk, dflt_value IS NOT NULL FROM pragma_table_info(?1)",
        )?;
        let cols = stmt
            .query_map([&self.table], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let want = [("token", "TEXT"), ("data", "BLOB"), ("expiry", "REAL")];
        for (name, ty) in want {
            let Some(col) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(name)) else {
                return Err(mismatch(format!("column {name:?} is missing")));
            };
            if !col.1.eq_ignore_ascii_case(ty) {
                return Err(mismatch(format!(
                    "column {name:?} is declared {:?}, expected {ty:?}",
                    col.1
                )));
            }
        }
        if let Some(owner) = cols.iter().find(|c| c.0.eq_ignore_ascii_case("owner")) {
            if !owner.1.eq_ignore_ascii_case("TEXT") || owner.2 {
                return Err(mismatch(format!(
                    "column \"owner\" is declared {:?}{}, expected a nullable TEXT",
                    owner.1,
                    if owner.2 { " NOT NULL" } else { "" }
                )));
            }
        }
        let pks: Vec<&str> = cols
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| c.0.as_str())
            .collect();
        if pks.len() != 1 || !pks[0].eq_ignore_ascii_case("token") {
            return Err(mismatch(format!(
                "the primary key must be \"token\" alone, found {pks:?}"
            )));
        }
        if let Some(extra) = cols
            .iter()
            .find(|c| !want.iter().any(|w| c.0.eq_ignore_ascii_case(w.0)) && c.2 && !c.4)
        {
            return Err(mismatch(format!(
                "extra column {:?} is NOT NULL without a default, so rows cannot be written",
                extra.0
            )));
        }
        self.verify_shape(conn).map_err(|e| match e {
            Shape::Wrong(reason) => mismatch(reason),
            Shape::Sqlite(err) => err.into(),
        })?;
        Ok(true)
    }

    /// What the column check cannot see but an operation would trip over:
    /// cleanup deletes by `rowid`, every write must succeed for any token,
    /// data and expiry, and tokens must compare byte for byte.
    fn verify_shape(&self, conn: &Connection) -> Result<(), Shape> {
        let t = &self.table;
        let (kind, without_rowid): (String, bool) = conn.query_row(
            "SELECT type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE",
            [t],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if kind != "table" {
            return Err(Shape::Wrong(format!("it is a {kind} table")));
        }
        if without_rowid {
            return Err(Shape::Wrong(
                "it is a WITHOUT ROWID table; cleanup deletes by rowid".into(),
            ));
        }
        // A user column by one of these names hides the real rowid.
        let shadowed: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_xinfo(?1) WHERE lower(name) IN ('rowid', 'oid', '_rowid_')",
            [t],
            |r| r.get(0),
        )?;
        if shadowed > 0 {
            return Err(Shape::Wrong(
                "a column named rowid, oid or _rowid_ hides the rowid cleanup deletes by".into(),
            ));
        }
        let triggers: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE",
            [t],
            |r| r.get(0),
        )?;
        if triggers > 0 {
            return Err(Shape::Wrong(
                "it has triggers, which could make the store's writes fail".into(),
            ));
        }
        // Every unique index must be on the token alone, compared byte for
        // byte: another would refuse two sessions with equal data or expiry,
        // and a NOCASE token would let one token find another's session.
        let mut indexes =
            conn.prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\"")?;
        let names = indexes
            .query_map([t], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for index in names {
            let key: Vec<(Option<String>, Option<String>)> = conn
                .prepare("SELECT name, coll FROM pragma_index_xinfo(?1) WHERE key")?
                .query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let token_alone = matches!(
                key.as_slice(),
                [(Some(name), Some(coll))]
                    if name.eq_ignore_ascii_case("token") && coll.eq_ignore_ascii_case("BINARY")
            );
            if !token_alone {
                return Err(Shape::Wrong(format!(
                    "unique index {index:?} is not on \"token\" alone with binary collation"
                )));
            }
        }
        Ok(())
    }
}

/// Why [`Sql::verify_shape`] refused a table.
enum Shape {
    Wrong(String),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Shape {
    fn from(err: rusqlite::Error) -> Self {
        Shape::Sqlite(err)
    }
}

fn validate_table_name(table: &str) -> Result<()> {
    let mut chars = table.chars();
    let ok = table.len() <= MAX_TABLE_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !table.to_ascii_lowercase().starts_with("sqlite_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "table name {table:?} must be 1 to {MAX_TABLE_NAME} ASCII letters, digits or underscores, \
             start with a letter or underscore, and not start with \"sqlite_\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        for good in ["sessions", "_s", "Sessions_2"] {
            assert!(Sql::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "sqlite_master",
            "séance",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(Sql::new(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_query_uses_an_index() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        let sql = Sql::new("sessions")?;
        sql.create(&mut conn)?;
        for (stmt, index) in [
            (&sql.find, "sqlite_autoindex_sessions_1"),
            (&sql.find_with_expiry, "sqlite_autoindex_sessions_1"),
            (&sql.delete, "sqlite_autoindex_sessions_1"),
            (&sql.all, "sessions_expiry_idx"),
            (&sql.list, "sessions_expiry_idx"),
            (&sql.count_active, "sessions_expiry_idx"),
            (&sql.count_expired, "sessions_expiry_idx"),
            (&sql.delete_expired_batch, "sessions_expiry_idx"),
            (&sql.update, "sqlite_autoindex_sessions_1"),
            (&sql.update_owned, "sqlite_autoindex_sessions_1"),
            (&sql.touch, "sqlite_autoindex_sessions_1"),
            (&sql.list_owner, "sessions_owner_idx"),
            (&sql.count_owner, "sessions_owner_idx"),
            (&sql.revoke_owner_batch, "sessions_owner_idx"),
            (&sql.count_owners, "sessions_expiry_idx"),
        ] {
            let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {stmt}"))?;
            let args = vec![1.0_f64; explain.parameter_count()];
            let plan: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(args), |r| r.get(3))?
                .collect::<rusqlite::Result<_>>()?;
            let plan = plan.join(" / ");
            assert!(plan.contains(index), "{stmt}: {plan}");
            assert!(!plan.contains("SCAN sessions"), "{stmt}: {plan}");
        }
        Ok(())
    }

    #[test]
    fn go_schema_verifies_and_wrong_ones_do_not() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        let sql = Sql::new("sessions")?;
        assert!(matches!(
            sql.verify(&conn),
            Err(Error::SchemaMismatch { .. })
        ));
        // Exactly what Go's README tells users to run.
        conn.execute_batch(
            "CREATE TABLE sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);
             CREATE INDEX sessions_expiry_idx ON sessions(expiry);",
        )?;
        sql.verify(&conn)?;
        sql.create(&mut conn)?; // idempotent on an existing table

        // Shapes every operation works on are accepted.
        for good in [
            "CREATE TABLE s2 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL) STRICT",
            "CREATE TABLE s2 (token TEXT PRIMARY KEY, data BLOB, expiry REAL, note TEXT)",
            "CREATE TABLE s2 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner TEXT)",
            "CREATE TABLE s2 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL); \
             CREATE INDEX s2_data ON s2(data)",
        ] {
            conn.execute_batch("DROP TABLE IF EXISTS s2")?;
            conn.execute_batch(good)?;
            let s2 = Sql::new("s2")?;
            s2.verify(&conn)?;
            s2.create(&mut conn)?;
            conn.execute(&s2.commit, rusqlite::params!["t", b"d".to_vec(), 1.0])?;
            conn.execute(
                &s2.create,
                rusqlite::params!["u", b"d".to_vec(), 1.0, 0.5, "owner"],
            )?;
            let removed = conn.execute(&s2.delete_expired_batch, rusqlite::params![2.0, 10])?;
            assert_eq!(removed, 2, "{good}");
        }

        for bad in [
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry TEXT NOT NULL)",
            "CREATE TABLE s1 (token TEXT, data BLOB NOT NULL, expiry REAL NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner TEXT NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner TEXT NOT NULL DEFAULT '')",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner INTEGER)",
            // Cleanup deletes by rowid.
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL) WITHOUT ROWID",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, rowid TEXT, oid TEXT, _rowid_ TEXT)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, OID INTEGER)",
            // Writes that fail for some sessions, or tokens that match others.
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL UNIQUE)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL); CREATE UNIQUE INDEX s1_data ON s1(data)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL); CREATE UNIQUE INDEX s1_both ON s1(token, expiry)",
            "CREATE TABLE s1 (token TEXT COLLATE NOCASE PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL); \
             CREATE TRIGGER s1_keep BEFORE DELETE ON s1 BEGIN SELECT RAISE(ABORT, 'no'); END",
            "CREATE VIEW s1 AS SELECT 1", // last: the drop below is for tables
        ] {
            conn.execute_batch("DROP TABLE IF EXISTS s1; DROP VIEW IF EXISTS s1;")?;
            assert!(Sql::new("s1")?.verify_if_present(&conn).is_ok_and(|found| !found));
            conn.execute_batch(bad)?;
            let err = Sql::new("s1")?.verify(&conn).unwrap_err();
            assert!(matches!(err, Error::SchemaMismatch { .. }), "{bad}: {err}");
        }
        Ok(())
    }
}
