//! Reaching the server: the connection string, TLS, a small pool, and
//! connecting with bounded retries.
//!
//! `conn_string` is what upstream (pgx, libpq) accepts: a URL
//! (`postgresql://user:pass@host:port/db?sslmode=verify-full`) or libpq
//! `key=value` pairs, with `PG*` environment variables filling what it leaves
//! out. tokio-postgres understands only part of that, so the string is read
//! here: the TLS parameters (`sslmode` with all six libpq values,
//! `sslrootcert`, `sslcert`, `sslkey`) build a rustls configuration,
//! `pool_max_conns` sizes the pool, other pgx `pool_*` parameters are
//! ignored, and any other unknown parameter is sent to the server as a
//! run-time setting (`options=-c name=value`), as pgx does.
//!
//! Nothing here prints the connection string or a password: messages name
//! the server by `host:port/database` ([`ConnSpec::target`]) only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, GenericClient, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sql::pg_err;
use crate::backend::{Error, ErrorKind, Result};

/// Connection attempts before a connection problem is reported.
pub const CONNECT_ATTEMPTS: u32 = 3;
/// Pause before the second connection attempt; doubled for each later one.
pub const CONNECT_BACKOFF: Duration = Duration::from_millis(150);
/// `connect_timeout` when the connection string sets none (libpq waits
/// forever; an unreachable host would hang a service's start).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Fewest pooled connections when `pool_max_conns` is not set (pgxpool's
/// default is the larger of 4 and the number of CPUs).
pub const MIN_DEFAULT_POOL: usize = 4;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server insists; certificates are not checked.
    Allow,
    /// TLS if the server offers it (libpq's default); certificates are not checked.
    Prefer,
    /// TLS always; certificates are checked only if `sslrootcert` is set.
    Require,
    /// TLS, with a certificate chain to a trusted root.
    VerifyCa,
    /// TLS, with a trusted chain naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::bad_parameter(format!(
                    "conn_string: sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// TLS settings read from the connection string.
#[derive(Debug, Clone)]
struct TlsSettings {
    mode: SslMode,
    root_cert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// A parsed connection string: what to connect to, how, and how to name it.
#[derive(Clone)]
pub struct ConnSpec {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Most connections the pool opens.
    pub pool_max: usize,
    /// `host:port/database`, for messages. Never holds a password.
    pub target: String,
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSpec").field("target", &self.target).field("pool_max", &self.pool_max).finish()
    }
}

/// libpq's environment variables, lowest precedence first.
const ENV_PARAMS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
];

/// Parameters tokio-postgres reads itself.
const NATIVE_PARAMS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// libpq parameters with no effect here (no GSSAPI, no compression, no SNI
/// switch: rustls always sends SNI for host names).
const IGNORED_PARAMS: &[&str] = &[
    "gssencmode",
    "gsslib",
    "krbsrvname",
    "sslcompression",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requirepeer",
    "fallback_application_name",
];

impl ConnSpec {
    /// Parses `conn` (a URL or `key=value` pairs), naming `field` in errors.
    /// Errors never quote the string: it may hold a password.
    pub fn parse(conn: &str, field: &str) -> Result<ConnSpec> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (var, key) in ENV_PARAMS {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                pairs.push((key.to_string(), v));
            }
        }
        let conn = conn.trim();
        let own = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
            parse_url(conn)
        } else {
            parse_key_values(conn)
        }
        .map_err(|m| Error::bad_parameter(format!("{field}: {m}")))?;
        pairs.extend(own);
        build(pairs, field)
    }

    /// The same server and credentials, another database (to create the
    /// configured one).
    pub fn with_dbname(&self, db: &str) -> ConnSpec {
        let mut s = self.clone();
        s.config.dbname(db);
        s
    }

    /// Adds `-c name=value` run-time settings to every connection.
    pub fn with_settings(&self, settings: &[(&str, &str)]) -> ConnSpec {
        let mut s = self.clone();
        let mut options = s.config.get_options().unwrap_or_default().to_string();
        for (name, value) in settings {
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!("-c {name}={}", escape_option(value)));
        }
        s.config.options(&options);
        s
    }

    /// The database name (defaults to the user name, as libpq).
    pub fn dbname(&self) -> String {
        self.config.get_dbname().or(self.config.get_user()).unwrap_or_default().to_string()
    }

    /// One connection, without retries; its I/O runs on a spawned task.
    async fn connect_once(&self) -> std::result::Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(server = %target, error = %e, "postgres connection ended");
            }
        });
        Ok(client)
    }

    /// Connects, retrying connection problems up to [`CONNECT_ATTEMPTS`]
    /// times. Credential and configuration errors fail at once. The error
    /// names the store and `host:port/database`.
    pub async fn connect(&self) -> Result<Client> {
        let mut delay = CONNECT_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.connect_once().await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    let err = pg_err(e);
                    if err.kind() == ErrorKind::ConnectionProblem && attempt < CONNECT_ATTEMPTS {
                        tracing::debug!(server = %self.target, attempt, error = %err, "postgres connect failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                        continue;
                    }
                    let tries = if attempt > 1 { format!(" (after {attempt} attempts)") } else { String::new() };
                    return Err(err.context(format!("postgres {}: connect{tries}", self.target)));
                }
            }
        }
    }
}

fn build(pairs: Vec<(String, String)>, field: &str) -> Result<ConnSpec> {
    let bad = |m: String| Error::bad_parameter(format!("{field}: {m}"));
    // Later pairs win, as in libpq.
    let mut map: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        map.retain(|(mk, _)| *mk != k);
        map.push((k, v));
    }
    let mut native = String::new();
    let mut runtime: Vec<(String, String)> = Vec::new();
    let mut tls = TlsSettings { mode: SslMode::Prefer, root_cert: None, cert: None, key: None };
    let mut pool_max = None;
    let mut has_user = false;
    let mut has_timeout = false;
    let mut app_name = None;
    let mut fallback_app = None;
    for (k, v) in &map {
        match k.as_str() {
            "sslmode" => tls.mode = SslMode::parse(v).map_err(|e| bad(e.message().replace("conn_string: ", "")))?,
            "sslrootcert" => tls.root_cert = Some(v.clone()),
            "sslcert" => tls.cert = Some(PathBuf::from(v)),
            "sslkey" => tls.key = Some(PathBuf::from(v)),
            "sslpassword" | "sslcrl" | "sslcrldir" | "passfile" | "service" | "servicefile" => {
                return Err(bad(format!("the `{k}` parameter is not supported by this build")));
            }
            "pool_max_conns" => {
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("pool_max_conns must be a positive number, not {v:?}")))?;
                pool_max = Some(n);
            }
            k if k.starts_with("pool_") => {
                tracing::debug!(parameter = k, "postgres: pgxpool parameter ignored");
            }
            "fallback_application_name" => fallback_app = Some(v.clone()),
            k if IGNORED_PARAMS.contains(&k) => {
                tracing::debug!(parameter = k, "postgres: libpq parameter has no effect here");
            }
            "sslnegotiation" | "channel_binding" | "load_balance_hosts" | "target_session_attrs" => {
                push_native(&mut native, k, v);
            }
            k if NATIVE_PARAMS.contains(&k) => {
                match k {
                    "user" => has_user = true,
                    "connect_timeout" => has_timeout = true,
                    "application_name" => app_name = Some(v.clone()),
                    _ => {}
                }
                if k != "application_name" {
                    push_native(&mut native, k, v);
                }
            }
            other => {
                if !other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') || other.is_empty() {
                    return Err(bad(format!("{other:?} is not a connection parameter name")));
                }
                runtime.push((other.to_string(), v.clone()));
            }
        }
    }
    if !has_user {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .map_err(|_| bad("no user: set one in the string (postgresql://USER@host/db or user=USER)".to_string()))?;
        push_native(&mut native, "user", &user);
    }
    if !has_timeout {
        push_native(&mut native, "connect_timeout", &DEFAULT_CONNECT_TIMEOUT.as_secs().to_string());
    }
    if let Some(name) = app_name.or(fallback_app) {
        push_native(&mut native, "application_name", &name);
    }
    // The crate's own parser rejects what it does not know; TLS is ours.
    let pg_mode = match tls.mode {
        SslMode::Disable => "disable",
        SslMode::Allow | SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    };
    push_native(&mut native, "sslmode", pg_mode);
    let mut config = tokio_postgres::Config::from_str(&native).map_err(|e| bad(format!("{e}")))?;
    if !runtime.is_empty() {
        let mut options = config.get_options().unwrap_or_default().to_string();
        for (k, v) in &runtime {
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!("-c {k}={}", escape_option(v)));
        }
        config.options(&options);
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        // libpq's default: the local socket directory, else localhost.
        let sock = std::path::Path::new("/var/run/postgresql");
        if sock.is_dir() {
            config.host_path(sock);
        } else {
            config.host("localhost");
        }
    }
    let target = describe(&config);
    let tls = MakeRustlsConnect::new(tls_config(&tls).map_err(|e| e.context(field))?);
    let pool_max = pool_max
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(MIN_DEFAULT_POOL));
    Ok(ConnSpec { config, tls, pool_max, target })
}

/// `host:port[,host:port...]/database`.
fn describe(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port_at = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port_at(i)),
            Host::Tcp(name) => format!("{name}:{}", port_at(i)),
            Host::Unix(path) => format!("{}:{}", path.display(), port_at(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config.get_hostaddrs().iter().enumerate().map(|(i, a)| format!("{a}:{}", port_at(i))).collect();
    }
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{}/{db}", hosts.join(","))
}

fn push_native(out: &mut String, k: &str, v: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(k);
    out.push_str("='");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Escapes a value for the `options` startup parameter (spaces and
/// backslashes are escaped with a backslash).
fn escape_option(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if c == ' ' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// libpq `key=value` pairs, values optionally single-quoted with backslash
/// escapes.
fn parse_key_values(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(format!("expected `=` after parameter {key:?} (the string is a URL or `key=value` pairs)"));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quoted value of parameter {key:?}")),
                    Some('\'') => break,
                    Some('\\') => match it.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value of parameter {key:?}")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = it.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str, what: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => out.push(v),
                None => return Err(format!("bad percent-encoding in the URL's {what}")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the URL's {what} is not UTF-8"))
}

/// `postgres[ql]://[user[:password]@][host[:port][,...]][/dbname][?k=v&...]`.
fn parse_url(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let rest = s.strip_prefix("postgresql://").or_else(|| s.strip_prefix("postgres://")).unwrap_or(s);
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let mut out = Vec::new();
    let hostlist = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".to_string(), percent_decode(user, "user")?));
            }
            if let Some(p) = password {
                out.push(("password".to_string(), percent_decode(p, "password")?));
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    if !hostlist.is_empty() {
        let (mut hosts, mut ports) = (Vec::new(), Vec::new());
        for part in hostlist.split(',') {
            let (host, port) = if let Some(v6) = part.strip_prefix('[') {
                let (h, after) = v6.split_once(']').ok_or("unclosed `[` in the URL's host")?;
                (h.to_string(), after.strip_prefix(':').unwrap_or(""))
            } else {
                match part.rsplit_once(':') {
                    Some((h, p)) => (percent_decode(h, "host")?, p),
                    None => (percent_decode(part, "host")?, ""),
                }
            };
            hosts.push(host);
            ports.push(port.to_string());
        }
        out.push(("host".to_string(), hosts.join(",")));
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_string(), ports.join(",")));
        }
    }
    if let Some(p) = path
        && !p.is_empty()
    {
        out.push(("dbname".to_string(), percent_decode(p, "database name")?));
    }
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or("a URL query parameter has no `=`")?;
        let k = percent_decode(k, "query")?;
        let v = percent_decode(&v.replace('+', " "), "query")?;
        out.push((k, v));
    }
    Ok(out)
}

/// The rustls configuration for the TLS settings, with the aws-lc-rs
/// provider and TLS 1.2 as the minimum.
fn tls_config(t: &TlsSettings) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // libpq: `require` with a root certificate behaves as `verify-ca`.
    let mode = match (t.mode, &t.root_cert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (m, _) => m,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
            // libpq's `prefer` and `require`: encrypt, accept any certificate.
            Arc::new(crate::crypto::tls::AnyServerCertificate::new(&provider))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(t.root_cert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::bad_parameter(format!("build the TLS verifier: {e}")))?;
            if mode == SslMode::VerifyCa { Arc::new(ChainOnly(webpki)) } else { webpki }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::bad_parameter(format!("sslcert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::bad_parameter(format!("sslkey {}: {e}", key.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| Error::bad_parameter(format!("sslcert/sslkey: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::bad_parameter("sslcert and sslkey go together")),
    }
}

/// Trust roots: the `sslrootcert` PEM file, or the system's (`system` or unset).
fn roots(root_cert: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::bad_parameter(format!("sslrootcert {path}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::bad_parameter(format!("sslrootcert {path}: no usable certificate in the file")));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(Error::bad_parameter(
                    "no system CA certificates found for sslmode=verify-ca/verify-full; set sslrootcert",
                ));
            }
        }
    }
    Ok(store)
}

/// libpq's `verify-ca`: a trusted chain, whatever name it is for.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name, so a name error means the
        // chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One pooled connection and its prepared statements.
pub struct Conn {
    /// The client.
    pub client: Client,
    stmts: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement for `sql`, prepared on first use.
    pub async fn stmt(&mut self, sql: &str) -> std::result::Result<Statement, tokio_postgres::Error> {
        cached(&mut self.stmts, &self.client, sql).await
    }

    /// Splits the connection into its client and its statement cache (to
    /// prepare statements inside a transaction).
    pub fn parts(&mut self) -> (&mut Client, &mut HashMap<String, Statement>) {
        (&mut self.client, &mut self.stmts)
    }
}

/// The prepared statement for `sql` in `cache`, prepared through `client`
/// (a connection or a transaction on it) on first use.
pub async fn cached<C: GenericClient + Sync>(
    cache: &mut HashMap<String, Statement>,
    client: &C,
    sql: &str,
) -> std::result::Result<Statement, tokio_postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).await?;
    cache.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// A small connection pool: at most `pool_max` connections, idle ones
/// reused, closed ones dropped. Connections are opened on demand with
/// [`ConnSpec::connect`]'s retries.
pub struct Pool {
    spec: ConnSpec,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection taken from the pool; it goes back when dropped, unless it
/// was closed or [`PoolConn::discard`]ed.
pub struct PoolConn<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for PoolConn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Set from construction until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("pooled connection taken twice"))
    }
}

impl std::ops::DerefMut for PoolConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("pooled connection taken twice"))
    }
}

impl PoolConn<'_> {
    /// Closes the connection instead of returning it to the pool.
    pub fn discard(mut self) {
        self.conn = None;
    }
}

impl Drop for PoolConn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take()
            && !c.client.is_closed()
        {
            self.pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }
}

impl Pool {
    /// A pool for `spec`, holding `first` (the connection opened to check
    /// the server) as its first idle connection.
    pub fn new(spec: ConnSpec, first: Client) -> Pool {
        let max = spec.pool_max.max(1);
        Pool {
            spec,
            idle: Mutex::new(vec![Conn { client: first, stmts: HashMap::new() }]),
            permits: Semaphore::new(max),
        }
    }

    /// A connection: an idle one, or a new one.
    pub async fn get(&self) -> Result<PoolConn<'_>> {
        let permit =
            self.permits.acquire().await.map_err(|_| Error::closed(format!("postgres {}", self.spec.target)))?;
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match next {
                Some(c) if c.client.is_closed() => continue,
                Some(c) => return Ok(PoolConn { conn: Some(c), pool: self, _permit: permit }),
                None => break,
            }
        }
        let client = self.spec.connect().await?;
        Ok(PoolConn { conn: Some(Conn { client, stmts: HashMap::new() }), pool: self, _permit: permit })
    }

    /// Refuses new connections and closes the idle ones.
    pub fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ConnSpec {
        ConnSpec::parse(s, "conn_string").unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_and_key_values_name_the_server_without_the_password() {
        let s = spec("postgresql://teleport:s3cr%40t@pg.example.com:5433/teleport_backend?sslmode=disable");
        assert_eq!(s.target, "pg.example.com:5433/teleport_backend");
        assert_eq!(s.config.get_user(), Some("teleport"));
        assert_eq!(s.config.get_password(), Some(&b"s3cr@t"[..]));
        assert!(!format!("{s:?}").contains("s3cr"));

        let s = spec(r"host=10.0.0.5 port=5432 dbname='tele port' user=t password='it\'s' sslmode=disable");
        assert_eq!(s.config.get_password(), Some(&b"it's"[..]));
        assert_eq!(s.target, "10.0.0.5:5432/tele port");

        let s = spec("postgres://u@[::1]:6000,h2/db?sslmode=disable");
        assert_eq!(s.target, "[::1]:6000,h2:5432/db");
        let s = spec("postgres://u@%2Ftmp%2Fsock:5444/db?sslmode=disable");
        assert_eq!(s.target, "/tmp/sock:5444/db");
    }

    #[test]
    fn upstream_parameters_are_accepted() {
        let s = spec(
            "postgresql://u@pg/db?sslmode=verify-full&sslrootcert=system&pool_max_conns=20&pool_min_conns=2&search_path=teleport",
        );
        assert_eq!(s.pool_max, 20);
        assert_eq!(s.config.get_options(), Some("-c search_path=teleport"));
        let s = spec("postgresql://u@pg/db?sslmode=verify-ca&default_transaction_isolation=serializable");
        assert_eq!(s.config.get_options(), Some("-c default_transaction_isolation=serializable"));
        for mode in ["disable", "allow", "prefer", "require"] {
            spec(&format!("postgresql://u@pg/db?sslmode={mode}"));
        }
    }

    #[test]
    fn errors_name_the_field_never_the_string() {
        for bad in [
            "postgresql://u:hunter2@pg/db?sslmode=sometimes",
            "postgresql://u:hunter2@pg/db?pool_max_conns=lots",
            "user=u password=hunter2 port",
            "user=u password='hunter2",
            "postgresql://u:hunter2@pg/db?sslpassword=x",
            "postgresql://u:hunter2@pg/db?sslmode=require&sslcert=/nonexistent.pem",
        ] {
            let e = ConnSpec::parse(bad, "change_feed_conn_string").unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("change_feed_conn_string: "), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
            assert_eq!(e.kind(), ErrorKind::BadParameter, "{msg}");
        }
    }

    #[test]
    fn runtime_settings_are_escaped() {
        let s =
            spec("postgresql://u@pg/db?sslmode=disable&application_name=a%20b").with_settings(&[("TimeZone", "UTC")]);
        assert_eq!(s.config.get_application_name(), Some("a b"));
        assert_eq!(s.config.get_options(), Some("-c TimeZone=UTC"));
        assert_eq!(escape_option(r"a b\c"), r"a\ b\\c");
        assert_eq!(s.with_dbname("postgres").dbname(), "postgres");
    }
}
