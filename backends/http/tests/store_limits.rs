//! The raw HTTP API family against a `cachekit-server` whose store holds smaller values
//! than the server's body limit, as an operator who caps the store but not the server
//! configures it. A value one byte over the store's maximum passes the body limit and is
//! refused by the store, so the server must carry the store's refusal to the wire as `413`,
//! not turn it into a server error. (Through `HttpBackend` this path is unreachable: the
//! client refuses an oversized value before sending it.)

mod support;

use std::sync::OnceLock;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_conformance::Suite;
use cachekit_core::Capabilities;
use cachekit_server::{BackgroundServer, ServerConfig};

/// The store's value limit, far below the server's default body limit (8 MiB).
const STORE_MAX_VALUE_BYTES: usize = 48 * 1024 + 7;

fn main() -> std::process::ExitCode {
    // A value one byte over the store's limit must pass the server's body limit.
    assert!(ServerConfig::default().max_body_bytes > STORE_MAX_VALUE_BYTES + 1);
    static SERVER: OnceLock<BackgroundServer> = OnceLock::new();
    let url = support::shared_server(&SERVER, || {
        MemoryBackend::with_config(MemoryConfig {
            max_value_bytes: STORE_MAX_VALUE_BYTES,
            ..MemoryConfig::default()
        })
    });
    let declared = Capabilities::new("cachekit-server over a capped store")
        .with_max_value_bytes(STORE_MAX_VALUE_BYTES);
    cachekit_conformance::harness::main(vec![Suite::http_api_declaring(
        "http_api_store_limits",
        &url,
        None,
        declared,
    )])
}
