//! The shared tower-sessions store (`ContractStore`) on PostgreSQL: the same
//! adapter that serves SQLite, with no code of its own for this backend.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use pgstore::PgStore;
use support::TestResult;
use time::OffsetDateTime;
use tower_sessions_contract::ContractStore;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{ExpiredDeletion, SessionStore};

fn record(id: Id, minutes: i64, value: &str) -> Record {
    let mut data = HashMap::new();
    data.insert("k".to_owned(), serde_json::Value::from(value));
    Record {
        id,
        data,
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(minutes),
    }
}

#[tokio::test]
async fn contract_store_serves_tower_sessions_on_postgres() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("towersessions");
    let store = ContractStore::new(
        PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?,
    );
    let mut first = record(Id::default(), 10, "one");
    store.create(&mut first).await?;
    let loaded = store
        .load(&first.id)
        .await?
        .ok_or("created record not found")?;
    assert_eq!(loaded.data, first.data);

    // A create with a taken id gets a fresh one instead of overwriting.
    let mut clash = record(first.id, 10, "two");
    store.create(&mut clash).await?;
    assert_ne!(clash.id, first.id);
    assert_eq!(
        store.load(&first.id).await?.map(|r| r.data),
        Some(first.data.clone())
    );

    let updated = record(first.id, 10, "updated");
    store.save(&updated).await?;
    assert_eq!(
        store.load(&first.id).await?.map(|r| r.data),
        Some(updated.data)
    );

    let expired = record(Id::default(), -1, "old");
    store.save(&expired).await?;
    assert!(store.load(&expired.id).await?.is_none());
    store.delete_expired().await?;
    let client = support::raw_client(&url).await?;
    assert_eq!(support::count_rows(&client, &table).await?, 2);

    store.delete(&first.id).await?;
    store.delete(&first.id).await?;
    assert!(store.load(&first.id).await?.is_none());
    support::drop_table(&client, &table).await
}
