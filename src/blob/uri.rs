//! Object store URIs, with upstream's parameters:
//! `file:///path` (or a bare absolute path),
//! `s3://bucket/prefix?region=&endpoint=&insecure=&disablesse=&sse_kms_key=&acl=&use_s3_virtual_style_addressing=`,
//! `gs://bucket/prefix?projectID=&credentialsPath=&endpoint=`,
//! `azblob://account.blob.core.windows.net#session_container=&inprogress_container=`
//! and `azblob-http://host:port/account#...` for emulators. Options of
//! `azblob` URIs are in the fragment, as upstream. [`BlobUri::redacted`]
//! is what messages and logs show.

use std::collections::BTreeMap;

use super::{BlobError, Result};
pub use crate::config::uri::percent_decode;

/// A parsed object store URI.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobUri {
    /// The URI as given.
    pub raw: String,
    /// `file`, `s3`, `gs`, `azblob`, `azblob-http`.
    pub scheme: String,
    /// The bucket (S3, GCS), the account host (Azure), empty for files.
    pub host: String,
    /// The path: the directory (files) or the key prefix, with its leading `/`.
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Fragment parameters (`#k=v&...`, Azure), percent-decoded.
    pub fragment: BTreeMap<String, String>,
}

impl std::fmt::Debug for BlobUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobUri({})", self.redacted())
    }
}

fn pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Whether a parameter name looks like it holds a secret.
fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "key", "token", "sig", "password", "credential"].iter().any(|s| n.contains(s))
        && !matches!(n.as_str(), "sse_kms_key" | "keyname" | "credentialspath")
}

impl BlobUri {
    /// Parses `scheme://host/path?query#fragment`; a bare absolute path is
    /// `file://<path>`. `what` names the setting in errors
    /// (`audit_sessions_uri`, `--to`).
    pub fn parse(s: &str, what: &str) -> Result<BlobUri> {
        let raw = s.trim().to_string();
        if raw.is_empty() {
            return Err(BlobError::bad(format!("{what} is empty")));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            if raw.starts_with('/') {
                return Ok(BlobUri {
                    raw: raw.clone(),
                    scheme: "file".into(),
                    host: String::new(),
                    path: raw.clone(),
                    query: BTreeMap::new(),
                    fragment: BTreeMap::new(),
                });
            }
            return Err(BlobError::bad(format!(
                "{what} {raw:?} is not a URI; use file:///path, s3://bucket/prefix, gs://bucket/prefix?projectID=p or azblob://account.blob.core.windows.net"
            )));
        };
        let scheme = scheme.to_ascii_lowercase();
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        Ok(BlobUri {
            raw: raw.clone(),
            scheme,
            host: percent_decode(host, false),
            path: percent_decode(path, false),
            query: pairs(query),
            fragment: pairs(fragment),
        })
    }

    /// A query parameter (empty counts as unset).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// A boolean query parameter (`true`/`false`/`1`/`0`/`yes`/`no`), naming
    /// the URI in errors.
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.param(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(BlobError::bad(format!("{}: {name}={other:?} is not true or false", self.redacted()))),
        }
    }

    /// A fragment parameter (Azure's options).
    pub fn fragment_param(&self, name: &str) -> Option<&str> {
        self.fragment.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// The key prefix from the path: no leading or trailing `/`.
    pub fn prefix(&self) -> String {
        self.path.trim_matches('/').to_string()
    }

    /// The URI without values that may be secrets (for messages and logs).
    pub fn redacted(&self) -> String {
        let show = |m: &BTreeMap<String, String>| -> Vec<String> {
            m.iter().map(|(k, v)| format!("{k}={}", if is_secret(k) { "REDACTED" } else { v })).collect()
        };
        let mut out = format!("{}://{}{}", self.scheme, self.host, self.path);
        let q = show(&self.query);
        if !q.is_empty() {
            out.push('?');
            out.push_str(&q.join("&"));
        }
        let f = show(&self.fragment);
        if !f.is_empty() {
            out.push('#');
            out.push_str(&f.join("&"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let u = BlobUri::parse(
            "s3://bucket/a/b?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&disablesse=true",
            "x",
        )
        .unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.prefix().as_str()), ("s3", "bucket", "a/b"));
        assert_eq!(u.param("endpoint"), Some("http://127.0.0.1:9000"));
        assert!(u.flag("disablesse").unwrap());
        assert!(u.flag("insecure").is_ok_and(|b| !b));

        let g = BlobUri::parse("gs://b/recs?projectID=p&credentialsPath=/etc/k.json", "x").unwrap();
        assert_eq!(g.param("projectID"), Some("p"));
        assert!(g.redacted().contains("credentialsPath=/etc/k.json"));

        let a = BlobUri::parse("azblob://acct.blob.core.windows.net#session_container=s&inprogress_container=i", "x")
            .unwrap();
        assert_eq!(a.host, "acct.blob.core.windows.net");
        assert_eq!(a.fragment_param("session_container"), Some("s"));

        let f = BlobUri::parse("/var/lib/teleport/log/records", "x").unwrap();
        assert_eq!((f.scheme.as_str(), f.path.as_str()), ("file", "/var/lib/teleport/log/records"));
        assert!(
            BlobUri::parse("relative/dir", "audit_sessions_uri").unwrap_err().message.contains("audit_sessions_uri")
        );
        assert!(BlobUri::parse("s3://b?insecure=maybe", "x").unwrap().flag("insecure").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let u = BlobUri::parse(
            "azblob-http://127.0.0.1:10000/devstoreaccount1?sig=abc&account_key=xyz#session_container=s",
            "x",
        )
        .unwrap();
        let r = u.redacted();
        assert!(!r.contains("abc") && !r.contains("xyz"), "{r}");
        assert!(r.contains("session_container=s"));
    }
}
