//! The routes, the session keys and the HTML.

use std::fmt::Write as _;

use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlite3store::SqliteSessionStore;

/// Session key of the visit counter.
const VISITS: &str = "visits";
/// Session key of the logged-in user's name.
const USER: &str = "user";
/// The longest name the login form takes, in characters.
const MAX_NAME_CHARS: usize = 64;
/// No scripts, no outside resources; forms post only here.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router(store: SqliteSessionStore) -> Router {
    // Each session's owner is its user's name, kept up to date on every
    // save, so "log out everywhere" is one revoke.
    let store = store.with_owner_key(USER);
    let sessions = SessionManagerLayer::new(store.clone())
        // The demo serves plain HTTP on 127.0.0.1; behind TLS keep the
        // default (Secure cookies).
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .with_state(store)
        .layer(sessions)
}

async fn index(
    State(store): State<SqliteSessionStore>,
    session: Session,
) -> Result<Response, AppError> {
    let visits = session
        .get::<u64>(VISITS)
        .await?
        .unwrap_or(0)
        .saturating_add(1);
    session.insert(VISITS, visits).await?;
    let user = session.get::<String>(USER).await?;
    // This request's session is stored after the handler, so a first visit
    // is not counted yet.
    let active = store.inner().stats().await?.active;
    let mine = match &user {
        Some(user) => store.count_owner(user).await?,
        None => 0,
    };
    Ok(html_page(
        StatusCode::OK,
        &index_body(visits, user.as_deref(), mine, active),
    ))
}

#[derive(Debug, Deserialize)]
struct Login {
    name: String,
}

async fn login(session: Session, Form(login): Form<Login>) -> Result<Response, AppError> {
    let name = login.name.trim();
    if let Err(problem) = check_name(name) {
        let body = format!(
            "<p id=\"error\">{}</p>\n<p><a href=\"/\">Back</a></p>",
            escape(problem)
        );
        return Ok(html_page(StatusCode::BAD_REQUEST, &body));
    }
    // A new id at login: an id planted in the browser before it (session
    // fixation) is worthless afterwards.
    session.cycle_id().await?;
    session.insert(USER, name).await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    // Deletes the session from the store and expires the cookie.
    session.flush().await?;
    Ok(Redirect::to("/"))
}

/// Ends every session of the logged-in user, in every browser: each is
/// gone at its next request, and a request in flight cannot save it back.
async fn logout_everywhere(
    State(store): State<SqliteSessionStore>,
    session: Session,
) -> Result<Redirect, AppError> {
    if let Some(user) = session.get::<String>(USER).await? {
        let revoked = store.revoke_owner(&user).await?;
        tracing::info!(revoked, "logged a user out everywhere");
    }
    session.flush().await?;
    Ok(Redirect::to("/"))
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("Please enter a name.");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("That name is too long (64 characters at most).");
    }
    if name.chars().any(char::is_control) {
        return Err("A name cannot contain control characters.");
    }
    Ok(())
}

fn index_body(visits: u64, user: Option<&str>, mine: u64, active: u64) -> String {
    let mut body = String::new();
    let times = if visits == 1 { "time" } else { "times" };
    let _ = writeln!(
        body,
        "<p>You have visited this page <strong id=\"visits\">{visits}</strong> {times} in this session.</p>"
    );
    match user {
        Some(user) => {
            let _ = writeln!(
                body,
                "<p>Logged in as <strong id=\"user\">{}</strong>.</p>\n\
                 <p>Your sessions: <strong id=\"your-sessions\">{mine}</strong></p>\n\
                 <form id=\"logout\" method=\"post\" action=\"/logout\">\
                 <button type=\"submit\">Log out</button></form>\n\
                 <form id=\"logout-everywhere\" method=\"post\" action=\"/logout-everywhere\">\
                 <button type=\"submit\">Log out everywhere</button></form>",
                escape(user)
            );
        }
        None => {
            let _ = writeln!(
                body,
                "<form id=\"login\" method=\"post\" action=\"/login\">\
                 <label>Name <input name=\"name\" required maxlength=\"{MAX_NAME_CHARS}\" \
                 autocomplete=\"username\"></label> \
                 <button type=\"submit\">Log in</button></form>"
            );
        }
    }
    let _ = writeln!(
        body,
        "<p>Active sessions in the store: <strong id=\"active\">{active}</strong></p>\n\
         <p><small>Sessions live in a SQLite file: restart the server and you are still \
         logged in.</small></p>"
    );
    body
}

fn html_page(status: StatusCode, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sqlite3store demo</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}</style>\n\
         </head>\n<body>\n<h1>sqlite3store demo</h1>\n{body}</body>\n</html>\n"
    );
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(page),
    )
        .into_response()
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A failure of the session layer or the store: logged, and a plain 500 for
/// the browser.
#[derive(Debug)]
struct AppError(String);

impl From<tower_sessions::session::Error> for AppError {
    fn from(err: tower_sessions::session::Error) -> Self {
        Self(err.to_string())
    }
}

impl From<sqlite3store::Error> for AppError {
    fn from(err: sqlite3store::Error) -> Self {
        Self(sqlite3store::error_chain(&err))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(err = %self.0, "request failed");
        let body = "<p id=\"error\">Something went wrong on our side. Please try again.</p>";
        html_page(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderMap, Request};
    use tower::ServiceExt as _;

    use super::*;

    type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1" b='2'>&amp;</b>"#),
            "&lt;b a=&quot;1&quot; b=&#39;2&#39;&gt;&amp;amp;&lt;/b&gt;"
        );
        assert_eq!(escape("plain ünïcödé"), "plain ünïcödé");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("Ada Lovelace").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name("a\nb").is_err());
    }

    /// The app on a store in a temp dir, and a tiny cookie-keeping client.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: SqliteSessionStore,
        app: Router,
        cookie: Option<String>,
    }

    impl Fixture {
        async fn new() -> Result<Self> {
            let dir = tempfile::tempdir()?;
            let store = SqliteSessionStore::open(dir.path().join("sessions.db")).await?;
            let app = router(store.clone());
            Ok(Self {
                _dir: dir,
                store,
                app,
                cookie: None,
            })
        }

        async fn send(&mut self, request: Request<Body>) -> Result<(StatusCode, String)> {
            let mut request = request;
            if let Some(cookie) = &self.cookie {
                request
                    .headers_mut()
                    .insert(header::COOKIE, cookie.parse()?);
            }
            let response = self.app.clone().oneshot(request).await?;
            self.keep_cookie(response.headers());
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
            Ok((status, String::from_utf8(body.to_vec())?))
        }

        fn keep_cookie(&mut self, headers: &HeaderMap) {
            let Some(set) = headers.get(header::SET_COOKIE) else {
                return;
            };
            let pair = set.to_str().unwrap_or("").split(';').next().unwrap_or("");
            self.cookie = match pair.strip_prefix("id=") {
                Some("") | None => None,
                Some(_) => Some(pair.to_owned()),
            };
        }

        async fn get(&mut self) -> Result<String> {
            let (status, body) = self.send(Request::get("/").body(Body::empty())?).await?;
            assert_eq!(status, StatusCode::OK);
            Ok(body)
        }

        async fn post(&mut self, path: &str, form: &str) -> Result<(StatusCode, String)> {
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))?;
            self.send(request).await
        }
    }

    #[tokio::test]
    async fn counts_visits_logs_in_and_out() -> Result {
        let mut f = Fixture::new().await?;
        assert!(f.get().await?.contains("<strong id=\"visits\">1</strong>"));
        assert!(f.get().await?.contains("<strong id=\"visits\">2</strong>"));
        let before_login = f.cookie.clone().ok_or("no session cookie")?;

        let (status, _) = f
            .post("/login", "name=%3Cscript%3Ealert(1)%3C%2Fscript%3E+%26+Ada")
            .await?;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_ne!(
            f.cookie.as_ref(),
            Some(&before_login),
            "login cycles the id"
        );
        let page = f.get().await?;
        assert!(page.contains(
            "<strong id=\"user\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; Ada</strong>"
        ));
        assert!(page.contains("<strong id=\"visits\">3</strong>"));
        assert!(page.contains("<strong id=\"active\">1</strong>"));

        let (status, _) = f.post("/logout", "").await?;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(f.cookie, None, "logout expires the cookie");
        assert_eq!(f.store.inner().stats().await?.active, 0);
        let page = f.get().await?;
        assert!(!page.contains("id=\"user\""));
        assert!(page.contains("<strong id=\"visits\">1</strong>"));
        Ok(())
    }

    #[tokio::test]
    async fn log_out_everywhere_ends_the_users_other_sessions() -> Result {
        let mut laptop = Fixture::new().await?;
        // A second browser on the same app and store.
        let mut phone = Fixture {
            _dir: tempfile::tempdir()?,
            store: laptop.store.clone(),
            app: laptop.app.clone(),
            cookie: None,
        };
        let mut other = Fixture {
            _dir: tempfile::tempdir()?,
            store: laptop.store.clone(),
            app: laptop.app.clone(),
            cookie: None,
        };
        laptop.post("/login", "name=ada").await?;
        phone.post("/login", "name=ada").await?;
        other.post("/login", "name=grace").await?;
        let page = laptop.get().await?;
        assert!(
            page.contains("<strong id=\"your-sessions\">2</strong>"),
            "{page}"
        );
        assert!(other
            .get()
            .await?
            .contains("<strong id=\"your-sessions\">1</strong>"));

        let (status, _) = laptop.post("/logout-everywhere", "").await?;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(laptop.cookie, None, "the cookie is expired");
        let page = phone.get().await?;
        assert!(
            !page.contains("id=\"user\""),
            "the phone is still logged in"
        );
        let page = other.get().await?;
        assert!(page.contains("<strong id=\"user\">grace</strong>"));
        assert_eq!(laptop.store.count_owner("ada").await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn bad_names_are_refused_with_an_escaped_message() -> Result {
        let mut f = Fixture::new().await?;
        let (status, page) = f.post("/login", "name=+++").await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("Please enter a name."));
        let (status, _) = f
            .post("/login", &format!("name={}", "x".repeat(65)))
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(f.store.inner().stats().await?.active, 0);
        Ok(())
    }
}
