//! The full conformance matrix for the HTTP backend against a real `cachekit-server` on an
//! ephemeral loopback port, the raw HTTP API family against the same server, and the HTTP
//! fault family against injected faults.

use std::sync::OnceLock;

use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_backend_memory::MemoryBackend;
use cachekit_server::{BackgroundServer, ServerConfig};

/// One server per test binary, on its own thread, shared by every case.
fn server_url() -> String {
    static SERVER: OnceLock<BackgroundServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let config = ServerConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                ..ServerConfig::default()
            };
            BackgroundServer::spawn(MemoryBackend::new, config)
                .expect("start cachekit-server on loopback")
        })
        .base_url()
        .to_owned()
}

cachekit_conformance::conformance_tests!(
    http => async { HttpBackend::new(HttpConfig::new(server_url())).expect("valid config") },
    http_api => http_api(server_url(), None),
    http_faults => http_faults(|target| async move {
        let mut config = HttpConfig::new(target.base_url);
        config.timeout = target.timeout;
        config.max_response_bytes = target.max_response_bytes;
        config.retry = RetryPolicy { max_retries: target.max_retries, max_backoff: target.max_backoff, ..RetryPolicy::default() };
        HttpBackend::new(config).expect("valid config")
    }),
);
