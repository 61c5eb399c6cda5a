//! Four app servers on one database, as four processes started at once on
//! a table that does not exist yet: each creates the schema (one wins, under
//! the advisory lock), races the others to `create` a set of claim tokens,
//! bulk-loads expired rows, and then runs finds, commits and deletes while
//! every replica's cleanup task runs every 50 ms. The parent checks that
//! every claim was won exactly once, no call failed, every acknowledged
//! write reads back, and cleanup emptied the expired rows. It prints the
//! slowest find and commit each replica saw while cleanup ran (not asserted
//! beyond a generous timeout: the machine is shared).
//!
//! `PGSTORE_REPLICA_OPS=20000` runs longer.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgstore::PgStore;
use support::TestResult;

const TEST: &str = "four_replicas_share_one_table_with_no_error";
const REPLICAS: usize = 4;
const CLAIMS: usize = 32;
const EXPIRED_PER_REPLICA: i64 = 25_000;
const HOUR: Duration = Duration::from_secs(3600);
/// A generous bound on any one call: a hang, not a performance target.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn four_replicas_share_one_table_with_no_error() -> TestResult {
    if let Ok(id) = std::env::var("PGSTORE_REPLICA_ID") {
        return replica_main(id.parse()?);
    }
    let Some(url) = support::url(TEST) else {
        return Ok(());
    };
    let table = support::unique_table("replicas");
    // All start building at this instant.
    let start_at = SystemTime::now() + Duration::from_millis(1500);
    let start_ms = start_at.duration_since(UNIX_EPOCH)?.as_millis().to_string();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for id in 0..REPLICAS {
        let child = Command::new(&exe)
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env("PGSTORE_REPLICA_ID", id.to_string())
            .env("PGSTORE_REPLICA_TABLE", &table)
            .env("PGSTORE_REPLICA_START_MS", &start_ms)
            .env("PGSTORE_TEST_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        children.push(child);
    }
    let mut claims: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut reports = Vec::new();
    let mut cleaned = 0u64;
    for (id, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "replica {id} failed: {}\n{stdout}",
            out.status
        );
        // libtest may print its own "test ... " in front of a line.
        for line in stdout
            .lines()
            .filter_map(|l| l.find("REPLICA-").map(|at| &l[at..]))
        {
            if let Some(k) = line.strip_prefix("REPLICA-CLAIM ") {
                claims.entry(k.parse()?).or_default().push(id);
            } else if let Some(r) = line.strip_prefix("REPLICA-REPORT ") {
                reports.push(format!("replica {id}: {r}"));
                cleaned += r.rsplit(' ').next().unwrap_or("").parse::<u64>()?;
            }
        }
    }
    for r in &reports {
        eprintln!("{r}");
    }
    assert_eq!(reports.len(), REPLICAS, "every replica reports");
    // Every expired row was deleted by exactly one replica's cleanup.
    assert_eq!(cleaned, REPLICAS as u64 * EXPIRED_PER_REPLICA as u64);
    for k in 0..CLAIMS {
        assert_eq!(
            claims.get(&k).map(Vec::len),
            Some(1),
            "claim {k} won by {:?}",
            claims.get(&k)
        );
    }
    // Cleanup by the replicas removed every expired row.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = support::raw_client(&url).await?;
        let expired: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM \"{table}\" WHERE expiry <= now()"),
                &[],
            )
            .await?
            .get(0);
        assert_eq!(expired, 0, "expired rows left after the replicas' cleanup");
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname = $1",
                &[&table],
            )
            .await?
            .get(0);
        assert_eq!(tables, 1);
        support::drop_table(&client, &table).await
    })
}

fn replica_main(id: usize) -> TestResult {
    let url = std::env::var("PGSTORE_TEST_URL")?;
    let table = std::env::var("PGSTORE_REPLICA_TABLE")?;
    let start_ms: u64 = std::env::var("PGSTORE_REPLICA_START_MS")?.parse()?;
    let ops: usize = std::env::var("PGSTORE_REPLICA_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let start = UNIX_EPOCH + Duration::from_millis(start_ms);
        if let Ok(wait) = start.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let store = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::from_millis(50))
            .cleanup_batch_size(500)
            .cleanup_statement_timeout(Duration::from_secs(2))
            .pool_size(4)
            .build()
            .await?;

    for k in 0..CLAIMS {
            let won = timed(store.create(&format!("claim-{k}"), &[id as u8], SystemTime::now() + HOUR)).await?.0?;
            if won {
                println!("REPLICA-CLAIM {k}");
            }
        }

        // Work for everyone's cleanup.
        let client = support::raw_client(&url).await?;
        client
            .execute(
                &format!(
                    "INSERT INTO \"{table}\" (token, data, expiry) \
                     SELECT 'expired-{id}-' || i, 'x', now() - interval '1 minute' \
                     FROM generate_series(1, $1::bigint) i"
                ),
                &[&EXPIRED_PER_REPLICA],
            )
            .await?;

        let mut worst_find = Duration::ZERO;
        let mut worst_commit = Duration::ZERO;
        let mut live = Vec::new();
        let started = Instant::now();
        for i in 0..ops {
            let token = format!("r{id}-{i}");
            let data = token.as_bytes();
            let ((), took) = timed(store.commit(&token, data, SystemTime::now() + HOUR)).await?.map0()?;
            worst_commit = worst_commit.max(took);
            let (found, took) = timed(store.find(&token)).await?;
            worst_find = worst_find.max(took);
            assert_eq!(found?.as_deref(), Some(data), "{token}");
            if i % 5 == 0 {
                assert!(timed(store.delete(&token)).await?.0?, "{token}");
            } else {
                live.push(token);
            }
        }
        let elapsed = started.elapsed();
        for token in &live {
            assert_eq!(store.find(token).await?.as_deref(), Some(token.as_bytes()), "{token}");
        }
        // Wait (bounded) until the replicas' cleanup has emptied the
        // expired rows, so the parent's check does not race it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.stats().await?.expired > 0 {
            assert!(Instant::now() < deadline, "cleanup did not finish within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "REPLICA-REPORT {ops} rounds in {elapsed:?}, 0 errors, slowest find {worst_find:?}, slowest commit {worst_commit:?}, cleaned {}",
            store.stats().await?.cleaned_total
        );
        store.stop_cleanup();
        Ok(())
    })
}

/// Runs `f` under [`CALL_TIMEOUT`], with how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> TestResult<(T, Duration)> {
    let started = Instant::now();
    let out = tokio::time::timeout(CALL_TIMEOUT, f).await?;
    Ok((out, started.elapsed()))
}

trait Map0<E> {
    fn map0(self) -> Result<((), Duration), E>;
}

impl<E> Map0<E> for (Result<(), E>, Duration) {
    fn map0(self) -> Result<((), Duration), E> {
        self.0.map(|()| ((), self.1))
    }
}
