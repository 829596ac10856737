//! Errors in two levels: [`DynamoError`] says exactly what went wrong with
//! this store (its messages name the table, region and endpoint), and maps
//! into the crate's [`Error`] kinds that callers branch on. SDK errors are
//! classified here, once: conditional-check failures become CompareFailed
//! (each operation turns that into AlreadyExists, NotFound or a revision
//! error as it requires), throttling, 5xx and network failures become
//! ConnectionProblem (the SDK has already retried them with backoff), a
//! missing table NotFound, refused credentials AccessDenied.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::backend::{Error, ErrorKind};

/// What went wrong, with the exact message the user sees.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// The server could not be reached (after the SDK's retries).
    #[error("{store}: cannot reach DynamoDB: {cause}; check endpoint, region and network")]
    Unreachable { store: String, cause: String },
    /// Credentials are missing or refused.
    #[error(
        "{store}: AWS credentials were refused or are missing ({cause}); set access_key/secret_key in the storage block or configure the AWS credential chain (environment, profile, instance role)"
    )]
    Credentials { store: String, cause: String },
    /// The table does not exist.
    #[error("{store}: the table does not exist{hint}")]
    NoTable { store: String, hint: &'static str },
    /// The table exists with a key schema that is not ours.
    #[error(
        "{store}: the table's key schema is {found}, not HashKey (S, partition key) + FullPath (S, sort key) as Teleport's cluster state needs{hint}"
    )]
    ForeignSchema { store: String, found: String, hint: &'static str },
    /// The table has no stream, or one without item images.
    #[error("{store}: {what}; watchers need DynamoDB Streams with view type NEW_IMAGE (a service enables it on start)")]
    NoStream { store: String, what: String },
    /// The service throttled or failed (after the SDK's retries).
    #[error("{store}: {op}: DynamoDB is busy or failing ({code}: {message}); retry later")]
    Busy { store: String, op: &'static str, code: String, message: String },
    /// DynamoDB refused the request as invalid.
    #[error("{store}: {op}: DynamoDB refused the request: {message}")]
    Invalid { store: String, op: &'static str, message: String, size: bool },
    /// Anything else the service said.
    #[error("{store}: {op}: {code}: {message}")]
    Service { store: String, op: &'static str, code: String, message: String },
    /// A condition expression did not hold.
    #[error("{op}: the condition did not hold")]
    ConditionFailed { op: &'static str },
    /// A request kept being throttled or conflicting.
    #[error("{store}: {op}: {what}")]
    GaveUp { store: String, op: &'static str, what: String },
}

impl From<DynamoError> for Error {
    fn from(e: DynamoError) -> Error {
        let kind = match &e {
            DynamoError::Unreachable { .. } | DynamoError::Busy { .. } | DynamoError::GaveUp { .. } => {
                ErrorKind::ConnectionProblem
            }
            DynamoError::Credentials { .. } => ErrorKind::AccessDenied,
            DynamoError::NoTable { .. } => ErrorKind::NotFound,
            DynamoError::ForeignSchema { .. } | DynamoError::NoStream { .. } => ErrorKind::BadParameter,
            DynamoError::Invalid { size: true, .. } => ErrorKind::LimitExceeded,
            DynamoError::Invalid { .. } => ErrorKind::BadParameter,
            DynamoError::Service { .. } => ErrorKind::Internal,
            DynamoError::ConditionFailed { .. } => ErrorKind::CompareFailed,
        };
        Error::new(kind, e.to_string())
    }
}

/// Error codes that mean "busy or failing, retry later".
const BUSY_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Error codes that mean "who you are was not accepted".
const CREDENTIAL_CODES: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "IncompleteSignature",
];

/// Classifies an SDK error from operation `op` on `store`.
pub fn classify<E, R>(err: SdkError<E, R>, store: &str, op: &'static str) -> DynamoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let store = store.to_string();
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("UnknownError").to_string();
            let message = e.message().unwrap_or("").to_string();
            match code.as_str() {
                "ConditionalCheckFailedException" => DynamoError::ConditionFailed { op },
                "ResourceNotFoundException" => DynamoError::NoTable { store, hint: "" },
                c if BUSY_CODES.contains(&c) => DynamoError::Busy { store, op, code, message },
                c if CREDENTIAL_CODES.contains(&c) => {
                    DynamoError::Credentials { store, cause: format!("{code}: {message}") }
                }
                "ValidationException" | "SerializationException" => {
                    let lower = message.to_ascii_lowercase();
                    let size = lower.contains("size") || lower.contains("too large") || lower.contains("length");
                    DynamoError::Invalid { store, op, message, size }
                }
                "ItemCollectionSizeLimitExceededException" => DynamoError::Invalid { store, op, message, size: true },
                _ => DynamoError::Service { store, op, code, message },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let cause = short_cause(&err);
            if cause.to_ascii_lowercase().contains("credential") {
                DynamoError::Credentials { store, cause }
            } else {
                DynamoError::Unreachable { store, cause }
            }
        }
        _ => {
            let cause = short_cause(&err);
            if cause.to_ascii_lowercase().contains("credential") {
                DynamoError::Credentials { store, cause }
            } else {
                DynamoError::Service { store, op, code: "ClientError".into(), message: cause }
            }
        }
    }
}

/// The error chain in one line, without the SDK's generic top level.
fn short_cause<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let full = DisplayErrorContext(err).to_string();
    full.strip_prefix("dispatch failure: ").unwrap_or(&full).to_string()
}

/// Shorthand: classify and convert to the crate error.
pub fn sdk<E, R>(err: SdkError<E, R>, store: &str, op: &'static str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    classify(err, store, op).into()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    use super::*;

    const STORE: &str = "dynamodb table t (region r, endpoint e)";

    fn service(code: &str, message: &str) -> Error {
        let err = GetItemError::generic(ErrorMetadata::builder().code(code).message(message).build());
        sdk(SdkError::<GetItemError, ()>::service_error(err, ()), STORE, "get item")
    }

    #[test]
    fn service_codes_map_to_kinds() {
        assert_eq!(service("ConditionalCheckFailedException", "no").kind(), ErrorKind::CompareFailed);
        assert_eq!(service("ResourceNotFoundException", "no table").kind(), ErrorKind::NotFound);
        for busy in ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"] {
            let e = service(busy, "slow down");
            assert_eq!(e.kind(), ErrorKind::ConnectionProblem, "{busy}");
            assert!(e.is_temporary());
            assert!(e.to_string().starts_with(STORE), "{e}");
        }
        for denied in ["AccessDeniedException", "UnrecognizedClientException"] {
            assert_eq!(service(denied, "who are you").kind(), ErrorKind::AccessDenied, "{denied}");
        }
        let e = service("ValidationException", "Item size has exceeded the maximum allowed size");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(service("ValidationException", "Invalid expression").kind(), ErrorKind::BadParameter);
        assert_eq!(service("SomethingNew", "?").kind(), ErrorKind::Internal);
    }

    #[test]
    fn network_failures_are_connection_problems_in_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let err = SdkError::<GetItemError, ()>::dispatch_failure(ConnectorError::io(Box::new(io)));
        let e = sdk(err, STORE, "get item");
        assert_eq!(e.kind(), ErrorKind::ConnectionProblem);
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{STORE}: cannot reach DynamoDB")), "{msg}");
        assert_eq!(msg.lines().count(), 1);
        let creds = std::io::Error::other("failed to load credentials: no providers in chain");
        let err = SdkError::<GetItemError, ()>::dispatch_failure(ConnectorError::other(Box::new(creds), None));
        assert_eq!(sdk(err, STORE, "get item").kind(), ErrorKind::AccessDenied);
    }
}
