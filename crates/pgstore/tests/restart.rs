//! The server restarts (crash-style, `pg_ctl restart -m immediate`) under
//! load: operations fail as retryable while it is down, work again after,
//! and every acknowledged commit is there. Alone in its test binary, since
//! it restarts the shared test server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pgstore::PgStore;
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

/// The command that restarts the private server (set by
/// scripts/pg-test-server.sh), or a skip / CI failure.
fn pg_ctl() -> Option<Vec<String>> {
    match std::env::var("PGSTORE_TEST_PGCTL") {
        Ok(cmd) if !cmd.is_empty() => Some(cmd.split_whitespace().map(String::from).collect()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("PGSTORE_TEST_PGCTL is not set under CI; run through scripts/test.sh")
        }
        _ => {
            support::skip("restart: PGSTORE_TEST_PGCTL is not set (it needs scripts/pg-test-server.sh's own server)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_retryable_and_loses_nothing_acknowledged() -> TestResult {
    let url = pg_url!();
    let Some(ctl) = pg_ctl() else { return Ok(()) };
    let table = support::unique_table("restart");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .pool_size(4)
        .connect_timeout(Duration::from_secs(2))
        .wait_timeout(Duration::from_secs(2))
        .build()
        .await?;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (store, acked, failed, stop) = (
            store.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&failures),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            // Bounded: stops when told, or after many rounds.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 1_000_000 {
                let token = format!("w{w}-{i}");
                i += 1;
                match store
                    .commit(&token, token.as_bytes(), SystemTime::now() + HOUR)
                    .await
                {
                    Ok(()) => acked.lock().unwrap().push(token),
                    Err(err) => {
                        assert!(err.is_retryable(), "not retryable: {err:?}");
                        failed.lock().unwrap().push(pgstore::error_chain(&err));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = acknowledged.lock().unwrap().len();
    let status = tokio::process::Command::new(&ctl[0])
        .args(&ctl[1..])
        .args(["restart", "-m", "immediate"])
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    assert!(status.success(), "pg_ctl restart: {status}");
    let after_restart = acknowledged.lock().unwrap().len();
    // Work goes on after the restart.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < after_restart + 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let acked = acknowledged.lock().unwrap().clone();
    let failed = failures.lock().unwrap().len();
    eprintln!(
        "{} commits acknowledged ({before} before the restart), {failed} failed as retryable",
        acked.len()
    );
    assert!(before > 0);
    // Nothing acknowledged is lost.
    let client = support::raw_client(&url).await?;
    let stored: std::collections::HashSet<String> = client
        .query(&format!("SELECT token FROM \"{table}\""), &[])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    for t in acked.iter().step_by(97) {
        assert_eq!(store.find(t).await?, Some(t.as_bytes().to_vec()));
    }
    support::drop_table(&client, &table).await
}
