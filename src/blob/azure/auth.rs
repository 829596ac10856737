//! Authorizing Blob service requests: Shared Key signatures (HMAC-SHA256 of
//! the canonicalized request with the account key, as
//! <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>
//! defines them), SAS tokens appended to the query, and Entra ID bearer
//! tokens ([`super::entra`]). The signature is computed from the final
//! `reqwest::Request`, so what is signed is exactly what is sent.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use reqwest::header::{self, HeaderValue};
use reqwest::{Client, Request};

use super::config::{CredentialSpec, Location, Secret};
use super::entra::TokenCache;
use crate::blob::{BlobError, BlobErrorKind, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An account's shared key, ready to sign requests.
#[derive(Clone)]
pub struct SharedKey {
    account: String,
    key: hmac::Key,
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKey").field("account", &self.account).finish_non_exhaustive()
    }
}

/// The standard headers signed, in the order of the string to sign.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

impl SharedKey {
    /// A key for `account` from its base64 form (as the portal shows it).
    /// The error never quotes the key.
    pub fn new(account: &str, key_base64: &str) -> std::result::Result<SharedKey, String> {
        let raw = zeroize::Zeroizing::new(
            B64.decode(key_base64.trim()).map_err(|_| "the account key is not valid base64".to_string())?,
        );
        if raw.is_empty() {
            return Err("the account key is empty".into());
        }
        Ok(SharedKey { account: account.to_string(), key: hmac::Key::new(hmac::HMAC_SHA256, &raw) })
    }

    /// The account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Base64 of HMAC-SHA256(`data`) with the key (signatures and SAS).
    pub fn hmac_base64(&self, data: &str) -> String {
        B64.encode(hmac::sign(&self.key, data.as_bytes()).as_ref())
    }

    /// The string to sign of a request (Shared Key, version 2015-02-21 and
    /// later: an empty Content-Length for an empty body; `x-ms-date` used
    /// instead of `Date`).
    pub fn string_to_sign(&self, req: &Request) -> String {
        let headers = req.headers();
        let value = |name: &str| -> String {
            let v = headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if name == "content-length" {
                let len = if v.is_empty() {
                    req.body().and_then(|b| b.as_bytes()).map(<[u8]>::len).unwrap_or(0).to_string()
                } else {
                    v.to_string()
                };
                return if len == "0" { String::new() } else { len };
            }
            v.to_string()
        };
        let mut s = req.method().as_str().to_string();
        for name in SIGNED_HEADERS {
            s.push('\n');
            s.push_str(&value(name));
        }
        s.push('\n');
        // x-ms-* headers, by name, values trimmed, repeated ones joined.
        let mut ms: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, v) in headers {
            if name.as_str().starts_with("x-ms-") {
                ms.entry(name.as_str()).or_default().push(v.to_str().unwrap_or_default().trim().to_string());
            }
        }
        for (name, values) in ms {
            s.push_str(name);
            s.push(':');
            s.push_str(&values.join(","));
            s.push('\n');
        }
        // The resource: /account + the encoded path, then each query
        // parameter (name lowercased, values decoded, sorted, joined).
        s.push('/');
        s.push_str(&self.account);
        s.push_str(req.url().path());
        let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in req.url().query_pairs() {
            query.entry(k.to_ascii_lowercase()).or_default().push(v.into_owned());
        }
        for (k, mut values) in query {
            values.sort();
            s.push('\n');
            s.push_str(&k);
            s.push(':');
            s.push_str(&values.join(","));
        }
        s
    }

    /// Sets `Content-Length` (so what is signed is what hyper sends) and
    /// `Authorization: SharedKey <account>:<signature>`. The request must
    /// already carry `x-ms-date` and `x-ms-version`.
    pub fn sign(&self, req: &mut Request) {
        let len = req.body().and_then(|b| b.as_bytes()).map(<[u8]>::len);
        if let Some(len) = len {
            req.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let signature = self.hmac_base64(&self.string_to_sign(req));
        if let Ok(v) = HeaderValue::from_str(&format!("SharedKey {}:{signature}", self.account)) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
}

/// How a store authorizes its requests.
pub(crate) enum Auth {
    SharedKey(Box<SharedKey>),
    Sas(Secret),
    Bearer(Box<TokenCache>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::SharedKey(_) => "Auth::SharedKey",
            Auth::Sas(_) => "Auth::Sas",
            Auth::Bearer(_) => "Auth::Bearer",
        })
    }
}

impl Auth {
    /// The authorization of a credential.
    pub(crate) fn new(loc: &Location, spec: CredentialSpec) -> std::result::Result<Auth, String> {
        Ok(match spec {
            CredentialSpec::SharedKey(key) => Auth::SharedKey(Box::new(SharedKey::new(&loc.account, key.expose())?)),
            CredentialSpec::Sas(sas) => Auth::Sas(sas),
            other => Auth::Bearer(Box::new(TokenCache::new(other))),
        })
    }

    /// Authorizes `req` (which carries its `x-ms-*` headers): signs it,
    /// appends the SAS, or adds a (cached) bearer token.
    pub(crate) async fn authorize(&self, http: &Client, req: &mut Request) -> Result<()> {
        match self {
            Auth::SharedKey(key) => key.sign(req),
            Auth::Sas(sas) => {
                let url = req.url_mut();
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{}", sas.expose()),
                    _ => sas.expose().to_string(),
                };
                url.set_query(Some(&query));
            }
            Auth::Bearer(cache) => {
                let token = cache.token(http).await?;
                let value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    BlobError::new(BlobErrorKind::AccessDenied, "the Entra ID token is not a valid header value")
                })?;
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use reqwest::{Method, Url};

    use super::*;

    #[test]
    fn string_to_sign_follows_the_spec() {
        let key = SharedKey::new("devstoreaccount1", super::super::config::DEV_ACCOUNT_KEY).unwrap();
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/session/a%20b/c.tar?comp=block&blockid=QUJD%2BZA%3D%3D",
        )
        .unwrap();
        let mut req = Request::new(Method::PUT, url);
        for (k, v) in [
            ("x-ms-version", "2021-12-02"),
            ("x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("x-ms-meta-sha256", " abc "),
        ] {
            req.headers_mut().insert(k, HeaderValue::from_static(v));
        }
        *req.body_mut() = Some(Bytes::from_static(b"hello").into());
        assert_eq!(
            key.string_to_sign(&req),
            "PUT\n\n\n5\n\n\n\n\n\n\n\n\n\
             x-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-meta-sha256:abc\nx-ms-version:2021-12-02\n\
             /devstoreaccount1/devstoreaccount1/session/a%20b/c.tar\nblockid:QUJD+ZA==\ncomp:block"
        );
        key.sign(&mut req);
        let auth = req.headers()[header::AUTHORIZATION].to_str().unwrap().to_string();
        assert!(auth.starts_with("SharedKey devstoreaccount1:"), "{auth}");
        assert_eq!(req.headers()[header::CONTENT_LENGTH], "5");
        // An empty body signs an empty Content-Length.
        let mut empty = Request::new(Method::DELETE, Url::parse("https://a.blob.core.windows.net/c/k").unwrap());
        *empty.body_mut() = Some(Bytes::new().into());
        assert!(key.string_to_sign(&empty).starts_with("DELETE\n\n\n\n"));
        assert!(SharedKey::new("a", "not base64!").unwrap_err().contains("base64"));
        assert!(!format!("{key:?}").contains("Eby8"));
    }
}
