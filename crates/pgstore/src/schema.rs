//! Every SQL statement, built once per table name; schema create and verify.
//!
//! The table and schema names are the only text put into SQL; they are
//! validated as plain identifiers and then double-quoted, so no name can
//! change a statement's meaning. Everything else is a bound parameter.

use deadpool_postgres::Client;

use crate::error::{Error, Result};

/// PostgreSQL truncates identifiers at 63 bytes (NAMEDATALEN - 1); the
/// index name adds `_expiry_idx` (11 bytes) to the table's.
pub(crate) const MAX_TABLE_NAME: usize = 63 - 11;
const MAX_SCHEMA_NAME: usize = 63;

/// How the `expiry` column stores time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpiryType {
    /// `TIMESTAMPTZ`, Go postgresstore's current table: an instant.
    WithTimeZone,
    /// `TIMESTAMP` (older copies of Go's README used `TIMESTAMP(6)`): a
    /// wall-clock time without zone, which Go's scs always wrote in UTC
    /// (its deadlines are `time.Now().Add(..).UTC()`). Read and written as
    /// UTC, and compared against the database clock in UTC.
    WithoutTimeZone,
}

impl ExpiryType {
    /// The database's current time, comparable with the column.
    fn now(self) -> &'static str {
        match self {
            ExpiryType::WithTimeZone => "current_timestamp",
            ExpiryType::WithoutTimeZone => "(current_timestamp AT TIME ZONE 'UTC')",
        }
    }

    /// The column's type, for casting a parameter to an array of it.
    fn sql_type(self) -> &'static str {
        match self {
            ExpiryType::WithTimeZone => "timestamptz",
            ExpiryType::WithoutTimeZone => "timestamp",
        }
    }
}

/// Checks a name for use as a quoted identifier.
pub(crate) fn validate_name(what: &str, name: &str, max: usize) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() <= max
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.to_ascii_lowercase().starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{what} name {name:?} must be 1 to {max} ASCII letters, digits or underscores, \
             start with a letter or underscore, and not start with \"pg_\""
        )))
    }
}

/// The table's identity, before its column types are known.
#[derive(Debug, Clone)]
pub(crate) struct TableName {
    /// `"schema"."table"` or `"table"`.
    pub(crate) qualified: String,
    /// The index, in the table's schema.
    index: String,
    /// The partial index on owners, in the table's schema.
    owner_index: String,
}

impl TableName {
    pub(crate) fn new(schema: Option<&str>, table: &str) -> Result<Self> {
        validate_name("table", table, MAX_TABLE_NAME)?;
        if let Some(s) = schema {
            validate_name("schema", s, MAX_SCHEMA_NAME)?;
        }
        let prefix = schema.map(|s| format!("\"{s}\".")).unwrap_or_default();
        Ok(Self {
            qualified: format!("{prefix}\"{table}\""),
            index: format!("\"{table}_expiry_idx\""),
            owner_index: format!("\"{table}_owner_idx\""),
        })
    }

    /// The key of the advisory lock that replicas take in turn for `what`
    /// (schema creation, cleanup) on this table.
    pub(crate) fn lock_name(&self, what: &str) -> String {
        format!("pgstore {what} {}", self.qualified)
    }
}

/// Cleanup's statements that do not name the table: the advisory lock
/// replicas take in turn (keyed by [`TableName::lock_name`]), the wait for
/// it bounded by `lock_timeout` for this transaction only, and the reset
/// of the statement timeout a run set for its connection's session.
pub(crate) mod cleanup {
    /// Waits for the lock, within the transaction's `lock_timeout` (`$1`).
    pub(crate) const SET_LOCK_TIMEOUT: &str = "SELECT set_config('lock_timeout', $1, true)";
    /// Takes the session-level lock on key `$1`, waiting.
    pub(crate) const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended($1, 0))";
    /// Takes the session-level lock on key `$1` if free; returns whether it did.
    pub(crate) const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))";
    /// Releases the lock on key `$1`.
    pub(crate) const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 0))";
    /// Undoes the run's `statement_timeout` before the connection goes back.
    pub(crate) const RESET_STATEMENT_TIMEOUT: &str = "RESET statement_timeout";
}

/// Every statement on the table.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) expiry_type: ExpiryType,
    pub(crate) find: String,
    pub(crate) find_with_expiry: String,
    pub(crate) commit: String,
    pub(crate) create: String,
    pub(crate) delete: String,
    pub(crate) all: String,
    pub(crate) list: String,
    pub(crate) now: String,
    /// The cleanup cutoff (now), and cleanup's statement timeout ($1) set
    /// for the connection's session.
    pub(crate) start_cleanup: String,
    pub(crate) count: String,
    pub(crate) size: String,
    pub(crate) delete_batch: String,
    /// `$1` after, `$2` limit: live sessions with data and expiry, in token
    /// order after `$1` (keyset pages through the primary key).
    pub(crate) export_page: String,
    /// `$1` tokens, `$2` data, `$3` expiries (arrays of one length, tokens
    /// distinct): many upserts in one statement.
    pub(crate) commit_many: String,
    /// `$1` after, `$2` limit: [`Sql::export_page`] with each row's owner.
    pub(crate) export_page_owned: String,
    /// `$1` tokens, `$2` data, `$3` expiries, `$4` owners:
    /// [`Sql::commit_many`] that sets each row's owner.
    pub(crate) commit_many_owned: String,
    /// Reclaims dead rows' space for reuse and refreshes the planner's
    /// statistics; takes no lock that blocks reads or writes.
    pub(crate) vacuum: String,
    /// Whether the table has the `owner` column (always, unless the store
    /// was told not to change the schema and the table predates owners).
    pub(crate) owner_column: bool,
    /// `$1` token, `$2` data, `$3` expiry, `$4` owner.
    pub(crate) commit_owned: String,
    /// `$1` token, `$2` data, `$3` expiry, `$4` owner: [`Sql::create`]
    /// that sets the owner (a replaced expired row loses its own).
    pub(crate) create_owned: String,
    /// `$1` token, `$2` data, `$3` expiry: a live row only, owner kept.
    pub(crate) update: String,
    /// `$1` token, `$2` data, `$3` expiry, `$4` owner: a live row only.
    pub(crate) update_owned: String,
    /// `$1` token, `$2` expiry: a live row's expiry only.
    pub(crate) touch: String,
    /// `$1` owner, `$2` limit.
    pub(crate) list_owner: String,
    /// `$1` owner.
    pub(crate) count_owner: String,
    /// `$1` owner: every row of it, live or expired.
    pub(crate) revoke_owner: String,
    /// Distinct owners with a live session, and live sessions with one.
    pub(crate) count_owners: String,
}

impl Sql {
    pub(crate) fn new(name: &TableName, expiry_type: ExpiryType, owner_column: bool) -> Self {
        let t = &name.qualified;
        let now = expiry_type.now();
        Self {
            expiry_type,
            owner_column,
            commit_owned: format!(
                "INSERT INTO {t} (token, data, expiry, owner) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, \
                 owner = EXCLUDED.owner"
            ),
            create_owned: format!(
                "INSERT INTO {t} AS s (token, data, expiry, owner) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, \
                 owner = EXCLUDED.owner WHERE s.expiry <= {now}"
            ),
            update: format!(
                "UPDATE {t} SET data = $2, expiry = $3 WHERE token = $1 AND {now} < expiry"
            ),
            update_owned: format!(
                "UPDATE {t} SET data = $2, expiry = $3, owner = $4 WHERE token = $1 AND {now} < expiry"
            ),
            touch: format!("UPDATE {t} SET expiry = $2 WHERE token = $1 AND {now} < expiry"),
            list_owner: format!(
                "SELECT token, expiry FROM {t} WHERE owner = $1 AND {now} < expiry \
                 ORDER BY expiry, token LIMIT $2"
            ),
            count_owner: format!("SELECT count(*) FROM {t} WHERE owner = $1 AND {now} < expiry"),
            revoke_owner: format!("DELETE FROM {t} WHERE owner = $1"),
            count_owners: format!(
                "SELECT count(DISTINCT owner), count(owner) FROM {t} \
                 WHERE owner IS NOT NULL AND {now} < expiry"
            ),
            find: format!("SELECT data FROM {t} WHERE token = $1 AND {now} < expiry"),
            find_with_expiry: format!(
                "SELECT data, expiry FROM {t} WHERE token = $1 AND {now} < expiry"
            ),
            commit: format!(
                "INSERT INTO {t} (token, data, expiry) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry"
            ),
            // The conflicting row is locked while the WHERE is checked, so
            // concurrent creates of one token store it once.
            create: format!(
                "INSERT INTO {t} AS s (token, data, expiry) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry \
                 WHERE s.expiry <= {now}"
            ),
            delete: format!("DELETE FROM {t} WHERE token = $1"),
            all: format!("SELECT token, data FROM {t} WHERE {now} < expiry"),
            list: format!(
                "SELECT token, expiry FROM {t} WHERE {now} < expiry ORDER BY expiry, token LIMIT $1"
            ),
            now: format!("SELECT {now}"),
            start_cleanup: format!("SELECT {now}, set_config('statement_timeout', $1, false)"),
            count: format!(
                "SELECT count(*) FILTER (WHERE {now} < expiry), count(*) FILTER (WHERE expiry <= {now}) FROM {t}"
            ),
            size: "SELECT pg_total_relation_size(to_regclass($1))".into(),
            // `= ANY(ARRAY(..))` plans as a TID scan; SKIP LOCKED leaves rows
            // that a commit holds to the next run instead of waiting.
            delete_batch: format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(\
                 SELECT ctid FROM {t} WHERE expiry < $1 ORDER BY expiry LIMIT $2 FOR UPDATE SKIP LOCKED))"
            ),
            export_page: format!(
                "SELECT token, data, expiry FROM {t} WHERE token > $1 AND {now} < expiry \
                 ORDER BY token LIMIT $2"
            ),
            commit_many: format!(
                "INSERT INTO {t} (token, data, expiry) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::{ty}[]) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry",
                ty = expiry_type.sql_type()
            ),
            export_page_owned: format!(
                "SELECT token, data, expiry, owner FROM {t} WHERE token > $1 AND {now} < expiry \
                 ORDER BY token LIMIT $2"
            ),
            commit_many_owned: format!(
                "INSERT INTO {t} (token, data, expiry, owner) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::{ty}[], $4::text[]) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, \
                 owner = EXCLUDED.owner",
                ty = expiry_type.sql_type()
            ),
            vacuum: format!("VACUUM (ANALYZE) {t}"),
        }
    }
}

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) expiry_type: ExpiryType,
    pub(crate) owner_column: bool,
}

/// Creates the table and index unless the table exists (under an advisory
/// lock, so replicas starting together create it once), adds the nullable
/// `owner` column and its partial index when missing, then checks the
/// columns. With `create_if_missing` off, changes nothing: a table without
/// `owner` then works, and owner writes fail with [`Error::SchemaMismatch`].
pub(crate) async fn prepare(
    client: &mut Client,
    name: &TableName,
    create_if_missing: bool,
) -> Result<Shape> {
    if create_if_missing {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&name.lock_name("schema")],
        )
        .await?;
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name.qualified])
            .await?
            .get(0);
        if !exists {
            let t = &name.qualified;
            tx.batch_execute(&format!(
                "CREATE TABLE {t} (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL); \
                 CREATE INDEX {idx} ON {t} (expiry);",
                idx = name.index
            ))
            .await?;
            tracing::info!(table = %t, "created the session table");
        }
        // Only when missing: ALTER TABLE takes a brief exclusive lock, and
        // a nullable column without a default is a catalog change only (no
        // rewrite). Go's statements name their three columns and leave it
        // NULL; its upsert keeps the owner of the row it updates.
        let has_owner: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                 AND attname = 'owner' AND NOT attisdropped)",
                &[&name.qualified],
            )
            .await?
            .get(0);
        if !has_owner {
            tx.batch_execute(&format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS owner TEXT",
                t = name.qualified
            ))
            .await?;
            tracing::info!(table = %name.qualified, "added the owner column to the session table");
        }
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {idx} ON {t} (owner) WHERE owner IS NOT NULL",
            idx = name.owner_index,
            t = name.qualified
        ))
        .await?;
        tx.commit().await?;
    }
    verify(client, name).await
}

async fn verify(client: &Client, name: &TableName) -> Result<Shape> {
    let mismatch = |reason: String| Error::SchemaMismatch {
        table: name.qualified.clone(),
        reason,
    };
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, NULL), \
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid \
                            AND i.indisunique AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum \
                            AND i.indpred IS NULL) \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&name.qualified],
        )
        .await?;
    if rows.is_empty() {
        return Err(mismatch("the table does not exist".into()));
    }
    let column = |col: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == col)
            .map(|r| (r.get::<_, String>(1), r.get::<_, bool>(2)))
    };
    match column("token") {
        Some((ty, unique)) if ty == "text" => {
            if !unique {
                return Err(mismatch(
                    "column token is not the primary key (nor unique)".into(),
                ));
            }
        }
        Some((ty, _)) => return Err(mismatch(format!("column token is {ty}, not text"))),
        None => return Err(mismatch("no column token".into())),
    }
    match column("data") {
        Some((ty, _)) if ty == "bytea" => {}
        Some((ty, _)) => return Err(mismatch(format!("column data is {ty}, not bytea"))),
        None => return Err(mismatch("no column data".into())),
    }
    let expiry_type = match column("expiry") {
        Some((ty, _)) if ty == "timestamp with time zone" => ExpiryType::WithTimeZone,
        Some((ty, _)) if ty == "timestamp without time zone" => ExpiryType::WithoutTimeZone,
        Some((ty, _)) => {
            return Err(mismatch(format!(
                "column expiry is {ty}, not timestamptz or timestamp"
            )))
        }
        None => return Err(mismatch("no column expiry".into())),
    };
    let owner_column = match column("owner") {
        Some((ty, _)) if ty == "text" => true,
        Some((ty, _)) => return Err(mismatch(format!("column owner is {ty}, not text"))),
        None => false,
    };
    if owner_column {
        let not_null: bool = client
            .query_one(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass($1) \
                 AND attname = 'owner' AND NOT attisdropped",
                &[&name.qualified],
            )
            .await?
            .get(0);
        if not_null {
            return Err(mismatch(
                "column owner is NOT NULL; Go's statements leave it empty, so it must be nullable"
                    .into(),
            ));
        }
    }
    Ok(Shape {
        expiry_type,
        owner_column,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_quoted() {
        let n = TableName::new(Some("app"), "sessions").unwrap();
        assert_eq!(n.qualified, "\"app\".\"sessions\"");
        assert_eq!(n.index, "\"sessions_expiry_idx\"");
        for bad in [
            "",
            "a\"b",
            "x; DROP TABLE y",
            "1abc",
            "pg_foo",
            "naïve",
            &"a".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(
                matches!(TableName::new(None, bad), Err(Error::InvalidConfig(_))),
                "{bad:?}"
            );
        }
        assert!(TableName::new(Some("s\"; --"), "t").is_err());
        assert!(TableName::new(None, &"a".repeat(MAX_TABLE_NAME)).is_ok());
    }
}
