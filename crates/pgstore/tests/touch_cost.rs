//! What `touch` saves over a full `commit` of a 4 KiB session on
//! PostgreSQL: the WAL bytes each writes (asserted: touch keeps the TOASTed
//! data where it is) and the time each takes (printed only, never asserted;
//! a smoke-sized run, not a benchmark).

mod support;

use std::time::{Duration, Instant, SystemTime};

use pgstore::PgStore;
use support::TestResult;

const SESSIONS: usize = 100;
const DATA: usize = 4096;

/// Bytes that do not compress, different for each `seed`.
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..DATA)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

async fn wal_lsn(client: &tokio_postgres::Client) -> TestResult<String> {
    Ok(client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get(0))
}

async fn wal_since(client: &tokio_postgres::Client, lsn: &str) -> TestResult<u64> {
    let bytes: f64 = client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)::float8",
            &[&lsn],
        )
        .await?
        .get(0);
    Ok(bytes as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_writes_less_than_a_full_commit_of_4_kib() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("touchcost");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let client = support::raw_client(&url).await?;
    let tokens: Vec<String> = (0..SESSIONS).map(|i| format!("session-{i:04}")).collect();
    let exp = SystemTime::now() + Duration::from_secs(3600);
    for (i, token) in tokens.iter().enumerate() {
        store.commit(token, &noise(i as u64), exp).await?;
    }
    let mut results = Vec::new();
    for (what, round) in [
        ("commit (new 4 KiB data)", 0),
        ("commit (same 4 KiB data)", 1),
        ("touch", 2),
    ] {
        let later = exp + Duration::from_secs(60 * (round + 1));
        let (lsn, started) = (wal_lsn(&client).await?, Instant::now());
        for (i, token) in tokens.iter().enumerate() {
            match round {
                0 | 1 => store.commit(token, &noise(i as u64 + 1_000), later).await?,
                _ => assert!(store.touch(token, later).await?),
            }
        }
        let took = started.elapsed() / SESSIONS as u32;
        let per_op = wal_since(&client, &lsn).await? / SESSIONS as u64;
        println!("postgres {what:<26} {per_op:>6} WAL bytes/op  {took:>10.1?}/op");
        results.push(per_op);
    }
    let (changed, same, touched) = (results[0], results[1], results[2]);
    assert!(
        touched < changed && touched < same,
        "touch wrote {touched} WAL bytes/op, commits {changed} and {same}"
    );
    support::drop_table(&client, &table).await
}
