//! README, Design: "group commit shares one fsync among concurrent commits".
//!
//! The observable is the WAL itself: every transaction ends with one commit
//! frame (a frame whose header holds the database size), and under
//! `Durability::PowerLoss` (`synchronous=FULL`) SQLite syncs the WAL once
//! per transaction, at that frame. So counting the valid commit frames the
//! writes added counts the transactions, and the fsyncs, they took. Many
//! concurrent commits must take fewer than one each; with
//! `group_commit(false)` the same count is exactly one per commit, which is
//! what shows the check can fail.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::Fixture;
use sqlite3store::{Durability, Result};

const THREADS: usize = 16;
const COMMITS_PER_THREAD: usize = 12;
const WRITES: usize = THREADS * COMMITS_PER_THREAD;

#[test]
fn concurrent_commits_share_transactions_and_so_fsyncs() -> Result<()> {
    let (writes, transactions) = transactions_for(true)?;
    eprintln!("group commit on: {writes} commits in {transactions} transactions");
    assert!(transactions >= 1, "the commits wrote nothing to the WAL");
    assert!(
        transactions < writes,
        "{writes} concurrent commits took {transactions} transactions (fsyncs): none shared"
    );
    Ok(())
}

#[test]
fn without_group_commit_every_commit_is_its_own_transaction() -> Result<()> {
    // The control: the same count sees one transaction per commit when
    // group commit is off, so the test above fails if batching stops.
    let (writes, transactions) = transactions_for(false)?;
    eprintln!("group commit off: {writes} commits in {transactions} transactions");
    assert_eq!(transactions, writes);
    Ok(())
}

/// Runs [`WRITES`] commits from [`THREADS`] threads started together on a
/// `PowerLoss` store, and returns how many commits and how many
/// transactions (commit frames) they made.
fn transactions_for(group_commit: bool) -> Result<(u64, u64)> {
    let fx = Fixture::new();
    let store = fx
        .builder()
        .durability(Durability::PowerLoss)
        .group_commit(group_commit)
        // Far above what the test writes: the WAL never starts over, so
        // every commit frame stays in it to be counted.
        .checkpoint_pages(1_000_000)
        .build()?;
    let expiry = fx.now() + Duration::from_secs(3600);
    // A first commit, so the WAL exists with its header.
    store.commit("warm-up", b"x", expiry)?;
    let wal = fx.dir.path().join("sessions.db-wal");
    let before = commit_frames(&wal)?;

    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || -> Result<()> {
                start.wait();
                for i in 0..COMMITS_PER_THREAD {
                    let token = format!("t{t}-{i}");
                    store.commit(&token, token.as_bytes(), expiry)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a committing thread panicked")?;
    }

    let after = commit_frames(&wal)?;
    assert_eq!(
        after.salts, before.salts,
        "the WAL started over during the test; the count would be wrong"
    );
    assert_eq!(fx.rows(), WRITES as i64 + 1, "every commit is stored");
    store.close()?;
    Ok((WRITES as u64, after.commits - before.commits))
}

/// What the WAL holds now: its header's salts (they change when it starts
/// over) and how many valid commit frames follow.
struct WalCount {
    salts: [u32; 2],
    commits: u64,
}

/// Counts the commit frames SQLite would replay from the WAL at `path`:
/// frames whose salts match the header and whose running checksum holds,
/// up to the first that does not.
fn commit_frames(path: &Path) -> Result<WalCount> {
    let wal = std::fs::read(path)?;
    assert!(
        wal.len() >= 32,
        "the WAL has no header ({} bytes)",
        wal.len()
    );
    let be = |at: usize| u32::from_be_bytes([wal[at], wal[at + 1], wal[at + 2], wal[at + 3]]);
    let magic = be(0);
    assert!(
        magic == 0x377f_0682 || magic == 0x377f_0683,
        "not a WAL file: magic {magic:#x}"
    );
    let big_endian = magic & 1 == 1;
    let page_size = be(8) as usize;
    let salts = [be(16), be(20)];
    let mut sum = checksum((0, 0), &wal[..24], big_endian);
    assert_eq!(sum, (be(24), be(28)), "the WAL header's checksum is wrong");
    let frame_len = 24 + page_size;
    let mut commits = 0;
    let mut at = 32;
    while at + frame_len <= wal.len() {
        if [be(at + 8), be(at + 12)] != salts {
            break;
        }
        sum = checksum(sum, &wal[at..at + 8], big_endian);
        sum = checksum(sum, &wal[at + 24..at + frame_len], big_endian);
        if sum != (be(at + 16), be(at + 20)) {
            break;
        }
        if be(at + 4) != 0 {
            commits += 1;
        }
        at += frame_len;
    }
    Ok(WalCount { salts, commits })
}

/// SQLite's WAL checksum over `bytes` (a multiple of 8), continuing `sum`.
fn checksum(mut sum: (u32, u32), bytes: &[u8], big_endian: bool) -> (u32, u32) {
    let word = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in bytes.chunks_exact(8) {
        sum.0 = sum.0.wrapping_add(word(&pair[..4])).wrapping_add(sum.1);
        sum.1 = sum.1.wrapping_add(word(&pair[4..])).wrapping_add(sum.0);
    }
    sum
}
