//! Full-stack benchmark (issue 14): the same axum + tower-sessions app, with
//! sliding expiry (`Expiry::OnInactivity`), once on tower-sessions'
//! `MemoryStore` (persists nothing: the upper bound), once on
//! `SqliteSessionStore` and, with `--postgres URL`, once on
//! `ContractStore<PgStore>` (this project's tower-sessions store over
//! PostgreSQL, in its own table `bench_axum_sessions`), each alone, loaded
//! by `wrk` in turn, side by side in one run.
//!
//! Three routes, each hit with a cookie of one of `--sessions` live sessions
//! picked at random per request:
//! - `/read`: reads a value of the session (a load, no save);
//! - `/write`: loads, changes and saves the session;
//! - `/visit`: reads a value, under `with_always_save(true)`: tower-sessions
//!   saves the unchanged session on every request, to slide its expiry
//!   (what `SqliteSessionStore`'s expiry write threshold, `--threshold`,
//!   is for).
//!
//! ```text
//! scripts/install-wrk.sh   # once: Debian's wrk, when missing
//! cargo run --release -p bench-axum            # 3 rounds of 5 s each
//! # PostgreSQL too, on a private server:
//! bash scripts/pg-test-server.sh run sh -c \
//!   'cargo run --release -p bench-axum -- --postgres "$PGSTORE_TEST_URL"'
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, ExitCode};

use axum::{http::StatusCode, routing::get, Router};
use clap::Parser;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_contract::ContractStore;
use tower_sessions_sqlite3store::SqliteSessionStore;

type BoxError = Box<dyn Error + Send + Sync>;

/// Loads an axum app with wrk, MemoryStore against SqliteSessionStore (and,
/// with --postgres, `ContractStore<PgStore>`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Seconds of measured load per store, route and round.
    #[arg(long, default_value_t = 5)]
    secs: u32,
    /// Rounds: in each, the stores take turns on each route, so a change
    /// in the machine's load hits both alike.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of unmeasured load before each measured run.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// wrk's open connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Live sessions, reused at random.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// The server's tokio worker threads; 0 for tokio's default (one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// SqliteSessionStore's expiry write threshold, a fraction of the
    /// session's lifetime (0 writes every save); the store's default when
    /// not given.
    #[arg(long)]
    threshold: Option<f64>,
    /// Only these routes (comma-separated: read, write, visit).
    #[arg(long, value_delimiter = ',', default_values_t = ROUTES.map(String::from))]
    routes: Vec<String>,
    /// Also serve the app on `ContractStore<PgStore>` against this server (a
    /// libpq URL or key=value conninfo), in table bench_axum_sessions,
    /// dropped before and after the run.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

/// The PostgreSQL store's table.
const PG_TABLE: &str = "bench_axum_sessions";

/// One measured wrk run.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// This process's CPU time per request during the run: the server
    /// under load (the other one idles; wrk is another process). Less
    /// sensitive than req/s to other load on the machine.
    cpu_us: f64,
    failed: u64,
}

impl Run {
    /// Each figure's median over `runs` (the upper one of an even count);
    /// failures summed.
    fn median(runs: &[Run]) -> Run {
        let mid = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        Run {
            rps: mid(|r| r.rps),
            p50_us: mid(|r| r.p50_us),
            p99_us: mid(|r| r.p99_us),
            cpu_us: mid(|r| r.cpu_us),
            failed: runs.iter().map(|r| r.failed).sum(),
        }
    }
}

const ROUTES: [&str; 3] = ["read", "write", "visit"];

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-axum: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BoxError> {
    if [args.secs, args.rounds, args.connections, args.threads].contains(&0) || args.sessions == 0 {
        return Err(
            "--sessions, --secs, --rounds, --connections and --threads must be at least 1".into(),
        );
    }
    if let Some(bad) = args.routes.iter().find(|r| !ROUTES.contains(&r.as_str())) {
        return Err(format!(
            "unknown route {bad:?}; the routes are {}",
            ROUTES.join(", ")
        )
        .into());
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk not found; install it with scripts/install-wrk.sh".into());
    }
    let dir = tempfile::tempdir()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "wrk -t{} -c{} -d{}s (+{}s warm-up) per store and route, {} rounds taking turns; \
         {} live sessions at random; {cores} cores; load average before: {}",
        args.threads,
        args.connections,
        args.secs,
        args.warmup,
        args.rounds,
        args.sessions,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let threshold = args.threshold;
    let mut servers = vec![
        Server::start(args, dir.path(), "memory", "MemoryStore", |_| async {
            Ok(MemoryStore::default())
        })?,
        Server::start(
            args,
            dir.path(),
            "sqlite",
            "SqliteSessionStore",
            |dir| async move {
                let store = SqliteSessionStore::open(dir.join("sessions.db")).await?;
                Ok(match threshold {
                    Some(fraction) => store.with_expiry_write_threshold(fraction)?,
                    None => store,
                })
            },
        )?,
    ];
    if let Some(fraction) = threshold {
        println!("SqliteSessionStore's expiry write threshold: {fraction}");
    }
    if let Some(url) = &args.postgres {
        drop_pg_table(url)?;
        servers.push(Server::start(
            args,
            dir.path(),
            "pg",
            "ContractStore<PgStore>",
            |_| async move {
                let store = pgstore::PgStore::builder(url)
                    .table(PG_TABLE)
                    .build()
                    .await?;
                Ok(ContractStore::new(store))
            },
        )?);
    }
    let routes: Vec<&str> = args.routes.iter().map(String::as_str).collect();
    let labels: Vec<&str> = servers.iter().map(|s| s.label).collect();
    let measured = measure(args, &routes, &servers);
    let mut stopped = Ok(());
    for server in servers {
        stopped = stopped.and(server.stop());
    }
    let dropped = args.postgres.as_deref().map_or(Ok(()), drop_pg_table);
    let results = measured?;
    stopped?;
    dropped?;

    let mut table = String::new();
    writeln!(
        table,
        "\nMedians of the rounds; CPU is this process's CPU time per request (the \
         app's, not the database server's); ratios to MemoryStore on the same route:\n\n\
         | route | store | req/s | p50 | p99 | CPU | req/s ratio | p99 ratio | CPU ratio |"
    )?;
    writeln!(table, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (route, runs) in routes.iter().zip(&results) {
        let medians: Vec<Run> = runs.iter().map(|r| Run::median(r)).collect();
        let memory = medians[0];
        for (server, m) in labels.iter().zip(&medians) {
            writeln!(
                table,
                "| {route} | {server} | {:.0} | {:.2} ms | {:.2} ms | {:.1} us \
                 | {:.2} | {:.2} | {:.2} |",
                m.rps,
                m.p50_us / 1000.0,
                m.p99_us / 1000.0,
                m.cpu_us,
                m.rps / memory.rps,
                m.p99_us / memory.p99_us,
                m.cpu_us / memory.cpu_us
            )?;
        }
    }
    print!("{table}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average after: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if results.iter().flatten().flatten().any(|r| r.failed > 0) {
        return Err("some requests failed (see the runs above)".into());
    }
    Ok(())
}

/// Per route, per server, the measured runs: in each round the servers
/// take turns on the route.
fn measure(
    args: &Args,
    routes: &[&str],
    servers: &[Server],
) -> Result<Vec<Vec<Vec<Run>>>, BoxError> {
    let mut results = Vec::new();
    for route in routes {
        for server in servers {
            if args.warmup > 0 {
                wrk(args, &server.script(route), &server.url, args.warmup)?;
            }
        }
        let mut runs = vec![Vec::new(); servers.len()];
        for _ in 0..args.rounds {
            for (s, server) in servers.iter().enumerate() {
                let run = wrk(args, &server.script(route), &server.url, args.secs)?;
                println!(
                    "{:>22} /{route:<5} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
                     server CPU {:>5.1} us/req  failed {}",
                    server.label,
                    run.rps,
                    run.p50_us / 1000.0,
                    run.p99_us / 1000.0,
                    run.cpu_us,
                    run.failed
                );
                runs[s].push(run);
            }
        }
        results.push(runs);
    }
    Ok(results)
}

/// Drops the PostgreSQL store's table, so each run starts from an empty one
/// and leaves nothing behind.
fn drop_pg_table(url: &str) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{PG_TABLE}\""))
            .await?;
        drop(client);
        conn.await??;
        Ok(())
    })
}

/// The app on one store, served on a runtime of its own.
struct Server {
    name: &'static str,
    label: &'static str,
    url: String,
    dir: std::path::PathBuf,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens a store with `open`, seeds the sessions, writes a wrk script
    /// per route, and starts serving.
    fn start<S, F, Fut>(
        args: &Args,
        dir: &Path,
        name: &'static str,
        label: &'static str,
        open: F,
    ) -> Result<Self, BoxError>
    where
        S: SessionStore + Clone,
        F: FnOnce(std::path::PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<S, BoxError>>,
    {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if args.workers > 0 {
            builder.worker_threads(args.workers);
        }
        let runtime = builder.enable_all().build()?;
        let store = runtime.block_on(open(dir.to_path_buf()))?;
        let cookies = runtime.block_on(seed(&store, args.sessions))?;
        for route in ROUTES {
            std::fs::write(
                dir.join(format!("{name}-{route}.lua")),
                wrk_script(route, &cookies),
            )?;
        }
        let listener = runtime.block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            0,
        ))))?;
        let url = format!("http://{}/", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(async move {
            axum::serve(listener, router(store))
                .with_graceful_shutdown(async {
                    // Either a stop or the sender dropped: stop serving.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            name,
            label,
            url,
            dir: dir.to_path_buf(),
            runtime,
            stop,
            served,
        })
    }

    fn script(&self, route: &str) -> std::path::PathBuf {
        self.dir.join(format!("{}-{route}.lua", self.name))
    }

    /// Stops serving; reports the server's error, if it failed.
    fn stop(self) -> Result<(), BoxError> {
        // The server may already be gone only if it failed; `served` says.
        let _ = self.stop.send(());
        self.runtime.block_on(self.served)??;
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(10));
        Ok(())
    }
}

/// The app: sliding expiry, one route that only reads, one that saves, and
/// one that only reads but saves every time (`with_always_save(true)`).
fn router<S: SessionStore + Clone>(store: S) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    let always_save = Router::new()
        .route("/visit", get(read))
        .layer(sessions.clone().with_always_save(true));
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .layer(sessions)
        .merge(always_save)
}

/// 404 when the session is missing, so a miss counts as a failed request.
async fn read(session: Session) -> Result<String, StatusCode> {
    let n: u64 = session
        .get("n")
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(n.to_string())
}

async fn write(session: Session) -> Result<String, StatusCode> {
    let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let n: u64 = session
        .get("n")
        .await
        .map_err(fail)?
        .ok_or(StatusCode::NOT_FOUND)?;
    session.insert("n", n + 1).await.map_err(fail)?;
    Ok((n + 1).to_string())
}

/// Creates `count` live sessions in `store`; returns their cookies.
async fn seed<S: SessionStore>(store: &S, count: usize) -> Result<Vec<String>, BoxError> {
    let mut cookies = Vec::with_capacity(count);
    for _ in 0..count {
        let mut record = Record {
            id: Id::default(),
            data: HashMap::from([("n".to_owned(), serde_json::json!(0))]),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        store.create(&mut record).await?;
        cookies.push(format!("id={}", record.id));
    }
    Ok(cookies)
}

/// A wrk script: each request carries a random cookie of `cookies`; at the
/// end, one line of results.
fn wrk_script(route: &str, cookies: &[String]) -> String {
    let mut lua = String::from("local cookies = {\n");
    for cookie in cookies {
        // Session ids are base64url: nothing to escape.
        let _ = writeln!(lua, "  \"{cookie}\",");
    }
    let _ = write!(
        lua,
        r#"}}
local n = 0
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
function init(args)
  math.randomseed(os.time() + 7919 * (tid or 0))
end
function request()
  return wrk.format("GET", "/{route}", {{ ["Cookie"] = cookies[math.random(#cookies)] }})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_AXUM %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"#
    );
    lua
}

/// This process's CPU time (user and system, all threads) so far, in
/// microseconds, from `/proc/self/stat` (in USER_HZ ticks: 100 a second on
/// Linux, whatever the kernel's own tick).
fn process_cpu_us() -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // After the command name, in parentheses: state (field 3), ...,
    // utime (14), stime (15).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("unexpected /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> Result<f64, BoxError> {
        Ok(fields
            .get(i)
            .ok_or("unexpected /proc/self/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) * 10_000.0)
}

/// Runs wrk for `secs` and parses the script's result line.
fn wrk(args: &Args, script: &Path, url: &str, secs: u32) -> Result<Run, BoxError> {
    let cpu_before = process_cpu_us()?;
    let out = Command::new("wrk")
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_AXUM "))
        .ok_or_else(|| format!("no result line in wrk's output: {stdout}"))?;
    let cpu_us = process_cpu_us()? - cpu_before;
    let v: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [requests, duration_us, p50_us, p99_us, failed] = v[..] else {
        return Err(format!("unexpected result line: {line}").into());
    };
    Ok(Run {
        rps: requests / (duration_us / 1e6),
        p50_us,
        p99_us,
        cpu_us: cpu_us / requests.max(1.0),
        failed: failed as u64,
    })
}
