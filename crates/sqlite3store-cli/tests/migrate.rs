//! `sqlite3store migrate`: active sessions copied between SQLite and
//! PostgreSQL with tokens, data and expiries exact to the millisecond.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgstore::PgStore;
use predicates::prelude::*;
use sqlite3store::SqliteStore;
use support::{bin, runtime, unique_table, Result};

const HOUR: Duration = Duration::from_secs(3600);

/// Session `i`: a token, data of varying length and bytes (some not UTF-8),
/// and an expiry with a distinct millisecond part, all in the future.
fn session(i: u64, base: SystemTime) -> (String, Vec<u8>, SystemTime) {
    let token = format!("tok{i:08}-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let len = (i % 200) as usize;
    let data: Vec<u8> = (0..len).map(|j| (i as usize + j * 7) as u8).collect();
    let expiry = base + HOUR + Duration::from_millis(i * 37 % 86_400_000);
    (token, data, expiry)
}

/// Whole milliseconds since 1970 (what both stores keep exactly).
fn millis(t: SystemTime) -> Result<u128> {
    Ok(t.duration_since(UNIX_EPOCH)?.as_millis())
}

fn sqlite_store(path: &std::path::Path) -> Result<SqliteStore> {
    Ok(SqliteStore::builder(path)
        .cleanup_interval(Duration::ZERO)
        .build()?)
}

/// Fills a SQLite store with `n` active sessions from 4 threads (the store
/// groups their commits), plus `expired` expired ones.
fn fill_sqlite(store: &SqliteStore, n: u64, expired: u64, base: SystemTime) -> Result {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                scope.spawn(move || -> sqlite3store::Result<()> {
                    for i in (w..n).step_by(4) {
                        let (token, data, expiry) = session(i, base);
                        store.commit(&token, &data, expiry)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a filling thread panicked")??;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    for i in 0..expired {
        store.commit(&format!("expired{i}"), b"gone", base - HOUR)?;
    }
    Ok(())
}

#[test]
fn sqlite_to_postgres_100k_sessions_every_token_found_exactly() -> Result {
    let url = pg_url!("sqlite_to_postgres_100k_sessions_every_token_found_exactly");
    const N: u64 = 100_000;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sessions.db");
    let base = SystemTime::now();
    let source = sqlite_store(&db)?;
    fill_sqlite(&source, N, 10, base)?;
    drop(source);
    let table = unique_table("m100k");

    let started = std::time::Instant::now();
    bin()?
        .arg("migrate")
        .arg("--from")
        .arg(&db)
        .args(["--to", &url, "--to-table", &table])
        .timeout(Duration::from_secs(600))
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "copied {N} active sessions from SQLite to PostgreSQL"
        )));
    eprintln!("migrated {N} sessions in {:.1?}", started.elapsed());

    let rt = runtime()?;
    rt.block_on(async {
        let target = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .create_if_missing(false)
            .build()
            .await?;
        let stats = target.stats().await?;
        assert_eq!(
            (stats.active, stats.expired),
            (N, 0),
            "expired ones are not copied"
        );
        // Every token, found on the target: 8 tasks, each a slice.
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let target = target.clone();
            tasks.spawn(async move {
                for i in (w..N).step_by(8) {
                    let (token, data, expiry) = session(i, base);
                    let Some(found) = target.find_with_expiry(&token).await? else {
                        return Err(format!("session {i} is missing on the target").into());
                    };
                    let found_expiry = found.expiry;
                    if found.data != data {
                        return Err(format!("session {i}: data differs").into());
                    }
                    if millis(found_expiry)? != millis(expiry)? {
                        return Err(format!(
                            "session {i}: expiry {found_expiry:?} is not {expiry:?} to the ms"
                        )
                        .into());
                    }
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    rt.block_on(support::drop_table(&url, &table))
}

#[test]
fn postgres_to_sqlite_keeps_the_millisecond_and_running_again_changes_nothing() -> Result {
    let url = pg_url!("postgres_to_sqlite_keeps_the_millisecond_and_running_again_changes_nothing");
    const N: u64 = 2_000;
    let table = unique_table("back");
    let base = SystemTime::now();
    let rt = runtime()?;
    rt.block_on(async {
        let source = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?;
        for i in 0..N {
            let (token, data, expiry) = session(i, base);
            // A sub-millisecond part, which PostgreSQL keeps and SQLite drops.
            source
                .commit(&token, &data, expiry + Duration::from_micros(i % 1000))
                .await?;
        }
        source.commit("expired", b"gone", base - HOUR).await?;
        Ok::<_, pgstore::Error>(())
    })?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("target.db");
    // The target has a session of its own, and a stale copy of session 0.
    let target = sqlite_store(&db)?;
    target.commit("own", b"mine", base + HOUR)?;
    let (token0, _, _) = session(0, base);
    target.commit(&token0, b"stale", base + 5 * HOUR)?;
    drop(target);

    let migrate = || -> Result<assert_cmd::Command> {
        let mut cmd = bin()?;
        cmd.args([
            "migrate",
            "--batch-size",
            "300",
            "--from",
            &url,
            "--from-table",
            &table,
        ])
        .arg("--to")
        .arg(&db)
        .timeout(Duration::from_secs(300));
        Ok(cmd)
    };
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        migrate()?
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "copied {N} active sessions from PostgreSQL to SQLite"
            )));
        let target = sqlite_store(&db)?;
        let mut rows = HashMap::new();
        let mut after = String::new();
        loop {
            let page = target.export_page(&after, 500)?;
            let Some(last) = page.last() else { break };
            after = last.token.clone();
            rows.extend(page.into_iter().map(|e| (e.token, e.session)));
        }
        snapshots.push(rows);
    }
    assert_eq!(snapshots[0], snapshots[1], "a second run changes nothing");
    let rows = &snapshots[1];
    assert_eq!(
        rows.len() as u64,
        N + 1,
        "the copies and the target's own session"
    );
    assert_eq!(
        rows.get("own").map(|s| s.data.as_slice()),
        Some(&b"mine"[..])
    );
    assert!(!rows.contains_key("expired"));
    for i in 0..N {
        let (token, data, expiry) = session(i, base);
        let got = rows
            .get(&token)
            .ok_or_else(|| format!("session {i} missing"))?;
        assert_eq!(got.data, data, "session {i}: data (the source wins)");
        // PostgreSQL held the microseconds; SQLite keeps their millisecond.
        let held = expiry + Duration::from_micros(i % 1000);
        assert_eq!(millis(got.expiry)?, millis(held)?, "session {i}: expiry");
    }
    rt.block_on(support::drop_table(&url, &table))
}

#[test]
fn sqlite_to_sqlite_copies_and_the_same_store_is_refused() -> Result {
    let dir = tempfile::tempdir()?;
    let from = dir.path().join("from.db");
    let to = dir.path().join("to.db");
    let base = SystemTime::now();
    let source = sqlite_store(&from)?;
    fill_sqlite(&source, 1_000, 3, base)?;
    drop(source);
    bin()?
        .arg("migrate")
        .arg("--from")
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 1000 active sessions"));
    let target = sqlite_store(&to)?;
    for i in 0..1_000 {
        let (token, data, expiry) = session(i, base);
        let found = target
            .find_with_expiry(&token)?
            .ok_or_else(|| format!("session {i} missing"))?;
        assert_eq!(found.data, data);
        assert_eq!(millis(found.expiry)?, millis(expiry)?);
    }
    assert_eq!(target.stats()?.expired, 0);
    bin()?
        .arg("migrate")
        .arg("--from")
        .arg(&from)
        .arg("--to")
        .arg(&from)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("same store"));
    Ok(())
}

#[test]
fn a_missing_source_exits_3_and_creates_no_target() -> Result {
    let dir = tempfile::tempdir()?;
    let to = dir.path().join("to.db");
    bin()?
        .arg("migrate")
        .arg("--from")
        .arg(dir.path().join("nope.db"))
        .arg("--to")
        .arg(&to)
        .assert()
        .code(3);
    assert!(!to.exists());
    Ok(())
}

#[test]
fn hashed_tokens_are_copied_as_stored_and_found_with_the_same_key() -> Result {
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    let dir = tempfile::tempdir()?;
    let from = dir.path().join("from.db");
    let to = dir.path().join("to.db");
    let open = |path: &std::path::Path| -> Result<SqliteStore> {
        Ok(SqliteStore::builder(path)
            .cleanup_interval(Duration::ZERO)
            .hash_tokens(KEY)
            .build()?)
    };
    let expiry = SystemTime::now() + HOUR;
    open(&from)?.commit("raw-token", b"data", expiry)?;
    bin()?
        .arg("migrate")
        .arg("--from")
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .assert()
        .success()
        .stdout(predicate::str::contains("copied 1 active sessions"));
    let target = open(&to)?;
    let found = target
        .find_with_expiry("raw-token")?
        .ok_or("the hashed session is not found with the same key")?;
    assert_eq!(found.data, b"data");
    assert_eq!(millis(found.expiry)?, millis(expiry)?);
    let keys: Vec<_> = target.list(10)?.into_iter().map(|l| l.token).collect();
    assert_eq!(keys.len(), 1);
    assert_ne!(
        keys[0], "raw-token",
        "the target holds the hash, not the token"
    );
    Ok(())
}

/// A session's data, expiry in milliseconds, and owner.
type Row = (Vec<u8>, u128, Option<String>);

/// Every active session of a SQLite store with its owner, by key.
fn owned_rows(store: &SqliteStore) -> Result<HashMap<String, Row>> {
    let mut rows = HashMap::new();
    let mut after = String::new();
    loop {
        let page = store.export_page_owned(&after, 7)?;
        let Some((last, _)) = page.last() else {
            return Ok(rows);
        };
        after = last.token.clone();
        for (entry, owner) in page {
            let expiry = millis(entry.session.expiry)?;
            rows.insert(entry.token, (entry.session.data, expiry, owner));
        }
    }
}

#[test]
fn owners_survive_sqlite_to_postgres_to_sqlite_and_revoke_owner_works_on_each() -> Result {
    let url = pg_url!("owners_survive_sqlite_to_postgres_to_sqlite_and_revoke_owner_works_on_each");
    let table = unique_table("owners");
    let base = SystemTime::now();
    let dir = tempfile::tempdir()?;
    let first = dir.path().join("first.db");
    let back = dir.path().join("back.db");
    let owner_of = |i: u64| match i % 3 {
        0 => Some("alice"),
        1 => Some("bob"),
        _ => None,
    };
    {
        let source = sqlite_store(&first)?;
        for i in 0..60 {
            let (token, data, expiry) = session(i, base);
            source.commit_owned(&token, &data, expiry, owner_of(i))?;
        }
        source.commit_owned("expired", b"gone", base - HOUR, Some("alice"))?;
    }
    let rt = runtime()?;
    // The target holds session 2 (unowned at the source) under another
    // owner: the source wins, so the copy clears it.
    let (token2, data2, expiry2) = session(2, base);
    let pg = rt.block_on(async {
        let pg = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?;
        pg.commit_owned(&token2, &data2, expiry2, Some("mallory"))
            .await?;
        Ok::<_, pgstore::Error>(pg)
    })?;
    // The SQLite files use the default table, PostgreSQL the test's own.
    let migrate = |from: &dyn AsRef<std::ffi::OsStr>,
                   to: &dyn AsRef<std::ffi::OsStr>,
                   pg_side: &str|
     -> Result<assert_cmd::assert::Assert> {
        Ok(bin()?
            .args(["migrate", pg_side, &table, "--batch-size", "16", "--from"])
            .arg(from.as_ref())
            .arg("--to")
            .arg(to.as_ref())
            .timeout(Duration::from_secs(300))
            .assert()
            .success())
    };
    // Twice: running again gives the same result.
    for _ in 0..2 {
        migrate(&first, &url, "--to-table")?
            .stdout(predicate::str::contains("copied 60 active sessions"));
    }
    rt.block_on(async {
        let alice = pg.list_owner("alice", 100).await?;
        assert_eq!(alice.len(), 20, "alice's live sessions on PostgreSQL");
        assert_eq!(pg.list_owner("bob", 100).await?.len(), 20);
        assert!(pg.list_owner("mallory", 100).await?.is_empty());
        let stats = pg.stats().await?;
        assert_eq!((stats.owners, stats.owned), (2, 40));
        Ok::<_, pgstore::Error>(())
    })?;
    migrate(&url, &back, "--from-table")?
        .stdout(predicate::str::contains("copied 60 active sessions"));
    let original = owned_rows(&sqlite_store(&first)?)?;
    let returned = owned_rows(&sqlite_store(&back)?)?;
    assert_eq!(original.len(), 60);
    assert_eq!(returned, original, "keys, data, expiries and owners");
    // "Log out everywhere" works on both targets.
    let store = sqlite_store(&back)?;
    assert_eq!(store.revoke_owner("alice")?, 20);
    assert!(store.list_owner("alice", 100)?.is_empty());
    assert_eq!(store.list_owner("bob", 100)?.len(), 20);
    rt.block_on(async {
        assert_eq!(pg.revoke_owner("alice").await?, 20);
        assert!(pg.list_owner("alice", 100).await?.is_empty());
        assert_eq!(pg.list_owner("bob", 100).await?.len(), 20);
        Ok::<_, pgstore::Error>(())
    })?;
    drop(pg);
    rt.block_on(support::drop_table(&url, &table))
}
