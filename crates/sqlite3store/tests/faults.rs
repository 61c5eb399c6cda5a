//! Faults: a full file (the page limit, and a really full file system), a
//! write lock held by another connection or process (which may die holding
//! it), a cleanup thread that meets errors, and damaged files: a garbage
//! header, truncation, corrupted pages, a damaged `-wal` or `-shm`. Each
//! ends in a typed error or correct data: never a panic, never wrong data.
//!
//! Ignored tests record what does not hold yet (see their reasons).

mod support;

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlite3store::{Error, ManualClock, SqliteStore};
use support::{assert_intact, emit, far_future, Rng, TestResult};

thread_local! {
    /// Faults injected by the test running on this thread.
    static FAULTS: Cell<u64> = const { Cell::new(0) };
}

fn fault() {
    FAULTS.with(|f| f.set(f.get() + 1));
}

/// Prints the summary line of the test running on this thread.
fn report(test: &str, detail: &str) {
    println!(
        "faults[{test}]: {} injected{detail}",
        FAULTS.with(Cell::get)
    );
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Polls `done` until it holds or `within` has passed.
fn eventually(within: Duration, mut done: impl FnMut() -> TestResult<bool>) -> TestResult<bool> {
    let deadline = Instant::now() + within;
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn assert_full(err: &Error, what: &str) {
    assert!(
        matches!(err, Error::DiskFull(_)),
        "{what}: expected DiskFull, got {err:?}"
    );
    assert!(err.is_retryable(), "{what}: DiskFull is retryable");
}

fn assert_busy(err: &Error, what: &str) {
    assert!(
        matches!(err, Error::Busy(_)),
        "{what}: expected Busy, got {err:?}"
    );
    assert!(err.is_retryable(), "{what}: Busy is retryable");
}

// ---- a full file ----------------------------------------------------------

fn payload(i: u64) -> Vec<u8> {
    format!("{i:06}:").repeat(200).into_bytes()
}

fn token(i: u64) -> String {
    format!("session-{i:06}")
}

/// Commits new sessions until the file is full; returns those stored.
fn fill(store: &SqliteStore, next: &mut u64, expiry: SystemTime) -> TestResult<Vec<u64>> {
    let mut stored = Vec::new();
    for _ in 0..10_000 {
        let i = *next;
        *next += 1;
        match store.commit(&token(i), &payload(i), expiry) {
            Ok(()) => stored.push(i),
            Err(err) => {
                fault();
                assert_full(&err, "commit into a full file");
                assert_eq!(
                    store.find(&token(i))?,
                    None,
                    "a failed commit wrote nothing"
                );
                return Ok(stored);
            }
        }
    }
    Err("the file never filled up".into())
}

#[test]
fn full_file_fails_commits_with_disk_full_and_recovers_without_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let limit = 256 * 1024;
    let clock = Arc::new(ManualClock::new(start()));
    let store = SqliteStore::builder(&path)
        .max_file_size(limit)
        .cleanup_interval(Duration::ZERO)
        .clock(clock.clone())
        .build()?;
    let soon = start() + Duration::from_secs(60);
    let later = start() + Duration::from_secs(86_400);
    let mut next = 0;
    let mut live: Vec<u64> = fill(&store, &mut next, later)?;
    assert!(live.len() > 20, "only {} sessions fit", live.len());

    // Still full: the same commit fails the same way, with no restart.
    let err = store
        .commit("one-more", &payload(0), later)
        .expect_err("still full");
    fault();
    assert_full(&err, "second try");
    // Finds keep working, and see every acknowledged commit.
    for &i in &live {
        assert_eq!(store.find(&token(i))?, Some(payload(i)), "{}", token(i));
    }
    assert_eq!(store.all()?.len(), live.len());

    // Concurrent commits into the full file (one group-commit batch that
    // fails): each caller gets DiskFull, and nothing is half-written.
    let results: Vec<(u64, sqlite3store::Result<()>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let i = 1_000_000 + t;
                    (i, store.commit(&token(i), &payload(i), later))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (i, result) in results {
        match result {
            Ok(()) => {
                assert_eq!(store.find(&token(i))?, Some(payload(i)));
                live.push(i);
            }
            Err(err) => {
                fault();
                assert_full(&err, "concurrent commit");
                assert_eq!(store.find(&token(i))?, None);
            }
        }
    }

    // Deleting sessions frees pages: commits work again.
    for &i in live.iter().step_by(3) {
        assert!(store.delete(&token(i))?, "delete {}", token(i));
    }
    live = live
        .into_iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 0)
        .map(|(_, i)| i)
        .collect();
    let refilled = fill(&store, &mut next, soon)?;
    assert!(
        !refilled.is_empty(),
        "no commit fit after deleting a third of the sessions"
    );

    // Cleanup frees pages too: expire the refill and remove it.
    clock.advance(Duration::from_secs(120));
    assert_eq!(store.delete_expired()?.removed, refilled.len() as u64);
    let again = fill(&store, &mut next, later)?;
    assert!(!again.is_empty(), "no commit fit after cleanup");
    live.extend(again);

    for &i in &live {
        assert_eq!(store.find(&token(i))?, Some(payload(i)), "{}", token(i));
    }
    for &i in &refilled {
        assert_eq!(store.find(&token(i))?, None, "expired {}", token(i));
    }
    let stats = store.stats()?;
    assert!(
        stats.page_count * stats.page_size <= limit,
        "{} pages of {} bytes exceed the {limit}-byte limit",
        stats.page_count,
        stats.page_size
    );
    drop(store);
    assert_intact(&path)?;
    report("disk full", "");
    Ok(())
}

// ---- a really full disk ----------------------------------------------------

const ENOSPC_TEST: &str = "a_really_full_disk_gives_disk_full_and_recovers_when_space_returns";

/// The file system itself full (ENOSPC, not the page limit): a 4 MiB tmpfs
/// mounted in a private mount namespace of a child process, so nothing is
/// left mounted whatever happens. Skipped (a failure under `CI`) only where
/// unshare is missing or refused, or the mount fails (exit code
/// [`ENOSPC_SKIP`]); any other end of the child, a signal included, fails.
#[test]
fn a_really_full_disk_gives_disk_full_and_recovers_when_space_returns() -> TestResult {
    if support::child_role().is_some() {
        return enospc_main();
    }
    let namespace = ["unshare", "--mount", "--propagation", "private"];
    // Can this process make a private mount namespace at all?
    match std::process::Command::new(namespace[0])
        .args(&namespace[1..])
        .arg("true")
        .stdout(Stdio::null())
        .output()
    {
        Ok(probe) if probe.status.success() => {}
        Ok(probe) => {
            return support::skip(&format!(
                "unshare --mount refused ({}): {}",
                probe.status,
                String::from_utf8_lossy(&probe.stderr).trim()
            ))
        }
        Err(err) => return support::skip(&format!("cannot run unshare: {err}")),
    }
    let dir = tempfile::tempdir()?;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let script = format!(
        r#"mount -t tmpfs -o size=4m tmpfs "$ENOSPC_DIR" || exit {ENOSPC_SKIP}; exec "$@""#
    );
    let mut wrapper = namespace.to_vec();
    wrapper.extend(["sh", "-c", script.as_str(), "sh"]);
    let ended = support::run_to_end(
        support::wrapped_child_command(&wrapper, ENOSPC_TEST, "enospc")?
            .env("ENOSPC_DIR", &mnt)
            .stderr(Stdio::piped()),
    )?;
    match ended.status.code() {
        Some(0) if ended.done() => {
            println!("faults[full disk]: {}", ended.lines.join("; "));
            Ok(())
        }
        Some(ENOSPC_SKIP) => support::skip(&format!(
            "cannot mount a private tmpfs: {}",
            ended.stderr.trim()
        )),
        // A panic, an error returned, a signal (code None), or an exit
        // without finishing.
        _ => Err(format!("full-disk child ended badly: {ended:?}").into()),
    }
}

/// The exit code of the full-disk child's wrapper when the tmpfs cannot be
/// mounted: the one exit that counts as "cannot test here".
const ENOSPC_SKIP: i32 = 77;

fn enospc_main() -> TestResult {
    use std::io::Write as _;
    let mnt = std::path::PathBuf::from(support::child_env("ENOSPC_DIR"));
    let path = mnt.join("sessions.db");
    let store = SqliteStore::builder(&path)
        .cleanup_interval(Duration::ZERO)
        .build()?;
    let later = far_future();
    let mut next = 0;
    // Room for a few hundred sessions: ballast takes the rest.
    for i in 0..10 {
        store.commit(&token(i), &payload(i), later)?;
        next += 1;
    }
    let ballast = mnt.join("ballast");
    let mut file = std::fs::File::create(&ballast)?;
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let full = file.metadata()?.len();
    file.set_len(full.saturating_sub(1 << 20))?;
    file.sync_all()?;
    drop(file);

    let mut stored: Vec<u64> = (0..next).collect();
    let mut faults = 0;
    let err = loop {
        if next > 100_000 {
            return Err("the disk never filled up".into());
        }
        match store.commit(&token(next), &payload(next), later) {
            Ok(()) => stored.push(next),
            Err(err) => break err,
        }
        next += 1;
    };
    faults += 1;
    assert_full(&err, "commit on a full disk");
    for &i in &stored {
        assert_eq!(
            store.find(&token(i))?,
            Some(payload(i)),
            "{} on a full disk",
            token(i)
        );
    }
    assert_eq!(
        store.find(&token(next))?,
        None,
        "the failed commit wrote nothing"
    );
    // Still full: every write fails the same way, none panics.
    for _ in 0..3 {
        faults += 1;
        assert_full(
            &store.commit("again", &payload(0), later).unwrap_err(),
            "again",
        );
    }
    let delete = match store.delete(&token(0)) {
        Ok(found) => {
            assert!(found);
            stored.remove(0);
            "worked"
        }
        Err(err) => {
            assert_full(&err, "delete on a full disk");
            "failed with DiskFull"
        }
    };

    // Space returns: commits work again, with no restart.
    std::fs::remove_file(&ballast)?;
    for i in next..next + 50 {
        store.commit(&token(i), &payload(i), later)?;
        stored.push(i);
    }
    for &i in &stored {
        assert_eq!(store.find(&token(i))?, Some(payload(i)), "{}", token(i));
    }
    drop(store);
    assert_intact(&path)?;
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    assert_eq!(
        store.all()?.len(),
        stored.len(),
        "all acknowledged sessions after reopen"
    );
    emit(&format!(
        "done: {faults} faults injected, {} sessions fit, delete when full {delete}",
        stored.len() - 50
    ));
    Ok(())
}

// ---- a write lock held elsewhere -------------------------------------------

/// Every kind of write fails with Busy while another connection holds the
/// write lock; reads go on.
fn assert_writes_busy(store: &SqliteStore) -> TestResult {
    let later = far_future();
    let checks: [(&str, sqlite3store::Result<()>); 5] = [
        ("commit", store.commit("blocked", b"x", later)),
        ("create", store.create("blocked", b"x", later).map(drop)),
        ("delete", store.delete("before").map(drop)),
        ("delete_expired", store.delete_expired().map(drop)),
        ("vacuum", store.vacuum()),
    ];
    for (what, result) in checks {
        fault();
        assert_busy(&result.expect_err(what), what);
    }
    // Concurrent writers, batched together: each gets its own Busy.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| s.spawn(move || store.commit(&format!("blocked-{t}"), b"x", later)))
            .collect();
        for h in handles {
            fault();
            assert_busy(
                &h.join().expect("thread").expect_err("locked"),
                "concurrent commit",
            );
        }
    });
    assert_eq!(
        store.find("before")?,
        Some(b"before".to_vec()),
        "reads go on"
    );
    assert_eq!(store.find("blocked")?, None);
    Ok(())
}

fn locked_store(path: &Path) -> TestResult<SqliteStore> {
    let store = SqliteStore::builder(path)
        .busy_timeout(Duration::from_millis(100))
        .cleanup_interval(Duration::ZERO)
        .build()?;
    store.commit("before", b"before", far_future())?;
    Ok(store)
}

/// An insert of `token` as another program would write it (expiry far out).
fn foreign_insert(token: &str) -> String {
    format!(
        "INSERT INTO sessions (token, data, expiry) VALUES ('{token}', x'6f74686572', 5373484.0)"
    )
}

#[test]
fn write_lock_held_by_another_connection_gives_busy_then_recovers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = locked_store(&path)?;
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch(&format!("BEGIN IMMEDIATE; {}", foreign_insert("other")))?;

    assert_writes_busy(&store)?;
    assert_eq!(
        store.find("other")?,
        None,
        "uncommitted rows stay invisible"
    );

    other.execute_batch("COMMIT")?;
    store.commit("after", b"after", far_future())?;
    assert_eq!(store.find("after")?, Some(b"after".to_vec()));
    assert_eq!(store.find("other")?, Some(b"other".to_vec()));
    assert!(store.delete("other")?);
    drop(store);
    report("lock held by a connection", "");
    assert_intact(&path)
}

const LOCKER_TEST: &str = "write_lock_held_by_another_process_gives_busy_until_released_or_killed";

#[test]
fn write_lock_held_by_another_process_gives_busy_until_released_or_killed() -> TestResult {
    if support::child_role().is_some() {
        return locker_main();
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = locked_store(&path)?;

    for (token, release) in [("released", true), ("killed", false)] {
        let mut child = support::child_command(LOCKER_TEST, "locker")?
            .env("LOCK_DB", &path)
            .env("LOCK_TOKEN", token)
            .stdin(Stdio::piped())
            .spawn()?;
        let lines = support::lines(child.stdout.take().ok_or("no stdout")?);
        assert_eq!(lines.recv_timeout(Duration::from_secs(30))?, "locked");

        assert_writes_busy(&store)?;

        if release {
            writeln!(child.stdin.take().ok_or("no stdin")?, "release")?;
            assert_eq!(lines.recv_timeout(Duration::from_secs(30))?, "released");
            assert!(child.wait()?.success(), "locker failed");
        } else {
            // Dies holding the lock: the OS drops it, SQLite rolls back.
            child.kill()?;
            child.wait()?;
        }
        fault();
        store.commit(&format!("after-{token}"), b"after", far_future())?;
        let landed = store.find(token)?;
        assert_eq!(
            landed.is_some(),
            release,
            "{token}: the other process's write is there if and only if it committed"
        );
    }
    drop(store);
    report("lock held by a process", "");
    assert_intact(&path)
}

/// A child that holds the write lock (with an uncommitted insert) until
/// told to release it, or until it is killed.
fn locker_main() -> TestResult {
    let conn = rusqlite::Connection::open(support::child_env("LOCK_DB"))?;
    let insert = foreign_insert(&support::child_env("LOCK_TOKEN"));
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {insert}"))?;
    emit("locked");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    conn.execute_batch("COMMIT")?;
    emit("released");
    Ok(())
}

// ---- cleanup through errors ------------------------------------------------

#[test]
fn cleanup_thread_keeps_running_through_failed_runs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let clock = Arc::new(ManualClock::new(start()));
    let store = SqliteStore::builder(&path)
        .cleanup_interval(Duration::from_millis(50))
        .first_cleanup_delay(Duration::from_millis(50))
        .busy_timeout(Duration::from_millis(20))
        .clock(clock.clone())
        .build()?;
    for i in 0..30 {
        store.commit(&token(i), &payload(i), start() + Duration::from_secs(10))?;
    }
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    clock.advance(Duration::from_secs(3600));
    let locked_at = SystemTime::now();

    // Two runs start (and end) while the lock is held: both fail, and the
    // thread goes on to the next.
    let mut runs = Vec::new();
    let ran = eventually(Duration::from_secs(20), || {
        if let Some(report) = store.stats()?.last_cleanup {
            if report.started > locked_at && !runs.contains(&report.started) {
                runs.push(report.started);
            }
        }
        Ok(runs.len() >= 2)
    })?;
    assert!(ran, "cleanup did not run twice while locked (saw {runs:?})");
    let stats = store.stats()?;
    assert_eq!(stats.expired, 30, "nothing was removed while locked");
    runs.iter().for_each(|_| fault());

    other.execute_batch("ROLLBACK")?;
    let cleaned = eventually(Duration::from_secs(20), || Ok(store.stats()?.expired == 0))?;
    assert!(
        cleaned,
        "cleanup never succeeded after the lock was released"
    );
    assert_eq!(store.all()?.len(), 0);
    report("cleanup through errors", "");
    Ok(())
}

// ---- damaged files ---------------------------------------------------------

/// Token to data.
type Contents = HashMap<String, Vec<u8>>;

/// A closed, checkpointed database holding `n` small sessions (no overflow
/// pages), as bytes, and what it holds.
fn pristine(dir: &Path, n: u64) -> TestResult<(Vec<u8>, Contents)> {
    let path = dir.join("pristine.db");
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    let mut expected = HashMap::new();
    for i in 0..n {
        let (t, d) = (
            token(i),
            format!("{i}|").repeat(1 + (i % 40) as usize).into_bytes(),
        );
        store.commit(&t, &d, far_future())?;
        expected.insert(t, d);
    }
    drop(store);
    let conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    support::remove_sidecars(&path)?;
    Ok((std::fs::read(&path)?, expected))
}

/// The errors that say "this file is damaged".
fn is_damage(err: &Error) -> bool {
    matches!(
        err,
        Error::Corrupt(_) | Error::NotADatabase(_) | Error::SchemaMismatch { .. }
    )
}

#[derive(Debug, Default)]
struct Outcome {
    rejected_at_open: u64,
    /// Files that opened, and were byte for byte the same once closed.
    opened_unchanged: u64,
    errors: u64,
    correct: u64,
    /// Operations that returned wrong data with no error.
    wrong: Vec<String>,
}

/// Opens the damaged file at `path` (with a timeout) and runs every
/// operation. Each must end in a damage error or in exactly the right
/// answer. Opening never changes the file, whether it is refused or not:
/// a file that opens is closed again at once and compared byte for byte
/// (anything written at open would be checkpointed into it on close).
fn exercise(path: &Path, expected: &Contents, what: &str, out: &mut Outcome) -> TestResult {
    fault();
    let damaged = std::fs::read(path)?;
    let builder = || SqliteStore::builder(path).cleanup_interval(Duration::ZERO);
    match support::open_within(builder(), what)? {
        Ok(store) => drop(store),
        Err(err) => {
            assert!(is_damage(&err), "{what}: open failed with {err:?}");
            assert!(
                std::fs::read(path)? == damaged,
                "{what}: refused at open, and the file was changed"
            );
            out.rejected_at_open += 1;
            return Ok(());
        }
    }
    assert!(
        std::fs::read(path)? == damaged,
        "{what}: opening (and closing) the store changed the file"
    );
    out.opened_unchanged += 1;
    let store = support::open_within(builder(), what)?
        .map_err(|err| format!("{what}: opened once, then refused: {err:?}"))?;
    let mut check = |op: &str, result: Result<bool, Error>| match result {
        Ok(true) => out.correct += 1,
        Ok(false) => out.wrong.push(format!("{what}: {op}")),
        Err(err) if is_damage(&err) => out.errors += 1,
        Err(err) => panic!("{what}: {op} failed with {err:?}, not a damage error"),
    };
    for (t, d) in expected {
        check(
            &format!("find {t}"),
            store.find(t).map(|f| f.as_ref() == Some(d)),
        );
    }
    check("all", store.all().map(|all| &all == expected));
    check(
        "list",
        store.list(usize::MAX).map(|l| l.len() == expected.len()),
    );
    check(
        "stats",
        store.stats().map(|s| s.active == expected.len() as u64),
    );
    let t = token(0);
    check(
        "delete",
        store
            .delete(&t)
            .map(|found| found == expected.contains_key(&t)),
    );
    check(
        "commit",
        store
            .commit("new-session", b"new", far_future())
            .and_then(|()| store.find("new-session"))
            .map(|f| f.as_deref() == Some(&b"new"[..])),
    );
    check(
        "delete_expired",
        store.delete_expired().map(|r| r.removed == 0),
    );
    Ok(())
}

#[test]
fn garbage_header_is_rejected_at_open_and_the_file_left_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (good, _) = pristine(dir.path(), 50)?;
    let path = dir.path().join("damaged.db");
    let mut rng = Rng::new(7);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut header = good.clone();
    header[..100]
        .iter_mut()
        .for_each(|b| *b = rng.next_u64() as u8);
    cases.push(("random header", header));
    let mut magic = good.clone();
    magic[..16].copy_from_slice(b"SQLite format 4\0");
    cases.push(("wrong magic", magic));
    let mut page_size = good.clone();
    page_size[16..18].copy_from_slice(&[0x12, 0x34]);
    cases.push(("impossible page size", page_size));
    cases.push(("a text file", b"token,data,expiry\nabc,def,1\n".repeat(500)));
    cases.push((
        "random bytes",
        (0..65_536).map(|_| rng.next_u64() as u8).collect(),
    ));
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes)?;
        fault();
        let err = support::open_within(SqliteStore::builder(&path), what)?.expect_err(what);
        assert!(
            matches!(err, Error::NotADatabase(_)),
            "{what}: expected NotADatabase, got {err:?}"
        );
        let builder = SqliteStore::builder(&path);
        let err = support::within(what, move || {
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            rt.block_on(builder.build_async())
        })?
        .expect_err(what);
        assert!(
            matches!(err, Error::NotADatabase(_)),
            "{what} (async): {err:?}"
        );
        assert_eq!(std::fs::read(&path)?, bytes, "{what}: the file was changed");
        support::remove_sidecars(&path)?;
    }
    report("garbage header", "");
    Ok(())
}

#[test]
fn truncated_file_gives_a_damage_error_or_right_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (good, expected) = pristine(dir.path(), 300)?;
    let page = usize::from(u16::from_be_bytes([good[16], good[17]]));
    let path = dir.path().join("damaged.db");
    let mut out = Outcome::default();
    let lengths = [
        2,
        50,
        99,
        100,
        512,
        page - 1,
        page,
        page + 1,
        3 * page,
        good.len() / 2,
        good.len() - page,
        good.len() - 1,
    ];
    for len in lengths {
        std::fs::write(&path, &good[..len])?;
        exercise(
            &path,
            &expected,
            &format!("truncated to {len} bytes"),
            &mut out,
        )?;
        support::remove_sidecars(&path)?;
    }
    // An empty file is a new database, not a damaged one.
    std::fs::write(&path, b"")?;
    let store = support::open_within(SqliteStore::builder(&path), "an empty file")??;
    assert!(store.all()?.is_empty());
    report("truncation", &format!(", {out:?}"));
    assert!(
        out.wrong.is_empty(),
        "wrong data with no error: {:#?}",
        out.wrong
    );
    Ok(())
}

#[test]
fn corrupted_pages_give_a_damage_error_or_right_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (good, expected) = pristine(dir.path(), 300)?;
    let page = usize::from(u16::from_be_bytes([good[16], good[17]]));
    let pages = good.len() / page;
    let path = dir.path().join("damaged.db");
    let mut rng = Rng::new(11);
    let mut out = Outcome::default();
    // Whole pages overwritten (page 1, the header and schema, included).
    for p in 0..pages {
        for fill in ["zeros", "ones", "random"] {
            let mut bytes = good.clone();
            for b in &mut bytes[p * page..(p + 1) * page] {
                *b = match fill {
                    "zeros" => 0,
                    "ones" => 0xFF,
                    _ => rng.next_u64() as u8,
                };
            }
            std::fs::write(&path, &bytes)?;
            exercise(
                &path,
                &expected,
                &format!("page {} filled with {fill}", p + 1),
                &mut out,
            )?;
            support::remove_sidecars(&path)?;
        }
    }
    report("page corruption", &format!(", {out:?}"));
    assert!(
        out.wrong.is_empty(),
        "wrong data with no error: {:#?}",
        out.wrong
    );
    Ok(())
}

#[test]
#[ignore = "limitation: SQLite keeps no page checksums, so bytes overwritten inside a row's data are returned as they are"]
fn bytes_overwritten_inside_rows_give_a_damage_error_or_right_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (good, expected) = pristine(dir.path(), 300)?;
    let page = usize::from(u16::from_be_bytes([good[16], good[17]]));
    let pages = good.len() / page;
    let path = dir.path().join("damaged.db");
    let mut rng = Rng::new(13);
    let mut out = Outcome::default();
    // Bytes overwritten across a page boundary: the end of one page (cell
    // content) and the start of the next (its header).
    for p in 1..pages - 1 {
        let mut bytes = good.clone();
        let from = p * page + page / 2;
        for b in &mut bytes[from..from + page] {
            *b = rng.next_u64() as u8;
        }
        std::fs::write(&path, &bytes)?;
        exercise(
            &path,
            &expected,
            &format!("bytes {from}..{} random", from + page),
            &mut out,
        )?;
        support::remove_sidecars(&path)?;
    }
    report("in-row corruption", &format!(", {out:?}"));
    assert!(
        out.wrong.is_empty(),
        "wrong data with no error: {:#?}",
        out.wrong
    );
    Ok(())
}

#[test]
fn one_byte_file_is_rejected_and_left_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (good, _) = pristine(dir.path(), 10)?;
    let path = dir.path().join("damaged.db");
    // A database cut to its first byte, and a file that never was one.
    for bytes in [&good[..1], b"x"] {
        std::fs::write(&path, bytes)?;
        fault();
        let opened = support::open_within(
            SqliteStore::builder(&path).cleanup_interval(Duration::ZERO),
            "a one-byte file",
        )?;
        let after = std::fs::read(&path)?;
        assert!(
            matches!(opened, Err(Error::NotADatabase(_) | Error::Corrupt(_))),
            "{bytes:?}: opened as {opened:?}; the file is now {} bytes",
            after.len()
        );
        assert_eq!(after, bytes, "the file was overwritten");
    }
    Ok(())
}

#[test]
fn concurrent_writers_meeting_a_held_lock_get_busy_within_the_busy_timeout() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let timeout = Duration::from_millis(100);
    let store = SqliteStore::builder(&path)
        .busy_timeout(timeout)
        .cleanup_interval(Duration::ZERO)
        .build()?;
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    // Retrying each write alone would make the last of them wait about
    // 33 x busy_timeout.
    let writers = 32;
    let waits: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let started = Instant::now();
                    let result = store.commit(&format!("w{t}"), b"x", far_future());
                    (started.elapsed(), result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (waited, result) = h.join().expect("writer");
                assert_busy(&result.expect_err("locked"), "concurrent commit");
                waited
            })
            .collect()
    });
    let longest = waits.iter().max().copied().unwrap_or_default();
    println!("{writers} writers, busy_timeout {timeout:?}: longest wait for Busy {longest:?}");
    // The documented bound, not a speed: one wait for the lock, one more for
    // the batch that queued behind it (about 2 x busy_timeout), with ample
    // slack for a loaded machine; never one wait per queued writer.
    assert!(
        longest < timeout * 10,
        "a caller waited {longest:?} for Busy with a busy_timeout of {timeout:?}"
    );
    Ok(())
}

// ---- the file replaced under an open store ---------------------------------

#[test]
fn commits_after_the_file_is_replaced_are_not_silently_lost() -> TestResult {
    for group_commit in [true, false] {
        for how in ["deleted", "replaced by a backup (mv backup.db sessions.db)"] {
            let what = format!("file {how}, group commit {group_commit}");
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("sessions.db");
            let store = SqliteStore::builder(&path)
                .cleanup_interval(Duration::ZERO)
                .group_commit(group_commit)
                .build()?;
            store.commit("before", b"before", far_future())?;
            if how == "deleted" {
                std::fs::remove_file(&path)?;
                support::remove_sidecars(&path)?;
            } else {
                let backup = dir.path().join("backup.db");
                let conn = rusqlite::Connection::open(&path)?;
                conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
                drop(conn);
                std::fs::rename(&backup, &path)?;
            }
            // Every write is refused, alone or batched with others, rather
            // than acknowledged into the orphaned file.
            let refused = |result: sqlite3store::Result<()>, op: &str| {
                fault();
                match result {
                    Err(Error::FileReplaced { path: p }) => {
                        assert_eq!(p, path, "{what}: {op}: the path");
                    }
                    other => panic!("{what}: {op}: expected FileReplaced, got {other:?}"),
                }
            };
            refused(store.commit("after", b"after", far_future()), "commit");
            refused(
                store.create("after", b"after", far_future()).map(drop),
                "create",
            );
            refused(store.delete("before").map(drop), "delete");
            refused(store.delete_expired().map(drop), "delete_expired");
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|t| {
                        let store = &store;
                        s.spawn(move || store.commit(&format!("after-{t}"), b"x", far_future()))
                    })
                    .collect();
                for h in handles {
                    refused(h.join().expect("writer"), "concurrent commit");
                }
            });
            drop(store);
            // Reopened, the store uses the file now at the path.
            let reopened = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
            let restored = how != "deleted";
            assert_eq!(reopened.find("before")?.is_some(), restored, "{what}");
            assert_eq!(reopened.find("after")?, None, "{what}");
            reopened.commit("after", b"after", far_future())?;
            assert_eq!(reopened.find("after")?, Some(b"after".to_vec()), "{what}");
            drop(reopened);
            assert_intact(&path)?;
        }
    }
    report("file replaced", "");
    Ok(())
}

/// Replaces the database at `path` with a copy of it that also holds
/// `new-only` (as `mv backup.db sessions.db` would), while a store has the
/// original open; the original holds `old-only`.
fn replace_with_other_copy(path: &Path) -> TestResult {
    let backup = path.with_extension("backup");
    let conn = rusqlite::Connection::open(path)?;
    conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
    drop(conn);
    let conn = rusqlite::Connection::open(&backup)?;
    conn.execute("DELETE FROM sessions WHERE token = 'old-only'", [])?;
    conn.execute(
        "INSERT INTO sessions (token, data, expiry) SELECT 'new-only', data, expiry FROM sessions WHERE token = 'both'",
        [],
    )?;
    drop(conn);
    std::fs::rename(&backup, path)?;
    Ok(())
}

fn assert_replaced<T: std::fmt::Debug>(result: sqlite3store::Result<T>, what: &str, path: &Path) {
    match result {
        Err(Error::FileReplaced { path: p }) => assert_eq!(p, path, "{what}"),
        other => panic!("{what}: expected FileReplaced, got {other:?}"),
    }
}

#[test]
fn once_a_write_finds_the_file_replaced_reads_fail_too() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    for token in ["both", "old-only"] {
        store.commit(token, b"x", far_future())?;
    }
    replace_with_other_copy(&path)?;
    assert_replaced(store.commit("after", b"x", far_future()), "commit", &path);
    // From now on no read answers, from either file.
    for token in ["both", "old-only", "new-only"] {
        assert_replaced(store.find(token), "find", &path);
        assert_replaced(store.find_with_expiry(token), "find_with_expiry", &path);
    }
    assert_replaced(store.all(), "all", &path);
    assert_replaced(store.list(10), "list", &path);
    assert_replaced(store.stats(), "stats", &path);
    assert_replaced(store.delete_expired(), "delete_expired", &path);
    Ok(())
}

#[test]
fn reads_never_answer_from_two_different_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::builder(&path)
        .cleanup_interval(Duration::ZERO)
        .readers(16)
        .build()?;
    for token in ["both", "old-only"] {
        store.commit(token, b"x", far_future())?;
    }
    // Enough rows that each `all()` takes a while, so concurrent ones
    // overlap and the pool opens more connections.
    let mut conn = rusqlite::Connection::open(&path)?;
    let tx = conn.transaction()?;
    for i in 0..20_000 {
        tx.execute(
            "INSERT INTO sessions (token, data, expiry) VALUES (?1, x'00', 5373484.0)",
            [format!("pad{i}")],
        )?;
    }
    tx.commit()?;
    drop(conn);
    // One reader connection is open; the others open after the file was
    // replaced, before any write could notice.
    replace_with_other_copy(&path)?;
    let threads = 8;
    let barrier = std::sync::Barrier::new(threads);
    let (mut from_opened, mut refused) = (0, 0);
    std::thread::scope(|s| -> TestResult {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    (0..5).map(|_| store.all()).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for result in h.join().expect("reader thread") {
                // Either the file the store opened answers (consistent with
                // its writes), or the read is refused; never the new file.
                match result {
                    Ok(all) if all.contains_key("old-only") && !all.contains_key("new-only") => {
                        from_opened += 1
                    }
                    Err(Error::FileReplaced { .. }) => refused += 1,
                    Ok(_) => return Err("all() read the new file".into()),
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(())
    })?;
    println!("reads from the opened file: {from_opened}, refused: {refused}");
    assert_eq!(from_opened + refused, threads * 5);
    Ok(())
}

// ---- damaged -wal and -shm files --------------------------------------------

/// Copies of a database caught mid-run: sessions `0..50` checkpointed into
/// the main file, `50..100` only in the WAL, as a crash would leave them.
fn crash_snapshot(dir: &Path) -> TestResult<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let path = dir.join("live.db");
    let store = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    for i in 0..50 {
        store.commit(&token(i), &payload(i), far_future())?;
    }
    drop(store);
    // This connection stays open while the files are copied, so the WAL is
    // neither checkpointed nor removed.
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
    for i in 50..100 {
        conn.execute(
            "INSERT INTO sessions (token, data, expiry) VALUES (?1, ?2, 5373484.0)",
            rusqlite::params![token(i), payload(i)],
        )?;
    }
    let copy = |suffix: &str| std::fs::read(support::sidecar(&path, suffix));
    Ok((copy("")?, copy("-wal")?, copy("-shm")?))
}

/// How many transactions of `wal` end (their commit frame complete) within
/// its first `end` bytes. A WAL is a 32-byte header, then frames of a
/// 24-byte header and one page; a frame header whose bytes 4..8 are not
/// zero ends a transaction.
fn commits_within(wal: &[u8], end: usize) -> TestResult<usize> {
    let word = |at: usize| -> TestResult<usize> {
        let bytes: [u8; 4] = wal
            .get(at..at + 4)
            .ok_or("the WAL is shorter than its header")?
            .try_into()?;
        Ok(u32::from_be_bytes(bytes) as usize)
    };
    let frame = 24 + word(8)?;
    let mut commits = 0;
    let mut at = 32;
    while at + frame <= wal.len().min(end) {
        if word(at + 4)? != 0 {
            commits += 1;
        }
        at += frame;
    }
    Ok(commits)
}

#[test]
fn damaged_wal_or_shm_files_lose_at_most_the_damaged_frames() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (db, wal, shm) = crash_snapshot(dir.path())?;
    // One transaction per session 50..100 in the WAL, in that order.
    assert_eq!(
        commits_within(&wal, wal.len())?,
        50,
        "transactions in the WAL"
    );
    let mut rng = Rng::new(17);
    let garbage =
        |n: usize, rng: &mut Rng| (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>();
    let mid = wal.len() / 2;
    let mut wal_frames = wal.clone();
    wal_frames[mid..mid + 4096].copy_from_slice(&garbage(4096, &mut rng));
    let mut wal_header = wal.clone();
    wal_header[..32].copy_from_slice(&garbage(32, &mut rng));
    // The transactions wholly before the damage survive, exactly those: the
    // WAL's checksums chain, so nothing after a damaged frame is replayed.
    let before_frames = commits_within(&wal, mid)?;
    let before_tear = commits_within(&wal, mid + 1000)?;
    assert!(
        (1..50).contains(&before_frames),
        "the damage is mid-WAL ({before_frames} transactions before it)"
    );
    // (what, wal, shm, WAL sessions that must survive)
    type Case<'a> = (&'a str, Option<Vec<u8>>, Option<Vec<u8>>, usize);
    let cases: Vec<Case<'_>> = vec![
        ("intact", Some(wal.clone()), Some(shm.clone()), 50),
        (
            "shm garbage",
            Some(wal.clone()),
            Some(garbage(shm.len(), &mut rng)),
            50,
        ),
        ("shm empty", Some(wal.clone()), Some(Vec::new()), 50),
        ("shm missing", Some(wal.clone()), None, 50),
        (
            "wal frames garbage",
            Some(wal_frames),
            Some(shm.clone()),
            before_frames,
        ),
        (
            "wal torn mid-frame",
            Some(wal[..mid + 1000].to_vec()),
            Some(shm.clone()),
            before_tear,
        ),
        // A WAL whose header is damaged is not replayed at all.
        ("wal header garbage", Some(wal_header), Some(shm.clone()), 0),
        ("wal missing", None, Some(shm.clone()), 0),
    ];
    let mut survived = Vec::new();
    for (what, wal, shm, kept) in cases {
        let path = dir.path().join(format!("{}.db", what.replace(' ', "-")));
        std::fs::write(&path, &db)?;
        for (suffix, bytes) in [("-wal", wal), ("-shm", shm)] {
            if let Some(bytes) = bytes {
                std::fs::write(support::sidecar(&path, suffix), bytes)?;
            }
        }
        fault();
        let store = support::open_within(
            SqliteStore::builder(&path).cleanup_interval(Duration::ZERO),
            what,
        )??;
        for i in 0..50 {
            assert_eq!(
                store.find(&token(i))?,
                Some(payload(i)),
                "{what}: {}",
                token(i)
            );
        }
        for i in 50..100u64 {
            let want = (i < 50 + kept as u64).then(|| payload(i));
            assert_eq!(
                store.find(&token(i))?,
                want,
                "{what}: {} (the first {kept} WAL transactions survive)",
                token(i)
            );
        }
        store.commit("after", b"after", far_future())?;
        drop(store);
        assert_intact(&path)?;
        survived.push(format!("{what}: {kept}/50"));
    }
    report(
        "damaged wal/shm",
        &format!(", WAL sessions kept: {}", survived.join(", ")),
    );
    Ok(())
}

// ---- the working directory changes under an open store ---------------------

const CHDIR_TEST: &str = "a_relative_path_keeps_naming_the_opened_file_after_a_chdir";

/// A store opened by a relative path, after which the process changes its
/// working directory (a daemon going to `/`, a library calling
/// `set_current_dir`): SQLite keeps its files open, and everything the store
/// opens later (reader connections, the checkpoint connection, checks of the
/// path) must mean the same file, not a namesake in the new directory. Run
/// in a child process, since the working directory is process-wide.
#[test]
fn a_relative_path_keeps_naming_the_opened_file_after_a_chdir() -> TestResult {
    if support::child_role().is_some() {
        return chdir_main();
    }
    let home = tempfile::tempdir()?;
    let elsewhere = tempfile::tempdir()?;
    // A namesake in the directory the child moves to, which must stay unseen.
    let decoy =
        SqliteStore::with_cleanup_interval(elsewhere.path().join("sessions.db"), Duration::ZERO)?;
    decoy.commit("decoy", b"decoy", far_future())?;
    drop(decoy);
    let ended = support::run_to_end(
        support::child_command(CHDIR_TEST, "chdir")?
            .current_dir(home.path())
            .env("CHDIR_TO", elsewhere.path()),
    )?;
    assert!(ended.done(), "child: {ended:?}");
    let problems: Vec<&String> = ended
        .lines
        .iter()
        .filter(|l| l.starts_with("problem"))
        .collect();
    assert!(problems.is_empty(), "after a chdir: {problems:#?}");
    let store =
        SqliteStore::with_cleanup_interval(home.path().join("sessions.db"), Duration::ZERO)?;
    for t in ["before", "after"] {
        assert_eq!(
            store.find(t)?,
            Some(t.as_bytes().to_vec()),
            "{t} is in the opened file"
        );
    }
    assert_eq!(store.find("decoy")?, None);
    Ok(())
}

fn chdir_main() -> TestResult {
    let store = SqliteStore::builder("sessions.db")
        .cleanup_interval(Duration::ZERO)
        .readers(8)
        .build()?;
    store.commit("before", b"before", far_future())?;
    std::env::set_current_dir(support::child_env("CHDIR_TO"))?;
    // A write after the move lands in the opened file.
    if let Err(err) = store.commit("after", b"after", far_future()) {
        emit(&format!("problem: commit after the chdir failed: {err:?}"));
    }
    // Concurrent finds make the pool open new reader connections.
    let seen: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = &store;
                s.spawn(move || {
                    let started = Instant::now();
                    let mut seen = Vec::new();
                    while started.elapsed() < Duration::from_millis(200) {
                        let found = (store.find("before"), store.find("decoy"));
                        seen.push(format!("{found:?}"));
                    }
                    seen
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("finder"))
            .collect()
    });
    let right = format!(
        "{:?}",
        (
            Ok::<_, ()>(Some(b"before".to_vec())),
            Ok::<Option<Vec<u8>>, ()>(None)
        )
    );
    let mut wrong: Vec<&String> = seen.iter().filter(|s| **s != right).collect();
    wrong.dedup();
    for w in wrong {
        emit(&format!(
            "problem: find (before, decoy) after the chdir gave {w}"
        ));
    }
    emit("done");
    Ok(())
}
