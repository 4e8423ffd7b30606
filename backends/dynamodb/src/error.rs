//! SDK errors -> [`BackendError`] kinds a caller can act on.

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cachekit_core::{BackendError, ErrorKind};

/// Service error codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
];

/// Service error codes that mean the caller's identity was refused.
const AUTH_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "InvalidClientTokenId",
    "AccessDeniedException",
    "ExpiredTokenException",
    "ExpiredToken",
];

/// Service error codes that mean the service is having trouble, not the request.
const UNAVAILABLE_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Maps one failed SDK call to a [`BackendError`], keeping the SDK error as its source.
pub(crate) fn classify<E>(
    operation: &str,
    table: &str,
    err: SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let kind = kind_of(&err);
    let detail = match &err {
        SdkError::ServiceError(service) => format!(
            "{} (HTTP {}): {}",
            service.err().code().unwrap_or("unknown error"),
            service.raw().status().as_u16(),
            service.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    let message = match kind {
        ErrorKind::Other if is_missing_table(&err) => format!(
            "{operation} on table `{table}`: the table does not exist (create it with \
             DynamoDbBackend::ensure_table): {detail}"
        ),
        _ => format!("{operation} on table `{table}`: {detail}"),
    };
    BackendError::new(kind, message).with_source(err)
}

fn kind_of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorKind {
    match err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_io() => ErrorKind::Unavailable,
        SdkError::DispatchFailure(failure) if failure.is_user() => ErrorKind::InvalidArgument,
        SdkError::DispatchFailure(_) => ErrorKind::Unavailable,
        SdkError::ResponseError(_) => ErrorKind::Protocol,
        SdkError::ConstructionFailure(_) => ErrorKind::InvalidArgument,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            service_kind(service.err().code(), service.err().message(), status)
        }
        _ => ErrorKind::Other,
    }
}

/// The kind of a service error, from its code, its message and the HTTP status.
pub(crate) fn service_kind(code: Option<&str>, message: Option<&str>, status: u16) -> ErrorKind {
    let code = code.unwrap_or_default();
    let message = message.unwrap_or_default().to_ascii_lowercase();
    if THROTTLING_CODES.contains(&code) || status == 429 {
        ErrorKind::Throttled
    } else if AUTH_CODES.contains(&code) || status == 401 || status == 403 {
        ErrorKind::Auth
    } else if UNAVAILABLE_CODES.contains(&code) || status >= 500 {
        ErrorKind::Unavailable
    } else if code == "ValidationException" || code == "ItemCollectionSizeLimitExceededException" {
        if message.contains("hashkey") || message.contains("key attribute") {
            ErrorKind::InvalidKey
        } else if message.contains("size") && message.contains("exceed") {
            ErrorKind::ValueTooLarge
        } else {
            ErrorKind::InvalidArgument
        }
    } else {
        ErrorKind::Other
    }
}

fn is_missing_table<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ResourceNotFoundException"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_actionable_kinds() {
        let cases = [
            (
                "ProvisionedThroughputExceededException",
                "",
                400,
                ErrorKind::Throttled,
            ),
            ("ThrottlingException", "", 400, ErrorKind::Throttled),
            ("RequestLimitExceeded", "", 400, ErrorKind::Throttled),
            ("UnrecognizedClientException", "", 400, ErrorKind::Auth),
            ("AccessDeniedException", "", 400, ErrorKind::Auth),
            ("ExpiredTokenException", "", 400, ErrorKind::Auth),
            ("InternalServerError", "", 500, ErrorKind::Unavailable),
            ("Whatever", "", 503, ErrorKind::Unavailable),
            (
                "ValidationException",
                "Item size has exceeded the maximum allowed size",
                400,
                ErrorKind::ValueTooLarge,
            ),
            (
                "ValidationException",
                "One or more parameter values were invalid: Size of hashkey has exceeded the \
                 maximum size limit of2048 bytes",
                400,
                ErrorKind::InvalidKey,
            ),
            (
                "ValidationException",
                "One or more parameter values are not valid. The AttributeValue for a key \
                 attribute cannot contain an empty string value. Key: key",
                400,
                ErrorKind::InvalidKey,
            ),
            (
                "ValidationException",
                "ExpressionAttributeNames can only be specified when using expressions",
                400,
                ErrorKind::InvalidArgument,
            ),
            ("ResourceNotFoundException", "", 400, ErrorKind::Other),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(
                service_kind(Some(code), Some(message), status),
                expected,
                "{code}: {message}"
            );
        }
        assert!(ErrorKind::Throttled.is_retryable());
        assert!(!ErrorKind::Auth.is_retryable());
    }
}
