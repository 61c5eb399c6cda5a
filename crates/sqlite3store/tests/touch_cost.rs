//! What `touch` saves over a full `commit` of a 4 KiB session: the WAL bytes
//! each writes (deterministic, asserted) and the time each takes (printed
//! only, never asserted; a smoke-sized run, not a benchmark).

mod common;
mod support;

use std::time::{Duration, Instant};

use common::Fixture;
use sqlite3store::Result;
use support::Rng;

const SESSIONS: usize = 100;
const DATA: usize = 4096;

/// Bytes that do not compress, different for each `seed`.
fn noise(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..DATA).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn touch_writes_less_than_a_full_commit_of_4_kib() -> Result<()> {
    let fx = Fixture::new();
    // No checkpoint during the run, so the WAL only grows.
    let store = fx.builder().checkpoint_pages(1_000_000).build()?;
    let wal = support::sidecar(&fx.path(), "-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let tokens: Vec<String> = (0..SESSIONS).map(|i| format!("session-{i:04}")).collect();
    let exp = fx.now() + Duration::from_secs(3600);
    for (i, token) in tokens.iter().enumerate() {
        store.commit(token, &noise(i as u64), exp)?;
    }
    let measure = |what: &str, op: &mut dyn FnMut(usize, &str) -> Result<()>| -> Result<u64> {
        let (before, started) = (wal_len(), Instant::now());
        for (i, token) in tokens.iter().enumerate() {
            op(i, token)?;
        }
        let took = started.elapsed() / SESSIONS as u32;
        let per_op = (wal_len() - before) / SESSIONS as u64;
        println!("sqlite {what:<28} {per_op:>6} WAL bytes/op  {took:>10.1?}/op");
        Ok(per_op)
    };
    let later = exp + Duration::from_secs(60);
    let changed = measure("commit (new 4 KiB data)", &mut |i, t| {
        store.commit(t, &noise(i as u64 + 1_000), later)
    })?;
    let same = measure("commit (same 4 KiB data)", &mut |i, t| {
        store.commit(t, &noise(i as u64 + 1_000), later + Duration::from_secs(60))
    })?;
    let touched = measure("touch", &mut |_, t| {
        assert!(store.touch(t, later + Duration::from_secs(120))?);
        Ok(())
    })?;
    assert!(
        touched < changed,
        "touch wrote {touched} WAL bytes/op, a commit of new data {changed}"
    );
    assert!(
        touched <= same,
        "touch wrote {touched}, a same-data commit {same}"
    );
    Ok(())
}
