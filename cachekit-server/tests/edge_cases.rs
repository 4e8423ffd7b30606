//! The server's own edge cases, over real HTTP on loopback.

use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, ErrorKind, HealthReport, Result,
};
use cachekit_server::{start, RunningServer, ServerConfig};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config() -> ServerConfig {
    ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        max_body_bytes: 1024,
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

async fn json_kind(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    (status, field("kind"), field("error"))
}

#[tokio::test]
async fn cache_requests_need_the_token_but_health_does_not() {
    let server = memory_server(ServerConfig {
        token: Some("s3cret".into()),
        ..config()
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/cache/k", server.base_url());

    let anonymous = client.get(&url).send().await.expect("request");
    let (status, kind, _) = json_kind(anonymous).await;
    assert_eq!((status, kind.as_str()), (StatusCode::UNAUTHORIZED, "auth"));

    let wrong = client
        .get(&url)
        .bearer_auth("s3creT")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let put = client
        .put(&url)
        .bearer_auth("s3cret")
        .body("v")
        .send()
        .await
        .expect("request");
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let get = client
        .get(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.bytes().await.expect("body").as_ref(), b"v");

    let health = client
        .get(format!("{}/health", server.base_url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = health.json().await.expect("health JSON");
    assert_eq!(body["healthy"], true);
    assert_eq!(body["backend_type"], "memory");
    assert!(body["latency_ms"].is_number());

    let anonymous_health = client
        .get(format!("{}/health", server.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous_health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let server = memory_server(config()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/cache/big", server.base_url());
    let response = client
        .put(&url)
        .body(vec![7u8; 1025])
        .send()
        .await
        .expect("request");
    let (status, kind, _) = json_kind(response).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large")
    );
    let get = client.get(&url).send().await.expect("request");
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    let at_limit = client
        .put(&url)
        .body(vec![7u8; 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(at_limit.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn malformed_ttls_are_400_with_a_message_naming_the_ttl() {
    let server = memory_server(config()).await;
    let client = reqwest::Client::new();
    for ttl in ["abc", "-1", "0", "1.5", "", "99999999999"] {
        let url = format!("{}/cache/k?ttl={ttl}", server.base_url());
        let response = client.put(&url).body("v").send().await.expect("request");
        let (status, kind, message) = json_kind(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "ttl={ttl}");
        assert_eq!(kind, "invalid_argument", "ttl={ttl}");
        assert!(message.contains("ttl"), "ttl={ttl}: {message}");
        let stored = client
            .get(format!("{}/cache/k", server.base_url()))
            .send()
            .await
            .expect("request");
        assert_eq!(
            stored.status(),
            StatusCode::NOT_FOUND,
            "ttl={ttl} must store nothing"
        );
    }
}

#[tokio::test]
async fn traversal_keys_are_plain_keys_and_raw_traversal_reaches_nothing() {
    let server = memory_server(config()).await;
    let client = reqwest::Client::new();
    let base = server.base_url();
    // `../secret` as one encoded segment is just a key.
    let put = client
        .put(format!("{base}/cache/..%2Fsecret"))
        .body("a")
        .send()
        .await
        .expect("request");
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let aliased = client
        .get(format!("{base}/cache/secret"))
        .send()
        .await
        .expect("request");
    assert_eq!(aliased.status(), StatusCode::NOT_FOUND);
    let itself = client
        .get(format!("{base}/cache/..%2Fsecret"))
        .send()
        .await
        .expect("request");
    assert_eq!(itself.bytes().await.expect("body").as_ref(), b"a");

    // A raw, unnormalised traversal path matches no route at all.
    let addr = server.local_addr();
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET /cache/../health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let empty = client
        .get(format!("{base}/cache/"))
        .send()
        .await
        .expect("request");
    let (status, kind, _) = json_kind(empty).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_key")
    );
}

/// A backend whose every call fails with one error, or hangs.
struct Failing(Option<ErrorKind>);

impl Failing {
    async fn fail<T>(&self) -> Result<T> {
        match self.0 {
            Some(kind) => {
                Err(BackendError::new(kind, "injected").with_retry_after(Duration::from_secs(3)))
            }
            None => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Backend for Failing {
    async fn get(&self, _key: &str) -> Result<Option<Bytes>> {
        self.fail().await
    }
    async fn set(&self, _key: &str, _value: Bytes, _ttl: Option<Duration>) -> Result<()> {
        self.fail().await
    }
    async fn delete(&self, _key: &str) -> Result<bool> {
        self.fail().await
    }
    async fn exists(&self, _key: &str) -> Result<bool> {
        self.fail().await
    }
    async fn health_check(&self) -> HealthReport {
        HealthReport::probe("failing", Duration::from_millis(100), self.fail()).await
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("failing")
    }
}

#[tokio::test]
async fn backend_errors_map_to_statuses_and_a_hang_to_504() {
    let cases = [
        (
            Some(ErrorKind::Throttled),
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
        ),
        (
            Some(ErrorKind::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            Some(ErrorKind::InvalidKey),
            StatusCode::BAD_REQUEST,
            "invalid_key",
        ),
        (
            Some(ErrorKind::ValueTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE,
            "value_too_large",
        ),
        (
            Some(ErrorKind::Protocol),
            StatusCode::BAD_GATEWAY,
            "protocol",
        ),
        (None, StatusCode::GATEWAY_TIMEOUT, "timeout"),
    ];
    let client = reqwest::Client::new();
    for (kind, expected_status, expected_kind) in cases {
        let config = ServerConfig {
            request_timeout: Duration::from_millis(200),
            ..config()
        };
        let server = start(Arc::new(Failing(kind)), &config).await.expect("bind");
        let response = client
            .get(format!("{}/cache/k", server.base_url()))
            .send()
            .await
            .expect("request");
        let retry_after = response.headers().get("retry-after").cloned();
        let (status, kind_name, _) = json_kind(response).await;
        assert_eq!(
            (status, kind_name.as_str()),
            (expected_status, expected_kind)
        );
        if kind == Some(ErrorKind::Throttled) {
            assert_eq!(
                retry_after.as_ref().and_then(|v| v.to_str().ok()),
                Some("3")
            );
        }
        let health = client
            .get(format!("{}/health", server.base_url()))
            .send()
            .await
            .expect("request");
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        server.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test]
async fn shutdown_finishes_cleanly_and_stops_listening() {
    let server = memory_server(config()).await;
    let url = format!("{}/cache/k", server.base_url());
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .put(&url)
            .body("v")
            .send()
            .await
            .expect("request")
            .status(),
        StatusCode::NO_CONTENT
    );
    server.shutdown().await.expect("clean shutdown");
    let after = reqwest::Client::new().get(&url).send().await;
    assert!(
        after.is_err_and(|err| err.is_connect()),
        "the port must be closed"
    );
}
