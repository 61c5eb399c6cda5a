//! Many threads at once: nothing lost, nothing mixed up, no lock errors.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::Fixture;
use sqlite3store::{Result, SqliteStore};

const MINUTE: Duration = Duration::from_secs(60);

fn data_for(token: &str) -> Vec<u8> {
    token.bytes().rev().chain(*b"|payload").collect()
}

fn commits_from_many_threads(group_commit: bool) -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().group_commit(group_commit).build()?;
    let exp = fx.now() + MINUTE;
    let threads = 16;
    let per_thread = 100;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            thread::spawn(move || -> Result<()> {
                barrier.wait();
                for i in 0..per_thread {
                    let token = format!("t{t}-{i}");
                    store.commit(&token, &data_for(&token), exp)?;
                    // Read-your-write, through the reader pool.
                    assert_eq!(store.find(&token)?, Some(data_for(&token)));
                    if i % 10 == 9 {
                        assert!(store.delete(&token)?);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    let all = store.all()?;
    assert_eq!(all.len(), threads * per_thread * 9 / 10);
    for (token, data) in &all {
        assert_eq!(data, &data_for(token));
    }
    Ok(())
}

#[test]
fn commits_from_many_threads_with_group_commit() -> Result<()> {
    commits_from_many_threads(true)
}

#[test]
fn commits_from_many_threads_with_a_plain_writer_mutex() -> Result<()> {
    commits_from_many_threads(false)
}

#[test]
fn sixty_four_workers_see_no_errors() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().readers(4).build()?;
    let exp = fx.now() + MINUTE;
    for i in 0..200 {
        store.commit(&format!("pre{i}"), &data_for(&format!("pre{i}")), exp)?;
    }
    let handles: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || -> Result<()> {
                for i in 0..40_usize {
                    let hit = format!("pre{}", (t * 7 + i) % 200);
                    assert_eq!(store.find(&hit)?, Some(data_for(&hit)));
                    if i % 4 == 0 {
                        let token = format!("w{t}-{i}");
                        store.commit(&token, &data_for(&token), exp)?;
                    }
                    if i % 20 == 0 {
                        store.delete(&format!("w{t}-{}", i.saturating_sub(4)))?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    Ok(())
}

#[test]
fn racing_writers_to_one_token_leave_one_whole_value() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().build()?;
    let exp = fx.now() + MINUTE;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || -> Result<()> {
                for i in 0..50 {
                    store.commit("shared", format!("{t}:{i}").as_bytes(), exp)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    let last = String::from_utf8(store.find("shared")?.expect("present")).expect("utf8");
    assert!(
        last.ends_with(":49"),
        "the final value is some writer's last write, got {last}"
    );
    Ok(())
}

#[test]
fn clones_share_one_store() -> Result<()> {
    let fx = Fixture::new();
    let a: SqliteStore = fx.builder().build()?;
    let b = a.clone();
    a.commit("t", b"d", fx.now() + MINUTE)?;
    assert_eq!(b.find("t")?, Some(b"d".to_vec()));
    drop(a);
    assert_eq!(b.find("t")?, Some(b"d".to_vec()));
    Ok(())
}

#[test]
fn a_second_store_on_the_same_file_waits_instead_of_failing() -> Result<()> {
    // Two stores in one process behave like two processes: each has its own
    // writer; BEGIN IMMEDIATE and busy_timeout make them take turns.
    let fx = Fixture::new();
    let a = fx.builder().build()?;
    let b = fx.builder().build()?;
    let exp = fx.now() + MINUTE;
    let handles: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .flat_map(|(s, store)| {
            (0..4).map(move |t| {
                let store = store.clone();
                thread::spawn(move || -> Result<()> {
                    for i in 0..50 {
                        store.commit(&format!("s{s}t{t}i{i}"), b"x", exp)?;
                    }
                    Ok(())
                })
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread panicked")?;
    }
    assert_eq!(a.all()?.len(), 400);
    assert_eq!(b.all()?.len(), 400);
    Ok(())
}

/// README, Design: "If a batch fails, each write is retried alone, so one
/// bad write never fails its neighbours." A write too large for
/// `max_file_size` queues behind a held lock together with small ones, so
/// they share a group; the small ones must all land, the large one alone
/// fails.
#[test]
fn a_failing_write_never_fails_the_writes_grouped_with_it() -> Result<()> {
    let fx = Fixture::new();
    let store = fx.builder().max_file_size(256 * 1024).build()?;
    let exp = fx.now() + MINUTE;
    // Hold the write lock so every commit below queues behind it.
    let raw = fx.raw();
    raw.execute_batch("BEGIN IMMEDIATE")?;
    let spawn_commit = |token: String, data: Vec<u8>| {
        let store = store.clone();
        thread::spawn(move || store.commit(&token, &data, exp))
    };
    // The first leads (waiting for the lock); the rest queue as one group.
    let lead = spawn_commit("lead".into(), data_for("lead"));
    thread::sleep(Duration::from_millis(100));
    let big = spawn_commit("big".into(), vec![7; 512 * 1024]);
    let small: Vec<_> = (0..16)
        .map(|i| {
            let token = format!("small{i}");
            let data = data_for(&token);
            (token.clone(), spawn_commit(token, data))
        })
        .collect();
    // Lets them queue; not a timing assertion (had they not queued, the
    // test would check less, never fail wrongly).
    thread::sleep(Duration::from_millis(200));
    raw.execute_batch("COMMIT")?;
    lead.join().expect("thread panicked")?;
    let big = big.join().expect("thread panicked");
    assert!(
        matches!(big, Err(sqlite3store::Error::DiskFull(_))),
        "the oversized write fails alone with DiskFull, got {big:?}"
    );
    for (token, handle) in small {
        handle.join().expect("thread panicked")?;
        assert_eq!(store.find(&token)?, Some(data_for(&token)));
    }
    assert_eq!(store.find("big")?, None);
    Ok(())
}
