//! The results: tables, ratios, the issue's targets, and the files written
//! by `--out` (JSON, Markdown, SVG).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::workload::{Config, Memory, Row, Workload};
use crate::{GO_STYLE, OURS, OURS_FSYNC, SINGLE_WRITER, SINGLE_WRITER_FSYNC, SQLX};

/// How the systems are run, for readers of the report.
const METHOD: &str = "\
Systems:
- **sqlite3store**: default options (WAL, group commit, reader pool); its cleanup thread is off and \
the benchmark calls `delete_expired_report()` itself.
- **sqlite3store single-writer**: the same with `group_commit(false)`: one mutex around the writer.
- **go-style**: Go's scs `sqlite3store` reproduced in Rust: its exact SQL, a statement prepared per call, \
rollback journal, `synchronous=NORMAL`, `busy_timeout=5000`, a pool that grows to the concurrency. \
It does SQLite's share of Go's work, not Go's own (cgo calls, `database/sql`, `Scan`), so it is \
a lower bound on the real Go package's cost per call.
- **tower-sessions-sqlx**: tower-sessions-sqlx-store 0.15 `SqliteStore` as its README sets it up \
(`SqlitePool::connect(\"sqlite://…?mode=rwc\")`, `migrate()`), through the `SessionStore` trait, in its own \
process; each worker thread blocks on the call's future. Its ids are i128 and its records carry the \
256 bytes as a 256-character string.

Reproduce with `cargo run --release -p bench -- --peers --out docs`. \
Each worker loops until the deadline; only the call is timed. Throughput workloads share one file \
per system (reads first, inserts last); each cleanup workload gets a fresh file. Errors are counted, \
never fatal; a failed call still counts as an operation.

";

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// How the run was set up.
    pub(crate) meta: Meta,
    /// What it ran.
    pub(crate) config: Config,
    /// One row per system and workload.
    pub(crate) rows: Vec<Row>,
    /// Peak memory per system.
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
        rows: Vec<Row>,
        memory: Vec<Memory>,
        missing: Vec<String>,
    ) -> Self {
        let checks = checks(&rows);
        Self {
            meta,
            config,
            rows,
            memory,
            checks,
            missing,
        }
    }

    fn find(&self, system: &str, workload: Workload, workers: usize) -> Option<&Row> {
        find_row(&self.rows, system, workload, workers)
    }

    /// Systems in a fixed order: ours first, then the rest as they came.
    fn systems(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for known in [
            OURS,
            SINGLE_WRITER,
            OURS_FSYNC,
            SINGLE_WRITER_FSYNC,
            GO_STYLE,
            SQLX,
        ] {
            if self.rows.iter().any(|r| r.system == known) {
                out.push(known);
            }
        }
        for r in &self.rows {
            if !out.contains(&r.system.as_str()) {
                out.push(&r.system);
            }
        }
        out
    }

    /// (workload, workers) pairs of the throughput workloads, in order.
    fn instances(&self) -> Vec<(Workload, usize)> {
        let mut out: Vec<(Workload, usize)> = self
            .rows
            .iter()
            .filter(|r| !matches!(r.workload, Workload::Cleanup | Workload::CleanupIdle))
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
             with {} workers finding and committing (half each). Latency is per call, \
             p50 / p99 / worst. Ratios are ops/s of sqlite3store over the other system.\n",
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
        );
        for m in &self.missing {
            let _ = writeln!(md, "> **Missing:** {m}\n");
        }
        md.push_str(METHOD);
        let systems = self.systems();
        for (workload, workers) in self.instances() {
            let title = match workload {
                Workload::MixedMany => format!("mixed, {workers} workers (zero-errors check)"),
                Workload::All => "all() over every session, 1 worker".to_owned(),
                _ => format!("{}, {workers} worker{}", workload.name(), plural(workers)),
            };
            let _ = writeln!(md, "## {title}\n");
            let _ = writeln!(
                md,
                "| system | ops/s | p50 | p99 | worst | errors | notes |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
            for system in &systems {
                let Some(r) = self.find(system, workload, workers) else {
                    continue;
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.system,
                    if r.ops == 0 {
                        "n/a".into()
                    } else {
                        ops(r.ops_per_sec)
                    },
                    latency(r.p50_us),
                    latency(r.p99_us),
                    latency(r.max_us),
                    r.errors,
                    notes(r),
                );
            }
            let ratios: Vec<String> = [GO_STYLE, SQLX, SINGLE_WRITER]
                .into_iter()
                .filter_map(|other| {
                    ratio(&self.rows, workload, workers, other)
                        .map(|x| format!("ours/{} **{}**", short(other), times(x)))
                })
                .collect();
            let mut ratios = ratios;
            if let Some(x) = ratio_of(
                &self.rows,
                OURS_FSYNC,
                SINGLE_WRITER_FSYNC,
                workload,
                workers,
            ) {
                ratios.push(format!(
                    "power-loss group commit/single-writer **{}**",
                    times(x)
                ));
            }
            if !ratios.is_empty() {
                let _ = writeln!(md, "\n{}", ratios.join(" · "));
            }
            md.push('\n');
        }
        self.cleanup_markdown(&mut md, &systems);
        if !self.memory.is_empty() {
            let _ = writeln!(md, "## Memory\n");
            let _ = writeln!(
                md,
                "Resident memory of the process (`VmRSS`) when each phase began, once its file \
                 was preloaded and opened and its keys prepared, and the peak (`VmHWM`, reset at \
                 that moment) during the phase. The benchmark's own keys and histograms are in \
                 both; memory freed by earlier phases may stay resident, so compare the growth. \
                 tower-sessions-sqlx runs in its own process.\n"
            );
            let _ = writeln!(md, "| system | phase | RSS at start | peak RSS | growth |");
            let _ = writeln!(md, "|---|---|---:|---:|---:|");
            for m in &self.memory {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {}{} | {} |",
                    m.system,
                    m.phase,
                    mib(m.start_kib),
                    mib(m.peak_kib),
                    if m.reset {
                        ""
                    } else {
                        " (process peak so far)"
                    },
                    mib(m.peak_kib.saturating_sub(m.start_kib)),
                );
            }
            md.push('\n');
        }
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

    fn cleanup_markdown(&self, md: &mut String, systems: &[&str]) {
        for (workload, title) in [
            (Workload::Cleanup, "Cleanup under load"),
            (Workload::CleanupIdle, "Cleanup, store otherwise idle"),
        ] {
            let rows: Vec<&Row> = systems
                .iter()
                .filter_map(|s| {
                    self.rows
                        .iter()
                        .find(|r| r.system == *s && r.workload == workload)
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
                    "| system | removed | took | rows/s | workers' ops/s | p99 | worst | requests > 25 ms | errors | files before → after → closed | notes |"
                );
                let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
            } else {
                let _ = writeln!(
                    md,
                    "| system | removed | took | rows/s | files before → after → closed | notes |"
                );
                let _ = writeln!(md, "|---|---:|---:|---:|---|---|");
            }
            for r in rows {
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
                        "| {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {files} | {} |",
                        r.system,
                        c.removed,
                        c.secs,
                        ops(c.rows_per_sec),
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
                        "| {} | {} | {:.2} s | {} | {files} | {} |",
                        r.system,
                        c.removed,
                        c.secs,
                        ops(c.rows_per_sec),
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
                    let r = self.find(s, workload, workers)?;
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
                    let r = self
                        .rows
                        .iter()
                        .find(|r| r.system == *s && r.workload == workload)?;
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
            format!("{} ×16: ≥ 2x single-writer mutex", workload.name()),
            ratio(rows, workload, 16, SINGLE_WRITER),
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
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn short(system: &str) -> &str {
    match system {
        SINGLE_WRITER => "single-writer",
        SQLX => "sqlx",
        other => other,
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

const COLORS: [&str; 6] = [
    "#1f77b4", "#9ecae1", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
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
    const TOP: f64 = 70.0;
    let values = groups.iter().flat_map(|(_, bars)| bars.iter().map(|b| b.1));
    let lo = values.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = values.fold(1.0_f64, f64::max);
    let lo_exp = lo.log10().floor() as i32;
    let hi_exp = (hi.log10().ceil() as i32).max(lo_exp + 1);
    let x = |v: f64| {
        LEFT + PLOT * (v.max(1.0).log10() - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp)
    };
    let height: f64 = TOP
        + groups
            .iter()
            .map(|(_, bars)| bars.len().max(1) as f64 * (BAR + GAP) + GROUP_GAP)
            .sum::<f64>()
        + 40.0;
    let width = LEFT + PLOT + 110.0;
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
    let mut lx = 10.0;
    for (i, name) in systems.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="30" width="12" height="12" fill="{}"/><text x="{}" y="40">{}</text>"#,
            COLORS[i % COLORS.len()],
            lx + 16.0,
            xml_escape(name)
        );
        lx += 24.0 + 7.0 * name.len() as f64;
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
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            bottom + 14.0
        );
    }
    let mut y = TOP;
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
            row(SINGLE_WRITER, Workload::CommitUpdate, 16, 60_000.0, 900.0),
        ];
        assert_eq!(ratio(&rows, Workload::FindHit, 1, GO_STYLE), Some(4.0));
        assert_eq!(ratio(&rows, Workload::FindHit, 1, SQLX), None);
        let checks = checks(&rows);
        let get = |t: &str| checks.iter().find(|c| c.target == t).map(|c| c.met);
        assert_eq!(get("find-hit ×1: ≥ 3.5x go-style"), Some(Some(true)));
        assert_eq!(get("find-hit ×16: ≥ 8x go-style"), Some(None));
        assert_eq!(
            get("commit-update ×16: ≥ 2x single-writer mutex"),
            Some(Some(false))
        );
        assert_eq!(get("commit-update ×16: p99 < 5 ms"), Some(Some(false)));
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
    }
}
