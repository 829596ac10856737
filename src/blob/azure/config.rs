//! Where an Azure Blob store lives and as whom it talks: the URI
//! (`azblob://<account>.blob.core.windows.net[/prefix]#session_container=...`
//! or `azblob-http://<host:port>/<account>[/prefix]#...` for emulators) and
//! the credentials taken from the environment, in a fixed order (see
//! [`select_credential`]). Pure functions over the URI and an environment
//! lookup, so the order is unit-tested without touching the process's
//! environment. No secret reaches a message or a `Debug` output.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::blob::{BlobError, BlobUri, Result, check_key};

/// The well-known account of the storage emulators (Azurite).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known shared key, published in Azurite's documentation; used
/// only for `azblob-http://` URIs naming [`DEV_ACCOUNT`] when no other
/// credential is configured.
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The container recordings go to when the URI names none (upstream's).
pub const DEFAULT_SESSION_CONTAINER: &str = "session";
/// Upstream's in-progress container; accepted, unused (see the module docs).
pub const DEFAULT_INPROGRESS_CONTAINER: &str = "inprogress";
/// Microsoft Entra ID's public-cloud authority.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The fragment options an `azblob` URI takes.
const FRAGMENT_OPTIONS: [&str; 2] = ["session_container", "inprogress_container"];

/// A string that never shows in `Debug` output and is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// Where the store's blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The Blob service endpoint, without a trailing `/`: `https://<account>.blob.core.windows.net`,
    /// or `http://<host:port>/<account>` for a path-style emulator.
    pub endpoint: String,
    /// The storage account.
    pub account: String,
    /// Whether the endpoint is https (Entra ID tokens are only sent over https).
    pub https: bool,
    /// The container objects are stored in (`session_container`).
    pub container: String,
    /// `inprogress_container`: validated, unused.
    pub inprogress_container: String,
    /// Key prefix inside the container (the URI's path), without leading or trailing `/`.
    pub prefix: String,
}

/// Checks a container name as Azure does: 3 to 63 lowercase letters,
/// digits and single hyphens, starting and ending with a letter or digit.
pub fn check_container(option: &str, name: &str) -> std::result::Result<(), String> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=63).contains(&name.len())
        || !valid_chars
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(format!(
            "{option}={name:?} is not a valid container name (3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

fn check_account(name: &str) -> std::result::Result<(), String> {
    if !(3..=24).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(format!("{name:?} is not a storage account name (3 to 24 lowercase letters and digits)"));
    }
    Ok(())
}

/// Parses an `azblob://` or `azblob-http://` URI.
pub fn location(u: &BlobUri) -> Result<Location> {
    let bad = |why: String| BlobError::bad(format!("{}: {why}", u.redacted()));
    if !u.query.is_empty() {
        return Err(bad(
            "Azure Blob options go in the URI fragment, as in azblob://account.blob.core.windows.net#session_container=recordings; no query parameters are taken".into(),
        ));
    }
    if let Some(unknown) = u.fragment.keys().find(|k| !FRAGMENT_OPTIONS.contains(&k.as_str())) {
        return Err(bad(format!("unknown option {unknown:?}; the options are {}", FRAGMENT_OPTIONS.join(", "))));
    }
    if u.host.is_empty() {
        return Err(bad(
            "no host; use azblob://<account>.blob.core.windows.net or azblob-http://<host:port>/<account>".into(),
        ));
    }
    let host_label = u.host.split('.').next().unwrap_or_default().to_string();
    let segments: Vec<&str> = u.path.split('/').filter(|s| !s.is_empty()).collect();
    let (https, account, endpoint, prefix_segments) = match u.scheme.as_str() {
        "azblob" => {
            if !u.host.contains('.') {
                return Err(bad(format!(
                    "the host must be the account's Blob endpoint, as in azblob://{}.blob.core.windows.net",
                    u.host
                )));
            }
            (true, host_label, format!("https://{}", u.host), &segments[..])
        }
        "azblob-http" => match segments.split_first() {
            // Path-style, as emulators serve: http://host:port/account/container/blob.
            Some((account, rest)) => (false, account.to_string(), format!("http://{}/{account}", u.host), rest),
            // Host-style: http://account.host:port/container/blob.
            None => {
                let host_only = u.host.rsplit_once(':').map_or(u.host.as_str(), |(h, _)| h);
                if !host_only.contains('.') || host_only.parse::<std::net::IpAddr>().is_ok() {
                    return Err(bad("name the account: azblob-http://<host:port>/<account>".into()));
                }
                (false, host_label, format!("http://{}", u.host), &segments[..])
            }
        },
        other => return Err(bad(format!("{other}:// is not an Azure Blob scheme"))),
    };
    check_account(&account).map_err(|why| bad(format!("account {why}")))?;
    let container = u.fragment_param("session_container").unwrap_or(DEFAULT_SESSION_CONTAINER).to_string();
    check_container("session_container", &container).map_err(bad)?;
    let inprogress_container =
        u.fragment_param("inprogress_container").unwrap_or(DEFAULT_INPROGRESS_CONTAINER).to_string();
    check_container("inprogress_container", &inprogress_container).map_err(bad)?;
    let prefix = prefix_segments.join("/");
    if !prefix.is_empty() {
        check_key(&prefix).map_err(|e| bad(format!("key prefix: {}", e.message)))?;
    }
    Ok(Location { endpoint, account, https, container, inprogress_container, prefix })
}

/// How requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSpec {
    /// Shared Key: the account's key (base64).
    SharedKey(Secret),
    /// A SAS token appended to every request's query.
    Sas(Secret),
    /// Entra ID: a service principal with a client secret.
    ClientSecret {
        /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
        token_url: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        secret: Secret,
    },
    /// Entra ID: workload identity federation (AKS): a token file exchanged for a token.
    WorkloadIdentity {
        /// The tenant's token endpoint.
        token_url: String,
        /// The application (client) id.
        client_id: String,
        /// The federated token file (re-read at every exchange; the kubelet rotates it).
        token_file: PathBuf,
    },
    /// Entra ID: App Service / Functions managed identity.
    AppService {
        /// `IDENTITY_ENDPOINT`.
        endpoint: String,
        /// `IDENTITY_HEADER`.
        header: Secret,
        /// A user-assigned identity's client id.
        client_id: Option<String>,
    },
    /// Entra ID: the VM / VMSS / AKS node managed identity, through IMDS.
    Imds {
        /// A user-assigned identity's client id.
        client_id: Option<String>,
    },
}

impl CredentialSpec {
    /// What the credential is, for logs and messages (no secret).
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSpec::SharedKey(_) => "shared key",
            CredentialSpec::Sas(_) => "SAS token",
            CredentialSpec::ClientSecret { .. } => "Entra ID client secret",
            CredentialSpec::WorkloadIdentity { .. } => "Entra ID workload identity",
            CredentialSpec::AppService { .. } => "Entra ID managed identity (App Service)",
            CredentialSpec::Imds { .. } => "Entra ID managed identity (IMDS)",
        }
    }

    /// The secret strings, so messages can be scrubbed of them (a SAS's
    /// signature also on its own, encoded and decoded).
    pub fn secrets(&self) -> Vec<String> {
        let one = |s: &Secret| vec![s.expose().to_string()];
        match self {
            CredentialSpec::SharedKey(s) => one(s),
            CredentialSpec::Sas(s) => {
                let mut out = one(s);
                for (k, v) in s.expose().split('&').filter_map(|p| p.split_once('=')) {
                    if k.eq_ignore_ascii_case("sig") {
                        out.push(v.to_string());
                        out.push(crate::blob::uri::percent_decode(v, false));
                    }
                }
                out
            }
            CredentialSpec::ClientSecret { secret, .. } => one(secret),
            CredentialSpec::AppService { header, .. } => one(header),
            CredentialSpec::WorkloadIdentity { .. } | CredentialSpec::Imds { .. } => vec![],
        }
    }
}

/// A connection string's fields we use.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`.
    pub account: Option<String>,
    /// `AccountKey`.
    pub key: Option<Secret>,
    /// `BlobEndpoint`.
    pub blob_endpoint: Option<String>,
    /// `SharedAccessSignature`.
    pub sas: Option<Secret>,
}

/// Parses `Name=value;Name=value;...` (names case-insensitive; values may
/// contain `=`). `UseDevelopmentStorage=true` is the emulator's account.
/// Errors never quote the string (it holds secrets).
pub fn parse_connection_string(s: &str) -> std::result::Result<ConnectionString, String> {
    let mut out = ConnectionString::default();
    for (i, part) in s.split(';').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!("field {} is not Name=value", i + 1));
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "accountname" => out.account = Some(value),
            "accountkey" => out.key = Some(Secret::new(value)),
            "blobendpoint" => out.blob_endpoint = Some(value.trim_end_matches('/').to_string()),
            "sharedaccesssignature" => out.sas = Some(Secret::new(value.trim_start_matches('?'))),
            "usedevelopmentstorage" if value.eq_ignore_ascii_case("true") => {
                out.account = Some(DEV_ACCOUNT.into());
                out.key = Some(Secret::new(DEV_ACCOUNT_KEY));
            }
            // DefaultEndpointsProtocol, EndpointSuffix, other services' endpoints.
            _ => {}
        }
    }
    Ok(out)
}

impl ConnectionString {
    /// The account: `AccountName`, else the one `BlobEndpoint` names
    /// (its first host label, or its first path segment when the host is
    /// an address or `localhost`, as emulators serve).
    pub fn account(&self) -> Option<String> {
        if let Some(a) = &self.account {
            return Some(a.clone());
        }
        let ep = self.blob_endpoint.as_deref()?;
        let rest = ep.split_once("://").map_or(ep, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
            path.split('/').find(|s| !s.is_empty()).map(str::to_string)
        } else {
            host.split('.').next().map(str::to_string)
        }
    }
}

/// An environment lookup (`std::env::var` in production).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Picks the credential, first match wins:
/// 1. `AZURE_STORAGE_CONNECTION_STRING` (its `AccountKey`, else its
///    `SharedAccessSignature`; it must be for the URI's account);
/// 2. `AZURE_STORAGE_KEY`: Shared Key for the URI's account;
/// 3. `AZURE_STORAGE_SAS_TOKEN`: a SAS appended to every request;
/// 4. Entra ID, https endpoints only: a client secret (`AZURE_TENANT_ID`,
///    `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
///    (`AZURE_FEDERATED_TOKEN_FILE` with the tenant and client ids;
///    `AZURE_AUTHORITY_HOST` for other clouds), the App Service managed
///    identity (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`), else the managed
///    identity of the VM through IMDS (`AZURE_CLIENT_ID` picks a
///    user-assigned one);
/// 5. `azblob-http://` naming `devstoreaccount1`: the emulator's well-known key.
pub fn select_credential(loc: &Location, env: Env<'_>) -> std::result::Result<CredentialSpec, String> {
    if let Some(cs) = var(env, "AZURE_STORAGE_CONNECTION_STRING") {
        let cs = parse_connection_string(&cs).map_err(|e| format!("AZURE_STORAGE_CONNECTION_STRING: {e}"))?;
        match cs.account() {
            Some(a) if a == loc.account => {}
            Some(a) => {
                return Err(format!(
                    "AZURE_STORAGE_CONNECTION_STRING is for account {a:?}, the URI names {:?}; unset it or use its account",
                    loc.account
                ));
            }
            None => return Err("AZURE_STORAGE_CONNECTION_STRING names no AccountName or BlobEndpoint".into()),
        }
        return match (cs.key, cs.sas) {
            (Some(key), _) => Ok(CredentialSpec::SharedKey(key)),
            (None, Some(sas)) => Ok(CredentialSpec::Sas(sas)),
            (None, None) => Err("AZURE_STORAGE_CONNECTION_STRING has no AccountKey or SharedAccessSignature".into()),
        };
    }
    if let Some(key) = var(env, "AZURE_STORAGE_KEY") {
        return Ok(CredentialSpec::SharedKey(Secret::new(key)));
    }
    if let Some(sas) = var(env, "AZURE_STORAGE_SAS_TOKEN") {
        return Ok(CredentialSpec::Sas(Secret::new(sas.trim_start_matches('?'))));
    }
    if !loc.https {
        if loc.account == DEV_ACCOUNT {
            return Ok(CredentialSpec::SharedKey(Secret::new(DEV_ACCOUNT_KEY)));
        }
        return Err(format!(
            "no credentials for account {:?} over http: set AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING (Entra ID tokens are sent over https only)",
            loc.account
        ));
    }
    let authority = var(env, "AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.into());
    let tenant = var(env, "AZURE_TENANT_ID");
    let client_id = var(env, "AZURE_CLIENT_ID");
    let token_url = |tenant: &str| format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
    if let (Some(t), Some(c), Some(secret)) = (&tenant, &client_id, var(env, "AZURE_CLIENT_SECRET")) {
        return Ok(CredentialSpec::ClientSecret {
            token_url: token_url(t),
            client_id: c.clone(),
            secret: Secret::new(secret),
        });
    }
    if let (Some(t), Some(c), Some(file)) = (&tenant, &client_id, var(env, "AZURE_FEDERATED_TOKEN_FILE")) {
        return Ok(CredentialSpec::WorkloadIdentity {
            token_url: token_url(t),
            client_id: c.clone(),
            token_file: PathBuf::from(file),
        });
    }
    if let (Some(endpoint), Some(header)) = (var(env, "IDENTITY_ENDPOINT"), var(env, "IDENTITY_HEADER")) {
        return Ok(CredentialSpec::AppService { endpoint, header: Secret::new(header), client_id });
    }
    Ok(CredentialSpec::Imds { client_id })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn loc(uri: &str) -> Result<Location> {
        location(&BlobUri::parse(uri, "t").unwrap())
    }

    #[test]
    fn uris() {
        let l = loc("azblob://acct.blob.core.windows.net").unwrap();
        assert_eq!(l.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!((l.account.as_str(), l.container.as_str(), l.prefix.as_str()), ("acct", "session", ""));
        assert!(l.https);
        let l = loc("azblob://acct.blob.core.windows.net/a/b#session_container=recs&inprogress_container=ups").unwrap();
        assert_eq!((l.container.as_str(), l.inprogress_container.as_str(), l.prefix.as_str()), ("recs", "ups", "a/b"));
        let l = loc("azblob-http://127.0.0.1:10000/devstoreaccount1").unwrap();
        assert_eq!(l.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!((l.account.as_str(), l.prefix.as_str(), l.https), ("devstoreaccount1", "", false));
        let l = loc("azblob-http://localhost:10000/devstoreaccount1/x/y").unwrap();
        assert_eq!(l.prefix, "x/y");
        let l = loc("azblob-http://devstoreaccount1.azurite.local:10000").unwrap();
        assert_eq!(
            (l.endpoint.as_str(), l.account.as_str()),
            ("http://devstoreaccount1.azurite.local:10000", "devstoreaccount1")
        );

        for (uri, needle) in [
            ("azblob://acct.blob.core.windows.net?session_container=x", "fragment"),
            ("azblob://acct.blob.core.windows.net#container=x", "unknown option \"container\""),
            ("azblob://acct.blob.core.windows.net#session_container=Bad_Name", "session_container"),
            ("azblob://acct.blob.core.windows.net#inprogress_container=a", "inprogress_container"),
            ("azblob://acct", "azblob://acct.blob.core.windows.net"),
            ("azblob-http://127.0.0.1:10000", "name the account"),
            ("azblob://UPPER.blob.core.windows.net", "storage account name"),
        ] {
            let e = loc(uri).unwrap_err();
            assert!(e.message.contains(needle), "{uri}: {e}");
            assert!(e.message.starts_with("azblob"), "names the URI: {e}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn credentials_in_order() {
        let https = loc("azblob://acct.blob.core.windows.net").unwrap();
        let dev = loc("azblob-http://127.0.0.1:10000/devstoreaccount1").unwrap();
        let other = loc("azblob-http://127.0.0.1:10000/other").unwrap();
        let all = [
            ("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"),
            ("AZURE_STORAGE_KEY", "b3RoZXI="),
            ("AZURE_STORAGE_SAS_TOKEN", "?sv=2021-12-02&sig=x"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
            ("IDENTITY_HEADER", "h"),
        ];
        let pick = |n: usize, l: &Location| select_credential(l, &env(&all[n..]));
        assert_eq!(pick(0, &https).unwrap(), CredentialSpec::SharedKey(Secret::new("a2V5")));
        assert_eq!(pick(1, &https).unwrap(), CredentialSpec::SharedKey(Secret::new("b3RoZXI=")));
        assert_eq!(pick(2, &https).unwrap(), CredentialSpec::Sas(Secret::new("sv=2021-12-02&sig=x")));
        assert!(matches!(pick(3, &https).unwrap(), CredentialSpec::ClientSecret { token_url, .. }
            if token_url == "https://login.microsoftonline.com/t/oauth2/v2.0/token"));
        let mut no_secret: Vec<_> = all[3..].to_vec();
        no_secret.retain(|(k, _)| *k != "AZURE_CLIENT_SECRET");
        no_secret.push(("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"));
        assert!(
            matches!(select_credential(&https, &env(&no_secret)).unwrap(), CredentialSpec::WorkloadIdentity { token_url, .. }
            if token_url == "https://login.microsoftonline.us/t/oauth2/v2.0/token")
        );
        assert!(matches!(pick(7, &https).unwrap(), CredentialSpec::AppService { client_id: None, .. }));
        assert_eq!(pick(9, &https).unwrap(), CredentialSpec::Imds { client_id: None });
        assert_eq!(
            select_credential(&https, &env(&[("AZURE_CLIENT_ID", "u")])).unwrap(),
            CredentialSpec::Imds { client_id: Some("u".into()) }
        );
        // Over http: no Entra ID; the dev account falls back to its well-known key.
        assert_eq!(pick(3, &dev).unwrap(), CredentialSpec::SharedKey(Secret::new(DEV_ACCOUNT_KEY)));
        let e = pick(3, &other).unwrap_err();
        assert!(e.contains("AZURE_STORAGE_KEY"), "{e}");
        // A connection string for another account is refused, without quoting it.
        let e = select_credential(&dev, &env(&all[..1])).unwrap_err();
        assert!(e.contains("\"acct\"") && !e.contains("a2V5"), "{e}");
        // BlobEndpoint names the account; a SAS-only connection string.
        let cs = "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;SharedAccessSignature=?sv=1&sig=abc";
        assert_eq!(
            select_credential(&dev, &env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)])).unwrap(),
            CredentialSpec::Sas(Secret::new("sv=1&sig=abc"))
        );
        let dev_cs = [("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")];
        assert_eq!(
            select_credential(&dev, &env(&dev_cs)).unwrap(),
            CredentialSpec::SharedKey(Secret::new(DEV_ACCOUNT_KEY))
        );
        assert!(!format!("{:?}", pick(0, &https).unwrap()).contains("a2V5"));
    }

    #[test]
    fn connection_strings() {
        let cs = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=a1;AccountKey=k==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(cs.account(), Some("a1".into()));
        assert_eq!(cs.key, Some(Secret::new("k==")));
        let cs = parse_connection_string("BlobEndpoint=https://a2.blob.core.windows.net;SharedAccessSignature=sv=x")
            .unwrap();
        assert_eq!(cs.account(), Some("a2".into()));
        let e = parse_connection_string("AccountName=a;secretjunk").unwrap_err();
        assert!(!e.contains("secretjunk"), "{e}");
    }
}
