//! The blocking front: the same store from plain threads, its cleanup task
//! running between calls, and a clear error (not a panic) inside a runtime.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pgstore::{BlockingPgStore, Error, PgStore};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

fn open(url: &str, table: &str, cleanup: Duration) -> pgstore::Result<BlockingPgStore> {
    PgStore::builder(url)
        .table(table)
        .cleanup_interval(cleanup)
        .build_blocking()
}

#[test]
fn blocking_store_from_threads_with_cleanup() -> TestResult {
    let Some(url) = support::url("blocking_store_from_threads_with_cleanup") else {
        return Ok(());
    };
    let table = support::unique_table("blocking");
    let store = Arc::new(open(&url, &table, Duration::from_millis(20))?);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> pgstore::Result<()> {
                for i in 0..50 {
                    let token = format!("t{t}-{i}");
                    store.commit(&token, token.as_bytes(), SystemTime::now() + HOUR)?;
                    assert_eq!(store.find(&token)?, Some(token.clone().into_bytes()));
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread did not panic")?;
    }
    assert_eq!(store.all()?.len(), 200);
    assert!(store.create("new", b"x", SystemTime::now() + HOUR)?);
    assert!(store.delete("new")?);
    // Expired rows go while this thread does nothing with the store.
    store.commit("old", b"x", SystemTime::now() - HOUR)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats()?.expired > 0 {
        assert!(Instant::now() < deadline, "cleanup task did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    store.stop_cleanup();
    assert_eq!(store.list(1000)?.len(), 200);
    assert_eq!(store.delete_expired()?.removed, 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = support::raw_client(&url).await?;
        support::drop_table(&client, &table).await
    })
}

#[test]
fn inside_a_runtime_it_refuses_instead_of_blocking() -> TestResult {
    let Some(url) = support::url("inside_a_runtime_it_refuses_instead_of_blocking") else {
        return Ok(());
    };
    let table = support::unique_table("blockingasync");
    let store = open(&url, &table, Duration::ZERO)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let err = store.find("t").expect_err("inside a runtime");
        assert!(matches!(err, Error::BlockingInAsync), "{err:?}");
        let err = PgStore::builder(&url)
            .table(&table)
            .build_blocking()
            .expect_err("inside a runtime");
        assert!(matches!(err, Error::BlockingInAsync), "{err:?}");
        // The async store underneath works here.
        assert_eq!(store.as_async().find("t").await?, None);
        let client = support::raw_client(&url).await?;
        support::drop_table(&client, &table).await?;
        // Dropping it inside a runtime does not panic.
        drop(store);
        Ok(())
    })
}

#[test]
fn blocking_store_has_the_session_lifecycle_of_the_async_one() -> TestResult {
    let Some(url) = support::url("blocking_store_has_the_session_lifecycle_of_the_async_one")
    else {
        return Ok(());
    };
    let table = support::unique_table("blockinglife");
    let store = open(&url, &table, Duration::ZERO)?;
    let later = SystemTime::now() + HOUR;
    let much_later = later + HOUR;

    // update and touch: only over a live session.
    assert!(!store.update("gone", b"x", later)?);
    assert!(!store.touch("gone", later)?);
    assert_eq!(store.find("gone")?, None);
    store.commit("plain", b"v1", later)?;
    assert!(store.update("plain", b"v2", later)?);
    assert!(store.touch("plain", much_later)?);
    let found = store.find_with_expiry("plain")?.expect("plain is live");
    assert_eq!(found.data, b"v2");
    let moved = found.expiry.duration_since(later)?;
    assert!(moved > HOUR - Duration::from_secs(1), "{moved:?}");

    // Owners: create, commit and update with one; list, count, revoke.
    assert!(store.create_owned("a1", b"a", later, Some("alice"))?);
    assert!(!store.create_owned("a1", b"again", later, Some("alice"))?);
    store.commit_owned("a2", b"a", later, Some("alice"))?;
    assert!(store.update_owned("plain", b"v3", later, Some("alice"))?);
    store.commit_owned("b1", b"b", later, Some("bob"))?;
    assert_eq!(store.count_owner("alice")?, 3);
    let mut listed: Vec<_> = store
        .list_owner("alice", 10)?
        .into_iter()
        .map(|l| l.token)
        .collect();
    listed.sort();
    assert_eq!(listed, ["a1", "a2", "plain"]);
    let err = store
        .commit_owned("bad", b"x", later, Some(""))
        .expect_err("an empty owner is refused");
    assert!(matches!(err, Error::InvalidOwner(_)), "{err:?}");

    // Log out everywhere: revoked stays revoked.
    assert_eq!(store.revoke_owner("alice")?, 3);
    assert_eq!(store.count_owner("alice")?, 0);
    assert_eq!(store.find("a1")?, None);
    assert!(!store.update("a2", b"late save", later)?);
    assert!(!store.touch("plain", later)?);
    assert_eq!(store.find("a2")?, None);
    assert_eq!(store.count_owner("bob")?, 1);

    // Bulk load and export, with and without owners.
    let entry = |t: &str| pgstore::Entry::new(t.into(), pgstore::Session::new(t.into(), later));
    store.commit_many(&[entry("m1"), entry("m2")])?;
    store.commit_many_owned(&[(entry("m3"), Some("carol".into())), (entry("m4"), None)])?;
    let page = store.export_page("", 100)?;
    let keys: Vec<_> = page.iter().map(|e| e.token.as_str()).collect();
    assert_eq!(keys, ["b1", "m1", "m2", "m3", "m4"]);
    assert_eq!(page[1].session.data, b"m1");
    assert_eq!(store.export_page("m3", 100)?.len(), 1);
    let owned = store.export_page_owned("", 100)?;
    let owners: Vec<_> = owned.iter().map(|(_, o)| o.as_deref()).collect();
    assert_eq!(owners, [Some("bob"), None, None, Some("carol"), None]);

    // Maintenance and settings.
    store.vacuum()?;
    let db_now = store.now()?;
    let skew = db_now
        .duration_since(SystemTime::now())
        .or_else(|e| Ok::<_, std::time::SystemTimeError>(e.duration()))?;
    assert!(skew < Duration::from_secs(60), "{skew:?}");
    assert_eq!(store.table(), format!("\"{table}\""));
    assert_eq!(store.max_token_len(), store.as_async().max_token_len());
    assert_eq!(store.max_data_len(), store.as_async().max_data_len());

    // Close: every clone of the async store underneath is closed too.
    let clone = store.as_async().clone();
    store.close()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let err = clone.find("b1").await.expect_err("closed");
        assert!(matches!(err, Error::Closed), "{err:?}");
        // Closing again (through the clone) is fine.
        clone.close().await?;
        let client = support::raw_client(&url).await?;
        support::drop_table(&client, &table).await
    })
}
