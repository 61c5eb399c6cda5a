//! Every builder option at 0, 1 and its type's maximum: each opens a store
//! that works, or is refused with `Error::InvalidConfig`; none panics.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::Fixture;
use sqlite3store::{Builder, Durability, Error, Result, MIN_FILE_SIZE};

type Apply = Box<dyn Fn(Builder) -> Builder>;

/// (option = value, how to set it) for every option with a range.
fn cases() -> Vec<(String, Apply)> {
    let mut cases: Vec<(String, Apply)> = Vec::new();
    macro_rules! each {
        ($option:ident: $($value:expr),+) => {
            $(
                let value = $value;
                let mut name = format!("{} = {:?}", stringify!($option), value);
                name.truncate(60);
                cases.push((
                    name,
                    Box::new(move |b: Builder| b.$option(value.clone())),
                ));
            )+
        };
    }
    let durations = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];
    for d in durations {
        each!(cleanup_interval: d);
        each!(first_cleanup_delay: d);
        each!(busy_timeout: d);
    }
    each!(busy_timeout: Duration::from_millis(1 << 31));
    each!(cleanup_batch_size: 0, 1, usize::MAX);
    each!(max_token_len: 0, 1, usize::MAX);
    each!(max_data_len: 0, 1, usize::MAX);
    each!(readers: 0, 1, usize::MAX);
    each!(max_async_reads: 0, 1, usize::MAX);
    each!(max_async_writes: 0, 1, usize::MAX);
    each!(cache_size_kib: 0, 1, u32::MAX);
    each!(writer_cache_size_kib: 0, 1, u32::MAX);
    each!(mmap_size: 0, 1, u64::MAX);
    each!(checkpoint_pages: 0, 1, u32::MAX);
    each!(max_file_size: 0, 1, MIN_FILE_SIZE, u64::MAX);
    each!(durability: Durability::ProcessCrash, Durability::PowerLoss);
    each!(group_commit: false, true);
    each!(incremental_vacuum: false, true);
    each!(create_if_missing: false, true);
    each!(read_only: false, true);
    each!(hash_tokens: Vec::<u8>::new(), vec![0u8], vec![0xffu8; 1 << 16]);
    each!(table: String::new(), "t".to_owned(), "t".repeat(1 << 16));
    cases
}

/// Opens with the option and, if it opened, runs every kind of operation.
fn try_option(fx: &Fixture, apply: &Apply) -> Result<()> {
    let store = apply(fx.builder()).build()?;
    let later = fx.now() + Duration::from_secs(60);
    if !store.is_read_only() {
        store.commit("t", b"", later)?;
        assert!(!store.create("t", b"", later)?);
        assert_eq!(store.find("t")?, Some(Vec::new()));
        store.commit("g", b"", fx.now())?;
        // The cleanup thread (cleanup_interval = 1ns) may have removed it
        // first; either way it is gone afterwards.
        assert!(store.delete_expired()?.removed <= 1);
        assert_eq!(store.stats()?.expired, 0);
        assert!(store.delete("t")?);
        store.vacuum()?;
    }
    assert_eq!(store.find("t")?, None);
    store.stats()?;
    Ok(())
}

#[test]
fn every_option_at_zero_one_and_max_works_or_is_refused() -> Result<()> {
    let mut failures = Vec::new();
    for ((case, apply), existing) in cases()
        .into_iter()
        .flat_map(|case| [(case, true)])
        .chain(cases().into_iter().map(|case| (case, false)))
    {
        let fx = Fixture::new();
        let case = if existing {
            // A store to open: creating may be off, or the store read-only.
            drop(fx.builder().build()?);
            format!("{case} (existing file)")
        } else if case.starts_with("create_if_missing = false")
            || case.starts_with("read_only = true")
        {
            // Nothing to open: these must refuse a missing file.
            continue;
        } else {
            format!("{case} (new file)")
        };
        match catch_unwind(AssertUnwindSafe(|| try_option(&fx, &apply))) {
            Ok(Ok(())) => println!("{case}: works"),
            Ok(Err(Error::InvalidConfig(mut msg))) => {
                msg.truncate(100);
                println!("{case}: refused ({msg})");
            }
            Ok(Err(err)) => failures.push(format!("{case}: {}", sqlite3store::error_chain(&err))),
            Err(_) => failures.push(format!("{case}: panicked")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn out_of_range_values_are_clamped_as_documented() {
    let fx = Fixture::new();
    let b = fx
        .builder()
        .busy_timeout(Duration::MAX)
        .cache_size_kib(u32::MAX)
        .writer_cache_size_kib(u32::MAX)
        .mmap_size(u64::MAX);
    let shown = format!("{b:?}");
    for want in [
        "busy_timeout: 2147483.647s",
        "cache_size_kib: 2147483647",
        "writer_cache_size_kib: 2147483647",
        &format!("mmap_size: {}", i64::MAX),
    ] {
        assert!(shown.contains(want), "{want} not in {shown}");
    }
}
