//! Random operations on the public API, checked against an in-memory model.
//!
//! Every input runs on one of two stores kept for the whole fuzzing process
//! (plain tokens, or tokens hashed at rest), emptied at the start of each
//! input, with a manual clock. Checked after every operation: no panic;
//! invalid input gets the documented error and changes nothing; a committed
//! token whose expiry is in the future is found with the same data and
//! expiry; deletes, cleanup, `all`, `list` and `stats` agree with the model.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sqlite3store::{julian_day, Error, Listed, ManualClock, Session, SqliteStore};

const MAX_TOKEN_LEN: usize = 64;
const MAX_DATA_LEN: usize = 2048;
const MAX_OPS: usize = 64;
/// Where the clock stands at the start of every input (2023-11-14).
const START_UNIX_SECS: u64 = 1_700_000_000;

#[derive(Arbitrary, Debug)]
enum Token {
    /// Any string: empty, NUL, control characters, any Unicode.
    New(String),
    /// One used earlier in this input, so operations meet on a token.
    Recent(u8),
    /// `ch` repeated: around the length limit and far over it.
    Long(char, u16),
}

#[derive(Arbitrary, Debug)]
enum Expiry {
    After {
        secs: u32,
        millis: u16,
    },
    Before {
        secs: u32,
        millis: u16,
    },
    Now,
    /// Anywhere SystemTime reaches, far past and far future included.
    Unix {
        secs: i64,
        nanos: u32,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Commit {
        token: Token,
        data: Vec<u8>,
        expiry: Expiry,
    },
    Create {
        token: Token,
        data: Vec<u8>,
        expiry: Expiry,
    },
    Find {
        token: Token,
    },
    FindWithExpiry {
        token: Token,
    },
    Delete {
        token: Token,
    },
    All,
    List {
        limit: u8,
    },
    DeleteExpired,
    Stats,
    Advance {
        secs: u32,
        millis: u16,
    },
    SetClock {
        unix_secs: i64,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    hashed: bool,
    ops: Vec<Op>,
}

struct Fixture {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    plain: SqliteStore,
    hashed: SqliteStore,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(start()));
        let open = |name: &str, hashed: bool| {
            let mut b = SqliteStore::builder(dir.path().join(name))
                .cleanup_interval(Duration::ZERO)
                .max_token_len(MAX_TOKEN_LEN)
                .max_data_len(MAX_DATA_LEN)
                .clock(clock.clone());
            if hashed {
                b = b.hash_tokens(b"fuzz key");
            }
            b.build().expect("open store")
        };
        Fixture {
            plain: open("plain.db", false),
            hashed: open("hashed.db", true),
            clock,
            _dir: dir,
        }
    })
}

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_UNIX_SECS)
}

fn time_at(unix_secs: i64, nanos: u32) -> Option<SystemTime> {
    let nanos = Duration::from_nanos(u64::from(nanos % 1_000_000_000));
    if unix_secs >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(unix_secs as u64))?
            .checked_add(nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(unix_secs.unsigned_abs()))?
            .checked_add(nanos)
    }
}

/// The model: raw token to (data, stored Julian day).
type Model = HashMap<String, (Vec<u8>, f64)>;

struct Run<'a> {
    store: &'a SqliteStore,
    clock: &'a ManualClock,
    hashed: bool,
    model: Model,
    tokens: Vec<String>,
}

impl Run<'_> {
    fn now(&self) -> f64 {
        julian_day::from_system_time(self.clock.get())
    }

    fn token(&mut self, token: Token) -> String {
        let t = match token {
            Token::New(s) => s,
            Token::Recent(i) if !self.tokens.is_empty() => {
                self.tokens[usize::from(i) % self.tokens.len()].clone()
            }
            Token::Recent(_) => "first".to_owned(),
            Token::Long(ch, n) => std::iter::repeat_n(ch, usize::from(n)).collect(),
        };
        if self.tokens.len() < 32 {
            self.tokens.push(t.clone());
        }
        t
    }

    fn expiry(&self, expiry: Expiry) -> Option<SystemTime> {
        let now = self.clock.get();
        let ms = |secs: u32, millis: u16| {
            Duration::from_secs(u64::from(secs)) + Duration::from_millis(u64::from(millis))
        };
        match expiry {
            Expiry::After { secs, millis } => now.checked_add(ms(secs, millis)),
            Expiry::Before { secs, millis } => now.checked_sub(ms(secs, millis)),
            Expiry::Now => Some(now),
            Expiry::Unix { secs, nanos } => time_at(secs, nanos),
        }
    }

    fn active(&self, token: &str) -> Option<&(Vec<u8>, f64)> {
        let now = self.now();
        self.model.get(token).filter(|(_, exp)| *exp > now)
    }

    /// The error `commit` and `create` must return, if any.
    fn expected_rejection(token: &str, data: &[u8]) -> Option<(usize, usize, u8)> {
        if token.is_empty() {
            Some((0, 0, 0))
        } else if token.len() > MAX_TOKEN_LEN {
            Some((token.len(), MAX_TOKEN_LEN, 1))
        } else if data.len() > MAX_DATA_LEN {
            Some((data.len(), MAX_DATA_LEN, 2))
        } else {
            None
        }
    }

    fn check_rejection(err: &Error, want: (usize, usize, u8)) {
        match (err, want) {
            (Error::EmptyToken, (_, _, 0)) => {}
            (Error::TokenTooLong { len, max }, (l, m, 1)) if *len == l && *max == m => {}
            (Error::DataTooLarge { len, max }, (l, m, 2)) if *len == l && *max == m => {}
            _ => panic!("wrong error {err:?}, expected {want:?}"),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Commit {
                token,
                data,
                expiry,
            } => {
                let token = self.token(token);
                let Some(expiry) = self.expiry(expiry) else {
                    return;
                };
                let got = self.store.commit(&token, &data, expiry);
                match (got, Self::expected_rejection(&token, &data)) {
                    (Ok(()), None) => {
                        self.model
                            .insert(token, (data, julian_day::from_system_time(expiry)));
                    }
                    (Err(err), Some(want)) => Self::check_rejection(&err, want),
                    (got, want) => panic!("commit: got {got:?}, expected rejection {want:?}"),
                }
            }
            Op::Create {
                token,
                data,
                expiry,
            } => {
                let token = self.token(token);
                let Some(expiry) = self.expiry(expiry) else {
                    return;
                };
                let got = self.store.create(&token, &data, expiry);
                match (got, Self::expected_rejection(&token, &data)) {
                    (Ok(stored), None) => {
                        assert_eq!(stored, self.active(&token).is_none(), "create {token:?}");
                        if stored {
                            self.model
                                .insert(token, (data, julian_day::from_system_time(expiry)));
                        }
                    }
                    (Err(err), Some(want)) => Self::check_rejection(&err, want),
                    (got, want) => panic!("create: got {got:?}, expected rejection {want:?}"),
                }
            }
            Op::Find { token } => {
                let token = self.token(token);
                let got = self.store.find(&token).expect("find");
                let want = self.active(&token).map(|(data, _)| data.clone());
                assert_eq!(got, want, "find {token:?}");
            }
            Op::FindWithExpiry { token } => {
                let token = self.token(token);
                let got = self
                    .store
                    .find_with_expiry(&token)
                    .expect("find_with_expiry");
                let want = self.active(&token).map(|(data, exp)| {
                    Session::new(data.clone(), julian_day::to_system_time(*exp))
                });
                assert_eq!(got, want, "find_with_expiry {token:?}");
            }
            Op::Delete { token } => {
                let token = self.token(token);
                let got = self.store.delete(&token).expect("delete");
                // Expired rows not yet cleaned up are still there to delete.
                assert_eq!(got, self.model.remove(&token).is_some(), "delete {token:?}");
            }
            Op::All => {
                let got = self.store.all().expect("all");
                let now = self.now();
                let active: HashMap<&String, &Vec<u8>> = self
                    .model
                    .iter()
                    .filter(|(_, (_, exp))| *exp > now)
                    .map(|(t, (d, _))| (t, d))
                    .collect();
                assert_eq!(got.len(), active.len(), "all: count");
                if self.hashed {
                    assert!(got.keys().all(|k| is_hex64(k)), "all: keys are hashes");
                    let mut a: Vec<&Vec<u8>> = got.values().collect();
                    let mut b: Vec<&Vec<u8>> = active.values().copied().collect();
                    a.sort();
                    b.sort();
                    assert_eq!(a, b, "all: data");
                } else {
                    for (token, data) in &got {
                        assert_eq!(Some(data), active.get(token).copied(), "all: {token:?}");
                    }
                }
            }
            Op::List { limit } => {
                let got = self.store.list(usize::from(limit)).expect("list");
                let now = self.now();
                let mut want: Vec<f64> = self
                    .model
                    .values()
                    .map(|(_, exp)| *exp)
                    .filter(|exp| *exp > now)
                    .collect();
                want.sort_by(f64::total_cmp);
                want.truncate(usize::from(limit));
                let want: Vec<SystemTime> =
                    want.into_iter().map(julian_day::to_system_time).collect();
                let got_expiries: Vec<SystemTime> = got.iter().map(|l| l.expiry).collect();
                assert_eq!(got_expiries, want, "list: expiries, soonest first");
                for Listed {
                    token: key,
                    expiry: exp,
                    ..
                } in &got
                {
                    if self.hashed {
                        assert!(is_hex64(key), "list: key is a hash");
                    } else {
                        let (_, model_exp) = self.active(key).expect("listed token is active");
                        assert_eq!(julian_day::to_system_time(*model_exp), *exp);
                    }
                }
            }
            Op::DeleteExpired => {
                let removed = self.store.delete_expired().expect("delete_expired").removed;
                let now = self.now();
                let before = self.model.len();
                self.model.retain(|_, (_, exp)| *exp > now);
                assert_eq!(
                    removed,
                    (before - self.model.len()) as u64,
                    "delete_expired"
                );
            }
            Op::Stats => {
                let stats = self.store.stats().expect("stats");
                let now = self.now();
                let active = self.model.values().filter(|(_, exp)| *exp > now).count() as u64;
                assert_eq!(stats.active, active, "stats: active");
                assert_eq!(
                    stats.expired,
                    self.model.len() as u64 - active,
                    "stats: expired"
                );
            }
            Op::Advance { secs, millis } => {
                self.clock.advance(
                    Duration::from_secs(u64::from(secs)) + Duration::from_millis(u64::from(millis)),
                );
            }
            Op::SetClock { unix_secs } => {
                if let Some(t) = time_at(unix_secs, 0) {
                    self.clock.set(t);
                }
            }
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Empties `store`: every row is expired once the clock is past year 9999.
fn wipe(store: &SqliteStore, clock: &ManualClock) {
    clock.set(UNIX_EPOCH + Duration::from_secs(400_000_000_000));
    store.delete_expired().expect("wipe");
    clock.set(start());
    let stats = store.stats().expect("stats after wipe");
    assert_eq!((stats.active, stats.expired), (0, 0), "wipe left rows");
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let store = if input.hashed { &f.hashed } else { &f.plain };
    wipe(store, &f.clock);
    let mut run = Run {
        store,
        clock: &f.clock,
        hashed: input.hashed,
        model: Model::new(),
        tokens: Vec::new(),
    };
    for op in input.ops.into_iter().take(MAX_OPS) {
        run.apply(op);
    }
    // Everything the model holds as active is still there, exactly.
    let now = run.now();
    for (token, (data, exp)) in &run.model {
        let found = store.find(token).expect("final find");
        if *exp > now {
            assert_eq!(found.as_ref(), Some(data), "final find {token:?}");
        } else {
            assert_eq!(found, None, "final find of expired {token:?}");
        }
    }
});
