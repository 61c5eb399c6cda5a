//! Token hashing at rest (`Builder::hash_tokens`): no raw token ever reaches
//! the database, its WAL or its shared-memory file, while open or after
//! close; the API still takes raw tokens; `all` shows HMAC-SHA-256 keys; a
//! store with another key, or none, cannot use the raw tokens.
//!
//! The same through the tower-sessions adapter (no session id in any form
//! in the files) is in `crates/tower-sessions-sqlite3store/tests/
//! token_hashing.rs`: a dev-dependency of this crate on the adapter would be
//! a publish cycle.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use sqlite3store::{Error, SqliteStore};
use support::{far_future, sidecar, TestResult};

const KEY: &[u8] = b"KEY-4b1d0e5c-never-printed";
const OTHER_KEY: &[u8] = b"another key";
/// In every raw token, and nowhere else.
const MARK: &str = "RAWTOKEN";

fn raw(i: usize) -> String {
    format!("{MARK}-{i:03}-7f3a9c1e")
}

/// Data that holds no part of a token.
fn data(i: usize) -> Vec<u8> {
    format!("payload number {i}").into_bytes()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the database and of its `-wal` and `-shm` files, if present.
fn files(path: &Path) -> TestResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        match std::fs::read(sidecar(path, suffix)) {
            Ok(bytes) => out.push((format!("sessions.db{suffix}"), bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(out)
}

/// No raw token in any file; the hashed keys of `stored` are there (which
/// shows the search would have found a token).
fn assert_no_raw_tokens(path: &Path, stored: &[usize], when: &str) -> TestResult {
    let files = files(path)?;
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, MARK.as_bytes()),
            "{when}: a raw token is in {name}"
        );
        assert!(!contains(bytes, KEY), "{when}: the key is in {name}");
    }
    for &i in stored {
        let key = support::hmac_hex(KEY, &raw(i));
        assert!(
            files.iter().any(|(_, b)| contains(b, key.as_bytes())),
            "{when}: the hashed key of {} is in no file",
            raw(i)
        );
    }
    Ok(())
}

fn hashed(path: &Path, key: &[u8]) -> sqlite3store::Result<SqliteStore> {
    SqliteStore::builder(path)
        .hash_tokens(key)
        .cleanup_interval(Duration::ZERO)
        .build()
}

#[test]
fn raw_tokens_never_reach_the_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = hashed(&path, KEY)?;
    for i in 0..40 {
        store.commit(&raw(i), &data(i), far_future())?;
    }
    // Every write path: create, overwrite, delete, expiry and cleanup.
    assert!(store.create(&raw(40), &data(40), far_future())?);
    assert!(!store.create(&raw(0), b"refused", far_future())?);
    store.commit(&raw(1), &data(1), far_future())?;
    assert!(store.delete(&raw(2))?);
    store.commit(
        &raw(41),
        b"expired",
        SystemTime::now() - Duration::from_secs(1),
    )?;
    assert_eq!(store.delete_expired()?.removed, 1);
    let stored: Vec<usize> = (0..=40).filter(|&i| i != 2).collect();

    assert_no_raw_tokens(&path, &stored, "open, in the WAL")?;
    store.vacuum()?;
    assert_no_raw_tokens(&path, &stored, "open, after VACUUM")?;
    drop(store);
    assert_no_raw_tokens(&path, &stored, "closed")?;
    // Closed, everything is in the main file.
    let main = std::fs::read(&path)?;
    assert!(contains(&main, support::hmac_hex(KEY, &raw(0)).as_bytes()));
    Ok(())
}

#[test]
fn hashed_store_works_by_raw_token_and_lists_hashes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = hashed(&path, KEY)?;
    for i in 0..5 {
        store.commit(&raw(i), &data(i), far_future())?;
    }
    assert_eq!(store.find(&raw(0))?, Some(data(0)));
    assert_eq!(
        store.find_with_expiry(&raw(1))?.map(|s| s.data),
        Some(data(1))
    );
    assert!(!store.create(&raw(1), b"taken", far_future())?);

    let all = store.all()?;
    assert_eq!(all.len(), 5);
    for i in 0..5 {
        let key = support::hmac_hex(KEY, &raw(i));
        assert_eq!(
            all.get(&key),
            Some(&data(i)),
            "all() is keyed by HMAC-SHA-256 hex"
        );
    }
    assert!(all
        .keys()
        .all(|k| k.len() == 64 && k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))));
    for listed in store.list(10)? {
        assert!(
            all.contains_key(&listed.token),
            "list shows the hashed keys"
        );
    }
    // A hashed key is not a token: it is hashed again and not found.
    assert_eq!(store.find(&support::hmac_hex(KEY, &raw(0)))?, None);
    assert!(!store.delete(&support::hmac_hex(KEY, &raw(0)))?);

    assert!(store.delete(&raw(0))?);
    assert_eq!(store.find(&raw(0))?, None);
    assert!(!store.delete(&raw(0))?);
    assert_eq!(store.all()?.len(), 4);
    Ok(())
}

#[test]
fn another_key_or_no_key_cannot_use_the_raw_tokens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = hashed(&path, KEY)?;
    for i in 0..5 {
        store.commit(&raw(i), &data(i), far_future())?;
    }
    drop(store);

    let other = hashed(&path, OTHER_KEY)?;
    for i in 0..5 {
        assert_eq!(other.find(&raw(i))?, None, "another key finds nothing");
        assert!(!other.delete(&raw(i))?, "another key deletes nothing");
    }
    // Its own commit of the same raw token lands under another key.
    other.commit(&raw(0), b"other", far_future())?;
    drop(other);

    let plain = SqliteStore::with_cleanup_interval(&path, Duration::ZERO)?;
    for i in 0..5 {
        assert_eq!(plain.find(&raw(i))?, None, "no key finds nothing");
    }
    // What the file holds is the hash (documented: Go cannot use it).
    assert_eq!(plain.find(&support::hmac_hex(KEY, &raw(3)))?, Some(data(3)));
    assert_eq!(
        plain.find(&support::hmac_hex(OTHER_KEY, &raw(0)))?,
        Some(b"other".to_vec())
    );
    assert_eq!(plain.all()?.len(), 6);
    drop(plain);

    let store = hashed(&path, KEY)?;
    assert_eq!(
        store.find(&raw(0))?,
        Some(data(0)),
        "the first key still works"
    );
    Ok(())
}

#[test]
fn the_key_is_never_shown_and_must_not_be_empty() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let builder = SqliteStore::builder(&path).hash_tokens(KEY);
    let key = String::from_utf8_lossy(KEY).into_owned();
    assert!(
        !format!("{builder:?}").contains(&key),
        "Debug of the builder"
    );
    let store = builder.build()?;
    assert!(!format!("{store:?}").contains(&key), "Debug of the store");

    let err = SqliteStore::builder(dir.path().join("other.db"))
        .hash_tokens(b"")
        .build()
        .expect_err("empty key");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    Ok(())
}
