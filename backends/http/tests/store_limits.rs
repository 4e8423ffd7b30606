//! The full matrix against a `cachekit-server` whose store holds smaller values than the
//! server's body limit, as an operator who caps the store but not the server configures
//! it: a value one byte over the maximum passes the body limit and is refused by the
//! store, so the server must carry the store's `value_too_large` to the client (`413`),
//! not turn it into a server error.

use std::sync::OnceLock;

use cachekit_backend_http::{HttpBackend, HttpConfig};
use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_server::{BackgroundServer, ServerConfig};

/// The store's value limit, far below the server's default body limit (8 MiB).
const STORE_MAX_VALUE_BYTES: usize = 48 * 1024 + 7;

fn server_url() -> String {
    static SERVER: OnceLock<BackgroundServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let config = ServerConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                ..ServerConfig::default()
            };
            assert!(config.max_body_bytes > STORE_MAX_VALUE_BYTES + 1);
            let store = || {
                MemoryBackend::with_config(MemoryConfig {
                    max_value_bytes: STORE_MAX_VALUE_BYTES,
                    ..MemoryConfig::default()
                })
            };
            BackgroundServer::spawn(store, config).expect("start cachekit-server on loopback")
        })
        .base_url()
        .to_owned()
}

cachekit_conformance::conformance_tests!(
    http_store_limits => async {
        let mut config = HttpConfig::new(server_url());
        config.max_value_bytes = STORE_MAX_VALUE_BYTES;
        HttpBackend::new(config).expect("valid config")
    },
);
