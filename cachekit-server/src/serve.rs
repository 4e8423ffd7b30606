//! Accepting and serving connections with bounded resources.
//!
//! `axum::serve` has no connection limit, header or idle timeout, and waits forever for
//! connections during a graceful shutdown, so the server drives hyper's HTTP/1 connections
//! itself:
//!
//! - at most `max_connections` are open; beyond that, new connections wait in the kernel's
//!   listen backlog until one closes (they are not accepted, so they cost no memory here);
//! - each connection has a watchdog that knows which phase it is in and closes it when the
//!   phase's deadline passes: waiting for its first request, which must begin (send its
//!   first byte) within `header_read_timeout` of the accept; reading a request head once its
//!   first byte arrived (`header_read_timeout` again); writing a response (`write_timeout`);
//!   waiting for the next request on a keep-alive connection (`idle_timeout`). While a
//!   handler runs, the handler's own limits apply (`body_read_timeout`, `request_timeout`).
//!   The long idle timeout is earned by completing a request: a connection that never sends
//!   a byte holds its slot for `header_read_timeout` only, so silent sockets cannot keep
//!   every slot for long;
//! - on shutdown, idle connections close at once, requests in flight get until
//!   `shutdown_timeout` to finish, and whatever is left is then closed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::Request;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Most header fields one request may carry; more get `431`.
pub const MAX_REQUEST_HEADERS: usize = 100;

/// Largest read buffer of one connection (hyper's `max_buf_size`), unless
/// `max_header_bytes` is larger: a request head must fit in it.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// How long the accept loop pauses after an accept error (out of file descriptors, say)
/// before trying again, so that such an error does not become a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connection-level limits, taken from the `ServerConfig`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` fires (or its sender is dropped), then shuts
/// down within `limits.shutdown_timeout`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (shutting_down, shutdown_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Finished connections are reaped first, so the set only holds live ones.
            biased;
            _ = &mut stop => break,
            Some(finished) = connections.join_next() => {
                if let Err(err) = finished {
                    if err.is_panic() {
                        tracing::error!("a connection task panicked: {err}");
                    }
                }
            }
            accepted = accept_within_limit(&listener, &slots) => match accepted {
                Ok((stream, slot)) => {
                    connections.spawn(serve_connection(
                        stream,
                        app.clone(),
                        limits,
                        shutdown_signal.clone(),
                        slot,
                    ));
                }
                Err(err) => {
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    // Closing the listener first: new connections are refused while the old ones drain.
    drop(listener);
    let _ = shutting_down.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still open {:?} after shutdown began; closing them",
            connections.len(),
            limits.shutdown_timeout
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Waits for a free connection slot, then for a connection. While no slot is free nothing is
/// accepted: new connections wait in the kernel's backlog instead.
async fn accept_within_limit(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("the connection limit was closed"))?;
    let (stream, _peer) = listener.accept().await?;
    // Responses are written whole; waiting to coalesce them (Nagle) only adds latency.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {err}");
    }
    Ok((stream, slot))
}

/// Serves one connection until it closes, a watchdog deadline passes, or shutdown ends it.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut shutdown_signal: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let watchdog = Arc::new(Watchdog::new());
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        watchdog: Arc::clone(&watchdog),
    });
    let service = {
        let watchdog = Arc::clone(&watchdog);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            watchdog.enter(Phase::Handling);
            let watchdog = Arc::clone(&watchdog);
            let response = app.clone().oneshot(request);
            async move {
                let response = response.await?;
                watchdog.enter(Phase::Responding {
                    since: Instant::now(),
                    body_done: false,
                });
                Ok::<_, std::convert::Infallible>(response.map(|body| WatchedBody {
                    inner: body,
                    watchdog,
                }))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .max_headers(MAX_REQUEST_HEADERS)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(READ_BUFFER_BYTES.max(limits.max_header_bytes))
        // hyper's own header timer starts as soon as a connection is ready for a request, so
        // it would also cut idle keep-alive connections; the watchdog times the two apart.
        .header_read_timeout(None);
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = *shutdown_signal.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = watchdog.deadline(&limits);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!("connection ended with an error: {err}");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if let Some(phase) = watchdog.expired(&limits, Instant::now()) {
                    tracing::debug!("closing a connection: {phase}");
                    return;
                }
            }
            () = watchdog.changed.notified() => {}
            _ = shutdown_signal.changed(), if !draining => {
                draining = true;
                // Closes an idle connection at once; one with a request in flight closes
                // after its response.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is in its request cycle, and since when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Accepted, waiting for the first byte of its first request.
    Opened { since: Instant },
    /// A keep-alive connection that completed a request, waiting for the first byte of the
    /// next one.
    Idle { since: Instant },
    /// The first byte of a request arrived; its head is not complete yet.
    ReadingHead { since: Instant },
    /// A handler runs; its own timeouts bound it.
    Handling,
    /// The handler answered; the response is being written. Once hyper is done with the
    /// body (`body_done`), the response is complete when hyper's write buffer is flushed.
    Responding { since: Instant, body_done: bool },
}

/// One connection's phase, shared by its stream (reads), its service (requests) and its
/// response bodies (ends of responses), and watched by its task.
#[derive(Debug)]
struct Watchdog {
    phase: Mutex<Phase>,
    /// Woken when the phase changes, so that the task re-arms its timer.
    changed: Notify,
}

impl Watchdog {
    fn new() -> Self {
        Watchdog {
            phase: Mutex::new(Phase::Opened {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // The phase is a plain value, valid whatever a panicking holder was doing.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, phase: Phase) {
        *self.phase() = phase;
        self.changed.notify_one();
    }

    /// Bytes arrived from the client: if it was waiting for a request, a head has begun.
    fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if let Phase::Opened { .. } | Phase::Idle { .. } = *phase {
            *phase = Phase::ReadingHead {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// hyper is done with the response body: its last bytes are in hyper's write buffer
    /// (a large value can still be far from written).
    fn body_done(&self) {
        if let Phase::Responding { body_done, .. } = &mut *self.phase() {
            *body_done = true;
        }
    }

    /// hyper flushed everything it had buffered to the socket; if the body was done, the
    /// response is written and the connection waits for the next request.
    fn output_flushed(&self) {
        let mut phase = self.phase();
        if let Phase::Responding {
            body_done: true, ..
        } = *phase
        {
            *phase = Phase::Idle {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Opened { since } => Some(since + limits.header_read_timeout),
            Phase::Idle { since } => Some(since + limits.idle_timeout),
            Phase::ReadingHead { since } => Some(since + limits.header_read_timeout),
            Phase::Handling => None,
            Phase::Responding { since, .. } => Some(since + limits.write_timeout),
        }
    }

    /// What ran out, if the current phase's deadline has passed.
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> Option<&'static str> {
        let passed = self
            .deadline(limits)
            .is_some_and(|deadline| now >= deadline);
        passed.then(|| match *self.phase() {
            Phase::Opened { .. } => "no request began within the header timeout of the accept",
            Phase::Idle { .. } => "idle for longer than the idle timeout",
            Phase::ReadingHead { .. } => "request head not complete within the header timeout",
            Phase::Responding { .. } => "response not written within the write timeout",
            Phase::Handling => "handler running",
        })
    }
}

/// The TCP stream, telling the watchdog when bytes arrive.
struct WatchedStream {
    inner: TcpStream,
    watchdog: Arc<Watchdog>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watchdog.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// hyper flushes its transport only once its write buffer is empty, so a successful
    /// flush means every byte hyper had to send was handed to the socket.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.watchdog.output_flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that tells the watchdog when hyper is done with it: hyper drops a body
/// once it has taken its last frame (or gives up on it).
struct WatchedBody {
    inner: Body,
    watchdog: Arc<Watchdog>,
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.watchdog.body_done();
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
