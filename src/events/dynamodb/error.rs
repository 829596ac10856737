//! SDK errors of the DynamoDB audit store as [`EventsError`]s that name the
//! table, region and endpoint: a missing table is NotFound, throttling, 5xx
//! and network failures (already retried by the SDK with backoff) are
//! ConnectionProblem, refused requests BadParameter. Conditional-check
//! failures are told apart by [`is_condition_failed`] before mapping.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::events::{EventsError, EventsErrorKind};

const BUSY_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// Whether the error is a failed condition expression.
pub fn is_condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Maps an SDK error from operation `op` on `store`.
pub fn sdk<E, R>(err: SdkError<E, R>, store: &str, op: &str) -> EventsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = &err {
        let e = se.err();
        let code = e.code().unwrap_or("UnknownError");
        let message = e.message().unwrap_or("");
        let (kind, hint) = match code {
            "ResourceNotFoundException" => (EventsErrorKind::NotFound, "; check the table name and region"),
            c if BUSY_CODES.contains(&c) => (EventsErrorKind::ConnectionProblem, "; DynamoDB is busy, retry later"),
            "ValidationException" | "SerializationException" => (EventsErrorKind::BadParameter, ""),
            "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => (
                EventsErrorKind::BadParameter,
                "; check access_key/secret_key or the AWS credential chain (environment, profile, instance role)",
            ),
            _ => (EventsErrorKind::Internal, ""),
        };
        return EventsError::new(kind, format!("{store}: {op}: {code}: {message}{hint}"));
    }
    let full = DisplayErrorContext(&err).to_string();
    let cause = full.strip_prefix("dispatch failure: ").unwrap_or(&full);
    EventsError::new(
        EventsErrorKind::ConnectionProblem,
        format!("{store}: {op}: cannot reach DynamoDB: {cause}; check endpoint, region, credentials and network"),
    )
}
