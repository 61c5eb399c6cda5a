//! The workloads, the timed runner and the result rows.
//!
//! Shared by the `bench` binary and the peers binary (`bench/peers`, outside
//! the workspace, depends on this crate by path), so every system is loaded,
//! driven, timed and reported the same way. Nothing here touches SQLite: a
//! system plugs in through [`System`] (create a preloaded file, open it) and
//! [`Target`] (the operations). Keep this crate free of SQLite: the peers
//! binary links sqlx's bundled SQLite, which clashes with rusqlite's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Errors of a benchmark run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes of session data, in every row and every commit.
pub const DATA_LEN: usize = 256;
/// Random bytes behind each token (43 characters of base64url).
pub const TOKEN_BYTES: usize = 32;
/// Distinct data blobs that commits cycle through (preloaded rows each get
/// their own random data).
const DATA_BLOBS: usize = 256;
/// Tokens that are never stored, for `find-miss`.
const MISS_TOKENS: usize = 10_000;
/// The longest latency recorded exactly, in nanoseconds; longer ones count
/// as this (a minute is far past any busy timeout).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// A request slower than this during cleanup counts as slow (the issue's
/// bound on how long cleanup may make a request wait).
const SLOW_REQUEST_NS: u64 = 25_000_000;

/// What one run measures; the main binary hands it to the peers binary as
/// JSON, so both run the same thing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Active sessions preloaded for the throughput workloads and cleanup.
    pub sessions: usize,
    /// Expired sessions preloaded for the cleanup workloads.
    pub expired: usize,
    /// Seconds each throughput workload runs.
    pub duration_secs: f64,
    /// Seconds of untimed warm-up (finds and commits) before each workload.
    pub warmup_secs: f64,
    /// Worker counts for the throughput workloads.
    pub workers: Vec<usize>,
    /// Times each cell (a workload at a worker count) runs per system; the
    /// report gives the median and the spread.
    pub repeats: usize,
    /// Workers of the `mixed-many` zero-errors check.
    pub many_workers: usize,
    /// Workers finding and committing while `cleanup` runs.
    pub cleanup_workers: usize,
    /// The workloads to run.
    pub workloads: Vec<Workload>,
    /// Seed of every token and data byte, so all systems get the same data.
    pub seed: u64,
    /// Where the temporary database directories go (the system temp dir
    /// when unset).
    pub dir: Option<PathBuf>,
}

/// One kind of work. Throughput workloads run at each worker count for a
/// fixed time; the cleanup workloads run once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `all()` over the preloaded sessions, one worker.
    All,
    /// `find` of a preloaded token.
    FindHit,
    /// `find` of a token never stored.
    FindMiss,
    /// `commit` replacing a preloaded session.
    CommitUpdate,
    /// `commit` of a new token.
    CommitInsert,
    /// 90% find, 9% commit, 1% delete, over the preloaded tokens.
    Mixed,
    /// `mixed` at many workers: the zero-errors check.
    MixedMany,
    /// Cleanup of the expired rows while workers find and commit.
    Cleanup,
    /// Cleanup of the expired rows with the store otherwise idle.
    CleanupIdle,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 9] = [
        Workload::All,
        Workload::FindHit,
        Workload::FindMiss,
        Workload::CommitUpdate,
        Workload::CommitInsert,
        Workload::Mixed,
        Workload::MixedMany,
        Workload::Cleanup,
        Workload::CleanupIdle,
    ];

    /// The throughput workloads in the order they run on one file: reads
    /// first, while every preloaded token is there; then writes that keep
    /// the row count; inserts last, as they grow the table.
    pub const THROUGHPUT_ORDER: [Workload; 7] = [
        Workload::All,
        Workload::FindHit,
        Workload::FindMiss,
        Workload::CommitUpdate,
        Workload::Mixed,
        Workload::MixedMany,
        Workload::CommitInsert,
    ];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::All => "all",
            Workload::FindHit => "find-hit",
            Workload::FindMiss => "find-miss",
            Workload::CommitUpdate => "commit-update",
            Workload::CommitInsert => "commit-insert",
            Workload::Mixed => "mixed",
            Workload::MixedMany => "mixed-many",
            Workload::Cleanup => "cleanup",
            Workload::CleanupIdle => "cleanup-idle",
        }
    }

    /// The workload called `name`.
    pub fn parse(name: &str) -> Option<Workload> {
        Self::ALL.into_iter().find(|w| w.name() == name.trim())
    }

    /// Whether it is one of the cleanup workloads (a fresh file per run).
    pub fn is_cleanup(self) -> bool {
        matches!(self, Workload::Cleanup | Workload::CleanupIdle)
    }
}

/// One preloaded session.
#[derive(Debug, Clone)]
pub struct SeedRow {
    /// The token's random bytes (see [`token_string`]).
    pub token: [u8; TOKEN_BYTES],
    /// The session data.
    pub data: [u8; DATA_LEN],
    /// When it expires (in the past for expired rows).
    pub expiry: SystemTime,
}

/// The 43-character base64url (no padding) token for `raw`, as Go's scs
/// makes them.
pub fn token_string(raw: &[u8; TOKEN_BYTES]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A small, fast, deterministic generator (SplitMix64): the same seed gives
/// every system the same tokens and data, and it costs nanoseconds in the
/// loop, where it picks keys and operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `stream` number `index` of `seed`.
    pub fn new(seed: u64, stream: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.0 ^= r.next_u64() ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Streams of the generator, one per kind of key.
#[derive(Clone, Copy)]
enum Stream {
    Active = 1,
    Expired = 2,
    Miss = 3,
    Insert = 4,
    Blob = 5,
    Worker = 6,
}

fn random_token(seed: u64, stream: Stream, i: usize) -> [u8; TOKEN_BYTES] {
    let mut token = [0; TOKEN_BYTES];
    Rng::new(seed, stream as u64, i as u64).fill(&mut token);
    token
}

/// When preloaded session `i` expires. Active sessions: a day or so from
/// now. Expired ones: spread over the past day in insertion order, as in a
/// table filled over time with a fixed lifetime, where older rows (lower
/// rowids) expire first.
fn seed_expiry(now: SystemTime, i: usize, of: usize, expired: bool) -> SystemTime {
    if expired {
        let age_ms = (of - 1 - i) as u64 * 86_400_000 / of as u64;
        now - Duration::from_secs(60) - Duration::from_millis(age_ms)
    } else {
        now + Duration::from_secs(86_400) + Duration::from_secs((i % 3600) as u64)
    }
}

/// The rows of a fresh database: `active` and `expired` sessions,
/// interleaved evenly (the active ones stand for sessions that were
/// refreshed and so outlive their older neighbours).
pub fn seed_rows(seed: u64, active: usize, expired: usize) -> impl Iterator<Item = SeedRow> {
    let now = SystemTime::now();
    let total = active + expired;
    // Spread the active rows evenly among the expired ones.
    let mut a = 0;
    let mut e = 0;
    (0..total).map(move |n| {
        let take_active = e >= expired || (a < active && a * total <= n * active);
        let (stream, i, of, is_expired) = if take_active {
            a += 1;
            (Stream::Active, a - 1, active, false)
        } else {
            e += 1;
            (Stream::Expired, e - 1, expired, true)
        };
        let mut rng = Rng::new(seed, stream as u64, i as u64);
        let mut token = [0; TOKEN_BYTES];
        rng.fill(&mut token);
        let mut data = [0; DATA_LEN];
        rng.fill(&mut data);
        SeedRow {
            token,
            data,
            expiry: seed_expiry(now, i, of, is_expired),
        }
    })
}

/// The operations of one open store, as the workloads call them. Every
/// method is one request: everything it does is timed.
pub trait Target: Sync {
    /// A session as this system addresses it, prepared before timing.
    type Key: Send + Sync;

    /// Prepares the key for `token`, to be committed with `data` and
    /// `expiry`.
    fn key(&self, token: &[u8; TOKEN_BYTES], data: &Arc<[u8]>, expiry: SystemTime) -> Self::Key;
    /// Looks the session up; whether it was found.
    fn find(&self, key: &Self::Key) -> Result<bool, BoxError>;
    /// Stores the session (insert or replace).
    fn commit(&self, key: &Self::Key) -> Result<(), BoxError>;
    /// Stores a session never stored before, as the system's users store a
    /// new one (`commit-insert`). By default [`commit`](Self::commit);
    /// tower-sessions systems call `SessionStore::create`, as tower-sessions
    /// does for a new session (a `save` there may only update).
    fn insert(&self, key: &Self::Key) -> Result<(), BoxError> {
        self.commit(key)
    }
    /// Removes the session.
    fn delete(&self, key: &Self::Key) -> Result<(), BoxError>;
    /// Every active session, as the system's API returns them; how many.
    /// `None` when the system has no such operation.
    fn all(&self) -> Option<Result<usize, BoxError>>;
    /// Deletes the expired sessions, as the system's cleanup does; the
    /// number removed if the API reports it.
    fn cleanup(&self) -> Result<Option<u64>, BoxError>;
    /// Rows in the table, expired or not (not timed).
    fn count(&self) -> Result<u64, BoxError>;
}

/// What an acknowledged write survives, as a system is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// A crash or kill of the process; a power loss may lose the last
    /// commits (no fsync per commit: WAL with `synchronous=NORMAL`).
    ProcessCrash,
    /// A power loss too: an fsync before each acknowledgement.
    PowerLoss,
}

impl Durability {
    /// How the report labels it.
    pub fn label(self) -> &'static str {
        match self {
            Durability::ProcessCrash => "process crash",
            Durability::PowerLoss => "power loss",
        }
    }
}

/// Which API a system is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// The store's own calls (or raw SQL), synchronously on the worker.
    Raw,
    /// tower-sessions' `SessionStore` trait: a `Record` encoded per call, a
    /// future that each worker thread blocks on, on a multi-thread tokio
    /// runtime with default settings.
    SessionStore,
}

impl Layer {
    /// How the report labels it.
    pub fn label(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::SessionStore => "SessionStore",
        }
    }
}

/// The i128 id tower-sessions systems use for a token: its first 16 bytes.
pub fn session_id(token: &[u8; TOKEN_BYTES]) -> i128 {
    let mut id = [0; 16];
    id.copy_from_slice(&token[..16]);
    i128::from_le_bytes(id)
}

/// Random bytes behind a tower-sessions system's session value: base64
/// makes them [`DATA_LEN`] characters, the same amount of data the raw
/// systems store.
const VALUE_BYTES: usize = DATA_LEN / 4 * 3;

/// The session value tower-sessions systems store for `data`: base64 of its
/// first bytes, [`DATA_LEN`] characters.
pub fn session_value(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(&data[..VALUE_BYTES.min(data.len())])
}

/// A system under test: how to make and open its database.
pub trait System {
    /// The open store.
    type Target: Target;
    /// The name in the results.
    fn name(&self) -> &'static str;
    /// What its acknowledged writes survive.
    fn durability(&self) -> Durability;
    /// The API the workloads call.
    fn layer(&self) -> Layer;
    /// Creates a fresh database at `path` holding `rows`, quickly (one big
    /// transaction), the way this system would find such a file.
    fn create(&self, path: &Path, rows: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError>;
    /// Opens the database at `path` as a user of this system would.
    fn open(&self, path: &Path) -> Result<Self::Target, BoxError>;
}

/// What a cleanup workload measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupResult {
    /// Rows removed.
    pub removed: u64,
    /// Seconds the cleanup call took.
    pub secs: f64,
    /// Rows removed per second.
    pub rows_per_sec: f64,
    /// Bytes of the database files (main file plus journal or WAL) before.
    pub size_before: u64,
    /// Bytes of the database files right after cleanup returned.
    pub size_after: u64,
    /// Bytes of the database files once the store was closed.
    pub size_closed: u64,
    /// Workers' requests that took longer than 25 ms.
    pub slow_requests: u64,
}

/// One measured workload of one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The system's name.
    pub system: String,
    /// What the system's acknowledged writes survive.
    pub durability: Durability,
    /// The API the workloads called.
    pub layer: Layer,
    /// Which run of the cell this was (0-based).
    pub repeat: usize,
    /// The workload.
    pub workload: Workload,
    /// Concurrent workers.
    pub workers: usize,
    /// Operations completed (successful or not).
    pub ops: u64,
    /// Operations that failed (or returned a wrong answer).
    pub errors: u64,
    /// Seconds the workers ran.
    pub secs: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Worst latency, microseconds.
    pub max_us: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Anything the reader should know about this row.
    pub note: Option<String>,
    /// For the cleanup workloads.
    pub cleanup: Option<CleanupResult>,
}

/// Peak memory of one system during one run of one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    /// The system's name.
    pub system: String,
    /// The cell's workload. Measuring starts once the file is preloaded and
    /// opened and the keys prepared, so setup is not counted.
    pub workload: Workload,
    /// The cell's workers.
    pub workers: usize,
    /// Resident memory when the phase began, KiB.
    pub start_kib: u64,
    /// Peak resident memory during the phase (`VmHWM`, reset at its
    /// start when the kernel allows), KiB.
    pub peak_kib: u64,
    /// Whether the peak was reset at the start of the phase; if not, it is
    /// the peak of the whole process so far.
    pub reset: bool,
}

/// One line of results, as the peers binary prints them (JSON, one a line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Line {
    /// A measured workload.
    Row(Row),
    /// A system's memory.
    Memory(Memory),
}

/// Latencies and counts of one timed run.
#[derive(Debug)]
struct Measured {
    ops: u64,
    errors: u64,
    hist: Histogram<u64>,
    secs: f64,
    first_error: Option<String>,
    exhausted: bool,
}

/// What one operation did.
enum Outcome {
    Ok,
    Failed(String),
    /// No more keys for this workload: the worker stops.
    Exhausted,
}

impl<E: std::fmt::Display> From<Result<(), E>> for Outcome {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Outcome::Ok,
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

impl Default for Measured {
    fn default() -> Self {
        Self {
            ops: 0,
            errors: 0,
            hist: new_histogram(),
            secs: 0.0,
            first_error: None,
            exhausted: false,
        }
    }
}

/// Runs `op` on `workers` threads, each in a loop until `main` returns, and
/// times each call. `main` runs on this thread once all workers are ready;
/// its receiver reports (disconnects) when every worker has stopped on its
/// own. Only the call to `op` is inside the latency timing.
fn measure<R>(
    workers: usize,
    seed: u64,
    op: &(dyn Fn(&mut Rng) -> Outcome + Sync),
    main: impl FnOnce(&Receiver<()>) -> R,
) -> (Measured, R) {
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(workers + 1);
    let (alive, all_stopped) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (stop, ready, alive) = (&stop, &ready, alive.clone());
                s.spawn(move || {
                    let _alive = alive;
                    let mut rng = Rng::new(seed, Stream::Worker as u64, w as u64);
                    let mut hist = new_histogram();
                    let (mut ops, mut errors) = (0u64, 0u64);
                    let mut first_error = None;
                    let mut exhausted = false;
                    ready.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let outcome = op(&mut rng);
                        let took = started.elapsed();
                        match outcome {
                            Outcome::Ok => {}
                            Outcome::Failed(err) => {
                                errors += 1;
                                first_error.get_or_insert(err);
                            }
                            Outcome::Exhausted => {
                                exhausted = true;
                                break;
                            }
                        }
                        ops += 1;
                        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                        hist.saturating_record(ns.max(1));
                    }
                    (hist, ops, errors, first_error, exhausted)
                })
            })
            .collect();
        drop(alive);
        ready.wait();
        let started = Instant::now();
        let result = main(&all_stopped);
        stop.store(true, Ordering::Relaxed);
        let mut m = Measured::default();
        for h in handles {
            let (hist, ops, errors, first_error, exhausted) = h.join().expect("worker panicked");
            m.hist.add(&hist).expect("same bounds");
            m.ops += ops;
            m.errors += errors;
            m.exhausted |= exhausted;
            if m.first_error.is_none() {
                m.first_error = first_error;
            }
        }
        // Every counted op finished inside this window.
        m.secs = started.elapsed().as_secs_f64();
        (m, result)
    })
}

/// Runs `op` on `workers` threads for `duration` (or until they all run out
/// of keys).
fn measure_for(
    workers: usize,
    seed: u64,
    duration: Duration,
    op: &(dyn Fn(&mut Rng) -> Outcome + Sync),
) -> Measured {
    measure(workers, seed, op, |all_stopped| {
        // Returns early only if every worker stopped on its own.
        let _ = all_stopped.recv_timeout(duration);
    })
    .0
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Who ran what: the fields of a [`Row`] that do not come from timing.
#[derive(Debug, Clone, Copy)]
struct Tag<'a> {
    system: &'a str,
    durability: Durability,
    layer: Layer,
    repeat: usize,
}

fn row(tag: Tag<'_>, workload: Workload, workers: usize, m: &Measured) -> Row {
    let has = !m.hist.is_empty();
    Row {
        system: tag.system.to_owned(),
        durability: tag.durability,
        layer: tag.layer,
        repeat: tag.repeat,
        workload,
        workers,
        ops: m.ops,
        errors: m.errors,
        secs: m.secs,
        ops_per_sec: if m.secs > 0.0 {
            m.ops as f64 / m.secs
        } else {
            0.0
        },
        p50_us: if has {
            micros(m.hist.value_at_quantile(0.50))
        } else {
            0.0
        },
        p99_us: if has {
            micros(m.hist.value_at_quantile(0.99))
        } else {
            0.0
        },
        max_us: if has { micros(m.hist.max()) } else { 0.0 },
        first_error: m.first_error.clone(),
        note: m
            .exhausted
            .then(|| format!("ran out of prepared keys after {:.2} s", m.secs)),
        cleanup: None,
    }
}

/// Keys prepared before timing.
struct Keys<K> {
    active: Vec<K>,
    miss: Vec<K>,
}

fn data_blobs(seed: u64) -> Vec<Arc<[u8]>> {
    (0..DATA_BLOBS)
        .map(|i| {
            let mut data = vec![0; DATA_LEN];
            Rng::new(seed, Stream::Blob as u64, i as u64).fill(&mut data);
            Arc::from(data)
        })
        .collect()
}

/// Prints progress to stderr (stdout carries the results).
fn progress(row: &Row) {
    let mut line = format!(
        "  {:<28} {:<14} x{:<3} {:>11.0} ops/s  p50 {:>9.1} us  p99 {:>9.1} us  max {:>10.1} us  errors {}",
        row.system, row.workload.name(), row.workers, row.ops_per_sec, row.p50_us, row.p99_us, row.max_us, row.errors
    );
    if let Some(c) = &row.cleanup {
        line.push_str(&format!(
            "  | cleanup {} rows in {:.2} s = {:.0} rows/s, {} -> {} -> {} bytes, {} requests > 25 ms",
            c.removed,
            c.secs,
            c.rows_per_sec,
            c.size_before,
            c.size_after,
            c.size_closed,
            c.slow_requests
        ));
    }
    if let Some(err) = &row.first_error {
        line.push_str(&format!("  (first error: {err})"));
    }
    if let Some(note) = &row.note {
        line.push_str(&format!("  [{note}]"));
    }
    eprintln!("{line}");
}

/// Bytes of the database at `path` with its journal or WAL.
pub fn files_size(path: &Path) -> u64 {
    ["", "-wal", "-journal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map_or(0, |m| m.len())
        })
        .sum()
}

/// A fresh temporary directory for one database, removed on drop.
fn fresh_dir(cfg: &Config) -> Result<tempfile::TempDir, BoxError> {
    let mut b = tempfile::Builder::new();
    b.prefix("sqlite3store-bench-");
    Ok(match &cfg.dir {
        Some(dir) => b.tempdir_in(dir)?,
        None => b.tempdir()?,
    })
}

/// One measured cell: a workload at a worker count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// The workload.
    pub workload: Workload,
    /// Concurrent workers (for `cleanup-idle`, 0).
    pub workers: usize,
}

/// The cells `cfg` asks for, in the order they must run: the throughput
/// cells in [`Workload::THROUGHPUT_ORDER`] (they share one file per system),
/// then the cleanup cells (a fresh file each run).
pub fn cells(cfg: &Config) -> Vec<Cell> {
    let wants = |w: &Workload| cfg.workloads.contains(w);
    let mut out = Vec::new();
    for workload in Workload::THROUGHPUT_ORDER.into_iter().filter(wants) {
        let counts = match workload {
            Workload::All => vec![1],
            Workload::MixedMany => vec![cfg.many_workers],
            _ => cfg.workers.clone(),
        };
        out.extend(counts.into_iter().map(|workers| Cell { workload, workers }));
    }
    for workload in [Workload::Cleanup, Workload::CleanupIdle] {
        if wants(&workload) {
            let workers = if workload == Workload::Cleanup {
                cfg.cleanup_workers
            } else {
                0
            };
            out.push(Cell { workload, workers });
        }
    }
    out
}

/// A system the driver can run cells on, one at a time, in or out of
/// process; the driver interleaves systems cell by cell.
pub trait Runs {
    /// The system's name.
    fn name(&self) -> &str;
    /// Runs `cell` once (run number `repeat`): its row and its memory.
    fn run(&mut self, cell: Cell, repeat: usize) -> Result<Vec<Line>, BoxError>;
    /// The throughput cells are over: close and remove their file.
    fn finish_throughput(&mut self) -> Result<(), BoxError>;
}

/// The throughput file of one system, open, with its prepared keys.
struct Loaded<T: Target> {
    // Declared first so the store closes before its directory goes.
    target: T,
    keys: Keys<T::Key>,
    _dir: tempfile::TempDir,
}

/// Runs cells of one system in this process.
pub struct Runner<S: System> {
    // Before `system`, so the store closes before the system (which may own
    // its async runtime) goes.
    loaded: Option<Loaded<S::Target>>,
    system: S,
    cfg: Config,
    blobs: Vec<Arc<[u8]>>,
    /// Best `commit-update` rate per worker count, to size insert keys.
    update_rates: Vec<(usize, f64)>,
}

impl<S: System> std::fmt::Debug for Runner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("system", &self.system.name())
            .field("loaded", &self.loaded.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: System> Runner<S> {
    /// A runner of `system` under `cfg`; files are made on first use.
    pub fn new(system: S, cfg: Config) -> Self {
        let blobs = data_blobs(cfg.seed);
        Self {
            system,
            cfg,
            blobs,
            loaded: None,
            update_rates: Vec::new(),
        }
    }

    fn tag(&self, repeat: usize) -> Tag<'static> {
        Tag {
            system: self.system.name(),
            durability: self.system.durability(),
            layer: self.system.layer(),
            repeat,
        }
    }

    fn load(&mut self) -> Result<&Loaded<S::Target>, BoxError> {
        if self.loaded.is_none() {
            let dir = fresh_dir(&self.cfg)?;
            let path = dir.path().join("sessions.db");
            eprintln!(
                "{}: preloading {} sessions",
                self.system.name(),
                self.cfg.sessions
            );
            self.system
                .create(&path, &mut seed_rows(self.cfg.seed, self.cfg.sessions, 0))?;
            let target = self.system.open(&path)?;
            let keys = prepare_keys(&target, &self.cfg, &self.blobs);
            self.loaded = Some(Loaded {
                target,
                keys,
                _dir: dir,
            });
        }
        self.loaded.as_ref().ok_or_else(|| "not loaded".into())
    }
}

impl<S: System> Runs for Runner<S> {
    fn name(&self) -> &str {
        self.system.name()
    }

    fn run(&mut self, cell: Cell, repeat: usize) -> Result<Vec<Line>, BoxError> {
        let tag = self.tag(repeat);
        let (row, memory) = if cell.workload.is_cleanup() {
            run_cleanup(&self.system, tag, &self.cfg, &self.blobs, cell)?
        } else {
            let rate = self
                .update_rates
                .iter()
                .find(|(w, _)| *w == cell.workers)
                .map(|(_, r)| *r);
            self.load()?;
            let loaded = self.loaded.as_ref().ok_or("not loaded")?;
            let memory = PeakMemory::start();
            let row = run_throughput(
                tag,
                &loaded.target,
                &self.cfg,
                &loaded.keys,
                &self.blobs,
                cell,
                rate,
            );
            let memory = memory.finish(tag.system, cell);
            if cell.workload == Workload::CommitUpdate {
                match self
                    .update_rates
                    .iter_mut()
                    .find(|(w, _)| *w == cell.workers)
                {
                    Some((_, r)) => *r = r.max(row.ops_per_sec),
                    None => self.update_rates.push((cell.workers, row.ops_per_sec)),
                }
            }
            (row, memory)
        };
        progress(&row);
        Ok(vec![Line::Row(row), Line::Memory(memory)])
    }

    fn finish_throughput(&mut self) -> Result<(), BoxError> {
        self.loaded = None;
        Ok(())
    }
}

/// The first line the driver sends a served process: which of its systems
/// to serve, where, and the run's [`Config`].
#[derive(Clone, Serialize, Deserialize)]
pub struct Start {
    /// The system wanted, by its name in the results.
    pub system: String,
    /// The PostgreSQL server of the PostgreSQL systems (a libpq URL or
    /// key=value conninfo); kept out of `Debug`, as it may hold a password.
    pub postgres: Option<String>,
    /// What to run.
    pub config: Config,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start")
            .field("system", &self.system)
            .field("postgres", &self.postgres.as_ref().map(|_| "…"))
            .field("config", &self.config)
            .finish()
    }
}

/// A request from the driver to a system served in another process (one
/// JSON value a line on its stdin, after the [`Start`] line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// [`Runs::run`].
    Run {
        /// The cell.
        cell: Cell,
        /// The run number.
        repeat: usize,
    },
    /// [`Runs::finish_throughput`].
    FinishThroughput,
}

/// The served process's answer, one JSON value a line on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// Sent once, first: the system's name.
    Ready {
        /// The name in the results.
        system: String,
    },
    /// The request's results.
    Done(Vec<Line>),
    /// The request failed (or, instead of [`Reply::Ready`], the system
    /// could not be set up).
    Failed(String),
}

/// Serves one system to a driver: reads the [`Start`] line, sets the system
/// up with `choose` (a [`Runner`] of it, usually), answers
/// [`Reply::Ready`] (or [`Reply::Failed`] when `choose` fails), then
/// answers each [`Request`] line until `input` ends.
pub fn serve(
    input: impl std::io::BufRead,
    mut output: impl std::io::Write,
    choose: impl FnOnce(&Start) -> Result<Box<dyn Runs>, BoxError>,
) -> Result<(), BoxError> {
    let mut send = |reply: &Reply| -> Result<(), BoxError> {
        writeln!(output, "{}", serde_json::to_string(reply)?)?;
        output.flush()?;
        Ok(())
    };
    let mut lines = input.lines();
    let start: Start = match lines.next() {
        Some(line) => serde_json::from_str(&line?)?,
        None => return Err("no start line on stdin".into()),
    };
    let mut runner = match choose(&start) {
        Ok(runner) => runner,
        Err(err) => {
            send(&Reply::Failed(err.to_string()))?;
            return Err(err);
        }
    };
    send(&Reply::Ready {
        system: runner.name().to_owned(),
    })?;
    for line in lines {
        let reply = match serde_json::from_str::<Request>(&line?)? {
            Request::Run { cell, repeat } => runner.run(cell, repeat).map(Reply::Done),
            Request::FinishThroughput => runner.finish_throughput().map(|()| Reply::Done(vec![])),
        };
        send(&reply.unwrap_or_else(|err| Reply::Failed(err.to_string())))?;
    }
    Ok(())
}

fn prepare_keys<T: Target>(target: &T, cfg: &Config, blobs: &[Arc<[u8]>]) -> Keys<T::Key> {
    let expiry = SystemTime::now() + Duration::from_secs(86_400);
    let key = |stream, i: usize| {
        target.key(
            &random_token(cfg.seed, stream, i),
            &blobs[i % blobs.len()],
            expiry,
        )
    };
    Keys {
        active: (0..cfg.sessions).map(|i| key(Stream::Active, i)).collect(),
        miss: (0..MISS_TOKENS).map(|i| key(Stream::Miss, i)).collect(),
    }
}

/// The untimed warm-up before each workload: finds and commits of existing
/// sessions, so connections are open and caches warm, without changing which
/// tokens exist.
fn warm_up<T: Target>(target: &T, cfg: &Config, keys: &Keys<T::Key>, workers: usize) {
    if cfg.warmup_secs <= 0.0 || keys.active.is_empty() {
        return;
    }
    let op = |rng: &mut Rng| {
        let key = &keys.active[rng.below(keys.active.len())];
        if rng.below(10) == 0 {
            let _ = target.commit(key);
        } else {
            let _ = target.find(key);
        }
        Outcome::Ok
    };
    measure_for(
        workers,
        cfg.seed ^ 0x5752,
        Duration::from_secs_f64(cfg.warmup_secs),
        &op,
    );
}

fn run_throughput<T: Target>(
    tag: Tag<'_>,
    target: &T,
    cfg: &Config,
    keys: &Keys<T::Key>,
    blobs: &[Arc<[u8]>],
    cell: Cell,
    update_rate: Option<f64>,
) -> Row {
    let Cell { workload, workers } = cell;
    let duration = Duration::from_secs_f64(cfg.duration_secs);
    let active = &keys.active;
    let pick = |rng: &mut Rng| &active[rng.below(active.len())];
    let measured = match workload {
        Workload::All => {
            if target.all().is_none() {
                return Row {
                    note: Some("not supported: the store has no all()".into()),
                    ..row(tag, workload, workers, &Measured::default())
                };
            }
            let want = cfg.sessions;
            measure_for(workers, cfg.seed, duration, &|_| match target.all() {
                Some(Ok(n)) if n == want => Outcome::Ok,
                Some(Ok(n)) => {
                    Outcome::Failed(format!("all() returned {n} sessions, expected {want}"))
                }
                Some(Err(err)) => Outcome::Failed(err.to_string()),
                None => Outcome::Failed("all() unsupported".into()),
            })
        }
        Workload::FindHit => {
            warm_up(target, cfg, keys, workers);
            measure_for(
                workers,
                cfg.seed,
                duration,
                &|rng| match target.find(pick(rng)) {
                    Ok(true) => Outcome::Ok,
                    Ok(false) => Outcome::Failed("a stored session was not found".into()),
                    Err(err) => Outcome::Failed(err.to_string()),
                },
            )
        }
        Workload::FindMiss => {
            warm_up(target, cfg, keys, workers);
            let miss = &keys.miss;
            measure_for(workers, cfg.seed, duration, &|rng| match target
                .find(&miss[rng.below(miss.len())])
            {
                Ok(false) => Outcome::Ok,
                Ok(true) => Outcome::Failed("found a token never stored".into()),
                Err(err) => Outcome::Failed(err.to_string()),
            })
        }
        Workload::CommitUpdate => {
            warm_up(target, cfg, keys, workers);
            measure_for(workers, cfg.seed, duration, &|rng| {
                target.commit(pick(rng)).into()
            })
        }
        Workload::CommitInsert => {
            warm_up(target, cfg, keys, workers);
            // Enough fresh keys for twice the update rate (inserts are not
            // faster), prepared before timing; running out ends the run early
            // and is noted.
            let expected = update_rate.unwrap_or(100_000.0) * cfg.duration_secs * 2.0;
            let count = (expected as usize).clamp(10_000, 5_000_000);
            let expiry = SystemTime::now() + Duration::from_secs(86_400);
            // Distinct keys per worker count and run, so every run inserts.
            let base = (tag.repeat * 1000 + workers) * 10_000_000;
            let fresh: Vec<T::Key> = (0..count)
                .map(|i| {
                    let token = random_token(cfg.seed, Stream::Insert, base + i);
                    target.key(&token, &blobs[i % blobs.len()], expiry)
                })
                .collect();
            let next = AtomicUsize::new(0);
            measure_for(workers, cfg.seed, duration, &|_| match fresh
                .get(next.fetch_add(1, Ordering::Relaxed))
            {
                Some(key) => target.insert(key).into(),
                None => Outcome::Exhausted,
            })
        }
        Workload::Mixed | Workload::MixedMany => {
            warm_up(target, cfg, keys, workers);
            measure_for(workers, cfg.seed, duration, &|rng| {
                let key = pick(rng);
                match rng.below(100) {
                    0..=89 => match target.find(key) {
                        Ok(_) => Outcome::Ok,
                        Err(err) => Outcome::Failed(err.to_string()),
                    },
                    90..=98 => target.commit(key).into(),
                    _ => target.delete(key).into(),
                }
            })
        }
        Workload::Cleanup | Workload::CleanupIdle => unreachable!("not a throughput workload"),
    };
    row(tag, workload, workers, &measured)
}

fn run_cleanup<S: System>(
    system: &S,
    tag: Tag<'_>,
    cfg: &Config,
    blobs: &[Arc<[u8]>],
    cell: Cell,
) -> Result<(Row, Memory), BoxError> {
    let Cell { workload, workers } = cell;
    debug_assert!(workload.is_cleanup());
    let name = tag.system;
    let dir = fresh_dir(cfg)?;
    let path = dir.path().join("sessions.db");
    eprintln!(
        "{name}: preloading {} active and {} expired sessions for {}",
        cfg.sessions,
        cfg.expired,
        workload.name()
    );
    system.create(&path, &mut seed_rows(cfg.seed, cfg.sessions, cfg.expired))?;
    let target = system.open(&path)?;
    let keys = prepare_keys(&target, cfg, blobs);
    let memory = PeakMemory::start();
    if workers > 0 {
        warm_up(&target, cfg, &keys, workers);
    }
    let rows_before = target.count()?;
    let size_before = files_size(&path);
    // Workers find and commit (half each) existing sessions for as long
    // as the cleanup call runs.
    let active = &keys.active;
    let op = |rng: &mut Rng| {
        let key = &active[rng.below(active.len())];
        if rng.below(2) == 0 {
            match target.find(key) {
                Ok(true) => Outcome::Ok,
                Ok(false) => Outcome::Failed("an active session was not found".into()),
                Err(err) => Outcome::Failed(err.to_string()),
            }
        } else {
            target.commit(key).into()
        }
    };
    let (measured, (cleanup, took)) = measure(workers, cfg.seed, &op, |_| {
        let started = Instant::now();
        let result = target.cleanup();
        (result, started.elapsed())
    });
    let size_after = files_size(&path);
    let mut row = row(tag, workload, workers, &measured);
    let reported = match cleanup {
        Ok(reported) => reported,
        Err(err) => {
            row.errors += 1;
            row.first_error = Some(format!("cleanup failed: {err}"));
            None
        }
    };
    let removed = match reported {
        Some(n) => n,
        None => rows_before.saturating_sub(target.count()?),
    };
    let memory = memory.finish(name, cell);
    drop(target);
    let secs = took.as_secs_f64();
    row.cleanup = Some(CleanupResult {
        removed,
        secs,
        rows_per_sec: if secs > 0.0 {
            removed as f64 / secs
        } else {
            0.0
        },
        size_before,
        size_after,
        size_closed: files_size(&path),
        slow_requests: measured
            .hist
            .count_between(SLOW_REQUEST_NS + 1, MAX_LATENCY_NS),
    });
    if removed != cfg.expired as u64 {
        row.note = Some(format!("removed {removed} of {} expired rows", cfg.expired));
    }
    Ok((row, memory))
}

/// The process's peak resident memory over a phase, from `/proc/self`.
#[derive(Debug)]
struct PeakMemory {
    start_kib: u64,
    reset: bool,
}

impl PeakMemory {
    fn start() -> Self {
        // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            start_kib: proc_status_kib("VmRSS").unwrap_or(0),
            reset,
        }
    }

    fn finish(self, system: &str, cell: Cell) -> Memory {
        Memory {
            system: system.to_owned(),
            workload: cell.workload,
            workers: cell.workers,
            start_kib: self.start_kib,
            peak_kib: proc_status_kib("VmHWM").unwrap_or(0),
            reset: self.reset,
        }
    }
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_chars_of_base64url() {
        let t = token_string(&random_token(1, Stream::Active, 0));
        assert_eq!(t.len(), 43);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn seed_rows_interleave_and_repeat() {
        let rows: Vec<_> = seed_rows(7, 10, 30).collect();
        assert_eq!(rows.len(), 40);
        let now = SystemTime::now();
        assert_eq!(rows.iter().filter(|r| r.expiry > now).count(), 10);
        // Active rows are spread, not bunched at one end.
        assert!(rows[..20].iter().any(|r| r.expiry > now));
        assert!(rows[20..].iter().any(|r| r.expiry > now));
        // The same seed gives the same tokens, and active token i matches
        // the key the workloads use.
        let again: Vec<_> = seed_rows(7, 10, 30).collect();
        assert!(rows.iter().zip(&again).all(|(a, b)| a.token == b.token));
        let active: Vec<_> = rows.iter().filter(|r| r.expiry > now).collect();
        assert_eq!(active[3].token, random_token(7, Stream::Active, 3));
        // Expired rows expire in the order they were inserted.
        let expired: Vec<_> = rows.iter().filter(|r| r.expiry <= now).collect();
        assert!(expired.windows(2).all(|w| w[0].expiry < w[1].expiry));
    }

    #[test]
    fn cells_keep_the_file_order_and_end_with_cleanup() {
        let cfg = Config {
            sessions: 10,
            expired: 10,
            duration_secs: 0.1,
            warmup_secs: 0.0,
            workers: vec![1, 4],
            repeats: 3,
            many_workers: 64,
            cleanup_workers: 2,
            workloads: Workload::ALL.to_vec(),
            seed: 1,
            dir: None,
        };
        let cells = cells(&cfg);
        let names: Vec<_> = cells
            .iter()
            .map(|c| format!("{}x{}", c.workload.name(), c.workers))
            .collect();
        assert_eq!(
            names,
            [
                "allx1",
                "find-hitx1",
                "find-hitx4",
                "find-missx1",
                "find-missx4",
                "commit-updatex1",
                "commit-updatex4",
                "mixedx1",
                "mixedx4",
                "mixed-manyx64",
                "commit-insertx1",
                "commit-insertx4",
                "cleanupx2",
                "cleanup-idlex0",
            ]
        );
    }

    /// A store that is a map in memory, for driving the runner.
    #[derive(Default)]
    struct MapStore(std::sync::Mutex<std::collections::HashMap<[u8; TOKEN_BYTES], SystemTime>>);

    impl Target for MapStore {
        type Key = [u8; TOKEN_BYTES];
        fn key(&self, token: &[u8; TOKEN_BYTES], _: &Arc<[u8]>, _: SystemTime) -> Self::Key {
            *token
        }
        fn find(&self, key: &Self::Key) -> Result<bool, BoxError> {
            Ok(self.0.lock().map_err(|e| e.to_string())?.contains_key(key))
        }
        fn commit(&self, key: &Self::Key) -> Result<(), BoxError> {
            let far = SystemTime::now() + Duration::from_secs(3600);
            self.0.lock().map_err(|e| e.to_string())?.insert(*key, far);
            Ok(())
        }
        fn delete(&self, key: &Self::Key) -> Result<(), BoxError> {
            self.0.lock().map_err(|e| e.to_string())?.remove(key);
            Ok(())
        }
        fn all(&self) -> Option<Result<usize, BoxError>> {
            None
        }
        fn cleanup(&self) -> Result<Option<u64>, BoxError> {
            let now = SystemTime::now();
            let mut map = self.0.lock().map_err(|e| e.to_string())?;
            let before = map.len();
            map.retain(|_, expiry| *expiry > now);
            Ok(Some((before - map.len()) as u64))
        }
        fn count(&self) -> Result<u64, BoxError> {
            Ok(self.0.lock().map_err(|e| e.to_string())?.len() as u64)
        }
    }

    struct MapSystem;

    impl System for MapSystem {
        type Target = MapStore;
        fn name(&self) -> &'static str {
            "map"
        }
        fn durability(&self) -> Durability {
            Durability::ProcessCrash
        }
        fn layer(&self) -> Layer {
            Layer::Raw
        }
        fn create(&self, _: &Path, _: &mut dyn Iterator<Item = SeedRow>) -> Result<(), BoxError> {
            Ok(())
        }
        fn open(&self, _: &Path) -> Result<MapStore, BoxError> {
            // Preloaded here: the file is not used.
            let store = MapStore::default();
            for row in seed_rows(1, 50, 20) {
                store
                    .0
                    .lock()
                    .map_err(|e| e.to_string())?
                    .insert(row.token, row.expiry);
            }
            Ok(store)
        }
    }

    #[test]
    fn serve_answers_each_request_with_its_lines() -> Result<(), BoxError> {
        let cfg = Config {
            sessions: 50,
            expired: 20,
            duration_secs: 0.05,
            warmup_secs: 0.0,
            workers: vec![2],
            repeats: 1,
            many_workers: 2,
            cleanup_workers: 1,
            workloads: vec![Workload::FindHit, Workload::CleanupIdle],
            seed: 1,
            dir: None,
        };
        let find = Cell {
            workload: Workload::FindHit,
            workers: 2,
        };
        let cleanup = Cell {
            workload: Workload::CleanupIdle,
            workers: 0,
        };
        let start = Start {
            system: "map".into(),
            postgres: Some("password=secret".into()),
            config: cfg,
        };
        assert!(!format!("{start:?}").contains("secret"));
        let input = [
            serde_json::to_string(&start)?,
            serde_json::to_string(&Request::Run {
                cell: find,
                repeat: 1,
            })?,
            serde_json::to_string(&Request::FinishThroughput)?,
            serde_json::to_string(&Request::Run {
                cell: cleanup,
                repeat: 0,
            })?,
        ]
        .join("\n");
        let mut output = Vec::new();
        serve(input.as_bytes(), &mut output, |start| {
            assert_eq!(start.system, "map");
            assert_eq!(start.postgres.as_deref(), Some("password=secret"));
            Ok(Box::new(Runner::new(MapSystem, start.config.clone())))
        })?;
        let replies: Vec<Reply> = String::from_utf8(output)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(replies.len(), 4);
        assert!(matches!(&replies[0], Reply::Ready { system } if system == "map"));
        let Reply::Done(lines) = &replies[1] else {
            panic!("find-hit failed: {:?}", replies[1]);
        };
        let Some(Line::Row(row)) = lines.first() else {
            panic!("no row: {lines:?}");
        };
        assert_eq!(
            (row.workload, row.workers, row.repeat),
            (Workload::FindHit, 2, 1)
        );
        assert_eq!(row.durability, Durability::ProcessCrash);
        assert!(row.ops > 0, "{row:?}");
        assert_eq!(row.errors, 0, "{row:?}");
        assert!(matches!(&replies[2], Reply::Done(lines) if lines.is_empty()));
        let Reply::Done(lines) = &replies[3] else {
            panic!("cleanup failed: {:?}", replies[3]);
        };
        let Some(Line::Row(row)) = lines.first() else {
            panic!("no row: {lines:?}");
        };
        assert_eq!(row.cleanup.as_ref().map(|c| c.removed), Some(20));
        Ok(())
    }

    #[test]
    fn serve_reports_a_system_it_cannot_set_up() -> Result<(), BoxError> {
        let start = Start {
            system: "nope".into(),
            postgres: None,
            config: Config {
                sessions: 1,
                expired: 0,
                duration_secs: 0.05,
                warmup_secs: 0.0,
                workers: vec![1],
                repeats: 1,
                many_workers: 1,
                cleanup_workers: 1,
                workloads: vec![Workload::FindHit],
                seed: 1,
                dir: None,
            },
        };
        let input = serde_json::to_string(&start)?;
        let mut output = Vec::new();
        let result = serve(input.as_bytes(), &mut output, |start| {
            Err(format!("no system {:?}", start.system).into())
        });
        assert!(result.is_err());
        let reply: Reply = serde_json::from_str(String::from_utf8(output)?.trim())?;
        assert!(
            matches!(&reply, Reply::Failed(err) if err.contains("no system \"nope\"")),
            "{reply:?}"
        );
        Ok(())
    }

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
    }

    #[test]
    fn measure_counts_ops_and_errors() {
        let n = AtomicUsize::new(0);
        let m = measure_for(2, 1, Duration::from_millis(50), &|_| {
            if n.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                Outcome::Ok
            } else {
                Outcome::Failed("odd".into())
            }
        });
        assert!(m.ops > 0);
        assert_eq!(m.hist.len(), m.ops);
        assert!(m.errors > 0 && m.errors <= m.ops);
        assert!(m.secs >= 0.05);
    }

    #[test]
    fn measure_ends_early_when_keys_run_out() {
        let next = AtomicUsize::new(0);
        let m = measure_for(3, 1, Duration::from_secs(30), &|_| {
            if next.fetch_add(1, Ordering::Relaxed) < 100 {
                Outcome::Ok
            } else {
                Outcome::Exhausted
            }
        });
        assert_eq!(m.ops, 100);
        assert!(m.exhausted);
        assert!(m.secs < 5.0);
    }
}
