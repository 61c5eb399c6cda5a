//! A small axum app that keeps its sessions in a SQLite file through
//! `tower-sessions-sqlite3store`, or in PostgreSQL through pgstore when
//! `DATABASE_URL` is set: a visit counter, a login form, logout, and the
//! number of active sessions. Sessions outlive restarts of the server.
//!
//! ```text
//! cargo run --release -p demo -- --port 3000 --db ./demo-sessions.db
//! DATABASE_URL=postgres://app@localhost/app cargo run --release -p demo
//! ```

mod app;

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pgstore::PgStore;
use sqlite3store::SqliteStore;
use tower_sessions_contract::ContractStore;
use tower_sessions_sqlite3store::SqliteSessionStore;
use tracing_subscriber::EnvFilter;

/// A small web app keeping its sessions in SQLite with sqlite3store, or in
/// PostgreSQL with pgstore.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on, on 127.0.0.1 only; 0 picks a free one.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// The session database file, created on first run (unless
    /// --database-url is given).
    #[arg(long, env = "DEMO_DB", default_value = "demo-sessions.db")]
    db: PathBuf,
    /// A PostgreSQL server (`postgres://` URL or libpq `key=value` string)
    /// to keep the sessions in instead of the file; the `sessions` table is
    /// created when missing.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// The sessions table.
    #[arg(long, env = "DEMO_TABLE", default_value = "sessions")]
    table: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo: {}", sqlite3store::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let (sessions, place) = match &args.database_url {
        Some(url) => (
            app::Sessions::Postgres(ContractStore::new(
                PgStore::builder(url).table(&args.table).build().await?,
            )),
            // Not the URL itself: it may hold a password.
            "PostgreSQL".to_owned(),
        ),
        None => (
            app::Sessions::Sqlite(SqliteSessionStore::new(
                SqliteStore::builder(&args.db)
                    .table(&args.table)
                    .build_async()
                    .await?,
            )),
            args.db.display().to_string(),
        ),
    };
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
            .await
            .map_err(|err| format!("cannot listen on 127.0.0.1:{}: {err}", args.port))?;
    let addr = listener.local_addr()?;
    // The first line on stdout is the URL; the browser test waits for it.
    println!("demo listening on http://{addr}/ (sessions in {place})");
    axum::serve(listener, app::router(sessions))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down; finishing requests in flight");
}
