//! `sqlite3store`: the operator tool for a sqlite3store session database
//! (file-compatible with Go's scs `sqlite3store`).
//!
//! Read commands (`stats`, `list`, `show`) open the file read-only, so
//! inspecting a store never changes it; no command starts the store's
//! cleanup thread or creates a database. Run `sqlite3store --help` for the
//! commands, examples and exit codes.

mod backend;
mod cli;
mod commands;
mod failure;
mod migrate;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;

/// The variable that sets what the library logs to stderr (default: warnings).
const LOG_ENV: &str = "SQLITE3STORE_LOG";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Sends the store's own warnings (a failed checkpoint, no WAL mode) to
/// stderr, so the operator sees them.
fn init_logging() {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
