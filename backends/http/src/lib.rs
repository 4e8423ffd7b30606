//! cachekit backend for any service that speaks the cachekit HTTP API.
//!
//! `GET/PUT/DELETE/HEAD {base}/cache/{key}?ttl=N` and `GET {base}/health`, as served by
//! `cachekit-server`. The key travels as one percent-encoded path segment in which every
//! byte but the unreserved `A-Z a-z 0-9 - . _ ~` is escaped, so `a/b`, `a%2Fb`, `?`, `#`,
//! spaces and unicode are all distinct keys that never change the path. The keys `.` and
//! `..` cannot travel as a segment (URL parsers collapse dot segments, even encoded ones)
//! and are rejected with `InvalidKey` before anything is sent.
//!
//! Nothing the server sends is trusted. Success bodies are capped by
//! [`HttpConfig::max_response_bytes`]; error bodies are read up to
//! [`HttpConfig::max_error_body_bytes`] within [`ERROR_BODY_READ_TIMEOUT`] and classified by
//! their status alone; server text reaches errors and health details escaped and capped
//! ([`MAX_SERVER_TEXT_CHARS`], ending in [`ELISION_MARKER`] where cut); `Retry-After` is
//! clamped to [`MAX_RETRY_AFTER`]; health answers are read up to
//! [`HttpConfig::max_health_body_bytes`], parsed at their top level only, and keep at most
//! [`HttpConfig::max_health_details`] fields (the number left out is reported as
//! [`FIELDS_ELIDED_DETAIL`]). The bearer token, when set, is sent with every
//! request, `/health` included. A base URL with user-info, a query or
//! a fragment is refused by [`HttpBackend::new`], and every `PUT` carries its
//! `Content-Length`, `0` for an empty value.
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

/// Re-exported from `cachekit-core`: the detail that counts the health fields left out.
pub use cachekit_core::FIELDS_ELIDED_DETAIL;
use cachekit_core::{
    async_trait, sanitize_server_text, sanitize_server_text_part, Backend, BackendError, Bytes,
    Capabilities, ErrorKind, HealthReport, Result, TtlSupport, ERROR_KIND_HEADER,
};
/// Re-exported from `cachekit-core`, where every backend's server text is made safe.
pub use cachekit_core::{ELISION_MARKER, MAX_SERVER_TEXT_CHARS};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

/// Everything but RFC 3986 unreserved characters is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Default of [`HttpConfig::max_error_body_bytes`], the most bytes of an error response's
/// body that are read (4 KiB).
///
/// The status alone decides the error's kind; the body only adds a message, so it is
/// stream-read up to this many bytes and the connection is then dropped. A huge or endless
/// error body therefore costs at most this much memory, never a hang.
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;

/// Longest wait for an error response's body (1 s), on top of which the request's own
/// timeout still applies.
///
/// A server that sends an error status and then trickles its body never holds the call
/// longer than this: the error is returned with whatever arrived, marked as cut.
pub const ERROR_BODY_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest `Retry-After` taken from a server (24 h); a longer one, even one too large for a
/// `u64`, counts as this long.
///
/// It is reported through [`BackendError::retry_after`], where a caller may add it to an
/// `Instant`: an unbounded value from the server would make that overflow. Only
/// delay-seconds (`Retry-After: 120`) are understood; an HTTP-date is ignored, and the
/// computed backoff is used instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Default of [`HttpConfig::max_health_details`], the most fields of a health answer kept in
/// [`HealthReport::details`] (32).
///
/// The API's own fields (`healthy`, `backend_type`, `latency_ms`, `details`) are always kept;
/// others fill up to this count, in name order, and the number left out is reported as
/// [`FIELDS_ELIDED_DETAIL`].
pub const MAX_HEALTH_DETAILS: usize = 32;

/// Default of [`HttpConfig::max_health_body_bytes`], the most bytes of a `/health` answer's
/// body that are read (64 KiB).
///
/// A health answer is a handful of fields, so its body is stream-read up to this cap like an
/// error body, never up to [`HttpConfig::max_response_bytes`]. A `2xx` answer whose body is
/// longer (declared or sent) is reported unhealthy, as a `Protocol` error naming the cap;
/// the body of any other status only adds details, and is read up to the cap within
/// [`ERROR_BODY_READ_TIMEOUT`]. The body is parsed at its top level only: nested values are
/// kept as their JSON text (escaped and capped like any server text), never built into a
/// tree.
pub const MAX_HEALTH_BODY_BYTES: usize = 64 * 1024;

/// The health answer's fields that are kept whatever else the server sends.
const HEALTH_API_FIELDS: [&str; 4] = ["healthy", "backend_type", "latency_ms", "details"];

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

/// Configuration of an [`HttpBackend`]: start from [`HttpConfig::new`] and set fields.
///
/// `Debug` shows the base URL without its user-info, query or fragment, which may hold
/// secrets (and which [`HttpBackend::new`] refuses anyway).
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Base URL, `http` or `https`; requests go to `{base_url}/cache/{key}` and
    /// `{base_url}/health`. It may have a path prefix, but no user-info (`user:password@`),
    /// query (`?`) or fragment (`#`): [`HttpBackend::new`] refuses those.
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
    /// Most bytes of an error response's body read for its message and kind; a longer body
    /// is cut there (see [`MAX_ERROR_BODY_BYTES`]).
    pub max_error_body_bytes: usize,
    /// Largest `/health` answer body read; a longer `2xx` answer is unhealthy (see
    /// [`MAX_HEALTH_BODY_BYTES`]).
    pub max_health_body_bytes: usize,
    /// Most fields of a health answer kept in the report's details (see
    /// [`MAX_HEALTH_DETAILS`]).
    pub max_health_details: usize,
}

impl HttpConfig {
    /// Defaults matching `cachekit-server`: 5 s timeout, 2 retries, 1 KiB keys, 8 MiB values;
    /// error bodies, health bodies and health details capped at [`MAX_ERROR_BODY_BYTES`],
    /// [`MAX_HEALTH_BODY_BYTES`] and [`MAX_HEALTH_DETAILS`].
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into(),
            timeout: Duration::from_secs(5),
            token: None,
            retry: RetryPolicy::default(),
            max_response_bytes: 8 * 1024 * 1024,
            max_key_bytes: 1024,
            max_value_bytes: 8 * 1024 * 1024,
            max_error_body_bytes: MAX_ERROR_BODY_BYTES,
            max_health_body_bytes: MAX_HEALTH_BODY_BYTES,
            max_health_details: MAX_HEALTH_DETAILS,
        }
    }

    /// Sets the bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken(token.into()));
        self
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("base_url", &redacted_base_url(&self.base_url))
            .field("timeout", &self.timeout)
            .field("token", &self.token)
            .field("retry", &self.retry)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_key_bytes", &self.max_key_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_error_body_bytes", &self.max_error_body_bytes)
            .field("max_health_body_bytes", &self.max_health_body_bytes)
            .field("max_health_details", &self.max_health_details)
            .finish()
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

/// What an operation may be retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// A read: repeating it changes nothing, so every transient failure is retried.
    Full,
    /// A write (PUT, DELETE): only retried where the server certainly did not perform it
    /// (a failed connect, 429, 503). An attempt that may have reached the server is not
    /// repeated: a retried PUT can succeed while the first attempt lands later, over another
    /// client's newer write (the histories-under-faults test saw exactly that), and a
    /// retried DELETE could misreport whether the entry existed.
    ResultSensitive,
}

impl HttpBackend {
    /// Validates the configuration and builds the client.
    ///
    /// A base URL that is not `http(s)`, or that carries user-info, a query or a fragment,
    /// is refused with [`ErrorKind::InvalidArgument`]; the message names the problem and
    /// never shows the user-info, query or fragment.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let base = validated_base_url(&config.base_url)?;
        let trimmed = base.as_str().trim_end_matches('/');
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

    /// The error for a status outside an operation's answers, classified by the status.
    async fn status_error(&self, what: &str, response: Response) -> BackendError {
        let status = response.status();
        let retry_after = parse_retry_after(&response);
        // The header names the kind where no body can (an answer to HEAD).
        let header_kind = response
            .headers()
            .get(ERROR_KIND_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = read_body_prefix(response, self.config.max_error_body_bytes).await;
        let (body_kind, message) = error_body(&body);
        let kind_hint = header_kind.or(body_kind);
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::ValueTooLarge,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::Throttled,
            StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
            StatusCode::BAD_REQUEST => {
                match kind_hint.as_deref().and_then(ErrorKind::from_wire_name) {
                    Some(kind @ (ErrorKind::InvalidKey | ErrorKind::ValueTooLarge)) => kind,
                    _ => ErrorKind::InvalidArgument,
                }
            }
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
            .send(what, Idempotence::ResultSensitive, || {
                // Explicit even for an empty value, which would otherwise go without one:
                // servers such as nginx's WebDAV refuse a PUT that has no length.
                self.request(Method::PUT, url.clone())
                    .header(CONTENT_LENGTH, value.len())
                    .body(value.clone())
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
            let what = "GET /health";
            // With the token, so that a server that shows details only to its token
            // holders shows them.
            let response = self
                .request(Method::GET, self.health_url.clone())
                .send()
                .await
                .map_err(|err| classify(what, err))?;
            let status = response.status();
            let body = if status.is_success() {
                read_health_body(what, response, self.config.max_health_body_bytes).await?
            } else {
                // Only details: read like an error body, capped and within a deadline.
                read_body_prefix(response, self.config.max_health_body_bytes).await
            };
            let HealthAnswer {
                says_unhealthy,
                mut details,
            } = health_answer(&body, self.config.max_health_details);
            details.insert("status".to_owned(), status.as_u16().to_string());
            details.insert("url".to_owned(), self.health_url.to_string());
            if status.is_success() && !says_unhealthy {
                Ok(details)
            } else {
                // The fields are escaped already; Debug would escape their escapes again.
                let fields: Vec<String> = details
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                Err(BackendError::unavailable(format!(
                    "health endpoint answered {status}: {}",
                    fields.join(", ")
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
    parse_retry_after_value(value)
}

/// `Retry-After` as delay-seconds (digits only), clamped to [`MAX_RETRY_AFTER`].
fn parse_retry_after_value(value: &str) -> Option<Duration> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Digits too many for a u64 still mean "longer than any wait worth reporting"; treating
    // them as absent would retry at once, against what the server asked.
    let seconds = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
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
    } else if err.is_connect() || is_connection_reset(&err) {
        // A reset, even in the middle of a body (which reqwest reports as a body error),
        // is the service going away: nothing malformed arrived.
        ErrorKind::Unavailable
    } else if err.is_body() || err.is_decode() || is_parse_error(&err) {
        ErrorKind::Protocol
    } else {
        // The rest is the service going away too: a connection closed before any answer
        // (hyper's incomplete message) or in the middle of sending the request.
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

fn is_connection_reset(err: &reqwest::Error) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io_err) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io_err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = cause.source();
    }
    false
}

/// The hyper error somewhere in `err`'s chain of causes, if any.
fn hyper_cause(err: &reqwest::Error) -> Option<&hyper::Error> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            return Some(hyper_err);
        }
        source = cause.source();
    }
    None
}

/// What arrived was not an HTTP response (a bad status code included: hyper counts it as
/// a parse error too).
fn is_parse_error(err: &reqwest::Error) -> bool {
    hyper_cause(err).is_some_and(hyper::Error::is_parse)
}

/// Parses and checks a base URL; see [`HttpBackend::new`].
fn validated_base_url(raw: &str) -> Result<Url> {
    // The URL itself is not shown: it failed to parse, so which part is a password is unknown.
    let base = Url::parse(raw).map_err(|err| {
        BackendError::invalid_argument(format!(
            "invalid base URL (not shown, it may hold credentials): {err}"
        ))
    })?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(BackendError::invalid_argument(format!(
            "base URL must be an http(s) URL, not a `{}:` URL",
            base.scheme()
        )));
    }
    let shown = redacted_url(&base);
    if !base.username().is_empty() || base.password().is_some() {
        return Err(BackendError::invalid_argument(format!(
            "base URL {shown} must not carry user-info (`user:password@`): it would show in \
             Debug output, errors and health details; use HttpConfig::with_token"
        )));
    }
    if base.query().is_some() {
        return Err(BackendError::invalid_argument(format!(
            "base URL {shown} must not have a query (`?`): `/cache/{{key}}` would land inside \
             it, every key on one path"
        )));
    }
    if base.fragment().is_some() {
        return Err(BackendError::invalid_argument(format!(
            "base URL {shown} must not have a fragment (`#`): `/cache/{{key}}` would land \
             inside it, every key on one path"
        )));
    }
    Ok(base)
}

/// A base URL as `Debug` and errors show it: see [`redacted_url`]; an unparsable one is not
/// shown, since which part of it is a secret is unknown.
fn redacted_base_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => redacted_url(&url),
        Err(_) => "<unparsable URL, not shown>".to_owned(),
    }
}

/// `url` with its user-info, query and fragment replaced by `<redacted>`, keeping only
/// whether they were there.
fn redacted_url(url: &Url) -> String {
    if url.cannot_be_a_base() {
        // Its "path" is everything after the scheme, secrets included.
        return format!("{}:<not shown>", url.scheme());
    }
    let user_info = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        "<redacted>@"
    };
    let host = url.host_str().unwrap_or_default();
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let query = if url.query().is_some() {
        "?<redacted>"
    } else {
        ""
    };
    let fragment = if url.fragment().is_some() {
        "#<redacted>"
    } else {
        ""
    };
    format!(
        "{}://{user_info}{host}{port}{}{query}{fragment}",
        url.scheme(),
        url.path()
    )
}

/// The start of a response's body, as far as it was read: see [`read_body_prefix`].
struct BodyPrefix {
    bytes: Vec<u8>,
    /// Whether `bytes` is the whole body; false when a cap, the deadline or a broken
    /// connection ended the read first.
    whole: bool,
}

/// The start of a body that only adds a message or details: at most `cap` bytes, read for
/// at most [`ERROR_BODY_READ_TIMEOUT`].
async fn read_body_prefix(mut response: Response, cap: usize) -> BodyPrefix {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(
        ERROR_BODY_READ_TIMEOUT,
        read_capped(&mut response, &mut bytes, cap),
    )
    .await;
    // Dropping the response unread closes its connection, so the server's remaining bytes
    // are never received, let alone buffered.
    BodyPrefix {
        bytes,
        whole: matches!(read, Ok(CappedRead::Whole)),
    }
}

/// A `2xx` health answer's whole body, at most `cap` bytes; a longer one is a `Protocol`
/// error, found without reading past the cap.
async fn read_health_body(what: &str, mut response: Response, cap: usize) -> Result<BodyPrefix> {
    let over_cap = || {
        BackendError::protocol(format!(
            "{what}: the health answer's body exceeds the cap of {cap} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(over_cap());
    }
    let mut bytes = Vec::new();
    match read_capped(&mut response, &mut bytes, cap).await {
        CappedRead::Whole => Ok(BodyPrefix { bytes, whole: true }),
        CappedRead::OverCap => Err(over_cap()),
        CappedRead::Failed(err) => Err(classify(what, err)),
    }
}

/// How [`read_capped`] ended.
enum CappedRead {
    /// The whole body fit.
    Whole,
    /// The body is longer than the cap; the bytes up to it were kept.
    OverCap,
    /// The body broke off.
    Failed(reqwest::Error),
}

/// Appends the body to `into` up to `cap` bytes in all.
async fn read_capped(response: &mut Response, into: &mut Vec<u8>, cap: usize) -> CappedRead {
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap.saturating_sub(into.len());
                if chunk.len() > room {
                    into.extend_from_slice(&chunk[..room]);
                    return CappedRead::OverCap;
                }
                into.extend_from_slice(&chunk);
            }
            Ok(None) => return CappedRead::Whole,
            // For an error status, a body broken off only shortens the message.
            Err(err) => return CappedRead::Failed(err),
        }
    }
}

/// The `kind` hint and an escaped, capped message from an error body, JSON or not.
fn error_body(body: &BodyPrefix) -> (Option<String>, String) {
    let json: Option<serde_json::Value> = if body.whole {
        serde_json::from_slice(&body.bytes).ok()
    } else {
        None
    };
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let text = field("error").unwrap_or_else(|| String::from_utf8_lossy(&body.bytes).into_owned());
    let message = sanitize_server_text_part(&text, body.whole);
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    // Only compared against known names, never shown.
    (field("kind"), message)
}

/// What a health answer's body says, made safe to report.
struct HealthAnswer {
    /// The body's `healthy` is `false` (or `"false"`).
    says_unhealthy: bool,
    /// Its fields, escaped and capped: see [`HttpConfig::max_health_details`].
    details: std::collections::BTreeMap<String, String>,
}

/// The fields of a health answer's body, parsed at the top level only: each value is kept
/// as its JSON text, so a nested array or object costs one string, not a tree of values.
type TopLevelFields = std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>;

/// What a health body says, keeping at most `max_details` fields. A whole body that is a
/// JSON object gives its fields; any other non-empty body (cut, not JSON, or JSON but not an
/// object) is shown as `body` text.
fn health_answer(body: &BodyPrefix, max_details: usize) -> HealthAnswer {
    let mut answer = HealthAnswer {
        says_unhealthy: false,
        details: std::collections::BTreeMap::new(),
    };
    let fields = if body.whole {
        serde_json::from_slice::<TopLevelFields>(&body.bytes).ok()
    } else {
        None
    };
    let Some(fields) = fields else {
        if !body.bytes.is_empty() {
            let text = String::from_utf8_lossy(&body.bytes);
            answer.details.insert(
                "body".to_owned(),
                sanitize_server_text_part(&text, body.whole),
            );
        }
        return answer;
    };
    // Read from the JSON, so no cap or escape can hide it.
    answer.says_unhealthy = fields.get("healthy").is_some_and(|healthy| {
        serde_json::from_str::<bool>(healthy.get()).is_ok_and(|healthy| !healthy)
            || serde_json::from_str::<String>(healthy.get()).is_ok_and(|text| text == "false")
    });
    let (api_fields, other_fields): (Vec<_>, Vec<_>) = fields
        .iter()
        .partition(|(name, _)| HEALTH_API_FIELDS.contains(&name.as_str()));
    let room = max_details.saturating_sub(api_fields.len());
    let elided = other_fields.len().saturating_sub(room);
    for (name, value) in api_fields
        .into_iter()
        .chain(other_fields.into_iter().take(room))
    {
        // A string is shown unquoted and unescaped (then escaped our way); anything else
        // as the JSON text the server sent.
        let text = match serde_json::from_str::<String>(value.get()) {
            Ok(text) => sanitize_server_text(&text),
            Err(_) => sanitize_server_text(value.get()),
        };
        answer.details.insert(sanitize_server_text(name), text);
    }
    if elided > 0 {
        answer
            .details
            .insert(FIELDS_ELIDED_DETAIL.to_owned(), elided.to_string());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// The documented defaults (README, rustdoc): the fault cases set every cap through
    /// `FaultTarget`, so only this pins the values a user gets from `HttpConfig::new`.
    #[rstest]
    #[case::error_body_four_kib(HttpConfig::new("http://h").max_error_body_bytes, 4096)]
    #[case::health_body_sixty_four_kib(HttpConfig::new("http://h").max_health_body_bytes, 65_536)]
    #[case::health_details_thirty_two(HttpConfig::new("http://h").max_health_details, 32)]
    #[case::response_eight_mib(HttpConfig::new("http://h").max_response_bytes, 8 << 20)]
    fn defaults_are_the_documented_ones(#[case] configured: usize, #[case] documented: usize) {
        assert_eq!(configured, documented);
    }

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
        let whole = |bytes: &[u8]| BodyPrefix {
            bytes: bytes.to_vec(),
            whole: true,
        };
        let (kind, message) = error_body(&whole(br#"{"kind":"invalid_key","error":"too long"}"#));
        assert_eq!(kind.as_deref(), Some("invalid_key"));
        assert_eq!(message, ": too long");
        let (kind, message) = error_body(&whole(&[0xff, 0x00, b'\n', b'x']));
        assert_eq!(kind, None);
        assert_eq!(message, ": \u{fffd}\\u{0}\\nx");
    }

    #[test]
    fn a_cut_error_body_is_shown_as_cut_and_not_parsed() {
        let cut = BodyPrefix {
            bytes: br#"{"kind":"invalid_key","error":"too long"}"#.to_vec(),
            whole: false,
        };
        let (kind, message) = error_body(&cut);
        assert_eq!(kind, None);
        assert!(message.ends_with(ELISION_MARKER), "{message}");
    }

    #[test]
    fn debug_of_a_config_hides_user_info_query_and_fragment() {
        let config = HttpConfig::new("https://alice:hunter2@cache.internal:8443/api?key=k1#frag");
        let debug = format!("{config:?}");
        assert!(
            debug.contains(
                r#"base_url: "https://<redacted>@cache.internal:8443/api?<redacted>#<redacted>""#
            ),
            "{debug}"
        );
        for secret in ["alice", "hunter2", "k1", "frag"] {
            assert!(!debug.contains(secret), "{debug} shows {secret:?}");
        }
        let unparsable = HttpConfig::new("http://alice:hunter2@cache.internal:99999");
        assert!(!format!("{unparsable:?}").contains("hunter2"));
    }

    /// Security finding 3: a health body is parsed at its top level only; `healthy` is read
    /// from the JSON; a body that is not a whole JSON object is shown as capped `body` text.
    #[test]
    fn health_bodies_are_parsed_at_the_top_level_only() {
        let whole = |bytes: &[u8]| BodyPrefix {
            bytes: bytes.to_vec(),
            whole: true,
        };
        let answer = health_answer(
            &whole(br#"{"healthy":"false","n":1.50,"nested":{"a":[1, 2]},"s":"a\u001b"}"#),
            MAX_HEALTH_DETAILS,
        );
        assert!(answer.says_unhealthy);
        let detail = |name: &str| answer.details.get(name).map(String::as_str);
        assert_eq!(detail("n"), Some("1.50"));
        assert_eq!(detail("nested"), Some(r#"{"a":[1, 2]}"#));
        assert_eq!(detail("s"), Some("a\\u{1b}"));
        assert!(!health_answer(&whole(br#"{"healthy":true}"#), MAX_HEALTH_DETAILS).says_unhealthy);

        let array = health_answer(&whole(b"[false]"), MAX_HEALTH_DETAILS);
        assert!(!array.says_unhealthy);
        assert_eq!(
            array.details.get("body").map(String::as_str),
            Some("[false]")
        );
        let cut = health_answer(
            &BodyPrefix {
                bytes: br#"{"healthy":false"#.to_vec(),
                whole: false,
            },
            MAX_HEALTH_DETAILS,
        );
        assert_eq!(
            cut.details.get("body").map(String::as_str),
            Some(format!(r#"{{"healthy":false{ELISION_MARKER}"#).as_str())
        );
        assert!(health_answer(&whole(b""), MAX_HEALTH_DETAILS)
            .details
            .is_empty());
    }

    /// Also: `Retry-After` is delay-seconds only, clamped to [`MAX_RETRY_AFTER`].
    #[rstest::rstest]
    #[case::one_second("1", Some(Duration::from_secs(1)))]
    #[case::zero("0", Some(Duration::ZERO))]
    #[case::surrounding_whitespace(" 2 ", Some(Duration::from_secs(2)))]
    #[case::at_the_clamp("86400", Some(MAX_RETRY_AFTER))]
    #[case::over_the_clamp("86401", Some(MAX_RETRY_AFTER))]
    #[case::u64_max("18446744073709551615", Some(MAX_RETRY_AFTER))]
    #[case::beyond_u64("99999999999999999999999", Some(MAX_RETRY_AFTER))]
    #[case::empty("", None)]
    #[case::negative("-1", None)]
    #[case::plus_sign("+5", None)]
    #[case::fraction("1.5", None)]
    #[case::two_numbers("1 2", None)]
    #[case::words("soon", None)]
    #[case::http_date("Wed, 21 Oct 2015 07:28:00 GMT", None)]
    fn retry_after_is_parsed_strictly_and_clamped(
        #[case] header: &str,
        #[case] wait: Option<Duration>,
    ) {
        assert_eq!(parse_retry_after_value(header), wait);
    }
}
