//! One function per subcommand, on whichever backend `--db` names.

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use clap::error::ErrorKind;
use clap::CommandFactory;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlite3store::{Session, Stats};

use crate::backend::{Access, Backend, Location, StoreStats};

use crate::cli::{Cli, Command, ListArgs, RevokeArgs, ShowArgs, StatsArgs, StoreCommand};
use crate::failure::Failure;
use crate::migrate;
use crate::output::{self, Data};

/// How often `purge` redraws its progress from the expired count.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// Runs the command the command line names, writing its output to stdout.
pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let command = match cli.command {
        Command::Store(command) => command,
        Command::Migrate(args) => return migrate::run(&args, &cli.table),
    };
    let Some(db) = cli.db else {
        Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--db <PATH|URL> (or SQLITE3STORE_DB) is required",
            )
            .exit()
    };
    let access = match command {
        StoreCommand::Stats(_) | StoreCommand::List(_) | StoreCommand::Show(_) => Access::Read,
        StoreCommand::Revoke(_) | StoreCommand::Purge | StoreCommand::Vacuum => Access::Write,
    };
    let store = Backend::open(&Location::parse(&db), &cli.table, access)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let out: &mut dyn Write = &mut out;
    match command {
        StoreCommand::Stats(args) => stats(&store, &args, out),
        StoreCommand::List(args) => list(&store, &args, out),
        StoreCommand::Show(args) => show(&store, &args, out),
        StoreCommand::Revoke(args) => revoke(&store, &args, out),
        StoreCommand::Purge => purge(&store, out),
        StoreCommand::Vacuum => vacuum(store, out),
    }?;
    out.flush()?;
    Ok(())
}

/// `stats`, as printed by `--json`.
#[derive(Debug, Serialize)]
struct StatsView {
    active: u64,
    expired: u64,
    file_size: u64,
    wal_size: u64,
    page_size: u64,
    page_count: u64,
    free_pages: u64,
    incremental_vacuum: bool,
    owners: u64,
    owned: u64,
}

impl From<&Stats> for StatsView {
    fn from(s: &Stats) -> Self {
        Self {
            active: s.active,
            expired: s.expired,
            file_size: s.file_size,
            wal_size: s.wal_size,
            page_size: s.page_size,
            page_count: s.page_count,
            free_pages: s.free_pages,
            incremental_vacuum: s.incremental_vacuum,
            owners: s.owners,
            owned: s.owned,
        }
    }
}

/// `stats --json` of a PostgreSQL table.
#[derive(Debug, Serialize)]
struct PgStatsView {
    active: u64,
    expired: u64,
    table_bytes: u64,
}

fn stats(store: &Backend, args: &StatsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let s = match store.stats()? {
        StoreStats::Sqlite(s) => s,
        StoreStats::Postgres(s) => return pg_stats(&s, args, out),
    };
    if args.json {
        output::json(out, &StatsView::from(&s))?;
        return Ok(());
    }
    let on_off = if s.incremental_vacuum { "on" } else { "off" };
    writeln!(out, "active sessions:    {}", s.active)?;
    writeln!(out, "expired sessions:   {}", s.expired)?;
    writeln!(
        out,
        "owners:             {} (owning {} active sessions)",
        s.owners, s.owned
    )?;
    writeln!(out, "file size:          {}", output::bytes(s.file_size))?;
    writeln!(out, "WAL size:           {}", output::bytes(s.wal_size))?;
    writeln!(out, "page size:          {}", output::bytes(s.page_size))?;
    writeln!(
        out,
        "pages:              {} ({} free)",
        s.page_count, s.free_pages
    )?;
    writeln!(out, "incremental vacuum: {on_off}")?;
    Ok(())
}

fn pg_stats(s: &pgstore::Stats, args: &StatsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if args.json {
        let view = PgStatsView {
            active: s.active,
            expired: s.expired,
            table_bytes: s.table_bytes,
        };
        output::json(out, &view)?;
        return Ok(());
    }
    writeln!(out, "active sessions:    {}", s.active)?;
    writeln!(out, "expired sessions:   {}", s.expired)?;
    writeln!(out, "table size:         {}", output::bytes(s.table_bytes))?;
    Ok(())
}

/// One session of `list --json`.
#[derive(Debug, Serialize)]
struct ListEntry<'a> {
    token: &'a str,
    expiry: String,
}

fn list(store: &Backend, args: &ListArgs, out: &mut dyn Write) -> Result<(), Failure> {
    // One more than asked, to tell whether the listing is cut short.
    let mut sessions = match &args.owner {
        Some(owner) => store.list_owner(owner, args.limit.saturating_add(1))?,
        None => store.list(args.limit.saturating_add(1))?,
    };
    let more = sessions.len() > args.limit;
    sessions.truncate(args.limit);
    let rows: Vec<_> = sessions
        .iter()
        .map(|listed| (output::token(&listed.token, args.full), listed.expiry))
        .collect();
    if args.json {
        let entries: Vec<_> = rows
            .iter()
            .map(|(token, expiry)| ListEntry {
                token,
                expiry: output::rfc3339(*expiry),
            })
            .collect();
        output::json(out, &entries)?;
        return Ok(());
    }
    if rows.is_empty() {
        match &args.owner {
            Some(owner) => writeln!(out, "no active sessions of owner {owner:?}")?,
            None => writeln!(out, "no active sessions")?,
        }
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(t, _)| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(out, "{:<width$}  EXPIRES (UTC)", "TOKEN")?;
    for (token, expiry) in &rows {
        let (at, from_now) = (output::rfc3339(*expiry), output::from_now(*expiry));
        writeln!(out, "{token:<width$}  {at}  {from_now}")?;
    }
    if more {
        writeln!(out, "(first {} shown; raise --limit for more)", args.limit)?;
    }
    Ok(())
}

/// `show --json`.
#[derive(Debug, Serialize)]
struct ShowView<'a> {
    expiry: String,
    data_len: usize,
    #[serde(flatten)]
    data: Data<'a>,
}

fn show(store: &Backend, args: &ShowArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let Some(Session {
        data: bytes,
        expiry,
        ..
    }) = store.find_with_expiry(&args.token)?
    else {
        return Err(Failure::NotFound(
            output::token(&args.token, false).into_owned(),
        ));
    };
    if args.raw {
        out.write_all(&bytes)?;
        return Ok(());
    }
    let view = ShowView {
        expiry: output::rfc3339(expiry),
        data_len: bytes.len(),
        data: Data::new(&bytes),
    };
    if args.json {
        output::json(out, &view)?;
        return Ok(());
    }
    writeln!(
        out,
        "expires: {} ({})",
        view.expiry,
        output::from_now(expiry)
    )?;
    writeln!(out, "length:  {} bytes", view.data_len)?;
    writeln!(out, "data ({}):", view.data.encoding())?;
    writeln!(out, "{}", view.data.as_str())?;
    Ok(())
}

fn revoke(store: &Backend, args: &RevokeArgs, out: &mut dyn Write) -> Result<(), Failure> {
    if let Some(owner) = &args.owner {
        let revoked = store.revoke_owner(owner)?;
        writeln!(out, "revoked {revoked} sessions of owner {owner:?}")?;
        return Ok(());
    }
    let mut missing = Vec::new();
    for token in &args.tokens {
        if !store.delete(token)? {
            missing.push(output::token(token, false));
        }
    }
    let revoked = args.tokens.len() - missing.len();
    writeln!(out, "revoked {revoked} of {} sessions", args.tokens.len())?;
    for token in missing {
        writeln!(out, "not found: {token}")?;
    }
    Ok(())
}

fn purge(store: &Backend, out: &mut dyn Write) -> Result<(), Failure> {
    let backlog = store.stats()?.expired();
    let bar = ProgressBar::new(backlog);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} deleting expired sessions {wide_bar} {pos}/{len} ({eta})",
    ) {
        bar.set_style(style);
    }
    let report = delete_expired_with_progress(store, backlog, &bar);
    bar.finish_and_clear();
    let (removed, duration) = report?;
    writeln!(out, "removed {removed} expired sessions in {duration:.2?}")?;
    Ok(())
}

/// Runs the store's cleanup on a thread of its own while `bar` (unless
/// hidden, as when stderr is not a terminal) follows the expired count down
/// from `backlog`.
fn delete_expired_with_progress(
    store: &Backend,
    backlog: u64,
    bar: &ProgressBar,
) -> Result<(u64, Duration), Failure> {
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<()>();
        let worker = scope.spawn(move || {
            // Dropped when the cleanup returns (or unwinds), which ends the wait.
            let _done = done;
            store.delete_expired()
        });
        bar.enable_steady_tick(Duration::from_millis(100));
        while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(PROGRESS_TICK) {
            if bar.is_hidden() {
                continue;
            }
            // Progress is only a display: a failed count is skipped.
            if let Ok(now) = store.stats() {
                bar.set_position(backlog.saturating_sub(now.expired()));
            }
        }
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn vacuum(store: Backend, out: &mut dyn Write) -> Result<(), Failure> {
    let store = match store {
        Backend::Sqlite(store) => store,
        Backend::Postgres(pg) => {
            pg.vacuum()?;
            writeln!(
                out,
                "vacuumed the table: the space of deleted sessions is reusable"
            )?;
            return Ok(());
        }
    };
    let before = store.stats()?.file_size;
    store.vacuum()?;
    let path = store.path().to_path_buf();
    // VACUUM writes the rebuilt file into the WAL; the file shrinks when the
    // WAL is checkpointed, which closing does unless another process has
    // the database open.
    drop(store);
    let (after, wal) = sizes_on_disk(&path).map_err(sqlite3store::Error::from)?;
    writeln!(
        out,
        "file size: {} -> {}",
        output::bytes(before),
        output::bytes(after)
    )?;
    if wal > 0 {
        writeln!(
            out,
            "the WAL holds {} more; the file shrinks at the next checkpoint",
            output::bytes(wal)
        )?;
    }
    Ok(())
}

/// The sizes of the database file and of its WAL (0 when absent).
fn sizes_on_disk(db: &Path) -> io::Result<(u64, u64)> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(wal).map_or(0, |m| m.len());
    Ok((std::fs::metadata(db)?.len(), wal))
}
