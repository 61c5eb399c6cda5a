//! The command line, as clap parses it.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

/// Examples and exit codes, shown after the options by `--help`.
const AFTER_HELP: &str = "\
Examples:
  sqlite3store --db sessions.db stats
  sqlite3store --db sessions.db stats --json
  sqlite3store --db sessions.db list --limit 20
  sqlite3store --db sessions.db list --full --json
  sqlite3store --db sessions.db show 3f2a9c81d4e6...
  sqlite3store --db sessions.db show 3f2a9c81d4e6... --raw > session.bin
  sqlite3store --db sessions.db revoke 3f2a9c81d4e6... 77b0e5c2a1f9...
  sqlite3store --db sessions.db list --owner 42
  sqlite3store --db sessions.db revoke --owner 42
  sqlite3store --db sessions.db purge
  sqlite3store --db sessions.db vacuum
  sqlite3store --db app.db --table web_sessions list
  sqlite3store --db postgres://app@db.internal/app stats
  sqlite3store --db 'host=/run/postgresql dbname=app' list
  sqlite3store migrate --from sessions.db --to postgres://app@db.internal/app
  SQLITE3STORE_DB=sessions.db sqlite3store stats

--db is a SQLite file, or a PostgreSQL server as a postgres:// URL or a
libpq key=value string (the table is Go scs postgresstore's).
stats, list and show open the file read-only and never write to it (SQLite
may leave its empty -wal and -shm files beside a WAL-mode database); on
PostgreSQL they run in read-only transactions. No command but migrate
(on its --to side) creates a database or a table. Set SQLITE3STORE_LOG (e.g. `debug`) to see
what the store logs; warnings are shown by default.

Exit codes:
  0  success
  1  show: no active session with that token
  2  usage error (bad arguments, missing --db, invalid --table name,
     an unreadable sslrootcert file)
  3  the file is missing, is not a SQLite database, is corrupt, or has no
     session table of the expected schema; or the PostgreSQL server cannot
     be reached, fails TLS (sslmode, sslrootcert) or refuses the login
  4  any other error (database busy, read-only file, I/O, ...)";

/// Inspect and maintain a sqlite3store session database (the file format of
/// Go's scs sqlite3store).
#[derive(Debug, Parser)]
#[command(name = "sqlite3store", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The session database: a SQLite file, or a PostgreSQL `postgres://`
    /// URL or libpq `key=value` string. Required by every command but
    /// `migrate`.
    #[arg(long, env = "SQLITE3STORE_DB", global = true, value_name = "PATH|URL")]
    pub(crate) db: Option<OsString>,

    /// The sessions table.
    #[arg(long, global = true, value_name = "NAME", default_value = "sessions")]
    pub(crate) table: String,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The commands that work on the `--db` file.
    #[command(flatten)]
    Store(StoreCommand),
    /// Copies the active sessions from one store to another (SQLite or
    /// PostgreSQL, either way), keeping tokens, data and expiries; does not
    /// use --db.
    Migrate(MigrateArgs),
}

/// The subcommands that work on the `--db` file.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Counts of active and expired sessions and of owners, file and WAL
    /// sizes, pages.
    Stats(StatsArgs),
    /// Active sessions, soonest to expire first.
    List(ListArgs),
    /// One session's expiry and data; exit code 1 if it is missing or
    /// expired.
    Show(ShowArgs),
    /// Deletes sessions, expired or not, by token or by owner. Tokens that
    /// are not there are reported, not an error.
    Revoke(RevokeArgs),
    /// Deletes every expired session now, in batches, and gives the freed
    /// pages back to the file system if the file uses incremental vacuum.
    Purge,
    /// Rebuilds the file to give all free space back (holds the write lock
    /// while it runs). On PostgreSQL: `VACUUM (ANALYZE)` of the table, which
    /// blocks nothing.
    Vacuum,
}

/// Options of `migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy from (a SQLite path or a PostgreSQL URL/conninfo);
    /// only read.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) from: OsString,
    /// The store to copy to; the file or table is created when missing.
    /// Sessions it holds already are kept, except those with a token the
    /// source has: those take the source's data and expiry.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) to: OsString,
    /// The table on the source side (default: --table).
    #[arg(long, value_name = "NAME")]
    pub(crate) from_table: Option<String>,
    /// The table on the target side (default: --table).
    #[arg(long, value_name = "NAME")]
    pub(crate) to_table: Option<String>,
    /// Sessions read and written per batch.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch_size: u32,
}

/// Options of `stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The most sessions to list.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) limit: usize,
    /// Print whole tokens (they are shortened by default, so a listing
    /// does not leak usable tokens onto the screen or into logs).
    #[arg(long)]
    pub(crate) full: bool,
    /// Print a JSON array of {token, expiry} (expiry in RFC 3339, UTC).
    #[arg(long)]
    pub(crate) json: bool,
    /// Only the sessions of this owner (e.g. a user id an app stored with
    /// `commit_owned` or tower-sessions' `with_owner_key`).
    #[arg(long, value_name = "NAME")]
    pub(crate) owner: Option<String>,
}

/// Options of `show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The session token.
    pub(crate) token: String,
    /// Write the session data, byte for byte, to stdout and nothing else.
    #[arg(long, conflicts_with = "json")]
    pub(crate) raw: bool,
    /// Print JSON: {expiry, data_len, encoding, data}, data as text when it
    /// is printable UTF-8, else as hex.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The tokens of the sessions to delete.
    #[arg(required_unless_present = "owner", value_name = "TOKEN")]
    pub(crate) tokens: Vec<String>,
    /// Instead of tokens: delete every session of this owner ("log out
    /// everywhere").
    #[arg(long, value_name = "NAME", conflicts_with = "tokens")]
    pub(crate) owner: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
