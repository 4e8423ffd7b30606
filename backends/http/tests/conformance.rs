//! The full conformance matrix for the HTTP backend against a real `cachekit-server` on an
//! ephemeral loopback port, the raw HTTP API family against the same server, and the HTTP
//! fault family against injected faults.

mod store_errors;
mod support;

use std::sync::OnceLock;

use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::extra_case;
use cachekit_server::BackgroundServer;
use store_errors::{store_errors_keep_their_kind_across_the_server, FailsOnDemand};

/// One server per test binary, shared by every case. Its store fails on the keys that
/// name an error kind (for the `store_errors` rule) and is a plain memory store otherwise.
fn server_url() -> String {
    static SERVER: OnceLock<BackgroundServer> = OnceLock::new();
    support::shared_server(&SERVER, || FailsOnDemand(MemoryBackend::new()))
}

cachekit_conformance::conformance_tests!(
    http => async { HttpBackend::new(HttpConfig::new(server_url())).expect("valid config") },
    http_api => http_api(server_url(), None),
    http_faults => http_faults(|target| async move {
        let mut config = HttpConfig::new(target.base_url);
        config.timeout = target.timeout;
        config.max_response_bytes = target.max_response_bytes;
        config.max_error_body_bytes = target.max_error_body_bytes;
        config.max_health_body_bytes = target.max_health_body_bytes;
        config.max_health_details = target.max_health_details;
        config.retry = RetryPolicy { max_retries: target.max_retries, max_backoff: target.max_backoff, max_retry_after: target.max_retry_after, ..RetryPolicy::default() };
        HttpBackend::new(config).expect("valid config")
    }),
    extra = [
        extra_case!(store_errors_keep_their_kind_across_the_server, "an error the server's store reports reaches the wire as its status and the client as its kind, on every operation, with the store's words in the message where the answer has a body"),
    ],
);
