//! Revocation wins: a late save never brings back a session that was logged
//! out, revoked or expired, including when the save and the logout race
//! through the middleware; and owners (`with_owner_key`) with "log out
//! everywhere".

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use time::OffsetDateTime;
use tower::ServiceExt as _;
use tower_sessions::{Session, SessionManagerLayer};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::SessionStore;
use tower_sessions_sqlite3store::sqlite3store::{ManualClock, SqliteStore};
use tower_sessions_sqlite3store::SqliteSessionStore;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Fixture {
    store: SqliteSessionStore,
    clock: Arc<ManualClock>,
    // Last: the store closes before its directory goes.
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
    let builder = SqliteStore::builder(dir.path().join("sessions.db"))
        .clock(clock.clone())
        .cleanup_interval(Duration::ZERO);
    let store = SqliteSessionStore::new(builder.build_async().await?).with_owner_key("user_id");
    Ok(Fixture {
        store,
        clock,
        _dir: dir,
    })
}

fn record(seconds: i64) -> Record {
    Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(seconds),
    }
}

#[tokio::test]
async fn save_never_recreates_a_deleted_session() -> Result {
    let f = fixture().await?;
    let mut r = record(3600);
    f.store.create(&mut r).await?;
    f.store.delete(&r.id).await?;
    r.data.insert("late".into(), json!(true));
    f.store.save(&r).await?;
    assert_eq!(f.store.load(&r.id).await?, None);
    assert_eq!(f.store.inner().stats().await?.active, 0);
    // A record never created is not created by save either.
    let never = record(3600);
    f.store.save(&never).await?;
    assert_eq!(f.store.load(&never.id).await?, None);
    Ok(())
}

#[tokio::test]
async fn save_never_recreates_an_expired_session() -> Result {
    let f = fixture().await?;
    let mut r = record(60);
    f.store.create(&mut r).await?;
    f.clock.advance(Duration::from_secs(120));
    r.expiry_date += time::Duration::hours(1);
    f.store.save(&r).await?;
    assert_eq!(f.store.load(&r.id).await?, None);
    assert_eq!(f.store.inner().stats().await?.active, 0);
    Ok(())
}

#[tokio::test]
async fn save_keeps_the_owner_up_to_date() -> Result {
    let f = fixture().await?;
    let mut r = record(3600);
    f.store.create(&mut r).await?;
    assert_eq!(f.store.count_owner("alice").await?, 0);
    r.data.insert("user_id".into(), json!("alice"));
    f.store.save(&r).await?;
    assert_eq!(f.store.count_owner("alice").await?, 1);
    r.data.insert("user_id".into(), json!(42));
    f.store.save(&r).await?;
    assert_eq!(f.store.count_owner("alice").await?, 0);
    assert_eq!(f.store.count_owner("42").await?, 1);
    // Another kind of value, or no value: no owner.
    r.data.insert("user_id".into(), json!({"id": 42}));
    f.store.save(&r).await?;
    assert_eq!(f.store.count_owner("42").await?, 0);
    r.data.insert("user_id".into(), json!("bob"));
    f.store.save(&r).await?;
    r.data.remove("user_id");
    f.store.save(&r).await?;
    assert_eq!(f.store.count_owner("bob").await?, 0);
    // Create takes the owner too.
    let mut created = record(3600);
    created.data.insert("user_id".into(), json!("carol"));
    f.store.create(&mut created).await?;
    assert_eq!(f.store.count_owner("carol").await?, 1);
    // An owner the core refuses is a backend error, not a panic.
    r.data.insert("user_id".into(), json!(""));
    assert!(f.store.save(&r).await.is_err());
    Ok(())
}

// ---- Through the middleware ----

async fn login(session: Session) -> StatusCode {
    match session.insert("user_id", "alice").await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A request that loads the session, takes a moment, and saves it.
async fn bump(session: Session) -> StatusCode {
    let n = match session.get::<u64>("n").await {
        Ok(n) => n.unwrap_or(0),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR,
    };
    tokio::task::yield_now().await;
    match session.insert("n", n + 1).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn logout(session: Session) -> StatusCode {
    match session.flush().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn whoami(session: Session) -> String {
    session
        .get::<String>("user_id")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "nobody".into())
}

fn app(store: SqliteSessionStore) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/bump", get(bump))
        .route("/logout", get(logout))
        .route("/whoami", get(whoami))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

async fn call(app: &Router, path: &str, cookie: Option<&str>) -> Result<(String, Option<String>)> {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let res = app.clone().oneshot(req.body(Body::empty())?).await?;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let set = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = axum::body::to_bytes(res.into_body(), 1 << 16).await?;
    Ok((String::from_utf8(body.to_vec())?, set))
}

/// The session id in a `id=...` cookie.
fn id_of(cookie: &str) -> Result<Id> {
    let value = cookie.strip_prefix("id=").ok_or("not the session cookie")?;
    Ok(value.parse()?)
}

/// The race from the issue: a request saving the session and another
/// logging it out, at once, many times. Whichever runs first, once the
/// logout has completed the session is never found again, and the saving
/// request's session is a new one without the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_racing_a_logout_never_brings_the_session_back() -> Result {
    const ROUNDS: usize = 200;
    let f = fixture().await?;
    let app = app(f.store.clone());
    let mut resurrections = 0;
    for _ in 0..ROUNDS {
        let (_, cookie) = call(&app, "/login", None).await?;
        let cookie = cookie.ok_or("login set no cookie")?;
        let id = id_of(&cookie)?;
        let saving = {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { call(&app, "/bump", Some(&cookie)).await })
        };
        let logging_out = {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { call(&app, "/logout", Some(&cookie)).await })
        };
        let (saved, logged_out) = tokio::join!(saving, logging_out);
        saved??;
        logged_out??;
        if f.store.load(&id).await?.is_some() {
            resurrections += 1;
        }
        // The old cookie is nobody's now.
        let (who, _) = call(&app, "/whoami", Some(&cookie)).await?;
        assert_eq!(who, "nobody");
    }
    assert_eq!(resurrections, 0, "logged-out sessions came back");
    assert_eq!(f.store.count_owner("alice").await?, 0);
    Ok(())
}

/// "Log out everywhere": two browsers of one user and one of another; the
/// revoke ends the first two, at their next request, and not the third.
#[tokio::test]
async fn revoke_owner_logs_a_user_out_everywhere() -> Result {
    let f = fixture().await?;
    let app = app(f.store.clone());
    let (_, laptop) = call(&app, "/login", None).await?;
    let (_, phone) = call(&app, "/login", None).await?;
    let (laptop, phone) = (laptop.ok_or("no cookie")?, phone.ok_or("no cookie")?);
    let other = {
        let mut r = record(3600);
        r.data.insert("user_id".into(), json!("bob"));
        f.store.create(&mut r).await?;
        r.id
    };
    assert_eq!(f.store.count_owner("alice").await?, 2);
    assert_eq!(call(&app, "/whoami", Some(&phone)).await?.0, "alice");

    assert_eq!(f.store.revoke_owner("alice").await?, 2);
    assert_eq!(f.store.count_owner("alice").await?, 0);
    assert_eq!(call(&app, "/whoami", Some(&laptop)).await?.0, "nobody");
    assert_eq!(call(&app, "/whoami", Some(&phone)).await?.0, "nobody");
    // A request of a revoked browser that saves does not bring it back.
    call(&app, "/bump", Some(&laptop)).await?;
    assert_eq!(f.store.load(&id_of(&laptop)?).await?, None);
    assert_eq!(f.store.count_owner("alice").await?, 0);
    assert!(f.store.load(&other).await?.is_some());
    Ok(())
}
