//! Helpers shared by the durability, fault, model and input tests: a seeded
//! random source, child processes that re-run this test binary, the data a
//! token must hold, and one interface over the sync and async fronts.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlite3store::{AsyncSqliteStore, Builder, CleanupReport, Listed, Session, SqliteStore, Stats};

/// What every test returns.
pub(crate) type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A count from the environment (for longer runs), or `default`.
pub(crate) fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Ends a test that cannot do its real check here (a tool missing, a
/// permission refused). Under `CI` that is a failure, never a silent pass:
/// it panics with `reason`. Locally it prints why and the test passes.
pub(crate) fn skip(reason: &str) -> TestResult {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test may not skip: {reason}");
    }
    println!("skipped: {reason}");
    Ok(())
}

/// SplitMix64: small, seedable, good enough to pick test actions.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from `SQLITE3STORE_SEED` when set (to replay a failure), else
    /// from the clock. The seed is printed so any failure can be replayed.
    pub(crate) fn from_env(what: &str) -> Self {
        let seed = std::env::var("SQLITE3STORE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("{what}: seed {seed} (replay with SQLITE3STORE_SEED={seed})");
        Self(seed)
    }

    pub(crate) fn seed(&self) -> u64 {
        self.0
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times out of a hundred.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The data a token holds at `version`: names both, so a row can never pass
/// for another token's or another version's, and its length varies from a
/// few bytes to several pages (overflow pages included).
pub(crate) fn data_for(token: &str, version: u64) -> Vec<u8> {
    let mut data = format!("{token}#{version}#").into_bytes();
    let len = match version % 23 {
        0 => 9_000,
        1 => 0,
        n => (n * 97 + version % 1_000) as usize,
    };
    let mut x = version ^ 0x5555_5555;
    data.extend((0..len).map(|_| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 56) as u8
    }));
    data
}

/// The version a row written by [`data_for`] holds, if it is one of
/// `token`'s rows and intact.
pub(crate) fn version_of(token: &str, data: &[u8]) -> Option<u64> {
    let prefix = format!("{token}#");
    let rest = data.strip_prefix(prefix.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'#')?;
    let version: u64 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (data_for(token, version) == data).then_some(version)
}

/// An expiry no test outlives.
pub(crate) fn far_future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30 * 86_400)
}

/// The `-wal` and `-shm` files beside a database.
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(suffix);
    PathBuf::from(os)
}

/// Removes the `-wal` and `-shm` files beside a database, if any.
pub(crate) fn remove_sidecars(path: &Path) -> TestResult {
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(sidecar(path, suffix)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
    }
    Ok(())
}

/// `PRAGMA integrity_check` through a plain connection; `["ok"]` when sound.
pub(crate) fn integrity_check(path: &Path) -> TestResult<Vec<String>> {
    let conn = rusqlite::Connection::open(path)?;
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Panics unless the file passes `PRAGMA integrity_check`.
pub(crate) fn assert_intact(path: &Path) -> TestResult {
    let report = integrity_check(path)?;
    assert_eq!(report, ["ok"], "integrity_check of {}", path.display());
    Ok(())
}

/// How long an open of a damaged or odd file may take before the test
/// calls it a hang: generous, for a loaded machine.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `f` (an open) on its own thread and waits for it at most
/// [`OPEN_TIMEOUT`]; a call that does not return by then fails the test
/// (its thread is left behind).
pub(crate) fn within<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> TestResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only once the test has failed.
        tx.send(f()).ok();
    });
    rx.recv_timeout(OPEN_TIMEOUT)
        .map_err(|_| format!("{what}: no answer within {OPEN_TIMEOUT:?}").into())
}

/// Opens `builder`'s store, failing the test if that hangs (see [`within`]).
pub(crate) fn open_within(
    builder: Builder,
    what: &str,
) -> TestResult<sqlite3store::Result<SqliteStore>> {
    within(what, move || builder.build())
}

// ---- child processes -------------------------------------------------------

/// Set in a child to the role it plays; absent in the test run itself.
const ROLE_VAR: &str = "SQLITE3STORE_TEST_ROLE";
/// Lines of the child-to-parent protocol start with this, so they stand out
/// from what the test harness prints.
const LINE_PREFIX: &str = "@@ ";

/// The role this process was started for, if it is a child.
pub(crate) fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A command that runs this test binary's test `test` alone, as a child
/// playing `role`. Its stdout is piped (see [`lines`]), stderr inherited so
/// a child's panic shows in the parent's output.
pub(crate) fn child_command(test: &str, role: &str) -> TestResult<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(cmd)
}

/// Like [`child_command`], with the test binary run through `wrapper`
/// (e.g. `unshare ... sh -c ...`), which must end by exec'ing its
/// arguments.
pub(crate) fn wrapped_child_command(
    wrapper: &[&str],
    test: &str,
    role: &str,
) -> TestResult<Command> {
    let (program, args) = wrapper.split_first().ok_or("empty wrapper")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg(std::env::current_exe()?)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(cmd)
}

/// Sends one protocol line to the parent, flushed before returning. Exits
/// if the parent is gone, so no child outlives its test.
pub(crate) fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{LINE_PREFIX}{line}")
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// The protocol lines a child writes on `stdout`, as they arrive; the
/// channel closes when the child's stdout does (it exited or was killed,
/// and everything it wrote has been read).
pub(crate) fn lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness may have started the line ("test name ... ").
            if let Some(at) = line.find(LINE_PREFIX) {
                if tx.send(line[at + LINE_PREFIX.len()..].to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// How a child process ended: its status, every protocol line it wrote,
/// and its stderr if that was piped.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) lines: Vec<String>,
    pub(crate) stderr: String,
}

impl Ended {
    /// Exited with success after saying `done`.
    pub(crate) fn done(&self) -> bool {
        self.status.success() && self.lines.iter().any(|l| l.starts_with("done"))
    }
}

/// Starts `cmd` (from [`child_command`] or [`wrapped_child_command`]),
/// reads its protocol lines and waits for it to end. For children that run
/// to the end by themselves; tests that kill theirs read [`lines`] as they
/// come.
pub(crate) fn run_to_end(cmd: &mut Command) -> std::io::Result<Ended> {
    let mut child = cmd.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let lines = lines(stdout);
    let out = child.wait_with_output()?;
    Ok(Ended {
        status: out.status,
        lines: lines.iter().collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Reads a `KEY=value` the parent passed to a child.
pub(crate) fn child_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

// ---- one interface over both fronts ----------------------------------------

/// The operations the tests drive, over the sync or the async front: the
/// conformance suite's generic cases (`F::open`) and the dynamic ones
/// (`Box<dyn Front>`, see [`open`]) alike.
pub(crate) trait Front {
    /// Opens `builder`'s store behind this front.
    fn open(builder: Builder) -> sqlite3store::Result<Self>
    where
        Self: Sized;
    fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<()>;
    fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<bool>;
    fn find(&self, token: &str) -> sqlite3store::Result<Option<Vec<u8>>>;
    fn find_with_expiry(&self, token: &str) -> sqlite3store::Result<Option<Session>>;
    fn delete(&self, token: &str) -> sqlite3store::Result<bool>;
    fn all(&self) -> sqlite3store::Result<HashMap<String, Vec<u8>>>;
    fn list(&self, limit: usize) -> sqlite3store::Result<Vec<Listed>>;
    fn delete_expired(&self) -> sqlite3store::Result<CleanupReport>;
    fn stats(&self) -> sqlite3store::Result<Stats>;
    fn stop_cleanup(&self);
}

impl Front for SqliteStore {
    fn open(builder: Builder) -> sqlite3store::Result<Self> {
        builder.build()
    }
    fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<()> {
        SqliteStore::commit(self, token, data, expiry)
    }
    fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<bool> {
        SqliteStore::create(self, token, data, expiry)
    }
    fn find(&self, token: &str) -> sqlite3store::Result<Option<Vec<u8>>> {
        SqliteStore::find(self, token)
    }
    fn find_with_expiry(&self, token: &str) -> sqlite3store::Result<Option<Session>> {
        SqliteStore::find_with_expiry(self, token)
    }
    fn delete(&self, token: &str) -> sqlite3store::Result<bool> {
        SqliteStore::delete(self, token)
    }
    fn all(&self) -> sqlite3store::Result<HashMap<String, Vec<u8>>> {
        SqliteStore::all(self)
    }
    fn list(&self, limit: usize) -> sqlite3store::Result<Vec<Listed>> {
        SqliteStore::list(self, limit)
    }
    fn delete_expired(&self) -> sqlite3store::Result<CleanupReport> {
        SqliteStore::delete_expired(self)
    }
    fn stats(&self) -> sqlite3store::Result<Stats> {
        SqliteStore::stats(self)
    }
    fn stop_cleanup(&self) {
        SqliteStore::stop_cleanup(self)
    }
}

/// The async front, driven from a test thread on a current-thread runtime:
/// the strictest setting, where any blocking call would stall the only
/// worker.
pub(crate) struct AsyncFront {
    // Dropped before the runtime.
    store: AsyncSqliteStore,
    rt: tokio::runtime::Runtime,
}

impl Front for AsyncFront {
    fn open(builder: Builder) -> sqlite3store::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let store = rt.block_on(builder.build_async())?;
        Ok(Self { store, rt })
    }
    fn commit(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<()> {
        self.rt.block_on(self.store.commit(token, data, expiry))
    }
    fn create(&self, token: &str, data: &[u8], expiry: SystemTime) -> sqlite3store::Result<bool> {
        self.rt.block_on(self.store.create(token, data, expiry))
    }
    fn find(&self, token: &str) -> sqlite3store::Result<Option<Vec<u8>>> {
        self.rt.block_on(self.store.find(token))
    }
    fn find_with_expiry(&self, token: &str) -> sqlite3store::Result<Option<Session>> {
        self.rt.block_on(self.store.find_with_expiry(token))
    }
    fn delete(&self, token: &str) -> sqlite3store::Result<bool> {
        self.rt.block_on(self.store.delete(token))
    }
    fn all(&self) -> sqlite3store::Result<HashMap<String, Vec<u8>>> {
        self.rt.block_on(self.store.all())
    }
    fn list(&self, limit: usize) -> sqlite3store::Result<Vec<Listed>> {
        self.rt.block_on(self.store.list(limit))
    }
    fn delete_expired(&self) -> sqlite3store::Result<CleanupReport> {
        self.rt.block_on(self.store.delete_expired())
    }
    fn stats(&self) -> sqlite3store::Result<Stats> {
        self.rt.block_on(self.store.stats())
    }
    fn stop_cleanup(&self) {
        self.store.stop_cleanup()
    }
}

/// Which front a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sync,
    Async,
}

pub(crate) const BOTH: [Kind; 2] = [Kind::Sync, Kind::Async];

/// Opens `builder`'s store behind the `kind` front.
pub(crate) fn open(kind: Kind, builder: Builder) -> sqlite3store::Result<Box<dyn Front>> {
    Ok(match kind {
        Kind::Sync => Box::new(<SqliteStore as Front>::open(builder)?),
        Kind::Async => Box::new(<AsyncFront as Front>::open(builder)?),
    })
}

/// What the store keeps for `token` with `hash_tokens(key)`: HMAC-SHA-256 in
/// lowercase hex, computed here independently of the store.
pub(crate) fn hmac_hex(key: &[u8], token: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Threads of this process whose name starts with `prefix` (names are cut
/// to 15 bytes), from `/proc/self/task`.
pub(crate) fn threads_named(prefix: &str) -> std::io::Result<usize> {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        // A thread may end between the listing and the read.
        if let Ok(name) = std::fs::read_to_string(task?.path().join("comm")) {
            n += usize::from(name.starts_with(prefix));
        }
    }
    Ok(n)
}
