//! `SqliteSessionStore` as a tower-sessions `SessionStore`: what each call
//! promises, with time moved by a `ManualClock` where it matters.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tempfile::TempDir;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlite3store::sqlite3store::{AsyncSqliteStore, ManualClock, SqliteStore};
use tower_sessions_sqlite3store::{spawn_cleanup_task, SqliteSessionStore};

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// A store in a fresh temp dir, without a cleanup thread, on `clock`
/// (standing at the real now, so records' own expiry dates agree with it).
struct Fixture {
    dir: TempDir,
    clock: Arc<ManualClock>,
    store: SqliteSessionStore,
}

async fn fixture() -> Result<Fixture> {
    fixture_with(|b| b).await
}

async fn fixture_with(
    configure: impl FnOnce(sqlite3store::Builder) -> sqlite3store::Builder,
) -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let builder = SqliteStore::builder(db_path(&dir))
        .cleanup_interval(Duration::ZERO)
        .clock(clock.clone());
    let store = SqliteSessionStore::new(configure(builder).build_async().await?);
    Ok(Fixture { dir, clock, store })
}

fn db_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("sessions.db")
}

fn record_expiring_in(seconds: i64) -> Record {
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(seconds),
    };
    record.data.insert("user".into(), json!("ada"));
    record
}

/// Stores a fresh record, keeping its id (what `save` no longer does: it
/// only writes over a live session).
async fn insert(store: &SqliteSessionStore, record: &Record) -> Result {
    let mut created = record.clone();
    store.create(&mut created).await?;
    assert_eq!(created.id, record.id, "the id was taken");
    Ok(())
}

fn backend_message(err: session_store::Error) -> String {
    match err {
        session_store::Error::Backend(message) => message,
        other => panic!("not a backend error: {other:?}"),
    }
}

#[tokio::test]
async fn create_stores_a_new_session() -> Result {
    let f = fixture().await?;
    let mut record = record_expiring_in(3600);
    let id = record.id;
    f.store.create(&mut record).await?;
    assert_eq!(record.id, id, "a free id is kept");
    assert_eq!(f.store.load(&id).await?, Some(record));
    Ok(())
}

#[tokio::test]
async fn create_never_overwrites_an_active_session() -> Result {
    let f = fixture().await?;
    let existing = record_expiring_in(3600);
    insert(&f.store, &existing).await?;

    let mut newcomer = record_expiring_in(7200);
    newcomer.id = existing.id;
    newcomer.data.insert("user".into(), json!("mallory"));
    f.store.create(&mut newcomer).await?;

    assert_ne!(newcomer.id, existing.id, "the collision got a new id");
    assert_eq!(f.store.load(&existing.id).await?, Some(existing));
    assert_eq!(f.store.load(&newcomer.id).await?, Some(newcomer));
    assert_eq!(f.store.inner().stats().await?.active, 2);
    Ok(())
}

#[tokio::test]
async fn concurrent_creates_of_one_id_all_end_up_distinct() -> Result {
    let f = fixture().await?;
    let id = Id::default();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut record = record_expiring_in(3600);
            record.id = id;
            record.data.insert("n".into(), json!(n));
            store.create(&mut record).await.map(|()| record)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let record = task.await??;
        assert!(ids.insert(record.id), "two creates share an id");
        assert_eq!(f.store.load(&record.id).await?, Some(record));
    }
    assert!(ids.contains(&id), "one create kept the id");
    Ok(())
}

#[tokio::test]
async fn create_takes_over_an_expired_id() -> Result {
    let f = fixture().await?;
    let stale = record_expiring_in(10);
    insert(&f.store, &stale).await?;
    f.clock.advance(Duration::from_secs(20));

    let mut record = record_expiring_in(3600);
    record.id = stale.id;
    f.store.create(&mut record).await?;
    assert_eq!(
        record.id, stale.id,
        "an expired session does not hold its id"
    );
    assert_eq!(f.store.load(&stale.id).await?, Some(record));
    Ok(())
}

#[tokio::test]
async fn save_replaces_a_live_session_and_never_inserts() -> Result {
    let f = fixture().await?;
    let mut record = record_expiring_in(3600);
    // Only create makes a session (see tests/revocation.rs).
    f.store.save(&record).await?;
    assert_eq!(f.store.load(&record.id).await?, None);
    f.store.create(&mut record).await?;
    f.store.save(&record).await?;
    assert_eq!(f.store.load(&record.id).await?.as_ref(), Some(&record));

    record.data.insert("user".into(), json!("grace"));
    record.expiry_date += time::Duration::hours(1);
    f.store.save(&record).await?;
    assert_eq!(f.store.load(&record.id).await?.as_ref(), Some(&record));
    assert_eq!(f.store.inner().stats().await?.active, 1);

    let expiry = f
        .store
        .inner()
        .find_with_expiry(&record.id.to_string())
        .await?
        .ok_or("row missing")?
        .expiry;
    let expected = SystemTime::from(record.expiry_date);
    let skew = expiry
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_millis(2),
        "expiry column is the record's expiry_date"
    );
    Ok(())
}

#[tokio::test]
async fn load_of_a_missing_session_is_none() -> Result {
    let f = fixture().await?;
    assert_eq!(f.store.load(&Id::default()).await?, None);
    Ok(())
}

#[tokio::test]
async fn load_hides_expired_sessions() -> Result {
    let f = fixture().await?;
    let record = record_expiring_in(60);
    insert(&f.store, &record).await?;
    f.clock.advance(Duration::from_secs(59));
    assert!(f.store.load(&record.id).await?.is_some());

    f.clock.advance(Duration::from_secs(2));
    assert_eq!(f.store.load(&record.id).await?, None);
    let stats = f.store.inner().stats().await?;
    assert_eq!((stats.active, stats.expired), (0, 1));
    Ok(())
}

#[tokio::test]
async fn load_checks_the_records_own_expiry_date() -> Result {
    let f = fixture().await?;
    // The row says "active for an hour", the record inside says "expired".
    let record = record_expiring_in(-1);
    let data = rmp_serde::to_vec_named(&record)?;
    let row_expiry = SystemTime::now() + Duration::from_secs(3600);
    f.store
        .inner()
        .commit(&record.id.to_string(), &data, row_expiry)
        .await?;
    assert_eq!(f.store.load(&record.id).await?, None);
    Ok(())
}

#[tokio::test]
async fn load_ignores_a_record_stored_under_another_id() -> Result {
    let f = fixture().await?;
    let record = record_expiring_in(3600);
    let data = rmp_serde::to_vec_named(&record)?;
    let other = Id::default();
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    f.store
        .inner()
        .commit(&other.to_string(), &data, expiry)
        .await?;
    assert_eq!(f.store.load(&other).await?, None);
    Ok(())
}

#[tokio::test]
async fn undecodable_data_is_a_decode_error() -> Result {
    let f = fixture().await?;
    let id = Id::default();
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    // What Go's scs (gob) or another program might have left there.
    f.store
        .inner()
        .commit(&id.to_string(), b"\x0d\xff\x81\x03not msgpack", expiry)
        .await?;
    match f.store.load(&id).await {
        Err(session_store::Error::Decode(message)) => assert!(!message.is_empty()),
        other => panic!("expected a decode error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn delete_is_idempotent() -> Result {
    let f = fixture().await?;
    let record = record_expiring_in(3600);
    f.store.delete(&record.id).await?;

    insert(&f.store, &record).await?;
    f.store.delete(&record.id).await?;
    f.store.delete(&record.id).await?;
    assert_eq!(f.store.load(&record.id).await?, None);
    assert_eq!(f.store.inner().stats().await?.active, 0);
    Ok(())
}

#[tokio::test]
async fn extreme_ids_and_hostile_data_round_trip() -> Result {
    let f = fixture().await?;
    for raw in [0, 1, -1, i128::MIN, i128::MAX] {
        let id = Id(raw);
        assert_eq!(f.store.load(&id).await?, None);
        let mut record = record_expiring_in(3600);
        record.id = id;
        for key in [
            "'; DROP TABLE sessions; --",
            "\0nul\0",
            "ünïcödé 🦀",
            "\u{202e}rtl",
            "",
        ] {
            record
                .data
                .insert(key.into(), json!({ "v": key, "n": raw.to_string() }));
        }
        insert(&f.store, &record).await?;
        assert_eq!(f.store.load(&id).await?.as_ref(), Some(&record));
        f.store.delete(&id).await?;
        assert_eq!(f.store.load(&id).await?, None);
    }
    Ok(())
}

#[tokio::test]
async fn records_over_the_size_limit_are_an_error_not_a_panic() -> Result {
    let f = fixture_with(|b| b.max_data_len(4096)).await?;
    let mut record = record_expiring_in(3600);
    record
        .data
        .insert("blob".into(), json!("x".repeat(64 * 1024)));

    let message = backend_message(f.store.save(&record).await.unwrap_err());
    assert!(message.contains("over the limit of 4096"), "{message}");
    let mut created = record.clone();
    let message = backend_message(f.store.create(&mut created).await.unwrap_err());
    assert!(message.contains("over the limit"), "{message}");
    assert_eq!(f.store.inner().stats().await?.active, 0);
    Ok(())
}

#[tokio::test]
async fn records_past_the_default_limit_are_refused() -> Result {
    let f = fixture_with(|b| b).await?;
    let mut record = record_expiring_in(3600);
    record
        .data
        .insert("blob".into(), json!("x".repeat(2 << 20)));
    assert!(matches!(
        f.store.save(&record).await,
        Err(session_store::Error::Backend(_))
    ));
    // A record just under the limit is fine.
    record
        .data
        .insert("blob".into(), json!("x".repeat(1000 * 1000)));
    insert(&f.store, &record).await?;
    assert_eq!(f.store.load(&record.id).await?, Some(record));
    Ok(())
}

#[tokio::test]
async fn storage_errors_are_backend_errors_with_their_message() -> Result {
    let f = fixture().await?;
    let record = record_expiring_in(3600);
    insert(&f.store, &record).await?;
    let read_only = SqliteSessionStore::new(
        SqliteStore::builder(db_path(&f.dir))
            .read_only(true)
            .build_async()
            .await?,
    );

    assert_eq!(read_only.load(&record.id).await?, Some(record.clone()));
    // A change, so the save writes (an unchanged one would not).
    let mut changed = record.clone();
    changed.data.insert("user".into(), json!("grace"));
    let message = backend_message(read_only.save(&changed).await.unwrap_err());
    assert_eq!(message, "session database is read-only");
    let message = backend_message(read_only.delete_expired().await.unwrap_err());
    assert_eq!(message, "session database is read-only");
    Ok(())
}

#[tokio::test]
async fn delete_expired_removes_only_expired_sessions() -> Result {
    let f = fixture().await?;
    let short = record_expiring_in(60);
    let long = record_expiring_in(3600);
    insert(&f.store, &short).await?;
    insert(&f.store, &long).await?;
    f.clock.advance(Duration::from_secs(120));

    f.store.delete_expired().await?;
    let stats = f.store.inner().stats().await?;
    assert_eq!((stats.active, stats.expired), (1, 0));
    assert!(f.store.load(&long.id).await?.is_some());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cleanup_task_deletes_expired_sessions_until_stopped() -> Result {
    let f = fixture().await?;
    let period = Duration::from_secs(300);
    insert(&f.store, &record_expiring_in(60)).await?;
    f.clock.advance(Duration::from_secs(120));
    let task = spawn_cleanup_task(f.store.clone(), period);

    tokio::time::sleep(period + Duration::from_secs(1)).await;
    assert_eq!(f.store.inner().stats().await?.expired, 0);

    task.stop().await?;
    insert(&f.store, &record_expiring_in(60)).await?;
    f.clock.advance(Duration::from_secs(120));
    tokio::time::sleep(period * 3).await;
    assert_eq!(
        f.store.inner().stats().await?.expired,
        1,
        "stopped tasks clean nothing"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn tower_sessions_continuous_deletion_works_too() -> Result {
    let f = fixture().await?;
    let period = Duration::from_secs(300);
    let deletion = tokio::spawn(f.store.clone().continuously_delete_expired(period));
    insert(&f.store, &record_expiring_in(60)).await?;
    f.clock.advance(Duration::from_secs(120));

    tokio::time::sleep(period + Duration::from_secs(1)).await;
    assert_eq!(f.store.inner().stats().await?.expired, 0);
    deletion.abort();
    Ok(())
}

#[tokio::test]
async fn conversions_share_one_store() -> Result {
    let dir = tempfile::tempdir()?;
    let path: &Path = &db_path(&dir);
    let sync = SqliteStore::with_cleanup_interval(path, Duration::ZERO)?;
    let from_sync = SqliteSessionStore::from(sync.clone());
    let from_async = SqliteSessionStore::from(AsyncSqliteStore::from(sync.clone()));

    let record = record_expiring_in(3600);
    insert(&from_sync, &record).await?;
    assert_eq!(from_async.load(&record.id).await?.as_ref(), Some(&record));
    assert!(sync.find(&record.id.to_string())?.is_some());
    let opened = SqliteSessionStore::open(path).await?;
    assert_eq!(opened.load(&record.id).await?, Some(record));
    drop(opened.into_inner());
    Ok(())
}
