//! Where the server is, and how long to wait for it.

use std::time::Duration;

use cachekit_core::BackendError;

use crate::protocol::MAX_RAW_KEY_BYTES;

/// Default deadline for opening one TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default deadline of one operation, from waiting for a connection to the last reply byte.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of one health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of connections one backend keeps open at most (busy and idle together).
///
/// Memcached serves each connection in order, so this is also how many operations of one
/// backend run at once; further operations wait for a free connection within their deadline.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// Configuration of a [`MemcachedBackend`](crate::MemcachedBackend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedConfig {
    /// The server, as `host:port` (`127.0.0.1:11211`, `cache.internal:11211`).
    pub addr: String,
    /// Prepended to every key before it is sent, so several applications can share one
    /// server without seeing each other's entries. It counts against memcached's key
    /// limit: [`max_key_bytes`](cachekit_core::Capabilities::max_key_bytes) shrinks by
    /// its length.
    pub key_prefix: String,
    /// Deadline for opening one TCP connection.
    pub connect_timeout: Duration,
    /// Deadline of one operation, including the wait for a free connection.
    pub operation_timeout: Duration,
    /// Deadline of one health check.
    pub health_timeout: Duration,
    /// Connections kept open at most, busy and idle together (at least 1).
    pub max_connections: usize,
}

impl MemcachedConfig {
    /// The server at `addr` (`host:port`) with no key prefix and the default timeouts and
    /// pool size ([`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_OPERATION_TIMEOUT`],
    /// [`DEFAULT_HEALTH_TIMEOUT`], [`DEFAULT_MAX_CONNECTIONS`]).
    pub fn new(addr: impl Into<String>) -> Self {
        MemcachedConfig {
            addr: addr.into(),
            key_prefix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// Sets the key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the connect deadline.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-operation deadline.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the health-check deadline.
    pub fn with_health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// Sets the most connections kept open (at least 1).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The longest key, in UTF-8 bytes, that fits beside the prefix.
    pub fn max_key_bytes(&self) -> usize {
        MAX_RAW_KEY_BYTES.saturating_sub(self.key_prefix.len())
    }

    /// Rejects configurations no operation could work with.
    pub(crate) fn validate(&self) -> Result<(), BackendError> {
        if self.addr.trim().is_empty() {
            return Err(BackendError::invalid_argument(
                "the memcached address is empty; expected host:port",
            ));
        }
        if self.max_key_bytes() == 0 {
            return Err(BackendError::invalid_argument(format!(
                "the key prefix is {} bytes; memcached's key limit of {MAX_RAW_KEY_BYTES} bytes \
                 (250 base64 characters) leaves no room for a key",
                self.key_prefix.len()
            )));
        }
        if self.max_connections == 0 {
            return Err(BackendError::invalid_argument(
                "max_connections must be at least 1",
            ));
        }
        let zero = [
            ("connect_timeout", self.connect_timeout),
            ("operation_timeout", self.operation_timeout),
            ("health_timeout", self.health_timeout),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, timeout)| timeout.is_zero()) {
            return Err(BackendError::invalid_argument(format!(
                "{name} must be longer than zero"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cachekit_core::ErrorKind;
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::no_prefix("", 186)]
    #[case::ascii_prefix("app:", 182)]
    #[case::multibyte_prefix("é:", 183)]
    fn the_prefix_counts_against_the_key_limit(#[case] prefix: &str, #[case] max: usize) {
        assert_eq!(
            MemcachedConfig::new("h:1")
                .with_key_prefix(prefix)
                .max_key_bytes(),
            max
        );
    }

    #[rstest]
    #[case::empty_address(MemcachedConfig::new(" "))]
    #[case::prefix_fills_the_key(MemcachedConfig::new("h:1").with_key_prefix("p".repeat(186)))]
    #[case::zero_connections(MemcachedConfig { max_connections: 0, ..MemcachedConfig::new("h:1") })]
    #[case::zero_timeout(MemcachedConfig::new("h:1").with_operation_timeout(Duration::ZERO))]
    fn unusable_configurations_are_invalid_arguments(#[case] config: MemcachedConfig) {
        let err = config.validate().expect_err("must be rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_prefix_one_byte_short_of_the_limit_leaves_a_one_byte_key() {
        let config = MemcachedConfig::new("h:1").with_key_prefix("p".repeat(185));
        assert!(config.validate().is_ok());
        assert_eq!(config.max_key_bytes(), 1);
    }
}
