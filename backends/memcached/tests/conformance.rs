//! The full conformance matrix against real memcached processes, one per suite and test
//! binary, shared by every case through the kit's unique key prefixes:
//!
//! - `memcached`: a server with default settings (`-I 1m`), or the one named by
//!   `CACHEKIT_MEMCACHED_ADDR`.
//! - `memcached_small_items`: a server with the smallest item size memcached allows
//!   (`-I 1k`), so the value-limit cases hit the limit the server really enforces (779
//!   bytes under the longest key), through a backend with a key prefix.
//! - `memcached_no_eviction`: a server started with `-M`, which answers "out of memory"
//!   instead of evicting, and holds far more memory than the cases write. There the test
//!   (not the backend, which must declare that memcached may evict) declares
//!   `may_evict: false`, so the cases that need every entry to stay — scale, the HashMap
//!   model, deferred reads, readers during writes — run too.

use std::sync::OnceLock;

use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_conformance::WithCapabilities;
use cachekit_core::Backend;

/// `-I 1k` needs a slab chunk no larger than the item (in bytes, whatever the help says).
const SMALL_ITEMS: &[&str] = &["-I", "1k", "-o", "slab_chunk_max=1024"];
const NO_EVICTION: &[&str] = &["-M", "-m", "256"];

fn server(cell: &'static OnceLock<MemcachedServer>, args: &'static [&str]) -> String {
    cell.get_or_init(|| {
        let server = if args.is_empty() {
            MemcachedServer::start()
        } else {
            MemcachedServer::start_with(args)
        };
        let server = server.unwrap_or_else(|why| panic!("memcached conformance cannot run: {why}"));
        eprintln!("{server}");
        server
    })
    .addr_string()
}

fn default_server() -> String {
    static SERVER: OnceLock<MemcachedServer> = OnceLock::new();
    server(&SERVER, &[])
}

fn small_items_server() -> String {
    static SERVER: OnceLock<MemcachedServer> = OnceLock::new();
    server(&SERVER, SMALL_ITEMS)
}

fn no_eviction_server() -> String {
    static SERVER: OnceLock<MemcachedServer> = OnceLock::new();
    server(&SERVER, NO_EVICTION)
}

async fn connect(config: MemcachedConfig) -> MemcachedBackend {
    let addr = config.addr.clone();
    MemcachedBackend::connect(config)
        .await
        .unwrap_or_else(|err| panic!("connect to memcached at {addr}: {err}"))
}

async fn without_eviction(config: MemcachedConfig) -> WithCapabilities<MemcachedBackend> {
    let backend = connect(config).await;
    let declared = backend.capabilities().with_may_evict(false);
    WithCapabilities::new(backend, declared)
}

cachekit_conformance::conformance_tests!(
    memcached => connect(MemcachedConfig::new(default_server())),
    memcached_small_items => connect(MemcachedConfig::new(small_items_server()).with_key_prefix("ck:")),
    memcached_no_eviction => without_eviction(MemcachedConfig::new(no_eviction_server())),
);
