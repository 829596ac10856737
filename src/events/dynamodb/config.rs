//! The `dynamodb://<table>?...` form of `audit_events_uri`, as upstream's
//! `dynamoevents.Config.SetFromURL` reads it, plus this build's optional
//! static credentials and retention. Pure parsing; no I/O. `Debug` never
//! shows the secret key.

use std::time::Duration;

use crate::events::{EventsError, EventsUri, Result};

/// Default `retention_period`: one year (upstream's 8766h).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8766 * 3600);

/// Query parameters this store reads.
pub const PARAMS: &[&str] = &[
    "region",
    "endpoint",
    "retention_period",
    "access_key",
    "secret_key",
    "disable_conflict_check",
    "use_fips_endpoint",
];

/// Settings of the DynamoDB audit store.
#[derive(Clone, PartialEq, Eq)]
pub struct DynamoEventsConfig {
    /// The table (the URI's host).
    pub table: String,
    /// `region`; else the AWS default chain.
    pub region: Option<String>,
    /// `endpoint`: a custom endpoint (an emulator).
    pub endpoint: Option<String>,
    /// `retention_period` (Go duration): `Expires` = write time + this.
    /// Default [`DEFAULT_RETENTION`].
    pub retention: Duration,
    /// `access_key`; with `secret_key` replaces the default credential chain.
    pub access_key: Option<String>,
    /// `secret_key`.
    pub secret_key: Option<String>,
    /// `disable_conflict_check`: write without the not-exists condition (an
    /// event may then overwrite another with the same session and index).
    /// Default false.
    pub disable_conflict_check: bool,
    /// `use_fips_endpoint`: use AWS's FIPS endpoints. Default false.
    pub use_fips: bool,
}

impl std::fmt::Debug for DynamoEventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoEventsConfig")
            .field("table", &self.table)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("retention", &self.retention)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "REDACTED"))
            .field("disable_conflict_check", &self.disable_conflict_check)
            .field("use_fips", &self.use_fips)
            .finish()
    }
}

/// Go's `strconv.ParseBool`, as upstream parses these flags.
fn parse_bool(uri: &EventsUri, name: &str) -> Result<bool> {
    match uri.param(name) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(EventsError::bad(format!(
            "audit_events_uri {}: {name}={v:?} is not a boolean; use true or false",
            uri.redacted()
        ))),
    }
}

impl DynamoEventsConfig {
    /// Reads a `dynamodb://` URI. Unknown parameters are ignored with a
    /// warning, as upstream ignores them.
    pub fn from_uri(uri: &EventsUri) -> Result<DynamoEventsConfig> {
        if uri.scheme != "dynamodb" {
            return Err(EventsError::bad(format!("audit_events_uri {}: not a dynamodb:// URI", uri.redacted())));
        }
        if uri.host.is_empty() {
            return Err(EventsError::bad(format!(
                "audit_events_uri {}: no table name; use dynamodb://<table>?region=<region>",
                uri.redacted()
            )));
        }
        for k in uri.query.keys().filter(|k| !PARAMS.contains(&k.as_str())) {
            tracing::warn!(uri = %uri.redacted(), param = %k, "ignoring an unknown dynamodb audit_events_uri parameter");
        }
        let access_key = uri.param("access_key").map(str::to_string);
        let secret_key = uri.param("secret_key").map(str::to_string);
        if access_key.is_some() != secret_key.is_some() {
            return Err(EventsError::bad(format!(
                "audit_events_uri {}: access_key and secret_key go together; set both or neither (then the AWS default credential chain is used)",
                uri.redacted()
            )));
        }
        let retention = uri.duration("retention_period")?.unwrap_or(DEFAULT_RETENTION);
        if retention.is_zero() {
            return Err(EventsError::bad(format!(
                "audit_events_uri {}: retention_period must be positive (default 8766h)",
                uri.redacted()
            )));
        }
        Ok(DynamoEventsConfig {
            table: uri.host.clone(),
            region: uri.param("region").map(str::to_string),
            endpoint: uri.param("endpoint").map(str::to_string),
            retention,
            access_key,
            secret_key,
            disable_conflict_check: parse_bool(uri, "disable_conflict_check")?,
            use_fips: parse_bool(uri, "use_fips_endpoint")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DynamoEventsConfig> {
        DynamoEventsConfig::from_uri(&EventsUri::parse(s)?)
    }

    #[test]
    fn reads_upstream_and_our_params() {
        let c = parse("dynamodb://events?region=eu-west-1&use_fips_endpoint=true&disable_conflict_check=1").unwrap();
        assert_eq!(c.table, "events");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert!(c.use_fips && c.disable_conflict_check);
        assert_eq!(c.retention, DEFAULT_RETENTION);
        assert_eq!(c.access_key, None);
        let c = parse(
            "dynamodb://t?endpoint=http%3A%2F%2F127.0.0.1%3A5000&retention_period=720h&access_key=AK&secret_key=SK",
        )
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.retention, Duration::from_secs(720 * 3600));
        assert!(!format!("{c:?}").contains("SK"));
        assert!(parse("dynamodb://t?use_fips_endpoint=maybe").unwrap_err().to_string().contains("use_fips_endpoint"));
        assert!(parse("dynamodb://t?access_key=AK").is_err());
        assert!(parse("dynamodb://?region=x").is_err());
        assert!(parse("dynamodb://t?retention_period=soon").is_err());
    }
}
