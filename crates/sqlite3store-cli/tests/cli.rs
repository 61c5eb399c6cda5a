//! The `sqlite3store` binary, run for real on stores written by the library.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use sqlite3store::SqliteStore;

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const HOUR: Duration = Duration::from_secs(3600);
const ACTIVE_SOON: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ACTIVE_LATE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const EXPIRED: &str = "ccccccccccccccccccccccccccccccccccccccccccc";

/// A temporary directory holding `sessions.db`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// An empty directory: no database yet.
    fn empty() -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    /// A store with two active sessions (text and binary data) and one
    /// expired one.
    fn populated() -> Result<Self> {
        let fixture = Self::empty()?;
        let store = fixture.store()?;
        let now = SystemTime::now();
        store.commit(ACTIVE_SOON, b"user=alice\ncart=3", now + HOUR)?;
        store.commit(ACTIVE_LATE, &[0x81, 0xa4, 0x00, 0x1b], now + 2 * HOUR)?;
        store.commit(EXPIRED, b"old", now - HOUR)?;
        Ok(fixture)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("sessions.db")
    }

    /// The store, opened through the library without a cleanup thread.
    fn store(&self) -> Result<SqliteStore> {
        Ok(SqliteStore::builder(self.db())
            .cleanup_interval(Duration::ZERO)
            .build()?)
    }

    /// `sqlite3store --db <db>`, with the environment not pointing elsewhere.
    fn cli(&self) -> Result<Command> {
        let mut cmd = bin()?;
        cmd.arg("--db").arg(self.db());
        Ok(cmd)
    }

    /// The names of the files in the directory, sorted.
    fn files(&self) -> Result<Vec<String>> {
        let mut names = std::fs::read_dir(self.dir.path())?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, std::io::Error>>()?;
        names.sort();
        Ok(names)
    }
}

fn bin() -> Result<Command> {
    let mut cmd = Command::cargo_bin("sqlite3store")?;
    cmd.env_remove("SQLITE3STORE_DB")
        .env_remove("SQLITE3STORE_LOG");
    Ok(cmd)
}

fn json(output: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(output)?)
}

fn short(token: &str) -> String {
    format!("{}…", &token[..8])
}

#[test]
fn stats_counts_sessions_and_describes_the_file() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .arg("stats")
        .assert()
        .success()
        .stdout(predicate::str::contains("active sessions:    2"))
        .stdout(predicate::str::contains("expired sessions:   1"))
        .stdout(predicate::str::contains("page size:          4.00 KiB"));
    Ok(())
}

#[test]
fn stats_json_parses() -> Result {
    let fx = Fixture::populated()?;
    let out = fx.cli()?.args(["stats", "--json"]).assert().success();
    let stats = json(&out.get_output().stdout)?;
    assert_eq!(stats["active"], 2);
    assert_eq!(stats["expired"], 1);
    assert_eq!(stats["page_size"], 4096);
    assert!(stats["file_size"].as_u64().is_some_and(|n| n > 0));
    assert!(stats["page_count"].as_u64().is_some_and(|n| n > 0));
    for key in ["wal_size", "free_pages"] {
        assert!(stats[key].is_u64(), "{key}");
    }
    assert!(stats["incremental_vacuum"].is_boolean());
    Ok(())
}

#[test]
fn stats_tells_incremental_vacuum_of_a_read_only_store() -> Result {
    let fx = Fixture::populated()?;
    let out = fx.cli()?.args(["stats", "--json"]).assert().success();
    assert_eq!(json(&out.get_output().stdout)?["incremental_vacuum"], true);
    Ok(())
}

#[test]
fn read_commands_do_not_change_the_file() -> Result {
    let fx = Fixture::populated()?;
    let before = std::fs::read(fx.db())?;
    let files = fx.files()?;
    for args in [
        &["stats"][..],
        &["list", "--full"],
        &["show", ACTIVE_SOON],
        &["show", EXPIRED],
    ] {
        fx.cli()?
            .args(args)
            .assert()
            .code(predicate::in_iter([0, 1]));
    }
    assert_eq!(std::fs::read(fx.db())?, before);
    // Like any reader of a WAL database, SQLite may leave an empty WAL and
    // the shared-memory index beside it; nothing else appears.
    let sidecars = ["sessions.db-shm", "sessions.db-wal"];
    let new: Vec<_> = fx
        .files()?
        .into_iter()
        .filter(|f| !files.contains(f))
        .collect();
    assert!(
        new.iter().all(|f| sidecars.contains(&f.as_str())),
        "{new:?}"
    );
    let wal = fx.dir.path().join("sessions.db-wal");
    assert_eq!(std::fs::metadata(wal).map_or(0, |m| m.len()), 0);
    Ok(())
}

#[test]
fn list_shortens_tokens_unless_full() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains(short(ACTIVE_SOON)))
        .stdout(predicate::str::contains(ACTIVE_SOON).not())
        .stdout(predicate::str::contains(&EXPIRED[..8]).not());
    fx.cli()?
        .args(["list", "--full"])
        .assert()
        .success()
        .stdout(predicate::str::contains(ACTIVE_SOON))
        .stdout(predicate::str::contains(ACTIVE_LATE));
    Ok(())
}

#[test]
fn list_json_is_soonest_first_and_limited() -> Result {
    let fx = Fixture::populated()?;
    let out = fx
        .cli()?
        .args(["list", "--json", "--full"])
        .assert()
        .success();
    let list = json(&out.get_output().stdout)?;
    let tokens: Vec<_> = list
        .as_array()
        .ok_or("not an array")?
        .iter()
        .map(|s| s["token"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(tokens, [ACTIVE_SOON, ACTIVE_LATE]);
    let expiry = list[0]["expiry"].as_str().ok_or("no expiry")?;
    assert!(expiry.ends_with('Z') && expiry.contains('T'), "{expiry}");

    let out = fx
        .cli()?
        .args(["list", "--json", "--limit", "1"])
        .assert()
        .success();
    let list = json(&out.get_output().stdout)?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["token"], short(ACTIVE_SOON));
    Ok(())
}

#[test]
fn list_says_when_it_is_cut_short_or_empty() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .args(["list", "--limit", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("raise --limit"));
    let empty = Fixture::empty()?;
    drop(empty.store()?);
    empty
        .cli()?
        .arg("list")
        .assert()
        .success()
        .stdout("no active sessions\n");
    Ok(())
}

#[test]
fn show_prints_text_or_hex() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .args(["show", ACTIVE_SOON])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "data (text):\nuser=alice\ncart=3\n",
        ))
        .stdout(predicate::str::contains("length:  17 bytes"));
    fx.cli()?
        .args(["show", ACTIVE_LATE])
        .assert()
        .success()
        .stdout(predicate::str::contains("data (hex):\n81a4001b\n"));
    Ok(())
}

#[test]
fn show_raw_writes_the_bytes() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .args(["show", "--raw", ACTIVE_LATE])
        .assert()
        .success()
        .stdout(predicate::eq(&[0x81, 0xa4, 0x00, 0x1b][..]));
    Ok(())
}

#[test]
fn show_json_parses() -> Result {
    let fx = Fixture::populated()?;
    let out = fx
        .cli()?
        .args(["show", "--json", ACTIVE_SOON])
        .assert()
        .success();
    let shown = json(&out.get_output().stdout)?;
    assert_eq!(shown["data"], "user=alice\ncart=3");
    assert_eq!(shown["encoding"], "text");
    assert_eq!(shown["data_len"], 17);
    assert!(shown["expiry"].as_str().is_some_and(|e| e.ends_with('Z')));

    let out = fx
        .cli()?
        .args(["show", "--json", ACTIVE_LATE])
        .assert()
        .success();
    let shown = json(&out.get_output().stdout)?;
    assert_eq!(shown["encoding"], "hex");
    assert_eq!(shown["data"], "81a4001b");
    Ok(())
}

#[test]
fn show_of_a_missing_or_expired_session_exits_1() -> Result {
    let fx = Fixture::populated()?;
    for token in [EXPIRED, "nosuchtokenatall"] {
        fx.cli()?
            .args(["show", token])
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains(
                "error: no active session with token",
            ))
            .stderr(predicate::str::contains(short(token)));
    }
    Ok(())
}

#[test]
fn revoke_deletes_and_reports_what_was_not_there() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .args(["revoke", ACTIVE_SOON, EXPIRED, "nosuchtokenatall"])
        .assert()
        .success()
        .stdout(predicate::str::contains("revoked 2 of 3 sessions"))
        .stdout(predicate::str::contains("not found: nosuchto…"));
    let store = fx.store()?;
    assert_eq!(store.find(ACTIVE_SOON)?, None);
    assert!(store.find(ACTIVE_LATE)?.is_some());
    assert_eq!(store.stats()?.expired, 0);
    Ok(())
}

#[test]
fn revoke_needs_a_token() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?.arg("revoke").assert().code(2);
    Ok(())
}

#[test]
fn purge_removes_expired_sessions_only() -> Result {
    let fx = Fixture::populated()?;
    {
        let store = fx.store()?;
        let past = SystemTime::now() - HOUR;
        for i in 0..2000 {
            store.commit(&format!("expired-{i}"), &[7; 200], past)?;
        }
    }
    fx.cli()?
        .arg("purge")
        .assert()
        .success()
        .stdout(predicate::str::is_match(
            r"^removed 2001 expired sessions in \S+\n$",
        )?)
        // Not a terminal: no progress bar.
        .stderr("");
    let stats = fx.store()?.stats()?;
    assert_eq!((stats.active, stats.expired), (2, 0));
    Ok(())
}

#[test]
fn vacuum_shrinks_a_file_with_free_pages() -> Result {
    let fx = Fixture::populated()?;
    {
        let store = fx.store()?;
        let later = SystemTime::now() + HOUR;
        for i in 0..500 {
            store.commit(&format!("bulk-{i}"), &[7; 2000], later)?;
        }
        for i in 0..500 {
            store.delete(&format!("bulk-{i}"))?;
        }
        assert!(store.stats()?.free_pages > 100);
    }
    let before = std::fs::metadata(fx.db())?.len();
    fx.cli()?
        .arg("vacuum")
        .assert()
        .success()
        .stdout(predicate::str::is_match(
            r"^file size: \S+ \S+ -> \S+ \S+\n$",
        )?);
    let after = std::fs::metadata(fx.db())?.len();
    assert!(after < before / 4, "{after} vs {before}");
    assert_eq!(fx.store()?.stats()?.active, 2);
    Ok(())
}

#[test]
fn vacuum_keeps_a_compact_file_as_it_is() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?.arg("vacuum").assert().success();
    let compact = std::fs::metadata(fx.db())?.len();
    let out = fx.cli()?.arg("vacuum").assert().success();
    let out = String::from_utf8(out.get_output().stdout.clone())?;
    let sizes = out
        .trim_end()
        .strip_prefix("file size: ")
        .ok_or("no size")?;
    let (before, after) = sizes.split_once(" -> ").ok_or("no arrow")?;
    assert_eq!(before, after);
    assert_eq!(std::fs::metadata(fx.db())?.len(), compact);
    Ok(())
}

#[test]
fn a_missing_file_exits_3_and_is_not_created() -> Result {
    let fx = Fixture::empty()?;
    for args in [
        &["stats"][..],
        &["list"],
        &["show", "x"],
        &["revoke", "x"],
        &["purge"],
        &["vacuum"],
    ] {
        fx.cli()?
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("does not exist"));
        assert!(fx.files()?.is_empty(), "{args:?} created {:?}", fx.files()?);
    }
    Ok(())
}

#[test]
fn a_directory_exits_3() -> Result {
    let fx = Fixture::empty()?;
    std::fs::create_dir(fx.db())?;
    fx.cli()?
        .arg("stats")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is a directory"));
    Ok(())
}

#[test]
fn a_file_that_is_not_sqlite_exits_3_unchanged() -> Result {
    let fx = Fixture::empty()?;
    let junk = b"this is not a database, just some text that is long enough\n".repeat(100);
    std::fs::write(fx.db(), &junk)?;
    for args in [
        &["stats"][..],
        &["list"],
        &["revoke", "x"],
        &["purge"],
        &["vacuum"],
    ] {
        fx.cli()?
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(
                "error: file is not a SQLite database",
            ));
        assert_eq!(std::fs::read(fx.db())?, junk, "{args:?}");
        assert_eq!(fx.files()?, ["sessions.db"], "{args:?}");
    }
    Ok(())
}

#[test]
fn a_missing_table_exits_3_and_is_not_created() -> Result {
    let fx = Fixture::populated()?;
    for args in [&["stats"][..], &["revoke", ACTIVE_SOON], &["purge"]] {
        fx.cli()?
            .args(["--table", "other"])
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(
                "error: table \"other\" does not have the session schema: the table does not exist",
            ))
            .stderr(predicate::str::contains("hint:"));
    }
    let read_other = SqliteStore::builder(fx.db())
        .table("other")
        .read_only(true)
        .build();
    assert!(matches!(
        read_other,
        Err(sqlite3store::Error::SchemaMismatch { .. })
    ));
    assert!(fx.store()?.find(ACTIVE_SOON)?.is_some());
    Ok(())
}

#[test]
fn another_table_is_used_with_table() -> Result {
    let fx = Fixture::empty()?;
    let store = SqliteStore::builder(fx.db())
        .table("web_sessions")
        .cleanup_interval(Duration::ZERO)
        .build()?;
    store.commit("tokenintable", b"x", SystemTime::now() + HOUR)?;
    drop(store);
    fx.cli()?
        .args(["list", "--table", "web_sessions", "--full"])
        .assert()
        .success()
        .stdout(predicate::str::contains("tokenintable"));
    Ok(())
}

#[test]
fn usage_errors_exit_2() -> Result {
    let fx = Fixture::populated()?;
    fx.cli()?
        .args(["--table", "bad-name", "stats"])
        .assert()
        .code(2);
    bin()?
        .arg("stats")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--db"));
    fx.cli()?
        .args(["show", "x", "--raw", "--json"])
        .assert()
        .code(2);
    Ok(())
}

/// README: exit code 4 for "anything else"; here, output that cannot be
/// written (stdout on `/dev/full`, which fails every write with ENOSPC).
#[test]
fn a_failure_of_any_other_kind_exits_4() -> Result {
    let fx = Fixture::populated()?;
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlite3store"))
        .env_remove("SQLITE3STORE_DB")
        .env_remove("SQLITE3STORE_LOG")
        .arg("--db")
        .arg(fx.db())
        .args(["list", "--full"])
        .stdout(full)
        .output()?;
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot write the output"));
    Ok(())
}

#[test]
fn the_database_can_come_from_the_environment() -> Result {
    let fx = Fixture::populated()?;
    bin()?
        .env("SQLITE3STORE_DB", fx.db())
        .args(["stats", "--json"])
        .assert()
        .success();
    Ok(())
}

#[test]
fn help_shows_examples_and_exit_codes() -> Result {
    let assert = bin()?.arg("--help").assert().success();
    let help = String::from_utf8(assert.get_output().stdout.clone())?;
    for needle in ["Examples:", "Exit codes:", "SQLITE3STORE_DB"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    for command in ["stats", "list", "show", "revoke", "purge", "vacuum"] {
        assert!(
            help.contains(&format!("sqlite3store --db sessions.db {command}"))
                || help.contains(&format!("sqlite3store {command}")),
            "no example of {command}"
        );
    }
    Ok(())
}

#[test]
fn has_no_bench_command() -> Result {
    // The benchmark is `cargo run --release -p bench`; the operator tool
    // does not depend on it.
    bin()?.args(["bench", "--help"]).assert().code(2);
    Ok(())
}

/// The modes of the database and of its `-wal` and `-shm` where present.
#[cfg(unix)]
fn modes(db: &std::path::Path) -> Result<Vec<(String, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut os = db.as_os_str().to_owned();
        os.push(suffix);
        match std::fs::metadata(&os) {
            Ok(meta) => out.push((suffix.to_owned(), meta.permissions().mode() & 0o777)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(out)
}

/// Every command, run under the most permissive umask, leaves the files'
/// modes as they were: 0600 as the library creates them, or 0640 as an
/// owner set them; a `-wal` or `-shm` it creates takes the database's mode.
#[cfg(unix)]
#[test]
fn commands_never_loosen_file_modes() -> Result {
    use std::os::unix::fs::PermissionsExt;
    for start in [0o600, 0o640] {
        let fx = Fixture::populated()?;
        // Created by the library (under the test's umask): owner only.
        assert_eq!(modes(&fx.db())?, [(String::new(), 0o600)]);
        std::fs::set_permissions(fx.db(), std::fs::Permissions::from_mode(start))?;
        for args in [
            &["stats"][..],
            &["list"],
            &["show", ACTIVE_SOON],
            &["revoke", ACTIVE_LATE],
            &["purge"],
            &["vacuum"],
        ] {
            let status = std::process::Command::new("sh")
                .args(["-c", "umask 000 && exec \"$@\"", "sh"])
                .arg(assert_cmd::cargo::cargo_bin("sqlite3store"))
                .arg("--db")
                .arg(fx.db())
                .args(args)
                .env_remove("SQLITE3STORE_DB")
                .stdout(std::process::Stdio::null())
                .status()?;
            assert!(status.success(), "{args:?}: {status}");
            for (suffix, mode) in modes(&fx.db())? {
                assert_eq!(mode, start, "{args:?}: sessions.db{suffix} is {mode:o}");
            }
        }
        // While a store has it open, the -wal and -shm exist: same mode.
        let store = fx.store()?;
        store.commit("t", b"d", SystemTime::now() + HOUR)?;
        let open = modes(&fx.db())?;
        assert_eq!(open.len(), 3, "{open:?}");
        assert!(open.iter().all(|(_, mode)| *mode == start), "{open:?}");
    }
    Ok(())
}

/// Three sessions of "alice" (one expired), one of "bob", and the fixture's
/// ownerless ones.
fn with_owners() -> Result<Fixture> {
    let fx = Fixture::populated()?;
    let store = fx.store()?;
    let now = SystemTime::now();
    store.commit_owned(
        "alice-laptop-token-0000000000",
        b"a",
        now + HOUR,
        Some("alice"),
    )?;
    store.commit_owned(
        "alice-phone-token-00000000000",
        b"a",
        now + 2 * HOUR,
        Some("alice"),
    )?;
    store.commit_owned(
        "alice-old-token-0000000000000",
        b"a",
        now - HOUR,
        Some("alice"),
    )?;
    store.commit_owned(
        "bob-token-000000000000000000",
        b"b",
        now + HOUR,
        Some("bob"),
    )?;
    Ok(fx)
}

#[test]
fn stats_counts_owners() -> Result {
    let fx = with_owners()?;
    fx.cli()?
        .arg("stats")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "owners:             2 (owning 3 active sessions)",
        ));
    let out = fx.cli()?.args(["stats", "--json"]).assert().success();
    let stats = json(&out.get_output().stdout)?;
    assert_eq!(
        (stats["owners"].as_u64(), stats["owned"].as_u64()),
        (Some(2), Some(3))
    );
    Ok(())
}

#[test]
fn list_owner_shows_that_owners_live_sessions_only() -> Result {
    let fx = with_owners()?;
    let out = fx
        .cli()?
        .args(["list", "--owner", "alice", "--full", "--json"])
        .assert()
        .success();
    let listed = json(&out.get_output().stdout)?;
    let tokens: Vec<&str> = listed
        .as_array()
        .ok_or("not an array")?
        .iter()
        .filter_map(|e| e["token"].as_str())
        .collect();
    assert_eq!(
        tokens,
        [
            "alice-laptop-token-0000000000",
            "alice-phone-token-00000000000"
        ]
    );
    fx.cli()?
        .args(["list", "--owner", "carol"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "no active sessions of owner \"carol\"",
        ));
    Ok(())
}

#[test]
fn revoke_owner_logs_an_owner_out_everywhere() -> Result {
    let fx = with_owners()?;
    fx.cli()?
        .args(["revoke", "--owner", "alice"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "revoked 3 sessions of owner \"alice\"",
        ));
    let store = fx.store()?;
    assert_eq!(store.count_owner("alice")?, 0);
    assert_eq!(store.find("alice-laptop-token-0000000000")?, None);
    assert_eq!(store.count_owner("bob")?, 1);
    assert!(store.find(ACTIVE_SOON)?.is_some());
    // Tokens and --owner do not mix; one of them is needed.
    fx.cli()?
        .args(["revoke", "--owner", "bob", ACTIVE_SOON])
        .assert()
        .code(2);
    fx.cli()?.arg("revoke").assert().code(2);
    Ok(())
}
