//! Every SQL statement the store runs, built once per table name, and the
//! checks that make an opened database fit for use.
//!
//! The table is exactly Go's scs sqlite3store table, so one file serves both:
//! `token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL`, with an
//! index on `expiry`. `expiry` is a Julian day number (see [`crate::julian`]);
//! every query compares the bare column against a bound parameter so SQLite
//! uses the index.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};

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
    /// `?1` token, `?2` data, `?3` expiry, `?4` now: inserts unless an
    /// active row holds the token (changes() tells which).
    pub(crate) create: String,
    /// `?1` token.
    pub(crate) delete: String,
    /// `?1` now, `?2` batch size. Picks expired rows through the expiry
    /// index; a row whose expiry is not after now is expired.
    pub(crate) delete_expired_batch: String,
    /// `?1` now.
    pub(crate) count_active: String,
    /// `?1` now.
    pub(crate) count_expired: String,
    /// `?1` now, `?2` limit: tokens and expiries of active sessions,
    /// soonest to expire first.
    pub(crate) list: String,
}

impl Sql {
    /// Builds the statements for `table`, after checking that the name is a
    /// plain identifier (it is also quoted, but a plain name keeps the index
    /// name and error messages readable).
    pub(crate) fn new(table: &str) -> Result<Self> {
        validate_table_name(table)?;
        let t = format!("\"{table}\"");
        let idx = format!("\"{table}_expiry_idx\"");
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
                "INSERT INTO {t} (token, data, expiry) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry \
                 WHERE {t}.expiry <= ?4"
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
        })
    }

    /// Creates the table and its index if they are missing, in one
    /// transaction. Existing tables are left alone (and checked by
    /// [`Sql::verify`]).
    pub(crate) fn create(&self, conn: &mut Connection) -> Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(&self.create_table, [])?;
        tx.execute(&self.create_index, [])?;
        tx.commit()?;
        Ok(())
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
        Ok(true)
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

        for bad in [
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry TEXT NOT NULL)",
            "CREATE TABLE s1 (token TEXT, data BLOB NOT NULL, expiry REAL NOT NULL)",
            "CREATE TABLE s1 (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL, owner TEXT NOT NULL)",
            "CREATE VIEW s1 AS SELECT 1",
        ] {
            conn.execute_batch("DROP TABLE IF EXISTS s1; DROP VIEW IF EXISTS s1;")?;
            conn.execute_batch(bad)?;
            let err = Sql::new("s1")?.verify(&conn).unwrap_err();
            assert!(matches!(err, Error::SchemaMismatch { .. }), "{bad}: {err}");
        }
        Ok(())
    }
}
