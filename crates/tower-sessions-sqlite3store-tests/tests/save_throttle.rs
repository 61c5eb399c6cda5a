//! Saves that change nothing (`ContractStore::with_expiry_write_threshold`),
//! on SQLite and, when `PGSTORE_TEST_URL` names a server, on PostgreSQL:
//! what is written is seen through a backend wrapper that counts writes and
//! through the rows' stored expiry.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::json;
use session_contract::{Entry, Listed, Session, SessionStore as Backend};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore as _;
use tower_sessions_contract::ContractStore;
use tower_sessions_sqlite3store::sqlite3store::ManualClock;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const HOUR: Duration = Duration::from_secs(3600);

/// A backend that counts the calls that write a session (all but reads,
/// `delete` and cleanup).
#[derive(Clone, Debug)]
struct Counting<B> {
    inner: B,
    writes: Arc<AtomicUsize>,
}

impl<B> Counting<B> {
    fn count(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<B: Backend> Backend for Counting<B> {
    type Error = B::Error;

    async fn find(&self, token: &str) -> std::result::Result<Option<Vec<u8>>, B::Error> {
        self.inner.find(token).await
    }
    async fn find_with_expiry(
        &self,
        token: &str,
    ) -> std::result::Result<Option<Session>, B::Error> {
        self.inner.find_with_expiry(token).await
    }
    async fn commit(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> std::result::Result<(), B::Error> {
        self.count();
        self.inner.commit(token, data, expiry).await
    }
    async fn create(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> std::result::Result<bool, B::Error> {
        self.count();
        self.inner.create(token, data, expiry).await
    }
    async fn update(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
    ) -> std::result::Result<bool, B::Error> {
        self.count();
        self.inner.update(token, data, expiry).await
    }
    async fn update_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> std::result::Result<bool, B::Error> {
        self.count();
        self.inner.update_owned(token, data, expiry, owner).await
    }
    async fn commit_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> std::result::Result<(), B::Error> {
        self.count();
        self.inner.commit_owned(token, data, expiry, owner).await
    }
    async fn create_owned(
        &self,
        token: &str,
        data: &[u8],
        expiry: SystemTime,
        owner: Option<&str>,
    ) -> std::result::Result<bool, B::Error> {
        self.count();
        self.inner.create_owned(token, data, expiry, owner).await
    }
    async fn touch(&self, token: &str, expiry: SystemTime) -> std::result::Result<bool, B::Error> {
        self.count();
        self.inner.touch(token, expiry).await
    }
    async fn list_owner(
        &self,
        owner: &str,
        limit: usize,
    ) -> std::result::Result<Vec<Listed>, B::Error> {
        self.inner.list_owner(owner, limit).await
    }
    async fn count_owner(&self, owner: &str) -> std::result::Result<u64, B::Error> {
        self.inner.count_owner(owner).await
    }
    async fn revoke_owner(&self, owner: &str) -> std::result::Result<u64, B::Error> {
        self.inner.revoke_owner(owner).await
    }
    async fn delete(&self, token: &str) -> std::result::Result<bool, B::Error> {
        self.inner.delete(token).await
    }
    async fn all(&self) -> std::result::Result<HashMap<String, Vec<u8>>, B::Error> {
        self.inner.all().await
    }
    async fn export_page(
        &self,
        after: &str,
        limit: usize,
    ) -> std::result::Result<Vec<Entry>, B::Error> {
        self.inner.export_page(after, limit).await
    }
    async fn export_page_owned(
        &self,
        after: &str,
        limit: usize,
    ) -> std::result::Result<Vec<(Entry, Option<String>)>, B::Error> {
        self.inner.export_page_owned(after, limit).await
    }
    async fn list(&self, limit: usize) -> std::result::Result<Vec<Listed>, B::Error> {
        self.inner.list(limit).await
    }
    async fn delete_expired(&self) -> std::result::Result<u64, B::Error> {
        self.inner.delete_expired().await
    }
    fn stop_cleanup(&self) {
        self.inner.stop_cleanup();
    }
    fn now(&self) -> SystemTime {
        self.inner.now()
    }
}

/// One backend under test: a fresh adapter over it with the default
/// threshold (1%), its write counter, and on SQLite the clock.
struct Fixture<B> {
    backend: Counting<B>,
    clock: Option<Arc<ManualClock>>,
    // Last: the store closes before its directory goes.
    _dir: Option<tempfile::TempDir>,
}

impl<B: Backend + Clone + fmt::Debug> Fixture<B> {
    /// A new adapter (a "replica": its own memory) over the backend.
    fn adapter(&self) -> ContractStore<Counting<B>> {
        ContractStore::new(self.backend.clone())
    }

    fn writes(&self) -> usize {
        self.backend.writes.load(Ordering::SeqCst)
    }

    fn now(&self) -> SystemTime {
        self.backend.now()
    }

    /// The expiry the row holds.
    async fn stored_expiry(&self, id: Id) -> Result<SystemTime> {
        let session = self
            .backend
            .find_with_expiry(&id.to_string())
            .await?
            .ok_or("the row is gone")?;
        Ok(session.expiry)
    }

    /// A live session expiring in an hour, created through `store`.
    async fn create(&self, store: &ContractStore<Counting<B>>) -> Result<Record> {
        let mut record = Record {
            id: Id::default(),
            data: HashMap::from([("user".to_owned(), json!({"name": "ada", "n": 1}))]),
            expiry_date: OffsetDateTime::from(self.now() + HOUR),
        };
        store.create(&mut record).await?;
        Ok(record)
    }
}

/// How far apart two expiries may be and still count as the same: the
/// backends keep at least millisecond precision.
fn same_instant(a: SystemTime, b: SystemTime) -> bool {
    let skew = a.duration_since(b).unwrap_or_else(|e| e.duration());
    skew < Duration::from_millis(2)
}

fn moved(record: &Record, by: Duration) -> Record {
    let mut moved = record.clone();
    moved.expiry_date += by;
    moved
}

mod cases {
    use super::*;

    pub(super) async fn an_unchanged_save_within_the_threshold_writes_nothing<B>(
        f: Fixture<B>,
    ) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let store = f.adapter();
        let record = f.create(&store).await?;
        let created = f.stored_expiry(record.id).await?;
        let writes = f.writes();

        // The same record, then its expiry moved by up to 1% of the hour.
        store.save(&record).await?;
        store.save(&moved(&record, Duration::from_secs(10))).await?;
        store.save(&moved(&record, Duration::from_secs(35))).await?;
        // What tower-sessions does per request: load, then save.
        let loaded = store.load(&record.id).await?.ok_or("the session is gone")?;
        assert_eq!(loaded, record);
        store.save(&moved(&loaded, Duration::from_secs(30))).await?;

        assert_eq!(f.writes(), writes, "nothing was written");
        assert!(same_instant(f.stored_expiry(record.id).await?, created));
        Ok(())
    }

    pub(super) async fn a_changed_save_always_writes<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let store = f.adapter();
        let mut record = f.create(&store).await?;
        let mut writes = f.writes();
        let changes = [
            json!({"name": "ada", "n": 2}),
            // Back to the data the session was created with.
            json!({"name": "ada", "n": 1}),
            json!({"n": 1, "name": "grace"}),
            json!(null),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            record.data.insert("user".into(), change);
            // The same expiry, or one moved a little: written either way.
            if i % 2 == 1 {
                record.expiry_date += Duration::from_secs(1);
            }
            store.save(&record).await?;
            writes += 1;
            assert_eq!(f.writes(), writes, "change {i}");
            assert_eq!(store.load(&record.id).await?.as_ref(), Some(&record));
        }
        for added in [true, false] {
            if added {
                record.data.insert("flash".into(), json!("saved"));
            } else {
                record.data.remove("flash");
            }
            store.save(&record).await?;
            writes += 1;
            assert_eq!(f.writes(), writes, "a key added or removed is a change");
            assert_eq!(store.load(&record.id).await?.as_ref(), Some(&record));
        }
        Ok(())
    }

    pub(super) async fn past_the_threshold_the_expiry_is_written<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let store = f.adapter();
        let record = f.create(&store).await?;
        let writes = f.writes();

        // 1% of an hour is 36 s.
        let later = moved(&record, Duration::from_secs(40));
        store.save(&later).await?;
        assert_eq!(f.writes(), writes + 1);
        let stored = f.stored_expiry(record.id).await?;
        assert!(same_instant(stored, SystemTime::from(later.expiry_date)));
        assert_eq!(store.load(&record.id).await?, Some(later.clone()));

        // Earlier, even by a second: written.
        let mut earlier = later.clone();
        earlier.expiry_date -= Duration::from_secs(1);
        store.save(&earlier).await?;
        assert_eq!(f.writes(), writes + 2);
        let stored = f.stored_expiry(record.id).await?;
        assert!(same_instant(stored, SystemTime::from(earlier.expiry_date)));
        Ok(())
    }

    /// A session saved once a second with its expiry an hour ahead: the
    /// stored expiry is never more than 1% of the lifetime behind the
    /// save's, and only about one save in 36 writes.
    pub(super) async fn the_stored_expiry_lags_at_most_the_threshold<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        const SAVES: u32 = 200;
        let store = f.adapter();
        let record = f.create(&store).await?;
        let writes = f.writes();
        for step in 1..=SAVES {
            // On SQLite time moves; on PostgreSQL the expiry alone does.
            if let Some(clock) = &f.clock {
                clock.advance(Duration::from_secs(1));
            }
            let save = moved(&record, Duration::from_secs(step.into()));
            let now = f.now();
            store.save(&save).await?;
            let asked = SystemTime::from(save.expiry_date);
            let lifetime = asked.duration_since(now)?;
            let stored = f.stored_expiry(record.id).await?;
            assert!(stored <= asked + Duration::from_millis(2), "never later");
            let lag = asked.duration_since(stored).unwrap_or_default();
            assert!(
                lag <= lifetime / 100 + Duration::from_millis(2),
                "save {step}: stored {lag:?} behind, over 1% of {lifetime:?}"
            );
        }
        let written = f.writes() - writes;
        assert!(
            (2..=10).contains(&written),
            "{written} writes for {SAVES} saves"
        );
        Ok(())
    }

    /// Two adapters over one backend, as two replicas: each decides by what
    /// it read or wrote itself; a change is never skipped, a skipped save
    /// never overwrites the other's change.
    pub(super) async fn replicas_never_skip_a_change<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let (a, b) = (f.adapter(), f.adapter());
        let original = f.create(&a).await?;

        // Both load the session; b changes it.
        let at_a = a.load(&original.id).await?.ok_or("gone")?;
        let mut at_b = b.load(&original.id).await?.ok_or("gone")?;
        at_b.data.insert("cart".into(), json!([1, 2]));
        b.save(&at_b).await?;

        // a's request saves what it loaded, unchanged: not written, so b's
        // change stays (as if a's save had come first).
        let writes = f.writes();
        a.save(&moved(&at_a, Duration::from_secs(5))).await?;
        assert_eq!(f.writes(), writes);
        assert_eq!(b.load(&original.id).await?.as_ref(), Some(&at_b));

        // a's next request sees b's change and reverts it: written, though
        // the data is what a saw first.
        let mut again = a.load(&original.id).await?.ok_or("gone")?;
        assert_eq!(again, at_b);
        again.data.remove("cart");
        assert_eq!(again.data, original.data);
        a.save(&again).await?;
        assert_eq!(f.writes(), writes + 1);
        assert_eq!(b.load(&original.id).await?.as_ref(), Some(&again));

        // b never saw the revert but loads before saving, as every
        // tower-sessions request does: its unchanged save is skipped, its
        // change written.
        let mut at_b = b.load(&original.id).await?.ok_or("gone")?;
        b.save(&at_b).await?;
        assert_eq!(f.writes(), writes + 1);
        at_b.data.insert("theme".into(), json!("dark"));
        b.save(&at_b).await?;
        assert_eq!(f.writes(), writes + 2);
        assert_eq!(a.load(&original.id).await?.as_ref(), Some(&at_b));
        Ok(())
    }

    /// Sessions the bounded memory forgot are written: the bound costs
    /// writes, never a change.
    pub(super) async fn forgotten_sessions_are_written<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let store = f.adapter().with_expiry_write_memory(10);
        let mut records = Vec::new();
        for _ in 0..50 {
            records.push(f.create(&store).await?);
        }
        let writes = f.writes();
        let (first, last) = (&records[0], &records[49]);
        store.save(last).await?;
        assert_eq!(f.writes(), writes, "a recent session is remembered");
        store.save(first).await?;
        assert_eq!(f.writes(), writes + 1, "an early one was forgotten");
        Ok(())
    }

    /// Through tower-sessions with `with_always_save(true)` and sliding
    /// expiry: every request saves, but only the login and the change
    /// write; every response still renews the cookie.
    pub(super) async fn always_save_reads_write_nothing<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        use axum::body::Body;
        use axum::http::{header, Request, StatusCode};
        use axum::routing::get;
        use tower::ServiceExt as _;
        use tower_sessions::{Expiry, Session, SessionManagerLayer};

        async fn login(session: Session) -> StatusCode {
            match session.insert("user", "ada").await {
                Ok(()) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        async fn read(session: Session) -> StatusCode {
            match session.get::<String>("user").await {
                Ok(Some(_)) => StatusCode::OK,
                Ok(None) => StatusCode::NOT_FOUND,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        async fn rename(session: Session) -> StatusCode {
            match session.insert("user", "grace").await {
                Ok(()) => StatusCode::OK,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        let layer = SessionManagerLayer::new(f.adapter())
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)))
            .with_always_save(true);
        let app = axum::Router::new()
            .route("/login", get(login))
            .route("/read", get(read))
            .route("/rename", get(rename))
            .layer(layer);
        let call = |path: &'static str, cookie: Option<String>| {
            let app = app.clone();
            async move {
                let mut req = Request::get(path);
                if let Some(cookie) = cookie {
                    req = req.header(header::COOKIE, cookie);
                }
                let res = app.oneshot(req.body(Body::empty())?).await?;
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                let cookie = res
                    .headers()
                    .get(header::SET_COOKIE)
                    .ok_or("no cookie set")?
                    .to_str()?
                    .split(';')
                    .next()
                    .map(str::to_owned);
                Result::Ok(cookie)
            }
        };
        let cookie = call("/login", None).await?;
        assert_eq!(f.writes(), 1, "the login creates the session");
        for _ in 0..20 {
            assert_eq!(
                call("/read", cookie.clone()).await?,
                cookie,
                "cookie renewed"
            );
        }
        assert_eq!(f.writes(), 1, "reads write nothing");
        call("/rename", cookie.clone()).await?;
        assert_eq!(f.writes(), 2, "a change is written");
        call("/read", cookie).await?;
        assert_eq!(f.writes(), 2);
        Ok(())
    }

    /// With the threshold at 0, every save writes, as without this feature.
    pub(super) async fn a_zero_threshold_writes_every_save<B>(f: Fixture<B>) -> Result
    where
        B: Backend + Clone + fmt::Debug,
    {
        let store = f.adapter().with_expiry_write_threshold(0.0)?;
        let record = f.create(&store).await?;
        let writes = f.writes();
        for _ in 0..3 {
            store.save(&record).await?;
        }
        assert_eq!(f.writes(), writes + 3);
        Ok(())
    }
}

async fn sqlite() -> Result<Fixture<tower_sessions_sqlite3store::sqlite3store::AsyncSqliteStore>> {
    use tower_sessions_sqlite3store::sqlite3store::SqliteStore;
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let builder = SqliteStore::builder(dir.path().join("sessions.db"))
        .cleanup_interval(Duration::ZERO)
        .clock(clock.clone());
    let store = builder.build_async().await?;
    Ok(Fixture {
        backend: Counting {
            inner: store,
            writes: Arc::default(),
        },
        clock: Some(clock),
        _dir: Some(dir),
    })
}

/// The PostgreSQL backend on `PGSTORE_TEST_URL`; without it, `None` (a
/// skip that says why) locally, a failure under `CI`.
async fn postgres() -> Result<Option<Fixture<pgstore::PgStore>>> {
    let Some(url) = std::env::var("PGSTORE_TEST_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let why = "PGSTORE_TEST_URL is not set; run under scripts/pg-test-server.sh";
        if std::env::var_os("CI").is_some() {
            return Err(why.into());
        }
        eprintln!("SKIPPED on PostgreSQL: {why}");
        return Ok(None);
    };
    let store = pgstore::PgStore::builder(&url)
        .table("save_throttle")
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    Ok(Some(Fixture {
        backend: Counting {
            inner: store,
            writes: Arc::default(),
        },
        clock: None,
        _dir: None,
    }))
}

/// Each case, once per backend.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() -> Result {
                    cases::$case(sqlite().await?).await
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() -> Result {
                    match postgres().await? {
                        Some(f) => cases::$case(f).await,
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    an_unchanged_save_within_the_threshold_writes_nothing,
    a_changed_save_always_writes,
    past_the_threshold_the_expiry_is_written,
    the_stored_expiry_lags_at_most_the_threshold,
    replicas_never_skip_a_change,
    forgotten_sessions_are_written,
    always_save_reads_write_nothing,
    a_zero_threshold_writes_every_save,
);

/// SQLite's clock moves, so an idle session can be watched to its end: it
/// lives at least `(1 - 1%)` of its lifetime after its last request, and
/// never past the expiry that request asked for; cleanup agrees.
#[tokio::test]
async fn an_idle_session_ends_within_the_documented_bound() -> Result {
    let f = sqlite().await?;
    let clock = f.clock.clone().ok_or("sqlite has a clock")?;
    let store = f.adapter();
    let record = f.create(&store).await?;
    // A request every 10 s for 10 minutes, each loading and saving with
    // the expiry an hour from then (tower-sessions' OnInactivity).
    let mut last = record.clone();
    for _ in 0..60 {
        clock.advance(Duration::from_secs(10));
        last = store.load(&record.id).await?.ok_or("ended while in use")?;
        last.expiry_date = OffsetDateTime::from(f.now() + HOUR);
        store.save(&last).await?;
    }
    let asked = SystemTime::from(last.expiry_date);
    let last_request = f.now();
    let stored = f.stored_expiry(record.id).await?;
    assert!(stored <= asked + Duration::from_millis(2));

    // Idle: still there just before 99% of the hour...
    clock.set(last_request + HOUR.mul_f64(0.99) - Duration::from_secs(1));
    assert_eq!(f.backend.delete_expired().await?, 0);
    assert!(store.load(&record.id).await?.is_some());
    // ...and gone once the hour is over.
    clock.set(last_request + HOUR + Duration::from_millis(2));
    assert_eq!(store.load(&record.id).await?, None);
    assert_eq!(f.backend.delete_expired().await?, 1);
    Ok(())
}

#[test]
fn thresholds_outside_zero_to_one_are_refused() -> Result {
    let store = || -> Result<ContractStore<()>> { Ok(ContractStore::new(())) };
    for bad in [-0.01, 1.0, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = store()?
            .with_expiry_write_threshold(bad)
            .expect_err("refused");
        assert!(err.to_string().contains("threshold"), "{err}");
    }
    for good in [0.0, 0.01, 0.5, 0.999] {
        store()?.with_expiry_write_threshold(good)?;
    }
    Ok(())
}
