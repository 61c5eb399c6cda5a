//! The shared conformance suite (session-contract's, Go scs's store tests
//! ported plus the workspace's extras) against a real PostgreSQL server.
//! Each case gets a private table; "time passes" by moving every stored
//! expiry back, since the store uses the database's clock.

mod support;

use std::time::{Duration, SystemTime};

use pgstore::PgStore;
use session_contract::conformance::{self, Harness, Options};
use support::TestResult;

struct PgHarness {
    url: String,
    table: String,
    options: Options,
    store: PgStore,
    client: tokio_postgres::Client,
    /// The database clock minus the local clock, measured at open (one
    /// machine, so about zero, but the suite must not depend on that);
    /// rounded down, so `now()` never runs ahead of the database.
    offset_ms: i128,
}

fn millis(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

async fn build(url: &str, table: &str, options: &Options) -> TestResult<PgStore> {
    let mut b = PgStore::builder(url)
        .table(table)
        .cleanup_interval(options.cleanup_interval.unwrap_or(Duration::ZERO));
    if let Some(n) = options.cleanup_batch_size {
        b = b.cleanup_batch_size(n);
    }
    if let Some(n) = options.max_token_len {
        b = b.max_token_len(n);
    }
    if let Some(n) = options.max_data_len {
        b = b.max_data_len(n);
    }
    if let Some(key) = &options.hash_key {
        b = b.hash_tokens(key);
    }
    Ok(b.build().await?)
}

#[async_trait::async_trait]
impl Harness for PgHarness {
    type Store = PgStore;

    async fn open(options: Options) -> TestResult<Self> {
        let url = std::env::var("PGSTORE_TEST_URL")?;
        let table = support::unique_table("conf");
        let store = build(&url, &table, &options).await?;
        let client = support::raw_client(&url).await?;
        let db = store.now().await?;
        // Read after the database's clock, so `now()` is never ahead of it.
        let local = SystemTime::now();
        Ok(Self {
            offset_ms: millis(db) - millis(local),
            url,
            table,
            options,
            store,
            client,
        })
    }

    fn store(&self) -> &PgStore {
        &self.store
    }

    fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        let off = Duration::from_millis(self.offset_ms.unsigned_abs() as u64);
        if self.offset_ms >= 0 {
            now + off
        } else {
            now - off
        }
    }

    async fn advance(&self, by: Duration) -> TestResult {
        self.client
            .execute(
                &format!(
                    "UPDATE \"{}\" SET expiry = expiry - make_interval(secs => $1)",
                    self.table
                ),
                &[&by.as_secs_f64()],
            )
            .await?;
        Ok(())
    }

    async fn second_handle(&self) -> TestResult<PgStore> {
        build(&self.url, &self.table, &self.options).await
    }

    async fn insert_raw(&self, token: &str, data: &[u8], expiry: SystemTime) -> TestResult {
        // Go postgresstore's Commit.
        self.client
            .execute(
                &format!(
                    "INSERT INTO \"{}\" (token, data, expiry) VALUES ($1, $2, $3) \
                     ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry",
                    self.table
                ),
                &[&token, &data, &expiry],
            )
            .await?;
        Ok(())
    }

    async fn count_rows(&self) -> TestResult<u64> {
        support::count_rows(&self.client, &self.table).await
    }
}

/// One `#[tokio::test]` per case, each skipped (locally) or failed (under
/// CI) when no server is configured.
macro_rules! pg_conformance {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() -> TestResult {
            if support::url(stringify!($case)).is_none() {
                return Ok(());
            }
            conformance::$case::<PgHarness>().await
        }
    )*};
}

pg_conformance!(
    find_existing,
    find_missing,
    commit_new,
    commit_updates,
    expiry,
    cleanup_thread_removes_expired,
    stop_without_cleanup,
    delete_is_idempotent,
    all_returns_active_only,
    delete_expired_on_demand,
    past_expiry_is_stored_but_never_found,
    far_future_expiry_is_found,
    create_does_not_overwrite_active,
    odd_tokens_round_trip,
    bad_tokens_are_not_found,
    bad_commits_are_refused_and_write_nothing,
    data_survives_reopen,
    find_with_expiry_of_live_sessions,
    list_is_soonest_first_and_limited,
    export_pages_walk_live_sessions_in_key_order,
    create_is_collision_safe,
    hashed_tokens_are_stored_as_hmac,
    update_writes_live_sessions_only,
    delete_beats_concurrent_update,
    touch_moves_expiry_of_live_sessions_only,
    owners_list_count_and_revoke,
    owners_leave_no_stale_entries,
    bad_owners_are_refused,
    revoke_owner_with_many_sessions,
    owners_with_hashed_tokens,
);
