//! AWS SDK plumbing shared by the DynamoDB stores (cluster state in
//! `backend::dynamodb`, audit events in `events::dynamodb`) and the S3 object
//! store (`blob::s3`): one place that turns region / endpoint / static keys /
//! FIPS into an SDK configuration with the project's retry and timeout policy. A leaf: it touches only the
//! AWS SDK crates, never a store, the CLI or the runtime. Credentials given
//! here are never logged.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// Region used with a custom `endpoint` when none is configured anywhere
/// (local emulators accept any).
pub const EMULATOR_REGION: &str = "us-east-1";
/// Attempts per request, the first included; throttling, 5xx, timeouts and
/// connection failures are retried by the SDK with exponential backoff.
pub const MAX_ATTEMPTS: u32 = 5;
/// First retry backoff (doubles up to [`MAX_BACKOFF`], with jitter).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest retry backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one attempt of one request.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to talk to AWS. Empty strings count as unset.
#[derive(Clone, Default)]
pub struct AwsSettings<'a> {
    /// AWS region; else the default chain (AWS_REGION, profile).
    pub region: Option<&'a str>,
    /// Custom endpoint (an emulator); else AWS's own.
    pub endpoint: Option<&'a str>,
    /// Static access key; with `secret_key`, replaces the default chain.
    pub access_key: Option<&'a str>,
    /// Static secret key.
    pub secret_key: Option<&'a str>,
    /// Use the FIPS endpoints.
    pub use_fips: bool,
}

impl std::fmt::Debug for AwsSettings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("static_credentials", &self.access_key.is_some())
            .field("use_fips", &self.use_fips)
            .finish()
    }
}

/// The SDK could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// No region anywhere and no endpoint to imply one.
    #[error("no AWS region")]
    NoRegion,
}

/// An SDK configuration and the region it resolved to.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// For `aws_sdk_*::config::Builder::from`.
    pub sdk: SdkConfig,
    /// The region in use.
    pub region: String,
}

/// How an S3 client reaches buckets.
#[cfg(feature = "s3")]
#[derive(Debug, Clone, Default)]
pub struct S3ClientOptions {
    /// Path-style requests (`{endpoint}/{bucket}/{key}`), as S3-compatible
    /// servers and emulators want; else virtual-hosted style
    /// (`{bucket}.{endpoint}/{key}`), AWS's default.
    pub path_style: bool,
    /// An HTTP client replacing the SDK's default one (S3 `insecure=true`:
    /// one that does not verify the server's certificate).
    pub http_client: Option<aws_smithy_runtime_api::client::http::SharedHttpClient>,
}

impl AwsConfig {
    /// A DynamoDB client with this configuration.
    #[cfg(feature = "dynamodb")]
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk).region(Region::new(self.region.clone())).build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// An S3 client with this configuration. Checksums are computed only
    /// where S3 requires them (`WhenRequired`): the S3 store sends the
    /// Content-MD5 of every part itself, which every S3-compatible server
    /// understands, where the SDK's default CRC32 trailers are refused by
    /// some of them.
    #[cfg(feature = "s3")]
    pub fn s3(&self, options: S3ClientOptions) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::RequestChecksumCalculation;
        let mut conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .region(Region::new(self.region.clone()))
            .force_path_style(options.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(http) = options.http_client {
            conf = conf.http_client(http);
        }
        aws_sdk_s3::Client::from_conf(conf.build())
    }
}

fn set(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.is_empty())
}

/// Loads the SDK configuration: the default chain, overridden by what
/// `s` sets, with the project's retry and timeout policy.
pub async fn load(s: &AwsSettings<'_>) -> Result<AwsConfig, AwsSetupError> {
    let retry = RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF);
    let timeouts =
        TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(ATTEMPT_TIMEOUT).build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry).timeout_config(timeouts);
    if let Some(r) = set(s.region) {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(ep) = set(s.endpoint) {
        loader = loader.endpoint_url(ep);
    }
    if s.use_fips {
        loader = loader.use_fips(true);
    }
    if let (Some(a), Some(k)) = (set(s.access_key), set(s.secret_key)) {
        loader = loader.credentials_provider(Credentials::new(a, k, None, None, "teleport storage config"));
    }
    let sdk = loader.load().await;
    let region = match (sdk.region(), set(s.endpoint)) {
        (Some(r), _) => r.to_string(),
        (None, Some(_)) => EMULATOR_REGION.to_string(),
        (None, None) => return Err(AwsSetupError::NoRegion),
    };
    Ok(AwsConfig { sdk, region })
}
