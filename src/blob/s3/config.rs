//! The settings of an `s3://bucket/prefix?...` URI, with upstream's query
//! parameters (`region`, `endpoint`, `insecure`, `disablesse`,
//! `sse_kms_key`, `acl`, `use_s3_virtual_style_addressing`,
//! `use_fips_endpoint`) and, for emulators, static keys (`access_key`,
//! `secret_key`). Parsing does no I/O; the keys never reach `Debug`,
//! `describe()` or an error.

use std::fmt;

use crate::blob::{BlobError, BlobUri, Result, check_key};

/// The canned ACLs S3 accepts on objects (upstream's list).
pub const CANNED_ACLS: [&str; 8] = [
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// Every query parameter an `s3://` URI takes.
pub const PARAMS: [&str; 10] = [
    "region",
    "endpoint",
    "insecure",
    "disablesse",
    "sse_kms_key",
    "acl",
    "use_s3_virtual_style_addressing",
    "use_fips_endpoint",
    "access_key",
    "secret_key",
];

/// Upstream parameters about its session uploader, not the object store:
/// accepted and ignored (with a warning) so upstream URIs keep working.
const IGNORED_PARAMS: [&str; 2] = ["complete_initiators", "ignore_initiator"];

/// Server-side encryption of the objects written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// None asked for (`disablesse=true`); the bucket's default applies.
    Disabled,
    /// `aws:kms`, with the bucket's or account's default key unless one is named.
    Kms {
        /// `sse_kms_key`: a KMS key id, ARN or alias.
        key: Option<String>,
    },
}

/// What an `s3://` URI says.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Keys are `<prefix>/<key>` (no leading or trailing `/`; empty: the bucket's root).
    pub prefix: String,
    /// AWS region; else the default chain (AWS_REGION, profile), or
    /// us-east-1 with a custom endpoint.
    pub region: Option<String>,
    /// A custom endpoint (S3-compatible servers), with its scheme: one
    /// given without is `https://`, or `http://` with `insecure=true` (as
    /// upstream).
    pub endpoint: Option<String>,
    /// Do not verify the server's TLS certificate.
    pub insecure: bool,
    /// Server-side encryption.
    pub sse: Sse,
    /// A canned ACL for the objects written.
    pub acl: Option<String>,
    /// Virtual-hosted-style requests with a custom endpoint (path style otherwise).
    pub virtual_style: bool,
    /// AWS's FIPS endpoints.
    pub use_fips: bool,
    access_key: Option<String>,
    secret_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("insecure", &self.insecure)
            .field("sse", &self.sse)
            .field("acl", &self.acl)
            .field("virtual_style", &self.virtual_style)
            .field("use_fips", &self.use_fips)
            .field("static_credentials", &self.access_key.is_some())
            .finish()
    }
}

impl S3Config {
    /// Reads an `s3://` URI.
    pub fn from_uri(u: &BlobUri) -> Result<S3Config> {
        let uri = u.redacted();
        let bad = |why: String| BlobError::bad(format!("{uri}: {why}"));
        if u.scheme != "s3" {
            return Err(bad(format!("not an s3:// URI (scheme {:?})", u.scheme)));
        }
        for name in u.query.keys() {
            if IGNORED_PARAMS.contains(&name.as_str()) {
                tracing::warn!(uri = %uri, param = %name, "ignoring an upstream session-uploader parameter");
            } else if !PARAMS.contains(&name.as_str()) {
                return Err(bad(format!("unknown parameter {name:?}; known: {}", PARAMS.join(", "))));
            }
        }
        if !u.fragment.is_empty() {
            return Err(bad("s3:// URIs take their options in the query (?k=v), not the fragment".into()));
        }
        let bucket = u.host.clone();
        if bucket.is_empty() {
            return Err(bad("no bucket; use s3://bucket/prefix".into()));
        }
        if bucket.len() > 255 || bucket.chars().any(|c| c.is_whitespace() || c.is_control() || "@:?#".contains(c)) {
            return Err(bad(format!("{bucket:?} is not a bucket name")));
        }
        let prefix = u.prefix();
        if !prefix.is_empty() {
            check_key(&prefix).map_err(|e| bad(format!("the path (key prefix): {}", e.message)))?;
        }
        let insecure = u.flag("insecure")?;
        let endpoint = match u.param("endpoint") {
            None => None,
            Some(ep) => Some(normalize_endpoint(ep, insecure).map_err(bad)?),
        };
        let virtual_style = u.flag("use_s3_virtual_style_addressing")?;
        let use_fips = u.flag("use_fips_endpoint")?;
        if use_fips && endpoint.is_some() {
            return Err(bad("use_fips_endpoint=true picks AWS's FIPS endpoints; it cannot go with endpoint=".into()));
        }
        let sse = if u.flag("disablesse")? {
            if u.param("sse_kms_key").is_some() {
                return Err(bad("sse_kms_key is set but disablesse=true turns encryption off; drop one".into()));
            }
            Sse::Disabled
        } else {
            Sse::Kms { key: u.param("sse_kms_key").map(str::to_string) }
        };
        let acl = match u.param("acl") {
            None => None,
            Some(a) if CANNED_ACLS.contains(&a) => Some(a.to_string()),
            Some(a) => {
                return Err(bad(format!("acl={a:?} is not a canned ACL; use one of {}", CANNED_ACLS.join(", "))));
            }
        };
        let access_key = u.param("access_key").map(str::to_string);
        let secret_key = u.param("secret_key").map(str::to_string);
        if access_key.is_some() != secret_key.is_some() {
            return Err(bad("access_key and secret_key go together (or neither: the AWS default chain)".into()));
        }
        Ok(S3Config {
            bucket,
            prefix,
            region: u.param("region").map(str::to_string),
            endpoint,
            insecure,
            sse,
            acl,
            virtual_style,
            use_fips,
            access_key,
            secret_key,
        })
    }

    /// Path-style requests: with a custom endpoint unless
    /// `use_s3_virtual_style_addressing=true` (as upstream).
    pub fn path_style(&self) -> bool {
        self.endpoint.is_some() && !self.virtual_style
    }

    /// Whether the connections use TLS without verifying it.
    pub fn skips_tls_verification(&self) -> bool {
        self.insecure && self.endpoint.as_deref().is_none_or(|e| e.starts_with("https://"))
    }

    /// The static keys from the URI, if any.
    pub fn static_keys(&self) -> Option<(&str, &str)> {
        Some((self.access_key.as_deref()?, self.secret_key.as_deref()?))
    }

    /// The store for messages: bucket, prefix and endpoint, no secrets.
    pub fn describe(&self) -> String {
        let mut s = format!("s3://{}/{}", self.bucket, self.prefix);
        if let Some(ep) = &self.endpoint {
            s.push_str(&format!(" (endpoint {ep})"));
        }
        s
    }

    /// The object key of a store key.
    pub fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    /// The store key of an object key under the prefix (None: outside it).
    pub fn store_key<'a>(&self, object_key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(object_key);
        }
        object_key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }
}

/// An endpoint with its scheme; no credentials, path, query or fragment.
fn normalize_endpoint(ep: &str, insecure: bool) -> std::result::Result<String, String> {
    let with_scheme =
        if ep.contains("://") { ep.to_string() } else { format!("{}://{ep}", if insecure { "http" } else { "https" }) };
    let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("", ""));
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(format!("endpoint {ep:?}: use http:// or https://"));
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#']) {
        return Err(format!("endpoint {ep:?}: give scheme, host and port only, as in https://minio.example.com:9000"));
    }
    if authority.contains('@') {
        return Err(
            "the endpoint holds credentials; pass keys as access_key/secret_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
                .into(),
        );
    }
    Ok(format!("{}://{authority}", scheme.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<S3Config> {
        S3Config::from_uri(&BlobUri::parse(s, "audit_sessions_uri")?)
    }

    #[test]
    fn every_parameter() {
        let c = parse(
            "s3://recs/a/b/?region=eu-west-1&endpoint=minio:9000&insecure=true&sse_kms_key=alias/rec&acl=bucket-owner-full-control&use_s3_virtual_style_addressing=true",
        )
        .unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("recs", "a/b"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://minio:9000"), "insecure without a scheme means plain HTTP");
        assert!(!c.skips_tls_verification());
        assert_eq!(c.sse, Sse::Kms { key: Some("alias/rec".into()) });
        assert_eq!(c.acl.as_deref(), Some("bucket-owner-full-control"));
        assert!(!c.path_style());
        assert_eq!(c.object_key("x.tar"), "a/b/x.tar");
        assert_eq!(c.store_key("a/b/x.tar"), Some("x.tar"));
        assert_eq!(c.store_key("a/bx.tar"), None);

        let d = parse("s3://recs").unwrap();
        assert_eq!(d.sse, Sse::Kms { key: None }, "aws:kms unless disablesse=true");
        assert!(!d.path_style() && d.endpoint.is_none() && d.prefix.is_empty());
        assert_eq!(d.object_key("k"), "k");
        assert_eq!(d.describe(), "s3://recs/");

        let e = parse("s3://recs/p?endpoint=https://s3.local:9000/&insecure=1&disablesse=true").unwrap();
        assert_eq!(e.endpoint.as_deref(), Some("https://s3.local:9000"));
        assert!(e.path_style() && e.skips_tls_verification());
        assert_eq!(e.sse, Sse::Disabled);
        assert_eq!(e.describe(), "s3://recs/p (endpoint https://s3.local:9000)");
        assert_eq!(parse("s3://b?endpoint=s3.local").unwrap().endpoint.as_deref(), Some("https://s3.local"));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (uri, says) in [
            ("s3:///prefix", "no bucket"),
            ("s3://b?insecure=maybe", "insecure"),
            ("s3://b?acl=everyone", "canned ACL"),
            ("s3://b?regoin=x", "unknown parameter \"regoin\""),
            ("s3://b?access_key=AKIA", "go together"),
            ("s3://b?endpoint=ftp://x", "http:// or https://"),
            ("s3://b?endpoint=http://h/path", "host and port only"),
            ("s3://b?endpoint=http://u:p@h", "holds credentials"),
            ("s3://b?use_fips_endpoint=true&endpoint=http://h", "FIPS"),
            ("s3://b?disablesse=true&sse_kms_key=k", "drop one"),
            ("s3://b/a//b", "path"),
            ("s3://b#x=y", "fragment"),
        ] {
            let e = parse(uri).unwrap_err();
            assert!(e.message.contains(says), "{uri}: {e}");
        }
        assert!(parse("s3://b?complete_initiators=x").is_ok(), "upstream's uploader parameters are ignored");
    }

    #[test]
    fn keys_stay_secret() {
        let c = parse("s3://b/p?endpoint=http://h:1&access_key=AKIAEXAMPLE&secret_key=s3cr3t").unwrap();
        assert_eq!(c.static_keys(), Some(("AKIAEXAMPLE", "s3cr3t")));
        for shown in [format!("{c:?}"), c.describe()] {
            assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("s3cr3t"), "{shown}");
        }
        let e = parse("s3://b?access_key=AKIAEXAMPLE&secret_key=s3cr3t&acl=bad").unwrap_err();
        assert!(!e.message.contains("s3cr3t") && !e.message.contains("AKIAEXAMPLE"), "{e}");
    }
}
