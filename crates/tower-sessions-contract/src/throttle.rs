//! Saves that change nothing: which ones [`ContractStore`](crate::ContractStore)
//! skips, and the bounded memory of what each session's row holds that it
//! decides by.
//!
//! A save may skip its write when this process knows the row already holds
//! the same data, and an expiry at most a set fraction of the session's
//! lifetime short of the save's. What "knows" means is kept honest by
//! stamps: every change to the memory takes the next number of a counter, a
//! load remembers what it read only if nothing changed the entry since
//! before its read, and a write marks its entry unknown until it finishes.
//! So an entry is always something the row held after this process's last
//! write to it began; a load that read the row before a write of this
//! process landed never hides that write.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::mem;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// One million: thresholds are kept in parts per million of the lifetime,
/// so the comparison is integer arithmetic.
const PPM: u64 = 1_000_000;

/// A row's data (by digest) and expiry, as this process last saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    digest: u64,
    expiry: SystemTime,
}

/// A point in the memory's history, taken before a load reads the row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    stamp: u64,
    rotations: u64,
}

/// A write in progress, from [`Throttle::begin_write`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writing {
    stamp: u64,
}

/// The decision and the memory behind it; one per store, shared by its
/// clones.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// How far an unchanged save's expiry may move before it is written,
    /// in parts per million of the session's lifetime (1 to 999,999).
    threshold_ppm: u64,
    /// Keys the digest: a digest is unpredictable without it, so no one
    /// can pick data whose digest matches other data's.
    digests: RandomState,
    memory: Mutex<Memory>,
    /// Each generation's size limit: half the capacity.
    half: usize,
}

/// One entry: what the row holds, or `None` while unknown (a write in
/// progress or failed, a row in another layout).
#[derive(Debug, Clone, Copy)]
struct Entry {
    stored: Option<Stored>,
    /// The counter's value when the entry was last changed.
    stamp: u64,
}

/// Two generations: new entries go to `young`; when it is full it becomes
/// `old` and the previous `old` is dropped. So at most twice `half` entries
/// are kept, and an entry used again since the last turn survives the next.
#[derive(Debug, Default)]
struct Memory {
    young: HashMap<i128, Entry>,
    old: HashMap<i128, Entry>,
    /// The last stamp handed out.
    stamp: u64,
    /// How many times `young` became `old`.
    rotations: u64,
}

impl Memory {
    fn get(&self, id: i128) -> Option<Entry> {
        self.young.get(&id).or_else(|| self.old.get(&id)).copied()
    }

    fn set(&mut self, id: i128, stored: Option<Stored>, half: usize) -> u64 {
        self.stamp += 1;
        let entry = Entry {
            stored,
            stamp: self.stamp,
        };
        if self.young.len() >= half && !self.young.contains_key(&id) {
            self.old = mem::take(&mut self.young);
            self.rotations += 1;
        }
        self.young.insert(id, entry);
        self.stamp
    }
}

impl Throttle {
    /// A throttle that writes an unchanged save once its expiry moved by
    /// more than `threshold_ppm` millionths of the lifetime, remembering at
    /// most `capacity` sessions; `None` when either is too small to skip
    /// anything (every save writes).
    pub(crate) fn new(threshold_ppm: u32, capacity: usize) -> Option<Self> {
        let half = capacity / 2;
        (threshold_ppm > 0 && half > 0).then(|| Self {
            threshold_ppm: u64::from(threshold_ppm).min(PPM - 1),
            digests: RandomState::new(),
            memory: Mutex::default(),
            half,
        })
    }

    /// The digest of a record's encoded data.
    pub(crate) fn digest(&self, data: &[u8]) -> u64 {
        self.digests.hash_one(data)
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Every change to the memory is one insert or swap, complete or not
        // begun: a panic elsewhere cannot leave it half-changed.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a save of data with `digest` and `expiry` must write, at
    /// `now`: unless the row holds that data and an expiry at most the
    /// threshold's share of the lifetime (`expiry - now`) earlier than
    /// `expiry`, as far as this process knows. A save that moves the expiry
    /// earlier always writes.
    pub(crate) fn must_write(
        &self,
        id: i128,
        digest: u64,
        expiry: SystemTime,
        now: SystemTime,
    ) -> bool {
        let Some(stored) = self.memory().get(id).and_then(|e| e.stored) else {
            return true;
        };
        if stored.digest != digest {
            return true;
        }
        let Ok(moved) = expiry.duration_since(stored.expiry) else {
            return true;
        };
        let lifetime = expiry.duration_since(now).unwrap_or(Duration::ZERO);
        moved.as_nanos() * u128::from(PPM) > lifetime.as_nanos() * u128::from(self.threshold_ppm)
    }

    /// Taken before a load reads the row; see [`loaded`](Self::loaded).
    pub(crate) fn ticket(&self) -> Ticket {
        let memory = self.memory();
        Ticket {
            stamp: memory.stamp,
            rotations: memory.rotations,
        }
    }

    /// Remembers what a load read, unless the entry changed since its
    /// `ticket` (a write of this process may have landed after the read).
    /// `stored` is `None` for a row whose data bytes cannot be compared.
    pub(crate) fn loaded(&self, id: i128, ticket: Ticket, stored: Option<Stored>) {
        let mut memory = self.memory();
        let unchanged = match memory.get(id) {
            Some(entry) => entry.stamp <= ticket.stamp,
            // Gone since (a turn of the generations) may have been anything.
            None => memory.rotations == ticket.rotations,
        };
        if unchanged && stored.is_some() {
            memory.set(id, stored, self.half);
        }
    }

    /// Marks the session unknown while a write is in progress; pass the
    /// result to [`written`](Self::written).
    pub(crate) fn begin_write(&self, id: i128) -> Writing {
        Writing {
            stamp: self.memory().set(id, None, self.half),
        }
    }

    /// Remembers what a write stored (`None`: nothing, or not known), when
    /// no other write of this session began meanwhile; otherwise which one
    /// landed last is not known, and neither is the row.
    pub(crate) fn written(&self, id: i128, writing: Writing, stored: Option<Stored>) {
        let mut memory = self.memory();
        let alone = memory
            .get(id)
            .is_some_and(|entry| entry.stamp == writing.stamp);
        memory.set(id, stored.filter(|_| alone), self.half);
    }

    /// How many sessions are remembered (known or not).
    #[cfg(test)]
    fn len(&self) -> usize {
        let memory = self.memory();
        memory.young.len() + memory.old.len()
    }
}

impl Stored {
    pub(crate) fn new(digest: u64, expiry: SystemTime) -> Self {
        Self { digest, expiry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn throttle(ppm: u32, capacity: usize) -> Throttle {
        Throttle::new(ppm, capacity).expect("a throttle")
    }

    fn remember(t: &Throttle, id: i128, stored: Stored) {
        let ticket = t.ticket();
        t.loaded(id, ticket, Some(stored));
    }

    #[test]
    fn too_small_a_threshold_or_capacity_is_no_throttle() {
        assert!(Throttle::new(0, 1000).is_none());
        assert!(Throttle::new(10_000, 1).is_none());
        assert!(Throttle::new(1, 2).is_some());
    }

    #[test]
    fn skips_only_unchanged_data_within_the_threshold() {
        // 1%: an hour's lifetime allows 36 s.
        let t = throttle(10_000, 100);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let stored = Stored::new(t.digest(b"data"), now + HOUR);
        remember(&t, 1, stored);
        let d = t.digest(b"data");
        let at = |secs| now + Duration::from_secs(secs);
        assert!(!t.must_write(1, d, at(3600), now), "same expiry");
        assert!(!t.must_write(1, d, at(3600 + 36), at(36)), "moved by 1%");
        assert!(t.must_write(1, d, at(3600 + 37), at(37)), "moved past 1%");
        assert!(t.must_write(1, d, at(3599), now), "moved earlier");
        assert!(
            t.must_write(1, t.digest(b"other"), at(3600), now),
            "changed"
        );
        assert!(t.must_write(2, d, at(3600), now), "never seen");
        // An expiry already past has no lifetime: only the same one skips.
        assert!(!t.must_write(1, d, at(3600), at(4000)));
        assert!(t.must_write(1, d, at(3601), at(4000)));
    }

    #[test]
    fn a_load_that_raced_a_write_is_not_remembered() {
        let t = throttle(10_000, 100);
        let now = SystemTime::UNIX_EPOCH + HOUR;
        let old = Stored::new(t.digest(b"old"), now + HOUR);
        let new = Stored::new(t.digest(b"new"), now + HOUR);
        // The load reads the old row; the write lands and is remembered;
        // then the load's result arrives.
        let ticket = t.ticket();
        let writing = t.begin_write(1);
        t.written(1, writing, Some(new));
        t.loaded(1, ticket, Some(old));
        assert!(t.must_write(1, old.digest, old.expiry, now));
        assert!(!t.must_write(1, new.digest, new.expiry, now));

        // The load began before the write and ends while it is in flight:
        // not remembered; the write is.
        let ticket = t.ticket();
        let writing = t.begin_write(2);
        t.loaded(2, ticket, Some(old));
        assert!(t.must_write(2, old.digest, old.expiry, now));
        t.written(2, writing, Some(new));
        assert!(!t.must_write(2, new.digest, new.expiry, now));

        // The load began after the write did, and read the row before the
        // write landed: remembered for now, but the write's end finds its
        // mark gone and knows nothing.
        let writing = t.begin_write(3);
        let ticket = t.ticket();
        t.loaded(3, ticket, Some(old));
        t.written(3, writing, Some(new));
        assert!(t.must_write(3, old.digest, old.expiry, now));
        assert!(t.must_write(3, new.digest, new.expiry, now));
    }

    #[test]
    fn overlapping_writes_leave_the_session_unknown() {
        let t = throttle(10_000, 100);
        let now = SystemTime::UNIX_EPOCH + HOUR;
        let a = Stored::new(t.digest(b"a"), now + HOUR);
        let b = Stored::new(t.digest(b"b"), now + HOUR);
        let first = t.begin_write(1);
        let second = t.begin_write(1);
        t.written(1, second, Some(b));
        t.written(1, first, Some(a));
        assert!(t.must_write(1, a.digest, a.expiry, now));
        assert!(t.must_write(1, b.digest, b.expiry, now));
        // The next write alone is remembered again.
        let third = t.begin_write(1);
        t.written(1, third, Some(b));
        assert!(!t.must_write(1, b.digest, b.expiry, now));
    }

    /// What the default memory's size in the docs is made of.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_entry_takes_48_bytes() {
        assert!(std::mem::size_of::<(i128, Entry)>() <= 48);
    }

    #[test]
    fn stays_bounded_and_keeps_what_is_used() {
        const CAPACITY: usize = 1000;
        let t = throttle(10_000, CAPACITY);
        let now = SystemTime::UNIX_EPOCH + HOUR;
        let stored = Stored::new(t.digest(b"x"), now + HOUR);
        for id in 0..100_000 {
            remember(&t, id, stored);
            // One session is used all along.
            remember(&t, -1, stored);
            assert!(t.len() <= CAPACITY);
        }
        assert!(t.len() >= CAPACITY / 2);
        assert!(!t.must_write(-1, stored.digest, stored.expiry, now));
        assert!(!t.must_write(99_999, stored.digest, stored.expiry, now));
        assert!(
            t.must_write(0, stored.digest, stored.expiry, now),
            "forgotten"
        );
        // Writes are bounded alike.
        for id in 100_000..200_000 {
            let writing = t.begin_write(id);
            t.written(id, writing, Some(stored));
            assert!(t.len() <= CAPACITY);
        }
    }

    #[test]
    fn a_load_across_a_turn_of_the_generations_is_not_remembered() {
        let t = throttle(10_000, 4);
        let now = SystemTime::UNIX_EPOCH + HOUR;
        let stored = Stored::new(t.digest(b"x"), now + HOUR);
        let ticket = t.ticket();
        for id in 10..20 {
            remember(&t, id, stored);
        }
        t.loaded(1, ticket, Some(stored));
        assert!(t.must_write(1, stored.digest, stored.expiry, now));
    }
}
