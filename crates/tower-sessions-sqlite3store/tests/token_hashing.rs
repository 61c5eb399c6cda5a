//! Token hashing through the tower-sessions adapter. With
//! `Builder::hash_tokens`, no session id, neither its cookie string nor its
//! 16 raw bytes in either byte order, reaches the database, its `-wal` or
//! its `-shm` after creates, saves, id cycling and deletes: not while the
//! WAL still holds the writes, not after a checkpoint, not after close.
//! Rows in the adapter's old layout (the whole `Record`, id included) still
//! load. Without hashing, the file holds every cookie, and session data is
//! plaintext either way. Changing the key, or turning hashing on or off,
//! logs everyone out. A deleted session's data stays in the files until
//! `vacuum()`.
//!
//! (This file lives in the adapter crate, not in `sqlite3store`'s
//! `tests/token_hashing.rs`: a dev-dependency of the core on the adapter
//! would be a cycle that blocks publishing the core.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionStore};
use tower_sessions_sqlite3store::sqlite3store::{ManualClock, SqliteStore};
use tower_sessions_sqlite3store::SqliteSessionStore;

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const KEY: &[u8] = b"adapter-hash-key-0f6e";
/// In every session's data, so the scans can show they read the rows.
const DATA_MARK: &str = "PLAINTEXT-SESSION-DATA";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The bytes of the database and of its `-wal` and `-shm`, where present.
fn files(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
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

/// Every form in which a session id could give a cookie away.
fn id_forms(id: Id) -> [(&'static str, Vec<u8>); 3] {
    [
        ("cookie string", id.to_string().into_bytes()),
        ("little-endian bytes", id.0.to_le_bytes().to_vec()),
        ("big-endian bytes", id.0.to_be_bytes().to_vec()),
    ]
}

/// No form of any of `ids` in any file; the hashed keys of every stored
/// session and the data marker are (so the scan did read the rows).
async fn assert_no_ids(
    store: &SqliteSessionStore,
    path: &Path,
    ids: &[Id],
    when: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let files = files(path)?;
    for (name, bytes) in &files {
        for &id in ids {
            for (form, needle) in id_forms(id) {
                assert!(
                    !contains(bytes, &needle),
                    "{when}: a session id's {form} is in {name}"
                );
            }
        }
        assert!(!contains(bytes, KEY), "{when}: the key is in {name}");
    }
    let in_some_file = |needle: &[u8]| files.iter().any(|(_, b)| contains(b, needle));
    let hashed = store.inner().all().await?;
    assert!(!hashed.is_empty(), "{when}: no session stored");
    for key in hashed.keys() {
        assert!(
            in_some_file(key.as_bytes()),
            "{when}: the hashed key {key} is in no file"
        );
    }
    assert!(
        in_some_file(DATA_MARK.as_bytes()),
        "{when}: session data is in no file"
    );
    Ok(files)
}

fn builder(path: &Path) -> sqlite3store::Builder {
    SqliteStore::builder(path).cleanup_interval(Duration::ZERO)
}

fn session(id: Option<Id>, store: &Arc<SqliteSessionStore>) -> Session {
    Session::new(
        id,
        store.clone(),
        Some(Expiry::OnInactivity(time::Duration::hours(1))),
    )
}

/// A new session holding `value`, created through the adapter.
async fn new_session(store: &Arc<SqliteSessionStore>, value: &str) -> Result<Id> {
    let s = session(None, store);
    s.insert("value", format!("{DATA_MARK} {value}")).await?;
    s.save().await?;
    Ok(s.id().ok_or("a saved session has an id")?)
}

/// Creates, saves, cycles and deletes sessions through tower-sessions'
/// `Session`; returns every id ever used and the sessions left, with the
/// value each holds.
async fn churn(store: &Arc<SqliteSessionStore>) -> Result<(Vec<Id>, Vec<(Id, String)>)> {
    let mut ids = Vec::new();
    let mut live = Vec::new();
    for i in 0..12 {
        let id = new_session(store, &format!("created {i}")).await?;
        ids.push(id);
        live.push((id, format!("{DATA_MARK} created {i}")));
    }
    // Saves: a loaded session changed and saved again.
    for (i, (id, value)) in live.iter_mut().take(4).enumerate() {
        let s = session(Some(*id), store);
        *value = format!("{DATA_MARK} saved {i}");
        s.insert("value", value.clone()).await?;
        s.save().await?;
    }
    // Id cycling: the old id is deleted, the session created under a new one.
    for (id, _) in live.iter_mut().skip(4).take(4) {
        let s = session(Some(*id), store);
        s.cycle_id().await?;
        s.save().await?;
        let new = s.id().ok_or("a cycled session has an id")?;
        assert_ne!(new, *id);
        ids.push(new);
        *id = new;
    }
    // A create whose id is taken gets a fresh one.
    let mut record = Record {
        id: live[0].0,
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    record
        .data
        .insert("value".into(), json!(format!("{DATA_MARK} collided")));
    store.create(&mut record).await?;
    assert_ne!(record.id, live[0].0);
    ids.push(record.id);
    live.push((record.id, format!("{DATA_MARK} collided")));
    // Deletes.
    for _ in 0..3 {
        let (id, _) = live.pop().ok_or("a session to delete")?;
        session(Some(id), store).delete().await?;
    }
    Ok((ids, live))
}

/// Every live session loads with its value; every other id loads nothing.
async fn assert_loads(
    store: &Arc<SqliteSessionStore>,
    ids: &[Id],
    live: &[(Id, String)],
) -> Result {
    for &id in ids {
        let expected = live.iter().find(|(l, _)| *l == id).map(|(_, v)| v);
        let record = store.load(&id).await?;
        assert_eq!(record.as_ref().map(|r| r.id), expected.map(|_| id));
        assert_eq!(
            record.and_then(|r| r.data.get("value").cloned()),
            expected.map(|v| json!(v)),
        );
    }
    Ok(())
}

/// Churns through the adapter with hashing on and scans the files before
/// and after a checkpoint; returns the store, every id used and the live
/// sessions.
async fn churn_and_scan_while_open(
    path: &Path,
) -> Result<(Arc<SqliteSessionStore>, Vec<Id>, Vec<(Id, String)>)> {
    let store = Arc::new(SqliteSessionStore::new(
        builder(path).hash_tokens(KEY).build_async().await?,
    ));
    let (mut ids, mut live) = churn(&store).await?;
    assert_loads(&store, &ids, &live).await?;

    // Before any checkpoint: the writes are in the WAL (1000 pages
    // away from the first checkpoint).
    let files = assert_no_ids(&store, path, &ids, "before a checkpoint").await?;
    let wal = files
        .iter()
        .find(|(name, _)| name.ends_with("-wal"))
        .ok_or("no -wal file while open")?;
    assert!(
        contains(&wal.1, DATA_MARK.as_bytes()),
        "the -wal holds the writes"
    );

    // After a checkpoint: everything in the main file, the WAL empty.
    store.inner().vacuum().await?;
    let files = assert_no_ids(&store, path, &ids, "after a checkpoint").await?;
    assert!(contains(&files[0].1, DATA_MARK.as_bytes()));

    // More churn over the checkpointed file.
    let (more_ids, more_live) = churn(&store).await?;
    ids.extend(more_ids);
    live.extend(more_live);
    assert_loads(&store, &ids, &live).await?;
    assert_no_ids(&store, path, &ids, "WAL over a checkpointed file").await?;
    Ok((store, ids, live))
}

#[test]
fn session_ids_never_reach_the_files() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (store, ids, live) = rt.block_on(churn_and_scan_while_open(&path))?;

    // Closed (the last handle dropped outside the runtime, so the close is
    // complete).
    drop(rt);
    assert_eq!(Arc::strong_count(&store), 1, "no session holds the store");
    drop(store);
    for (name, bytes) in files(&path)? {
        for &id in &ids {
            for (form, needle) in id_forms(id) {
                assert!(!contains(&bytes, &needle), "closed: {form} in {name}");
            }
        }
    }

    // Reopened with the key, every live session still loads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(SqliteSessionStore::new(
            builder(&path).hash_tokens(KEY).build_async().await?,
        ));
        assert_loads(&store, &ids, &live).await
    })
}

fn old_layout_record(value: &str) -> Record {
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    record.data.insert("value".into(), json!(value));
    record
}

#[tokio::test]
async fn rows_in_the_old_layout_still_load() -> Result {
    for hashing in [true, false] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sessions.db");
        let b = builder(&path);
        let store = SqliteSessionStore::new(
            if hashing { b.hash_tokens(KEY) } else { b }
                .build_async()
                .await?,
        );

        // What earlier versions of this adapter wrote: the whole record,
        // id included, in MessagePack with field names.
        let mut record = old_layout_record(DATA_MARK);
        let old = rmp_serde::to_vec_named(&record)?;
        let expiry = SystemTime::from(record.expiry_date);
        let cookie = record.id.to_string();
        store.inner().commit(&cookie, &old, expiry).await?;
        assert_eq!(
            store.load(&record.id).await?,
            Some(record.clone()),
            "hashing {hashing}"
        );

        // Saved again, it is rewritten without the id.
        record.data.insert("value".into(), json!("saved again"));
        store.save(&record).await?;
        assert_eq!(store.load(&record.id).await?, Some(record.clone()));
        let data = store.inner().find(&cookie).await?.ok_or("row missing")?;
        for (form, needle) in id_forms(record.id) {
            assert!(
                !contains(&data, &needle),
                "hashing {hashing}: {form} in the row"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn without_hashing_the_file_holds_every_cookie() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = Arc::new(SqliteSessionStore::new(builder(&path).build_async().await?));
    let mut cookies = Vec::new();
    for i in 0..5 {
        cookies.push(new_session(&store, &i.to_string()).await?.to_string());
    }
    let files = files(&path)?;
    for cookie in &cookies {
        assert!(
            files.iter().any(|(_, b)| contains(b, cookie.as_bytes())),
            "the cookie {cookie} is readable in the files"
        );
    }
    assert!(files.iter().any(|(_, b)| contains(b, DATA_MARK.as_bytes())));
    Ok(())
}

/// Every session created on a store opened with `key` (None: no hashing),
/// then which of them a store opened with each other setting still loads.
#[tokio::test]
async fn changing_the_key_or_turning_hashing_on_or_off_logs_everyone_out() -> Result {
    const OTHER_KEY: &[u8] = b"another adapter key";
    let settings: [Option<&[u8]>; 3] = [None, Some(KEY), Some(OTHER_KEY)];
    for created_with in settings {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sessions.db");
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let open = |key: Option<&[u8]>| {
            let b = builder(&path).clock(clock.clone());
            let b = match key {
                Some(key) => b.hash_tokens(key),
                None => b,
            };
            async move { Ok::<_, sqlite3store::Error>(SqliteSessionStore::new(b.build_async().await?)) }
        };
        let store = Arc::new(open(created_with).await?);
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(new_session(&store, &i.to_string()).await?);
        }
        drop(store);

        for opened_with in settings {
            let store = open(opened_with).await?;
            for id in &ids {
                let loaded = store.load(id).await?.is_some();
                assert_eq!(
                    loaded,
                    opened_with == created_with,
                    "created with {created_with:?}, opened with {opened_with:?}"
                );
            }
        }

        // The rows nobody can find any more still expire and are cleaned
        // up, by a store with another setting.
        let other = if created_with.is_none() {
            Some(KEY)
        } else {
            None
        };
        let store = open(other).await?;
        assert_eq!(store.inner().stats().await?.active, 3);
        clock.advance(Duration::from_secs(2 * 3600));
        assert_eq!(store.inner().delete_expired().await?.removed, 3);
        let stats = store.inner().stats().await?;
        assert_eq!((stats.active, stats.expired), (0, 0));
    }
    Ok(())
}

#[tokio::test]
async fn deleted_session_data_stays_in_the_files_until_vacuum() -> Result {
    const GONE: &str = "DELETED-SESSION-DATA-5e1f";
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sessions.db");
    let store = Arc::new(SqliteSessionStore::new(
        builder(&path).hash_tokens(KEY).build_async().await?,
    ));
    new_session(&store, "kept").await?;
    let s = session(None, &store);
    s.insert("value", GONE).await?;
    s.save().await?;
    s.delete().await?;
    assert_eq!(store.load(&s.id().ok_or("saved")?).await?, None);

    let in_files = || -> Result<bool> {
        Ok(files(&path)?
            .iter()
            .any(|(_, b)| contains(b, GONE.as_bytes())))
    };
    assert!(in_files()?, "a delete does not scrub the bytes");
    store.inner().vacuum().await?;
    assert!(!in_files()?, "vacuum() rewrites the file without them");
    assert!(files(&path)?
        .iter()
        .any(|(_, b)| contains(b, DATA_MARK.as_bytes())));
    Ok(())
}
