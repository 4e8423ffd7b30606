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
//! `400` (invalid key or argument), `401` (token), `413` (too large), `429`, `500`, `502`,
//! `503` and `504` (backend timeout). `/health` needs no token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cachekit_core::{Backend, BackendError, ErrorKind};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the server behaves.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// If set, `/cache` requests need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest accepted request body; larger ones get `413`.
    pub max_body_bytes: usize,
    /// Longest a backend call may take before the request gets `504`.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
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
        }
    }
}

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn Backend>,
    token: Option<Arc<str>>,
    request_timeout: Duration,
}

/// The API as an axum router, for embedding in another server.
pub fn router(backend: Arc<dyn Backend>, config: &ServerConfig) -> Router {
    let state = AppState {
        backend,
        token: config.token.as_deref().map(Arc::from),
        request_timeout: config.request_timeout,
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
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    Router::new()
        .route("/health", get(health))
        .merge(cache)
        .with_state(state)
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

    /// Stops accepting, lets requests in flight finish, and waits.
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
pub async fn start(
    backend: Arc<dyn Backend>,
    config: &ServerConfig,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = router(backend, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
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

/// The snake-case name of an error kind, as sent in error bodies.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Auth => "auth",
        ErrorKind::InvalidKey => "invalid_key",
        ErrorKind::ValueTooLarge => "value_too_large",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::Protocol => "protocol",
        _ => "other",
    }
}

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
    let body = ErrorBody {
        kind: kind_name(err.kind()),
        error: err.message().to_owned(),
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(wait) = err.retry_after() {
        let seconds = wait.as_secs_f64().ceil() as u64;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// A handler's failure: rendered by [`error_response`].
struct ApiError(BackendError);

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

type ApiResult = Result<Response, ApiError>;

impl AppState {
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
    ApiError(BackendError::invalid_key(
        "the empty key is not a valid key",
    ))
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
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_from(path)?;
    let ttl = parse_ttl(query.as_deref())?;
    let value = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BackendError::value_too_large(format!(
                "the request body exceeds the server's limit: {rejection}"
            ))
        } else {
            BackendError::invalid_argument(format!(
                "the request body could not be read: {rejection}"
            ))
        }
    })?;
    app.call(app.backend.set(&key, value, ttl)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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

async fn require_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = app.token.as_deref() else {
        return next.run(request).await;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = error_response(&BackendError::new(
                ErrorKind::Auth,
                "a valid `Authorization: Bearer <token>` header is required",
            ));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// Compares without an early exit, so response timing does not reveal a token prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Serialize)]
struct HealthBody {
    healthy: bool,
    backend_type: String,
    latency_ms: f64,
    details: std::collections::BTreeMap<String, String>,
}

async fn health(State(app): State<AppState>) -> Response {
    let report = app.backend.health_check().await;
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthBody {
        healthy: report.healthy,
        backend_type: report.backend_type,
        latency_ms: report.latency.as_secs_f64() * 1000.0,
        details: report.details,
    };
    (status, Json(body)).into_response()
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

    #[test]
    fn token_comparison_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
