//! Helpers for the server tests: an HTTP client, minimal AWS SigV4 and
//! Azure SharedKey signing (just enough for the requests the tests send),
//! and checks that a stopped server is really gone.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).no_proxy().build().expect("build reqwest client")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// UTC calendar fields of a unix time (Howard Hinnant's civil_from_days).
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    weekday: usize, // 0 = Sunday
}

fn utc(now: SystemTime) -> Utc {
    let secs = now.duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Utc {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        weekday: ((days + 4).rem_euclid(7)) as usize,
    }
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs an S3 request (path-style, `host;x-amz-content-sha256;x-amz-date`
/// signed) and returns it ready to send.
#[allow(clippy::too_many_arguments)]
pub fn s3_request(
    client: &reqwest::Client,
    method: reqwest::Method,
    endpoint: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Vec<u8>,
    access_key: &str,
    secret_key: &str,
    region: &str,
) -> reqwest::RequestBuilder {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let t = utc(SystemTime::now());
    let date = format!("{:04}{:02}{:02}", t.year, t.month, t.day);
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", t.hour, t.minute, t.second);
    let payload_hash = sha256_hex(&body);

    let canonical_path = uri_encode(path, true);
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    let canonical_query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_headers = format!("host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n");
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        method.as_str()
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );

    let mut url = format!("{}{canonical_path}", endpoint.trim_end_matches('/'));
    if !canonical_query.is_empty() {
        url.push('?');
        url.push_str(&canonical_query);
    }
    client
        .request(method, url)
        .header("x-amz-date", amz_date)
        .header("x-amz-content-sha256", payload_hash)
        .header("authorization", authorization)
        .body(body)
}

/// A plausible SigV4 header for DynamoDB JSON requests to moto, which
/// routes on the credential scope but does not check the signature.
pub fn dynamodb_request(
    client: &reqwest::Client,
    endpoint: &str,
    operation: &str,
    body: serde_json::Value,
    access_key: &str,
    region: &str,
) -> reqwest::RequestBuilder {
    let t = utc(SystemTime::now());
    let date = format!("{:04}{:02}{:02}", t.year, t.month, t.day);
    client
        .post(format!("{endpoint}/"))
        .header("X-Amz-Target", format!("DynamoDB_20120810.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Date", format!("{date}T{:02}{:02}{:02}Z", t.hour, t.minute, t.second))
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{date}/{region}/dynamodb/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
                "ab".repeat(32)
            ),
        )
        .body(body.to_string())
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// An Azure Blob request signed with SharedKey (x-ms-date, no Date header).
///
/// `url_path` is the path after the host (path-style, so it starts with the
/// account: `/devstoreaccount1/container/blob`); `headers` are the standard
/// headers that take part in the string-to-sign plus any `x-ms-*` headers.
#[allow(clippy::too_many_arguments)]
pub fn azure_request(
    client: &reqwest::Client,
    method: reqwest::Method,
    base_url: &str,
    url_path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Vec<u8>,
    account: &str,
    key_b64: &str,
) -> reqwest::RequestBuilder {
    let t = utc(SystemTime::now());
    let date = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[t.weekday],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    );
    let mut all: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    all.push(("x-ms-date".into(), date));
    all.push(("x-ms-version".into(), "2021-08-06".into()));
    let get = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    // Content-Length is empty when zero (API version 2015-02-21 and later).
    let content_length = if body.is_empty() { String::new() } else { body.len().to_string() };
    let mut ms: Vec<(String, String)> = all.iter().filter(|(k, _)| k.starts_with("x-ms-")).cloned().collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut params: Vec<(String, String)> =
        query.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    params.sort();
    let mut canonical_resource = format!("/{account}{url_path}");
    for (k, v) in &params {
        canonical_resource.push_str(&format!("\n{k}:{v}"));
    }
    let string_to_sign = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n{canonical_headers}{canonical_resource}",
        method.as_str(),
        get("content-encoding"),
        get("content-language"),
        content_length,
        get("content-md5"),
        get("content-type"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let key = B64.decode(key_b64).expect("account key is base64");
    let signature = B64.encode(hmac_sha256(&key, string_to_sign.as_bytes()));

    let mut url = format!("{}{url_path}", base_url.trim_end_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    }
    let mut request = client.request(method, url).header("authorization", format!("SharedKey {account}:{signature}"));
    for (k, v) in &all {
        request = request.header(k.as_str(), v.as_str());
    }
    request.body(body)
}

/// The fixture's process is gone (reaped: not even a zombie) and nothing
/// listens on its port any more.
pub fn assert_stopped(pid: u32, port: u16) {
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "server process {pid} still exists after drop");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "something still listens on {addr} after drop"
    );
}

/// The fixture's temp dir was removed on drop.
pub fn assert_removed(dir: &Path) {
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}
