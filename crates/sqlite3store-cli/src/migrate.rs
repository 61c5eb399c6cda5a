//! `migrate`: copies the active sessions from one store to another, page by
//! page, so nobody is logged out by a move between SQLite and PostgreSQL.
//!
//! Pages follow the source's primary key (`token > last ORDER BY token`),
//! so a page is one indexed range read and nothing is held in memory beyond
//! it. Each session is written with the store's upsert, keeping its stored
//! key, data, expiry and owner (the owner is what `revoke --owner`, "log
//! out everywhere", finds sessions by); running again copies everything again to the same
//! result, which makes an interrupted run resumable by running it again.
//! Expiries keep the millisecond exactly: SQLite stores whole milliseconds,
//! PostgreSQL microseconds.

use std::io::{self, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{Access, Backend, Location};
use crate::cli::MigrateArgs;
use crate::failure::Failure;

/// Runs `migrate`; `table` is the global `--table`, the default of both
/// sides.
pub(crate) fn run(args: &MigrateArgs, table: &str) -> Result<(), Failure> {
    let from = Location::parse(&args.from);
    let to = Location::parse(&args.to);
    let from_table = args.from_table.as_deref().unwrap_or(table);
    let to_table = args.to_table.as_deref().unwrap_or(table);
    if from == to && from_table == to_table {
        return Err(Failure::SameStore);
    }
    let source = Backend::open(&from, from_table, Access::Read)?;
    let target = Backend::open(&to, to_table, Access::Create)?;
    let bar = ProgressBar::new(source.stats()?.active());
    if let Ok(style) =
        ProgressStyle::with_template("copying sessions {wide_bar} {pos}/{len} ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    let copied = copy(&source, &target, args.batch_size as usize, &bar);
    bar.finish_and_clear();
    let copied = copied?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "copied {copied} active sessions from {} to {}",
        source.kind(),
        target.kind()
    )?;
    out.flush()?;
    Ok(())
}

/// Copies every active session of `source` to `target`, `batch` at a time;
/// returns how many.
fn copy(
    source: &Backend,
    target: &Backend,
    batch: usize,
    bar: &ProgressBar,
) -> Result<u64, Failure> {
    let mut after = String::new();
    let mut copied = 0_u64;
    let stopped = |copied, cause| Failure::Migration {
        copied,
        cause: Box::new(cause),
    };
    // Ends: every page is non-empty and moves `after` strictly forward
    // through a finite key space; an empty page ends the loop.
    loop {
        let page = source
            .export_page(&after, batch)
            .map_err(|cause| stopped(copied, cause))?;
        let Some((last, _)) = page.last() else {
            return Ok(copied);
        };
        after.clone_from(&last.token);
        target
            .commit_all(&page)
            .map_err(|cause| stopped(copied, cause))?;
        copied += page.len() as u64;
        bar.inc(page.len() as u64);
        tracing::debug!(copied, "migrated a page");
    }
}
