//! teleport.yaml as `teleport start` reads it: the `teleport`, `auth_service`,
//! `proxy_service` and `ssh_service` sections with upstream's field names,
//! their defaults, and accessors that apply them. Part of the config leaf:
//! it uses only the other files of config/ and touches nothing else.
//!
//! Unknown-field policy (see fields.rs for the mechanism):
//! - a field this build implements is read strictly: a wrong type or value
//!   is an error naming the file, the dotted path and the line;
//! - a field upstream defines that this build does not implement (each
//!   section's `UPSTREAM_ONLY` list, for example `teleport.cache`,
//!   `auth_service.license_file` or a whole `kubernetes_service` section) is
//!   accepted, skipped, and reported by [`FileConfig::ignored_fields`] (the
//!   lists are in file/upstream.rs); the
//!   loader logs one warning per such field, naming it but never its value;
//! - any other key is an error naming the file, the path
//!   (`auth_service.listn_addr`) and the line, with "did you mean" when a
//!   known field is a small edit away or the key belongs in another section.
//!
//! `teleport backend -c teleport.yaml` does not use this model: it reads only
//! `teleport.data_dir` and `teleport.storage` (see `config::StorageSource`),
//! so it works on any upstream version's file.
//!
//! Secrets: `teleport.auth_token` and the static tokens are redacted from
//! `Debug`, and no error message quotes them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::addr::Addr;
use super::fields::{self, Scalar, bool_flag, one_or_many, section};
use super::words::{
    AuthType, LogFormatOutput, LogOutput, LogSeverity, ProxyListenerMode, Role, SecondFactor, SessionRecording,
};
use super::{ConfigError, DEFAULT_DATA_DIR, StorageConfig};

/// The auth service's API port.
pub const DEFAULT_AUTH_PORT: u16 = 3025;
/// The SSH node port.
pub const DEFAULT_SSH_PORT: u16 = 3022;
/// The proxy's SSH port.
pub const DEFAULT_PROXY_SSH_PORT: u16 = 3023;
/// The proxy's reverse-tunnel port.
pub const DEFAULT_TUNNEL_PORT: u16 = 3024;
/// The proxy's HTTPS (web) port.
pub const DEFAULT_WEB_PORT: u16 = 3080;
/// The diagnostics port when `diag_addr` names only a host.
pub const DEFAULT_DIAG_PORT: u16 = 3000;
/// The config versions upstream defines.
pub const CONFIG_VERSIONS: &[&str] = &["v1", "v2", "v3"];

/// A text that must not be logged (`teleport.auth_token`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself; keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A teleport.yaml. Read it with [`FileConfig::load`] or
/// [`FileConfig::from_str_named`] (they apply the unknown-field policy,
/// validate, and read static-token files); the accessors apply defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `version`: v1, v2 or v3 (default v1, as upstream).
    #[serde(default, deserialize_with = "version")]
    pub version: Option<String>,
    /// `teleport:`, settings every service shares.
    #[serde(default, deserialize_with = "section")]
    pub teleport: TeleportSection,
    /// `auth_service:`.
    #[serde(default, deserialize_with = "section")]
    pub auth_service: AuthServiceSection,
    /// `proxy_service:`.
    #[serde(default, deserialize_with = "section")]
    pub proxy_service: ProxyServiceSection,
    /// `ssh_service:`.
    #[serde(default, deserialize_with = "section")]
    pub ssh_service: SshServiceSection,
    #[serde(skip)]
    ignored: Vec<String>,
    #[serde(skip)]
    source: PathBuf,
}

/// The `teleport:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeleportSection {
    /// `nodename`: this host's name in the cluster (default: the hostname).
    #[serde(default)]
    pub nodename: Option<String>,
    /// `data_dir` (default /var/lib/teleport).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `pid_file`: where the process writes its pid (default: none).
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// `auth_token`: the join token (or an absolute path to a file holding it).
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// `auth_server` (v3): the auth server to join, `host[:3025]`.
    #[serde(default)]
    pub auth_server: Option<Addr>,
    /// `auth_servers` (v1, v2): one address or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub auth_servers: Vec<Addr>,
    /// `proxy_server` (v3): join through a proxy, `host[:3080]`.
    #[serde(default)]
    pub proxy_server: Option<Addr>,
    /// `ca_pin`: one `sha256:<hash>` or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub ca_pin: Vec<String>,
    /// `diag_addr`: the diagnostics HTTP endpoint (default: off; the
    /// `--diag-addr` flag sets it too).
    #[serde(default)]
    pub diag_addr: Option<Addr>,
    /// `advertise_ip`: the address other hosts reach this one at.
    #[serde(default)]
    pub advertise_ip: Option<Addr>,
    /// `log:`.
    #[serde(default, deserialize_with = "section")]
    pub log: LogSection,
    /// `storage:` (default: sqlite under `<data_dir>/backend`).
    #[serde(default)]
    pub storage: Option<StorageConfig>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// `teleport.log`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `output`: stderr (default), stdout, syslog or a file path.
    #[serde(default)]
    pub output: LogOutput,
    /// `severity`: trace, debug, info (default), warn or error.
    #[serde(default)]
    pub severity: Option<LogSeverity>,
    /// `format:` (upstream's older list form `format: [timestamp, level]` is
    /// read as `extra_fields` with text output).
    #[serde(default, deserialize_with = "log_format")]
    pub format: LogFormat,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// `teleport.log.format`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFormat {
    /// `output`: text (default) or json.
    #[serde(default)]
    pub output: Option<LogFormatOutput>,
    /// `extra_fields`: any of timestamp, level, component, caller.
    #[serde(default, deserialize_with = "one_or_many")]
    pub extra_fields: Vec<String>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// The `auth_service:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthServiceSection {
    /// `enabled`: a boolean or yes/no (default: yes).
    #[serde(default, deserialize_with = "bool_flag")]
    pub enabled: Option<bool>,
    /// `listen_addr` (default 0.0.0.0:3025).
    #[serde(default)]
    pub listen_addr: Option<Addr>,
    /// `public_addr`: one address or a list (port default 3025).
    #[serde(default, deserialize_with = "one_or_many")]
    pub public_addr: Vec<Addr>,
    /// `cluster_name` (default: the nodename).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// `tokens`: static join tokens, `"<roles>:<token>"` each.
    #[serde(default, deserialize_with = "one_or_many")]
    pub tokens: Vec<StaticToken>,
    /// `authentication:`.
    #[serde(default, deserialize_with = "section")]
    pub authentication: AuthenticationSection,
    /// `session_recording` (default node).
    #[serde(default)]
    pub session_recording: Option<SessionRecording>,
    /// `proxy_listener_mode` (default separate).
    #[serde(default)]
    pub proxy_listener_mode: Option<ProxyListenerMode>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// `auth_service.authentication`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationSection {
    /// `type`: local (default), github, oidc or saml.
    #[serde(default, rename = "type")]
    pub kind: AuthType,
    /// `second_factor`: off, otp (default), optional, on or webauthn.
    #[serde(default)]
    pub second_factor: Option<SecondFactor>,
    /// `connector_name`: the default SSO connector.
    #[serde(default)]
    pub connector_name: Option<String>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// A static join token from `auth_service.tokens`.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// Canonical lower-case role names (node, proxy, auth, ...), no duplicates.
    pub roles: Vec<String>,
    /// The secret. When the file named an absolute path, this is a line of
    /// that file (one token per non-empty line, as upstream).
    pub token: String,
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken").field("roles", &self.roles).field("token", &"<redacted>").finish()
    }
}

impl StaticToken {
    /// Parses `"<roles>:<token>"`. Messages never quote the token.
    pub fn parse(spec: &str) -> Result<StaticToken, String> {
        let Some((roles, token)) = spec.split_once(':') else {
            return Err("a static token is written \"<roles>:<token>\", for example \"node,proxy:<token>\" \
                        (the value is not shown: it holds a secret)"
                .into());
        };
        let mut out = Vec::new();
        for r in roles.split(',') {
            let r = r.trim();
            if r.is_empty() {
                return Err(format!("empty role in {roles:?}; list roles separated by commas, e.g. node,proxy"));
            }
            let role = Role::parse(r)?.as_str().to_string();
            if !out.contains(&role) {
                out.push(role);
            }
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the token after \"{roles}:\" is empty"));
        }
        Ok(StaticToken { roles: out, token: token.to_string() })
    }
}

impl<'de> Deserialize<'de> for StaticToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StaticToken, D::Error> {
        fields::parse_scalar(d, "a static token, \"<roles>:<token>\"", StaticToken::parse)
    }
}

/// The `proxy_service:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyServiceSection {
    /// `enabled` (default: yes).
    #[serde(default, deserialize_with = "bool_flag")]
    pub enabled: Option<bool>,
    /// `listen_addr`: the SSH proxy port (default 0.0.0.0:3023).
    #[serde(default)]
    pub listen_addr: Option<Addr>,
    /// `web_listen_addr`: HTTPS for tsh and the web UI (default 0.0.0.0:3080).
    #[serde(default)]
    pub web_listen_addr: Option<Addr>,
    /// `tunnel_listen_addr`: reverse tunnels (default 0.0.0.0:3024).
    #[serde(default)]
    pub tunnel_listen_addr: Option<Addr>,
    /// `public_addr`: the web address users reach (port default 3080).
    #[serde(default, deserialize_with = "one_or_many")]
    pub public_addr: Vec<Addr>,
    /// `ssh_public_addr` (port default 3023).
    #[serde(default, deserialize_with = "one_or_many")]
    pub ssh_public_addr: Vec<Addr>,
    /// `tunnel_public_addr` (port default 3024).
    #[serde(default, deserialize_with = "one_or_many")]
    pub tunnel_public_addr: Vec<Addr>,
    /// `https_keypairs`: TLS certificates for the web port.
    #[serde(default)]
    pub https_keypairs: Vec<KeyPair>,
    /// `https_key_file` (older single-pair form; goes with `https_cert_file`).
    #[serde(default)]
    pub https_key_file: Option<PathBuf>,
    /// `https_cert_file`.
    #[serde(default)]
    pub https_cert_file: Option<PathBuf>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// One `https_keypairs` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM certificate chain.
    pub cert_file: PathBuf,
}

/// The `ssh_service:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshServiceSection {
    /// `enabled` (default: yes).
    #[serde(default, deserialize_with = "bool_flag")]
    pub enabled: Option<bool>,
    /// `listen_addr` (default 0.0.0.0:3022).
    #[serde(default)]
    pub listen_addr: Option<Addr>,
    /// `public_addr` (port default 3022).
    #[serde(default, deserialize_with = "one_or_many")]
    pub public_addr: Vec<Addr>,
    /// `labels`: static labels (values may be numbers or booleans; read as text).
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    /// `commands`: dynamic labels.
    #[serde(default)]
    pub commands: Vec<CommandLabel>,
    #[serde(skip)]
    ignored: Vec<String>,
}

/// One `ssh_service.commands` entry: a label whose value is a command's output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandLabel {
    /// The label name.
    pub name: String,
    /// The program and its arguments.
    #[serde(deserialize_with = "one_or_many")]
    pub command: Vec<String>,
    /// How often it runs (Go duration, e.g. `1m0s`; default 1h as upstream).
    #[serde(default, with = "super::duration::option")]
    pub period: Option<Duration>,
}

fn version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    fields::parse_scalar(d, "a config version", |v| {
        let v = v.trim().to_ascii_lowercase();
        if CONFIG_VERSIONS.contains(&v.as_str()) {
            Ok(Some(v))
        } else {
            Err(format!("unknown config version {v:?}; use one of: {}", CONFIG_VERSIONS.join(", ")))
        }
    })
}

fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = Option::<BTreeMap<String, Scalar>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = LogFormat;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping with `output` (text or json) and `extra_fields`")
        }
        fn visit_unit<E: de::Error>(self) -> Result<LogFormat, E> {
            Ok(LogFormat::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<LogFormat, E> {
            Ok(LogFormat::default())
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<LogFormat, A::Error> {
            let mut extra_fields = Vec::new();
            while let Some(f) = seq.next_element::<String>()? {
                extra_fields.push(f);
            }
            Ok(LogFormat { output: Some(LogFormatOutput::Text), extra_fields, ignored: Vec::new() })
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<LogFormat, A::Error> {
            section(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

impl FileConfig {
    /// Reads and checks a teleport.yaml.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "not UTF-8 text (invalid byte at offset {}); is this a binary file?",
                e.utf8_error().valid_up_to()
            ),
        })?;
        FileConfig::from_str_named(&text, path)
    }

    /// Parses and checks teleport.yaml text; `name` names it in errors.
    /// Logs one warning per upstream field that this build ignores.
    pub fn from_str_named(text: &str, name: impl AsRef<Path>) -> Result<FileConfig, ConfigError> {
        let name = name.as_ref();
        if text.trim().is_empty() {
            return Err(ConfigError::Parse {
                path: name.to_path_buf(),
                message: "the file is empty; expected a teleport.yaml (`teleport configure` prints a sample)".into(),
            });
        }
        let de = serde_norway::Deserializer::from_str(text);
        let mut cfg: FileConfig =
            section(de).map_err(|e| ConfigError::Parse { path: name.to_path_buf(), message: with_location(&e) })?;
        cfg.source = name.to_path_buf();
        cfg.validate()?;
        cfg.read_token_files()?;
        for field in cfg.ignored_fields() {
            tracing::warn!(
                file = %name.display(),
                field = %field,
                "`{field}` is an upstream setting this build does not implement; it is ignored"
            );
        }
        Ok(cfg)
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.source.clone(), field: field.into(), message: message.into() }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(storage) = &self.teleport.storage {
            super::validate_storage(&self.source, storage, "teleport.storage")?;
        }
        for (field, v) in [
            ("teleport.nodename", &self.teleport.nodename),
            ("auth_service.cluster_name", &self.auth_service.cluster_name),
        ] {
            if matches!(v, Some(s) if s.trim().is_empty()) {
                return Err(self.invalid(field, "must not be empty (leave it out for the default)"));
            }
        }
        let t = &self.teleport;
        if t.auth_server.is_some() && !t.auth_servers.is_empty() {
            return Err(self.invalid("teleport.auth_servers", "give auth_server or auth_servers, not both"));
        }
        if self.version.as_deref() == Some("v3") {
            if !t.auth_servers.is_empty() {
                return Err(self.invalid(
                    "teleport.auth_servers",
                    "is not supported in a v3 config; use auth_server (or proxy_server) instead",
                ));
            }
            if t.auth_server.is_some() && t.proxy_server.is_some() {
                return Err(self.invalid("teleport.proxy_server", "give auth_server or proxy_server, not both"));
            }
        }
        let p = &self.proxy_service;
        if p.https_key_file.is_some() != p.https_cert_file.is_some() {
            return Err(self.invalid("proxy_service.https_cert_file", "https_key_file and https_cert_file go together"));
        }
        for (i, c) in self.ssh_service.commands.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(self.invalid(format!("ssh_service.commands[{i}].name"), "must not be empty"));
            }
            if c.command.is_empty() {
                return Err(self.invalid(
                    format!("ssh_service.commands[{i}].command"),
                    "list the program and its arguments, e.g. [uname, -p]",
                ));
            }
        }
        for (i, f) in self.teleport.log.format.extra_fields.iter().enumerate() {
            const KNOWN: &[&str] = &["timestamp", "level", "component", "caller"];
            if !KNOWN.contains(&f.as_str()) {
                return Err(self.invalid(
                    format!("teleport.log.format.extra_fields[{i}]"),
                    format!("{f:?} is not one of {}", KNOWN.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Replaces each static token whose value is an absolute path by the
    /// tokens in that file (one per non-empty line), as upstream does.
    fn read_token_files(&mut self) -> Result<(), ConfigError> {
        let mut out = Vec::with_capacity(self.auth_service.tokens.len());
        for (i, t) in self.auth_service.tokens.iter().enumerate() {
            if !Path::new(&t.token).is_absolute() {
                out.push(t.clone());
                continue;
            }
            let field = format!("auth_service.tokens[{i}]");
            let text = std::fs::read_to_string(&t.token)
                .map_err(|e| self.invalid(&field, format!("cannot read the token file {}: {e}", t.token)))?;
            let before = out.len();
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| StaticToken { roles: t.roles.clone(), token: l.to_string() }),
            );
            if out.len() == before {
                return Err(self.invalid(field, format!("the token file {} holds no token", t.token)));
            }
        }
        self.auth_service.tokens = out;
        Ok(())
    }

    /// The file this config was read from (or the name given to `from_str_named`).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Upstream fields present in the file that this build ignores (dotted paths).
    pub fn ignored_fields(&self) -> Vec<String> {
        let mut v = self.ignored.clone();
        for part in [
            &self.teleport.ignored,
            &self.teleport.log.ignored,
            &self.teleport.log.format.ignored,
            &self.auth_service.ignored,
            &self.auth_service.authentication.ignored,
            &self.proxy_service.ignored,
            &self.ssh_service.ignored,
        ] {
            v.extend(part.iter().cloned());
        }
        v
    }

    /// The config version (default v1).
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("v1")
    }

    /// The data directory (default /var/lib/teleport).
    pub fn data_dir(&self) -> PathBuf {
        self.teleport.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The cluster-state storage (default: sqlite under `<data_dir>/backend`).
    pub fn storage(&self) -> StorageConfig {
        self.teleport.storage.clone().unwrap_or_else(|| StorageConfig::default_for(&self.data_dir()))
    }

    /// This host's name: `teleport.nodename` or the system hostname.
    pub fn nodename(&self) -> String {
        self.teleport.nodename.clone().unwrap_or_else(system_hostname)
    }

    /// The cluster name: `auth_service.cluster_name`, or the nodename as upstream.
    pub fn cluster_name(&self) -> String {
        self.auth_service.cluster_name.clone().unwrap_or_else(|| self.nodename())
    }

    /// The second factor (default otp).
    pub fn second_factor(&self) -> SecondFactor {
        self.auth_service.authentication.second_factor.unwrap_or(SecondFactor::Otp)
    }

    /// The log severity (default info).
    pub fn log_severity(&self) -> LogSeverity {
        self.teleport.log.severity.unwrap_or(LogSeverity::Info)
    }

    /// The auth servers to join, `host:port` (port default 3025), from
    /// `auth_server` or `auth_servers`.
    pub fn auth_servers(&self) -> Vec<String> {
        self.teleport
            .auth_server
            .iter()
            .chain(&self.teleport.auth_servers)
            .map(|a| a.with_default_port(DEFAULT_AUTH_PORT))
            .collect()
    }

    /// The join token from `teleport.auth_token`. A value that is an
    /// absolute path is read from that file (first non-empty line), as
    /// upstream; this happens here, when the token is needed, not at load,
    /// so a host that has joined may delete the file.
    pub fn join_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(t) = &self.teleport.auth_token else { return Ok(None) };
        let v = t.expose().trim();
        if !Path::new(v).is_absolute() {
            return Ok(Some(Secret::new(v)));
        }
        let text = std::fs::read_to_string(v)
            .map_err(|e| self.invalid("teleport.auth_token", format!("cannot read the token file {v}: {e}")))?;
        match text.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(line) => Ok(Some(Secret::new(line))),
            None => Err(self.invalid("teleport.auth_token", format!("the token file {v} holds no token"))),
        }
    }

    /// The CA pins, empty entries dropped.
    pub fn ca_pins(&self) -> Vec<String> {
        self.teleport.ca_pin.iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
    }

    fn listen(&self, field: &str, addr: &Option<Addr>, default: &str, port: u16) -> Result<SocketAddr, ConfigError> {
        let parsed;
        let a = match addr {
            Some(a) => a,
            None => {
                parsed = Addr::parse(default).map_err(|e| self.invalid(field, e))?;
                &parsed
            }
        };
        a.to_socket_addr(port).map_err(|e| self.invalid(field, e))
    }

    /// `auth_service.listen_addr` (default 0.0.0.0:3025).
    pub fn auth_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen("auth_service.listen_addr", &self.auth_service.listen_addr, "0.0.0.0", DEFAULT_AUTH_PORT)
    }

    /// `ssh_service.listen_addr` (default 0.0.0.0:3022).
    pub fn ssh_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen("ssh_service.listen_addr", &self.ssh_service.listen_addr, "0.0.0.0", DEFAULT_SSH_PORT)
    }

    /// `proxy_service.listen_addr` (default 0.0.0.0:3023).
    pub fn proxy_ssh_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen("proxy_service.listen_addr", &self.proxy_service.listen_addr, "0.0.0.0", DEFAULT_PROXY_SSH_PORT)
    }

    /// `proxy_service.web_listen_addr` (default 0.0.0.0:3080).
    pub fn proxy_web_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let a = &self.proxy_service.web_listen_addr;
        self.listen("proxy_service.web_listen_addr", a, "0.0.0.0", DEFAULT_WEB_PORT)
    }

    /// `proxy_service.tunnel_listen_addr` (default 0.0.0.0:3024).
    pub fn proxy_tunnel_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let a = &self.proxy_service.tunnel_listen_addr;
        self.listen("proxy_service.tunnel_listen_addr", a, "0.0.0.0", DEFAULT_TUNNEL_PORT)
    }

    /// `teleport.diag_addr` (default: none; port default 3000).
    pub fn diag_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match &self.teleport.diag_addr {
            None => Ok(None),
            Some(a) => a.to_socket_addr(DEFAULT_DIAG_PORT).map(Some).map_err(|e| self.invalid("teleport.diag_addr", e)),
        }
    }
}

macro_rules! enabled_by_default {
    ($($t:ty),*) => {$(
        impl $t {
            /// Whether the service runs: `enabled`, default yes as upstream.
            pub fn is_enabled(&self) -> bool {
                self.enabled.unwrap_or(true)
            }
        }
    )*};
}
enabled_by_default!(AuthServiceSection, ProxyServiceSection, SshServiceSection);

impl AuthServiceSection {
    /// The session recording mode (default node).
    pub fn session_recording(&self) -> SessionRecording {
        self.session_recording.unwrap_or(SessionRecording::Node)
    }

    /// The proxy listener mode (default separate).
    pub fn proxy_listener_mode(&self) -> ProxyListenerMode {
        self.proxy_listener_mode.unwrap_or(ProxyListenerMode::Separate)
    }
}

/// Adds " at line L column C" when the parser knew the place but its
/// message does not say it (errors at the top level).
fn with_location(e: &serde_norway::Error) -> String {
    let msg = e.to_string();
    match e.location() {
        Some(l) if !msg.contains(" line ") => format!("{msg} at line {} column {}", l.line(), l.column()),
        _ => msg,
    }
}

/// The system hostname (`/proc/sys/kernel/hostname`, `/etc/hostname`,
/// `$HOSTNAME`), or `localhost` when none can be read.
pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

mod upstream;

#[cfg(test)]
mod tests;
