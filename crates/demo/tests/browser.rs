//! The demo in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) with fantoccini. Needs `/usr/bin/chromium` and
//! `/usr/bin/chromedriver`; `scripts/browser-test.sh` installs them and runs
//! this test.
//!
//! Every process started here leads its own process group, and a guard kills
//! the group when dropped, so nothing outlives the test, failed or not.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use sqlite3store::SqliteStore;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a process may take to say it is ready.
const STARTUP: Duration = Duration::from_secs(30);
/// The whole browser scenario, so a hung browser fails the test instead of
/// hanging it.
const SCENARIO: Duration = Duration::from_secs(120);

#[tokio::test]
#[ignore = "needs chromium; run by scripts/browser-test.sh"]
async fn sessions_work_and_survive_a_restart_in_a_real_browser() -> Result {
    // Declared first, so dropped last: after the processes that use it.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sessions.db");
    let profile = dir.path().join("chromium-profile");

    let mut demo = Demo::start(&db, 0)?;
    let driver = ChromeDriver::start()?;
    let client = tokio::time::timeout(STARTUP, driver.connect(&profile))
        .await
        .map_err(|_| "chromium did not start in time")??;
    let outcome = tokio::time::timeout(SCENARIO, scenario(&client, &mut demo, &db)).await;
    // Ends the WebDriver session, which quits chromium; the guards then kill
    // whatever is left. The scenario's own failure is reported first.
    let closed = tokio::time::timeout(STARTUP, client.close()).await;
    outcome.map_err(|_| "the browser scenario timed out")??;
    closed.map_err(|_| "the WebDriver session did not close in time")??;
    Ok(())
}

async fn scenario(client: &Client, demo: &mut Demo, db: &Path) -> Result {
    step("two visits: the counter grows");
    client.goto(&demo.url).await?;
    assert_eq!(text(client, "#visits").await?, "1");
    client.goto(&demo.url).await?;
    assert_eq!(text(client, "#visits").await?, "2");
    let first_id = session_cookie(client)
        .await?
        .ok_or("no session cookie after two visits")?;

    step("log in: the name shows, as typed, under a new session id");
    // Markup in the name must come back as text, not as elements.
    let name = r#"Ada <b>Lovelace</b> & "friends""#;
    client
        .form(Locator::Css("#login"))
        .await?
        .set_by_name("name", name)
        .await?
        .submit()
        .await?;
    client.wait().for_element(Locator::Css("#user")).await?;
    assert_eq!(text(client, "#user").await?, name);
    assert!(client.find_all(Locator::Css("#user b")).await?.is_empty());
    assert_eq!(text(client, "#visits").await?, "3");
    let logged_in_id = session_cookie(client)
        .await?
        .ok_or("no session cookie after login")?;
    assert_ne!(logged_in_id, first_id, "login cycles the session id");

    step("kill the server and start it again on the same file and port");
    demo.restart(db)?;
    client.goto(&demo.url).await?;
    assert_eq!(text(client, "#user").await?, name);
    assert_eq!(text(client, "#visits").await?, "4");
    assert_eq!(
        session_cookie(client).await?.as_deref(),
        Some(logged_in_id.as_str()),
        "the browser keeps the same session"
    );

    step("log out: the name and the stored session are gone");
    client
        .find(Locator::Css("#logout button"))
        .await?
        .click()
        .await?;
    client.wait().for_element(Locator::Css("#login")).await?;
    assert!(client.find_all(Locator::Css("#user")).await?.is_empty());
    assert_eq!(text(client, "#visits").await?, "1", "a fresh session");
    assert_ne!(
        session_cookie(client).await?.as_deref(),
        Some(logged_in_id.as_str())
    );
    let store = SqliteStore::builder(db).read_only(true).build()?;
    assert_eq!(store.find(&logged_in_id)?, None);
    step("done");
    Ok(())
}

/// Issue 12's scenario: one user logged in from two separate browsers;
/// "log out everywhere" in one logs the other out at its next request.
#[tokio::test]
#[ignore = "needs chromium; run by scripts/browser-test.sh"]
async fn log_out_everywhere_reaches_the_other_browser() -> Result {
    // Declared first, so dropped last: after the processes that use it.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sessions.db");
    let demo = Demo::start(&db, 0)?;
    let driver = ChromeDriver::start()?;
    let laptop = tokio::time::timeout(STARTUP, driver.connect(&dir.path().join("laptop")))
        .await
        .map_err(|_| "chromium did not start in time")??;
    // Should this fail, the chromedriver guard kills the first browser too.
    let phone = tokio::time::timeout(STARTUP, driver.connect(&dir.path().join("phone")))
        .await
        .map_err(|_| "the second chromium did not start in time")??;
    let outcome = tokio::time::timeout(SCENARIO, everywhere(&laptop, &phone, &demo.url)).await;
    let closed = tokio::time::timeout(STARTUP, async {
        let a = laptop.close().await;
        let b = phone.close().await;
        a.and(b)
    })
    .await;
    outcome.map_err(|_| "the browser scenario timed out")??;
    closed.map_err(|_| "the WebDriver sessions did not close in time")??;
    Ok(())
}

async fn log_in(client: &Client, url: &str, name: &str) -> Result {
    client.goto(url).await?;
    client
        .form(Locator::Css("#login"))
        .await?
        .set_by_name("name", name)
        .await?
        .submit()
        .await?;
    client.wait().for_element(Locator::Css("#user")).await?;
    Ok(())
}

async fn everywhere(laptop: &Client, phone: &Client, url: &str) -> Result {
    step("one user logs in from two browsers");
    log_in(laptop, url, "ada").await?;
    log_in(phone, url, "ada").await?;
    assert_ne!(
        session_cookie(laptop).await?,
        session_cookie(phone).await?,
        "two browsers, two sessions"
    );
    laptop.goto(url).await?;
    assert_eq!(text(laptop, "#your-sessions").await?, "2");

    step("log out everywhere, from the laptop");
    laptop
        .find(Locator::Css("#logout-everywhere button"))
        .await?
        .click()
        .await?;
    laptop.wait().for_element(Locator::Css("#login")).await?;
    assert!(laptop.find_all(Locator::Css("#user")).await?.is_empty());

    step("the phone is logged out at its next request");
    phone.goto(url).await?;
    phone.wait().for_element(Locator::Css("#login")).await?;
    assert!(phone.find_all(Locator::Css("#user")).await?.is_empty());
    assert_eq!(text(phone, "#visits").await?, "1", "a fresh session");
    step("done");
    Ok(())
}

fn step(what: &str) {
    eprintln!("[browser test] {what}");
}

async fn text(client: &Client, css: &str) -> Result<String> {
    Ok(client.find(Locator::Css(css)).await?.text().await?)
}

/// The value of the `id` cookie, if the browser has one.
async fn session_cookie(client: &Client) -> Result<Option<String>> {
    let cookies = client.get_all_cookies().await?;
    Ok(cookies
        .iter()
        .find(|c| c.name() == "id")
        .map(|c| c.value().to_owned()))
}

/// The demo server, started from the binary cargo built for this test.
struct Demo {
    url: String,
    port: u16,
    process: Process,
}

impl Demo {
    /// Starts the demo on `port` (0: any free one) and waits for its URL.
    fn start(db: &Path, port: u16) -> Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--db")
            .arg(db);
        let (process, lines) = Process::spawn("demo", command)?;
        let url = wait_for(&lines, "demo", |line| {
            line.split_whitespace()
                .find(|word| word.starts_with("http://127.0.0.1:"))
                .map(str::to_owned)
        })?;
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches('/')
            .parse()?;
        Ok(Self { url, port, process })
    }

    /// Kills the server outright (no graceful shutdown) and starts it again
    /// on the same database file and port.
    fn restart(&mut self, db: &Path) -> Result {
        self.process.kill();
        *self = Self::start(db, self.port)?;
        Ok(())
    }
}

/// chromedriver on a port of its choosing.
struct ChromeDriver {
    port: u16,
    _process: Process,
}

impl ChromeDriver {
    fn start() -> Result<Self> {
        let mut command = Command::new(CHROMEDRIVER);
        command.arg("--port=0");
        let (process, lines) = Process::spawn("chromedriver", command)?;
        let port = wait_for(&lines, "chromedriver", |line| {
            line.strip_prefix("ChromeDriver was started successfully on port ")
                .and_then(|rest| rest.trim_end_matches('.').parse().ok())
        })?;
        Ok(Self {
            port,
            _process: process,
        })
    }

    /// A new headless browser with a fresh profile in `profile`.
    async fn connect(&self, profile: &Path) -> Result<Client> {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await?;
        Ok(client)
    }
}

/// A child process in a process group of its own, killed with the whole
/// group (a browser and its helpers, for chromedriver) when dropped.
struct Process {
    name: &'static str,
    child: Option<Child>,
}

impl Process {
    /// Spawns `command`; its stdout lines come out of the receiver (and are
    /// echoed to stderr), its stderr goes to ours.
    fn spawn(name: &'static str, mut command: Command) -> Result<(Self, mpsc::Receiver<String>)> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|err| format!("cannot start {name}: {err}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let process = Self {
            name,
            child: Some(child),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{name}] {line}");
                // The receiver may be gone; keep draining the pipe anyway.
                tx.send(line).ok();
            }
        });
        Ok((process, rx))
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The child leads its group, so the group id is its pid.
        // Best effort, in a guard: a failure is printed, not raised (the
        // group or the child may be gone already).
        if let Ok(pid) = i32::try_from(child.id()) {
            if let Err(err) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
                eprintln!("[{}] killpg: {err}", self.name);
            }
        }
        if let Err(err) = child.kill() {
            eprintln!("[{}] kill: {err}", self.name);
        }
        if let Err(err) = child.wait() {
            eprintln!("[{}] wait: {err}", self.name);
        }
        eprintln!("[{}] killed", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for the first line that `parse` accepts.
fn wait_for<T>(
    lines: &mpsc::Receiver<String>,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + STARTUP;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .map_err(|_| format!("{name} did not report ready within {STARTUP:?}"))?;
        if let Some(found) = parse(&line) {
            return Ok(found);
        }
    }
}
