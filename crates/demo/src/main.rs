//! A small axum app that keeps its sessions in a SQLite file through
//! `tower-sessions-sqlite3store`: a visit counter, a login form, logout, and
//! the number of active sessions. Sessions outlive restarts of the server.
//!
//! ```text
//! cargo run --release -p demo -- --port 3000 --db ./demo-sessions.db
//! ```

mod app;

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tower_sessions_sqlite3store::SqliteSessionStore;
use tracing_subscriber::EnvFilter;

/// A small web app keeping its sessions in SQLite with sqlite3store.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on, on 127.0.0.1 only; 0 picks a free one.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// The session database file, created on first run.
    #[arg(long, env = "DEMO_DB", default_value = "demo-sessions.db")]
    db: PathBuf,
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
    let store = SqliteSessionStore::open(&args.db).await?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
            .await
            .map_err(|err| format!("cannot listen on 127.0.0.1:{}: {err}", args.port))?;
    let addr = listener.local_addr()?;
    // The first line on stdout is the URL; the browser test waits for it.
    println!(
        "demo listening on http://{addr}/ (sessions in {})",
        args.db.display()
    );
    axum::serve(listener, app::router(store))
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
