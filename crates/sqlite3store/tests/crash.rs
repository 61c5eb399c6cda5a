//! Crash durability: a child process commits, overwrites, creates and
//! deletes sessions from several threads and reports each write only after
//! the call returned Ok; the parent SIGKILLs it at a random moment, reopens
//! the file and checks that every acknowledged write is there, exactly, and
//! that the file passes `PRAGMA integrity_check`. The same file goes through
//! every kill of a run, so recovery is followed by more writes and more kills;
//! meanwhile expired sessions are cleaned up and the file vacuumed, so kills
//! also land in cleanup, incremental vacuum, VACUUM and checkpoints.
//!
//! `SQLITE3STORE_CRASH_KILLS=500` runs longer; `SQLITE3STORE_SEED` replays.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlite3store::{Durability, SqliteStore};
use support::{data_for, emit, far_future, version_of, Rng, TestResult};

/// Keys each writer thread owns (tokens `t<thread>-k<key>`).
const KEYS_PER_THREAD: u64 = 48;
const MAX_THREADS: u64 = 6;
/// A child that runs this long without being killed ends itself.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

#[test]
fn acknowledged_writes_survive_sigkill_process_crash() -> TestResult {
    crash_test(
        "acknowledged_writes_survive_sigkill_process_crash",
        Durability::ProcessCrash,
    )
}

#[test]
fn acknowledged_writes_survive_sigkill_power_loss() -> TestResult {
    crash_test(
        "acknowledged_writes_survive_sigkill_power_loss",
        Durability::PowerLoss,
    )
}

fn crash_test(test: &str, durability: Durability) -> TestResult {
    if support::child_role().is_some() {
        child_main(durability);
    }
    let kills = support::env_count("SQLITE3STORE_CRASH_KILLS", 20);
    let mut rng = Rng::from_env(test);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let mut model = Model::default();
    let mut totals = Totals::default();

    for round in 0..kills as u64 {
        let threads = 1 + rng.below(MAX_THREADS);
        let mut cmd = support::child_command(test, "crash")?;
        cmd.env("CRASH_DB", &path)
            .env("CRASH_ROUND", round.to_string())
            .env("CRASH_SEED", rng.next_u64().to_string())
            .env("CRASH_THREADS", threads.to_string())
            .env("CRASH_GROUP_COMMIT", (!rng.chance(25)).to_string())
            .env(
                "CRASH_CHECKPOINT_PAGES",
                if rng.chance(50) { "8" } else { "1000" },
            );
        // Mostly after some acknowledged writes; sometimes blind, which may
        // land while the child is still opening (recovering) the file.
        let plan = if rng.chance(20) {
            Kill::After(Duration::from_millis(rng.below(60)))
        } else {
            Kill::AtAcks(1 + rng.below(400))
        };
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let lines = support::lines(stdout);
        let started = Instant::now();
        let mut pending: HashMap<u64, Intent> = HashMap::new();
        let mut acks = 0u64;
        let killed = loop {
            let wait = match plan {
                Kill::After(after) => match after.checked_sub(started.elapsed()) {
                    Some(left) => left,
                    None => break kill(&mut child)?,
                },
                Kill::AtAcks(n) if acks >= n => break kill(&mut child)?,
                // A slow disk: kill with what we have.
                Kill::AtAcks(_) if started.elapsed() > Duration::from_secs(20) => {
                    break kill(&mut child)?
                }
                Kill::AtAcks(_) => Duration::from_millis(100),
            };
            match lines.recv_timeout(wait) {
                Ok(line) => acks += model.apply(&line, &mut pending, &mut totals)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    return Err(format!("round {round}: child ended by itself: {status}").into());
                }
            }
        };
        // Everything the child wrote before it died is still in the pipe.
        for line in lines {
            model.apply(&line, &mut pending, &mut totals)?;
        }
        totals.kills += 1;
        // A write was announced and not acknowledged: the kill landed in it.
        totals.mid_write += u64::from(!pending.is_empty());
        model.verify(&path, &pending, durability, &mut totals)?;
        assert!(killed, "round {round}: the child was not killed");
    }
    println!(
        "crash[{durability:?}]: {} kills survived ({} mid-write), {} acknowledged writes \
         ({} commits, {} creates, {} deletes), {} key states checked, \
         {} unacknowledged in-flight writes found applied",
        totals.kills,
        totals.mid_write,
        totals.commits + totals.creates + totals.deletes,
        totals.commits,
        totals.creates,
        totals.deletes,
        totals.checked,
        totals.in_flight_applied,
    );
    assert!(
        totals.commits > 0,
        "no commit was acknowledged in {kills} runs"
    );
    // Most kills are planned after some acknowledgements, while every
    // thread is writing: at least half must land inside a write, or the
    // test did not test what it claims.
    assert!(
        totals.mid_write * 2 >= totals.kills,
        "only {} of {} kills landed mid-write",
        totals.mid_write,
        totals.kills
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    After(Duration),
    AtAcks(u64),
}

/// Kills the child (SIGKILL) and reaps it; true if it was still running.
fn kill(child: &mut Child) -> TestResult<bool> {
    let running = child.try_wait()?.is_none();
    child.kill()?;
    child.wait()?;
    Ok(running)
}

#[derive(Debug, Default)]
struct Totals {
    kills: u64,
    /// Kills that landed while a write was in flight.
    mid_write: u64,
    commits: u64,
    creates: u64,
    deletes: u64,
    checked: u64,
    in_flight_applied: u64,
}

/// A write a child thread announced and has not acknowledged yet.
#[derive(Debug, Clone)]
struct Intent {
    op: String,
    token: String,
    version: u64,
}

/// What the parent knows: for every token written, its acknowledged state
/// (`Some(version)` or `None` once deleted).
#[derive(Debug, Default)]
struct Model {
    state: HashMap<String, Option<u64>>,
}

impl Model {
    /// Applies one line from the child; returns 1 for an acknowledgement.
    fn apply(
        &mut self,
        line: &str,
        pending: &mut HashMap<u64, Intent>,
        totals: &mut Totals,
    ) -> TestResult<u64> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ready"] => Ok(0),
            ["intent", thread, op, token, version] => {
                pending.insert(
                    thread.parse()?,
                    Intent {
                        op: (*op).to_owned(),
                        token: (*token).to_owned(),
                        version: version.parse()?,
                    },
                );
                Ok(0)
            }
            ["ack", thread, result] => {
                let intent = pending
                    .remove(&thread.parse()?)
                    .ok_or_else(|| format!("ack without intent: {line}"))?;
                match (intent.op.as_str(), *result) {
                    ("commit", "ok") => {
                        totals.commits += 1;
                        self.state.insert(intent.token, Some(intent.version));
                    }
                    ("create", "true") => {
                        totals.creates += 1;
                        self.state.insert(intent.token, Some(intent.version));
                    }
                    ("create", "false") => {
                        totals.creates += 1;
                        let held = self.state.get(&intent.token).copied().flatten();
                        if held.is_none() {
                            return Err(format!("create refused on a free token: {line}").into());
                        }
                    }
                    ("delete", found) => {
                        totals.deletes += 1;
                        let held = self.state.insert(intent.token, None).flatten();
                        if (found == "true") != held.is_some() {
                            return Err(format!("delete said {found}, model held {held:?}").into());
                        }
                    }
                    _ => return Err(format!("bad ack {line} for {intent:?}").into()),
                }
                Ok(1)
            }
            ["error", ..] => Err(format!("child failed: {line}").into()),
            _ => Err(format!("unexpected line from child: {line:?}").into()),
        }
    }

    /// Reopens the file after a kill and checks every token: its state is
    /// the acknowledged one, or what its one in-flight write would have made
    /// it. Adopts what it finds (an in-flight write that landed is now
    /// durable).
    fn verify(
        &mut self,
        path: &std::path::Path,
        pending: &HashMap<u64, Intent>,
        durability: Durability,
        totals: &mut Totals,
    ) -> TestResult {
        support::assert_intact(path)?;
        let store = SqliteStore::builder(path)
            .durability(durability)
            .cleanup_interval(Duration::ZERO)
            .build()?;
        let in_flight: HashMap<&str, &Intent> =
            pending.values().map(|i| (i.token.as_str(), i)).collect();
        let tokens: HashSet<String> = self
            .state
            .keys()
            .cloned()
            .chain(in_flight.keys().map(|t| (*t).to_owned()))
            .collect();
        for token in &tokens {
            let acked = self.state.get(token).copied().flatten();
            let found = match store.find(token)? {
                None => None,
                Some(data) => Some(
                    version_of(token, &data)
                        .ok_or_else(|| format!("{token}: data is not any write of this token"))?,
                ),
            };
            let landed = in_flight
                .get(token.as_str())
                .and_then(|i| match i.op.as_str() {
                    "delete" => Some(None),
                    // A create lands only where no session is active.
                    "create" if acked.is_some() => None,
                    _ => Some(Some(i.version)),
                });
            if found != acked {
                if landed != Some(found) {
                    return Err(format!(
                        "{token}: found {found:?}, acknowledged {acked:?}, in flight {:?}",
                        in_flight.get(token.as_str())
                    )
                    .into());
                }
                self.state.insert(token.clone(), found);
                totals.in_flight_applied += 1;
            }
            totals.checked += 1;
        }
        // Nothing deleted came back, nothing unknown appeared.
        let all = store.all()?;
        let live: HashSet<&String> = self
            .state
            .iter()
            .filter_map(|(t, v)| v.map(|_| t))
            .collect();
        let listed: HashSet<&String> = all.keys().collect();
        assert_eq!(listed, live, "all() after the kill");
        for (token, data) in &all {
            assert_eq!(
                version_of(token, data),
                self.state[token],
                "all() data of {token}"
            );
        }
        Ok(())
    }
}

/// The child: writes as fast as it can from several threads until killed.
fn child_main(durability: Durability) -> ! {
    let env = support::child_env;
    let round: u64 = env("CRASH_ROUND").parse().expect("round");
    let seed: u64 = env("CRASH_SEED").parse().expect("seed");
    let threads: u64 = env("CRASH_THREADS").parse().expect("threads");
    let store = SqliteStore::builder(env("CRASH_DB"))
        .durability(durability)
        .group_commit(env("CRASH_GROUP_COMMIT") == "true")
        .checkpoint_pages(env("CRASH_CHECKPOINT_PAGES").parse().expect("pages"))
        // Cleanup runs often, to be killed mid-run too (it finds nothing).
        .cleanup_interval(Duration::from_millis(20))
        .first_cleanup_delay(Duration::ZERO)
        .build();
    let store = match store {
        Ok(store) => Arc::new(store),
        Err(err) => {
            emit(&format!("error open: {err}"));
            std::process::exit(3);
        }
    };
    emit("ready");
    // Maintenance to be killed in the middle of: sessions that expire at
    // once (so the cleanup thread deletes rows and gives pages back), and
    // now and then a VACUUM.
    {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xC1EA);
            for n in 0u64.. {
                let junk = format!("junk-{round}-{n}");
                let past = std::time::SystemTime::now() - Duration::from_secs(1);
                let result = if rng.chance(2) {
                    store.vacuum()
                } else {
                    store.commit(&junk, &vec![0; rng.below(6000) as usize], past)
                };
                if let Err(err) = result {
                    emit(&format!("error maintenance: {err} ({err:?})"));
                    std::process::exit(3);
                }
            }
        });
    }
    for thread in 0..threads {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ (thread + 1).wrapping_mul(0x9E37_79B9));
            // Unique across rounds, so a row names the write that made it.
            let mut version = round << 32;
            loop {
                version += 1;
                let token = format!("t{thread}-k{}", rng.below(KEYS_PER_THREAD));
                let op = match rng.below(100) {
                    0..70 => "commit",
                    70..85 => "create",
                    _ => "delete",
                };
                emit(&format!("intent {thread} {op} {token} {version}"));
                let data = data_for(&token, version);
                let result = match op {
                    "commit" => store
                        .commit(&token, &data, far_future())
                        .map(|()| "ok".to_owned()),
                    "create" => store
                        .create(&token, &data, far_future())
                        .map(|b| b.to_string()),
                    _ => store.delete(&token).map(|b| b.to_string()),
                };
                match result {
                    Ok(result) => emit(&format!("ack {thread} {result}")),
                    Err(err) => {
                        emit(&format!("error {op} {token}: {err} ({:?})", err));
                        std::process::exit(3);
                    }
                }
            }
        });
    }
    std::thread::sleep(CHILD_LIFETIME);
    std::process::exit(4)
}

// ---- what each mode syncs --------------------------------------------------

const SYNC_TEST: &str = "power_loss_mode_syncs_the_wal_before_each_acknowledgement";
const SYNC_COMMITS: u64 = 30;

/// A power loss cannot be staged here, but what `PowerLoss` promises can be
/// watched: under strace, every acknowledgement a child prints must come
/// after an fsync of the WAL that followed its last WAL write. The same
/// check shows `ProcessCrash` acknowledging unsynced commits, as documented.
/// Skipped where strace is missing or may not trace (a failure under `CI`;
/// `scripts/test.sh` installs strace).
#[test]
fn power_loss_mode_syncs_the_wal_before_each_acknowledgement() -> TestResult {
    if let Some(role) = support::child_role() {
        return sync_child(&role);
    }
    for (role, durability) in [
        ("power-loss", Durability::PowerLoss),
        ("process-crash", Durability::ProcessCrash),
    ] {
        let dir = tempfile::tempdir()?;
        let trace = dir.path().join("trace.txt");
        let trace_arg = trace.to_string_lossy().into_owned();
        let strace = [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "64",
            "-e",
            "trace=write,pwrite64,writev,pwritev,fsync,fdatasync",
            "-o",
            trace_arg.as_str(),
        ];
        let mut cmd = support::wrapped_child_command(&strace, SYNC_TEST, role)?;
        cmd.env("SYNC_DB", dir.path().join("sessions.db"))
            .stderr(std::process::Stdio::piped());
        let ended = match support::run_to_end(&mut cmd) {
            Ok(ended) => ended,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return support::skip(&format!("cannot run strace: {err}"))
            }
            Err(err) => return Err(err.into()),
        };
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        if !ended.status.success() {
            if text.is_empty() {
                return support::skip(&format!(
                    "strace cannot trace here ({}): {}",
                    ended.status,
                    ended.stderr.trim()
                ));
            }
            return Err(format!("sync child ({role}) failed: {ended:?}").into());
        }
        let (acks, unsynced) = acks_after_sync(&text);
        println!(
            "sync[{durability:?}]: {acks} acknowledgements, {unsynced} before the WAL was synced"
        );
        assert_eq!(acks, SYNC_COMMITS, "{role}: every acknowledgement seen");
        match durability {
            Durability::PowerLoss => {
                assert_eq!(unsynced, 0, "PowerLoss acknowledged unsynced commits")
            }
            _ => assert!(
                unsynced > 0,
                "ProcessCrash is documented not to sync each commit"
            ),
        }
    }
    Ok(())
}

/// Counts acknowledgements in an `strace -f -y` log, and those written
/// while a completed WAL write had not yet been covered by an fsync that
/// started after it.
fn acks_after_sync(trace: &str) -> (u64, u64) {
    let is_sync = |call: &str| call == "fsync" || call == "fdatasync";
    let on_wal = |args: &str| {
        args.split(',')
            .next()
            .is_some_and(|fd| fd.contains("-wal>"))
    };
    // WAL writes completed so far; of those, how many a finished sync covers.
    let (mut written, mut synced) = (0u64, 0u64);
    // Per thread: the call in progress and, for a sync, `written` when it began.
    let mut pending: HashMap<&str, (&str, bool, u64)> = HashMap::new();
    let (mut acks, mut unsynced) = (0, 0);
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let call = resumed.split(' ').next().unwrap_or("");
            if let Some((_, wal, at_start)) = pending.remove(pid) {
                if wal && is_sync(call) {
                    synced = synced.max(at_start);
                } else if wal {
                    written += 1;
                }
            }
            continue;
        }
        let Some((call, args)) = rest.split_once('(') else {
            continue;
        };
        let wal = on_wal(args);
        if call == "write" && args.starts_with("1<") && args.contains("@@ ack") {
            acks += 1;
            if written > synced {
                unsynced += 1;
            }
        }
        if rest.contains("<unfinished ...>") {
            pending.insert(pid, (call, wal, written));
        } else if wal && is_sync(call) {
            synced = synced.max(written);
        } else if wal {
            written += 1;
        }
    }
    (acks, unsynced)
}

/// Commits one session at a time and acknowledges each on stdout.
fn sync_child(role: &str) -> TestResult {
    let durability = match role {
        "power-loss" => Durability::PowerLoss,
        _ => Durability::ProcessCrash,
    };
    let store = SqliteStore::builder(support::child_env("SYNC_DB"))
        .durability(durability)
        .cleanup_interval(Duration::ZERO)
        .build()?;
    for i in 0..SYNC_COMMITS {
        let token = format!("sync-{i}");
        store.commit(&token, &data_for(&token, i), far_future())?;
        emit(&format!("ack {i}"));
    }
    Ok(())
}
