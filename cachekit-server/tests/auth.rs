//! Token hygiene (item D): which tokens a server accepts as configuration, which
//! `Authorization` headers carry the token, what `/health` shows without one, and when the
//! server warns that it is open to the network.

use std::net::SocketAddr;
use std::sync::Arc;

use cachekit_backend_memory::MemoryBackend;
use cachekit_server::{router, start, RunningServer, ServerConfig};
use reqwest::StatusCode;
use rstest::rstest;

const TOKEN: &str = "s3cret-T0ken";

fn config(token: Option<&str>) -> ServerConfig {
    ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        token: token.map(str::to_owned),
        ..ServerConfig::default()
    }
}

async fn server_with_token() -> RunningServer {
    start(Arc::new(MemoryBackend::new()), &config(Some(TOKEN)))
        .await
        .expect("bind loopback")
}

/// The status a `GET /cache/k` gets with this `Authorization` header (none if `None`).
async fn status_with(server: &RunningServer, authorization: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().get(format!("{}/cache/k", server.base_url()));
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    request.send().await.expect("request").status()
}

#[rstest]
#[case::canonical_scheme("Bearer s3cret-T0ken", StatusCode::NOT_FOUND)]
#[case::lowercase_scheme("bearer s3cret-T0ken", StatusCode::NOT_FOUND)]
#[case::uppercase_scheme("BEARER s3cret-T0ken", StatusCode::NOT_FOUND)]
#[case::mixed_case_scheme("bEaReR s3cret-T0ken", StatusCode::NOT_FOUND)]
#[case::several_spaces_after_scheme("Bearer   s3cret-T0ken", StatusCode::NOT_FOUND)]
#[case::wrong_token("Bearer s3cret-T0keN", StatusCode::UNAUTHORIZED)]
#[case::token_prefix("Bearer s3cret", StatusCode::UNAUTHORIZED)]
#[case::token_extended("Bearer s3cret-T0ken2", StatusCode::UNAUTHORIZED)]
#[case::token_case_differs("Bearer S3CRET-T0KEN", StatusCode::UNAUTHORIZED)]
#[case::other_scheme("Basic s3cret-T0ken", StatusCode::UNAUTHORIZED)]
#[case::scheme_without_space("Bearers3cret-T0ken", StatusCode::UNAUTHORIZED)]
#[case::scheme_only("Bearer", StatusCode::UNAUTHORIZED)]
#[case::scheme_and_space_only("Bearer ", StatusCode::UNAUTHORIZED)]
#[case::token_without_scheme("s3cret-T0ken", StatusCode::UNAUTHORIZED)]
#[case::tab_instead_of_space("Bearer\ts3cret-T0ken", StatusCode::UNAUTHORIZED)]
#[case::trailing_garbage("Bearer s3cret-T0ken extra", StatusCode::UNAUTHORIZED)]
#[case::empty_value("", StatusCode::UNAUTHORIZED)]
#[tokio::test]
async fn authorization_header(#[case] value: &str, #[case] expected: StatusCode) {
    let server = server_with_token().await;
    assert_eq!(
        status_with(&server, Some(value)).await,
        expected,
        "{value:?}"
    );
}

#[tokio::test]
async fn a_request_without_authorization_is_401() {
    let server = server_with_token().await;
    assert_eq!(status_with(&server, None).await, StatusCode::UNAUTHORIZED);
}

#[rstest]
#[case::empty("")]
#[case::only_a_space(" ")]
#[case::inner_space("two words")]
#[case::newline("line\nbreak")]
#[case::non_ascii("caf\u{e9}")]
#[tokio::test]
async fn start_and_router_refuse_a_token_no_client_could_present(#[case] token: &str) {
    let refused = start(Arc::new(MemoryBackend::new()), &config(Some(token))).await;
    let err = refused.expect_err("start must refuse the token");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("token"), "{err}");
    assert!(router(Arc::new(MemoryBackend::new()), &config(Some(token))).is_err());
}

/// The top-level fields of a `/health` answer, and its status.
async fn health_fields(
    server: &RunningServer,
    authorization: Option<&str>,
) -> (StatusCode, Vec<String>) {
    let mut request = reqwest::Client::new().get(format!("{}/health", server.base_url()));
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("health JSON");
    let mut fields: Vec<String> = body
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    fields.sort();
    (status, fields)
}

#[rstest]
#[case::anonymous(None, &["healthy"])]
#[case::wrong_token(Some("Bearer nope"), &["healthy"])]
#[case::valid_token(
    Some("Bearer s3cret-T0ken"),
    &["backend_type", "details", "healthy", "latency_ms"]
)]
#[tokio::test]
async fn health_shows_details_only_with_the_token(
    #[case] authorization: Option<&str>,
    #[case] expected_fields: &[&str],
) {
    let server = server_with_token().await;
    let (status, fields) = health_fields(&server, authorization).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fields, expected_fields);
}

#[tokio::test]
async fn health_shows_details_when_the_server_has_no_token() {
    let server = start(Arc::new(MemoryBackend::new()), &config(None))
        .await
        .expect("bind");
    let (_, fields) = health_fields(&server, None).await;
    assert_eq!(fields, ["backend_type", "details", "healthy", "latency_ms"]);
}

#[rstest]
#[case::ipv4_loopback("127.0.0.1:8080", None, false)]
#[case::other_ipv4_loopback("127.1.2.3:8080", None, false)]
#[case::ipv6_loopback("[::1]:8080", None, false)]
#[case::ipv4_mapped_loopback("[::ffff:127.0.0.1]:8080", None, false)]
#[case::all_ipv4_interfaces("0.0.0.0:8080", None, true)]
#[case::all_ipv6_interfaces("[::]:8080", None, true)]
#[case::private_address("10.1.2.3:8080", None, true)]
#[case::all_interfaces_with_token("0.0.0.0:8080", Some(TOKEN), false)]
fn open_access_warning(#[case] listen: &str, #[case] token: Option<&str>, #[case] warns: bool) {
    let listen: SocketAddr = listen.parse().expect("an address");
    let config = ServerConfig {
        listen,
        ..config(token)
    };
    let warning = config.open_access_warning();
    assert_eq!(warning.is_some(), warns, "{warning:?}");
    if let Some(warning) = warning {
        assert!(warning.contains(&listen.to_string()) && warning.contains("token"));
    }
}
