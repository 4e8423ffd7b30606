//! Connection hygiene: every way a client can hold the server's resources is bounded.
//! Timeouts are short here; bounds on the outcome are generous, so that a loaded machine
//! only makes the tests slower, never wrong.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_core::{
    async_trait, Backend, Bytes, Capabilities, HealthReport, Result as BackendResult,
};
use cachekit_server::{start, RunningServer, ServerConfig};
use support::{get_request, put_request, RawConnection};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};

/// A short timeout the tests provoke.
const SHORT: Duration = Duration::from_millis(300);
/// A timeout the tests never reach.
const LONG: Duration = Duration::from_secs(60);
/// How long a test waits for an outcome that should come after `SHORT`.
const BOUND: Duration = Duration::from_secs(10);

fn config() -> ServerConfig {
    ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        header_read_timeout: LONG,
        body_read_timeout: LONG,
        idle_timeout: LONG,
        write_timeout: LONG,
        ..ServerConfig::default()
    }
}

async fn memory_server(config: ServerConfig) -> RunningServer {
    let backend = MemoryBackend::with_config(MemoryConfig {
        max_value_bytes: config.max_body_bytes,
        ..MemoryConfig::default()
    });
    start(Arc::new(backend), &config)
        .await
        .expect("bind loopback")
}

/// Item C(i): a client that starts a request head and stalls is disconnected after the
/// header timeout, while a keep-alive connection between requests is governed by the
/// (longer) idle timeout instead.
#[tokio::test]
async fn a_stalled_request_head_is_closed_after_the_header_timeout() {
    let server = memory_server(ServerConfig {
        header_read_timeout: SHORT,
        ..config()
    })
    .await;
    let mut idle = RawConnection::connect(server.local_addr()).await;
    assert_eq!(idle.exchange(&get_request("k")).await.status, 404);
    let mut stalled = RawConnection::connect(server.local_addr()).await;
    stalled
        .send(b"GET /cache/k HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await;
    let (after, _) = stalled
        .closed_within(BOUND)
        .await
        .expect("the stalled connection must be closed");
    assert!(after >= SHORT, "closed after {after:?}, before the timeout");
    assert!(
        idle.closed_within(SHORT * 2).await.is_err(),
        "an idle keep-alive connection is not cut by the header timeout"
    );
    // The server still serves.
    let mut fresh = RawConnection::connect(server.local_addr()).await;
    assert_eq!(fresh.exchange(&get_request("k")).await.status, 404);
}

/// Security finding 2: a connection that sends nothing is closed once the header timeout
/// has passed since it was accepted, not after the (much longer) idle timeout, so silent
/// sockets cannot hold every connection slot; a keep-alive connection that finished a
/// request is still governed by the idle timeout. Before the fix the silent connection was
/// kept for the idle timeout (here 60 s).
#[tokio::test]
async fn a_connection_that_never_sends_is_closed_after_the_header_timeout() {
    let server = memory_server(ServerConfig {
        header_read_timeout: SHORT,
        idle_timeout: LONG,
        ..config()
    })
    .await;
    let mut used = RawConnection::connect(server.local_addr()).await;
    assert_eq!(used.exchange(&put_request("k", b"v")).await.status, 204);
    let mut silent = RawConnection::connect(server.local_addr()).await;
    let (after, read) = silent
        .closed_within(BOUND)
        .await
        .expect("a connection that never sends must be closed by the header timeout");
    assert!(after >= SHORT * 9 / 10, "closed after {after:?}");
    assert_eq!(read, 0, "closed without an answer");
    assert!(
        used.closed_within(SHORT * 2).await.is_err(),
        "an idle keep-alive connection is governed by the idle timeout"
    );
    assert_eq!(used.exchange(&get_request("k")).await.body, b"v");
}

/// Security finding 2: the first request's first byte must come within the header timeout
/// of the accept; a client that sends it in time is served, its head then timed from that
/// first byte (here it is complete after more than the header timeout since the accept).
#[tokio::test]
async fn a_first_request_started_in_time_is_served() {
    let header_read_timeout = SHORT * 4;
    let server = memory_server(ServerConfig {
        header_read_timeout,
        ..config()
    })
    .await;
    let mut connection = RawConnection::connect(server.local_addr()).await;
    tokio::time::sleep(header_read_timeout / 2).await;
    connection.send(b"GET /cache/k HTTP/1.1\r\n").await;
    tokio::time::sleep(header_read_timeout / 2 + SHORT / 3).await;
    connection.send(b"Host: test\r\n\r\n").await;
    let response = tokio::time::timeout(BOUND, connection.response())
        .await
        .expect("answered within the bound");
    assert_eq!(response.map(|r| r.status), Some(404));
}

/// Item C(ii): a body that stops arriving gets `408` after the body timeout, the
/// connection is closed, and nothing is stored.
#[tokio::test]
async fn a_stalled_body_gets_408_after_the_body_timeout() {
    let server = memory_server(ServerConfig {
        body_read_timeout: SHORT,
        ..config()
    })
    .await;
    let mut connection = RawConnection::connect(server.local_addr()).await;
    let started = Instant::now();
    connection
        .send(b"PUT /cache/k HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nv")
        .await;
    let response = tokio::time::timeout(BOUND, connection.response())
        .await
        .expect("an answer within the bound")
        .expect("a response before the close");
    assert_eq!(response.status, 408, "{response:?}");
    assert!(started.elapsed() >= SHORT);
    assert!(connection.closed_within(BOUND).await.is_ok());
    let mut check = RawConnection::connect(server.local_addr()).await;
    assert_eq!(check.exchange(&get_request("k")).await.status, 404);
}

/// Item C(iii): a keep-alive connection with no request in progress is closed after the
/// idle timeout. (One that never sent anything is closed sooner, after the header timeout:
/// see `a_connection_that_never_sends_is_closed_after_the_header_timeout`.)
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = memory_server(ServerConfig {
        idle_timeout: SHORT,
        ..config()
    })
    .await;
    let mut used = RawConnection::connect(server.local_addr()).await;
    assert_eq!(used.exchange(&put_request("k", b"v")).await.status, 204);
    let (after, _) = used
        .closed_within(BOUND)
        .await
        .expect("an idle connection must be closed");
    assert!(after >= SHORT * 9 / 10, "closed after {after:?}");
}

/// A backend whose `get` waits at a gate, counting the calls that reached it.
struct Gated {
    gate: Semaphore,
    entered: AtomicUsize,
    entered_changed: Notify,
}

impl Gated {
    fn new() -> Self {
        Gated {
            gate: Semaphore::new(0),
            entered: AtomicUsize::new(0),
            entered_changed: Notify::new(),
        }
    }

    async fn until_entered(&self, count: usize) {
        while self.entered.load(Ordering::SeqCst) < count {
            let changed = self.entered_changed.notified();
            if self.entered.load(Ordering::SeqCst) >= count {
                break;
            }
            changed.await;
        }
    }
}

#[async_trait]
impl Backend for Gated {
    async fn get(&self, _key: &str) -> BackendResult<Option<Bytes>> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.entered_changed.notify_waiters();
        let _pass = self.gate.acquire().await;
        Ok(None)
    }
    async fn set(&self, _key: &str, _value: Bytes, _ttl: Option<Duration>) -> BackendResult<()> {
        Ok(())
    }
    async fn delete(&self, _key: &str) -> BackendResult<bool> {
        Ok(false)
    }
    async fn exists(&self, _key: &str) -> BackendResult<bool> {
        Ok(false)
    }
    async fn health_check(&self) -> HealthReport {
        HealthReport::probe("gated", Duration::from_secs(1), async {
            Ok(Default::default())
        })
        .await
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("gated")
    }
}

/// Item C(iv): with N requests in flight, request N+1 waits up to the queue timeout for a
/// slot and is then refused with `503` and `Retry-After`, without reaching the backend;
/// once the slow ones finish, the server serves again.
#[tokio::test]
async fn requests_beyond_the_concurrency_limit_get_503_after_the_queue_timeout() {
    const LIMIT: usize = 2;
    let backend = Arc::new(Gated::new());
    let server = start(
        backend.clone(),
        &ServerConfig {
            max_concurrent_requests: LIMIT,
            queue_timeout: SHORT,
            request_timeout: LONG,
            ..config()
        },
    )
    .await
    .expect("bind");
    let mut slow = Vec::new();
    for _ in 0..LIMIT {
        let mut connection = RawConnection::connect(server.local_addr()).await;
        connection.send(&get_request("slow")).await;
        slow.push(connection);
    }
    tokio::time::timeout(BOUND, backend.until_entered(LIMIT))
        .await
        .expect("the slow requests reach the backend");

    let mut extra = RawConnection::connect(server.local_addr()).await;
    let started = Instant::now();
    let refused = tokio::time::timeout(BOUND, extra.exchange(&get_request("extra")))
        .await
        .expect("the extra request is answered within the bound");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(started.elapsed() >= SHORT, "it waited for a slot first");
    assert_eq!(backend.entered.load(Ordering::SeqCst), LIMIT);

    backend.gate.add_permits(LIMIT + 1);
    for mut connection in slow {
        let answered = tokio::time::timeout(BOUND, connection.response()).await;
        assert_eq!(answered.ok().flatten().map(|r| r.status), Some(404));
    }
    let served = tokio::time::timeout(BOUND, extra.exchange(&get_request("again")))
        .await
        .expect("served again once slots are free");
    assert_eq!(served.status, 404);
}

/// A request that finds no free slot but gets one within the queue timeout is served.
#[tokio::test]
async fn a_request_waiting_for_a_slot_is_served_when_one_frees_in_time() {
    let backend = Arc::new(Gated::new());
    let server = start(
        backend.clone(),
        &ServerConfig {
            max_concurrent_requests: 1,
            queue_timeout: LONG,
            request_timeout: LONG,
            ..config()
        },
    )
    .await
    .expect("bind");
    let mut first = RawConnection::connect(server.local_addr()).await;
    first.send(&get_request("first")).await;
    tokio::time::timeout(BOUND, backend.until_entered(1))
        .await
        .expect("the first request reaches the backend");
    let mut queued = RawConnection::connect(server.local_addr()).await;
    queued.send(&get_request("queued")).await;
    tokio::time::sleep(SHORT).await;
    assert_eq!(backend.entered.load(Ordering::SeqCst), 1, "it waits");
    backend.gate.add_permits(2);
    let answered = tokio::time::timeout(BOUND, queued.response()).await;
    assert_eq!(answered.ok().flatten().map(|r| r.status), Some(404));
}

/// Beyond `max_connections`, a new connection is not served until an open one closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = memory_server(ServerConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let mut first = RawConnection::connect(server.local_addr()).await;
    assert_eq!(first.exchange(&get_request("k")).await.status, 404);
    let mut second = RawConnection::connect(server.local_addr()).await;
    assert_eq!(second.exchange(&get_request("k")).await.status, 404);

    let mut third = RawConnection::connect(server.local_addr()).await;
    third.send(&get_request("k")).await;
    let early = tokio::time::timeout(SHORT * 2, third.response()).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    drop(first);
    let answered = tokio::time::timeout(BOUND, third.response()).await;
    assert_eq!(answered.ok().flatten().map(|r| r.status), Some(404));
}

/// A client that asks for a large value and never reads the answer is disconnected after
/// the write timeout, instead of holding the connection (and the value) forever.
#[tokio::test]
async fn a_client_that_does_not_read_its_response_is_cut_after_the_write_timeout() {
    const VALUE_BYTES: usize = 32 * 1024 * 1024;
    let server = memory_server(ServerConfig {
        max_body_bytes: VALUE_BYTES,
        write_timeout: SHORT,
        ..config()
    })
    .await;
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{}/cache/big", server.base_url()))
        .body(vec![b'x'; VALUE_BYTES])
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), reqwest::StatusCode::NO_CONTENT);

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(server.local_addr()).await.expect("connect");
    stream.write_all(&get_request("big")).await.expect("write");
    tokio::time::sleep(SHORT * 4).await;
    let mut reader = RawConnection::from_stream(stream);
    match reader.closed_within(BOUND).await {
        Ok((_, read)) => assert!(read < VALUE_BYTES, "got the whole value: {read} bytes"),
        Err(read) => panic!("still open after {BOUND:?} ({read} bytes read)"),
    }
}

/// The write timeout bounds writing a response, not the keep-alive wait after it: a
/// connection whose responses were all read stays open for its next request.
#[tokio::test]
async fn a_connection_that_read_its_response_is_not_cut_by_the_write_timeout() {
    let server = memory_server(ServerConfig {
        write_timeout: SHORT,
        header_read_timeout: SHORT,
        ..config()
    })
    .await;
    let mut connection = RawConnection::connect(server.local_addr()).await;
    assert_eq!(
        connection.exchange(&put_request("k", b"v")).await.status,
        204
    );
    assert_eq!(connection.exchange(&get_request("k")).await.body, b"v");
    assert!(
        connection.closed_within(SHORT * 3).await.is_err(),
        "closed while idle, long before the idle timeout"
    );
    assert_eq!(connection.exchange(&get_request("k")).await.body, b"v");
}

/// Request heads larger than `max_header_bytes` get `431`.
#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let server = memory_server(ServerConfig {
        max_header_bytes: 1024,
        ..config()
    })
    .await;
    let mut connection = RawConnection::connect(server.local_addr()).await;
    let padding = "p".repeat(2048);
    let request = format!("GET /cache/k HTTP/1.1\r\nHost: test\r\nX-Pad: {padding}\r\n\r\n");
    let response = tokio::time::timeout(BOUND, connection.exchange(request.as_bytes()))
        .await
        .expect("answered");
    assert_eq!(response.status, 431);
}

/// A backend whose health check never returns.
struct HangingHealth;

#[async_trait]
impl Backend for HangingHealth {
    async fn get(&self, _key: &str) -> BackendResult<Option<Bytes>> {
        Ok(None)
    }
    async fn set(&self, _key: &str, _value: Bytes, _ttl: Option<Duration>) -> BackendResult<()> {
        Ok(())
    }
    async fn delete(&self, _key: &str) -> BackendResult<bool> {
        Ok(false)
    }
    async fn exists(&self, _key: &str) -> BackendResult<bool> {
        Ok(false)
    }
    async fn health_check(&self) -> HealthReport {
        std::future::pending().await
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("hanging")
    }
}

/// `/health` is bounded by the request timeout like every backend call: a hanging check is
/// reported unhealthy instead of hanging the request.
#[tokio::test]
async fn a_hanging_health_check_is_unhealthy_within_the_request_timeout() {
    let server = start(
        Arc::new(HangingHealth),
        &ServerConfig {
            request_timeout: SHORT,
            ..config()
        },
    )
    .await
    .expect("bind");
    let started = std::time::Instant::now();
    let response =
        tokio::time::timeout(BOUND, reqwest::get(format!("{}/health", server.base_url())))
            .await
            .expect("answered within the bound")
            .expect("request");
    let round_trip = started.elapsed();
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["healthy"], false);
    assert_eq!(body["backend_type"], "hanging");
    // The time it waited, in milliseconds: at least the timeout, at most the round trip.
    let latency_ms = body["latency_ms"].as_f64().expect("a latency_ms number");
    let waited = SHORT.as_secs_f64() * 1000.0..=round_trip.as_secs_f64() * 1000.0;
    assert!(
        waited.contains(&latency_ms),
        "latency_ms {latency_ms} outside {waited:?}"
    );
}

/// Item C(v), library side: `shutdown` returns within the shutdown timeout even while a
/// client trickles a body, and closes that client's connection.
#[tokio::test]
async fn shutdown_closes_a_trickling_client_after_the_shutdown_timeout() {
    let server = memory_server(ServerConfig {
        shutdown_timeout: SHORT,
        ..config()
    })
    .await;
    let mut trickler = RawConnection::connect(server.local_addr()).await;
    trickler
        .send(b"PUT /cache/k HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n")
        .await;
    let mut stream = trickler.into_stream();
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            if stream.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(BOUND, server.shutdown())
        .await
        .expect("shutdown within the bound")
        .expect("clean shutdown");
    let took = started.elapsed();
    assert!(
        took >= SHORT,
        "it waited for the request in flight ({took:?})"
    );
    let cut = tokio::time::timeout(BOUND, trickle)
        .await
        .expect("the trickler notices")
        .expect("trickle task");
    assert!(cut, "the trickling connection was closed");
}
