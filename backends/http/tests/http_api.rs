//! The raw HTTP API family: our own server passes all of it, with and without a token, and
//! a third-party-style server that routes `/cache/*key` with a wildcard, parses `ttl`
//! leniently and claims a value limit it never enforces is failed by the rules it breaks —
//! whatever client its users have; so is a hand-rolled server that answers one request per
//! connection and hangs up without saying so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::{run_suite, ConnectionTimeouts, Report, RunOptions, Suite};
use cachekit_core::Capabilities;
use cachekit_server::{BackgroundServer, ServerConfig};

fn run(suite: &Suite) -> Report {
    run_suite(suite, &RunOptions::default())
}

fn failed(report: &Report) -> Vec<String> {
    report.failures().map(|c| c.case.id()).collect()
}

/// Connection timeouts short enough to wait out in a case, and apart by more than the
/// rules' 1.5 s slack where it matters, so that a server that counts one phase's timeout
/// in another's place closes outside the window: the idle timeout (3 s) in place of the
/// header timeout (1 s) closes after 1 + 1.5 s, and the write timeout (2 s) in place of
/// the idle timeout closes before 3 s.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const IDLE_TIMEOUT: Duration = Duration::from_millis(3000);
const WRITE_TIMEOUT: Duration = Duration::from_millis(2000);

fn declared_timeouts(header: Duration, idle: Duration) -> ConnectionTimeouts {
    ConnectionTimeouts::new()
        .with_header(header)
        .with_idle(idle)
}

#[test]
fn cachekit_server_passes_every_api_case_with_a_token() {
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            token: Some("s3cret".to_owned()),
            header_read_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    // Declaring the server's body limit: a larger value is refused on its Content-Length.
    let declared =
        Capabilities::new("http-api").with_max_value_bytes(ServerConfig::default().max_body_bytes);
    let suite = Suite::http_api_declaring(
        "http_api",
        server.base_url(),
        Some("s3cret".to_owned()),
        declared,
    )
    .declaring_connection_timeouts(
        declared_timeouts(HEADER_TIMEOUT, IDLE_TIMEOUT).with_write(WRITE_TIMEOUT),
    );
    let report = run(&suite);
    assert!(report.passed(), "{report}");
    let (passed, _, skipped) = report.counts(None);
    assert_eq!((passed, skipped), (32, 0), "{report}");
}

/// The write rule judges a server against the write timeout it declares: our server,
/// configured to let a response take ten minutes but declared to cut a client that stops
/// reading off after 2 s, is failed on that rule alone.
#[test]
fn a_server_that_waits_on_a_client_that_stopped_reading_is_failed_on_the_write_rule() {
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            write_timeout: Duration::from_secs(600),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let suite = Suite::http_api("unbounded-writes", server.base_url(), None)
        .declaring_connection_timeouts(ConnectionTimeouts::new().with_write(WRITE_TIMEOUT));
    let report = run_suite(
        &suite,
        &RunOptions {
            filter: Some("timeout".to_owned()),
            ..RunOptions::default()
        },
    );
    assert_eq!(failed(&report), [WRITE_RULE], "{report}");
}

/// The connection rules judge a server against what it declares: our server, declared to
/// wait twice as long as it is configured to, is failed on each of them for closing early.
#[test]
fn a_server_that_closes_sooner_than_it_declares_is_failed_on_the_connection_rules() {
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            header_read_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let suite = Suite::http_api("overclaimed", server.base_url(), None)
        .declaring_connection_timeouts(declared_timeouts(HEADER_TIMEOUT * 2, IDLE_TIMEOUT * 2));
    let report = run_suite(
        &suite,
        &RunOptions {
            filter: Some("timeout".to_owned()),
            ..RunOptions::default()
        },
    );
    let mut failed = failed(&report);
    failed.sort();
    assert_eq!(failed, CONNECTION_RULES, "{report}");
}

/// The rule that holds a server to its declared write timeout.
const WRITE_RULE: &str = "http_api::a_client_that_stops_reading_is_cut_off_after_the_write_timeout";

/// The rules that hold a server to its declared header and idle timeouts, sorted.
const CONNECTION_RULES: [&str; 4] = [
    "http_api::a_silent_connection_is_closed_after_the_header_timeout",
    "http_api::a_trickled_head_is_cut_off_after_the_header_timeout",
    "http_api::a_trickled_head_on_a_kept_alive_connection_is_cut_off_after_the_header_timeout",
    "http_api::an_idle_connection_is_closed_after_the_idle_timeout",
];

type Store = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A plausible hand-written server: one wildcard route, so `/cache/a/b` is the key `a/b`,
/// and `ttl` read as a float (`1.5`, `+1`, `1e3` all accepted; the ttl itself ignored).
fn wildcard_server(store: Store) -> Router {
    async fn read(
        State(store): State<Store>,
        Path(key): Path<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        let store = store
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        store.get(&key).cloned().ok_or(StatusCode::NOT_FOUND)
    }
    async fn write(
        State(store): State<Store>,
        Path(key): Path<String>,
        Query(query): Query<HashMap<String, String>>,
        body: Bytes,
    ) -> StatusCode {
        if let Some(ttl) = query.get("ttl") {
            if ttl.parse::<f64>().is_err() {
                return StatusCode::BAD_REQUEST;
            }
        }
        match store.lock() {
            Ok(mut store) => {
                store.insert(key, body.to_vec());
                StatusCode::NO_CONTENT
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    async fn remove(State(store): State<Store>, Path(key): Path<String>) -> StatusCode {
        match store.lock().map(|mut store| store.remove(&key)) {
            Ok(Some(_)) => StatusCode::NO_CONTENT,
            Ok(None) => StatusCode::NOT_FOUND,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    Router::new()
        .route("/cache/{*key}", get(read).put(write).delete(remove))
        .route("/health", get(|| async { "{\"healthy\": true}" }))
        .with_state(store)
}

#[test]
fn a_lenient_wildcard_server_is_failed_on_the_rules_it_breaks() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let app = wildcard_server(Store::default());
    runtime.spawn(async move { axum::serve(listener, app).await });
    // It claims a 1 KiB maximum it never enforces, and connection timeouts it does not
    // have (axum::serve closes no connection for being slow or idle, and waits on a client
    // that stops reading for as long as it takes).
    let declared = Capabilities::new("http-api").with_max_value_bytes(1024);
    let suite = Suite::http_api_declaring("wildcard", &format!("http://{address}"), None, declared)
        .declaring_connection_timeouts(
            declared_timeouts(HEADER_TIMEOUT, IDLE_TIMEOUT).with_write(WRITE_TIMEOUT),
        );
    let report = run(&suite);
    let failed = failed(&report);
    for rule in [
        "http_api::a_value_over_the_declared_maximum_is_413",
        "http_api::a_literal_slash_never_reaches_a_key",
        "http_api::ttl_is_parsed_strictly",
        "http_api::ttl_in_whole_seconds_expires",
    ]
    .into_iter()
    .chain(CONNECTION_RULES)
    .chain([WRITE_RULE])
    {
        assert!(
            failed.iter().any(|id| id == rule),
            "{rule} passed\n{report}"
        );
    }
    // What it does right stays green.
    for rule in [
        "http_api::put_then_get_returns_the_body_exactly",
        "http_api::get_of_a_missing_key_is_404",
        "http_api::encoded_slash_is_part_of_one_key",
    ] {
        assert!(
            !failed.iter().any(|id| id == rule),
            "{rule} failed\n{report}"
        );
    }
}

/// A hand-rolled server that answers each connection's first request correctly (with a
/// `Content-Length`, and no `Connection: close`), then hangs up: the answer looks like one
/// on a persistent connection, so a pooling client sends its next request into a closed
/// socket.
async fn serve_one_request_per_connection(listener: tokio::net::TcpListener, store: Store) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut socket, _)) = listener.accept().await {
        let store = store.clone();
        tokio::spawn(async move {
            let mut raw = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => raw.extend_from_slice(&chunk[..read]),
                }
            };
            let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
            let mut words = head.split_whitespace();
            let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while raw.len() < head_end + length {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => raw.extend_from_slice(&chunk[..read]),
                }
            }
            let key = target.trim_start_matches("/cache/").to_owned();
            let (status, body) = match store.lock() {
                Err(_) => ("500 Internal Server Error", Vec::new()),
                Ok(mut store) => match method {
                    "PUT" => {
                        store.insert(key, raw[head_end..head_end + length].to_vec());
                        ("204 No Content", Vec::new())
                    }
                    "GET" | "HEAD" => match store.get(&key) {
                        Some(value) if method == "GET" => ("200 OK", value.clone()),
                        Some(_) => ("200 OK", Vec::new()),
                        None => ("404 Not Found", Vec::new()),
                    },
                    "DELETE" => match store.remove(&key) {
                        Some(_) => ("204 No Content", Vec::new()),
                        None => ("404 Not Found", Vec::new()),
                    },
                    _ => ("405 Method Not Allowed", Vec::new()),
                },
            };
            let mut answer = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(&body);
            let _ = socket.write_all(&answer).await;
            // Hangs up here, having promised nothing of the kind.
        });
    }
}

#[test]
fn a_server_that_hangs_up_after_each_answer_unannounced_is_failed_on_keep_alive() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    runtime.spawn(serve_one_request_per_connection(listener, Store::default()));
    let suite = Suite::http_api("one-per-connection", &format!("http://{address}"), None);
    let report = run(&suite);
    let failed = failed(&report);
    assert!(
        failed
            .iter()
            .any(|id| id == "http_api::a_kept_alive_connection_serves_the_next_request"),
        "{report}"
    );
    // Request by request it answers right: the rules on fresh connections pass.
    for rule in [
        "http_api::put_then_get_returns_the_body_exactly",
        "http_api::delete_answers_whether_the_entry_existed",
        "http_api::get_of_a_missing_key_is_404",
    ] {
        assert!(
            !failed.iter().any(|id| id == rule),
            "{rule} failed\n{report}"
        );
    }
}

/// A store whose health check never finishes.
struct HangingHealth(MemoryBackend);

#[cachekit_core::async_trait]
impl cachekit_core::Backend for HangingHealth {
    async fn get(&self, key: &str) -> cachekit_core::Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> cachekit_core::Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> cachekit_core::Result<bool> {
        self.0.delete(key).await
    }
    async fn exists(&self, key: &str) -> cachekit_core::Result<bool> {
        self.0.exists(key).await
    }
    async fn health_check(&self) -> cachekit_core::HealthReport {
        std::future::pending().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// Our server over a store whose health check hangs answers `/health` unhealthy once its
/// request timeout runs out, and the `latency_ms` it reports is the time it waited: within
/// the request's round trip, as the health rules require of any service, and no less than
/// the timeout (a smaller figure would make a hung store look quick).
#[test]
fn a_hanging_store_check_reports_the_time_it_waited() {
    let server = BackgroundServer::spawn(
        || HangingHealth(MemoryBackend::new()),
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            request_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let suite = Suite::http_api("hanging-health", server.base_url(), None);
    let report = run_suite(
        &suite,
        &RunOptions {
            filter: Some("health".to_owned()),
            ..RunOptions::default()
        },
    );
    assert_eq!(
        failed(&report),
        ["http_api::health_answers_json_with_healthy"],
        "{report}"
    );
    assert_eq!(report.counts(None), (1, 1, 1), "{report}");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let body = runtime
        .block_on(async {
            reqwest::get(format!("{}/health", server.base_url()))
                .await?
                .bytes()
                .await
        })
        .expect("GET /health");
    let health: serde_json::Value = serde_json::from_slice(&body).expect("a JSON health answer");
    let latency_ms = health["latency_ms"].as_f64().expect("a numeric latency_ms");
    assert!(latency_ms >= 300.0, "{health}");
}
