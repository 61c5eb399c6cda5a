//! Why a command failed, how that is told on stderr, and its exit code.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code: `show` found no active session.
const EXIT_NOT_FOUND: u8 = 1;
/// Exit code: bad usage (clap uses it for its own errors too).
const EXIT_USAGE: u8 = 2;
/// Exit code: the file is missing, not a database, corrupt, or has no
/// session table; or the PostgreSQL server cannot be reached.
const EXIT_BAD_FILE: u8 = 3;
/// Exit code: anything else (busy, read-only, I/O).
const EXIT_OTHER: u8 = 4;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The database file does not exist (and is not created).
    #[error("session database {0:?} does not exist")]
    Missing(PathBuf),
    /// The path names a directory.
    #[error("{0:?} is a directory, not a session database")]
    Directory(PathBuf),
    /// `show` found no active session; holds the shortened token.
    #[error("no active session with token {0:?} (missing or expired)")]
    NotFound(String),
    /// A command that writes was given a file it cannot write.
    #[error("session database {0:?} is read-only; this command needs to write it")]
    NotWritable(PathBuf),
    /// The SQLite store failed.
    #[error(transparent)]
    Store(#[from] sqlite3store::Error),
    /// The PostgreSQL store failed.
    #[error(transparent)]
    Postgres(#[from] pgstore::Error),
    /// The runtime that drives PostgreSQL calls could not start or lost a
    /// task.
    #[error("cannot run the PostgreSQL client")]
    Runtime(#[source] io::Error),
    /// `migrate` was given the same store and table on both sides.
    #[error("--from and --to name the same store and table")]
    SameStore,
    /// A migration stopped partway; what it copied stays copied.
    #[error(
        "migration stopped after copying {copied} sessions; \
         run it again to copy the rest (copying again is harmless)"
    )]
    Migration {
        /// Sessions copied by this run before it stopped.
        copied: u64,
        /// Why it stopped.
        #[source]
        cause: Box<Failure>,
    },
    /// Writing to stdout failed.
    #[error("cannot write the output")]
    Output(#[from] io::Error),
}

impl Failure {
    /// Tells the failure on stderr (the error, then each cause) and returns
    /// its exit code. A closed stdout (`sqlite3store list | head`) is not a
    /// failure and is not told.
    pub(crate) fn report(&self) -> ExitCode {
        if matches!(self, Failure::Output(err) if err.kind() == io::ErrorKind::BrokenPipe) {
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {}", sqlite3store::error_chain(self));
        if let Failure::Store(sqlite3store::Error::SchemaMismatch { .. })
        | Failure::Postgres(pgstore::Error::SchemaMismatch { .. }) = self
        {
            eprintln!("hint: check that --db names the right file and --table the right table");
        }
        ExitCode::from(self.exit_code())
    }

    fn exit_code(&self) -> u8 {
        use pgstore::Error as P;
        use sqlite3store::Error as E;
        match self {
            Failure::Migration { cause, .. } => cause.exit_code(),
            Failure::SameStore => EXIT_USAGE,
            Failure::NotFound(_) => EXIT_NOT_FOUND,
            Failure::Store(E::InvalidConfig(_))
            | Failure::Postgres(P::InvalidConfig(_) | P::RootCertificate { .. }) => EXIT_USAGE,
            Failure::Postgres(
                P::Connect(_) | P::Tls { .. } | P::Rejected(_) | P::SchemaMismatch { .. },
            ) => EXIT_BAD_FILE,
            Failure::Missing(_)
            | Failure::Directory(_)
            | Failure::Store(
                E::Open { .. } | E::NotADatabase(_) | E::Corrupt(_) | E::SchemaMismatch { .. },
            ) => EXIT_BAD_FILE,
            _ => EXIT_OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_the_kind_of_failure() {
        let bad_file = Failure::Missing("x.db".into());
        assert_eq!(bad_file.exit_code(), EXIT_BAD_FILE);
        let schema = Failure::Store(sqlite3store::Error::SchemaMismatch {
            table: "sessions".into(),
            reason: "the table does not exist".into(),
        });
        assert_eq!(schema.exit_code(), EXIT_BAD_FILE);
        let usage = Failure::Store(sqlite3store::Error::InvalidConfig("bad".into()));
        assert_eq!(usage.exit_code(), EXIT_USAGE);
        assert_eq!(Failure::NotFound("abc".into()).exit_code(), EXIT_NOT_FOUND);
        let io = Failure::Store(io::Error::other("disk on fire").into());
        assert_eq!(io.exit_code(), EXIT_OTHER);
    }

    #[test]
    fn the_chain_holds_every_cause() {
        let err = Failure::Store(io::Error::other("disk on fire").into());
        assert_eq!(
            sqlite3store::error_chain(&err),
            "i/o on the session database failed: disk on fire"
        );
    }
}
