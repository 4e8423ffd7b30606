//! The reference cachekit HTTP server: serves any [`Backend`] over the cachekit HTTP API.
//!
//! | request | answer |
//! |---|---|
//! | `GET /cache/{key}` | `200` with the value as body, or `404` |
//! | `PUT /cache/{key}?ttl=N` (body = value) | `204`; `N` whole seconds, optional |
//! | `DELETE /cache/{key}` | `204` if a live entry existed, else `404` |
//! | `HEAD /cache/{key}` | `200` if a live entry exists, else `404` |
//! | `GET /health` | `200`/`503` with the backend's health report as JSON |
//!
//! `{key}` is one percent-encoded path segment. Errors carry a JSON body
//! `{"kind": "...", "error": "..."}` with the [`ErrorKind`] in snake case; statuses are
//! `400` (invalid key or argument), `401` (token), `408` (request body too slow), `413` (too
//! large), `429`, `500`, `502`, `503` (backend unavailable, or the server at its request
//! limit) and `504` (backend timeout).
//!
//! # Authentication
//!
//! With a [`ServerConfig::token`], `/cache` requests need `Authorization: Bearer <token>`;
//! the scheme is case-insensitive (RFC 7235). Tokens are compared as SHA-256 digests in
//! constant time, so timing reveals neither their content nor their length. `/health` needs
//! no token, but without a valid one it answers only `{"healthy": true|false}`: the backend's
//! type, latency and details are for authenticated callers. An empty token is refused by
//! [`start`] and [`router`], and listening beyond loopback without a token logs a warning.
//!
//! # Limits
//!
//! Every resource a client can make the server spend is bounded:
//!
//! | limit | [`ServerConfig`] field | default | when exceeded |
//! |---|---|---|---|
//! | open connections | `max_connections` | 1024 | further connections wait in the kernel's listen backlog, unaccepted |
//! | requests handled at once | `max_concurrent_requests` | 256 | a request waits for a slot up to `queue_timeout`... |
//! | wait for a request slot | `queue_timeout` | 1 s | ...then gets `503` with `Retry-After: 1` (no backend call made) |
//! | request head (request line + headers) | `max_header_bytes` | 16 KiB | `431`, connection closed |
//! | header fields per request | [`MAX_REQUEST_HEADERS`] | 100 | `431`, connection closed |
//! | read buffer per connection | [`READ_BUFFER_BYTES`] | 256 KiB (or `max_header_bytes` if larger) | reads wait until the buffer drains |
//! | time from accepting a connection to the first byte of its first request | `header_read_timeout` | 10 s | connection closed (a connection that never sends holds its slot this long, not `idle_timeout`) |
//! | time to receive a request head, from its first byte | `header_read_timeout` | 10 s | connection closed |
//! | idle keep-alive connection, between requests (after its first request completed) | `idle_timeout` | 60 s | connection closed |
//! | request body (the value) | `max_body_bytes` | 8 MiB | `413`, as soon as the declared length or the bytes received exceed it |
//! | memory to receive a request body | `max_body_bytes` | 8 MiB | one buffer per body, at most `max_body_bytes`; each chunk is copied into it and released at once, so a body of many tiny chunks costs its bytes, not a handle per chunk |
//! | time to receive a request body | `body_read_timeout` | 30 s | `408`, connection closed |
//! | time for one backend call, `/health` included | `request_timeout` | 5 s | `504` (`/health`: `503`, unhealthy) |
//! | time to write a response | `write_timeout` | 30 s | connection closed |
//! | graceful shutdown | `shutdown_timeout` | 10 s | connections still open are closed |
//!
//! Request bodies are bounded in size and time and read only while holding a request slot,
//! so at most `max_concurrent_requests × max_body_bytes` bytes of bodies are buffered at
//! once (2 GiB with the defaults). A body is gathered in one buffer: reserved up front only
//! for a `Content-Length` already checked against `max_body_bytes`, otherwise grown by
//! doubling but never past `max_body_bytes`. A stored value is an exactly-sized copy, never
//! a slice of a connection's read buffer (which would keep the whole buffer alive with it). The
//! connection limits apply to [`start`] and [`BackgroundServer`]; an application that mounts
//! [`router`] in its own server gets the request limits only and must bound its connections
//! itself.

mod auth;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cachekit_core::{Backend, BackendError, ErrorKind, ERROR_KIND_HEADER};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use auth::ExpectedToken;
pub use serve::{MAX_REQUEST_HEADERS, READ_BUFFER_BYTES};

/// How the server behaves. Every limit is documented in the [crate docs](crate#limits).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// If set, `/cache` requests need `Authorization: Bearer <token>`, and `/health` shows
    /// details only to requests that carry it. Must be non-empty visible ASCII.
    pub token: Option<String>,
    /// Largest accepted request body; larger ones get `413`.
    pub max_body_bytes: usize,
    /// Longest a backend call (`/health` included) may take before the request gets `504`.
    pub request_timeout: Duration,
    /// Longest the whole request body may take to arrive once its handler starts reading
    /// it; a slower body gets `408` and the connection is closed.
    pub body_read_timeout: Duration,
    /// Longest a request head (request line and headers) may take to arrive, counted from
    /// its first byte; a slower one has its connection closed. Also the longest a new
    /// connection may wait, from its accept, before sending the first byte of its first
    /// request: a connection that never sends is closed after this, not after
    /// `idle_timeout`.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait for its next request, once a request on it
    /// has completed, before it is closed.
    pub idle_timeout: Duration,
    /// Longest writing one response may take; a client that does not read is disconnected.
    pub write_timeout: Duration,
    /// Most requests handled at once, across all connections.
    pub max_concurrent_requests: usize,
    /// Longest a request waits for one of the `max_concurrent_requests` slots before it is
    /// answered `503` with `Retry-After: 1`.
    pub queue_timeout: Duration,
    /// Most connections open at once; beyond it, connections are not accepted until one closes.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger ones get `431`.
    pub max_header_bytes: usize,
    /// How long a shutdown waits for requests in flight before closing their connections.
    pub shutdown_timeout: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("queue_timeout", &self.queue_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            queue_timeout: Duration::from_secs(1),
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Checks that the configuration can be served as meant: a token, if given, is
    /// non-empty visible ASCII; no limit or timeout is zero (which would refuse everything).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(problem) = self.token.as_deref().and_then(auth::token_problem) {
            return Err(ConfigError(problem.to_owned()));
        }
        let durations = [
            ("request_timeout", self.request_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", self.write_timeout),
            ("queue_timeout", self.queue_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConfigError(format!("{name} must be longer than zero")));
        }
        let counts = [
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_connections", self.max_connections),
            ("max_header_bytes", self.max_header_bytes),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError(format!("{name} must be at least 1")));
        }
        Ok(())
    }

    /// A warning to show when the server listens on a non-loopback address without a token,
    /// so that anyone who can reach it can read and overwrite the cache; `None` otherwise.
    pub fn open_access_warning(&self) -> Option<String> {
        let loopback_only = self.listen.ip().to_canonical().is_loopback();
        (!loopback_only && self.token.is_none()).then(|| {
            format!(
                "listening on {} without a token: anyone who can reach this address can read \
                 and overwrite the cache; set a token, or listen on a loopback address",
                self.listen
            )
        })
    }

    fn connection_limits(&self) -> serve::ConnectionLimits {
        serve::ConnectionLimits {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// A [`ServerConfig`] that cannot be served as meant, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid server configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for std::io::Error {
    fn from(err: ConfigError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
    }
}

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn Backend>,
    token: Option<ExpectedToken>,
    max_body_bytes: usize,
    request_timeout: Duration,
    body_read_timeout: Duration,
    request_slots: Arc<Semaphore>,
    queue_timeout: Duration,
}

/// The API as an axum router, for embedding in another server.
///
/// It applies the request limits (concurrency, body size and time, backend time); the
/// connection limits are the embedding server's job (see the [crate docs](crate#limits)).
pub fn router(backend: Arc<dyn Backend>, config: &ServerConfig) -> Result<Router, ConfigError> {
    config.validate()?;
    let state = AppState {
        backend,
        token: config.token.as_deref().map(ExpectedToken::new),
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
        body_read_timeout: config.body_read_timeout,
        request_slots: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        queue_timeout: config.queue_timeout,
    };
    let cache = Router::new()
        .route(
            "/cache/{key}",
            get(get_entry)
                .put(put_entry)
                .delete(delete_entry)
                .head(head_entry),
        )
        .route("/cache/", axum::routing::any(empty_key))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Ok(Router::new()
        .route("/health", get(health))
        .merge(cache)
        // Outermost, so that every request, `/health` and unauthenticated ones included,
        // takes a slot.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_concurrency,
        ))
        .with_state(state))
}

/// A server running on the current tokio runtime.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, the base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish for up to
    /// [`ServerConfig::shutdown_timeout`], closes whatever is still open, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .map_err(|err| std::io::Error::other(format!("server task failed: {err}")))?
    }
}

/// Binds `config.listen` and serves `backend` on the current runtime until shut down.
///
/// Fails with [`std::io::ErrorKind::InvalidInput`] if the configuration does not
/// [validate](ServerConfig::validate) (an empty token, say), and logs a warning if it
/// listens beyond loopback without a token.
pub async fn start(
    backend: Arc<dyn Backend>,
    config: &ServerConfig,
) -> std::io::Result<RunningServer> {
    let app = router(backend, config)?;
    if let Some(warning) = config.open_access_warning() {
        tracing::warn!("{warning}");
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve::serve(
        listener,
        app,
        config.connection_limits(),
        stopped,
    ));
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        task,
    })
}

/// A server on its own thread and runtime, independent of the caller's runtimes; it stops
/// when dropped. Tests use it so that one server outlives the per-case runtimes.
#[derive(Debug)]
pub struct BackgroundServer {
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Starts a server for the backend `make_backend` builds, on a new thread.
    pub fn spawn<F, B>(make_backend: F, config: ServerConfig) -> std::io::Result<Self>
    where
        F: FnOnce() -> B + Send + 'static,
        B: Backend + 'static,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cachekit-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match start(Arc::new(make_backend()), &config).await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.base_url()));
                            let _ = stopped.await;
                            let _ = server.shutdown().await;
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                        }
                    }
                });
            })?;
        let base_url = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the server thread exited before it was ready"))??;
        Ok(BackgroundServer {
            base_url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://{addr}`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize)]
struct ErrorBody {
    kind: &'static str,
    error: String,
}

/// An error answer with the JSON body `{"kind", "error"}`.
fn json_error(status: StatusCode, kind: &'static str, error: String) -> Response {
    (
        status,
        [(ERROR_KIND_HEADER, kind)],
        Json(ErrorBody { kind, error }),
    )
        .into_response()
}

/// The answer for a backend error: its kind's status, and `Retry-After` when it has one.
fn error_response(err: &BackendError) -> Response {
    let status = match err.kind() {
        ErrorKind::InvalidKey | ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::ValueTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        // The server's own store rejected the server: not the client's credentials.
        ErrorKind::Auth | ErrorKind::Protocol => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = json_error(status, err.kind().wire_name(), err.message().to_owned());
    if let Some(wait) = err.retry_after() {
        let seconds = wait.as_secs_f64().ceil() as u64;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// A handler's failure, already rendered as its answer.
struct ApiError(Response);

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        ApiError(error_response(&err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0
    }
}

type ApiResult = Result<Response, ApiError>;

impl AppState {
    /// Runs one backend call within `request_timeout`.
    async fn call<T>(
        &self,
        operation: impl std::future::Future<Output = cachekit_core::Result<T>>,
    ) -> cachekit_core::Result<T> {
        tokio::time::timeout(self.request_timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(BackendError::timeout(format!(
                    "the backend did not answer within {:?}",
                    self.request_timeout
                )))
            })
    }
}

fn key_from(path: Result<Path<String>, PathRejection>) -> cachekit_core::Result<String> {
    path.map(|Path(key)| key).map_err(|rejection| {
        BackendError::invalid_key(format!(
            "the key is not a valid percent-encoded UTF-8 path segment: {rejection}"
        ))
    })
}

async fn empty_key() -> ApiError {
    BackendError::invalid_key("the empty key is not a valid key").into()
}

async fn get_entry(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let key = key_from(path)?;
    Ok(match app.call(app.backend.get(&key)).await? {
        Some(value) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            value,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn head_entry(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let key = key_from(path)?;
    let exists = app.call(app.backend.exists(&key)).await?;
    Ok(found_or_not(exists, StatusCode::OK))
}

async fn delete_entry(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let key = key_from(path)?;
    let existed = app.call(app.backend.delete(&key)).await?;
    Ok(found_or_not(existed, StatusCode::NO_CONTENT))
}

fn found_or_not(found: bool, status: StatusCode) -> Response {
    if found { status } else { StatusCode::NOT_FOUND }.into_response()
}

async fn put_entry(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let key = key_from(path)?;
    let ttl = parse_ttl(query.as_deref())?;
    let value = read_value(&app, &headers, body).await?;
    app.call(app.backend.set(&key, value, ttl)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads a PUT body: at most `max_body_bytes` (`413` beyond), within `body_read_timeout`
/// (`408` beyond, so a client trickling a body cannot hold a request slot forever).
async fn read_value(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::from(BackendError::value_too_large(format!(
            "the request body exceeds the server's limit of {} bytes",
            app.max_body_bytes
        )))
    };
    // Refused before reading a byte when the client says up front that it is too large.
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > app.max_body_bytes as u64) {
        return Err(too_large());
    }
    let value = tokio::time::timeout(
        app.body_read_timeout,
        collect_body(body, app.max_body_bytes),
    )
    .await
    .map_err(|_| {
        let mut response = json_error(
            StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Timeout.wire_name(),
            format!(
                "the request body did not arrive within {:?}",
                app.body_read_timeout
            ),
        );
        // The rest of the body is unread, so this connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        ApiError(response)
    })?;
    match value {
        Ok(value) => Ok(value),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Unreadable(reason)) => Err(BackendError::invalid_argument(format!(
            "the request body could not be read: {reason}"
        ))
        .into()),
    }
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Unreadable(axum::Error),
}

/// The body's data as one exactly-sized value, failing as soon as it adds up to more than
/// `max_bytes`.
///
/// Each frame is appended to one growing buffer and dropped at once. Frames are slices of
/// hyper's connection read buffer; kept until the body ends, a body of millions of one-byte
/// chunks would cost a 32-byte handle per byte and pin every read buffer those bytes arrived
/// in, far beyond `max_bytes`. The buffer starts at the body's length when the framing gives
/// one (never more than `max_bytes`), grows by doubling but never past `max_bytes`, and is
/// shrunk to the value's length at the end.
async fn collect_body(mut body: Body, max_bytes: usize) -> Result<Bytes, BodyError> {
    // hyper's own length (from `Content-Length`), already checked by the caller; clamped
    // again so that nothing is ever reserved from a length nobody checked.
    let expected = body
        .size_hint()
        .exact()
        .map_or(0, |length| usize::try_from(length).unwrap_or(usize::MAX))
        .min(max_bytes);
    let mut value: Vec<u8> = Vec::with_capacity(expected);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let Ok(data) = frame.map_err(BodyError::Unreadable)?.into_data() else {
            continue; // trailers carry no value bytes
        };
        let total = value
            .len()
            .checked_add(data.len())
            .filter(|&total| total <= max_bytes)
            .ok_or(BodyError::TooLarge)?;
        if total > value.capacity() {
            let grown = value.capacity().saturating_mul(2).clamp(total, max_bytes);
            value.reserve_exact(grown - value.len());
        }
        value.extend_from_slice(&data);
        // `data` is dropped here, before the next frame is read.
    }
    Ok(exactly_sized(value))
}

/// One owned allocation holding exactly the value.
///
/// hyper hands out body chunks that are slices of its connection read buffer, an allocation
/// of 8 KiB or more shared with the rest of that read. Stored as they are, a 1-byte value
/// would keep that whole buffer alive for as long as the entry lives (8 KiB+ per entry, and
/// invisible to the backend's byte budget), so the value is always copied out of them (by
/// [`collect_body`]) into a buffer trimmed here to the value's length.
fn exactly_sized(value: Vec<u8>) -> Bytes {
    Bytes::from(value.into_boxed_slice())
}

/// `ttl=N` with N a whole number of seconds; anything else is a `400`, never "no ttl".
fn parse_ttl(query: Option<&str>) -> Result<Option<Duration>, BackendError> {
    let mut ttl = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "ttl" {
            continue;
        }
        if ttl.is_some() {
            return Err(BackendError::invalid_argument(
                "ttl is given more than once",
            ));
        }
        let seconds = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .filter(|_| !value.is_empty())
            .ok_or_else(|| {
                BackendError::invalid_argument(format!(
                    "ttl must be a whole number of seconds, got {value:?}"
                ))
            })?;
        ttl = Some(Duration::from_secs(seconds));
    }
    Ok(ttl)
}

/// Lets the request through with `Authorization: Bearer <token>`, else answers `401`.
async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = app.token.as_ref() else {
        return next.run(request).await;
    };
    if expected.authorizes(request.headers()) {
        return next.run(request).await;
    }
    let mut response = error_response(&BackendError::new(
        ErrorKind::Auth,
        "a valid `Authorization: Bearer <token>` header is required",
    ));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

/// Holds one of `max_concurrent_requests` slots for the whole request. A request that finds
/// none free waits up to `queue_timeout` (waiting requests are bounded too: one per open
/// connection), then gets `503` with `Retry-After: 1` before anything reaches the backend,
/// so the client may retry any method.
async fn limit_concurrency(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let slot = tokio::time::timeout(
        app.queue_timeout,
        Arc::clone(&app.request_slots).acquire_owned(),
    )
    .await;
    let Ok(Ok(_slot)) = slot else {
        return error_response(
            &BackendError::unavailable(format!(
                "the server is handling its limit of concurrent requests; none finished within {:?}",
                app.queue_timeout
            ))
            .with_retry_after(Duration::from_secs(1)),
        );
    };
    next.run(request).await
}

#[derive(Debug, Serialize)]
struct HealthBody {
    healthy: bool,
    backend_type: String,
    latency_ms: f64,
    details: std::collections::BTreeMap<String, String>,
}

/// What `/health` shows a caller without a valid token, when the server has one.
#[derive(Debug, Serialize)]
struct AnonymousHealthBody {
    healthy: bool,
}

async fn health(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let body = app.health_within_timeout().await;
    let status = if body.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let shows_details = app
        .token
        .as_ref()
        .is_none_or(|expected| expected.authorizes(&headers));
    if shows_details {
        (status, Json(body)).into_response()
    } else {
        let healthy = body.healthy;
        (status, Json(AnonymousHealthBody { healthy })).into_response()
    }
}

impl AppState {
    /// The backend's health report; a check that outlasts `request_timeout` is unhealthy.
    async fn health_within_timeout(&self) -> HealthBody {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.request_timeout, self.backend.health_check()).await {
            Ok(report) => HealthBody {
                healthy: report.healthy,
                backend_type: report.backend_type,
                latency_ms: report.latency.as_secs_f64() * 1000.0,
                details: report.details,
            },
            Err(_) => HealthBody {
                healthy: false,
                backend_type: self.backend.capabilities().backend_type,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                details: [(
                    "error".to_owned(),
                    format!(
                        "the health check did not finish within {:?}",
                        self.request_timeout
                    ),
                )]
                .into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_only_whole_seconds() {
        assert_eq!(parse_ttl(None).ok(), Some(None));
        assert_eq!(
            parse_ttl(Some("ttl=5")).ok(),
            Some(Some(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_ttl(Some("x=1&ttl=0")).ok(),
            Some(Some(Duration::ZERO))
        );
        for bad in [
            "ttl=abc",
            "ttl=-1",
            "ttl=",
            "ttl",
            "ttl=+5",
            "ttl=1.5",
            "ttl=1&ttl=2",
            "ttl=99999999999999999999999",
        ] {
            let err = parse_ttl(Some(bad)).err().map(|e| e.kind());
            assert_eq!(err, Some(ErrorKind::InvalidArgument), "{bad}");
        }
    }

    /// A body that hands out one-byte frames, each a slice of one shared buffer (as hyper's
    /// frames are slices of its read buffer), and counts the frames it was asked for while
    /// an earlier one was still held.
    struct SlicedBody {
        buffer: Bytes,
        next: usize,
        held_when_polled: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl HttpBody for SlicedBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.next > 0 && !self.buffer.is_unique() {
                self.held_when_polled
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let at = self.next;
            if at == self.buffer.len() {
                return std::task::Poll::Ready(None);
            }
            self.next += 1;
            let frame = hyper::body::Frame::data(self.buffer.slice(at..at + 1));
            std::task::Poll::Ready(Some(Ok(frame)))
        }
    }

    /// Security finding 1: each frame is dropped as soon as it is copied, so no frame (and no
    /// read buffer behind it) is held while the rest of the body arrives; the value is one
    /// exactly-sized copy.
    #[tokio::test]
    async fn a_body_is_collected_without_holding_its_frames() {
        const LEN: usize = 10_000;
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let expected: Vec<u8> = (0..LEN).map(|n| n as u8).collect();
        let body = Body::new(SlicedBody {
            buffer: Bytes::from(expected.clone()),
            next: 0,
            held_when_polled: Arc::clone(&held),
        });
        let value = collect_body(body, LEN).await.expect("within the limit");
        assert_eq!(value, expected);
        assert_eq!(
            held.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "frames of the body were still held when the next one was read"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_soon_as_it_is() {
        let body = Body::new(SlicedBody {
            buffer: Bytes::from(vec![1u8; 100]),
            next: 0,
            held_when_polled: Arc::default(),
        });
        assert!(matches!(
            collect_body(body, 99).await,
            Err(BodyError::TooLarge)
        ));
        assert!(collect_body(Body::empty(), 0)
            .await
            .is_ok_and(|value| value.is_empty()));
        let declared = Body::from(vec![7u8; 3]);
        assert_eq!(
            collect_body(declared, 3).await.ok(),
            Some(Bytes::from_static(&[7, 7, 7]))
        );
    }

    #[test]
    fn values_are_trimmed_to_their_length() {
        let mut value = Vec::with_capacity(8192);
        value.push(7u8);
        let value = exactly_sized(value);
        assert_eq!(value.as_ref(), &[7u8]);
        assert!(exactly_sized(Vec::new()).is_empty());
    }
}
