//! README, Design: "Bounded memory. Page caches take at most `readers x
//! cache_size_kib + writer_cache_size_kib` ..., whatever the table size."
//!
//! Measured as the process's resident memory (`VmRSS`): writing and then
//! reading back a table many times the size of the caches must grow it by
//! no more than the caches plus a fixed allowance (allocator and thread
//! slack). The same routine with caches larger than the table is the
//! control: it grows past that allowance, so the check can fail. The only
//! test in this file, so no other test's memory shows in the count.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlite3store::{Result, SqliteStore};

/// Sessions written, and their size: about 28 MiB of data, more in pages.
const SESSIONS: usize = 7_000;
const DATA_LEN: usize = 4_000;
const READERS: usize = 2;
const WRITERS: usize = 4;
/// What resident memory may grow by besides the caches: thread stacks
/// touched, allocator arenas, prepared statements.
const ALLOWANCE_KIB: u64 = 12 * 1024;

#[test]
fn page_caches_stay_within_their_bound_whatever_the_table_size() -> Result<()> {
    if resident_kib().is_none() {
        let why = "no /proc/self/status VmRSS here; cannot measure resident memory";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED page_caches_stay_within_their_bound_whatever_the_table_size: {why}");
        return Ok(());
    }
    // Bounded: 2 x 256 KiB + 512 KiB = 1 MiB of page caches.
    let (grown, file) = growth(256, 512)?;
    let bound = READERS as u64 * 256 + 512;
    eprintln!(
        "caches bounded at {bound} KiB: resident grew {grown} KiB over a {} KiB file",
        file / 1024
    );
    assert!(
        file / 1024 > 2 * (bound + ALLOWANCE_KIB),
        "the table ({} KiB) must dwarf the bound for the test to mean anything",
        file / 1024
    );
    assert!(
        grown <= bound + ALLOWANCE_KIB,
        "resident memory grew {grown} KiB, over the {bound} KiB of page caches + \
         {ALLOWANCE_KIB} KiB allowance"
    );

    // The control: caches big enough for the whole table do hold it.
    let (grown, _) = growth(1024 * 1024, 1024 * 1024)?;
    eprintln!("caches of 1 GiB each: resident grew {grown} KiB");
    assert!(
        grown > bound + ALLOWANCE_KIB,
        "with unbounded caches resident memory grew only {grown} KiB: the measure cannot fail"
    );
    Ok(())
}

/// Opens a store with these caches, warms it up, then writes [`SESSIONS`]
/// distinct sessions and reads each back from every reader; returns how
/// much resident memory grew after the warm-up, and the file's size.
fn growth(cache_kib: u32, writer_cache_kib: u32) -> Result<(u64, u64)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::builder(dir.path().join("s.db"))
        .cleanup_interval(Duration::ZERO)
        .readers(READERS)
        .cache_size_kib(cache_kib)
        .writer_cache_size_kib(writer_cache_kib)
        .build()?;
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    let data = Arc::new(vec![0x5a_u8; DATA_LEN]);
    // Every thread, statement and buffer used later exists before the
    // baseline: only what the table's size could add is measured.
    write(&store, &data, expiry, 0..WRITERS * 20)?;
    read(&store, WRITERS * 20)?;
    let baseline = resident_kib().unwrap_or(0);

    write(&store, &data, expiry, 0..SESSIONS)?;
    read(&store, SESSIONS)?;
    read(&store, SESSIONS)?;
    let grown = resident_kib().unwrap_or(0).saturating_sub(baseline);
    let file = std::fs::metadata(dir.path().join("s.db"))?.len()
        + std::fs::metadata(dir.path().join("s.db-wal")).map_or(0, |m| m.len());
    assert_eq!(store.stats()?.active, SESSIONS as u64);
    store.close()?;
    Ok((grown, file))
}

/// Commits sessions `tokens` from [`WRITERS`] threads.
fn write(
    store: &SqliteStore,
    data: &Arc<Vec<u8>>,
    expiry: SystemTime,
    tokens: std::ops::Range<usize>,
) -> Result<()> {
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, data, tokens) = (store.clone(), Arc::clone(data), tokens.clone());
            std::thread::spawn(move || -> Result<()> {
                for i in tokens.filter(|i| i % WRITERS == w) {
                    store.commit(&format!("session-{i:06}"), &data, expiry)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writing thread panicked")?;
    }
    Ok(())
}

/// Finds sessions `0..count`, each from all [`READERS`] threads at once.
fn read(store: &SqliteStore, count: usize) -> Result<()> {
    let threads: Vec<_> = (0..READERS)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<()> {
                for i in 0..count {
                    let found = store.find(&format!("session-{i:06}"))?;
                    assert_eq!(found.map(|d| d.len()), Some(DATA_LEN), "session {i}");
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a reading thread panicked")?;
    }
    Ok(())
}

/// The process's resident memory, in KiB (Linux's `VmRSS`).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
