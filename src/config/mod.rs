//! CONFIGURATION: teleport.yaml, clone files and storage blocks, parsed into
//! typed configs. This module is a leaf: it depends on nothing else in the
//! crate, and any layer may read it.
//!
//! Every error names the file, the field and, where the parser knows it, the
//! line and column. No input makes it panic (see the property tests in
//! tests/config_errors.rs).

pub mod addr;
pub mod duration;
mod fields;
pub mod file;
pub mod sample;
pub mod storage;
pub mod uri;
pub mod words;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use addr::{Addr, parse_listen_addr};
pub use file::{
    AuthServiceSection, AuthenticationSection, CommandLabel, FileConfig, KeyPair, LogFormat, LogSection,
    ProxyServiceSection, Secret, SshServiceSection, StaticToken, TeleportSection,
};
pub use sample::{SampleOptions, sample_config};
pub use storage::{
    AuditUris, BillingMode, DynamoDbConfig, EtcdConfig, FirestoreConfig, MemoryConfig, OneOrMany, PostgresConfig,
    SqliteConfig, StorageConfig,
};
pub use words::{
    AuthType, LogFormatOutput, LogOutput, LogSeverity, ProxyListenerMode, Role, SecondFactor, SessionRecording,
};

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/teleport";

/// A configuration error, naming the file (or `<input>`) it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML for what was expected.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the field path and line where known.
        message: String,
    },
    /// The file parsed but a value is not acceptable.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending field, as a dotted path.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The `teleport:` section of teleport.yaml as the storage commands read it:
/// only `data_dir` and `storage`, every other field and section is left
/// alone, so `teleport backend -c` works on any upstream version's file.
/// `teleport start` reads the whole file strictly with [`FileConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StorageYamlSection {
    /// `teleport.data_dir` (default /var/lib/teleport).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `teleport.storage` (default: sqlite under `<data_dir>/backend`).
    #[serde(default)]
    pub storage: Option<StorageConfig>,
}

/// A teleport.yaml file, as far as the storage commands need it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StorageYaml {
    /// The `teleport:` section.
    #[serde(default)]
    pub teleport: StorageYamlSection,
}

impl StorageYaml {
    /// The data directory, defaulted.
    pub fn data_dir(&self) -> PathBuf {
        self.teleport.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The storage config, defaulted to sqlite under the data dir.
    pub fn storage(&self) -> StorageConfig {
        self.teleport.storage.clone().unwrap_or_else(|| StorageConfig::default_for(&self.data_dir()))
    }
}

/// A clone file (`teleport backend clone -c clone.yaml`), as upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneConfig {
    /// Where items are read from.
    pub src: StorageConfig,
    /// Where items are written to.
    pub dst: StorageConfig,
    /// Concurrent writers; 0 or less means 1.
    #[serde(default)]
    pub parallel: i64,
    /// Write into a destination that already holds items.
    #[serde(default)]
    pub force: bool,
}

/// What a `-c FILE` given to a storage command turned out to be.
#[derive(Debug, Clone)]
pub enum StorageSource {
    /// A teleport.yaml; its `teleport.storage` section (or the default).
    TeleportYaml(Box<StorageYaml>),
    /// A bare storage block (`type: sqlite`, `path: ...`).
    Block(Box<StorageConfig>),
}

impl StorageSource {
    /// The storage config either form names.
    pub fn storage(&self) -> StorageConfig {
        match self {
            StorageSource::TeleportYaml(f) => f.storage(),
            StorageSource::Block(s) => (**s).clone(),
        }
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    text_of(path, bytes)
}

fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: format!(
            "not UTF-8 text (invalid byte at offset {}); is this a binary file?",
            e.utf8_error().valid_up_to()
        ),
    })?;
    if text.trim().is_empty() {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: "the file is empty; expected YAML (for storage: `type: sqlite` and `path: ...`)".into(),
        });
    }
    Ok(text)
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_norway::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Reads a storage config from `text`, which is either a teleport.yaml or a
/// bare storage block; `path` names it in errors.
pub fn parse_storage_source(path: &Path, text: &str) -> Result<StorageSource, ConfigError> {
    let text = text_of(path, text.as_bytes().to_vec())?;
    // Look at the top-level keys to tell the two forms apart.
    let probe: serde_norway::Value = parse(path, &text)?;
    let map = match probe {
        serde_norway::Value::Mapping(m) => m,
        other => {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "expected a mapping (a teleport.yaml, or a storage block with `type:`), found {}",
                    storage::value_kind(&other)
                ),
            });
        }
    };
    let has = |k: &str| map.contains_key(serde_norway::Value::String(k.into()));
    let src = if has("teleport") {
        let f: StorageYaml = parse(path, &text)?;
        StorageSource::TeleportYaml(Box::new(f))
    } else if has("type") {
        StorageSource::Block(Box::new(parse(path, &text)?))
    } else if has("src") || has("dst") {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: "this is a clone file (it has `src`/`dst`); give a teleport.yaml or a storage block".into(),
        });
    } else {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: "neither a teleport.yaml (no `teleport:` section) nor a storage block (no `type:`)".into(),
        });
    };
    validate_storage(path, &src.storage(), storage_field_prefix(&src))?;
    Ok(src)
}

fn storage_field_prefix(src: &StorageSource) -> &'static str {
    match src {
        StorageSource::TeleportYaml(_) => "teleport.storage",
        StorageSource::Block(_) => "storage",
    }
}

/// Reads a storage config from a file (see [`parse_storage_source`]).
pub fn load_storage_source(path: &Path) -> Result<StorageSource, ConfigError> {
    let text = read_text(path)?;
    parse_storage_source(path, &text)
}

/// Reads and checks a clone file.
pub fn load_clone_config(path: &Path) -> Result<CloneConfig, ConfigError> {
    let text = read_text(path)?;
    parse_clone_config(path, &text)
}

/// Parses and checks a clone file's text.
pub fn parse_clone_config(path: &Path, text: &str) -> Result<CloneConfig, ConfigError> {
    let text = text_of(path, text.as_bytes().to_vec())?;
    let cfg: CloneConfig = parse(path, &text)?;
    validate_storage(path, &cfg.src, "src")?;
    validate_storage(path, &cfg.dst, "dst")?;
    Ok(cfg)
}

/// Checks values that parse but cannot work, naming the field.
pub fn validate_storage(path: &Path, cfg: &StorageConfig, prefix: &str) -> Result<(), ConfigError> {
    let bad = |field: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        field: format!("{prefix}.{field}"),
        message,
    };
    let one_of = |field: &str, v: &Option<String>, allowed: &[&str]| -> Result<(), ConfigError> {
        match v {
            Some(s) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => {
                Err(bad(field, format!("{s:?} is not one of {}", allowed.join(", "))))
            }
            _ => Ok(()),
        }
    };
    match cfg {
        StorageConfig::Sqlite(c) => {
            if c.path.as_os_str().is_empty() {
                return Err(bad(
                    "path",
                    "must name the directory that holds sqlite.db (usually <data_dir>/backend)".into(),
                ));
            }
            one_of("sync", &c.sync, &["OFF", "NORMAL", "FULL", "EXTRA"])?;
            one_of("journal", &c.journal, &["DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF"])?;
            if c.buffer_size == Some(0) {
                return Err(bad("buffer_size", "must be greater than 0".into()));
            }
        }
        StorageConfig::Memory(_) => {}
        StorageConfig::Etcd(c) => {
            if c.peers.is_empty() || c.peers.iter().any(|p| p.trim().is_empty()) {
                return Err(bad("peers", "list at least one etcd client URL".into()));
            }
            if c.prefix.trim().is_empty() {
                return Err(bad("prefix", "must not be empty (for example /teleport/)".into()));
            }
            if !c.insecure && (c.tls_cert_file.is_none() || c.tls_key_file.is_none()) {
                return Err(bad(
                    "tls_cert_file",
                    "tls_cert_file and tls_key_file are required unless insecure: true".into(),
                ));
            }
            if c.username.is_some() != c.password_file.is_some() {
                return Err(bad("password_file", "username and password_file go together".into()));
            }
        }
        StorageConfig::DynamoDb(c) => {
            if c.table_name.trim().is_empty() {
                return Err(bad("table_name", "must not be empty".into()));
            }
            for (f, v) in
                [("read_capacity_units", c.read_capacity_units), ("write_capacity_units", c.write_capacity_units)]
            {
                if matches!(v, Some(n) if n <= 0) {
                    return Err(bad(f, "must be greater than 0".into()));
                }
            }
            if c.access_key.is_some() != c.secret_key.is_some() {
                return Err(bad("secret_key", "access_key and secret_key go together".into()));
            }
        }
        StorageConfig::Firestore(c) => {
            if c.collection_name.trim().is_empty() {
                return Err(bad("collection_name", "must not be empty".into()));
            }
        }
        StorageConfig::Postgres(c) => {
            if c.conn_string.trim().is_empty() {
                return Err(bad("conn_string", "must not be empty".into()));
            }
            for (f, v) in
                [("expiry_batch_size", c.expiry_batch_size), ("change_feed_batch_size", c.change_feed_batch_size)]
            {
                if v == Some(0) {
                    return Err(bad(f, "must be greater than 0".into()));
                }
            }
            for (f, v) in
                [("expiry_interval", c.expiry_interval), ("change_feed_poll_interval", c.change_feed_poll_interval)]
            {
                if v == Some(std::time::Duration::ZERO) {
                    return Err(bad(f, "must be greater than 0".into()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(text: &str) -> Result<StorageConfig, String> {
        parse_storage_source(Path::new("t.yaml"), text).map(|s| s.storage()).map_err(|e| e.to_string())
    }

    #[test]
    fn teleport_yaml_and_bare_block() {
        let cfg = storage("teleport:\n  data_dir: /d\n  storage:\n    type: sqlite\n    path: /d/backend\n").unwrap();
        assert_eq!(cfg, StorageConfig::Sqlite(SqliteConfig::new("/d/backend")));
        let cfg = storage("teleport:\n  data_dir: /d\n").unwrap();
        assert_eq!(cfg, StorageConfig::Sqlite(SqliteConfig::new("/d/backend")), "default storage");
        let cfg = storage("type: dir\npath: /x\n").unwrap();
        assert_eq!(cfg.type_name(), "sqlite");
    }

    #[test]
    fn exact_line_when_type_first() {
        let e = storage("teleport:\n  storage:\n    type: sqlite\n    path: /a\n    busy_timout: 5\n").unwrap_err();
        assert!(e.contains("t.yaml"), "{e}");
        assert!(e.contains("unknown field `busy_timout`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn field_named_when_type_later() {
        let e = storage("path: /a\nbusy_timeout: abc\ntype: sqlite\n").unwrap_err();
        assert!(e.contains("busy_timeout"), "{e}");
        let e = storage("path: /a\nbusy_timout: 1\ntype: sqlite\n").unwrap_err();
        assert!(e.contains("unknown field `busy_timout`"), "{e}");
    }

    #[test]
    fn audit_fields_are_accepted_for_any_type() {
        let cfg = storage(
            "type: dynamodb\naudit_events_uri: ['dynamodb://events', 'file:///var/log']\ntable_name: t\naudit_sessions_uri: s3://b/r\n",
        )
        .unwrap();
        assert_eq!(cfg.audit().audit_events_uri.to_vec().len(), 2);
        assert_eq!(cfg.audit().audit_sessions_uri.as_deref(), Some("s3://b/r"));
    }

    #[test]
    fn postgres_takes_upstreams_fields_and_hides_the_password() {
        let cfg = storage(concat!(
            "type: postgres\n",
            "conn_string: postgresql://u:secret@pg/db\n",
            "change_feed_conn_string: postgresql://r:secret2@pg/db\n",
            "expiry_interval: 10s\n",
            "expiry_batch_size: 50\n",
            "disable_expiry: true\n",
            "change_feed_poll_interval: 250ms\n",
            "change_feed_batch_size: 500\n",
        ))
        .unwrap();
        let StorageConfig::Postgres(c) = &cfg else { panic!("{cfg:?}") };
        assert_eq!(c.expiry_interval, Some(std::time::Duration::from_secs(10)));
        assert_eq!((c.expiry_batch_size, c.disable_expiry), (Some(50), true));
        assert_eq!(c.change_feed_poll_interval, Some(std::time::Duration::from_millis(250)));
        assert_eq!(c.change_feed_batch_size, Some(500));
        assert!(!format!("{cfg:?}").contains("secret"), "{cfg:?}");
        let e = storage("type: postgres\nconn_string: x\nchange_feed_batch_size: 0\n").unwrap_err();
        assert!(e.contains("change_feed_batch_size") && e.contains("greater than 0"), "{e}");
    }
}
