//! The project's benchmark: workloads against sqlite3store, a Go-style
//! baseline and peers. Used by the `bench` binary and by `sqlite3store bench`.

use std::error::Error as StdError;

/// Options of a benchmark run (shared by the `bench` binary and the CLI).
#[derive(Debug, Clone, Default)]
pub struct BenchArgs {}

/// Runs the benchmark and prints its table.
pub fn run(_args: &BenchArgs) -> Result<(), Box<dyn StdError + Send + Sync>> {
    Ok(())
}
