//! Model-based property tests: random sequences of commit, create, find,
//! delete, all, list, delete_expired, stats, clock moves and reopening, run
//! against the store and against a plain map of token to (data, expiry);
//! every answer must agree. Through the sync front, the async front (on a
//! current-thread runtime), and with tokens hashed at rest.
//!
//! 64 cases per property by default; `PROPTEST_CASES=5000` for a long run.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sqlite3store::{Error, Listed, ManualClock, Session, SqliteStore};
use support::{Front, Kind};

const MAX_TOKEN_LEN: usize = 12;
const MAX_DATA_LEN: usize = 24;
/// Few tokens, so operations meet; an empty and an over-long one among them.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "sess-1",
    "é",
    "a\0",
    "ключ",
    "'; --",
    "",
    "token-too-long",
];
/// Times move in quarter seconds: exact in milliseconds, as the store keeps
/// them, and often equal to the clock (a session expiring exactly now is
/// expired).
const TICK: Duration = Duration::from_millis(250);
const HASH_KEY: &[u8] = b"model key";

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[derive(Debug, Clone)]
enum Op {
    Commit {
        token: usize,
        data: Vec<u8>,
        ticks: i64,
    },
    Create {
        token: usize,
        data: Vec<u8>,
        ticks: i64,
    },
    Find(usize),
    FindWithExpiry(usize),
    Delete(usize),
    All,
    List(usize),
    DeleteExpired,
    Stats,
    Advance(u32),
    Rewind(u32),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let token = 0..TOKENS.len();
    let data = vec(any::<u8>(), 0..=MAX_DATA_LEN + 4);
    let ticks = -40i64..200;
    prop_oneof![
        4 => (token.clone(), data.clone(), ticks.clone())
            .prop_map(|(token, data, ticks)| Op::Commit { token, data, ticks }),
        2 => (token.clone(), data, ticks)
            .prop_map(|(token, data, ticks)| Op::Create { token, data, ticks }),
        3 => token.clone().prop_map(Op::Find),
        1 => token.clone().prop_map(Op::FindWithExpiry),
        2 => token.prop_map(Op::Delete),
        1 => Just(Op::All),
        1 => (0usize..6).prop_map(Op::List),
        1 => Just(Op::DeleteExpired),
        1 => Just(Op::Stats),
        2 => (0u32..80).prop_map(Op::Advance),
        1 => (0u32..40).prop_map(Op::Rewind),
        1 => Just(Op::Reopen),
    ]
}

fn at(ticks: i64, now: SystemTime) -> SystemTime {
    let by = TICK * ticks.unsigned_abs() as u32;
    if ticks >= 0 {
        now + by
    } else {
        now - by
    }
}

fn ok<T>(result: sqlite3store::Result<T>) -> Result<T, TestCaseError> {
    result.map_err(|err| TestCaseError::fail(format!("store error: {err:?}")))
}

/// The key `all` and `list` show for `token`.
fn shown(token: &str, hashed: bool) -> String {
    if !hashed {
        return token.to_owned();
    }
    support::hmac_hex(HASH_KEY, token)
}

/// The error `commit` and `create` must give, if any.
fn rejection(token: &str, data: &[u8]) -> Option<&'static str> {
    if token.is_empty() {
        Some("EmptyToken")
    } else if token.len() > MAX_TOKEN_LEN {
        Some("TokenTooLong")
    } else if data.len() > MAX_DATA_LEN {
        Some("DataTooLarge")
    } else {
        None
    }
}

fn error_name(err: &Error) -> &'static str {
    match err {
        Error::EmptyToken => "EmptyToken",
        Error::TokenTooLong { len, max } if *max == MAX_TOKEN_LEN && *len > *max => "TokenTooLong",
        Error::DataTooLarge { len, max } if *max == MAX_DATA_LEN && *len > *max => "DataTooLarge",
        _ => "unexpected",
    }
}

/// Token to (data, expiry), expired sessions included until cleanup.
type Model = HashMap<String, (Vec<u8>, SystemTime)>;

fn active(model: &Model, now: SystemTime) -> HashMap<&String, &(Vec<u8>, SystemTime)> {
    model.iter().filter(|(_, (_, exp))| *exp > now).collect()
}

fn run(kind: Kind, hashed: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let clock = Arc::new(ManualClock::new(start()));
    let mut builder = SqliteStore::builder(dir.path().join("sessions.db"))
        .cleanup_interval(Duration::ZERO)
        .max_token_len(MAX_TOKEN_LEN)
        .max_data_len(MAX_DATA_LEN)
        .readers(2)
        .clock(clock.clone());
    if hashed {
        builder = builder.hash_tokens(HASH_KEY);
    }
    let mut store: Box<dyn Front> = ok(support::open(kind, builder.clone()))?;
    let mut model = Model::new();

    for op in ops {
        let now = clock.get();
        match op {
            Op::Commit { token, data, ticks } => {
                let token = TOKENS[token];
                let expiry = at(ticks, now);
                match (store.commit(token, &data, expiry), rejection(token, &data)) {
                    (Ok(()), None) => {
                        model.insert(token.to_owned(), (data, expiry));
                    }
                    (Err(err), Some(want)) => prop_assert_eq!(error_name(&err), want),
                    (got, want) => {
                        prop_assert!(false, "commit {token:?}: {got:?}, expected {want:?}")
                    }
                }
            }
            Op::Create { token, data, ticks } => {
                let token = TOKENS[token];
                let expiry = at(ticks, now);
                match (store.create(token, &data, expiry), rejection(token, &data)) {
                    (Ok(stored), None) => {
                        let held = model.get(token).is_some_and(|(_, exp)| *exp > now);
                        prop_assert_eq!(stored, !held, "create {:?}", token);
                        if stored {
                            model.insert(token.to_owned(), (data, expiry));
                        }
                    }
                    (Err(err), Some(want)) => prop_assert_eq!(error_name(&err), want),
                    (got, want) => {
                        prop_assert!(false, "create {token:?}: {got:?}, expected {want:?}")
                    }
                }
            }
            Op::Find(token) => {
                let token = TOKENS[token];
                let want = active(&model, now)
                    .get(&token.to_owned())
                    .map(|(d, _)| d.clone());
                prop_assert_eq!(ok(store.find(token))?, want, "find {:?}", token);
            }
            Op::FindWithExpiry(token) => {
                let token = TOKENS[token];
                let want = active(&model, now)
                    .get(&token.to_owned())
                    .map(|(d, e)| Session::new(d.clone(), *e));
                prop_assert_eq!(
                    ok(store.find_with_expiry(token))?,
                    want,
                    "find_with_expiry {:?}",
                    token
                );
            }
            Op::Delete(token) => {
                let token = TOKENS[token];
                // Expired rows not yet cleaned up are there to delete.
                let was = model.remove(token).is_some();
                prop_assert_eq!(ok(store.delete(token))?, was, "delete {:?}", token);
            }
            Op::All => {
                let want: HashMap<String, Vec<u8>> = active(&model, now)
                    .into_iter()
                    .map(|(t, (d, _))| (shown(t, hashed), d.clone()))
                    .collect();
                prop_assert_eq!(ok(store.all())?, want);
            }
            Op::List(limit) => {
                let got = ok(store.list(limit))?;
                let active = active(&model, now);
                let mut want: Vec<SystemTime> = active.values().map(|(_, exp)| *exp).collect();
                want.sort();
                want.truncate(limit);
                let got_expiries: Vec<SystemTime> = got.iter().map(|l| l.expiry).collect();
                prop_assert_eq!(got_expiries, want, "list({}): soonest first", limit);
                for Listed {
                    token: key,
                    expiry: exp,
                    ..
                } in &got
                {
                    let owner = active.iter().find(|(t, _)| shown(t, hashed) == *key);
                    prop_assert!(owner.is_some_and(|(_, (_, e))| e == exp), "list: {key:?}");
                }
            }
            Op::DeleteExpired => {
                let before = model.len();
                model.retain(|_, (_, exp)| *exp > now);
                let removed = (before - model.len()) as u64;
                prop_assert_eq!(ok(store.delete_expired())?.removed, removed);
            }
            Op::Stats => {
                let stats = ok(store.stats())?;
                let live = active(&model, now).len() as u64;
                prop_assert_eq!(stats.active, live);
                prop_assert_eq!(stats.expired, model.len() as u64 - live);
            }
            Op::Advance(ticks) => clock.advance(TICK * ticks),
            Op::Rewind(ticks) => clock.set(now - TICK * ticks),
            Op::Reopen => {
                drop(store);
                store = ok(support::open(kind, builder.clone()))?;
            }
        }
    }
    // Whatever the sequence, a reopened store holds what the model holds.
    drop(store);
    let store = ok(support::open(kind, builder))?;
    let now = clock.get();
    for (token, (data, exp)) in &model {
        let want = (*exp > now).then(|| data.clone());
        prop_assert_eq!(ok(store.find(token))?, want, "after reopen: {:?}", token);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // The default reads PROPTEST_CASES; without it, keep CI quick.
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    // Minimal failing cases are printed; nothing is written into the repo.
    config.failure_persistence = None;
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sync_store_agrees_with_the_model(ops in vec(op(), 1..40)) {
        run(Kind::Sync, false, ops)?;
    }

    #[test]
    fn async_store_agrees_with_the_model(ops in vec(op(), 1..40)) {
        run(Kind::Async, false, ops)?;
    }

    #[test]
    fn hashed_store_agrees_with_the_model(ops in vec(op(), 1..40)) {
        run(Kind::Sync, true, ops)?;
    }
}

/// Many threads race to `create` the same tokens (batched together by
/// group commit): exactly one wins each, and what is stored is the
/// winner's data.
#[test]
fn concurrent_creates_have_exactly_one_winner() -> Result<(), Box<dyn std::error::Error>> {
    const THREADS: usize = 8;
    const TOKENS: usize = 40;
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::builder(dir.path().join("sessions.db"))
        .cleanup_interval(Duration::ZERO)
        .build()?;
    let later = SystemTime::now() + Duration::from_secs(3600);
    let wins: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..TOKENS)
                        .filter(|i| {
                            let data = format!("thread {t}").into_bytes();
                            store
                                .create(&format!("claim-{i}"), &data, later)
                                .expect("create")
                        })
                        .collect::<Vec<usize>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for i in 0..TOKENS {
        let winners: Vec<usize> = (0..THREADS).filter(|t| wins[*t].contains(&i)).collect();
        assert_eq!(winners.len(), 1, "claim-{i} won by {winners:?}");
        let data = format!("thread {}", winners[0]).into_bytes();
        assert_eq!(store.find(&format!("claim-{i}"))?, Some(data), "claim-{i}");
    }
    Ok(())
}
