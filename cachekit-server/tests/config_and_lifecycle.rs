//! What an operator sees of a configuration (its errors, its debug output) and how a
//! background server ends.

use std::time::Duration;

use cachekit_backend_memory::MemoryBackend;
use cachekit_server::{BackgroundServer, ServerConfig};
use rstest::rstest;

fn loopback() -> ServerConfig {
    ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..ServerConfig::default()
    }
}

#[rstest]
#[case::zero_request_timeout(
    ServerConfig { request_timeout: Duration::ZERO, ..loopback() },
    "invalid server configuration: request_timeout must be longer than zero"
)]
#[case::zero_shutdown_timeout(
    ServerConfig { shutdown_timeout: Duration::ZERO, ..loopback() },
    "invalid server configuration: shutdown_timeout must be longer than zero"
)]
#[case::no_request_slots(
    ServerConfig { max_concurrent_requests: 0, ..loopback() },
    "invalid server configuration: max_concurrent_requests must be at least 1"
)]
#[case::no_connections(
    ServerConfig { max_connections: 0, ..loopback() },
    "invalid server configuration: max_connections must be at least 1"
)]
#[case::no_header_bytes(
    ServerConfig { max_header_bytes: 0, ..loopback() },
    "invalid server configuration: max_header_bytes must be at least 1"
)]
fn an_invalid_configuration_is_refused_with_the_field_named(
    #[case] config: ServerConfig,
    #[case] message: &str,
) {
    let err = config.validate().expect_err("refused");
    assert_eq!(err.to_string(), message);
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(io.to_string(), message);
}

#[test]
fn the_default_configuration_on_loopback_is_valid() {
    assert_eq!(loopback().validate(), Ok(()));
}

#[test]
fn debug_output_shows_the_limits_but_never_the_token() {
    let config = ServerConfig {
        token: Some("s3cret-token".into()),
        max_body_bytes: 12_345,
        ..loopback()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret-token"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("max_body_bytes: 12345"), "{shown}");
}

#[test]
fn dropping_a_background_server_closes_its_port() {
    let server = BackgroundServer::spawn(MemoryBackend::new, loopback()).expect("start");
    let addr = server
        .base_url()
        .strip_prefix("http://")
        .expect("an http base URL")
        .to_owned();
    std::net::TcpStream::connect(&addr).expect("listening while alive");
    drop(server);
    let after = std::net::TcpStream::connect(&addr);
    assert!(after.is_err(), "still accepting on {addr} after the drop");
}
