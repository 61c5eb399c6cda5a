//! Revocation wins on PostgreSQL through the shared tower-sessions store: a
//! save racing a delete never brings the session back, and owners
//! (`with_owner_key`) are kept and revoked.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use pgstore::PgStore;
use support::TestResult;
use time::OffsetDateTime;
use tower_sessions_contract::ContractStore;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::SessionStore;

fn record(user: Option<&str>) -> Record {
    let mut data = HashMap::new();
    if let Some(user) = user {
        data.insert("user_id".to_owned(), serde_json::Value::from(user));
    }
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_racing_a_delete_never_brings_the_session_back() -> TestResult {
    let url = pg_url!();
    let table = support::unique_table("revocation");
    let store = ContractStore::new(
        PgStore::builder(&url)
            .table(&table)
            .cleanup_interval(Duration::ZERO)
            .build()
            .await?,
    )
    .with_owner_key("user_id");
    for _ in 0..50 {
        let mut r = record(Some("alice"));
        store.create(&mut r).await?;
        let loaded = store.load(&r.id).await?.ok_or("created record not found")?;
        let (saver, deleter) = (store.clone(), store.clone());
        let saving = tokio::spawn(async move { saver.save(&loaded).await });
        let id = r.id;
        let deleting = tokio::spawn(async move { deleter.delete(&id).await });
        let (saved, deleted) = tokio::join!(saving, deleting);
        saved??;
        deleted??;
        assert!(store.load(&r.id).await?.is_none(), "the session came back");
    }
    assert_eq!(store.count_owner("alice").await?, 0);

    // Owners through create and save, and revoke everywhere.
    let mut laptop = record(Some("bob"));
    let mut phone = record(None);
    store.create(&mut laptop).await?;
    store.create(&mut phone).await?;
    assert_eq!(store.count_owner("bob").await?, 1);
    phone
        .data
        .insert("user_id".into(), serde_json::Value::from("bob"));
    store.save(&phone).await?;
    assert_eq!(store.count_owner("bob").await?, 2);
    assert_eq!(store.revoke_owner("bob").await?, 2);
    store.save(&phone).await?;
    assert!(store.load(&phone.id).await?.is_none());
    assert!(store.load(&laptop.id).await?.is_none());
    let client = support::raw_client(&url).await?;
    assert_eq!(support::count_rows(&client, &table).await?, 0);
    support::drop_table(&client, &table).await
}
