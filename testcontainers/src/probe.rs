//! Readiness probes: one real protocol request per server, shared by the
//! local and container providers. A probe returns `Ok(())` only when the
//! server answered in its own protocol (not merely accepted a TCP
//! connection); otherwise a short description of what it saw.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Server};

/// A plain-HTTP client for probes (no TLS: every server is on loopback).
pub(crate) fn http_client(server: Server) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| Error::setup(server, "build HTTP client", e))
}

/// A response reduced to what probes check.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|e| error_chain(&e))?;
    Ok(Answer { status, headers, body })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn unexpected(what: &str, answer: &Answer) -> String {
    let body: String = answer.body.chars().take(200).collect();
    format!("{what}: HTTP {} {body:?}", answer.status)
}

/// etcd: `GET /health` must say `"health":"true"` (a leader is elected).
pub(crate) async fn etcd(client: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    let answer = send(client.get(format!("{endpoint}/health"))).await?;
    if answer.status == 200 && answer.body.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(unexpected("GET /health", &answer))
    }
}

/// A plausible SigV4 Authorization header. moto does not check signatures
/// but routes requests by the service named in the credential scope.
pub(crate) fn fake_sigv4_authorization(access_key: &str, region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/20240101/{region}/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}",
        "0".repeat(64)
    )
}

/// DynamoDB: `ListTables` must answer with a `TableNames` list.
pub(crate) async fn dynamodb(
    client: &reqwest::Client,
    endpoint: &str,
    access_key: &str,
    region: &str,
) -> Result<(), String> {
    let request = client
        .post(format!("{endpoint}/"))
        .header("X-Amz-Target", "DynamoDB_20120810.ListTables")
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Date", "20240101T000000Z")
        .header("Authorization", fake_sigv4_authorization(access_key, region, "dynamodb"))
        .body("{}");
    let answer = send(request).await?;
    if answer.status == 200 && answer.body.contains("TableNames") {
        Ok(())
    } else {
        Err(unexpected("DynamoDB ListTables", &answer))
    }
}

/// S3: an unsigned `GET /` (ListBuckets) must get an S3 XML answer: the
/// bucket list from servers that do not check signatures (moto), or an S3
/// `<Error>` document from those that do (s3s-fs, MinIO).
pub(crate) async fn s3(client: &reqwest::Client, endpoint: &str) -> Result<(), String> {
    let answer = send(client.get(format!("{endpoint}/"))).await?;
    if answer.body.contains("<ListAllMyBucketsResult") || answer.body.contains("<Error>") {
        Ok(())
    } else {
        Err(unexpected("S3 ListBuckets", &answer))
    }
}

/// GCS: the JSON API bucket list must answer `storage#buckets`.
pub(crate) async fn gcs(client: &reqwest::Client, endpoint: &str, project: &str) -> Result<(), String> {
    let answer = send(client.get(format!("{endpoint}/storage/v1/b?project={project}"))).await?;
    if answer.status == 200 && answer.body.contains("storage#buckets") {
        Ok(())
    } else {
        Err(unexpected("GCS list buckets", &answer))
    }
}

/// Azure Blob: an unauthenticated List Containers must be answered by the
/// Blob service itself, which tags every answer (even a 403) with
/// `x-ms-request-id`.
pub(crate) async fn azure_blob(client: &reqwest::Client, blob_endpoint: &str) -> Result<(), String> {
    let answer = send(client.get(format!("{blob_endpoint}?comp=list"))).await?;
    if answer.headers.contains_key("x-ms-request-id") {
        Ok(())
    } else {
        Err(unexpected("Blob List Containers (no x-ms-request-id)", &answer))
    }
}

/// PostgreSQL: a protocol 3.0 StartupMessage as `user` must be answered with
/// AuthenticationOk (the fixtures use trust authentication). While the server
/// starts up it answers with an ErrorResponse instead, which is reported.
pub(crate) async fn postgres(host: &str, port: u16, user: &str, database: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect((host, port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).map_err(|e| e.to_string())?;
    let mut message = len.to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message).await.map_err(|e| format!("send StartupMessage: {e}"))?;

    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await.map_err(|e| format!("read the answer to StartupMessage: {e}"))?;
    let tag = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut payload = vec![0u8; len.saturating_sub(4).min(64 * 1024)];
    stream.read_exact(&mut payload).await.map_err(|e| format!("read the answer to StartupMessage: {e}"))?;
    match tag {
        b'R' if payload.get(..4) == Some(&[0, 0, 0, 0]) => {
            // Terminate, politely; the server may already be busy closing.
            let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await;
            Ok(())
        }
        b'R' => Err("server asked for a password (expected trust authentication)".to_string()),
        b'E' => {
            // Fields: a type byte then a NUL-terminated string; 'M' is the message.
            let text = payload
                .split(|&b| b == 0)
                .find(|field| field.first() == Some(&b'M'))
                .map(|field| String::from_utf8_lossy(&field[1..]).into_owned())
                .unwrap_or_else(|| "ErrorResponse".to_string());
            Err(format!("postgres said: {text}"))
        }
        other => Err(format!("unexpected message type {:?}", other as char)),
    }
}
