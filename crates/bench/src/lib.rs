//! The project's benchmark: the same workloads against sqlite3store (with
//! the default durability and with `Durability::PowerLoss`, raw and through
//! tower-sessions' `SessionStore`), its single-writer-mutex variant, a
//! Go-style baseline (Go's scs `sqlite3store`, reproduced through rusqlite),
//! a hand-tuned rusqlite program and, with `--peers`,
//! tower-sessions-sqlx-store run in a separate process; with
//! `--postgres URL`, pgstore's `PgStore` and a go-style PostgreSQL baseline
//! (Go scs postgresstore's SQL over a plain pool) beside them, pgstore
//! through tower-sessions too, and with `--peers` tower-sessions-sqlx-store's
//! `PostgresStore`, each in its own table (`--only postgres` runs just those). Each system is
//! labelled with what its acknowledged writes survive and the layer called.
//! Used by the `bench` binary; not published, and nothing published depends
//! on it.
//!
//! ```text
//! cargo run --release -p bench -- --peers --out docs
//! # Both sides in one run, one report (a private PostgreSQL server):
//! bash scripts/pg-test-server.sh run sh -c \
//!   'cargo run --release -p bench -- --peers --postgres "$PGSTORE_TEST_URL" --out docs'
//! # Only PostgreSQL (into another directory, so docs/ keeps the SQLite run):
//! bash scripts/pg-test-server.sh run sh -c \
//!   'cargo run --release -p bench -- --peers --only postgres --postgres "$PGSTORE_TEST_URL" --out /tmp/pg'
//! ```
//!
//! runs every cell (a workload at a worker count) `--repeats` times per
//! system, the systems taking turns cell by cell, and prints the ratios
//! between systems, a table per cell (median ops/s with the min-max spread,
//! p50, p99, worst latency, errors), the cleanup results, peak memory and the
//! issues' targets marked met or not, and writes them to `docs/bench.json`
//! (every run too), `docs/bench.md` and `docs/bench.svg`.
//!
//! Every system gets the same tokens and data (from `--seed`), one file for
//! the throughput cells and a fresh file per cleanup run, in a temporary
//! directory, and the same runner ([`workload`], the `bench-workload` crate,
//! which the peers binary uses too).

use std::error::Error as StdError;
use std::path::PathBuf;

use clap::Parser;
use sqlite3store::Durability;

mod adapter;
mod go_style;
mod hand_tuned;
mod ours;
mod peers;
mod postgres;
mod report;
pub use bench_workload as workload;

use workload::{Config, Line, Memory, Row, Runner, Runs, Workload};

/// A session as the systems in this crate address it: its token in the
/// 43-character base64url form, its data and its expiry, built before the
/// timed loop.
#[derive(Debug)]
pub(crate) struct TokenKey {
    token: String,
    data: std::sync::Arc<[u8]>,
    expiry: std::time::SystemTime,
}

impl TokenKey {
    fn new(
        token: &[u8; workload::TOKEN_BYTES],
        data: &std::sync::Arc<[u8]>,
        expiry: std::time::SystemTime,
    ) -> Self {
        Self {
            token: workload::token_string(token),
            data: std::sync::Arc::clone(data),
            expiry,
        }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// sqlite3store with default options (its cleanup thread off: the benchmark
/// calls cleanup itself).
const OURS: &str = "sqlite3store";
/// sqlite3store with `Durability::PowerLoss` (an fsync per transaction).
const OURS_FSYNC: &str = "sqlite3store power-loss";
/// The same store with `group_commit(false)`; opt-in.
const SINGLE_WRITER: &str = "sqlite3store single-writer";
/// The single-writer variant with `Durability::PowerLoss`, where group
/// commit has the most to share.
const SINGLE_WRITER_FSYNC: &str = "single-writer power-loss";
/// sqlite3store through tower-sessions' `SessionStore` trait, defaults.
const ADAPTER: &str = "tower-sessions-sqlite3store";
/// The same with `Durability::PowerLoss`.
const ADAPTER_FSYNC: &str = "tower-sessions-sqlite3store power-loss";
/// Go's scs sqlite3store, reproduced.
const GO_STYLE: &str = "go-style";
/// tower-sessions-sqlx-store's SqliteStore (the peers binary).
const SQLX: &str = "tower-sessions-sqlx";
/// Plain rusqlite with hand-picked settings: what SQLite itself can do.
const HAND_TUNED: &str = "hand-tuned";
/// pgstore's `PgStore` (with `--postgres`).
const PG_OURS: &str = "pgstore";
/// Go's scs postgresstore SQL over a plain pool (with `--postgres`).
const PG_GO_STYLE: &str = "go-style postgres";
/// pgstore through tower-sessions' `SessionStore` trait
/// (`ContractStore<PgStore>`, with `--postgres`).
const PG_ADAPTER: &str = "tower-sessions-pgstore";
/// tower-sessions-sqlx-store's PostgresStore (the peers binary, with
/// `--peers` and `--postgres`).
const SQLX_PG: &str = "tower-sessions-sqlx postgres";
/// The PostgreSQL systems, run by default with `--postgres` (sqlx's too
/// with `--peers`).
const PG_SYSTEMS: [&str; 3] = [PG_OURS, PG_ADAPTER, PG_GO_STYLE];
/// The systems the peers binary serves, each in a process of its own.
const PEER_SYSTEMS: [&str; 2] = [SQLX, SQLX_PG];

/// Every system: the name in results, and the short names `--systems`
/// accepts.
const SYSTEMS: [(&str, &[&str]); 13] = [
    (OURS, &["sqlite3store", "ours", "a"]),
    (OURS_FSYNC, &["power-loss"]),
    (SINGLE_WRITER, &["single-writer", "a2"]),
    (SINGLE_WRITER_FSYNC, &["single-writer-power-loss"]),
    (ADAPTER, &["adapter", "tower-sessions-sqlite3store"]),
    (ADAPTER_FSYNC, &["adapter-power-loss"]),
    (GO_STYLE, &["go-style", "go", "c"]),
    (SQLX, &["sqlx", "tower-sessions-sqlx", "b"]),
    (HAND_TUNED, &["hand-tuned"]),
    (PG_OURS, &["pgstore", "pg"]),
    (
        PG_ADAPTER,
        &["adapter-postgres", "adapter-pg", "tower-sessions-pgstore"],
    ),
    (PG_GO_STYLE, &["go-style-postgres", "go-pg"]),
    (SQLX_PG, &["sqlx-postgres", "sqlx-pg"]),
];

/// The systems run when `--systems` is not given (sqlx too with `--peers`).
const DEFAULT_SYSTEMS: [&str; 7] = [
    OURS,
    OURS_FSYNC,
    SINGLE_WRITER_FSYNC,
    ADAPTER,
    ADAPTER_FSYNC,
    GO_STYLE,
    HAND_TUNED,
];

/// Options of a benchmark run (the `bench` binary's command line).
///
/// [`Default`] gives the same values as the command line without flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// A smoke run: 10,000 sessions, 100,000 expired rows, 0.3 s per
    /// workload. Proves everything runs; the numbers mean little.
    #[arg(long)]
    pub quick: bool,

    /// Seconds each throughput workload runs. Default: 2.5 (0.3 with
    /// --quick).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Active sessions preloaded. Default: 100000 (10000 with --quick).
    #[arg(long, value_name = "N")]
    pub sessions: Option<usize>,

    /// Expired sessions preloaded for the cleanup workloads. Default:
    /// 1000000 (100000 with --quick).
    #[arg(long, value_name = "N")]
    pub expired: Option<usize>,

    /// Worker counts for the throughput workloads.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1,16"
    )]
    pub workers: Vec<usize>,

    /// Runs of each cell (a workload at a worker count) per system; the
    /// report gives the median and the min-max spread. Systems take turns
    /// cell by cell, so drift hits them alike.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: usize,

    /// Workers of the zero-errors check (`mixed-many`).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub many_workers: usize,

    /// Workers finding and committing during the loaded cleanup.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub cleanup_workers: usize,

    /// Workloads to run, comma-separated: all, find-hit, find-miss,
    /// commit-update, commit-insert, mixed, mixed-many, cleanup,
    /// cleanup-idle. Default: every one.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub workloads: Vec<String>,

    /// Systems to run, comma-separated: sqlite3store, power-loss
    /// (sqlite3store with `Durability::PowerLoss`), single-writer,
    /// single-writer-power-loss (`group_commit(false)`), adapter,
    /// adapter-power-loss (tower-sessions-sqlite3store), go-style,
    /// hand-tuned (plain rusqlite, hand-picked settings), sqlx (needs
    /// --peers); with --postgres, pgstore, adapter-postgres
    /// (tower-sessions-pgstore), go-style-postgres and sqlx-postgres (needs
    /// --peers). Default: all but single-writer (the
    /// sqlx ones with --peers).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub systems: Vec<String>,

    /// Also run tower-sessions-sqlx-store (bench/peers, a separate process
    /// per system): its SqliteStore, and with --postgres its PostgresStore.
    /// `--peers` builds it with cargo if needed, `--peers=PATH` runs that
    /// binary.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = peers::BUILD)]
    pub peers: Option<String>,

    /// Also run the PostgreSQL systems (pgstore, tower-sessions-pgstore,
    /// go-style postgres, and with --peers tower-sessions-sqlx postgres)
    /// against this server (a libpq URL or key=value conninfo), each in its
    /// own table (bench_pgstore, bench_pgstore_ts, bench_go_style, schema
    /// bench_sqlx), dropped at the end.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,

    /// Run only one side's default systems: `sqlite` or `postgres` (needs
    /// --postgres; with --peers, tower-sessions-sqlx postgres too). Ignored
    /// when --systems is given.
    #[arg(long, value_name = "SIDE")]
    pub only: Option<String>,

    /// Write bench.json, bench.md and bench.svg into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Seed of every token and data byte.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,

    /// Where the temporary databases go. Default: the system temp dir.
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

/// Parses the defaults exactly as the command line would.
#[derive(Parser)]
struct DefaultArgs {
    #[command(flatten)]
    args: BenchArgs,
}

impl Default for BenchArgs {
    fn default() -> Self {
        DefaultArgs::parse_from(["bench"]).args
    }
}

impl BenchArgs {
    fn config(&self) -> Result<Config, BoxError> {
        let workloads = if self.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            let mut chosen = Vec::new();
            for name in &self.workloads {
                let w = Workload::parse(name).ok_or_else(|| {
                    let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                    format!(
                        "unknown workload {name:?}; expected one of {}",
                        names.join(", ")
                    )
                })?;
                chosen.push(w);
            }
            chosen
        };
        if self.workers.is_empty() || self.workers.contains(&0) || self.many_workers == 0 {
            return Err("worker counts must be at least 1".into());
        }
        if self.repeats == 0 {
            return Err("--repeats must be at least 1".into());
        }
        let duration_secs = self.duration.unwrap_or(if self.quick { 0.3 } else { 2.5 });
        if !(duration_secs > 0.0 && duration_secs.is_finite()) {
            return Err("--duration must be a positive number of seconds".into());
        }
        let sessions = self
            .sessions
            .unwrap_or(if self.quick { 10_000 } else { 100_000 });
        if sessions == 0 {
            return Err("--sessions must be at least 1".into());
        }
        Ok(Config {
            sessions,
            expired: self
                .expired
                .unwrap_or(if self.quick { 100_000 } else { 1_000_000 }),
            duration_secs,
            warmup_secs: (duration_secs / 10.0).clamp(0.05, 0.3),
            workers: self.workers.clone(),
            repeats: self.repeats,
            many_workers: self.many_workers,
            cleanup_workers: self.cleanup_workers,
            workloads,
            seed: self.seed,
            dir: self.temp_dir.clone(),
        })
    }

    /// The systems asked for, by their result names.
    fn systems(&self) -> Result<Vec<&'static str>, BoxError> {
        let (sqlite, pg) = match self.only.as_deref() {
            None => (true, self.postgres.is_some()),
            Some("sqlite") => (true, false),
            Some("postgres") => (false, true),
            Some(other) => {
                return Err(format!("unknown --only {other:?}; expected sqlite or postgres").into())
            }
        };
        if pg && self.postgres.is_none() {
            return Err("--only postgres needs --postgres URL".into());
        }
        if self.systems.is_empty() {
            let mut all = Vec::new();
            if sqlite {
                all.extend(DEFAULT_SYSTEMS);
                if self.peers.is_some() {
                    all.push(SQLX);
                }
            }
            if pg {
                all.extend(PG_SYSTEMS);
                if self.peers.is_some() {
                    all.push(SQLX_PG);
                }
            }
            return Ok(all);
        }
        let mut chosen = Vec::new();
        for name in &self.systems {
            let name = name.trim();
            let (system, _) = SYSTEMS
                .iter()
                .find(|(full, short)| *full == name || short.contains(&name))
                .ok_or_else(|| {
                    format!(
                        "unknown system {name:?}; expected sqlite3store, power-loss, single-writer, \
                         single-writer-power-loss, adapter, adapter-power-loss, go-style, hand-tuned, \
                         sqlx, pgstore, adapter-postgres, go-style-postgres or sqlx-postgres"
                    )
                })?;
            if (PG_SYSTEMS.contains(system) || *system == SQLX_PG) && self.postgres.is_none() {
                return Err(format!("{system} needs --postgres URL").into());
            }
            if !chosen.contains(system) {
                chosen.push(*system);
            }
        }
        Ok(chosen)
    }
}

/// An in-process system, ready to run cells.
fn runner(
    system: &'static str,
    cfg: &Config,
    postgres: Option<&str>,
) -> Result<Box<dyn Runs>, BoxError> {
    let ours = |name, group_commit, durability| -> Box<dyn Runs> {
        Box::new(Runner::new(
            ours::Ours {
                name,
                group_commit,
                durability,
            },
            cfg.clone(),
        ))
    };
    Ok(match system {
        OURS => ours(OURS, true, Durability::ProcessCrash),
        OURS_FSYNC => ours(OURS_FSYNC, true, Durability::PowerLoss),
        SINGLE_WRITER => ours(SINGLE_WRITER, false, Durability::ProcessCrash),
        SINGLE_WRITER_FSYNC => ours(SINGLE_WRITER_FSYNC, false, Durability::PowerLoss),
        ADAPTER => Box::new(Runner::new(
            adapter::Adapter::new(ADAPTER, Durability::ProcessCrash)?,
            cfg.clone(),
        )),
        ADAPTER_FSYNC => Box::new(Runner::new(
            adapter::Adapter::new(ADAPTER_FSYNC, Durability::PowerLoss)?,
            cfg.clone(),
        )),
        GO_STYLE => Box::new(Runner::new(go_style::GoStyle, cfg.clone())),
        HAND_TUNED => Box::new(Runner::new(hand_tuned::HandTuned, cfg.clone())),
        PG_OURS | PG_ADAPTER | PG_GO_STYLE => {
            let url = postgres.ok_or("the PostgreSQL systems need --postgres URL")?;
            if system == PG_ADAPTER {
                Box::new(Runner::new(
                    postgres::PgAdapter::new(PG_ADAPTER, url)?,
                    cfg.clone(),
                ))
            } else if system == PG_OURS {
                Box::new(Runner::new(
                    postgres::PgOurs {
                        name: PG_OURS,
                        url: url.to_owned(),
                    },
                    cfg.clone(),
                ))
            } else {
                let most = cfg.workers.iter().copied().max().unwrap_or(1);
                Box::new(Runner::new(
                    postgres::PgGoStyle {
                        name: PG_GO_STYLE,
                        url: url.to_owned(),
                        pool_size: most.max(cfg.many_workers).max(cfg.cleanup_workers + 1),
                    },
                    cfg.clone(),
                ))
            }
        }
        other => return Err(format!("{other} does not run in this process").into()),
    })
}

/// Runs the benchmark, prints its tables and, with `--out`, writes them.
///
/// Cell by cell (a workload at a worker count), each system runs the cell
/// once per round, `--repeats` rounds, each round starting with the next
/// system, so drift over the run hits every system alike.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn StdError + Send + Sync>> {
    let started = std::time::Instant::now();
    let cfg = args.config()?;
    let systems = args.systems()?;
    eprintln!(
        "benchmark: {} sessions, {} expired for cleanup, {} s per workload, workers {:?}, \
         {} runs per cell, systems: {}",
        cfg.sessions,
        cfg.expired,
        cfg.duration_secs,
        cfg.workers,
        cfg.repeats,
        systems.join(", ")
    );
    let mut runners: Vec<Box<dyn Runs>> = Vec::new();
    let mut missing = Vec::new();
    // Built (or found) once, for every peer system.
    let mut peers_binary = None;
    for system in &systems {
        if PEER_SYSTEMS.contains(system) {
            let spec = args.peers.as_deref().unwrap_or(peers::BUILD);
            let start = workload::Start {
                system: (*system).to_owned(),
                postgres: args.postgres.clone(),
                config: cfg.clone(),
            };
            // The peers are optional: report what failed and keep the rest.
            let remote = peers_binary
                .get_or_insert_with(|| peers::binary(spec).map_err(|e| e.to_string()))
                .clone()
                .map_err(BoxError::from)
                .and_then(|exe| peers::Remote::start(&exe, &start));
            match remote {
                Ok(remote) => runners.push(Box::new(remote)),
                Err(err) => {
                    eprintln!("{system}: {err}");
                    missing.push(format!("{system} did not run: {err}"));
                }
            }
        } else {
            runners.push(runner(system, &cfg, args.postgres.as_deref())?);
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut memory: Vec<Memory> = Vec::new();
    let cells = workload::cells(&cfg);
    for (n, cell) in cells.iter().enumerate() {
        for repeat in 0..cfg.repeats {
            for k in turns(runners.len(), n * cfg.repeats + repeat) {
                let runner = &mut runners[k];
                match runner.run(*cell, repeat) {
                    Ok(lines) => {
                        for line in lines {
                            match line {
                                Line::Row(row) => rows.push(row),
                                Line::Memory(m) => memory.push(m),
                            }
                        }
                    }
                    Err(err) => {
                        let what = format!(
                            "{} failed at {} x{} (run {}): {err}",
                            runner.name(),
                            cell.workload.name(),
                            cell.workers,
                            repeat + 1
                        );
                        eprintln!("{what}");
                        missing.push(what);
                    }
                }
            }
        }
        let last_throughput = !cell.workload.is_cleanup()
            && cells
                .get(n + 1)
                .is_none_or(|next| next.workload.is_cleanup());
        if last_throughput {
            for runner in &mut runners {
                if let Err(err) = runner.finish_throughput() {
                    missing.push(format!("{}: closing its file failed: {err}", runner.name()));
                }
            }
        }
    }
    drop(runners);
    if let Some(url) = &args.postgres {
        for (system, table) in [
            (PG_OURS, postgres::OURS_TABLE),
            (PG_ADAPTER, postgres::ADAPTER_TABLE),
            (PG_GO_STYLE, postgres::GO_TABLE),
        ] {
            if systems.contains(&system) {
                if let Err(err) = postgres::drop_table(url, table) {
                    missing.push(format!("{system}: dropping table {table} failed: {err}"));
                }
            }
        }
    }
    let report = report::Report::new(
        report::Meta {
            date: utc_now(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            version: env!("CARGO_PKG_VERSION"),
            quick: args.quick,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            minutes: started.elapsed().as_secs_f64() / 60.0,
        },
        cfg,
        rows,
        memory,
        missing,
    );
    println!("{}", report.markdown());
    if let Some(dir) = &args.out {
        report.write(dir)?;
        eprintln!("wrote {}", dir.join("bench.{json,md,svg}").display());
    }
    Ok(())
}

/// The order in which `systems` systems run in round `round` (counted over
/// the whole run): every one once, starting one further along each round,
/// so no system always runs first or right after the same neighbour's
/// cell warmed the disk.
fn turns(systems: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..systems).map(move |i| (i + round) % systems)
}

fn utc_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_command_line() -> Result<(), BoxError> {
        let args = BenchArgs::default();
        assert_eq!(args.workers, vec![1, 16]);
        assert_eq!(args.many_workers, 64);
        let cfg = args.config()?;
        assert_eq!((cfg.sessions, cfg.expired), (100_000, 1_000_000));
        assert_eq!(cfg.workloads, Workload::ALL.to_vec());
        assert_eq!(args.repeats, 3);
        assert_eq!(args.systems()?, DEFAULT_SYSTEMS.to_vec());
        Ok(())
    }

    #[test]
    fn every_round_runs_every_system_once_starting_one_further() {
        for round in 0..7 {
            let mut order: Vec<usize> = turns(4, round).collect();
            assert_eq!(order[0], round % 4);
            order.sort_unstable();
            assert_eq!(order, [0, 1, 2, 3]);
        }
        assert_eq!(turns(0, 3).count(), 0);
    }

    #[test]
    fn filters_parse() -> Result<(), BoxError> {
        let args = DefaultArgs::try_parse_from([
            "bench",
            "--quick",
            "--workloads",
            "find-hit,cleanup",
            "--systems",
            "go,sqlx",
            "--peers",
        ])?
        .args;
        let cfg = args.config()?;
        assert_eq!(cfg.sessions, 10_000);
        assert_eq!(cfg.workloads, vec![Workload::FindHit, Workload::Cleanup]);
        assert_eq!(args.systems()?, vec![GO_STYLE, SQLX]);
        assert_eq!(args.peers.as_deref(), Some(peers::BUILD));
        let bad = DefaultArgs::try_parse_from(["bench", "--workloads", "nope"])?.args;
        assert!(bad.config().is_err());
        Ok(())
    }

    #[test]
    fn postgres_systems_come_with_a_url_and_can_run_alone() -> Result<(), BoxError> {
        let parse = |argv: &[&str]| -> Result<BenchArgs, BoxError> {
            Ok(DefaultArgs::try_parse_from(argv)?.args)
        };
        let both = parse(&["bench", "--postgres", "host=/tmp"])?;
        let mut expected = DEFAULT_SYSTEMS.to_vec();
        expected.extend(PG_SYSTEMS);
        assert_eq!(both.systems()?, expected);
        let pg = parse(&["bench", "--postgres", "host=/tmp", "--only", "postgres"])?;
        assert_eq!(pg.systems()?, PG_SYSTEMS.to_vec());
        let sqlite = parse(&["bench", "--postgres", "host=/tmp", "--only", "sqlite"])?;
        assert_eq!(sqlite.systems()?, DEFAULT_SYSTEMS.to_vec());
        let chosen = parse(&["bench", "--postgres", "h", "--systems", "pg,go-pg"])?;
        assert_eq!(chosen.systems()?, vec![PG_OURS, PG_GO_STYLE]);
        // With --peers, sqlx's PostgresStore joins the PostgreSQL side,
        // alone or beside SQLite.
        let peers = parse(&["bench", "--peers", "--postgres", "h", "--only", "postgres"])?;
        assert_eq!(
            peers.systems()?,
            vec![PG_OURS, PG_ADAPTER, PG_GO_STYLE, SQLX_PG]
        );
        let everything = parse(&["bench", "--peers", "--postgres", "h"])?;
        let mut expected = DEFAULT_SYSTEMS.to_vec();
        expected.extend([SQLX, PG_OURS, PG_ADAPTER, PG_GO_STYLE, SQLX_PG]);
        assert_eq!(everything.systems()?, expected);
        let sqlite = parse(&["bench", "--peers", "--postgres", "h", "--only", "sqlite"])?;
        assert!(!sqlite.systems()?.contains(&SQLX_PG));
        let chosen = parse(&["bench", "--postgres", "h", "--systems", "sqlx-pg"])?;
        assert_eq!(chosen.systems()?, vec![SQLX_PG]);
        assert!(parse(&["bench", "--systems", "sqlx-postgres"])?
            .systems()
            .is_err());
        // Without a URL, asking for them is a clear error, not a panic.
        assert!(parse(&["bench", "--only", "postgres"])?.systems().is_err());
        assert!(parse(&["bench", "--systems", "pgstore"])?
            .systems()
            .is_err());
        assert!(parse(&["bench", "--only", "mysql"])?.systems().is_err());
        assert!(runner(PG_OURS, &BenchArgs::default().config()?, None).is_err());
        Ok(())
    }
}
