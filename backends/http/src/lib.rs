//! cachekit backend for any service that speaks the cachekit HTTP API.
//!
//! `GET/PUT/DELETE/HEAD {base}/cache/{key}?ttl=N` and `GET {base}/health`, as served by
//! `cachekit-server`. The key travels as one percent-encoded path segment in which every
//! byte but the unreserved `A-Z a-z 0-9 - . _ ~` is escaped, so `a/b`, `a%2Fb`, `?`, `#`,
//! spaces and unicode are all distinct keys that never change the path. The keys `.` and
//! `..` cannot travel as a segment (URL parsers collapse dot segments, even encoded ones)
//! and are rejected with `InvalidKey` before anything is sent.
//!
//! ```no_run
//! use std::time::Duration;
//! use cachekit_backend_http::{HttpBackend, HttpConfig};
//! use cachekit_core::{Backend, Bytes};
//!
//! # async fn demo() -> Result<(), cachekit_core::BackendError> {
//! let cache = HttpBackend::new(HttpConfig::new("http://127.0.0.1:8080").with_token("s3cret"))?;
//! cache.set("user:1", Bytes::from_static(b"alice"), Some(Duration::from_secs(60))).await?;
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, ErrorKind, HealthReport, Result,
    TtlSupport,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

/// Everything but RFC 3986 unreserved characters is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A bearer token; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Retries of transient failures: bounded count, capped and jittered exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub base_backoff: Duration,
    /// Longest computed backoff.
    pub max_backoff: Duration,
    /// Longest `Retry-After` that is waited for; a longer one is returned to the caller
    /// at once, as `Throttled` with its `retry_after`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
        }
    }
}

/// Configuration of an [`HttpBackend`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base URL; requests go to `{base_url}/cache/{key}` and `{base_url}/health`.
    pub base_url: String,
    /// Deadline of each attempt, connect to last body byte.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<BearerToken>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Largest response body accepted; a longer one is a `Protocol` error, not truncated.
    pub max_response_bytes: usize,
    /// Longest key the service accepts, in bytes.
    pub max_key_bytes: usize,
    /// Largest value the service accepts, in bytes.
    pub max_value_bytes: usize,
}

impl HttpConfig {
    /// Defaults matching `cachekit-server`: 5 s timeout, 2 retries, 1 KiB keys, 8 MiB values.
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into(),
            timeout: Duration::from_secs(5),
            token: None,
            retry: RetryPolicy::default(),
            max_response_bytes: 8 * 1024 * 1024,
            max_key_bytes: 1024,
            max_value_bytes: 8 * 1024 * 1024,
        }
    }

    /// Sets the bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken(token.into()));
        self
    }
}

/// A [`Backend`] that talks to a cachekit HTTP service through one pooled client.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    cache_base: String,
    health_url: Url,
    auth: Option<HeaderValue>,
    config: HttpConfig,
    capabilities: Capabilities,
}

/// What an operation may be retried on; DELETE's answer is not idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// Repeating it cannot change what the caller is told.
    Full,
    /// Only retried where the server certainly did not perform it.
    ResultSensitive,
}

impl HttpBackend {
    /// Validates the configuration and builds the client.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let trimmed = config.base_url.trim_end_matches('/');
        let base = Url::parse(trimmed).map_err(|err| {
            BackendError::invalid_argument(format!("invalid base URL {trimmed:?}: {err}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(BackendError::invalid_argument(format!(
                "base URL {trimmed:?} must be an http(s) URL"
            )));
        }
        let health_url = Url::parse(&format!("{trimmed}/health"))
            .map_err(|err| BackendError::invalid_argument(format!("invalid health URL: {err}")))?;
        let auth = match &config.token {
            Some(BearerToken(token)) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        BackendError::invalid_argument(
                            "the token contains characters not allowed in a header",
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| {
                BackendError::new(
                    ErrorKind::Other,
                    format!("cannot build the HTTP client: {err}"),
                )
                .with_source(err)
            })?;
        let capabilities = Capabilities::new("http")
            .with_ttl(TtlSupport::SECONDS)
            .with_max_key_bytes(config.max_key_bytes)
            .with_max_value_bytes(config.max_value_bytes)
            .with_rejected_keys([".", ".."])
            .with_shared_across_instances(true);
        Ok(HttpBackend {
            client,
            cache_base: format!("{trimmed}/cache/"),
            health_url,
            auth,
            config,
            capabilities,
        })
    }

    /// The URL of one key: `{base}/cache/{percent-encoded key}`.
    pub fn key_url(&self, key: &str) -> Result<Url> {
        self.capabilities.check_key(key)?;
        let url = format!("{}{}", self.cache_base, utf8_percent_encode(key, SEGMENT));
        Url::parse(&url).map_err(|err| {
            BackendError::invalid_key(format!("key {key:?} cannot form a URL: {err}"))
        })
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.client.request(method, url);
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
            None => builder,
        }
    }

    /// Sends with retries and returns the final response or error.
    async fn send(
        &self,
        what: &str,
        idempotence: Idempotence,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let policy = self.config.retry;
        let mut attempt = 0;
        loop {
            let outcome = build().send().await;
            let retry_after = match &outcome {
                Ok(response) if retryable_status(response.status(), idempotence) => {
                    Some(parse_retry_after(response))
                }
                Err(err) if retryable_error(err, idempotence) => Some(None),
                _ => None,
            };
            let Some(server_wait) = retry_after else {
                return outcome.map_err(|err| classify(what, err));
            };
            if attempt >= policy.max_retries
                || server_wait.is_some_and(|wait| wait > policy.max_retry_after)
            {
                return outcome.map_err(|err| classify(what, err));
            }
            let wait = server_wait.unwrap_or_else(|| jittered_backoff(&policy, attempt));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads the body up to the configured cap; longer or cut-short bodies are errors.
    async fn read_body(&self, what: &str, mut response: Response) -> Result<Bytes> {
        let cap = self.config.max_response_bytes;
        let declared = response.content_length();
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(BackendError::protocol(format!(
                "{what}: the response declares {} bytes, over the cap of {cap}",
                declared.unwrap_or_default()
            )));
        }
        let mut body = Vec::with_capacity(declared.map_or(0, |len| len as usize));
        while let Some(chunk) = response.chunk().await.map_err(|err| classify(what, err))? {
            if body.len() + chunk.len() > cap {
                return Err(BackendError::protocol(format!(
                    "{what}: the response body exceeds the cap of {cap} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if declared.is_some_and(|len| len != body.len() as u64) {
            return Err(BackendError::protocol(format!(
                "{what}: content-length said {} bytes, the body had {}",
                declared.unwrap_or_default(),
                body.len()
            )));
        }
        Ok(Bytes::from(body))
    }

    async fn status_error(&self, what: &str, response: Response) -> BackendError {
        let status = response.status();
        let retry_after = parse_retry_after(&response);
        // Only a short prefix of an error body is kept for the message.
        let body = response.bytes().await.unwrap_or_default();
        let (kind_hint, message) = error_body(&body);
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::ValueTooLarge,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::Throttled,
            StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
            StatusCode::BAD_REQUEST => match kind_hint.as_deref() {
                Some("invalid_key") => ErrorKind::InvalidKey,
                Some("value_too_large") => ErrorKind::ValueTooLarge,
                _ => ErrorKind::InvalidArgument,
            },
            status if status.is_server_error() => ErrorKind::Unavailable,
            _ => ErrorKind::Protocol,
        };
        let error = BackendError::new(kind, format!("{what}: server answered {status}{message}"));
        match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }
}

#[async_trait]
impl Backend for HttpBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let url = self.key_url(key)?;
        let what = "GET";
        let response = self
            .send(what, Idempotence::Full, || {
                self.request(Method::GET, url.clone())
            })
            .await?;
        match response.status() {
            StatusCode::OK => self.read_body(what, response).await.map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(what, response).await),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut url = self.key_url(key)?;
        self.capabilities.check_value(&value)?;
        if let Some(ttl) = self.capabilities.check_ttl(ttl)? {
            url.query_pairs_mut()
                .append_pair("ttl", &ttl.as_secs().to_string());
        }
        let what = "PUT";
        let response = self
            .send(what, Idempotence::Full, || {
                self.request(Method::PUT, url.clone()).body(value.clone())
            })
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(self.status_error(what, response).await),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let url = self.key_url(key)?;
        let what = "DELETE";
        let response = self
            .send(what, Idempotence::ResultSensitive, || {
                self.request(Method::DELETE, url.clone())
            })
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(what, response).await),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let url = self.key_url(key)?;
        let what = "HEAD";
        let response = self
            .send(what, Idempotence::Full, || {
                self.request(Method::HEAD, url.clone())
            })
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(what, response).await),
        }
    }

    async fn health_check(&self) -> HealthReport {
        HealthReport::probe("http", self.config.timeout, async {
            let response = self
                .client
                .get(self.health_url.clone())
                .send()
                .await
                .map_err(|err| classify("GET /health", err))?;
            let status = response.status();
            let body = self.read_body("GET /health", response).await?;
            let mut details = health_details(&body);
            details.insert("status".to_owned(), status.as_u16().to_string());
            details.insert("url".to_owned(), self.health_url.to_string());
            let says_unhealthy = details.get("healthy").is_some_and(|h| h == "false");
            if status.is_success() && !says_unhealthy {
                Ok(details)
            } else {
                Err(BackendError::unavailable(format!(
                    "health endpoint answered {status}: {details:?}"
                )))
            }
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }
}

fn retryable_status(status: StatusCode, idempotence: Idempotence) -> bool {
    match idempotence {
        Idempotence::Full => matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504),
        // 429 and 503 mean the request was refused, so the delete did not happen.
        Idempotence::ResultSensitive => matches!(status.as_u16(), 429 | 503),
    }
}

fn retryable_error(err: &reqwest::Error, idempotence: Idempotence) -> bool {
    // A failed connect never reached the server; anything later may have.
    err.is_connect() || (idempotence == Idempotence::Full && err.is_timeout())
}

fn parse_retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn jittered_backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .base_backoff
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(policy.max_backoff);
    // Full jitter: spreads retries of many clients that failed together.
    ceiling.mul_f64(rand::random::<f64>())
}

/// Maps a transport error to the kind a caller can act on.
fn classify(what: &str, err: reqwest::Error) -> BackendError {
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_connect() {
        ErrorKind::Unavailable
    } else if err.is_body() || err.is_decode() || is_parse_error(&err) {
        ErrorKind::Protocol
    } else {
        // Connection reset or closed mid-request: the service went away.
        ErrorKind::Unavailable
    };
    let mut message = format!("{what}: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    BackendError::new(kind, message).with_source(err)
}

fn is_parse_error(err: &reqwest::Error) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            return hyper_err.is_parse()
                || hyper_err.is_parse_status()
                || hyper_err.is_incomplete_message();
        }
        source = cause.source();
    }
    false
}

/// The `kind` and a short message from a JSON error body, if it is one.
fn error_body(body: &[u8]) -> (Option<String>, String) {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let message = field("error").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        text.chars().filter(|c| !c.is_control()).collect()
    });
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    (field("kind"), message)
}

fn health_details(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut details = std::collections::BTreeMap::new();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        for (name, value) in fields {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            details.insert(name, text);
        }
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> HttpBackend {
        HttpBackend::new(HttpConfig::new("http://127.0.0.1:9/prefix/")).expect("valid config")
    }

    #[test]
    fn keys_become_one_escaped_segment() {
        let backend = backend();
        let url = |key| {
            backend
                .key_url(key)
                .map(|u| u.to_string())
                .expect("valid key")
        };
        assert_eq!(url("a/b"), "http://127.0.0.1:9/prefix/cache/a%2Fb");
        assert_eq!(url("a%2Fb"), "http://127.0.0.1:9/prefix/cache/a%252Fb");
        assert_eq!(url("?#"), "http://127.0.0.1:9/prefix/cache/%3F%23");
        assert_eq!(url("../x"), "http://127.0.0.1:9/prefix/cache/..%2Fx");
        assert_eq!(url("é x"), "http://127.0.0.1:9/prefix/cache/%C3%A9%20x");
    }

    #[test]
    fn dot_segments_and_empty_keys_are_rejected_before_sending() {
        let backend = backend();
        for key in [".", "..", ""] {
            let kind = backend.key_url(key).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::InvalidKey), "{key:?}");
        }
    }

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let config = HttpConfig::new("http://x").with_token("hunter2");
        let backend = HttpBackend::new(config.clone()).expect("valid config");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{backend:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        for attempt in 0..10 {
            assert!(jittered_backoff(&policy, attempt) <= Duration::from_millis(300));
        }
    }

    #[test]
    fn error_bodies_yield_kind_and_message_even_when_garbage() {
        let (kind, message) = error_body(br#"{"kind":"invalid_key","error":"too long"}"#);
        assert_eq!(kind.as_deref(), Some("invalid_key"));
        assert_eq!(message, ": too long");
        let (kind, message) = error_body(&[0xff, 0x00, b'\n', b'x']);
        assert_eq!(kind, None);
        assert_eq!(message, ": \u{fffd}x");
    }
}
