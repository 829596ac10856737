//! The S3 store (`s3://bucket/prefix?...`), on the AWS SDK for Rust
//! (`aws-sdk-s3`), for AWS and S3-compatible servers (MinIO, Ceph, ...).
//! An object is `<prefix>/<key>` in the bucket.
//!
//! - **Uploads** are S3 multipart uploads on the final key: parts sized by
//!   [`PartSizer`](crate::blob::PartSizer) (first parts [`DEFAULT_PART`], at least 5 MiB, at most
//!   10,000 parts), up to [`PARTS_IN_FLIGHT`] uploading at once, each with
//!   its Content-MD5 (as upstream). CompleteMultipartUpload is the atomic
//!   publish; an object smaller than one part is a single PutObject at
//!   finish. Aborting (or dropping) a writer aborts the upload; what a crash
//!   leaves is removed by a bucket lifecycle rule
//!   `AbortIncompleteMultipartUpload` (recommended: after 7 days).
//! - **Checksums.** The SHA-256 is user metadata `sha256`, which S3 takes
//!   only when an upload starts: a PutObject carries it; a multipart upload
//!   carries `PutOptions::expected_sha256` when the caller knows it (copies)
//!   and is checked against it before completing; otherwise the metadata is
//!   set after completing by a server-side copy of the object onto itself
//!   (objects up to 5 GiB; the copy is conditional on the ETag, so an object
//!   replaced meanwhile is left alone).
//! - **Reads** are GetObject (Range for ranged reads; a range past the end
//!   reads nothing); a full read broken midway resumes from where it
//!   stopped (same ETag). Listing is ListObjectsV2 from `start-after` the
//!   cursor (the last key of the previous page); it returns no checksums
//!   (S3 lists no metadata). Head is HeadObject; delete DeleteObject.
//! - **The bucket** is created on open when missing (private, versioning
//!   and default `aws:kms` encryption where the server has them), as upstream.
//!
//! Requests are retried by the SDK (throttling, 5xx, timeouts, broken
//! connections: [`crate::aws::MAX_ATTEMPTS`] attempts with backoff).

mod config;
mod insecure_tls;
mod reader;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ObjectCannedAcl,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};
use chrono::{DateTime, Utc};

pub use self::config::{CANNED_ACLS, PARAMS, S3Config, Sse};
use super::{
    BlobError, BlobErrorKind, BlobInfo, BlobRead, BlobStore, BlobUri, BlobWriter, ByteRange, ListPage, MAX_KEY_LEN,
    PutOptions, Result, SHA256_METADATA, check_key, check_prefix,
};
use crate::aws::{ATTEMPT_TIMEOUT, AwsSettings, CONNECT_TIMEOUT, S3ClientOptions};

/// S3's smallest part (all but the last).
pub const MIN_PART: usize = 5 << 20;
/// The first parts of an upload of unknown size.
pub const DEFAULT_PART: usize = 8 << 20;
/// S3's largest part.
pub const MAX_PART: usize = 5 << 30;
/// S3's most parts per upload.
pub const MAX_PARTS: u32 = 10_000;
/// Parts uploading at once per writer (memory: this many parts plus the one filling).
pub const PARTS_IN_FLIGHT: usize = 4;
/// The largest object CopyObject copies in one request (the checksum self-copy).
pub const MAX_COPY: u64 = 5 << 30;
/// Most keys per ListObjectsV2 page.
pub const MAX_LIST: usize = 1000;
/// The slowest transfer rate an attempt is given time for, in bytes per
/// second, on top of [`ATTEMPT_TIMEOUT`]: requests carrying a part get
/// `ATTEMPT_TIMEOUT + size / MIN_RATE`.
pub const MIN_RATE: u64 = 1 << 20;

/// What the store and its writers share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) cfg: S3Config,
    pub(crate) describe: String,
    pub(crate) part_size: usize,
}

/// An S3 bucket (and prefix).
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl Inner {
    /// `<store>: <key>` for messages.
    pub(crate) fn what(&self, key: &str) -> String {
        format!("{}: {key}", self.describe)
    }

    /// The encryption header values of a write (None: none asked for).
    pub(crate) fn sse(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.cfg.sse {
            Sse::Disabled => (None, None),
            Sse::Kms { key } => (Some(ServerSideEncryption::AwsKms), key.clone()),
        }
    }

    /// The canned ACL of a write.
    pub(crate) fn acl(&self) -> Option<ObjectCannedAcl> {
        self.cfg.acl.as_deref().map(ObjectCannedAcl::from)
    }

    /// Maps an SDK error of a request about `key` (or the bucket).
    pub(crate) fn error<E>(&self, op: &str, key: &str, e: SdkError<E, HttpResponse>) -> BlobError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        sdk_error(&format!("{}: {op}", self.what(key)), &self.cfg.bucket, e)
    }
}

/// The attempt timeout of a request carrying `bytes` (see [`MIN_RATE`]).
pub(crate) fn timeouts_for(bytes: u64) -> aws_sdk_s3::config::Builder {
    let attempt = ATTEMPT_TIMEOUT + Duration::from_secs(bytes / MIN_RATE);
    let t = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .build();
    aws_sdk_s3::config::Builder::new().timeout_config(t)
}

/// The kind of an S3 answer, from its status and error code.
fn kind_of(status: Option<u16>, code: Option<&str>) -> BlobErrorKind {
    use BlobErrorKind as K;
    match (status, code.unwrap_or("")) {
        (_, "NoSuchKey" | "NoSuchBucket" | "NotFound" | "NoSuchUpload" | "NoSuchVersion") | (Some(404), _) => {
            K::NotFound
        }
        (
            _,
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "AllAccessDisabled"
            | "RequestTimeTooSkewed",
        )
        | (Some(401 | 403), _) => K::AccessDenied,
        (_, "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "Throttling")
        | (Some(429 | 500..=599), _) => K::ConnectionProblem,
        (
            _,
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException"
            | "InvalidBucketName"
            | "InvalidArgument"
            | "KMS.NotFoundException"
            | "KMS.DisabledException",
        )
        | (Some(301 | 307), _) => K::BadParameter,
        _ => K::Internal,
    }
}

/// Maps an SDK error to a [`BlobError`]: `what` names the store, key and
/// request; the message says what S3 said and, where it helps, what to do.
pub(crate) fn sdk_error<E>(what: &str, bucket: &str, e: SdkError<E, HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let region = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_string);
    match &e {
        SdkError::ServiceError(_) => {
            let code = e.code().map(str::to_string);
            let kind = kind_of(status, code.as_deref());
            let said = match (code.as_deref(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                (None, Some(m)) => m.to_string(),
                (None, None) => format!("HTTP {}", status.unwrap_or_default()),
            };
            let hint = match (kind, code.as_deref()) {
                (_, Some("NoSuchBucket")) => format!(
                    "; the bucket {bucket} does not exist: create it, or let teleport create it on start (s3:CreateBucket)"
                ),
                (BlobErrorKind::BadParameter, Some("PermanentRedirect" | "AuthorizationHeaderMalformed") | None) => {
                    match region {
                        Some(r) => format!("; the bucket {bucket} is in region {r}: add ?region={r} to the URI"),
                        None => format!("; check the region of the bucket {bucket} (?region=)"),
                    }
                }
                (BlobErrorKind::AccessDenied, _) => "; check the credentials (access_key/secret_key, AWS_* variables, \
                     profile or role) and that they allow s3:GetObject, s3:PutObject, s3:DeleteObject, \
                     s3:ListBucket and s3:AbortMultipartUpload on the bucket"
                    .to_string(),
                _ => String::new(),
            };
            BlobError::new(kind, format!("{what}: {said}{hint}"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let said = chain(&e);
            let hint = if said.contains("certificate") {
                "; for a server with a private CA add the CA to the system's trust store, or set insecure=true"
            } else {
                ""
            };
            BlobError::connection(format!("{what}: {said}{hint}"))
        }
        _ => BlobError::internal(format!("{what}: {}", DisplayErrorContext(&e))),
    }
}

/// An error and its sources, `a: b: c`, without repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The SHA-256 in an object's metadata, when well formed.
pub(crate) fn sha_of(metadata: Option<&HashMap<String, String>>) -> Option<String> {
    let v = metadata?.get(SHA256_METADATA)?;
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

/// An SDK timestamp as a chrono one.
pub(crate) fn time_of(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// A length S3 reported (never negative).
pub(crate) fn len_of(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or_default()
}

impl S3Store {
    /// Checks a key, and that with the prefix it fits S3's 1,024 bytes.
    fn check(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let len = self.inner.cfg.object_key(key).len();
        if len > MAX_KEY_LEN {
            return Err(BlobError::bad(format!(
                "{}: with the prefix the object key is {len} bytes, over S3's {MAX_KEY_LEN}",
                self.inner.what(key)
            )));
        }
        Ok(())
    }

    /// Opens the bucket an `s3://` URI names (creating it when missing).
    pub async fn open(u: &BlobUri) -> Result<S3Store> {
        S3Store::open_config(S3Config::from_uri(u)?).await
    }

    /// The same from parsed settings.
    pub async fn open_config(cfg: S3Config) -> Result<S3Store> {
        let describe = cfg.describe();
        let keys = cfg.static_keys();
        let settings = AwsSettings {
            region: cfg.region.as_deref(),
            endpoint: cfg.endpoint.as_deref(),
            access_key: keys.map(|k| k.0),
            secret_key: keys.map(|k| k.1),
            use_fips: cfg.use_fips,
        };
        let aws = crate::aws::load(&settings).await.map_err(|e| {
            BlobError::bad(format!("{describe}: {e}: add ?region=<the bucket's region> to the URI or set AWS_REGION"))
        })?;
        let http_client = if cfg.skips_tls_verification() {
            tracing::warn!(store = %describe, "insecure=true: the server's TLS certificate is not verified");
            Some(insecure_tls::client().map_err(|e| BlobError::internal(format!("{describe}: TLS setup: {e}")))?)
        } else {
            None
        };
        let client = aws.s3(S3ClientOptions { path_style: cfg.path_style(), http_client });
        let inner = Inner { client, cfg, describe, part_size: DEFAULT_PART };
        let store = S3Store { inner: Arc::new(inner) };
        store.ensure_bucket(&aws.region).await?;
        Ok(store)
    }

    /// The settings in use.
    pub fn config(&self) -> &S3Config {
        &self.inner.cfg
    }

    /// The SDK client (tests and benchmarks).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.inner.client
    }

    /// The same store with another first part size (at least 5 MiB).
    pub fn with_part_size(&self, size: usize) -> Result<S3Store> {
        if !(MIN_PART..=MAX_PART).contains(&size) {
            return Err(BlobError::bad(format!(
                "{}: part size {size}: S3 parts are {MIN_PART} to {MAX_PART} bytes",
                self.inner.describe
            )));
        }
        let inner = Inner {
            client: self.inner.client.clone(),
            cfg: self.inner.cfg.clone(),
            describe: self.inner.describe.clone(),
            part_size: size,
        };
        Ok(S3Store { inner: Arc::new(inner) })
    }

    /// Creates the bucket when HeadBucket says it is missing; a bucket we
    /// may not inspect (a write-only policy) is used as it is (as upstream).
    async fn ensure_bucket(&self, region: &str) -> Result<()> {
        let s = &self.inner;
        let bucket = &s.cfg.bucket;
        let err = match s.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(()),
            // HEAD answers carry no error code: a 400 is a name S3 refuses.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 400) => {
                return Err(BlobError::bad(format!(
                    "{}: HeadBucket answered HTTP 400: check the bucket name {bucket:?} (3-63 lowercase letters, \
                     digits, '-' and '.') and the region",
                    s.describe
                )));
            }
            Err(e) => sdk_error(&format!("{}: check the bucket", s.describe), bucket, e),
        };
        match err.kind {
            BlobErrorKind::NotFound => {}
            BlobErrorKind::AccessDenied => {
                tracing::warn!(store = %s.describe, error = %err,
                    "cannot check that the bucket exists; uploads will fail if it does not (fine with write-only access)");
                return Ok(());
            }
            _ => return Err(err),
        }
        let mut create = s.client.create_bucket().bucket(bucket).acl(BucketCannedAcl::Private);
        if region != "us-east-1" {
            let location = CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build();
            create = create.create_bucket_configuration(location);
        }
        match create.send().await {
            Ok(_) => tracing::info!(store = %s.describe, "created the bucket"),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => {
                // Created meanwhile by someone else: theirs to configure.
                return Ok(());
            }
            Err(e) => {
                let e = sdk_error(&format!("{}: create the missing bucket", s.describe), bucket, e);
                return Err(BlobError::new(
                    e.kind,
                    format!(
                        "{}: the bucket {bucket} does not exist and could not be created ({}); create it \
                         (versioning on, private) or allow s3:CreateBucket",
                        s.describe, e.message
                    ),
                ));
            }
        }
        let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        let r = s.client.put_bucket_versioning().bucket(bucket).versioning_configuration(versioning).send().await;
        self.configured(r, "turn on versioning", "enable versioning on it yourself")?;
        if let (Some(sse), key) = s.sse() {
            let mut default = ServerSideEncryptionByDefault::builder().sse_algorithm(sse);
            if let Some(k) = key {
                default = default.kms_master_key_id(k);
            }
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    default
                        .build()
                        .map_err(|e| BlobError::internal(format!("{}: encryption rule: {e}", s.describe)))?,
                )
                .build();
            let conf = ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| BlobError::internal(format!("{}: encryption rule: {e}", s.describe)))?;
            let r =
                s.client.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(conf).send().await;
            self.configured(r, "turn on default encryption", "set aws:kms default encryption on it yourself")?;
        }
        Ok(())
    }

    /// The outcome of configuring a new bucket: a server without the
    /// feature (NotImplemented) is logged, other failures say what to do.
    fn configured<T, E>(
        &self,
        r: std::result::Result<T, SdkError<E, HttpResponse>>,
        what: &str,
        fix: &str,
    ) -> Result<()>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let s = &self.inner;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.code() == Some("NotImplemented")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 501) =>
            {
                tracing::info!(store = %s.describe, "the server cannot {what} on buckets (NotImplemented); going on");
                Ok(())
            }
            Err(e) => {
                let e = sdk_error(&format!("{}: {what} on the new bucket", s.describe), &s.cfg.bucket, e);
                Err(BlobError::new(e.kind, format!("{}; {fix}", e.message)))
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn part_size(&self) -> usize {
        self.inner.part_size
    }

    async fn put(&self, key: &str, options: PutOptions) -> Result<Box<dyn BlobWriter>> {
        self.check(key)?;
        writer::S3Writer::start(self.inner.clone(), key, options).map(|w| Box::new(w) as Box<dyn BlobWriter>)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead> {
        self.check(key)?;
        reader::get(self.inner.clone(), key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.check(key)?;
        let s = &self.inner;
        match s.client.head_object().bucket(&s.cfg.bucket).key(s.cfg.object_key(key)).send().await {
            Ok(out) => Ok(Some(BlobInfo {
                key: key.to_string(),
                size: len_of(out.content_length()),
                sha256: sha_of(out.metadata()),
                etag: out.e_tag().map(str::to_string),
                modified: time_of(out.last_modified()),
            })),
            Err(e) => match s.error("head", key, e) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        check_prefix(prefix)?;
        let s = &self.inner;
        let full_prefix = match (s.cfg.prefix.is_empty(), prefix) {
            (true, p) => p.to_string(),
            (false, p) => format!("{}/{p}", s.cfg.prefix),
        };
        let limit = limit.clamp(1, MAX_LIST);
        let out = s
            .client
            .list_objects_v2()
            .bucket(&s.cfg.bucket)
            .prefix(&full_prefix)
            .set_start_after(after.map(|a| s.cfg.object_key(a)))
            .max_keys(i32::try_from(limit).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| s.error("list", &format!("{prefix}*"), e))?;
        let mut items = Vec::with_capacity(out.contents().len());
        for o in out.contents() {
            let Some(key) = o.key().and_then(|k| s.cfg.store_key(k)) else { continue };
            if key.is_empty() || key.ends_with('/') {
                // A "folder" marker some tools write: no object of ours.
                continue;
            }
            items.push(BlobInfo {
                key: key.to_string(),
                size: len_of(o.size()),
                sha256: None,
                etag: o.e_tag().map(str::to_string),
                modified: time_of(o.last_modified()),
            });
        }
        // The cursor is the last key S3 returned (folder markers included).
        let last = out.contents().last().and_then(|o| o.key()).and_then(|k| s.cfg.store_key(k));
        let next = match out.is_truncated() {
            Some(true) => last.map(str::to_string),
            _ => None,
        };
        Ok(ListPage { items, next })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.check(key)?;
        let s = &self.inner;
        match s.client.delete_object().bucket(&s.cfg.bucket).key(s.cfg.object_key(key)).send().await {
            Ok(_) => Ok(()),
            // S3 answers 204 for a missing key; some servers say NoSuchKey.
            Err(e)
                if e.code() != Some("NoSuchBucket") && e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(())
            }
            Err(e) => Err(s.error("delete", key, e)),
        }
    }
}
