//! The `bench` binary: `cargo run --release -p bench -- --peers --out docs`.

use clap::Parser;

/// Side-by-side benchmark of sqlite3store against a Go-style baseline,
/// its single-writer variant and (with --peers) tower-sessions-sqlx-store.
#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() {
    let cli = Cli::parse();
    if let Err(err) = bench::run(&cli.args) {
        eprintln!("bench: {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}
