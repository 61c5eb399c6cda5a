//! The results: tables, ratios, the issue's targets, and the files written
//! by `--out` (JSON, Markdown, SVG).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::workload::{Config, Memory, Row, Workload};
use crate::{
    ADAPTER, ADAPTER_FSYNC, GO_STYLE, HAND_TUNED, OURS, OURS_FSYNC, PG_ADAPTER, PG_GO_STYLE,
    PG_OURS, SINGLE_WRITER, SINGLE_WRITER_FSYNC, SQLX, SQLX_PG,
};

/// How the systems are run, for readers of the report.
const METHOD: &str = "\
Systems (\"survives\" is what an acknowledged write survives: a crash of the process, or a power loss \
too, which takes an fsync per commit):
- **sqlite3store**: default options (WAL, `synchronous=NORMAL`, group commit, reader pool); survives a \
process crash. Its cleanup thread is off and the benchmark calls `delete_expired()` itself.
- **sqlite3store power-loss**: the same with `Durability::PowerLoss` (`synchronous=FULL`): survives power loss.
- **single-writer power-loss** (and, with `--systems single-writer`, **sqlite3store single-writer**): \
`group_commit(false)`, one mutex around the writer; a benchmark-only setting.
- **tower-sessions-sqlite3store** (and **… power-loss**): this project's `SqliteSessionStore` through \
tower-sessions' `SessionStore` trait, on the same runtime setup as tower-sessions-sqlx: a multi-thread \
tokio runtime with default settings, each worker thread blocking on the call's future, the same records.
- **go-style**: Go's scs `sqlite3store` reproduced in Rust: its exact SQL, a statement prepared per call, \
rollback journal, `synchronous=NORMAL` (in rollback mode that still syncs every commit: survives power loss), \
`busy_timeout=5000`, a pool that grows to the concurrency. It does SQLite's share of Go's work, not \
Go's own (cgo calls, `database/sql`, `Scan`), so it is a lower bound on the real Go package's cost per call.
- **hand-tuned**: plain rusqlite as issue 13 describes it, to show what SQLite itself does here: WAL, \
`synchronous=NORMAL` (survives a process crash), one read-only connection per thread with `mmap_size` \
256 MiB and a 16 MiB cache, statements cached, one writer connection behind a mutex (autocommit per \
write), cleanup as one `DELETE`; `all()` builds the same map as sqlite3store's.
- **tower-sessions-sqlx**: tower-sessions-sqlx-store 0.15 `SqliteStore` as its README sets it up \
(`SqlitePool::connect(\"sqlite://…?mode=rwc\")`, `migrate()`), through the `SessionStore` trait, in its own \
process. sqlx 0.8 opens SQLite with a rollback journal and `synchronous=FULL`: survives power loss. Its ids \
are i128 and its records carry the 256 bytes as a 256-character string, as do the tower-sessions-sqlite3store \
system's.
- **pgstore** (with `--postgres`): this project's `PgStore` with its defaults (a pool of 16, its cleanup \
task off; the benchmark calls `delete_expired()`), through its blocking front, on the given server, \
table `bench_pgstore`. PostgreSQL's default `synchronous_commit=on` flushes the WAL before each \
acknowledgement (power loss, if the server runs with `fsync=on`).
- **go-style postgres** (with `--postgres`): Go's scs `postgresstore` reproduced: its exact SQL (upsert \
`ON CONFLICT (token) DO UPDATE`, `current_timestamp < expiry`, one `DELETE` for cleanup), each call a \
statement prepared and run (nothing cached), over a plain deadpool-postgres pool as large as the most \
workers in the run, table `bench_go_style`. The database's own file sizes are not measured (0 MiB).
- **tower-sessions-pgstore** (with `--postgres`): `PgStore` (the same defaults) through tower-sessions' \
`SessionStore` trait as `ContractStore<PgStore>`, on the same runtime setup and records as \
tower-sessions-sqlx, table `bench_pgstore_ts`.
- **tower-sessions-sqlx postgres** (with `--peers` and `--postgres`): tower-sessions-sqlx-store 0.15 `PostgresStore` as its README sets it up (`PgPool::connect`, sqlx's default pool of 10 connections, `migrate()`), in schema `bench_sqlx` (its table `session`), through the `SessionStore` trait, in its own process, on the same runtime setup and records as tower-sessions-sqlx. Its find is a `select` with the client's clock (`expiry_date > $2`), its save an upsert of the MessagePack record.

\"raw\" systems are called directly on the worker thread; \"SessionStore\" systems through the trait, \
where commit-insert stores a new session with `create`, as tower-sessions does (our stores' `save` only \
updates a live session), and our two tower-sessions stores run with the expiry write threshold at 0: \
the workloads save unchanged records, which the default threshold would skip, so every save writes, as \
in every other system. \
Each worker loops until the deadline; only the call is timed. Every cell (a workload at a worker count) \
runs once per system per round, the systems taking turns, for the configured number of rounds; tables \
give the median run's figures, the min-max spread of ops/s over the runs, the worst latency of all runs \
and the errors of all runs. Throughput workloads share one file per system (reads first, inserts last); \
each cleanup run gets a fresh file. Errors are counted, never fatal; a failed call still counts as an \
operation.

";

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// How the run was set up.
    pub(crate) meta: Meta,
    /// What it ran.
    pub(crate) config: Config,
    /// One per system and cell: the median run, with the spread.
    pub(crate) summary: Vec<Summary>,
    /// Ratios between systems, cell by cell.
    pub(crate) comparisons: Vec<Comparison>,
    /// Every run of every cell.
    pub(crate) runs: Vec<Row>,
    /// Peak memory per system and run of a cell.
    pub(crate) memory: Vec<Memory>,
    /// The issue's targets, checked.
    pub(crate) checks: Vec<Check>,
    /// Systems asked for that produced no results, and why.
    pub(crate) missing: Vec<String>,
}

/// Where and when the run happened.
#[derive(Debug, Serialize)]
pub(crate) struct Meta {
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub(crate) date: String,
    /// CPUs available to the process.
    pub(crate) cpus: usize,
    /// The bench crate's version.
    pub(crate) version: &'static str,
    /// `--quick` was given.
    pub(crate) quick: bool,
    /// The command line of the run.
    pub(crate) command: String,
    /// Minutes the whole run took, setup included.
    pub(crate) minutes: f64,
}

/// The runs of one system on one cell, summed up.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    /// The median run (by ops/s; by rows/s for cleanup), except that `ops`
    /// and `errors` are summed over every run and `max_us` is the worst of
    /// every run.
    pub(crate) row: Row,
    /// How many runs.
    pub(crate) runs: usize,
    /// The lowest ops/s (rows/s for cleanup) of the runs.
    pub(crate) min: f64,
    /// The highest.
    pub(crate) max: f64,
}

/// ops/s of one system over another's on one cell.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    /// The numerator system.
    pub(crate) system: String,
    /// The denominator system.
    pub(crate) other: String,
    /// Both survive the same failures and are called through the same layer.
    pub(crate) like_for_like: bool,
    /// The workload.
    pub(crate) workload: Workload,
    /// The workers.
    pub(crate) workers: usize,
    /// Median over median.
    pub(crate) ratio: f64,
    /// The lowest run of `system` over the highest of `other`.
    pub(crate) low: f64,
    /// The highest over the lowest.
    pub(crate) high: f64,
}

/// The pairs compared, numerator first: defaults against defaults, then
/// matched durability and layers, then group commit against the mutex and
/// the cost of the tower-sessions layer.
const PAIRS: [(&str, &str); 15] = [
    (OURS, GO_STYLE),
    (OURS, SQLX),
    (OURS_FSYNC, GO_STYLE),
    (ADAPTER, SQLX),
    (ADAPTER_FSYNC, SQLX),
    (OURS_FSYNC, SQLX),
    (OURS_FSYNC, SINGLE_WRITER_FSYNC),
    (OURS, SINGLE_WRITER),
    (OURS, ADAPTER),
    (OURS, HAND_TUNED),
    (PG_OURS, PG_GO_STYLE),
    (PG_OURS, SQLX_PG),
    (PG_ADAPTER, SQLX_PG),
    (PG_OURS, PG_ADAPTER),
    (PG_OURS, OURS_FSYNC),
];

/// What a summary is ranked by: ops/s, or rows/s for cleanup.
fn key(r: &Row) -> f64 {
    r.cleanup.as_ref().map_or(r.ops_per_sec, |c| c.rows_per_sec)
}

/// One summary per system and cell, in the order the runs came.
fn summarize(runs: &[Row]) -> Vec<Summary> {
    let mut groups: Vec<Vec<&Row>> = Vec::new();
    for r in runs {
        let same = |g: &&mut Vec<&Row>| {
            g[0].system == r.system && g[0].workload == r.workload && g[0].workers == r.workers
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .map(|mut g| {
            g.sort_by(|a, b| key(a).total_cmp(&key(b)));
            let mut row = g[(g.len() - 1) / 2].clone();
            row.ops = g.iter().map(|r| r.ops).sum();
            row.errors = g.iter().map(|r| r.errors).sum();
            row.max_us = g.iter().map(|r| r.max_us).fold(0.0, f64::max);
            if row.first_error.is_none() {
                row.first_error = g.iter().find_map(|r| r.first_error.clone());
            }
            if row.note.is_none() {
                row.note = g.iter().find_map(|r| r.note.clone());
            }
            Summary {
                runs: g.len(),
                min: key(g[0]),
                max: key(g[g.len() - 1]),
                row,
            }
        })
        .collect()
}

fn comparisons(summary: &[Summary]) -> Vec<Comparison> {
    let find = |system: &str, workload, workers| {
        summary.iter().find(|s| {
            s.row.system == system && s.row.workload == workload && s.row.workers == workers
        })
    };
    let mut out = Vec::new();
    for s in summary.iter().filter(|s| !s.row.workload.is_cleanup()) {
        for (a, b) in PAIRS.into_iter().filter(|(a, _)| *a == s.row.system) {
            let Some(o) = find(b, s.row.workload, s.row.workers) else {
                continue;
            };
            if s.row.ops == 0 || o.row.ops == 0 || o.min <= 0.0 || o.row.ops_per_sec <= 0.0 {
                continue;
            }
            out.push(Comparison {
                system: a.to_owned(),
                other: b.to_owned(),
                like_for_like: s.row.durability == o.row.durability && s.row.layer == o.row.layer,
                workload: s.row.workload,
                workers: s.row.workers,
                ratio: s.row.ops_per_sec / o.row.ops_per_sec,
                low: s.min / o.max,
                high: s.max / o.min,
            });
        }
    }
    out
}

/// One target from the issue and whether it was met.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    /// What is required.
    pub(crate) target: String,
    /// What was measured.
    pub(crate) measured: String,
    /// Met, not met, or not measured (`None`).
    pub(crate) met: Option<bool>,
}

impl Report {
    pub(crate) fn new(
        meta: Meta,
        config: Config,
        runs: Vec<Row>,
        memory: Vec<Memory>,
        missing: Vec<String>,
    ) -> Self {
        let summary = summarize(&runs);
        let medians: Vec<Row> = summary.iter().map(|s| s.row.clone()).collect();
        Self {
            meta,
            config,
            comparisons: comparisons(&summary),
            checks: checks(&medians),
            summary,
            runs,
            memory,
            missing,
        }
    }

    fn find(&self, system: &str, workload: Workload, workers: usize) -> Option<&Summary> {
        self.summary.iter().find(|s| {
            s.row.system == system && s.row.workload == workload && s.row.workers == workers
        })
    }

    /// Systems in a fixed order: ours first, then the rest as they came.
    fn systems(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for known in [
            OURS,
            OURS_FSYNC,
            SINGLE_WRITER,
            SINGLE_WRITER_FSYNC,
            ADAPTER,
            ADAPTER_FSYNC,
            GO_STYLE,
            SQLX,
            HAND_TUNED,
            PG_OURS,
            PG_ADAPTER,
            PG_GO_STYLE,
            SQLX_PG,
        ] {
            if self.summary.iter().any(|s| s.row.system == known) {
                out.push(known);
            }
        }
        for s in &self.summary {
            if !out.contains(&s.row.system.as_str()) {
                out.push(&s.row.system);
            }
        }
        out
    }

    /// (workload, workers) pairs of the throughput workloads, in order.
    fn instances(&self) -> Vec<(Workload, usize)> {
        let mut out: Vec<(Workload, usize)> = self
            .summary
            .iter()
            .map(|s| &s.row)
            .filter(|r| !r.workload.is_cleanup())
            .map(|r| (r.workload, r.workers))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The whole report as Markdown (also what the terminal shows).
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let c = &self.config;
        let _ = writeln!(md, "# sqlite3store benchmark\n");
        let _ = writeln!(
            md,
            "{}{} UTC, {} CPUs; {} preloaded sessions of {} bytes, 43-character tokens; \
             {} s per workload after {} s of warm-up; cleanup over {} expired + {} active rows \
             with {} workers finding and committing (half each); {} runs per cell. Latency is \
             per call, p50 / p99 of the median run and the worst of all runs.\n\n\
             Command: `{}` ({:.1} minutes).\n",
            if self.meta.quick {
                "Quick smoke run (not a measurement). "
            } else {
                ""
            },
            self.meta.date,
            self.meta.cpus,
            c.sessions,
            crate::workload::DATA_LEN,
            c.duration_secs,
            c.warmup_secs,
            c.expired,
            c.sessions,
            c.cleanup_workers,
            c.repeats,
            self.meta.command,
            self.meta.minutes,
        );
        for m in &self.missing {
            let _ = writeln!(md, "> **Missing:** {m}\n");
        }
        md.push_str(METHOD);
        let systems = self.systems();
        self.ratios_markdown(&mut md);
        for (workload, workers) in self.instances() {
            let _ = writeln!(md, "## {}\n", title(workload, workers));
            let _ = writeln!(
                md,
                "| system | survives | layer | ops/s (median) | min–max | p50 | p99 | worst | errors | notes |"
            );
            let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
            for system in &systems {
                let Some(s) = self.find(system, workload, workers) else {
                    continue;
                };
                let r = &s.row;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.system,
                    r.durability.label(),
                    r.layer.label(),
                    if r.ops == 0 {
                        "n/a".into()
                    } else {
                        ops(r.ops_per_sec)
                    },
                    spread(s),
                    latency(r.p50_us),
                    latency(r.p99_us),
                    latency(r.max_us),
                    r.errors,
                    notes(r),
                );
            }
            md.push('\n');
        }
        self.cleanup_markdown(&mut md, &systems);
        self.memory_markdown(&mut md);
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | result |");
        let _ = writeln!(md, "|---|---|---|");
        for c in &self.checks {
            let result = match c.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {result} |", c.target, c.measured);
        }
        let met = self.checks.iter().filter(|c| c.met == Some(true)).count();
        let measured = self.checks.iter().filter(|c| c.met.is_some()).count();
        let _ = writeln!(md, "\n{met} of {measured} measured targets met.");
        md
    }

    /// The ratios of every compared pair, one table, cells as rows.
    fn ratios_markdown(&self, md: &mut String) {
        let pairs: Vec<(&str, &str, bool)> = PAIRS
            .into_iter()
            .filter_map(|(a, b)| {
                let c = self
                    .comparisons
                    .iter()
                    .find(|c| c.system == a && c.other == b)?;
                Some((a, b, c.like_for_like))
            })
            .collect();
        if pairs.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Ratios\n");
        let _ = writeln!(
            md,
            "Median ops/s of the first system over the second's; in brackets the lowest run of \
             the first over the highest of the second, and the highest over the lowest. \
             **Like for like** columns compare systems that survive the same failures through \
             the same layer; the others compare what each gives by default.\n"
        );
        let mut header = String::from("| workload |");
        let mut rule = String::from("|---|");
        for (a, b, like) in &pairs {
            let _ = write!(
                header,
                " {a} / {b}{} |",
                if *like { " (like for like)" } else { "" }
            );
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for (workload, workers) in self.instances() {
            let mut line = format!("| {} |", title(workload, workers));
            let mut any = false;
            for (a, b, _) in &pairs {
                let c = self.comparisons.iter().find(|c| {
                    c.system == *a
                        && c.other == *b
                        && c.workload == workload
                        && c.workers == workers
                });
                match c {
                    Some(c) => {
                        any = true;
                        let _ = write!(
                            line,
                            " **{}** ({}–{}) |",
                            times(c.ratio),
                            times(c.low),
                            times(c.high)
                        );
                    }
                    None => line.push_str(" — |"),
                }
            }
            if any {
                let _ = writeln!(md, "{line}");
            }
        }
        md.push('\n');
    }

    /// Peak memory per system: the most any run of a phase grew by.
    fn memory_markdown(&self, md: &mut String) {
        if self.memory.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Memory\n");
        let _ = writeln!(
            md,
            "Resident memory of the process (`VmRSS`) when a run of a cell began, once its \
             file was preloaded and opened and its keys prepared, and the peak (`VmHWM`, reset at \
             that moment) during the run; the largest over the runs of each phase. All systems but \
             the tower-sessions-sqlx ones (each in a process of its own) share one process, and \
             memory freed by earlier runs may stay resident, so compare the growth.\n"
        );
        let _ = writeln!(md, "| system | phase | RSS at start | peak RSS | growth |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        let phase = |m: &Memory| match m.workload {
            Workload::All => "all()",
            Workload::Cleanup | Workload::CleanupIdle => m.workload.name(),
            _ => "other throughput workloads",
        };
        // One line per system and phase, systems in report order.
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for m in &self.memory {
            let key = (m.system.as_str(), phase(m));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let systems = self.systems();
        keys.sort_by_key(|(system, _)| systems.iter().position(|s| s == system));
        for key in keys {
            let of_phase = || {
                self.memory
                    .iter()
                    .filter(move |o| o.system == key.0 && phase(o) == key.1)
            };
            let start = of_phase().map(|o| o.start_kib).max().unwrap_or(0);
            let peak = of_phase().map(|o| o.peak_kib).max().unwrap_or(0);
            let growth = of_phase()
                .map(|o| o.peak_kib.saturating_sub(o.start_kib))
                .max()
                .unwrap_or(0);
            let reset = of_phase().all(|o| o.reset);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {}{} | {} |",
                key.0,
                key.1,
                mib(start),
                mib(peak),
                if reset { "" } else { " (process peak so far)" },
                mib(growth),
            );
        }
        md.push('\n');
    }

    fn cleanup_markdown(&self, md: &mut String, systems: &[&str]) {
        for (workload, title) in [
            (Workload::Cleanup, "Cleanup under load"),
            (Workload::CleanupIdle, "Cleanup, store otherwise idle"),
        ] {
            let rows: Vec<&Summary> = systems
                .iter()
                .filter_map(|s| {
                    self.summary
                        .iter()
                        .find(|r| r.row.system == *s && r.row.workload == workload)
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(md, "## {title}\n");
            let loaded = workload == Workload::Cleanup;
            if loaded {
                let _ = writeln!(
                    md,
                    "| system | survives | layer | removed | took | rows/s (median) | min–max | workers' ops/s | p99 | worst | requests > 25 ms | errors | files before → after → closed | notes |"
                );
                let _ = writeln!(
                    md,
                    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
                );
            } else {
                let _ = writeln!(
                    md,
                    "| system | survives | layer | removed | took | rows/s (median) | min–max | files before → after → closed | notes |"
                );
                let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---|---|");
            }
            for s in rows {
                let r = &s.row;
                let Some(c) = &r.cleanup else { continue };
                let files = format!(
                    "{} → {} → {}",
                    mib(c.size_before / 1024),
                    mib(c.size_after / 1024),
                    mib(c.size_closed / 1024)
                );
                if loaded {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} | {files} | {} |",
                        r.system,
                        r.durability.label(),
                        r.layer.label(),
                        c.removed,
                        c.secs,
                        ops(c.rows_per_sec),
                        spread(s),
                        ops(r.ops_per_sec),
                        latency(r.p99_us),
                        latency(r.max_us),
                        c.slow_requests,
                        r.errors,
                        notes(r),
                    );
                } else {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {:.2} s | {} | {} | {files} | {} |",
                        r.system,
                        r.durability.label(),
                        r.layer.label(),
                        c.removed,
                        c.secs,
                        ops(c.rows_per_sec),
                        spread(s),
                        notes(r),
                    );
                }
            }
            md.push('\n');
        }
    }

    /// A horizontal bar chart of ops/s (rows/s for cleanup), log scale.
    pub(crate) fn svg(&self) -> String {
        let systems = self.systems();
        let mut groups: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
        for (workload, workers) in self.instances() {
            let bars = systems
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let r = &self.find(s, workload, workers)?.row;
                    (r.ops > 0).then_some((i, r.ops_per_sec))
                })
                .collect();
            let label = match workload {
                Workload::MixedMany => format!("mixed ×{workers}"),
                _ => format!("{} ×{workers}", workload.name()),
            };
            groups.push((label, bars));
        }
        for (workload, label) in [
            (Workload::Cleanup, "cleanup rows/s (load)"),
            (Workload::CleanupIdle, "cleanup rows/s (idle)"),
        ] {
            let bars: Vec<(usize, f64)> = systems
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let r = &self
                        .summary
                        .iter()
                        .find(|r| r.row.system == *s && r.row.workload == workload)?
                        .row;
                    Some((i, r.cleanup.as_ref()?.rows_per_sec))
                })
                .collect();
            if !bars.is_empty() {
                groups.push((label.to_owned(), bars));
            }
        }
        svg_chart(&systems, &groups, self.meta.quick)
    }

    /// Writes `bench.json`, `bench.md` and `bench.svg` into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), crate::BoxError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("bench.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join("bench.md"), self.markdown())?;
        std::fs::write(dir.join("bench.svg"), self.svg())?;
        Ok(())
    }
}

fn find_row<'a>(
    rows: &'a [Row],
    system: &str,
    workload: Workload,
    workers: usize,
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.system == system && r.workload == workload && r.workers == workers)
}

/// ops/s of ours over `other`'s, when both ran.
fn ratio(rows: &[Row], workload: Workload, workers: usize, other: &str) -> Option<f64> {
    ratio_of(rows, OURS, other, workload, workers)
}

/// ops/s of `a` over `b`'s, when both ran.
fn ratio_of(rows: &[Row], a: &str, b: &str, workload: Workload, workers: usize) -> Option<f64> {
    let a = find_row(rows, a, workload, workers)?;
    let b = find_row(rows, b, workload, workers)?;
    (a.ops > 0 && b.ops > 0).then(|| a.ops_per_sec / b.ops_per_sec)
}

/// The targets of the issue, each checked against the rows. Rows that were
/// not run leave their targets "not measured".
fn checks(rows: &[Row]) -> Vec<Check> {
    let mut out = Vec::new();
    let mut at_least = |target: String, value: Option<f64>, min: f64, show: fn(f64) -> String| {
        out.push(Check {
            target,
            measured: value.map_or_else(|| "—".into(), show),
            met: value.map(|v| v >= min),
        });
    };
    for workload in [Workload::FindHit, Workload::FindMiss] {
        for (workers, go_min) in [(1, 3.5), (16, 8.0)] {
            let w = workload.name();
            at_least(
                format!("{w} ×{workers}: ≥ {go_min}x go-style"),
                ratio(rows, workload, workers, GO_STYLE),
                go_min,
                times,
            );
            at_least(
                format!("{w} ×{workers}: ≥ 15x tower-sessions-sqlx"),
                ratio(rows, workload, workers, SQLX),
                15.0,
                times,
            );
        }
    }
    for workload in [Workload::CommitUpdate, Workload::CommitInsert] {
        for (workers, min) in [(1, 15.0), (16, 25.0)] {
            let w = workload.name();
            for other in [GO_STYLE, SQLX] {
                at_least(
                    format!("{w} ×{workers}: ≥ {min}x {other}"),
                    ratio(rows, workload, workers, other),
                    min,
                    times,
                );
            }
        }
        at_least(
            format!(
                "{} ×16: ≥ 2x single-writer mutex, both power loss",
                workload.name()
            ),
            ratio_of(rows, OURS_FSYNC, SINGLE_WRITER_FSYNC, workload, 16),
            2.0,
            times,
        );
    }
    let mut at_most = |target: String, value: Option<f64>, max: f64, show: fn(f64) -> String| {
        out.push(Check {
            target,
            measured: value.map_or_else(|| "—".into(), show),
            met: value.map(|v| v <= max),
        });
    };
    for workload in [
        Workload::FindHit,
        Workload::FindMiss,
        Workload::CommitUpdate,
        Workload::CommitInsert,
        Workload::Mixed,
    ] {
        at_most(
            format!("{} ×16: p99 < 5 ms", workload.name()),
            find_row(rows, OURS, workload, 16).map(|r| r.p99_us),
            5_000.0,
            latency,
        );
    }
    let many = rows
        .iter()
        .find(|r| r.system == OURS && r.workload == Workload::MixedMany);
    out.push(Check {
        target: "mixed at 64 workers: zero errors".into(),
        measured: many.map_or_else(
            || "—".into(),
            |r| format!("{} errors in {} ops (×{})", r.errors, r.ops, r.workers),
        ),
        met: many.map(|r| r.errors == 0 && r.ops > 0 && r.workers >= 64),
    });
    let cleanup = |workload| {
        rows.iter()
            .find(|r| r.system == OURS && r.workload == workload)
            .filter(|r| r.cleanup.is_some())
    };
    let loaded = cleanup(Workload::Cleanup);
    let idle = cleanup(Workload::CleanupIdle);
    out.push(Check {
        target: "cleanup under load: no request waits > 25 ms".into(),
        measured: loaded.map_or_else(
            || "—".into(),
            |r| {
                let slow = r.cleanup.as_ref().map_or(0, |c| c.slow_requests);
                format!(
                    "worst {}; {slow} of {} requests over 25 ms; {} errors",
                    latency(r.max_us),
                    r.ops,
                    r.errors
                )
            },
        ),
        met: loaded.map(|r| r.max_us <= 25_000.0 && r.errors == 0),
    });
    let rows_per_sec = |r: Option<&Row>| r.and_then(|r| r.cleanup.as_ref()).map(|c| c.rows_per_sec);
    let mut at_least = |target: &str, value: Option<f64>, min: f64| {
        out.push(Check {
            target: target.into(),
            measured: value.map_or_else(|| "—".into(), |v| format!("{} rows/s", ops(v))),
            met: value.map(|v| v >= min),
        });
    };
    at_least(
        "cleanup under load: ≥ 20,000 rows/s",
        rows_per_sec(loaded),
        20_000.0,
    );
    at_least(
        "cleanup idle: ≥ 100,000 rows/s",
        rows_per_sec(idle),
        100_000.0,
    );
    // Issue 13: against the hand-tuned program, in the same run.
    at_least(
        "cleanup under load: ≥ 100,000 rows/s (issue 13)",
        rows_per_sec(loaded),
        100_000.0,
    );
    at_least(
        "cleanup idle: ≥ 250,000 rows/s (issue 13)",
        rows_per_sec(idle),
        250_000.0,
    );
    for (workload, workers, min) in [
        (Workload::FindHit, 1, 0.9),
        (Workload::FindHit, 16, 0.9),
        (Workload::Mixed, 16, 1.5),
        // At most 1.1x hand-tuned's time per call.
        (Workload::All, 1, 1.0 / 1.1),
    ] {
        let value = ratio(rows, workload, workers, HAND_TUNED);
        out.push(Check {
            target: format!(
                "{} ×{workers}: ≥ {} hand-tuned (issue 13)",
                workload.name(),
                times(min)
            ),
            measured: value.map_or_else(|| "—".into(), times),
            met: value.map(|v| v >= min),
        });
    }
    out.extend(pg_checks(rows));
    out
}

/// Issue 11's PostgreSQL targets, pgstore's rows against the go-style
/// baseline's and tower-sessions-sqlx's PostgresStore's (each "not
/// measured" when that system did not run).
fn pg_checks(rows: &[Row]) -> Vec<Check> {
    let mut out = Vec::new();
    let check = |target: String, measured: Option<String>, met: Option<bool>| Check {
        target: format!("PostgreSQL: {target}"),
        measured: measured.unwrap_or_else(|| "—".into()),
        met,
    };
    for workload in [
        Workload::FindHit,
        Workload::FindMiss,
        Workload::CommitUpdate,
        Workload::CommitInsert,
    ] {
        for workers in [1, 16] {
            let w = workload.name();
            let go = ratio_of(rows, PG_OURS, PG_GO_STYLE, workload, workers);
            out.push(check(
                format!("{w} ×{workers}: ≥ 1x go-style postgres"),
                go.map(times),
                go.map(|v| v >= 1.0),
            ));
            let sqlx = ratio_of(rows, PG_OURS, SQLX_PG, workload, workers);
            out.push(check(
                format!("{w} ×{workers}: ≥ 2x tower-sessions-sqlx PostgresStore"),
                sqlx.map(times),
                sqlx.map(|v| v >= 2.0),
            ));
            // Like for like: both through tower-sessions' SessionStore.
            let layered = ratio_of(rows, PG_ADAPTER, SQLX_PG, workload, workers);
            out.push(check(
                format!(
                    "{w} ×{workers}: ≥ 2x tower-sessions-sqlx PostgresStore, \
                     both through SessionStore"
                ),
                layered.map(times),
                layered.map(|v| v >= 2.0),
            ));
        }
    }
    for workload in [
        Workload::FindHit,
        Workload::FindMiss,
        Workload::CommitUpdate,
        Workload::CommitInsert,
        Workload::Mixed,
    ] {
        let p99 = find_row(rows, PG_OURS, workload, 16).map(|r| r.p99_us);
        out.push(check(
            format!("{} ×16: p99 < 5 ms", workload.name()),
            p99.map(latency),
            p99.map(|v| v < 5_000.0),
        ));
    }
    let many = rows
        .iter()
        .find(|r| r.system == PG_OURS && r.workload == Workload::MixedMany);
    out.push(check(
        "mixed at 64 workers: zero errors".into(),
        many.map(|r| format!("{} errors in {} ops (×{})", r.errors, r.ops, r.workers)),
        many.map(|r| r.errors == 0 && r.ops > 0 && r.workers >= 64),
    ));
    let loaded = rows
        .iter()
        .find(|r| r.system == PG_OURS && r.workload == Workload::Cleanup)
        .and_then(|r| r.cleanup.as_ref().map(|c| (r, c)));
    out.push(check(
        "cleanup under load: no request over 25 ms".into(),
        loaded.map(|(r, c)| {
            format!(
                "worst {}; {} of {} requests over 25 ms; {} errors",
                latency(r.max_us),
                c.slow_requests,
                r.ops,
                r.errors
            )
        }),
        loaded.map(|(r, _)| r.max_us <= 25_000.0 && r.errors == 0),
    ));
    out.push(check(
        "cleanup under load: ≥ 50,000 rows/s".into(),
        loaded.map(|(_, c)| format!("{} rows/s", ops(c.rows_per_sec))),
        loaded.map(|(_, c)| c.rows_per_sec >= 50_000.0),
    ));
    out
}

/// A cell's heading.
fn title(workload: Workload, workers: usize) -> String {
    match workload {
        Workload::MixedMany => format!("mixed, {workers} workers (zero-errors check)"),
        Workload::All => "all() over every session, 1 worker".to_owned(),
        _ => format!("{}, {workers} worker{}", workload.name(), plural(workers)),
    }
}

/// The min–max of a summary's runs, or the single value.
fn spread(s: &Summary) -> String {
    if s.row.ops == 0 && s.row.cleanup.is_none() {
        "—".to_owned()
    } else if s.runs < 2 {
        "1 run".to_owned()
    } else {
        format!("{}–{}", ops(s.min), ops(s.max))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn notes(r: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(note) = &r.note {
        parts.push(note.clone());
    }
    if let Some(err) = &r.first_error {
        let mut err = err.replace('|', "/").replace('\n', " ");
        if err.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|i| err.is_char_boundary(*i))
                .unwrap_or(0);
            err.truncate(cut);
            err.push('…');
        }
        parts.push(format!("first error: {err}"));
    }
    parts.join("; ")
}

/// A count per second with thousands separators.
fn ops(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A latency in microseconds, in the unit that reads best.
fn latency(us: f64) -> String {
    if us <= 0.0 {
        "—".into()
    } else if us < 100.0 {
        format!("{us:.1} µs")
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

fn times(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}x")
    } else if x >= 10.0 {
        format!("{x:.1}x")
    } else {
        format!("{x:.2}x")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

const COLORS: [&str; 14] = [
    "#1f77b4", "#9ecae1", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#c49c94",
];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped horizontal bars on a log scale: one group per workload, one bar
/// per system, each labelled with its value.
fn svg_chart(systems: &[&str], groups: &[(String, Vec<(usize, f64)>)], quick: bool) -> String {
    const LEFT: f64 = 190.0;
    const PLOT: f64 = 560.0;
    const BAR: f64 = 13.0;
    const GAP: f64 = 3.0;
    const GROUP_GAP: f64 = 14.0;
    const LEGEND_ROW: f64 = 16.0;
    let width = LEFT + PLOT + 110.0;
    // The legend, wrapped into rows that fit the width: (x, row) per system.
    let mut legend = Vec::with_capacity(systems.len());
    let (mut lx, mut rows) = (10.0, 0usize);
    for name in systems {
        let w = 24.0 + 7.0 * name.len() as f64;
        if lx + w > width && lx > 10.0 {
            lx = 10.0;
            rows += 1;
        }
        legend.push((lx, rows));
        lx += w;
    }
    let top: f64 = 70.0 + rows as f64 * LEGEND_ROW;
    let values = groups.iter().flat_map(|(_, bars)| bars.iter().map(|b| b.1));
    let lo = values.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = values.fold(1.0_f64, f64::max);
    let lo_exp = lo.log10().floor() as i32;
    let hi_exp = (hi.log10().ceil() as i32).max(lo_exp + 1);
    let x = |v: f64| {
        LEFT + PLOT * (v.max(1.0).log10() - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp)
    };
    let height: f64 = top
        + groups
            .iter()
            .map(|(_, bars)| bars.len().max(1) as f64 * (BAR + GAP) + GROUP_GAP)
            .sum::<f64>()
        + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = if quick {
        "sqlite3store benchmark (quick smoke run): operations per second, log scale"
    } else {
        "sqlite3store benchmark: operations per second (cleanup: rows per second), log scale"
    };
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{title}</text>"#
    );
    // Legend.
    for (i, (name, (lx, row))) in systems.iter().zip(&legend).enumerate() {
        let ly = 30.0 + *row as f64 * LEGEND_ROW;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            COLORS[i % COLORS.len()],
            lx + 16.0,
            ly + 10.0,
            xml_escape(name)
        );
    }
    // Grid: one line per power of ten.
    let bottom = height - 30.0;
    for e in lo_exp..=hi_exp {
        let gx = x(10f64.powi(e));
        let label = match e {
            0..=2 => format!("{}", 10u64.pow(e as u32)),
            3..=5 => format!("{}k", 10u64.pow(e as u32 - 3)),
            _ => format!("{}M", 10u64.pow((e - 6).max(0) as u32)),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            bottom + 14.0
        );
    }
    let mut y = top;
    for (label, bars) in groups {
        let group_h = bars.len().max(1) as f64 * (BAR + GAP);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + group_h / 2.0 + 4.0,
            xml_escape(label)
        );
        for (i, (system, value)) in bars.iter().enumerate() {
            let by = y + i as f64 * (BAR + GAP);
            let w = (x(*value) - LEFT).max(1.0);
            let _ = writeln!(
                s,
                r##"<rect x="{LEFT}" y="{by:.1}" width="{w:.1}" height="{BAR}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" fill="#333">{}</text>"##,
                COLORS[system % COLORS.len()],
                xml_escape(systems[*system]),
                ops(*value),
                LEFT + w + 4.0,
                by + BAR - 2.0,
                ops(*value)
            );
        }
        y += group_h + GROUP_GAP;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, workload: Workload, workers: usize, ops_per_sec: f64, p99_us: f64) -> Row {
        Row {
            system: system.into(),
            durability: crate::workload::Durability::ProcessCrash,
            layer: crate::workload::Layer::Raw,
            repeat: 0,
            workload,
            workers,
            ops: 100,
            errors: 0,
            secs: 1.0,
            ops_per_sec,
            p50_us: p99_us / 2.0,
            p99_us,
            max_us: p99_us * 2.0,
            first_error: None,
            note: None,
            cleanup: None,
        }
    }

    #[test]
    fn ratios_and_checks() {
        let rows = vec![
            row(OURS, Workload::FindHit, 1, 400_000.0, 10.0),
            row(GO_STYLE, Workload::FindHit, 1, 100_000.0, 20.0),
            row(OURS, Workload::CommitUpdate, 16, 100_000.0, 6_000.0),
            row(OURS_FSYNC, Workload::CommitUpdate, 16, 10_000.0, 6_000.0),
            row(
                SINGLE_WRITER_FSYNC,
                Workload::CommitUpdate,
                16,
                6_000.0,
                900.0,
            ),
        ];
        assert_eq!(ratio(&rows, Workload::FindHit, 1, GO_STYLE), Some(4.0));
        assert_eq!(ratio(&rows, Workload::FindHit, 1, SQLX), None);
        let checks = checks(&rows);
        let get = |t: &str| checks.iter().find(|c| c.target == t).map(|c| c.met);
        assert_eq!(get("find-hit ×1: ≥ 3.5x go-style"), Some(Some(true)));
        assert_eq!(get("find-hit ×16: ≥ 8x go-style"), Some(None));
        assert_eq!(
            get("commit-update ×16: ≥ 2x single-writer mutex, both power loss"),
            Some(Some(false))
        );
        assert_eq!(get("commit-update ×16: p99 < 5 ms"), Some(Some(false)));
    }

    #[test]
    fn postgres_checks_compare_pgstore_with_its_go_style_baseline() {
        let rows = vec![
            row(PG_OURS, Workload::FindHit, 16, 30_000.0, 4_000.0),
            row(PG_GO_STYLE, Workload::FindHit, 16, 10_000.0, 9_000.0),
            row(PG_OURS, Workload::CommitUpdate, 1, 1_000.0, 900.0),
            row(PG_GO_STYLE, Workload::CommitUpdate, 1, 2_000.0, 900.0),
            Row {
                layer: crate::workload::Layer::SessionStore,
                ..row(SQLX_PG, Workload::FindHit, 16, 12_000.0, 9_000.0)
            },
            Row {
                layer: crate::workload::Layer::SessionStore,
                ..row(SQLX_PG, Workload::CommitUpdate, 1, 600.0, 900.0)
            },
            // A SQLite row must not count for the PostgreSQL targets.
            row(OURS, Workload::FindMiss, 16, 1.0, 1.0),
        ];
        let checks = checks(&rows);
        let get = |t: &str| {
            checks
                .iter()
                .find(|c| c.target == format!("PostgreSQL: {t}"))
                .map(|c| c.met)
        };
        assert_eq!(
            get("find-hit ×16: ≥ 1x go-style postgres"),
            Some(Some(true))
        );
        assert_eq!(
            get("commit-update ×1: ≥ 1x go-style postgres"),
            Some(Some(false))
        );
        assert_eq!(get("find-hit ×16: p99 < 5 ms"), Some(Some(true)));
        assert_eq!(get("find-miss ×16: p99 < 5 ms"), Some(None));
        assert_eq!(
            get("find-hit ×1: ≥ 2x tower-sessions-sqlx PostgresStore"),
            Some(None)
        );
        assert_eq!(
            get("find-hit ×16: ≥ 2x tower-sessions-sqlx PostgresStore"),
            Some(Some(true))
        );
        assert_eq!(
            get("commit-update ×1: ≥ 2x tower-sessions-sqlx PostgresStore"),
            Some(Some(false))
        );
        assert_eq!(get("mixed at 64 workers: zero errors"), Some(None));
        let comparisons = comparisons(&summarize(&rows));
        assert!(comparisons
            .iter()
            .any(|c| c.system == PG_OURS && c.other == PG_GO_STYLE && c.like_for_like));
        // Raw calls against the SessionStore trait: not like for like.
        assert!(comparisons.iter().any(|c| c.system == PG_OURS
            && c.other == SQLX_PG
            && c.workload == Workload::FindHit
            && !c.like_for_like
            && (c.ratio - 2.5).abs() < 1e-9));
    }

    #[test]
    fn summaries_take_the_median_run_and_the_spread() {
        let mut runs = Vec::new();
        for (i, ops) in [300.0, 100.0, 200.0].into_iter().enumerate() {
            let mut r = row(
                OURS_FSYNC,
                Workload::CommitUpdate,
                16,
                ops,
                10.0 * (i + 1) as f64,
            );
            r.repeat = i;
            runs.push(r);
            let mut g = row(GO_STYLE, Workload::CommitUpdate, 16, ops / 10.0, 5.0);
            g.durability = crate::workload::Durability::PowerLoss;
            g.errors = 1;
            runs.push(g);
        }
        let summary = summarize(&runs);
        assert_eq!(summary.len(), 2);
        let ours = &summary[0];
        assert_eq!((ours.runs, ours.min, ours.max), (3, 100.0, 300.0));
        assert_eq!(ours.row.ops_per_sec, 200.0);
        // The median run's p99; the worst of all runs; ops and errors summed.
        assert_eq!(ours.row.p99_us, 30.0);
        assert_eq!(ours.row.max_us, 60.0);
        assert_eq!((summary[1].row.ops, summary[1].row.errors), (300, 3));
        let c = comparisons(&summary);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].system.as_str(), c[0].other.as_str()),
            (OURS_FSYNC, GO_STYLE)
        );
        assert!((c[0].ratio - 10.0).abs() < 1e-9);
        assert!((c[0].low - 100.0 / 30.0).abs() < 1e-9);
        assert!((c[0].high - 300.0 / 10.0).abs() < 1e-9);
        // Default durability (the helper's) against go-style's power loss.
        assert!(!c[0].like_for_like);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(ops(1_234_567.4), "1,234,567");
        assert_eq!(ops(999.0), "999");
        assert_eq!(latency(12.34), "12.3 µs");
        assert_eq!(latency(2_500.0), "2.50 ms");
        assert_eq!(times(3.456), "3.46x");
    }

    #[test]
    fn svg_is_well_formed_enough() {
        let groups = vec![("find-hit ×1".to_owned(), vec![(0, 123_456.0), (1, 7.0)])];
        let svg = svg_chart(&[OURS, GO_STYLE], &groups, false);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("123,456"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2);
        // Many systems: the legend wraps instead of running off the chart,
        // and every system keeps a colour of its own.
        let many = [
            OURS,
            OURS_FSYNC,
            SINGLE_WRITER_FSYNC,
            ADAPTER,
            ADAPTER_FSYNC,
            GO_STYLE,
            SQLX,
            HAND_TUNED,
            PG_OURS,
            PG_ADAPTER,
            PG_GO_STYLE,
            SQLX_PG,
        ];
        assert!(many.len() <= COLORS.len());
        let svg = svg_chart(&many, &groups, false);
        let width: f64 = 190.0 + 560.0 + 110.0;
        for x in svg
            .split(r#"<text x=""#)
            .skip(1)
            .filter_map(|t| t.split('"').next()?.parse::<f64>().ok())
        {
            assert!(x < width, "text at x={x} past the width {width}");
        }
    }
}
