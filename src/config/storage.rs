//! Storage blocks: the `teleport.storage` section of teleport.yaml and the
//! `src`/`dst` blocks of a clone file. A block is `type:` plus that store's
//! parameters, with upstream's field names (docs/backends.md lists them all).
//!
//! Every store's parameters are a strict struct: an unknown field, a wrong
//! type or a missing required field is an error naming the field and its line.
//! When `type` is the first key (as every upstream example writes it) the
//! block is read in one streaming pass, so errors point at the exact line;
//! otherwise the block is buffered first and errors name the field path.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::duration;

/// Every storage type name accepted in `type:`, with aliases.
pub const STORAGE_TYPES: &[&str] =
    &["sqlite", "dir", "memory", "etcd", "dynamodb", "firestore", "postgres", "cockroachdb"];

/// A parsed storage block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StorageConfig {
    /// `type: sqlite` (alias `dir`): the embedded default.
    Sqlite(SqliteConfig),
    /// `type: memory`: a process-local store (tests, caches).
    Memory(MemoryConfig),
    /// `type: etcd`.
    Etcd(EtcdConfig),
    /// `type: dynamodb`.
    #[serde(rename = "dynamodb")]
    DynamoDb(DynamoDbConfig),
    /// `type: firestore`.
    Firestore(FirestoreConfig),
    /// `type: postgres` (alias `cockroachdb`).
    Postgres(PostgresConfig),
}

impl StorageConfig {
    /// The canonical type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            StorageConfig::Sqlite(_) => "sqlite",
            StorageConfig::Memory(_) => "memory",
            StorageConfig::Etcd(_) => "etcd",
            StorageConfig::DynamoDb(_) => "dynamodb",
            StorageConfig::Firestore(_) => "firestore",
            StorageConfig::Postgres(_) => "postgres",
        }
    }

    /// The audit and recording URIs that teleport.yaml keeps in the same block.
    pub fn audit(&self) -> &AuditUris {
        match self {
            StorageConfig::Sqlite(c) => &c.audit,
            StorageConfig::Memory(c) => &c.audit,
            StorageConfig::Etcd(c) => &c.audit,
            StorageConfig::DynamoDb(c) => &c.audit,
            StorageConfig::Firestore(c) => &c.audit,
            StorageConfig::Postgres(c) => &c.audit,
        }
    }

    /// The default storage for a data dir: sqlite under `<data_dir>/backend`.
    pub fn default_for(data_dir: &std::path::Path) -> StorageConfig {
        StorageConfig::Sqlite(SqliteConfig::new(data_dir.join("backend")))
    }
}

/// A string or a list of strings (`audit_events_uri` takes both).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(untagged)]
pub enum OneOrMany {
    /// Nothing given.
    #[default]
    None,
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Fields that teleport.yaml keeps in the storage block for every type:
/// where audit events and session recordings go.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AuditUris {
    /// `audit_events_uri`: one URI or a list (writes go to all, searches to the first).
    #[serde(skip_serializing_if = "OneOrMany::is_none")]
    pub audit_events_uri: OneOrMany,
    /// `audit_sessions_uri`: where session recordings are uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_sessions_uri: Option<String>,
    /// `audit_retention_period`: how long external audit stores keep events.
    #[serde(skip_serializing_if = "Option::is_none", with = "duration::option")]
    pub audit_retention_period: Option<Duration>,
}

impl OneOrMany {
    fn is_none(&self) -> bool {
        matches!(self, OneOrMany::None)
    }
}

const AUDIT_FIELDS: &[&str] = &["audit_events_uri", "audit_sessions_uri", "audit_retention_period"];

/// `type: sqlite`. Upstream `lib/backend/lite`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Directory that holds `sqlite.db` (usually `<data_dir>/backend`). Required.
    pub path: PathBuf,
    /// Events fetched per poll (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<usize>,
    /// How often the events table is polled and expired rows swept (default 1s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub poll_stream_period: Option<Duration>,
    /// Do not record events (watchers are then refused). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub events_off: bool,
    /// `PRAGMA synchronous`: OFF, NORMAL, FULL (default) or EXTRA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// Milliseconds to wait for a lock held by another connection (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_timeout: Option<u64>,
    /// `PRAGMA journal_mode`: DELETE (SQLite's default), TRUNCATE, PERSIST,
    /// MEMORY, WAL (recommended) or OFF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

impl SqliteConfig {
    /// A config with only `path` set.
    pub fn new(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            path: path.into(),
            buffer_size: None,
            poll_stream_period: None,
            events_off: false,
            sync: None,
            busy_timeout: None,
            journal: None,
            audit: AuditUris::default(),
        }
    }
}

/// `type: memory`. No parameters.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

/// `type: etcd`. Upstream `lib/backend/etcdbk`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `https://10.0.0.5:2379`. Required.
    pub peers: Vec<String>,
    /// Key prefix; a leading `/` is added if missing. Docs recommend ending it with `/`. Required.
    pub prefix: String,
    /// Client certificate (required unless `insecure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// Client key (required unless `insecure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle that signed the etcd servers' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Plain-text connections without client certificates (tests only).
    #[serde(default)]
    pub insecure: bool,
    /// User name for etcd authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the password for `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Connection timeout (default 10s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<Duration>,
    /// Largest message the client accepts (default 1.5 MiB + overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_max_client_msg_size_bytes: Option<usize>,
    /// Watch buffer size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<usize>,
    /// Number of client connections (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_pool_size: Option<usize>,
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("peers", &self.peers)
            .field("prefix", &self.prefix)
            .field("insecure", &self.insecure)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

/// DynamoDB billing modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// On-demand capacity (default for new tables).
    #[default]
    PayPerRequest,
    /// Provisioned read/write capacity units.
    Provisioned,
}

/// `type: dynamodb`. Upstream `lib/backend/dynamo`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbConfig {
    /// Table holding the cluster state. Required. (Upstream's clone help
    /// text says `table`; the real field is `table_name`.)
    pub table_name: String,
    /// AWS region (default: from the AWS environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Custom endpoint (local testing, VPC endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Static access key (default: the AWS credential chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// Static secret key; never logged.
    #[serde(default, skip_serializing)]
    pub secret_key: Option<String>,
    /// Billing mode for a table we create.
    #[serde(default)]
    pub billing_mode: BillingMode,
    /// Provisioned read capacity (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_capacity_units: Option<i64>,
    /// Provisioned write capacity (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_capacity_units: Option<i64>,
    /// Enable point-in-time recovery on the table.
    #[serde(default)]
    pub continuous_backups: bool,
    /// Enable auto scaling (provisioned mode only).
    #[serde(default)]
    pub auto_scaling: bool,
    /// Auto scaling: maximum read capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_max_capacity: Option<i64>,
    /// Auto scaling: minimum read capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_min_capacity: Option<i64>,
    /// Auto scaling: target read utilisation (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_target_value: Option<f64>,
    /// Auto scaling: maximum write capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_max_capacity: Option<i64>,
    /// Auto scaling: minimum write capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_min_capacity: Option<i64>,
    /// Auto scaling: target write utilisation (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_target_value: Option<f64>,
    /// How often the stream is polled for events (default 1s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub poll_stream_period: Option<Duration>,
    /// Wait between retries of a failed stream poll.
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub retry_period: Option<Duration>,
    /// Watch buffer size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<usize>,
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

impl fmt::Debug for DynamoDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbConfig")
            .field("table_name", &self.table_name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("billing_mode", &self.billing_mode)
            .finish_non_exhaustive()
    }
}

/// `type: firestore`. Upstream `lib/backend/firestore`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FirestoreConfig {
    /// Collection holding the cluster state. Required.
    pub collection_name: String,
    /// GCP project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Service-account credentials file (default: application default credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_path: Option<PathBuf>,
    /// Custom endpoint (emulators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Database id (default `(default)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    /// Watch buffer size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<usize>,
    /// Wait between retries of a failed watch.
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub retry_period: Option<Duration>,
    /// How often expired documents are purged (default 1m).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub purge_expired_documents_poll_interval: Option<Duration>,
    /// Do not purge expired documents.
    #[serde(default)]
    pub disable_expired_document_purge: bool,
    /// Limit the watch query to recent documents.
    #[serde(default)]
    pub limit_watch_query: bool,
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

/// `type: postgres` (alias `cockroachdb`). Upstream `lib/backend/pgbk`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq connection string or URL. Required. May hold a password: never logged.
    #[serde(skip_serializing)]
    pub conn_string: String,
    /// Separate connection for the change feed (default: `conn_string`).
    #[serde(default, skip_serializing)]
    pub change_feed_conn_string: Option<String>,
    /// Cloud IAM authentication mode (`azure`, `gcp-cloudsql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// How often expired rows are removed (default 30s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub expiry_interval: Option<Duration>,
    /// Most expired rows removed per statement (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_batch_size: Option<usize>,
    /// Leave expired rows for another process to remove (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_expiry: bool,
    /// How often watchers' change feed is read (default 1s).
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub change_feed_poll_interval: Option<Duration>,
    /// Most changes read from the feed per poll (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_feed_batch_size: Option<usize>,
    /// Audit and recording URIs (teleport.yaml only).
    #[serde(skip)]
    pub audit: AuditUris,
}

impl PostgresConfig {
    /// A config for `conn_string` with every other field at its default.
    pub fn new(conn_string: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            conn_string: conn_string.into(),
            change_feed_conn_string: None,
            auth_mode: None,
            expiry_interval: None,
            expiry_batch_size: None,
            disable_expiry: false,
            change_feed_poll_interval: None,
            change_feed_batch_size: None,
            audit: AuditUris::default(),
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("conn_string", &"<redacted>")
            .field("auth_mode", &self.auth_mode)
            .field("expiry_interval", &self.expiry_interval)
            .field("change_feed_poll_interval", &self.change_feed_poll_interval)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Deserialization: `type` selects the struct; audit fields are diverted.

fn unknown_type<E: de::Error>(t: &str) -> E {
    E::custom(format!("unknown storage type {t:?}; expected one of: {}", STORAGE_TYPES.join(", ")))
}

/// Wraps the block's map so that the audit fields are taken out into
/// `audit` while the store's own struct reads everything else straight from
/// the parser (keeping exact error positions).
struct AuditDiverter<'a, A> {
    inner: A,
    audit: &'a mut AuditUris,
}

/// The key seed the diverter hands the parser: audit field names are
/// recognised, anything else goes to the store struct's own field seed
/// INSIDE the parser's key callback, so an unknown-field error carries the
/// key's exact position.
struct KeySeed<'a, K> {
    seed: &'a mut Option<K>,
}

enum KeyOut<V> {
    Audit(&'static str),
    Field(V),
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = KeyOut<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KeySeed<'_, K> {
    type Value = KeyOut<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Some(name) = AUDIT_FIELDS.iter().find(|f| **f == v) {
            return Ok(KeyOut::Audit(name));
        }
        if v == "type" {
            return Err(E::custom("`type` is given twice"));
        }
        let seed = self.seed.take().ok_or_else(|| E::custom("internal error: field seed used twice"))?;
        seed.deserialize(v.into_deserializer()).map(KeyOut::Field)
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for AuditDiverter<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.inner.next_key_seed(KeySeed { seed: &mut seed })? {
                None => return Ok(None),
                Some(KeyOut::Field(v)) => return Ok(Some(v)),
                Some(KeyOut::Audit("audit_events_uri")) => self.audit.audit_events_uri = self.inner.next_value()?,
                Some(KeyOut::Audit("audit_sessions_uri")) => self.audit.audit_sessions_uri = self.inner.next_value()?,
                Some(KeyOut::Audit(_)) => {
                    self.audit.audit_retention_period = self.inner.next_value::<DurationField>()?.0;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

struct DurationField(Option<Duration>);

impl<'de> Deserialize<'de> for DurationField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration::option::deserialize(d).map(DurationField)
    }
}

/// Deserializes the store struct for `ty` from the rest of the map.
fn read_store<'de, A: MapAccess<'de>>(ty: &str, map: A) -> Result<StorageConfig, A::Error> {
    let mut audit = AuditUris::default();
    let de = de::value::MapAccessDeserializer::new(AuditDiverter { inner: map, audit: &mut audit });
    let mut cfg = match ty {
        "sqlite" | "dir" => StorageConfig::Sqlite(SqliteConfig::deserialize(de)?),
        "memory" => StorageConfig::Memory(MemoryConfig::deserialize(de)?),
        "etcd" => StorageConfig::Etcd(EtcdConfig::deserialize(de)?),
        "dynamodb" => StorageConfig::DynamoDb(DynamoDbConfig::deserialize(de)?),
        "firestore" => StorageConfig::Firestore(FirestoreConfig::deserialize(de)?),
        "postgres" | "cockroachdb" => StorageConfig::Postgres(PostgresConfig::deserialize(de)?),
        other => return Err(unknown_type(other)),
    };
    match &mut cfg {
        StorageConfig::Sqlite(c) => c.audit = audit,
        StorageConfig::Memory(c) => c.audit = audit,
        StorageConfig::Etcd(c) => c.audit = audit,
        StorageConfig::DynamoDb(c) => c.audit = audit,
        StorageConfig::Firestore(c) => c.audit = audit,
        StorageConfig::Postgres(c) => c.audit = audit,
    }
    Ok(cfg)
}

/// A map access over buffered entries, for blocks whose `type` is not first.
struct Buffered {
    entries: std::vec::IntoIter<(String, serde_norway::Value)>,
    value: Option<(String, serde_norway::Value)>,
}

impl<'de> MapAccess<'de> for Buffered {
    type Error = serde_norway::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                let out = seed.deserialize(k.as_str().into_deserializer()).map(Some);
                self.value = Some((k, v));
                out
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let (k, v) = self.value.take().unwrap_or_default();
        // Name the field: errors from a buffered value carry no position.
        seed.deserialize(v).map_err(|e| de::Error::custom(format!("{k}: {e}")))
    }
}

impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StorageConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a storage block: a mapping with `type` and the store's parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StorageConfig, A::Error> {
                let Some(first) = map.next_key::<String>()? else {
                    return Err(de::Error::missing_field("type"));
                };
                if first == "type" {
                    let ty: String = map.next_value()?;
                    return read_store(&ty, map);
                }
                // `type` is not first: buffer the block, then read it.
                let mut entries = vec![(first, map.next_value::<serde_norway::Value>()?)];
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value::<serde_norway::Value>()?;
                    entries.push((k, v));
                }
                let Some(pos) = entries.iter().position(|(k, _)| k == "type") else {
                    return Err(de::Error::missing_field("type"));
                };
                let (_, ty) = entries.remove(pos);
                let ty = match ty {
                    serde_norway::Value::String(s) => s,
                    other => {
                        return Err(de::Error::custom(format!(
                            "`type` must be a string, found {}",
                            value_kind(&other)
                        )));
                    }
                };
                let buffered = Buffered { entries: entries.into_iter(), value: None };
                read_store(&ty, buffered).map_err(|e| de::Error::custom(e.to_string()))
            }
        }
        d.deserialize_map(V)
    }
}

/// How a YAML value is described in messages ("a list", "a mapping").
pub(crate) fn value_kind(v: &serde_norway::Value) -> &'static str {
    match v {
        serde_norway::Value::Null => "null",
        serde_norway::Value::Bool(_) => "a boolean",
        serde_norway::Value::Number(_) => "a number",
        serde_norway::Value::String(_) => "a string",
        serde_norway::Value::Sequence(_) => "a list",
        serde_norway::Value::Mapping(_) => "a mapping",
        serde_norway::Value::Tagged(_) => "a tagged value",
    }
}

/// The audit field names that every storage type accepts (for docs and tests).
pub fn audit_fields() -> &'static [&'static str] {
    AUDIT_FIELDS
}
