//! The one error type every backend returns.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What went wrong, in terms a caller can act on.
///
/// The kind decides whether retrying can help ([`ErrorKind::is_retryable`]) and
/// lets conformance checks verify that a backend classifies its failures rather
/// than flattening them into one opaque variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store cannot be reached or answered with a server-side failure (5xx, connection refused).
    Unavailable,
    /// The operation did not finish within the configured deadline.
    Timeout,
    /// The store asked the client to slow down (HTTP 429, DynamoDB throughput exceeded).
    Throttled,
    /// Credentials were missing, wrong, or lack permission.
    Auth,
    /// The key is empty, too long, or one this backend cannot represent.
    InvalidKey,
    /// The value exceeds the backend's declared maximum size.
    ValueTooLarge,
    /// An argument other than key or value is out of range, e.g. a zero or too-long ttl.
    InvalidArgument,
    /// The store answered something that does not follow its protocol, or stored data is corrupt.
    Protocol,
    /// Anything that fits no other kind.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order; handy for tables and exhaustive tests.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Throttled,
        ErrorKind::Auth,
        ErrorKind::InvalidKey,
        ErrorKind::ValueTooLarge,
        ErrorKind::InvalidArgument,
        ErrorKind::Protocol,
        ErrorKind::Other,
    ];

    /// Whether repeating the same call later may succeed without changing it.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Throttled
        )
    }

    /// A short lowercase name, stable for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Auth => "auth",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::ValueTooLarge => "value too large",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Other => "other",
        }
    }
}

/// The response header of the cachekit HTTP API that names an error's kind by its
/// [`ErrorKind::wire_name`], beside the body's `kind` field: an answer to `HEAD` has no
/// body, so only the header can tell an invalid key from any other `400` there.
pub const ERROR_KIND_HEADER: &str = "cachekit-error-kind";

impl ErrorKind {
    /// The kind's name on the wire of the cachekit HTTP API: the `kind` field of an error
    /// body (`{"kind": "invalid_key", "error": "..."}`) and the [`ERROR_KIND_HEADER`].
    /// Server and client both use it, so the vocabulary is written once.
    pub fn wire_name(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Auth => "auth",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::ValueTooLarge => "value_too_large",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Other => "other",
        }
    }

    /// The kind a wire name stands for, or `None` for a name this version does not know.
    pub fn from_wire_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.wire_name() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage failure, as returned by every [`Backend`](crate::Backend) method.
///
/// ```
/// use cachekit_core::{BackendError, ErrorKind};
///
/// let err = BackendError::new(ErrorKind::Throttled, "429 from cache service");
/// assert!(err.is_retryable());
/// assert_eq!(err.to_string(), "throttled: 429 from cache service");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BackendError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl BackendError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// Attaches the underlying cause, kept for `Error::source` chains.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Records how long the store asked the caller to wait (e.g. HTTP `Retry-After`).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Shorthand for [`ErrorKind::Timeout`].
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// Shorthand for [`ErrorKind::InvalidKey`].
    pub fn invalid_key(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidKey, message)
    }

    /// Shorthand for [`ErrorKind::ValueTooLarge`].
    pub fn value_too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ValueTooLarge, message)
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorKind::Protocol`].
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable description, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How long the store asked the caller to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether repeating the same call later may succeed; see [`ErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// The result type of every backend operation.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|kind| kind.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::Unavailable,
                ErrorKind::Timeout,
                ErrorKind::Throttled
            ]
        );
    }

    #[test]
    fn source_is_exposed_through_the_error_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = BackendError::unavailable("cannot connect").with_source(io);
        let source = err.source().map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("refused"));
        assert_eq!(err.to_string(), "unavailable: cannot connect");
    }

    #[rstest]
    #[case::unavailable(ErrorKind::Unavailable, "unavailable")]
    #[case::timeout(ErrorKind::Timeout, "timeout")]
    #[case::throttled(ErrorKind::Throttled, "throttled")]
    #[case::auth(ErrorKind::Auth, "auth")]
    #[case::invalid_key(ErrorKind::InvalidKey, "invalid_key")]
    #[case::value_too_large(ErrorKind::ValueTooLarge, "value_too_large")]
    #[case::invalid_argument(ErrorKind::InvalidArgument, "invalid_argument")]
    #[case::protocol(ErrorKind::Protocol, "protocol")]
    #[case::other(ErrorKind::Other, "other")]
    fn wire_names_are_pinned_and_read_back(#[case] kind: ErrorKind, #[case] name: &str) {
        assert_eq!(kind.wire_name(), name);
        assert_eq!(ErrorKind::from_wire_name(name), Some(kind));
    }

    #[rstest]
    #[case::spelled_with_a_space("invalid key")]
    #[case::upper_case("INVALID_KEY")]
    #[case::empty("")]
    fn unknown_wire_names_are_none(#[case] name: &str) {
        assert_eq!(ErrorKind::from_wire_name(name), None);
    }
}
