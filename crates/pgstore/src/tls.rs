//! TLS to the server: libpq's `sslmode` and `sslrootcert`, on rustls.
//!
//! tokio-postgres parses `sslmode` as `disable`, `prefer` or `require` only
//! and knows no `sslrootcert`, so [`split_conninfo`] takes both out of the
//! connection string before tokio-postgres sees it, and [`connector`] turns
//! them into tokio-postgres's mode and a rustls connector whose certificate
//! check is exactly the one the mode asks for.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// How the store uses TLS, libpq's `sslmode`: set it in the connection
/// string (`?sslmode=verify-full`, `sslmode=verify-full`) or with
/// [`Builder::ssl_mode`](crate::Builder::ssl_mode).
///
/// | mode | encrypted | certificate checked |
/// |---|---|---|
/// | `disable` | never | - |
/// | `prefer` (default) | when the server offers TLS | no (chain only with a root certificate) |
/// | `require` | always | no (chain only with a root certificate) |
/// | `verify-ca` | always | chain up to the root certificate |
/// | `verify-full` | always | chain, and the host name in the certificate |
///
/// Only `verify-full` stops a man in the middle that holds *some*
/// certificate from the same CA (a managed service's shared CA signs every
/// customer's server); `require` stops passive eavesdropping only. Unix
/// socket connections never use TLS, whatever the mode (as libpq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, else plain.
    Prefer,
    /// TLS always; fails with [`TlsFailure::NotOffered`] when the server
    /// does not offer it.
    Require,
    /// TLS always, and the server's certificate must chain up to the root
    /// certificate; its host name is not checked.
    VerifyCa,
    /// TLS always, the certificate must chain up to the root certificate,
    /// and name the host connected to (in its subject alternative names).
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> std::result::Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" => Err("sslmode=allow is not supported; use prefer or disable".into()),
            other => Err(format!(
                "sslmode must be disable, prefer, require, verify-ca or verify-full, not {other:?}"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    pub(crate) fn from_pg(mode: PgSslMode) -> Self {
        match mode {
            PgSslMode::Disable => Self::Disable,
            PgSslMode::Require => Self::Require,
            // Prefer, and anything a later tokio-postgres adds.
            _ => Self::Prefer,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why TLS with the server failed, in [`Error::Tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server does not offer TLS, and the mode requires it.
    NotOffered,
    /// The server's certificate does not chain up to the root certificate
    /// (a wrong or missing CA, a self-signed certificate).
    UntrustedCertificate,
    /// The certificate is trusted but does not name the host connected to
    /// (`verify-full`).
    HostnameMismatch,
    /// The certificate is unusable otherwise: expired, not yet valid,
    /// malformed, or not for a server.
    InvalidCertificate,
    /// The handshake failed for another reason (no common protocol or
    /// cipher, the server broke off, no host name to check).
    Handshake,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOffered => "the server does not offer tls",
            Self::UntrustedCertificate => {
                "the server's certificate is not signed by a trusted root"
            }
            Self::HostnameMismatch => "the server's certificate does not name the host",
            Self::InvalidCertificate => "the server's certificate is invalid",
            Self::Handshake => "the handshake failed",
        })
    }
}

/// Sorts a connect error: `Some` when it is a TLS failure.
pub(crate) fn classify(err: &tokio_postgres::Error) -> Option<TlsFailure> {
    // tokio-postgres keeps its error kinds private; a TLS failure is the one
    // that says so, with the connector's error as its source.
    if !err
        .to_string()
        .starts_with("error performing TLS handshake")
    {
        return None;
    }
    let cause = std::error::Error::source(err)?;
    let rustls = cause
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    Some(match rustls {
        Some(rustls::Error::InvalidCertificate(e)) => {
            use rustls::CertificateError as C;
            match e {
                C::UnknownIssuer
                | C::BadSignature
                | C::UnsupportedSignatureAlgorithmContext { .. } => {
                    TlsFailure::UntrustedCertificate
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    TlsFailure::HostnameMismatch
                }
                _ => TlsFailure::InvalidCertificate,
            }
        }
        Some(_) => TlsFailure::Handshake,
        None if cause.to_string().contains("does not support TLS") => TlsFailure::NotOffered,
        None => TlsFailure::Handshake,
    })
}

/// The TLS settings found in a connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `conninfo` (a URL or libpq
/// `key=value` string), returning the rest for tokio-postgres. A string this
/// reading cannot follow is returned whole, for tokio-postgres's parser to
/// report.
pub(crate) fn split_conninfo(conninfo: &str) -> std::result::Result<(String, TlsSettings), String> {
    let url_body = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| conninfo.strip_prefix(p).map(|_| p.len()));
    let (rest, pairs) = match url_body {
        Some(start) => split_url(conninfo, start),
        None => split_key_values(conninfo),
    };
    let mut settings = TlsSettings::default();
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => settings.mode = Some(SslMode::parse(&value)?),
            "sslrootcert" if value == "system" => {
                return Err("sslrootcert=system is not supported; name a PEM file".into())
            }
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    Ok((rest, settings))
}

fn is_ours(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// A URL: its query follows the first `?` after the credentials (which end
/// at the first `@`), as tokio-postgres reads it.
fn split_url(url: &str, body_start: usize) -> (String, Vec<(String, String)>) {
    let body = &url[body_start..];
    let after_creds = body.find('@').map_or(0, |i| i + 1);
    let Some(q) = body[after_creds..].find('?') else {
        return (url.to_owned(), Vec::new());
    };
    let query_start = body_start + after_creds + q;
    let mut kept = Vec::new();
    let mut ours = Vec::new();
    for param in url[query_start + 1..].split('&') {
        match param.split_once('=') {
            Some((key, value)) if is_ours(&percent_decode(key)) => {
                ours.push((percent_decode(key), percent_decode(value)));
            }
            _ => kept.push(param),
        }
    }
    let mut rest = url[..query_start].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, ours)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A libpq `key=value` string, read as tokio-postgres reads it: values
/// plain (up to whitespace) or single-quoted, with backslash escapes.
fn split_key_values(s: &str) -> (String, Vec<(String, String)>) {
    let Some(pairs) = key_values(s) else {
        return (s.to_owned(), Vec::new());
    };
    if !pairs.iter().any(|(k, _)| is_ours(k)) {
        return (s.to_owned(), Vec::new());
    }
    let (ours, kept): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| is_ours(k));
    let rest = kept
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ");
    (rest, ours)
}

fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = it.next_if(|&c| !c.is_whitespace() && c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            return it.peek().is_none().then_some(pairs);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        it.next_if_eq(&'=')?;
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = it.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match it.peek().copied() {
                None if quoted => return None,
                None => break,
                Some('\'') if quoted => {
                    it.next();
                    break;
                }
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => {
                    it.next();
                    if let Some(c) = it.next() {
                        value.push(c);
                    }
                }
                Some(c) => {
                    it.next();
                    value.push(c);
                }
            }
        }
        if !quoted && value.is_empty() {
            return None;
        }
        pairs.push((key, value));
    }
}

/// Sets `config`'s TLS mode for `mode` and `root_cert`, and returns the
/// rustls connector to use, or `None` for plain connections.
pub(crate) fn connector(
    mode: Option<SslMode>,
    root_cert: Option<&Path>,
    config: &mut tokio_postgres::Config,
) -> Result<Option<MakeRustlsConnect>> {
    let mode = mode.unwrap_or(SslMode::Prefer);
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(Error::InvalidConfig(format!(
            "sslmode={mode} needs a root certificate: sslrootcert=PATH in the \
             connection string, or Builder::ssl_root_cert"
        )));
    }
    // libpq never uses TLS on a unix socket; neither does PostgreSQL's
    // server, which answers "no" to every TLS request there.
    #[cfg(unix)]
    let all_unix = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
    #[cfg(not(unix))]
    let all_unix = false;
    if mode == SslMode::Disable || all_unix {
        config.ssl_mode(PgSslMode::Disable);
        return Ok(None);
    }
    config.ssl_mode(if mode == SslMode::Prefer {
        PgSslMode::Prefer
    } else {
        PgSslMode::Require
    });
    let roots = root_cert.map(load_roots).transpose()?.map(Arc::new);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier {
        roots,
        check_name: mode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("cannot set up tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // PostgreSQL 17's direct TLS negotiation requires it; older servers
    // ignore it.
    tls.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(MakeRustlsConnect::new(tls)))
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    let fail = |reason: String| Error::RootCertificate {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("the file holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// The server certificate check of every mode: none without roots
/// (`prefer`, `require`), the chain with roots, and the host name too for
/// `verify-full`. Handshake signatures are always checked, against the
/// certificate presented.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, TlsSettings) {
        split_conninfo(s).expect(s)
    }

    #[test]
    fn urls_lose_only_the_tls_keys() {
        let (rest, tls) =
            split("postgres://u:p%3Fw@db.example:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(
            rest,
            "postgres://u:p%3Fw@db.example:5432/app?application_name=x"
        );
        assert_eq!(tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, tls) = split("postgresql://db/app?sslmode=require");
        assert_eq!(rest, "postgresql://db/app");
        assert_eq!(tls.mode, Some(SslMode::Require));
        let (rest, tls) = split("postgres://u@db/app");
        assert_eq!(rest, "postgres://u@db/app");
        assert_eq!(tls, TlsSettings::default());
        // A '?' in the password is before the '@'.
        let (rest, tls) = split("postgres://u:a?b@db/app?sslmode=disable");
        assert_eq!(rest, "postgres://u:a?b@db/app");
        assert_eq!(tls.mode, Some(SslMode::Disable));
    }

    #[test]
    fn key_values_lose_only_the_tls_keys() {
        let (rest, tls) = split(
            "host=db.example  user = app password='it\\'s' sslmode=verify-ca sslrootcert='/a b/ca.pem'",
        );
        assert_eq!(rest, "host='db.example' user='app' password='it\\'s'");
        let config: tokio_postgres::Config = rest.parse().expect("parses");
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
        assert_eq!(tls.mode, Some(SslMode::VerifyCa));
        assert_eq!(tls.root_cert, Some(PathBuf::from("/a b/ca.pem")));
        // Untouched when there is nothing of ours.
        let (rest, _) = split("host=/tmp dbname=app");
        assert_eq!(rest, "host=/tmp dbname=app");
        // Broken strings go to tokio-postgres whole.
        let (rest, _) = split("host='unterminated sslmode=require");
        assert_eq!(rest, "host='unterminated sslmode=require");
    }

    #[test]
    fn bad_modes_are_named() {
        for (s, says) in [
            ("sslmode=allow", "allow is not supported"),
            ("sslmode=strict", "\"strict\""),
            ("postgres://db/x?sslmode=nope", "\"nope\""),
            ("sslrootcert=system", "system is not supported"),
        ] {
            let err = split_conninfo(s).expect_err(s);
            assert!(err.contains(says), "{s}: {err}");
        }
    }

    #[test]
    fn unix_sockets_never_use_tls_and_verify_modes_need_a_root() {
        let mut config: tokio_postgres::Config = "host=/tmp".parse().expect("parses");
        let tls = connector(Some(SslMode::Require), None, &mut config).expect("ok");
        assert!(tls.is_none());
        assert_eq!(config.get_ssl_mode(), PgSslMode::Disable);
        let mut config: tokio_postgres::Config = "host=db".parse().expect("parses");
        let Err(err) = connector(Some(SslMode::VerifyFull), None, &mut config) else {
            panic!("verify-full without a root certificate");
        };
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        let tls = connector(Some(SslMode::Require), None, &mut config).expect("ok");
        assert!(tls.is_some());
        assert_eq!(config.get_ssl_mode(), PgSslMode::Require);
        let Err(err) = connector(
            Some(SslMode::VerifyCa),
            Some(Path::new("/nonexistent/ca.pem")),
            &mut config,
        ) else {
            panic!("a missing root certificate file");
        };
        assert!(matches!(err, Error::RootCertificate { .. }), "{err:?}");
    }
}
