//! What the matrix binaries share: one reference server per test binary, on its own thread,
//! outliving the per-case runtimes.

use std::sync::OnceLock;

use cachekit_core::Backend;
use cachekit_server::{BackgroundServer, ServerConfig};

/// The base URL of the server in `cell`, started on first use on an ephemeral loopback port
/// with the default limits, serving the store `make_store` builds.
pub fn shared_server<B, F>(cell: &'static OnceLock<BackgroundServer>, make_store: F) -> String
where
    B: Backend + 'static,
    F: FnOnce() -> B + Send + 'static,
{
    cell.get_or_init(|| {
        let config = ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..ServerConfig::default()
        };
        BackgroundServer::spawn(make_store, config).expect("start cachekit-server on loopback")
    })
    .base_url()
    .to_owned()
}
