//! Options for opening a store, each with its default.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::PgStore;
use crate::tls::{self, SslMode};

/// The largest session data PostgreSQL can hold in a `BYTEA` (1 GiB), less
/// room for the row's other fields.
pub const MAX_DATA_LEN_LIMIT: usize = (1 << 30) - 64 * 1024;

/// Options for [`PgStore`]; start with [`PgStore::builder`].
///
/// ```no_run
/// # async fn f() -> pgstore::Result<()> {
/// use std::time::Duration;
/// use pgstore::PgStore;
///
/// let store = PgStore::builder("host=/run/postgresql user=app dbname=app")
///     .table("sessions")
///     .cleanup_interval(Duration::from_secs(600))
///     .pool_size(32)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    pub(crate) config: std::result::Result<tokio_postgres::Config, String>,
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) wait_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) cleanup_interval: Duration,
    pub(crate) cleanup_batch_size: usize,
    pub(crate) cleanup_statement_timeout: Duration,
    pub(crate) max_token_len: usize,
    pub(crate) max_data_len: usize,
    pub(crate) create_if_missing: bool,
    pub(crate) token_hash_key: Option<Arc<[u8]>>,
    pub(crate) ssl_mode: Option<SslMode>,
    pub(crate) ssl_root_cert: Option<PathBuf>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            // tokio_postgres::Config's Debug redacts the password.
            .field("config", &self.config)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("cleanup_batch_size", &self.cleanup_batch_size)
            .field("cleanup_statement_timeout", &self.cleanup_statement_timeout)
            .field("max_token_len", &self.max_token_len)
            .field("max_data_len", &self.max_data_len)
            .field("create_if_missing", &self.create_if_missing)
            // Never print the key.
            .field("token_hashing", &self.token_hash_key.is_some())
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .finish()
    }
}

impl Builder {
    pub(crate) fn new(conninfo: &str) -> Self {
        let (rest, settings) = match tls::split_conninfo(conninfo) {
            Ok(split) => split,
            Err(e) => return Self::with_config_result(Err(e)),
        };
        let config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // The parser's message names the bad key, never the password.
            format!("cannot parse the connection string: {e}")
        });
        let mut b = Self::with_config_result(config);
        b.ssl_mode = settings.mode;
        b.ssl_root_cert = settings.root_cert;
        b
    }

    pub(crate) fn from_config(config: tokio_postgres::Config) -> Self {
        let mode = SslMode::from_pg(config.get_ssl_mode());
        let mut b = Self::with_config_result(Ok(config));
        b.ssl_mode = Some(mode);
        b
    }

    fn with_config_result(config: std::result::Result<tokio_postgres::Config, String>) -> Self {
        Self {
            config,
            schema: None,
            table: "sessions".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(300),
            cleanup_batch_size: 1000,
            cleanup_statement_timeout: Duration::from_secs(5),
            max_token_len: 1024,
            max_data_len: 1 << 20,
            create_if_missing: true,
            token_hash_key: None,
            ssl_mode: None,
            ssl_root_cert: None,
        }
    }

    /// How the store uses TLS, overriding the connection string's
    /// `sslmode`; see [`SslMode`] for what each mode checks. Unix socket
    /// connections never use TLS. Default: the connection string's
    /// `sslmode`, else [`SslMode::Prefer`] (libpq's default): TLS when the
    /// server offers it, with no certificate check.
    ///
    /// For a server across a network you do not control (a managed
    /// PostgreSQL), use [`SslMode::VerifyFull`] with the provider's CA
    /// certificate as [`ssl_root_cert`](Self::ssl_root_cert):
    /// `postgres://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem`.
    /// [`SslMode::Require`] encrypts but accepts any certificate, so it
    /// does not stop an active man in the middle.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// A PEM file of one or more CA certificates the server's certificate
    /// must chain up to, overriding the connection string's `sslrootcert`.
    /// Required by [`SslMode::VerifyCa`] and [`SslMode::VerifyFull`]; with
    /// [`SslMode::Prefer`] or [`SslMode::Require`] it makes the store check
    /// the chain (but not the host name), as libpq does. The certificate
    /// must name the host in a subject alternative name (rustls ignores
    /// the subject's common name). The file is read at
    /// [`build`](Self::build). Default: the connection string's
    /// `sslrootcert`, else none (libpq's `~/.postgresql/root.crt` is not
    /// read, and `sslrootcert=system` is not supported). Client
    /// certificates (`sslcert`, `sslkey`) are not supported.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// Adjusts the parsed connection settings, for what the connection
    /// string cannot say (server `options`, a password from elsewhere).
    /// Does nothing when the string did not parse ([`build`](Self::build)
    /// reports that). Default: no change.
    pub fn configure(mut self, f: impl FnOnce(&mut tokio_postgres::Config)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The table name: a plain identifier (ASCII letters, digits and
    /// underscores, at most 52 bytes), used double-quoted, so it is
    /// case-sensitive. Its index is `<table>_expiry_idx`. Default: `sessions`
    /// (Go's).
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// The schema holding the table, a plain identifier like the table
    /// name; it must exist. Default: none, so the connection's
    /// `search_path` decides (usually `public`), as in Go.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// The most connections the pool keeps open; operations beyond that
    /// wait for a free one (see [`wait_timeout`](Self::wait_timeout)).
    /// Default: 16.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// How long opening one connection may take before it fails with
    /// [`Error::Connect`]; it bounds [`build`](Self::build) when the server is
    /// unreachable. Default: 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an operation waits for a free pooled connection before
    /// failing with [`Error::PoolTimeout`]. Default: 5 seconds.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` of every connection: no statement
    /// of this store runs longer (it fails with [`Error::Busy`]). Rounded to
    /// whole milliseconds; it overrides a `statement_timeout` in the
    /// connection string's `options`, and `Duration::ZERO` leaves the
    /// setting to the connection string and the server. Default: 30
    /// seconds.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How often a background task deletes expired sessions;
    /// `Duration::ZERO` starts no task (call [`PgStore::delete_expired`]
    /// yourself). Default: 5 minutes, as Go's `New`.
    pub fn cleanup_interval(mut self, every: Duration) -> Self {
        self.cleanup_interval = every;
        self
    }

    /// Rows deleted per transaction by cleanup: the bound on how long it
    /// holds row locks. Default: 1000.
    pub fn cleanup_batch_size(mut self, rows: usize) -> Self {
        self.cleanup_batch_size = rows;
        self
    }

    /// The `statement_timeout` of each cleanup batch, and how long an
    /// explicit [`PgStore::delete_expired`] waits for another replica's
    /// cleanup to finish. Default: 5 seconds.
    pub fn cleanup_statement_timeout(mut self, timeout: Duration) -> Self {
        self.cleanup_statement_timeout = timeout;
        self
    }

    /// The longest token, in bytes, that `commit` accepts; `find` of a
    /// longer one is simply not found. Default: 1024.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// The largest session data, in bytes, that `commit` accepts; with
    /// `max_token_len`, at most [`MAX_DATA_LEN_LIMIT`]. Default: 1 MiB.
    pub fn max_data_len(mut self, bytes: usize) -> Self {
        self.max_data_len = bytes;
        self
    }

    /// Whether a missing table is created (with its index). When false,
    /// opening fails with [`Error::SchemaMismatch`] instead, and the store
    /// needs only SELECT, INSERT, UPDATE and DELETE on the table. Default:
    /// true.
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// Stores an HMAC-SHA-256 of each token, keyed with `key`, instead of
    /// the token itself (64 hex digits, the same as sqlite3store's), so a
    /// leaked table or backup holds no usable session tokens. Every call
    /// hashes the token it is given; [`PgStore::all`] and [`PgStore::list`]
    /// return the stored hashes. Rows written with hashing are not readable
    /// by Go's package, nor by a store with another key. Default: off.
    pub fn hash_tokens(mut self, key: impl AsRef<[u8]>) -> Self {
        self.token_hash_key = Some(Arc::from(key.as_ref()));
        self
    }

    /// Connects, creates the table when missing (see
    /// [`create_if_missing`](Self::create_if_missing)), checks its columns,
    /// and starts the cleanup task on the current tokio runtime.
    pub async fn build(self) -> Result<PgStore> {
        self.validate()?;
        PgStore::open_with(self).await
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        if let Err(e) = &self.config {
            return bad(e.clone());
        }
        if self.max_token_len == 0 || self.max_token_len > 1 << 20 {
            return bad(format!(
                "max_token_len must be 1 to {} bytes, got {}",
                1 << 20,
                self.max_token_len
            ));
        }
        if self.max_data_len.saturating_add(self.max_token_len) > MAX_DATA_LEN_LIMIT {
            return bad(format!(
                "max_data_len plus max_token_len must be at most {MAX_DATA_LEN_LIMIT} bytes, got {} + {}",
                self.max_data_len, self.max_token_len
            ));
        }
        if !(1..=1024).contains(&self.pool_size) {
            return bad(format!(
                "pool_size must be 1 to 1024, got {}",
                self.pool_size
            ));
        }
        if !(1..=1_000_000).contains(&self.cleanup_batch_size) {
            return bad(format!(
                "cleanup_batch_size must be 1 to 1000000, got {}",
                self.cleanup_batch_size
            ));
        }
        for (what, d) in [
            ("connect_timeout", self.connect_timeout),
            ("wait_timeout", self.wait_timeout),
            ("cleanup_statement_timeout", self.cleanup_statement_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("{what} must be more than zero"));
            }
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return bad("PgStore needs a tokio runtime (build it inside one)".into());
        }
        if self.token_hash_key.as_ref().is_some_and(|k| k.is_empty()) {
            return bad("the token hashing key must not be empty".into());
        }
        Ok(())
    }
}

/// A duration as PostgreSQL's `statement_timeout` value, in whole
/// milliseconds (at least 1, as 0 would mean no limit), capped at its
/// maximum of `i32::MAX`.
pub(crate) fn millis_setting(d: Duration) -> String {
    let ms = d.as_millis().clamp(1, i32::MAX as u128);
    format!("{ms}ms")
}
