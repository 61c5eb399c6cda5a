//! The table: Go's shape created once even by replicas starting together,
//! Go's older `TIMESTAMP(6)` tables, a wrong shape refused, and table names
//! that cannot inject SQL.

mod support;

use std::time::{Duration, SystemTime};

use pgstore::{Error, PgStore};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn creates_go_table_and_index() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("create");
    let store = PgStore::builder(&url)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    let client = support::raw_client(&url).await?;
    let cols: Vec<(String, String, bool)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable = 'NO' \
             FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = [
        ("token", "text", true),
        ("data", "bytea", true),
        ("expiry", "timestamp with time zone", true),
        ("owner", "text", false),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c));
    assert_eq!(cols, want);
    let owner_index: String = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexname = $2",
            &[&table, &format!("{table}_owner_idx")],
        )
        .await?
        .get(0);
    assert!(
        owner_index.contains("(owner) WHERE (owner IS NOT NULL)"),
        "{owner_index}"
    );
    let index: String = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexname = $2",
            &[&table, &format!("{table}_expiry_idx")],
        )
        .await?
        .get(0);
    assert!(index.contains("(expiry)"), "{index}");
    assert_eq!(store.table(), format!("\"{table}\""));
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn four_replicas_create_the_schema_at_once() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("replicas");
    let opens = (0..4).map(|_| {
        PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
    });
    let stores = futures_join_all(opens).await;
    for (i, s) in stores.iter().enumerate() {
        assert!(s.is_ok(), "replica {i}: {:?}", s.as_ref().err());
    }
    let client = support::raw_client(&url).await?;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = $1",
            &[&table],
        )
        .await?
        .get(0);
    assert_eq!(n, 1);
    support::drop_table(&client, &table).await
}

/// Runs the futures concurrently on the runtime, results in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task did not panic"));
    }
    out
}

#[tokio::test]
async fn go_and_rust_share_the_table() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("gocompat");
    let client = support::raw_client(&url).await?;
    // Made by hand, as Go's README says.
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL); \
             CREATE INDEX \"{table}_expiry_idx\" ON \"{table}\" (expiry);"
        ))
        .await?;
    let store = PgStore::builder(&url)
        .table(&table)
        .create_if_missing(false)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    // Go's Commit, then our find.
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (token, data, expiry) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry"
            ),
            &[&"from-go", &&b"go data"[..], &(SystemTime::now() + HOUR)],
        )
        .await?;
    assert_eq!(store.find("from-go").await?, Some(b"go data".to_vec()));
    // Our commit, then Go's Find.
    store
        .commit("from-rust", b"rust data", SystemTime::now() + HOUR)
        .await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT data FROM \"{table}\" WHERE token = $1 AND current_timestamp < expiry"
            ),
            &[&"from-rust"],
        )
        .await?;
    assert_eq!(
        row.map(|r| r.get::<_, Vec<u8>>(0)),
        Some(b"rust data".to_vec())
    );
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn timestamp_without_time_zone_tables_are_utc() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("ts6");
    let client = support::raw_client(&url).await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMP(6) NOT NULL)"
        ))
        .await?;
    // The store's connections in a zone far from UTC: a naive expiry read
    // as local time would be 9 hours off.
    let tokyo = format!("{url} options='-c TimeZone=Asia/Tokyo'");
    let store = PgStore::builder(&tokyo)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    // As Go wrote them: UTC wall-clock times.
    client
        .batch_execute(&format!(
            "INSERT INTO \"{table}\" VALUES \
             ('live', 'a', (now() AT TIME ZONE 'UTC') + interval '1 minute'), \
             ('gone', 'b', (now() AT TIME ZONE 'UTC') - interval '1 minute')"
        ))
        .await?;
    assert_eq!(store.find("live").await?, Some(b"a".to_vec()));
    assert_eq!(store.find("gone").await?, None);
    // What we write is UTC wall-clock time, to the millisecond.
    let expiry = SystemTime::UNIX_EPOCH + Duration::from_millis(4_102_444_800_123); // 2100-01-01
    store.commit("ours", b"c", expiry).await?;
    let text: String = client
        .query_one(
            &format!("SELECT expiry::text FROM \"{table}\" WHERE token = 'ours'"),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(text, "2100-01-01 00:00:00.123");
    let read = store
        .find_with_expiry("ours")
        .await?
        .ok_or("not found")?
        .expiry;
    assert_eq!(read, expiry);
    // Cleanup agrees with find.
    assert_eq!(store.delete_expired().await?.removed, 1);
    assert_eq!(store.find("live").await?, Some(b"a".to_vec()));
    support::drop_table(&client, &table).await
}

#[tokio::test]
async fn wrong_schema_is_a_schema_mismatch() -> TestResult {
    let url = pg_url!();
    let client = support::raw_client(&url).await?;
    let cases = [
        (
            "token TEXT PRIMARY KEY, data TEXT NOT NULL, expiry TIMESTAMPTZ NOT NULL",
            "data",
        ),
        (
            "token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry BIGINT NOT NULL",
            "expiry",
        ),
        (
            "token TEXT, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL",
            "primary key",
        ),
        (
            "token INTEGER PRIMARY KEY, data BYTEA, expiry TIMESTAMPTZ",
            "token",
        ),
        (
            "id TEXT PRIMARY KEY, data BYTEA, expiry TIMESTAMPTZ",
            "token",
        ),
    ];
    for (columns, mentions) in cases {
        let table = support::unique_table("wrong");
        client
            .batch_execute(&format!("CREATE TABLE \"{table}\" ({columns})"))
            .await?;
        let err = PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await
            .expect_err(columns);
        match &err {
            Error::SchemaMismatch { reason, .. } => {
                assert!(reason.contains(mentions), "{columns}: {reason}")
            }
            other => panic!("{columns}: {other:?}"),
        }
        support::drop_table(&client, &table).await?;
    }
    // Missing, and not to be created.
    let err = PgStore::builder(&url)
        .table(support::unique_table("missing"))
        .create_if_missing(false)
        .build()
        .await
        .expect_err("missing table");
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn hostile_table_names_are_refused_before_any_sql() -> TestResult {
    let url = pg_url!();
    let victim = support::unique_table("victim");
    let client = support::raw_client(&url).await?;
    client
        .batch_execute(&format!("CREATE TABLE \"{victim}\" (x int)"))
        .await?;
    for name in [
        format!("x\"; DROP TABLE \"{victim}\"; --"),
        format!("{victim}; DROP TABLE {victim}"),
        "sessions\"".into(),
        "a b".into(),
        "".into(),
        "pg_catalog".into(),
        "x".repeat(64),
    ] {
        let err = PgStore::builder(&url)
            .table(&name)
            .build()
            .await
            .expect_err(&name);
        assert!(matches!(err, Error::InvalidConfig(_)), "{name:?}: {err:?}");
        let err = PgStore::builder(&url)
            .schema(&name)
            .build()
            .await
            .expect_err(&name);
        assert!(matches!(err, Error::InvalidConfig(_)), "{name:?}: {err:?}");
    }
    // The victim is still there.
    support::count_rows(&client, &victim).await?;
    support::drop_table(&client, &victim).await
}

#[tokio::test]
async fn a_table_in_its_own_schema() -> TestResult {
    let url = pg_url!();
    let schema = support::unique_table("schema");
    let client = support::raw_client(&url).await?;
    client
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await?;
    let store = PgStore::builder(&url)
        .schema(&schema)
        .table("Mixed_Case")
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    assert_eq!(store.table(), format!("\"{schema}\".\"Mixed_Case\""));
    store.commit("t", b"d", SystemTime::now() + HOUR).await?;
    let n: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".\"Mixed_Case\""),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(n, 1);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}
