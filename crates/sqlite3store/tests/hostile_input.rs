//! Hostile input through both fronts: tokens that are huge, empty, built
//! from invalid UTF-8, full of control characters and NUL, quotes and SQL,
//! right-to-left and combining Unicode; data at and past the size limit;
//! expiries from year 970 to past year 9999, and a clock at both ends.
//!
//! What is documented: `find` of an empty or over-long token is `Ok(None)`
//! and `delete` of one is `Ok(false)`; `commit` and `create` refuse them with
//! `EmptyToken` or `TokenTooLong`, and data over the limit with
//! `DataTooLarge`, writing nothing; every accepted token round-trips
//! exactly, byte for byte, through `find`, `all` and `list`.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlite3store::{Error, ManualClock, Session, SqliteStore};
use support::{data_for, far_future, Front, Kind, TestResult, BOTH};

const YEAR: u64 = 31_557_600; // 365.25 days

/// The last millisecond SQLite's date functions know: 9999-12-31 23:59:59.999 UTC.
fn end_of_9999() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(253_402_300_799_999)
}

/// `t` truncated to the millisecond, as the store keeps it.
fn to_ms(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).expect("after 1970");
    UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64)
}

fn open(kind: Kind) -> TestResult<(tempfile::TempDir, Box<dyn Front>)> {
    let dir = tempfile::tempdir()?;
    let store = support::open(
        kind,
        SqliteStore::builder(dir.path().join("sessions.db")).cleanup_interval(Duration::ZERO),
    )?;
    Ok((dir, store))
}

fn hostile_tokens() -> Vec<String> {
    let mut tokens: Vec<String> = [
        "a",
        "a\0b",
        "a\0c",
        "\0",
        "\0\0",
        "e\u{301}",
        "\u{e9}",
        "\u{1}\u{1f}\u{7f}\t\n\r\u{1b}[31m",
        "'",
        "''",
        "\"",
        "`",
        "'; DROP TABLE sessions; --",
        "\" OR 1=1 --",
        "%",
        "_",
        "*",
        "\\",
        "?1",
        ":token",
        "$x",
        "\u{202E}evil\u{202C}",
        "\u{200F}مرحبا",
        "שלום",
        "👩\u{200D}👩\u{200D}👧",
        "\u{FEFF}bom",
        " ",
        "  a  ",
        "\u{FFFD}",
        "\u{10FFFF}",
        "\0\u{FFFD}",
    ]
    .map(String::from)
    .into();
    // Invalid UTF-8 made valid the usual way: each bad sequence is U+FFFD.
    tokens.push(
        String::from_utf8_lossy(&[0xff, 0xfe, b'a', 0xc0, 0x80, 0xed, 0xa0, 0x80]).into_owned(),
    );
    // At the default limit of 1024 bytes, counted in bytes.
    tokens.push("x".repeat(1024));
    tokens.push("é".repeat(512));
    tokens.push("a".repeat(1023) + "\0");
    tokens
}

#[test]
fn hostile_tokens_round_trip_exactly() -> TestResult {
    let tokens = hostile_tokens();
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        tokens.len(),
        "distinct"
    );
    for kind in BOTH {
        let (_dir, store) = open(kind)?;
        let later = far_future();
        for (i, t) in tokens.iter().enumerate() {
            store.commit(t, &data_for(t, i as u64), later)?;
        }
        for (i, t) in tokens.iter().enumerate() {
            let want = data_for(t, i as u64);
            assert_eq!(store.find(t)?, Some(want.clone()), "{kind:?} find {t:?}");
            assert_eq!(
                store.find_with_expiry(t)?,
                Some(Session::new(want, to_ms(later))),
                "{kind:?} find_with_expiry {t:?}"
            );
            assert!(!store.create(t, b"taken", later)?, "{kind:?} create {t:?}");
        }
        let want: HashMap<String, Vec<u8>> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), data_for(t, i as u64)))
            .collect();
        assert_eq!(store.all()?, want, "{kind:?} all");
        let listed: HashSet<String> = store
            .list(usize::MAX)?
            .into_iter()
            .map(|l| l.token)
            .collect();
        assert_eq!(listed, want.keys().cloned().collect(), "{kind:?} list");

        // Tokens that share a prefix up to a NUL are distinct.
        assert!(store.delete("a\0b")?);
        assert_eq!(store.find("a")?, Some(data_for("a", 0)));
        assert_eq!(store.find("a\0c")?, Some(data_for("a\0c", 2)));
        for t in &tokens {
            assert_eq!(store.delete(t)?, t != "a\0b", "{kind:?} delete {t:?}");
            assert_eq!(store.find(t)?, None, "{kind:?} find after delete {t:?}");
        }
        assert!(store.all()?.is_empty());
    }
    Ok(())
}

fn assert_token_refused(err: Error, token: &str, max: usize) {
    match err {
        Error::EmptyToken => assert!(token.is_empty()),
        Error::TokenTooLong { len, max: m } => {
            assert_eq!((len, m), (token.len(), max), "TokenTooLong fields");
        }
        other => panic!("token of {} bytes: {other:?}", token.len()),
    }
}

#[test]
fn empty_and_over_long_tokens_are_refused_or_not_found() -> TestResult {
    let bad = [
        String::new(),
        "x".repeat(1025),
        // 513 characters, 1026 bytes: the limit is in bytes.
        "é".repeat(513),
        "t".repeat(1 << 20),
    ];
    for kind in BOTH {
        let (_dir, store) = open(kind)?;
        for t in &bad {
            assert_token_refused(store.commit(t, b"data", far_future()).unwrap_err(), t, 1024);
            assert_token_refused(store.create(t, b"data", far_future()).unwrap_err(), t, 1024);
            // A bad token with bad data too: the token is what is reported.
            let huge = vec![0; (1 << 20) + 1];
            assert_token_refused(store.commit(t, &huge, far_future()).unwrap_err(), t, 1024);
            assert_eq!(store.find(t)?, None, "{kind:?} find");
            assert_eq!(
                store.find_with_expiry(t)?,
                None,
                "{kind:?} find_with_expiry"
            );
            assert!(!store.delete(t)?, "{kind:?} delete");
        }
        let stats = store.stats()?;
        assert_eq!(
            (stats.active, stats.expired),
            (0, 0),
            "{kind:?}: nothing written"
        );
        assert!(store.all()?.is_empty());
    }
    Ok(())
}

#[test]
fn one_mebibyte_token_is_accepted_when_the_limit_allows() -> TestResult {
    let max = 1 << 20;
    let token = "t".repeat(max);
    let over = "t".repeat(max + 1);
    for kind in BOTH {
        let dir = tempfile::tempdir()?;
        let builder = SqliteStore::builder(dir.path().join("sessions.db"))
            .cleanup_interval(Duration::ZERO)
            .max_token_len(max);
        let store = support::open(kind, builder)?;
        store.commit(&token, b"big token", far_future())?;
        assert_eq!(store.find(&token)?, Some(b"big token".to_vec()));
        assert_eq!(store.all()?.get(&token), Some(&b"big token".to_vec()));
        assert_token_refused(
            store.commit(&over, b"x", far_future()).unwrap_err(),
            &over,
            max,
        );
        assert_eq!(store.find(&over)?, None);
        assert!(store.delete(&token)?);
        assert_eq!(store.find(&token)?, None);
    }
    let err = SqliteStore::builder(tempfile::tempdir()?.path().join("s.db"))
        .max_token_len(max + 1)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    Ok(())
}

#[test]
fn data_at_the_limit_is_stored_and_one_byte_over_writes_nothing() -> TestResult {
    for kind in BOTH {
        let (_dir, store) = open(kind)?;
        let max = 1 << 20; // the default
        let at_limit: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
        let over = vec![7u8; max + 1];
        store.commit("full", &at_limit, far_future())?;
        assert_eq!(store.find("full")?, Some(at_limit.clone()), "{kind:?}");
        store.commit("empty", b"", far_future())?;
        assert_eq!(
            store.find("empty")?,
            Some(Vec::new()),
            "{kind:?}: empty data"
        );

        for (what, result) in [
            (
                "commit over existing",
                store.commit("full", &over, far_future()),
            ),
            ("commit new", store.commit("new", &over, far_future())),
            (
                "create new",
                store.create("new", &over, far_future()).map(drop),
            ),
        ] {
            match result {
                Err(Error::DataTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
                other => panic!("{kind:?} {what}: {other:?}"),
            }
        }
        assert_eq!(
            store.find("full")?,
            Some(at_limit),
            "{kind:?}: old data kept"
        );
        assert_eq!(store.find("new")?, None, "{kind:?}: nothing written");
        assert_eq!(store.all()?.len(), 2);
    }
    // A limit of zero: only empty data.
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::builder(dir.path().join("s.db"))
        .cleanup_interval(Duration::ZERO)
        .max_data_len(0)
        .build()?;
    store.commit("t", b"", far_future())?;
    assert!(matches!(
        store.commit("t", b"x", far_future()),
        Err(Error::DataTooLarge { len: 1, max: 0 })
    ));
    Ok(())
}

#[test]
fn expiry_extremes_are_stored_in_order_and_clamped() -> TestResult {
    for kind in BOTH {
        let (_dir, store) = open(kind)?;
        let now = SystemTime::now();
        let mut past = vec![
            (
                "epoch - 1000 years",
                UNIX_EPOCH - Duration::from_secs(1000 * YEAR),
            ),
            ("epoch", UNIX_EPOCH),
            ("now", now),
        ];
        let mut future = vec![("now + 1000 years", now + Duration::from_secs(1000 * YEAR))];
        let huge = [
            Duration::from_secs(1 << 40),
            Duration::from_secs(1 << 50),
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ];
        // As far as SystemTime reaches, both ways.
        for (i, d) in huge.iter().enumerate() {
            if let Some(t) = UNIX_EPOCH.checked_add(*d) {
                future.push((
                    [
                        "+2^40 s",
                        "+2^50 s",
                        "+i64::MAX s",
                        "+u64::MAX s",
                        "+Duration::MAX",
                    ][i],
                    t,
                ));
            }
            if let Some(t) = UNIX_EPOCH.checked_sub(*d) {
                past.push((
                    [
                        "-2^40 s",
                        "-2^50 s",
                        "-i64::MAX s",
                        "-u64::MAX s",
                        "-Duration::MAX",
                    ][i],
                    t,
                ));
            }
        }
        assert!(
            future.len() >= 3 && past.len() >= 4,
            "SystemTime reaches far"
        );
        for (what, t) in past.iter().chain(&future) {
            store.commit(what, what.as_bytes(), *t)?;
        }
        for (what, _) in &past {
            assert_eq!(store.find(what)?, None, "{kind:?} {what} is expired");
        }
        for (what, t) in &future {
            let want = if *t > end_of_9999() {
                end_of_9999()
            } else {
                to_ms(*t)
            };
            assert_eq!(
                store.find_with_expiry(what)?,
                Some(Session::new(what.as_bytes().to_vec(), want)),
                "{kind:?} {what}"
            );
        }
        let active: HashSet<String> = store.all()?.into_keys().collect();
        assert_eq!(
            active,
            future.iter().map(|(w, _)| (*w).to_owned()).collect(),
            "{kind:?}"
        );
        let stats = store.stats()?;
        assert_eq!(
            (stats.active, stats.expired),
            (future.len() as u64, past.len() as u64),
            "{kind:?}"
        );
        assert_eq!(
            store.delete_expired()?.removed,
            past.len() as u64,
            "{kind:?}"
        );
        assert_eq!(store.all()?.len(), future.len(), "{kind:?}");
    }
    Ok(())
}

#[test]
fn a_clock_at_either_end_of_time_still_orders_sessions() -> TestResult {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let sessions = [
        ("year 970", UNIX_EPOCH - Duration::from_secs(1000 * YEAR)),
        ("epoch", UNIX_EPOCH),
        ("start + 1 s", start + Duration::from_secs(1)),
        (
            "start + 1000 years",
            start + Duration::from_secs(1000 * YEAR),
        ),
        ("past 9999", UNIX_EPOCH + Duration::from_secs(1 << 40)),
    ];
    let cases: [(&str, SystemTime, &[&str]); 4] = [
        // Before year 0 the clock is clamped to year 0: all are ahead.
        (
            "3000 years before 1970",
            UNIX_EPOCH - Duration::from_secs(3000 * YEAR),
            &[
                "year 970",
                "epoch",
                "start + 1 s",
                "start + 1000 years",
                "past 9999",
            ],
        ),
        (
            "start",
            start,
            &["start + 1 s", "start + 1000 years", "past 9999"],
        ),
        (
            "year 9999",
            end_of_9999() - Duration::from_secs(1),
            &["past 9999"],
        ),
        // Past 9999 the clock and the latest expiry are clamped alike, and
        // a session expiring exactly now is expired.
        (
            "year 14000",
            UNIX_EPOCH + Duration::from_secs(380_000_000_000),
            &[],
        ),
    ];
    for kind in BOTH {
        let dir = tempfile::tempdir()?;
        let clock = Arc::new(ManualClock::new(start));
        let builder = SqliteStore::builder(dir.path().join("sessions.db"))
            .cleanup_interval(Duration::ZERO)
            .clock(clock.clone());
        let store = support::open(kind, builder)?;
        clock.set(UNIX_EPOCH - Duration::from_secs(3000 * YEAR));
        for (what, t) in sessions {
            store.commit(what, b"x", t)?;
        }
        for (when, at, active) in cases {
            clock.set(at);
            let found: HashSet<String> = store.all()?.into_keys().collect();
            let want: HashSet<String> = active.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(found, want, "{kind:?}: clock at {when}");
            for (what, _) in sessions {
                assert_eq!(
                    store.find(what)?.is_some(),
                    active.contains(&what),
                    "{kind:?}: {what} at {when}"
                );
            }
        }
        assert_eq!(
            store.delete_expired()?.removed,
            sessions.len() as u64,
            "{kind:?}"
        );
    }
    Ok(())
}

/// A path that names a FIFO (or another non-file) must fail at open, not
/// block forever: nothing will ever write to it.
#[test]
fn a_fifo_in_place_of_the_file_fails_at_open_instead_of_hanging() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("sessions.db");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    match made {
        Ok(status) if status.success() => {}
        Ok(status) => return support::skip(&format!("mkfifo failed: {status}")),
        Err(err) => return support::skip(&format!("cannot run mkfifo: {err}")),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    let opener = std::thread::spawn(move || {
        let result = SqliteStore::with_cleanup_interval(&path, Duration::ZERO).map(drop);
        // The receiver is gone only if the test already failed.
        tx.send(result).ok();
    });
    let result = rx.recv_timeout(Duration::from_secs(10));
    if result.is_err() {
        // Unblock the opener (a writer appears, then goes) so it can end.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo)?);
    }
    opener.join().map_err(|_| "the opener panicked")?;
    match result {
        // SQLite cannot use it as a file: the open itself fails, naming the
        // path, and the FIFO is left in place.
        Ok(Err(Error::Open { path, .. })) => {
            assert_eq!(path, fifo, "the error names the path");
            let meta = std::fs::symlink_metadata(&fifo)?;
            assert!(
                std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
                "the FIFO was replaced"
            );
            Ok(())
        }
        Ok(Err(err)) => Err(format!("a FIFO: expected Error::Open, got {err:?}").into()),
        Ok(Ok(())) => Err("a FIFO was opened as a session database".into()),
        Err(_) => Err("open of a FIFO did not return within 10 s".into()),
    }
}
