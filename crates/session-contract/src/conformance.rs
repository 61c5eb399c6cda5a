//! The conformance suite: what every [`SessionStore`] must do, as plain
//! generic async functions over a [`Harness`]. Most cases port Go scs's own
//! store tests; the rest cover what the Rust stores add (`create`, `list`,
//! limits, `delete_expired`, token hashing).
//!
//! A backend's test file implements [`Harness`] and stamps out one
//! `#[tokio::test]` per case with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! // tests/conformance.rs of a backend crate:
//! mod harness; // `impl Harness for MyHarness`
//! session_contract::conformance_tests!(harness::MyHarness);
//! ```
//!
//! sqlite3store's `tests/conformance_async.rs` and `tests/common/harness.rs`
//! are a complete example.
//!
//! The calling crate needs `tokio` (features `rt`, `macros`) as a
//! dev-dependency. Cases never assert timings; a wait for background cleanup
//! is a generous timeout.
//!
//! Time in the suite is whatever the store's clock says: [`Harness::now`] and
//! [`Harness::advance`]. Margins are seconds, not milliseconds, so a backend
//! whose clock is real (the database's) passes as surely as one with a
//! manual clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Entry, ErrorKind, Listed, Session, SessionStore, StoreError, TokenHasher};

/// What every case returns: any error fails the test, with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How a case wants its store configured. Fields left `None` take the
/// backend's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Run background cleanup this often, its first run one interval after
    /// opening. `None`: no background cleanup.
    pub cleanup_interval: Option<Duration>,
    /// Rows deleted per cleanup batch.
    pub cleanup_batch_size: Option<usize>,
    /// The longest token accepted, in bytes.
    pub max_token_len: Option<usize>,
    /// The largest data accepted, in bytes.
    pub max_data_len: Option<usize>,
    /// Hash tokens at rest with this HMAC key.
    pub hash_key: Option<Vec<u8>>,
}

/// A backend under test: a fresh store on fresh, private storage, and what
/// the suite needs to look behind the store's back.
#[async_trait::async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// The store under test.
    type Store: SessionStore;

    /// A fresh, empty store on storage no other test uses, configured by
    /// `options`.
    async fn open(options: Options) -> TestResult<Self>;

    /// The store opened by [`open`](Self::open).
    fn store(&self) -> &Self::Store;

    /// The store's clock now (a manual clock, or the database's).
    fn now(&self) -> SystemTime;

    /// Moves time forward by `by` as the store sees it: a manual clock moves
    /// on, or every stored expiry moves back by `by`.
    async fn advance(&self, by: Duration) -> TestResult;

    /// A second, independent handle on the same storage, with the same
    /// options.
    async fn second_handle(&self) -> TestResult<Self::Store>;

    /// Writes a row the way Go scs's store does (its own SQL, the raw token),
    /// bypassing the store under test.
    async fn insert_raw(&self, token: &str, data: &[u8], expiry: SystemTime) -> TestResult;

    /// How many rows the storage holds, live or expired, counted bypassing
    /// the store under test.
    async fn count_rows(&self) -> TestResult<u64>;
}

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

/// How long a case waits for background cleanup before it fails.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(30);

/// `t` truncated to whole milliseconds: the precision every backend keeps.
fn whole_ms(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            UNIX_EPOCH + Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }
        Err(_) => t,
    }
}

/// Fails unless `err` is of `kind`, naming what was being tried.
fn expect_kind<T: std::fmt::Debug, E: StoreError>(
    result: Result<T, E>,
    kind: ErrorKind,
    what: &str,
) -> TestResult {
    match result {
        Err(err) if err.kind() == kind => {
            if err.is_retryable() {
                return Err(format!("{what}: a {kind} error must not be retryable").into());
            }
            Ok(())
        }
        Err(err) => Err(format!(
            "{what}: expected a {kind} error, got {:?}: {err}",
            err.kind()
        )
        .into()),
        Ok(v) => Err(format!("{what}: expected a {kind} error, got Ok({v:?})").into()),
    }
}

// ---- Go's own tests, ported ----

/// Go's TestFind: a row written by Go's SQL is found.
pub async fn find_existing<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    h.insert_raw("session_token", b"encoded_data", h.now() + MINUTE)
        .await?;
    assert_eq!(
        h.store().find("session_token").await?,
        Some(b"encoded_data".to_vec())
    );
    Ok(())
}

/// Go's TestFindMissing.
pub async fn find_missing<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    assert_eq!(h.store().find("missing_session_token").await?, None);
    Ok(())
}

/// Go's TestSaveNew: one row, with the data and the expiry to the
/// millisecond.
pub async fn commit_new<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let expiry = whole_ms(h.now() + MINUTE);
    h.store()
        .commit("session_token", b"encoded_data", expiry)
        .await?;
    assert_eq!(
        h.store().find_with_expiry("session_token").await?,
        Some(Session::new(b"encoded_data".to_vec(), expiry))
    );
    assert_eq!(h.count_rows().await?, 1);
    Ok(())
}

/// Go's TestSaveUpdated: commit over an existing token replaces its data
/// and its expiry, a shorter one included.
pub async fn commit_updates<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    h.insert_raw("session_token", b"encoded_data", h.now() + MINUTE)
        .await?;
    store
        .commit("session_token", b"new_encoded_data", h.now() + 2 * MINUTE)
        .await?;
    assert_eq!(
        store.find("session_token").await?,
        Some(b"new_encoded_data".to_vec())
    );
    assert_eq!(h.count_rows().await?, 1);
    // A shorter expiry is honoured too (replace, not max).
    store
        .commit("session_token", b"x", h.now() + 10 * SECOND)
        .await?;
    h.advance(10 * SECOND).await?;
    assert_eq!(store.find("session_token").await?, None);
    Ok(())
}

/// Go's TestExpiry: found until the expiry passes, then not; the row stays
/// until cleanup.
pub async fn expiry<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    // The store's notion of now (for adapters) agrees with the harness's.
    let skew = |a: SystemTime, b: SystemTime| a.duration_since(b).or_else(|_| b.duration_since(a));
    assert!(skew(store.now(), h.now())? < SECOND, "store.now() is off");
    store
        .commit("session_token", b"encoded_data", h.now() + MINUTE)
        .await?;
    assert_eq!(
        store.find("session_token").await?,
        Some(b"encoded_data".to_vec())
    );
    h.advance(MINUTE - SECOND).await?;
    assert!(store.find("session_token").await?.is_some());
    assert!(
        skew(store.now(), h.now())? < SECOND,
        "store.now() did not move"
    );
    // At its expiry a session is gone: live only while now < expiry.
    h.advance(SECOND).await?;
    assert_eq!(store.find("session_token").await?, None);
    assert_eq!(store.find_with_expiry("session_token").await?, None);
    assert!(store.all().await?.is_empty());
    assert!(store.list(10).await?.is_empty());
    assert_eq!(h.count_rows().await?, 1);
    Ok(())
}

/// Go's TestCleanup: background cleanup removes expired rows on its
/// interval and leaves live ones.
pub async fn cleanup_thread_removes_expired<H: Harness>() -> TestResult {
    let h = H::open(Options {
        cleanup_interval: Some(Duration::from_millis(20)),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    store
        .commit("session_token", b"encoded_data", h.now() + SECOND)
        .await?;
    store
        .commit("keeper", b"stays", h.now() + 10 * MINUTE)
        .await?;
    assert_eq!(h.count_rows().await?, 2);
    h.advance(2 * SECOND).await?;
    let deadline = tokio::time::Instant::now() + CLEANUP_PATIENCE;
    while h.count_rows().await? != 1 {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("cleanup did not run within {CLEANUP_PATIENCE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.find("keeper").await?, Some(b"stays".to_vec()));
    store.stop_cleanup();
    store.stop_cleanup(); // idempotent
    Ok(())
}

/// Go's TestStopNilCleanup: stopping a store whose cleanup never started.
pub async fn stop_without_cleanup<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    h.store().stop_cleanup();
    h.store().stop_cleanup(); // idempotent
                              // The store still works.
    h.store().commit("t", b"d", h.now() + MINUTE).await?;
    assert_eq!(h.store().find("t").await?, Some(b"d".to_vec()));
    Ok(())
}

// ---- the rest of the contract ----

/// `delete` reports whether a row was there; a second delete is a no-op.
pub async fn delete_is_idempotent<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    store.commit("t", b"d", h.now() + MINUTE).await?;
    assert!(store.delete("t").await?);
    assert_eq!(store.find("t").await?, None);
    assert!(!store.delete("t").await?);
    assert!(!store.delete("never-existed").await?);
    // An expired row is still a row: deleting it says so.
    store.commit("old", b"d", h.now() - MINUTE).await?;
    assert!(store.delete("old").await?);
    assert_eq!(h.count_rows().await?, 0);
    Ok(())
}

/// `all` returns live sessions only, as the clock moves.
pub async fn all_returns_active_only<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    assert!(store.all().await?.is_empty());
    store.commit("a", b"1", h.now() + MINUTE).await?;
    store.commit("b", b"2", h.now() + 2 * MINUTE).await?;
    store.commit("gone", b"3", h.now() - MINUTE).await?;
    let all = store.all().await?;
    assert_eq!(all.len(), 2);
    assert_eq!(all["a"], b"1");
    assert_eq!(all["b"], b"2");
    h.advance(MINUTE).await?;
    assert_eq!(store.all().await?.keys().collect::<Vec<_>>(), ["b"]);
    Ok(())
}

/// `delete_expired` removes exactly the expired rows, across several
/// batches, and says how many.
pub async fn delete_expired_on_demand<H: Harness>() -> TestResult {
    let h = H::open(Options {
        cleanup_batch_size: Some(7),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    let start = h.now();
    for i in 0..50 {
        store
            .commit(&format!("old{i}"), b"x", start + 10 * SECOND * i)
            .await?;
    }
    for i in 0..10 {
        store
            .commit(&format!("new{i}"), b"y", start + 100 * MINUTE)
            .await?;
    }
    // old0..=old30 expire; old31 has 10 s to spare.
    h.advance(300 * SECOND).await?;
    assert_eq!(store.delete_expired().await?, 31);
    assert_eq!(store.delete_expired().await?, 0);
    assert_eq!(store.all().await?.len(), 19 + 10);
    assert_eq!(h.count_rows().await?, 19 + 10);
    Ok(())
}

/// An expiry long past is stored, never found, and cleaned up.
pub async fn past_expiry_is_stored_but_never_found<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let long_ago = UNIX_EPOCH - Duration::from_secs(100 * 365 * 86_400);
    store.commit("past", b"x", long_ago).await?;
    store.commit("epoch", b"x", UNIX_EPOCH).await?;
    assert_eq!(store.find("past").await?, None);
    assert_eq!(store.find("epoch").await?, None);
    assert_eq!(h.count_rows().await?, 2);
    assert_eq!(store.delete_expired().await?, 2);
    assert_eq!(h.count_rows().await?, 0);
    Ok(())
}

/// An expiry centuries ahead works; one beyond what the backend can store
/// is clamped, never a panic or an error, and stays live.
pub async fn far_future_expiry_is_found<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let centuries = h.now() + Duration::from_secs(800 * 365 * 86_400);
    store.commit("future", b"x", centuries).await?;
    store
        .commit(
            "beyond",
            b"y",
            UNIX_EPOCH + Duration::from_secs(u64::MAX / 2),
        )
        .await?;
    assert_eq!(store.find("future").await?, Some(b"x".to_vec()));
    assert_eq!(store.find("beyond").await?, Some(b"y".to_vec()));
    Ok(())
}

/// `create` never overwrites a live session; an expired holder of the
/// token counts as gone.
pub async fn create_does_not_overwrite_active<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    assert!(store.create("id", b"first", h.now() + MINUTE).await?);
    assert!(!store.create("id", b"second", h.now() + MINUTE).await?);
    assert_eq!(store.find("id").await?, Some(b"first".to_vec()));
    h.advance(2 * MINUTE).await?;
    assert!(store.create("id", b"third", h.now() + MINUTE).await?);
    assert_eq!(store.find("id").await?, Some(b"third".to_vec()));
    assert_eq!(h.count_rows().await?, 1);
    Ok(())
}

/// Tokens with quotes, SQL, Unicode, control characters and wildcards are
/// plain strings. (A NUL byte is backend-specific: SQLite stores it,
/// PostgreSQL's TEXT cannot; each backend tests it on its own.)
pub async fn odd_tokens_round_trip<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let tokens = [
        "'; DROP TABLE sessions; --",
        "\"quoted\"",
        "back\\slash",
        "ümlaut ☃ 🦀",
        "مرحبا\u{202e}",
        "tab\tnew\nline",
        "%_*?",
        " ",
    ];
    for (i, t) in (0u8..).zip(tokens) {
        store.commit(t, &[i; 3], h.now() + MINUTE).await?;
    }
    let all = store.all().await?;
    assert_eq!(all.len(), tokens.len());
    for (i, t) in (0u8..).zip(tokens) {
        assert_eq!(store.find(t).await?, Some(vec![i; 3]), "{t:?}");
        assert_eq!(all.get(t), Some(&vec![i; 3]), "{t:?}");
    }
    // A prefix of a stored token is a different token; wildcards are not.
    assert_eq!(store.find("back").await?, None);
    assert_eq!(store.find("%").await?, None);
    assert_eq!(h.count_rows().await?, tokens.len() as u64);
    Ok(())
}

/// Empty and over-long tokens are simply not found, and not deleted.
pub async fn bad_tokens_are_not_found<H: Harness>() -> TestResult {
    let h = H::open(Options {
        max_token_len: Some(16),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    assert_eq!(store.find("").await?, None);
    assert_eq!(store.find(&"x".repeat(17)).await?, None);
    assert_eq!(store.find(&"x".repeat(1 << 20)).await?, None);
    assert_eq!(store.find_with_expiry(&"x".repeat(17)).await?, None);
    assert!(!store.delete("").await?);
    assert!(!store.delete(&"x".repeat(17)).await?);
    Ok(())
}

/// An empty token, an over-long token and over-large data are refused as
/// invalid input (not retryable) and write nothing; the limits themselves
/// are accepted.
pub async fn bad_commits_are_refused_and_write_nothing<H: Harness>() -> TestResult {
    let h = H::open(Options {
        max_token_len: Some(16),
        max_data_len: Some(100),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    let exp = h.now() + MINUTE;
    let kind = ErrorKind::InvalidInput;
    expect_kind(store.commit("", b"x", exp).await, kind, "empty token")?;
    expect_kind(
        store.commit(&"x".repeat(17), b"x", exp).await,
        kind,
        "token over the limit",
    )?;
    expect_kind(
        store.commit("ok", &[0; 101], exp).await,
        kind,
        "data over the limit",
    )?;
    expect_kind(
        store.create("", b"x", exp).await,
        kind,
        "create, empty token",
    )?;
    expect_kind(
        store.create("ok", &[0; 101], exp).await,
        kind,
        "create, data over the limit",
    )?;
    assert_eq!(h.count_rows().await?, 0);
    store.commit(&"x".repeat(16), &[7; 100], exp).await?;
    store.commit("empty-data", b"", exp).await?;
    assert_eq!(store.find("empty-data").await?, Some(Vec::new()));
    assert_eq!(store.find(&"x".repeat(16)).await?, Some(vec![7; 100]));
    assert_eq!(h.count_rows().await?, 2);
    Ok(())
}

/// A second handle on the same storage sees what the first wrote, and the
/// other way round.
pub async fn data_survives_reopen<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    h.store()
        .commit("persist", b"across handles", h.now() + MINUTE)
        .await?;
    let second = h.second_handle().await?;
    assert_eq!(
        second.find("persist").await?,
        Some(b"across handles".to_vec())
    );
    second.commit("back", b"again", h.now() + MINUTE).await?;
    assert_eq!(h.store().find("back").await?, Some(b"again".to_vec()));
    assert!(second.delete("persist").await?);
    assert_eq!(h.store().find("persist").await?, None);
    second.stop_cleanup();
    Ok(())
}

// ---- extras: what the Rust stores add to Go's contract ----

/// `find_with_expiry` gives the data and the stored expiry of live
/// sessions only.
pub async fn find_with_expiry_of_live_sessions<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let expiry = whole_ms(h.now() + MINUTE + Duration::from_millis(123));
    store.commit("t", b"data", expiry).await?;
    assert_eq!(
        store.find_with_expiry("t").await?,
        Some(Session::new(b"data".to_vec(), expiry))
    );
    assert_eq!(store.find_with_expiry("missing").await?, None);
    h.advance(2 * MINUTE).await?;
    assert_eq!(store.find_with_expiry("t").await?, None);
    Ok(())
}

/// `list` returns live sessions only, soonest expiry first, at most `limit`.
pub async fn list_is_soonest_first_and_limited<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let start = whole_ms(h.now());
    // Written out of order, so the order must come from the expiries.
    for i in [3u32, 1, 4, 0, 2] {
        store
            .commit(&format!("t{i}"), b"x", start + MINUTE * (i + 1))
            .await?;
    }
    store.commit("expired", b"x", start - MINUTE).await?;
    let listed = store.list(10).await?;
    let want: Vec<Listed> = (0..5u32)
        .map(|i| Listed::new(format!("t{i}"), start + MINUTE * (i + 1)))
        .collect();
    assert_eq!(listed, want);
    assert_eq!(store.list(2).await?, want[..2]);
    assert!(store.list(0).await?.is_empty());
    assert_eq!(store.list(usize::MAX).await?.len(), 5);
    h.advance(MINUTE).await?; // t0 expires
                              // Tokens only: a harness may move time by moving the stored expiries
                              // back (PostgreSQL's, whose clock is the server's).
    let tokens = |l: &[Listed]| l.iter().map(|l| l.token.clone()).collect::<Vec<_>>();
    assert_eq!(tokens(&store.list(10).await?), tokens(&want[1..]));
    Ok(())
}

/// `export_page` walks the live sessions page by page in key order, with
/// their data and expiry; `export_page_owned` adds each one's owner.
pub async fn export_pages_walk_live_sessions_in_key_order<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let start = whole_ms(h.now());
    let expiry = |i: u32| start + MINUTE * (i + 1);
    // Written out of order, so the order must come from the keys.
    for i in [3u32, 0, 4, 1] {
        let token = format!("k{i}");
        store.commit(&token, token.as_bytes(), expiry(i)).await?;
    }
    store
        .commit_owned("k2", b"k2", expiry(2), Some("alice"))
        .await?;
    store.commit("k1-dead", b"x", start - MINUTE).await?;

    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = store.export_page(&after, 2).await?;
        let Some(last) = page.last() else { break };
        after = last.token.clone();
        pages += 1;
        seen.extend(page);
    }
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    let want: Vec<Entry> = (0..5u32)
        .map(|i| {
            let token = format!("k{i}");
            let data = token.clone().into_bytes();
            Entry::new(token, Session::new(data, expiry(i)))
        })
        .collect();
    assert_eq!(seen, want, "key order, data and expiry, no expired row");
    assert!(store.export_page("k4", 10).await?.is_empty());
    assert!(store.export_page("", 0).await?.is_empty());

    let owned = store.export_page_owned("k1", 10).await?;
    let owners: Vec<_> = owned
        .iter()
        .map(|(e, o)| (e.token.as_str(), o.as_deref()))
        .collect();
    assert_eq!(owners, [("k2", Some("alice")), ("k3", None), ("k4", None)]);
    assert_eq!(owned[0].0, want[2]);
    // Revoked sessions are gone from exports too.
    assert_eq!(store.revoke_owner("alice").await?, 1);
    assert_eq!(store.export_page_owned("", 10).await?.len(), 4);
    Ok(())
}

/// Concurrent `create`s of one token, on two handles, store it once.
pub async fn create_is_collision_safe<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let (a, b) = (h.store(), h.second_handle().await?);
    let exp = h.now() + MINUTE;
    let results = tokio::join!(
        a.create("same", b"a1", exp),
        b.create("same", b"b1", exp),
        a.create("same", b"a2", exp),
        b.create("same", b"b2", exp),
    );
    let won = [results.0?, results.1?, results.2?, results.3?];
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "exactly one create wins: {won:?}"
    );
    let winner = [&b"a1"[..], b"b1", b"a2", b"b2"]
        .into_iter()
        .zip(won)
        .find_map(|(data, w)| w.then_some(data));
    assert_eq!(a.find("same").await?.as_deref(), winner);
    assert_eq!(h.count_rows().await?, 1);
    b.stop_cleanup();
    Ok(())
}

/// With a hashing key, every call takes the raw token, storage and the
/// listings hold only the HMAC keys, and a store without the key (or with
/// another) cannot use the raw token.
pub async fn hashed_tokens_are_stored_as_hmac<H: Harness>() -> TestResult {
    const KEY: &[u8] = b"conformance-key";
    let h = H::open(Options {
        hash_key: Some(KEY.to_vec()),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    let hasher = TokenHasher::new(KEY);
    let exp = whole_ms(h.now() + MINUTE);
    store.commit("raw-token", b"data", exp).await?;
    assert!(store.create("raw-created", b"new", exp).await?);
    assert!(!store.create("raw-created", b"again", exp).await?);
    assert_eq!(store.find("raw-token").await?, Some(b"data".to_vec()));
    // The stored key is not a token.
    assert_eq!(store.find(&hasher.hash("raw-token")).await?, None);
    let all = store.all().await?;
    let want: HashMap<String, Vec<u8>> = [
        (hasher.hash("raw-token"), b"data".to_vec()),
        (hasher.hash("raw-created"), b"new".to_vec()),
    ]
    .into_iter()
    .collect();
    assert_eq!(all, want);
    let mut listed: Vec<String> = store.list(10).await?.into_iter().map(|l| l.token).collect();
    listed.sort();
    let mut keys: Vec<String> = want.into_keys().collect();
    keys.sort();
    assert_eq!(listed, keys);
    assert!(store.delete("raw-token").await?);
    assert_eq!(store.find("raw-token").await?, None);
    assert_eq!(h.count_rows().await?, 1);
    Ok(())
}

// ---- Revocation wins, owners, touch ----

/// `update` writes over a live session only, keeps its owner, and never
/// brings back one that is missing, deleted or expired.
pub async fn update_writes_live_sessions_only<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let exp = whole_ms(h.now() + MINUTE);
    assert!(!store.update("missing", b"x", exp).await?);
    assert_eq!(store.find("missing").await?, None);
    assert_eq!(h.count_rows().await?, 0, "update must not insert");

    store.commit_owned("t", b"one", exp, Some("alice")).await?;
    let later = whole_ms(h.now() + 2 * MINUTE);
    assert!(store.update("t", b"two", later).await?);
    assert_eq!(
        store.find_with_expiry("t").await?,
        Some(Session::new(b"two".to_vec(), later))
    );
    assert_eq!(
        store.count_owner("alice").await?,
        1,
        "update keeps the owner"
    );
    assert!(
        store
            .update_owned("t", b"three", later, Some("bob"))
            .await?
    );
    assert_eq!(store.count_owner("alice").await?, 0);
    assert_eq!(store.count_owner("bob").await?, 1);
    assert!(store.update_owned("t", b"four", later, None).await?);
    assert_eq!(store.count_owner("bob").await?, 0, "None clears the owner");

    assert!(store.delete("t").await?);
    assert!(!store.update("t", b"late", later).await?);
    assert!(!store.update_owned("t", b"late", later, Some("bob")).await?);
    assert_eq!(store.find("t").await?, None, "a late update resurrected it");
    assert_eq!(h.count_rows().await?, 0);

    store.commit("e", b"short", h.now() + 5 * SECOND).await?;
    h.advance(10 * SECOND).await?;
    assert!(!store.update("e", b"late", h.now() + MINUTE).await?);
    assert_eq!(store.find("e").await?, None, "an expired session came back");

    expect_kind(
        store.update("", b"x", exp).await,
        ErrorKind::InvalidInput,
        "update with an empty token",
    )?;
    Ok(())
}

/// The race from the issue, at the store: an update and a delete of the
/// same session at once, many times. Whatever the order, once the delete has
/// returned the session is never found again.
pub async fn delete_beats_concurrent_update<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let exp = h.now() + MINUTE;
    for i in 0..100 {
        let token = format!("race-{i}");
        store.commit(&token, b"loaded", exp).await?;
        let (updated, deleted) = tokio::join!(
            store.update(&token, b"saved late", exp),
            store.delete(&token)
        );
        let (_, deleted) = (updated?, deleted?);
        assert!(deleted, "{token}: the delete found nothing");
        assert_eq!(store.find(&token).await?, None, "{token} came back");
        assert!(!store.update(&token, b"later still", exp).await?);
        assert_eq!(store.find(&token).await?, None, "{token} came back");
    }
    assert_eq!(h.count_rows().await?, 0);
    Ok(())
}

/// `touch` moves a live session's expiry and nothing else; it never
/// recreates a gone session.
pub async fn touch_moves_expiry_of_live_sessions_only<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    assert!(!store.touch("missing", h.now() + MINUTE).await?);
    assert_eq!(h.count_rows().await?, 0, "touch must not insert");
    assert!(!store.touch("", h.now() + MINUTE).await?);

    store
        .commit_owned("t", b"data", h.now() + 10 * SECOND, Some("alice"))
        .await?;
    let later = whole_ms(h.now() + 10 * MINUTE);
    assert!(store.touch("t", later).await?);
    assert_eq!(
        store.find_with_expiry("t").await?,
        Some(Session::new(b"data".to_vec(), later))
    );
    h.advance(MINUTE).await?;
    assert_eq!(store.find("t").await?, Some(b"data".to_vec()));
    assert_eq!(
        store.count_owner("alice").await?,
        1,
        "touch keeps the owner"
    );

    store.commit("e", b"short", h.now() + 5 * SECOND).await?;
    h.advance(10 * SECOND).await?;
    assert!(!store.touch("e", h.now() + MINUTE).await?);
    assert_eq!(
        store.find("e").await?,
        None,
        "touch revived an expired session"
    );
    assert!(store.delete("t").await?);
    assert!(!store.touch("t", h.now() + MINUTE).await?);
    assert_eq!(store.find("t").await?, None);
    Ok(())
}

/// Owners: list (soonest first, limited), count and revoke, without
/// touching anyone else's sessions.
pub async fn owners_list_count_and_revoke<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let (e1, e2, e3) = (
        whole_ms(h.now() + MINUTE),
        whole_ms(h.now() + 2 * MINUTE),
        whole_ms(h.now() + 3 * MINUTE),
    );
    store.commit_owned("a2", b"x", e2, Some("alice")).await?;
    store.commit_owned("a1", b"x", e1, Some("alice")).await?;
    assert!(store.create_owned("a3", b"x", e3, Some("alice")).await?);
    store.commit_owned("b1", b"x", e1, Some("bob")).await?;
    store.commit("anon", b"x", e1).await?;
    // A plain commit keeps the owner.
    store.commit("a2", b"y", e2).await?;

    assert_eq!(store.count_owner("alice").await?, 3);
    assert_eq!(store.count_owner("bob").await?, 1);
    assert_eq!(store.count_owner("carol").await?, 0);
    let listed = store.list_owner("alice", 10).await?;
    assert_eq!(
        listed,
        vec![
            Listed::new("a1".into(), e1),
            Listed::new("a2".into(), e2),
            Listed::new("a3".into(), e3),
        ]
    );
    assert_eq!(store.list_owner("alice", 2).await?.len(), 2);
    assert!(store.list_owner("carol", 10).await?.is_empty());

    assert_eq!(store.revoke_owner("alice").await?, 3);
    for token in ["a1", "a2", "a3"] {
        assert_eq!(store.find(token).await?, None, "{token} survived");
    }
    assert_eq!(store.count_owner("alice").await?, 0);
    assert!(store.list_owner("alice", 10).await?.is_empty());
    assert_eq!(store.find("b1").await?, Some(b"x".to_vec()));
    assert_eq!(store.find("anon").await?, Some(b"x".to_vec()));
    assert_eq!(store.revoke_owner("alice").await?, 0);
    assert_eq!(h.count_rows().await?, 2);
    // The revoked sessions stay gone for a late save.
    assert!(!store.update("a1", b"late", e1).await?);
    assert_eq!(store.find("a1").await?, None);
    Ok(())
}

/// A session deleted or expired takes its owner with it: no stale entry
/// shows in counts or listings, and a new session on an expired one's token
/// does not inherit its owner.
pub async fn owners_leave_no_stale_entries<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    store
        .commit_owned("gone", b"x", h.now() + MINUTE, Some("alice"))
        .await?;
    assert!(store.delete("gone").await?);
    assert_eq!(store.count_owner("alice").await?, 0);
    assert!(store.list_owner("alice", 10).await?.is_empty());

    store
        .commit_owned("old", b"x", h.now() + 5 * SECOND, Some("alice"))
        .await?;
    store
        .commit_owned("old2", b"x", h.now() + 5 * SECOND, Some("alice"))
        .await?;
    h.advance(10 * SECOND).await?;
    assert_eq!(
        store.count_owner("alice").await?,
        0,
        "an expired session counted"
    );
    assert!(store.list_owner("alice", 10).await?.is_empty());
    // A new session on the expired one's token has no owner.
    assert!(store.create("old", b"new", h.now() + MINUTE).await?);
    assert_eq!(
        store.count_owner("alice").await?,
        0,
        "the owner was inherited"
    );
    // Revoking still removes the expired row the owner has left.
    assert_eq!(store.revoke_owner("alice").await?, 1);
    assert_eq!(store.find("old").await?, Some(b"new".to_vec()));
    assert_eq!(h.count_rows().await?, 1);
    Ok(())
}

/// An owner that cannot be stored is refused on writes and finds nothing on
/// reads.
pub async fn bad_owners_are_refused<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let exp = h.now() + MINUTE;
    let long = "o".repeat(crate::MAX_OWNER_LEN + 1);
    for bad in ["", long.as_str(), "nul\0owner"] {
        expect_kind(
            store.commit_owned("t", b"x", exp, Some(bad)).await,
            ErrorKind::InvalidInput,
            "commit_owned with a bad owner",
        )?;
        expect_kind(
            store.create_owned("t", b"x", exp, Some(bad)).await,
            ErrorKind::InvalidInput,
            "create_owned with a bad owner",
        )?;
        assert_eq!(store.count_owner(bad).await?, 0);
        assert!(store.list_owner(bad, 10).await?.is_empty());
        assert_eq!(store.revoke_owner(bad).await?, 0);
    }
    assert_eq!(h.count_rows().await?, 0, "a refused write stored something");
    store.commit("t", b"x", exp).await?;
    expect_kind(
        store.update_owned("t", b"y", exp, Some("")).await,
        ErrorKind::InvalidInput,
        "update_owned with an empty owner",
    )?;
    assert_eq!(store.find("t").await?, Some(b"x".to_vec()));
    let longest = "o".repeat(crate::MAX_OWNER_LEN);
    assert!(store.update_owned("t", b"y", exp, Some(&longest)).await?);
    assert_eq!(store.count_owner(&longest).await?, 1);
    Ok(())
}

/// Revoking an owner with more sessions than one step removes them all.
pub async fn revoke_owner_with_many_sessions<H: Harness>() -> TestResult {
    let h = H::open(Options::default()).await?;
    let store = h.store();
    let exp = h.now() + MINUTE;
    for i in 0..700 {
        store
            .commit_owned(&format!("s{i}"), b"x", exp, Some("many"))
            .await?;
    }
    store.commit_owned("other", b"x", exp, Some("few")).await?;
    assert_eq!(store.count_owner("many").await?, 700);
    assert_eq!(store.revoke_owner("many").await?, 700);
    assert_eq!(store.count_owner("many").await?, 0);
    assert_eq!(h.count_rows().await?, 1);
    assert_eq!(store.count_owner("few").await?, 1);
    Ok(())
}

/// With hashed tokens, owner listings show the stored keys, and every owner
/// operation takes the raw token.
pub async fn owners_with_hashed_tokens<H: Harness>() -> TestResult {
    const KEY: &[u8] = b"conformance-key";
    let h = H::open(Options {
        hash_key: Some(KEY.to_vec()),
        ..Options::default()
    })
    .await?;
    let store = h.store();
    let exp = whole_ms(h.now() + MINUTE);
    store.commit_owned("raw", b"x", exp, Some("alice")).await?;
    assert!(store.touch("raw", exp).await?);
    assert!(store.update("raw", b"y", exp).await?);
    assert_eq!(
        store.list_owner("alice", 10).await?,
        vec![Listed::new(TokenHasher::new(KEY).hash("raw"), exp)]
    );
    assert_eq!(store.revoke_owner("alice").await?, 1);
    assert_eq!(store.find("raw").await?, None);
    Ok(())
}

/// Stamps out one `#[tokio::test]` per conformance case for a [`Harness`]
/// type: `conformance_tests!(MyHarness);` runs every case, and
/// `conformance_tests!(MyHarness: find_missing, expiry);` the cases named.
///
/// [`Harness`]: crate::conformance::Harness
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() -> $crate::conformance::TestResult {
                $crate::conformance::$case::<$harness>().await
            }
        )*
    };
    ($harness:ty) => {
        $crate::conformance_tests!($harness:
            find_existing, find_missing, commit_new, commit_updates, expiry,
            cleanup_thread_removes_expired, stop_without_cleanup,
            delete_is_idempotent, all_returns_active_only, delete_expired_on_demand,
            past_expiry_is_stored_but_never_found, far_future_expiry_is_found,
            create_does_not_overwrite_active, odd_tokens_round_trip,
            bad_tokens_are_not_found, bad_commits_are_refused_and_write_nothing,
            data_survives_reopen, find_with_expiry_of_live_sessions,
            list_is_soonest_first_and_limited, export_pages_walk_live_sessions_in_key_order,
            create_is_collision_safe,
            hashed_tokens_are_stored_as_hmac,
            update_writes_live_sessions_only, delete_beats_concurrent_update,
            touch_moves_expiry_of_live_sessions_only, owners_list_count_and_revoke,
            owners_leave_no_stale_entries, bad_owners_are_refused,
            revoke_owner_with_many_sessions, owners_with_hashed_tokens,
        );
    };
}
