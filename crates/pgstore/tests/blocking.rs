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
