//! Several processes on one file: each child opens the same (new) file at
//! the same time, races the others to `create` a set of claim tokens, then
//! commits, deletes and finds its own keys and overwrites a set of shared
//! keys, checking what it reads as it goes. The parent then checks that no
//! acknowledged write was lost and that no call failed, `Busy` included,
//! also while another writer process is killed again and again.
//!
//! `SQLITE3STORE_MP_PROCESSES=8 SQLITE3STORE_MP_OPS=10000` runs longer.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use sqlite3store::SqliteStore;
use support::{emit, far_future, Rng, TestResult};

const TEST: &str = "processes_sharing_a_file_lose_no_update_and_see_no_busy";
const CRASH_TEST: &str = "a_process_killed_mid_write_disturbs_no_other";
const OWN_KEYS: u64 = 16;
const SHARED_KEYS: u64 = 5;
const CLAIMS: u64 = 8;
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn processes_sharing_a_file_lose_no_update_and_see_no_busy() -> TestResult {
    match support::child_role().as_deref() {
        Some(_) => child_main(),
        None => run(TEST, false),
    }
}

/// The same, while one more process writes to the file and is killed
/// (SIGKILL) again and again: mid-transaction, mid-checkpoint, mid-open.
/// The others must not notice.
#[test]
fn a_process_killed_mid_write_disturbs_no_other() -> TestResult {
    match support::child_role().as_deref() {
        Some("crasher") => crasher_main(),
        Some(_) => child_main(),
        None => run(CRASH_TEST, true),
    }
}

fn run(test: &str, crasher: bool) -> TestResult {
    let processes = support::env_count("SQLITE3STORE_MP_PROCESSES", 4) as u64;
    // Longer with a crasher, so it is killed a few dozen times.
    let ops = support::env_count("SQLITE3STORE_MP_OPS", 1000) * if crasher { 4 } else { 1 };
    let mut rng = Rng::from_env(test);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");

    let mut children: Vec<(Child, Receiver<String>)> = Vec::new();
    for id in 0..processes {
        let mut cmd = support::child_command(test, "multiprocess")?;
        cmd.env("MP_DB", &path)
            .env("MP_ID", id.to_string())
            .env("MP_OPS", ops.to_string())
            .env("MP_SEED", rng.next_u64().to_string())
            .stdin(Stdio::piped());
        let mut child = cmd.spawn()?;
        let lines = support::lines(child.stdout.take().ok_or("no stdout")?);
        children.push((child, lines));
    }
    let started = Instant::now();
    // Every child has opened the file (all at once, on a new file) before
    // any starts writing, so their writes overlap.
    for (id, (_, lines)) in children.iter().enumerate() {
        let line = next_line(lines, started)?;
        if line != "ready" {
            return Err(format!("child {id}: {line}").into());
        }
    }
    for (child, _) in &mut children {
        writeln!(child.stdin.take().ok_or("no stdin")?, "go")?;
    }

    let done = AtomicBool::new(false);
    let (reports, kills) = std::thread::scope(|s| {
        let killer = crasher.then(|| {
            let (done, path, seed) = (&done, &path, rng.next_u64());
            s.spawn(move || kill_loop(test, path, seed, done))
        });
        let reports = collect(children, started);
        done.store(true, Ordering::Release);
        let kills = match killer {
            Some(k) => k.join().map_err(|_| "the kill loop panicked")?,
            None => Ok(Kills::default()),
        };
        TestResult::Ok((reports?, kills?))
    })?;

    support::assert_intact(&path)?;
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    let mut checked = 0;
    // Each process's own keys hold its last acknowledged write, or nothing.
    for (id, report) in reports.iter().enumerate() {
        for (key, seq) in &report.own {
            let want = seq.map(|s| value(id as u64, s));
            assert_eq!(store.find(key)?, want, "own key {key} of process {id}");
            checked += 1;
        }
    }
    // A shared key holds the last write of the process that wrote it last:
    // an earlier write of any process can never show through.
    for k in 0..SHARED_KEYS {
        let key = format!("shared-{k}");
        let lasts: Vec<Vec<u8>> = reports
            .iter()
            .enumerate()
            .filter_map(|(id, r)| r.shared.get(&key).map(|&s| value(id as u64, s)))
            .collect();
        match store.find(&key)? {
            Some(found) => assert!(
                lasts.contains(&found),
                "{key} holds {:?}, not the last write of any process",
                String::from_utf8_lossy(&found)
            ),
            None => assert!(lasts.is_empty(), "{key} lost every write"),
        }
        checked += 1;
    }
    // Each claim went to exactly one process, and holds its value.
    for c in 0..CLAIMS {
        let key = format!("claim-{c}");
        let winners: Vec<u64> = reports
            .iter()
            .enumerate()
            .filter(|(_, r)| r.claims.contains(&key))
            .map(|(id, _)| id as u64)
            .collect();
        assert_eq!(winners.len(), 1, "{key} won by {winners:?}");
        assert_eq!(store.find(&key)?, Some(value(winners[0], 0)), "{key}");
        checked += 1;
    }
    // Every write a killed process acknowledged is there too.
    checked += kills.verify(&store)?;
    let acked: u64 = reports.iter().map(|r| r.acked).sum();
    println!(
        "multiprocess: {processes} processes, {acked} acknowledged writes, \
         {checked} final states checked, no error reached a caller; \
         writer processes killed meanwhile: {} ({} after writes, {} mid-write, \
         {} mid-VACUUM; {} of their writes acknowledged, {} keys checked)",
        kills.total,
        kills.after_writes,
        kills.mid_write,
        kills.mid_vacuum,
        kills.acked,
        kills.keys.len(),
    );
    if crasher {
        // The kills landed where they are meant to: after acknowledged
        // writes, in the middle of writes, and in the middle of a VACUUM.
        assert!(kills.after_writes > 0, "no kill after a write: {kills:?}");
        assert!(kills.mid_write > 0, "no kill mid-write: {kills:?}");
        assert!(kills.mid_vacuum > 0, "no kill mid-VACUUM: {kills:?}");
    }
    Ok(())
}

/// Reads every worker's report to the end, and checks it exited cleanly.
fn collect(children: Vec<(Child, Receiver<String>)>, started: Instant) -> TestResult<Vec<Report>> {
    let mut reports = Vec::new();
    for (id, (mut child, lines)) in children.into_iter().enumerate() {
        let mut report = Report::default();
        loop {
            let line = match lines.recv_timeout(DEADLINE.saturating_sub(started.elapsed())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    child.kill()?;
                    return Err(format!("child {id} did not finish in {DEADLINE:?}").into());
                }
            };
            report.read(&line).map_err(|e| format!("child {id}: {e}"))?;
        }
        let status = child.wait()?;
        if !status.success() || !report.done {
            return Err(format!("child {id} failed ({status}); see its output above").into());
        }
        reports.push(report);
    }

    Ok(reports)
}

/// What the kill loop saw of the crashers it killed.
#[derive(Debug, Default)]
struct Kills {
    total: u64,
    /// Killed after at least one acknowledged write.
    after_writes: u64,
    /// Killed with a commit or delete started and not acknowledged.
    mid_write: u64,
    /// Killed with a `VACUUM` started and not acknowledged.
    mid_vacuum: u64,
    /// Writes all crashers acknowledged.
    acked: u64,
    /// Per crasher key: the state its last acknowledged write left (the
    /// data's length, or None once deleted), and the states writes in
    /// flight when their process was killed, since then, would have left.
    #[allow(clippy::type_complexity)]
    keys: HashMap<String, (Option<usize>, Vec<Option<usize>>)>,
}

impl Kills {
    /// Checks every crasher key in the final file: it holds its last
    /// acknowledged state, or what the write in flight at a kill made it.
    fn verify(&self, store: &SqliteStore) -> TestResult<u64> {
        for (key, (acked, in_flight)) in &self.keys {
            let found = store.find(key)?;
            let thread = key.split('-').nth(1).ok_or("crasher key")?.parse::<u8>()?;
            if let Some(data) = &found {
                assert!(data.iter().all(|&b| b == thread), "{key}: foreign data");
            }
            let found = found.map(|d| d.len());
            assert!(
                found == *acked || in_flight.contains(&found),
                "{key}: found {found:?}, acknowledged {acked:?}, in flight {in_flight:?}"
            );
        }
        Ok(self.keys.len() as u64)
    }
}

/// Starts a writer process, lets it run a few milliseconds, kills it, and
/// again, until `done`. Every other crasher spends one thread on VACUUM
/// alone, so kills land mid-VACUUM too. Reads each crasher's account of
/// what it started and finished.
fn kill_loop(test: &str, path: &Path, seed: u64, done: &AtomicBool) -> TestResult<Kills> {
    let mut rng = Rng::new(seed);
    let mut kills = Kills::default();
    while !done.load(Ordering::Acquire) {
        let vacuums = kills.total % 2 == 1;
        let mut child = support::child_command(test, "crasher")?
            .env("MP_DB", path)
            .env("MP_SEED", rng.next_u64().to_string())
            .env("MP_VACUUMS", vacuums.to_string())
            .spawn()?;
        let lines = support::lines(child.stdout.take().ok_or("no stdout")?);
        // Most kills come a few milliseconds after the crasher started
        // writing (however slow its start); one in four blind, which may
        // land while it opens (recovers) the file.
        let mut seen = Vec::new();
        if !rng.chance(25) {
            let line = lines
                .recv_timeout(DEADLINE)
                .map_err(|_| "the crasher never started writing")?;
            seen.push(line);
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        if let Some(status) = child.try_wait()? {
            return Err(format!("the crasher ended by itself: {status}").into());
        }
        child.kill()?;
        child.wait()?;
        // Everything it wrote before it died is in the pipe. Per thread,
        // the operation started and not yet acknowledged.
        // (operation, key, the state it leaves)
        let mut open: HashMap<String, (String, String, Option<usize>)> = HashMap::new();
        let mut acked = 0;
        for line in seen.into_iter().chain(lines.iter()) {
            match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["start", thread, op, key, len] => {
                    let leaves = len.parse().ok();
                    let started = ((*op).to_owned(), (*key).to_owned(), leaves);
                    open.insert((*thread).to_owned(), started);
                }
                ["ack", thread, op] => {
                    let Some((started, key, leaves)) = open.remove(*thread) else {
                        return Err(format!("crasher: ack without start: {line}").into());
                    };
                    if started != *op {
                        return Err(format!("crasher: ack of {started}: {line}").into());
                    }
                    if *op != "vacuum" {
                        acked += 1;
                        kills.keys.insert(key, (leaves, Vec::new()));
                    }
                }
                ["error", ..] => {
                    return Err(format!("the crasher failed before it was killed: {line}").into())
                }
                _ => return Err(format!("crasher: unexpected line {line:?}").into()),
            }
        }
        kills.total += 1;
        kills.acked += acked;
        kills.after_writes += u64::from(acked > 0);
        kills.mid_write += u64::from(open.values().any(|(op, ..)| op != "vacuum"));
        kills.mid_vacuum += u64::from(open.values().any(|(op, ..)| op == "vacuum"));
        for (op, key, leaves) in open.into_values() {
            if op != "vacuum" {
                kills.keys.entry(key).or_default().1.push(leaves);
            }
        }
    }
    Ok(kills)
}

/// Writes (commit, overwrite, delete, now and then VACUUM) from two
/// threads until killed, announcing each operation (`start <thread> <op>`)
/// and acknowledging it once it returned Ok (`ack <thread> <op>`). With
/// `MP_VACUUMS=true` the second thread runs nothing but VACUUM.
fn crasher_main() -> TestResult {
    let seed: u64 = support::child_env("MP_SEED").parse()?;
    let vacuums = support::child_env("MP_VACUUMS") == "true";
    let store = SqliteStore::builder(support::child_env("MP_DB"))
        .checkpoint_pages(8)
        .build()?;
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let store = &store;
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ t);
                loop {
                    let key = format!("crasher-{t}-{}", rng.below(32));
                    let op = match rng.below(100) {
                        _ if vacuums && t == 1 => "vacuum",
                        0..80 => "commit",
                        80..99 => "delete",
                        // Killed mid-VACUUM too, while the others work.
                        _ => "vacuum",
                    };
                    let len = rng.below(3000) as usize;
                    // The state the operation leaves: the data's length,
                    // or "-" for none.
                    let leaves = if op == "commit" {
                        len.to_string()
                    } else {
                        "-".into()
                    };
                    emit(&format!("start {t} {op} {key} {leaves}"));
                    let result = match op {
                        "commit" => store.commit(&key, &vec![t as u8; len], far_future()),
                        "delete" => store.delete(&key).map(drop),
                        _ => store.vacuum(),
                    };
                    if let Err(err) = result {
                        emit(&format!("error {op} {key}: {err:?}"));
                        std::process::exit(3);
                    }
                    emit(&format!("ack {t} {op}"));
                }
            });
        }
    });
    Ok(())
}

fn next_line(lines: &Receiver<String>, started: Instant) -> TestResult<String> {
    Ok(lines.recv_timeout(DEADLINE.saturating_sub(started.elapsed()))?)
}

/// A value that names the process and its sequence number.
fn value(id: u64, seq: u64) -> Vec<u8> {
    format!("{id}:{seq}").into_bytes()
}

fn parse_value(data: &[u8]) -> Option<(u64, u64)> {
    let (id, seq) = std::str::from_utf8(data).ok()?.split_once(':')?;
    Some((id.parse().ok()?, seq.parse().ok()?))
}

/// What a child says it did.
#[derive(Debug, Default)]
struct Report {
    own: HashMap<String, Option<u64>>,
    shared: HashMap<String, u64>,
    claims: Vec<String>,
    acked: u64,
    done: bool,
}

impl Report {
    fn read(&mut self, line: &str) -> TestResult {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["own", key, "deleted"] => {
                self.own.insert((*key).to_owned(), None);
            }
            ["own", key, seq] => {
                self.own.insert((*key).to_owned(), Some(seq.parse()?));
            }
            ["shared", key, seq] => {
                self.shared.insert((*key).to_owned(), seq.parse()?);
            }
            ["claim", key] => self.claims.push((*key).to_owned()),
            ["done", acked] => {
                self.acked = acked.parse()?;
                self.done = true;
            }
            _ => return Err(format!("unexpected line {line:?}").into()),
        }
        Ok(())
    }
}

/// One process: opens the file, waits for "go", runs its operations, and
/// reports the last acknowledged state of everything it wrote. Fails on any
/// error, and on any read that contradicts what it wrote.
fn child_main() -> TestResult {
    let env = support::child_env;
    let id: u64 = env("MP_ID").parse()?;
    let ops: u64 = env("MP_OPS").parse()?;
    let mut rng = Rng::new(env("MP_SEED").parse()?);
    // The default 5 s busy timeout. Cleanup runs often (removing the
    // expired sessions every process leaves), and half the processes
    // checkpoint the WAL every few pages.
    let store = SqliteStore::builder(env("MP_DB"))
        .cleanup_interval(Duration::from_millis(20))
        .first_cleanup_delay(Duration::ZERO)
        .checkpoint_pages(if id.is_multiple_of(2) { 1000 } else { 8 })
        .build()?;
    emit("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;

    let mut acked = 0;
    for c in 0..CLAIMS {
        let key = format!("claim-{c}");
        if store.create(&key, &value(id, 0), far_future())? {
            emit(&format!("claim {key}"));
        }
        acked += 1;
    }
    let mut own: HashMap<String, Option<u64>> = HashMap::new();
    let mut shared: HashMap<String, u64> = HashMap::new();
    // The highest sequence seen from each writer, per shared key: reads
    // never go back in time.
    let mut seen: HashMap<(String, u64), u64> = HashMap::new();
    for seq in 1..=ops {
        let mine = format!("p{id}-k{}", rng.below(OWN_KEYS));
        let common = format!("shared-{}", rng.below(SHARED_KEYS));
        match rng.below(100) {
            0..30 => {
                store.commit(&mine, &value(id, seq), far_future())?;
                own.insert(mine, Some(seq));
                acked += 1;
            }
            30..40 => {
                let held = own.get(&mine).copied().flatten();
                let found = store.delete(&mine)?;
                if found != held.is_some() {
                    return Err(format!("delete {mine}: {found}, but I wrote {held:?}").into());
                }
                own.insert(mine, None);
                acked += 1;
            }
            40..60 => {
                let want = own.get(&mine).copied().flatten().map(|s| value(id, s));
                let found = store.find(&mine)?;
                if found != want {
                    return Err(format!("find {mine}: {found:?}, I wrote {want:?}").into());
                }
            }
            60..75 => {
                store.commit(&common, &value(id, seq), far_future())?;
                shared.insert(common, seq);
                acked += 1;
            }
            75..95 => {
                let Some(found) = store.find(&common)? else {
                    if shared.contains_key(&common) {
                        return Err(format!("{common} vanished after I wrote it").into());
                    }
                    continue;
                };
                let (writer, s) = parse_value(&found).ok_or("shared value is not a write")?;
                if writer == id && Some(&s) != shared.get(&common) {
                    return Err(format!(
                        "{common}: my write {s}, my last was {:?}",
                        shared.get(&common)
                    )
                    .into());
                }
                let max = seen.entry((common.clone(), writer)).or_insert(s);
                if s < *max {
                    return Err(format!("{common}: saw {writer}:{s} after {writer}:{max}").into());
                }
                *max = s;
            }
            _ => {
                // Already expired: never found, left for cleanup.
                let junk = format!("junk-{id}-{seq}");
                store.commit(
                    &junk,
                    b"expired",
                    SystemTime::now() - Duration::from_secs(1),
                )?;
                if store.find(&junk)?.is_some() {
                    return Err(format!("expired {junk} was found").into());
                }
                acked += 1;
            }
        }
    }
    for (key, seq) in &own {
        match seq {
            Some(s) => emit(&format!("own {key} {s}")),
            None => emit(&format!("own {key} deleted")),
        }
    }
    for (key, seq) in &shared {
        emit(&format!("shared {key} {seq}"));
    }
    emit(&format!("done {acked}"));
    Ok(())
}
