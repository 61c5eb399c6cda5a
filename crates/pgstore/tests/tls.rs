//! TLS against a real server that takes TCP connections over TLS only
//! (scripts/pg-test-server.sh: `hostssl` in pg_hba.conf, a certificate for
//! localhost and 127.0.0.1 signed by a CA of its own).

mod support;

use std::time::{Duration, SystemTime};

use pgstore::{Error, PgStore, SslMode, TlsFailure};
use support::TestResult;

const HOUR: Duration = Duration::from_secs(3600);

/// The TLS server's key=value conninfo (no sslmode), its CA, and another CA.
struct TlsServer {
    url: String,
    ca: String,
    other_ca: String,
}

/// The TLS server from the environment; under CI its absence fails the
/// test, locally it skips it.
fn tls_server(test: &str) -> Option<TlsServer> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("PGSTORE_TEST_TLS_URL"),
        var("PGSTORE_TEST_TLS_CA"),
        var("PGSTORE_TEST_TLS_OTHER_CA"),
    ) {
        (Some(url), Some(ca), Some(other_ca)) => Some(TlsServer { url, ca, other_ca }),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: PGSTORE_TEST_TLS_URL, _CA or _OTHER_CA is not set under CI; \
             run through scripts/test.sh"
        ),
        _ => {
            support::skip(&format!(
                "{test}: PGSTORE_TEST_TLS_URL is not set \
                 (run `bash scripts/pg-test-server.sh run cargo test -p pgstore`)"
            ));
            None
        }
    }
}

macro_rules! tls_server {
    ($test:expr) => {
        match tls_server($test) {
            Some(server) => server,
            None => return Ok(()),
        }
    };
}

/// Opens a store on `conninfo` and checks that it stores and finds.
async fn works(conninfo: &str, table: &str) -> TestResult {
    let store = PgStore::builder(conninfo)
        .table(table)
        .cleanup_interval(Duration::ZERO)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await?;
    store
        .commit("tls", b"secret", SystemTime::now() + HOUR)
        .await?;
    assert_eq!(store.find("tls").await?, Some(b"secret".to_vec()));
    assert!(store.delete("tls").await?);
    Ok(())
}

async fn fails(builder: pgstore::Builder) -> Error {
    let shown = format!("{builder:?}");
    match builder
        .cleanup_interval(Duration::ZERO)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
    {
        Ok(_) => panic!("{shown} connected"),
        Err(err) => err,
    }
}

fn tls_kind(err: &Error) -> Option<TlsFailure> {
    match err {
        Error::Tls { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn require_connects_over_tls_and_works() -> TestResult {
    let s = tls_server!("require_connects_over_tls_and_works");
    // The server takes TCP connections over TLS only, so working is proof.
    let table = support::unique_table("tls_require");
    works(&format!("{} sslmode=require", s.url), &table).await?;
    // require checks no certificate: a CA that signed nothing of the
    // server's is not consulted... unless given, as libpq does.
    let err =
        fails(PgStore::builder(&format!("{} sslmode=require", s.url)).ssl_root_cert(&s.other_ca))
            .await;
    assert_eq!(
        tls_kind(&err),
        Some(TlsFailure::UntrustedCertificate),
        "{err:?}"
    );
    // prefer, the default, takes the TLS the server offers.
    works(&s.url, &table).await?;
    let client = support::raw_client(&support::url("tls").expect("checked")).await?;
    support::drop_table(&client, &table).await?;
    Ok(())
}

#[tokio::test]
async fn verify_full_with_the_right_ca_works_as_url_and_as_builder() -> TestResult {
    let s = tls_server!("verify_full_with_the_right_ca_works_as_url_and_as_builder");
    let table = support::unique_table("tls_verify_full");
    works(
        &format!("{} sslmode=verify-full sslrootcert='{}'", s.url, s.ca),
        &table,
    )
    .await?;
    // The same as a URL, with the certificate's IP address as host.
    let port = s
        .url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .expect("a port");
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        s.ca.replace('/', "%2F")
    );
    works(&url, &table).await?;
    // And through the builder.
    let store = PgStore::builder(&s.url)
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(&s.ca)
        .table(&table)
        .cleanup_interval(Duration::ZERO)
        .build()
        .await?;
    store.commit("b", b"1", SystemTime::now() + HOUR).await?;
    assert_eq!(store.find("b").await?, Some(b"1".to_vec()));
    let client = support::raw_client(&support::url("tls").expect("checked")).await?;
    support::drop_table(&client, &table).await?;
    Ok(())
}

#[tokio::test]
async fn a_wrong_ca_fails_typed() -> TestResult {
    let s = tls_server!("a_wrong_ca_fails_typed");
    for mode in ["verify-ca", "verify-full"] {
        let err = fails(PgStore::builder(&format!(
            "{} sslmode={mode} sslrootcert='{}'",
            s.url, s.other_ca
        )))
        .await;
        assert_eq!(
            tls_kind(&err),
            Some(TlsFailure::UntrustedCertificate),
            "{mode}: {err:?}"
        );
        assert!(!err.is_retryable(), "{mode}");
        let chain = pgstore::error_chain(&err);
        assert!(chain.contains("UnknownIssuer"), "{chain}");
    }
    Ok(())
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() -> TestResult {
    let s = tls_server!("verify_full_checks_the_host_name_and_verify_ca_does_not");
    // Connect to 127.0.0.1 under a name the certificate does not hold.
    let misnamed = format!(
        "{} hostaddr=127.0.0.1 host=wrong.example sslrootcert='{}'",
        s.url.replace("host=localhost", ""),
        s.ca
    );
    let err = fails(PgStore::builder(&format!("{misnamed} sslmode=verify-full"))).await;
    assert_eq!(
        tls_kind(&err),
        Some(TlsFailure::HostnameMismatch),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let table = support::unique_table("tls_verify_ca");
    works(&format!("{misnamed} sslmode=verify-ca"), &table).await?;
    let client = support::raw_client(&support::url("tls").expect("checked")).await?;
    support::drop_table(&client, &table).await?;
    Ok(())
}

#[tokio::test]
async fn plain_tcp_to_a_tls_only_server_is_rejected_typed() -> TestResult {
    let s = tls_server!("plain_tcp_to_a_tls_only_server_is_rejected_typed");
    let err = fails(PgStore::builder(&format!("{} sslmode=disable", s.url))).await;
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert!(!err.is_retryable());
    let chain = pgstore::error_chain(&err);
    assert!(chain.contains("no encryption"), "{chain}");
    Ok(())
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails_typed() -> TestResult {
    // A listener that answers PostgreSQL's TLS request with "no", as a
    // server with ssl=off does (the test server's TCP port has TLS on).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Bounded: the pool may try a few connections.
        for _ in 0..8 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                // Length 8, code 80877103: SSLRequest.
                assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    let err = fails(PgStore::builder(&format!(
        "host=127.0.0.1 port={port} user=postgres sslmode=require"
    )))
    .await;
    assert_eq!(tls_kind(&err), Some(TlsFailure::NotOffered), "{err:?}");
    assert!(!err.is_retryable());
    server.abort();
    Ok(())
}

#[tokio::test]
async fn unix_sockets_ignore_sslmode_as_libpq_does() -> TestResult {
    let url = pg_url!();
    if !url.contains("host=/") {
        support::skip(
            "unix_sockets_ignore_sslmode_as_libpq_does: PGSTORE_TEST_URL is not a unix socket",
        );
        return Ok(());
    }
    let table = support::unique_table("tls_unix");
    // The default (prefer) and require both connect plain over the socket.
    works(&url, &table).await?;
    works(&format!("{url} sslmode=require"), &table).await?;
    let client = support::raw_client(&url).await?;
    support::drop_table(&client, &table).await?;
    Ok(())
}

#[tokio::test]
async fn bad_root_certificate_files_are_typed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n")?;
    for path in [garbage, dir.path().join("missing.pem")] {
        let err = fails(
            PgStore::builder("host=localhost port=1 user=postgres sslmode=verify-full")
                .ssl_root_cert(&path),
        )
        .await;
        assert!(
            matches!(&err, Error::RootCertificate { path: p, .. } if *p == path),
            "{err:?}"
        );
    }
    Ok(())
}
