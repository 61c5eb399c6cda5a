//! The `sqlite3store` binary with `--db` naming a PostgreSQL server: the
//! same commands, run for real on a table written by pgstore.

mod support;

use std::time::{Duration, SystemTime};

use pgstore::PgStore;
use predicates::prelude::*;
use serde_json::Value;
use support::{bin, runtime, unique_table, Result};

const HOUR: Duration = Duration::from_secs(3600);
const ACTIVE_SOON: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ACTIVE_LATE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const EXPIRED: &str = "ccccccccccccccccccccccccccccccccccccccccccc";

fn json(output: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(output)?)
}

#[test]
fn every_command_works_on_postgres() -> Result {
    let url = pg_url!("every_command_works_on_postgres");
    let rt = runtime()?;
    let table = unique_table("all");
    let store = rt.block_on(async {
        let store = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?;
        let now = SystemTime::now();
        store.commit(ACTIVE_SOON, b"user=alice", now + HOUR).await?;
        store
            .commit(ACTIVE_LATE, &[0x81, 0x00], now + 2 * HOUR)
            .await?;
        store.commit(EXPIRED, b"old", now - HOUR).await?;
        Ok::<_, pgstore::Error>(store)
    })?;
    let cli = || -> Result<assert_cmd::Command> {
        let mut cmd = bin()?;
        cmd.args(["--db", &url, "--table", &table]);
        Ok(cmd)
    };

    let out = cli()?.args(["stats", "--json"]).assert().success();
    let stats = json(&out.get_output().stdout)?;
    assert_eq!(stats["active"], 2);
    assert_eq!(stats["expired"], 1);
    assert!(stats["table_bytes"].as_u64().is_some_and(|n| n > 0));
    cli()?
        .arg("stats")
        .assert()
        .success()
        .stdout(predicate::str::contains("active sessions:    2"))
        .stdout(predicate::str::contains("table size:"));

    let out = cli()?.args(["list", "--full", "--json"]).assert().success();
    let listed = json(&out.get_output().stdout)?;
    let tokens: Vec<_> = listed
        .as_array()
        .ok_or("list --json is not an array")?
        .iter()
        .map(|e| e["token"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(tokens, [ACTIVE_SOON, ACTIVE_LATE]);
    cli()?
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("aaaaaaaa…"))
        .stdout(predicate::str::contains(ACTIVE_SOON).not());

    cli()?
        .args(["show", ACTIVE_SOON])
        .assert()
        .success()
        .stdout(predicate::str::contains("user=alice"));
    cli()?
        .args(["show", ACTIVE_LATE, "--raw"])
        .assert()
        .success()
        .stdout(predicate::eq(&[0x81_u8, 0x00][..]));
    cli()?.args(["show", EXPIRED]).assert().code(1);

    cli()?
        .arg("purge")
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 1 expired sessions"));
    cli()?
        .args(["revoke", ACTIVE_SOON, "dddddddddddd"])
        .assert()
        .success()
        .stdout(predicate::str::contains("revoked 1 of 2 sessions"))
        .stdout(predicate::str::contains("not found: dddddddd…"));
    cli()?
        .arg("vacuum")
        .assert()
        .success()
        .stdout(predicate::str::contains("vacuumed"));

    rt.block_on(async {
        assert_eq!(store.find(ACTIVE_SOON).await?, None);
        assert_eq!(store.find(ACTIVE_LATE).await?, Some(vec![0x81, 0x00]));
        let stats = store.stats().await?;
        assert_eq!((stats.active, stats.expired), (1, 0));
        Ok::<_, pgstore::Error>(())
    })?;
    rt.block_on(support::drop_table(&url, &table))
}

#[test]
fn read_commands_run_read_only_and_create_nothing() -> Result {
    let url = pg_url!("read_commands_run_read_only_and_create_nothing");
    let rt = runtime()?;
    let table = unique_table("missing");
    for args in [
        &["stats"][..],
        &["list"],
        &["show", ACTIVE_SOON],
        &["purge"],
    ] {
        bin()?
            .args(["--db", &url, "--table", &table])
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("does not have the session schema"));
    }
    assert!(!rt.block_on(support::table_exists(&url, &table))?);
    Ok(())
}

#[test]
fn a_conninfo_string_works_too() -> Result {
    let url = pg_url!("a_conninfo_string_works_too");
    let rt = runtime()?;
    let table = unique_table("conninfo");
    // PGSTORE_TEST_URL may be either form; turn a URL into key=value.
    let conninfo = if url.starts_with("postgres") {
        let config: pgstore::tokio_postgres::Config = url.parse()?;
        let host = match config.get_hosts().first() {
            Some(pgstore::tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(pgstore::tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => return Err("no host in PGSTORE_TEST_URL".into()),
        };
        let mut parts = vec![format!("host={host}")];
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={user}"));
        }
        if let Some(db) = config.get_dbname() {
            parts.push(format!("dbname={db}"));
        }
        if let Some(pw) = config.get_password() {
            parts.push(format!("password={}", String::from_utf8_lossy(pw)));
        }
        parts.join(" ")
    } else {
        url.clone()
    };
    rt.block_on(async {
        let store = PgStore::builder(&url).table(&table).build().await?;
        store
            .commit(ACTIVE_SOON, b"x", SystemTime::now() + HOUR)
            .await?;
        Ok::<_, pgstore::Error>(())
    })?;
    bin()?
        .env("SQLITE3STORE_DB", &conninfo)
        .args(["--table", &table, "stats", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"active\": 1"));
    rt.block_on(support::drop_table(&url, &table))
}

#[test]
fn an_unreachable_server_exits_3_in_time() -> Result {
    // Port 1 on localhost: nothing listens, the connection is refused.
    let started = std::time::Instant::now();
    bin()?
        .args([
            "--db",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            "stats",
        ])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cannot connect"));
    assert!(started.elapsed() < Duration::from_secs(60));
    Ok(())
}

#[test]
fn a_malformed_url_exits_2() -> Result {
    bin()?
        .args(["--db", "postgres://host:notaport/db", "stats"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot parse the connection string",
        ));
    Ok(())
}

#[test]
fn a_verify_full_url_works_and_a_wrong_ca_fails_clearly() -> Result {
    const TEST: &str = "a_verify_full_url_works_and_a_wrong_ca_fails_clearly";
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(tls_url), Some(ca), Some(other_ca)) = (
        var("PGSTORE_TEST_TLS_URL"),
        var("PGSTORE_TEST_TLS_CA"),
        var("PGSTORE_TEST_TLS_OTHER_CA"),
    ) else {
        if std::env::var_os("CI").is_some() {
            panic!("{TEST}: PGSTORE_TEST_TLS_URL, _CA or _OTHER_CA is not set under CI");
        }
        eprintln!("SKIPPED {TEST}: PGSTORE_TEST_TLS_URL is not set (scripts/pg-test-server.sh)");
        return Ok(());
    };
    let url = pg_url!(TEST);
    let rt = runtime()?;
    let table = unique_table("tls");
    let db = format!("{tls_url} sslmode=verify-full sslrootcert='{ca}'");
    rt.block_on(async {
        let store = PgStore::builder(&db).table(&table).build().await?;
        store
            .commit(ACTIVE_SOON, b"x", SystemTime::now() + HOUR)
            .await?;
        Ok::<_, pgstore::Error>(())
    })?;
    bin()?
        .args(["--db", &db, "--table", &table, "stats", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"active\": 1"));
    let wrong = format!("{tls_url} sslmode=verify-full sslrootcert='{other_ca}'");
    bin()?
        .args(["--db", &wrong, "--table", &table, "stats"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("not signed by a trusted root"));
    rt.block_on(support::drop_table(&url, &table))
}
