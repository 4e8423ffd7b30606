//! Where the server is, how long to wait for it, and how to keep its password out of
//! every message.

use std::fmt;
use std::time::Duration;

use cachekit_core::{BackendError, Result};
use percent_encoding::percent_decode_str;
use url::Url;

/// How long establishing a connection (TCP, TLS, `AUTH`, `SELECT`) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may take by default, from sending to the full answer.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a health check's `PING` may take by default.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest key prefix accepted: a prefix is a namespace, not a payload.
pub const MAX_KEY_PREFIX_BYTES: usize = 1024;

/// How to reach one Redis server (or anything speaking its protocol).
///
/// `Debug` and every error print the URL with its password replaced by `***`.
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) url: String,
    /// Prepended to every key, so several caches can share one database.
    pub key_prefix: String,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one command may take; past it the call fails with `Timeout`.
    pub operation_timeout: Duration,
    /// How long a health check's `PING` may take.
    pub health_timeout: Duration,
    /// PEM root certificates trusted for `rediss://` *instead of* the system's (e.g. a
    /// private CA). Refused with a `redis://` URL, where it would silently do nothing.
    pub root_certificates_pem: Option<Vec<u8>>,
}

impl RedisConfig {
    /// A configuration for `url`: `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://…` for TLS.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            root_certificates_pem: None,
        }
    }

    /// The same settings for another URL (e.g. a proxy in front of the same server).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Prepends `prefix` to every key.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Trusts the PEM root certificates in `pem`, and only them, for `rediss://`.
    pub fn with_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem = Some(pem.into());
        self
    }

    /// The URL with its password replaced by `***`, safe to print.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Whether the URL asks for TLS.
    pub fn uses_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// Removes every trace of the password from `text`, raw or percent-encoded.
    pub(crate) fn redact(&self, text: &str) -> String {
        match Url::parse(&self.url) {
            Ok(url) => redact_password(text, url.password()),
            Err(_) => text.to_owned(),
        }
    }

    /// Checks what can be checked before connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        let url = Url::parse(&self.url).map_err(|err| {
            BackendError::invalid_argument(format!(
                "{} is not a Redis URL ({err}); expected redis://[user[:password]@]host[:port][/db] or rediss://…",
                self.redacted_url()
            ))
        })?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(BackendError::invalid_argument(format!(
                "{} has scheme {:?}; expected redis:// or rediss://",
                self.redacted_url(),
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(BackendError::invalid_argument(format!(
                "{} names no host",
                self.redacted_url()
            )));
        }
        if let Some(pem) = &self.root_certificates_pem {
            if !self.uses_tls() {
                return Err(BackendError::invalid_argument(format!(
                    "root certificates were given for {}, which is not TLS; use rediss://",
                    self.redacted_url()
                )));
            }
            let certificates = String::from_utf8_lossy(pem)
                .matches("-----BEGIN CERTIFICATE-----")
                .count();
            if certificates == 0 {
                return Err(BackendError::invalid_argument(
                    "the root certificates hold no PEM certificate: every TLS handshake would fail",
                ));
            }
        }
        if self.key_prefix.len() > MAX_KEY_PREFIX_BYTES {
            return Err(BackendError::invalid_argument(format!(
                "the key prefix is {} bytes; at most {MAX_KEY_PREFIX_BYTES} are allowed",
                self.key_prefix.len()
            )));
        }
        for (name, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("operation_timeout", self.operation_timeout),
            ("health_timeout", self.health_timeout),
        ] {
            if timeout.is_zero() {
                return Err(BackendError::invalid_argument(format!(
                    "{name} is zero; every call would time out"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("health_timeout", &self.health_timeout)
            .field(
                "root_certificates_pem",
                &self.root_certificates_pem.as_ref().map(Vec::len),
            )
            .finish()
    }
}

/// `scheme://[user[:***]@]host[:port][/db]`, built from the parsed parts only (a password
/// containing `/` can make the rest of the text look like a path); a URL that does not
/// parse is not printed at all (it may be a password pasted in the wrong place).
fn redact_url(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return "<unparseable URL>".to_owned();
    };
    let mut shown = format!("{}://", parsed.scheme());
    match (parsed.username(), parsed.password()) {
        ("", None) => {}
        (user, None) => shown.push_str(&format!("{user}@")),
        (user, Some(_)) => shown.push_str(&format!("{user}:***@")),
    }
    shown.push_str(parsed.host_str().unwrap_or(""));
    if let Some(port) = parsed.port() {
        shown.push_str(&format!(":{port}"));
    }
    let database = parsed.path().trim_start_matches('/');
    if database.chars().all(|c| c.is_ascii_digit()) && !database.is_empty() {
        shown.push_str(&format!("/{database}"));
    }
    shown
}

fn redact_password(text: &str, password: Option<&str>) -> String {
    let Some(encoded) = password.filter(|password| !password.is_empty()) else {
        return text.to_owned();
    };
    let decoded = percent_decode_str(encoded).decode_utf8_lossy();
    let mut redacted = text.replace(encoded, "***");
    if !decoded.is_empty() {
        redacted = redacted.replace(decoded.as_ref(), "***");
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachekit_core::ErrorKind;
    use rstest::rstest;

    #[rstest]
    #[case::password_only("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0")]
    #[case::user_and_password("redis://alice:hunter2@host/3", "redis://alice:***@host/3")]
    #[case::no_password("redis://host:6379", "redis://host:6379")]
    #[case::tls(
        "rediss://bob:pw@cache.example:6380",
        "rediss://bob:***@cache.example:6380"
    )]
    #[case::unparseable("hunter2", "<unparseable URL>")]
    #[case::slash_in_the_password("redis://u:123/hunter2@h", "redis://u:123")]
    #[case::path_that_is_not_a_database("redis://h/x", "redis://h")]
    fn urls_are_printed_without_their_password(#[case] url: &str, #[case] printed: &str) {
        assert_eq!(redact_url(url), printed);
        assert!(!format!("{:?}", RedisConfig::new(url)).contains("hunter2"));
    }

    #[rstest]
    #[case::raw(
        "redis://:s3cr%40t@host",
        "auth failed for s3cr@t",
        "auth failed for ***"
    )]
    #[case::encoded("redis://:s3cr%40t@host", "url was s3cr%40t", "url was ***")]
    #[case::absent("redis://host", "nothing secret", "nothing secret")]
    fn messages_lose_the_password_raw_or_encoded(
        #[case] url: &str,
        #[case] message: &str,
        #[case] redacted: &str,
    ) {
        assert_eq!(RedisConfig::new(url).redact(message), redacted);
    }

    #[rstest]
    #[case::not_a_url("localhost:6379")]
    #[case::wrong_scheme("http://localhost:6379")]
    #[case::no_host("redis://")]
    fn bad_urls_are_invalid_arguments(#[case] url: &str) {
        let err = RedisConfig::new(url).validate().expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[rstest]
    #[case::certificates_without_tls("redis://127.0.0.1", b"-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n".as_slice())]
    #[case::no_certificate_in_the_file("rediss://127.0.0.1", b"not a certificate".as_slice())]
    fn root_certificates_that_would_do_nothing_are_refused(#[case] url: &str, #[case] pem: &[u8]) {
        let config = RedisConfig::new(url).with_root_certificates_pem(pem);
        let err = config.validate().expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let mut config = RedisConfig::new("redis://127.0.0.1");
        config.operation_timeout = Duration::ZERO;
        assert_eq!(
            config.validate().expect_err("refused").kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn an_oversized_prefix_is_refused() {
        let config = RedisConfig::new("redis://127.0.0.1")
            .with_key_prefix("p".repeat(MAX_KEY_PREFIX_BYTES + 1));
        assert_eq!(
            config.validate().expect_err("refused").kind(),
            ErrorKind::InvalidArgument
        );
    }
}
