//! The full conformance matrix for the Redis backend against a real `redis-server` on an
//! ephemeral loopback port (or `CACHEKIT_REDIS_URL`), started once for the whole binary:
//! without a key prefix, and with one (every key the kit writes then lives under it).
//!
//! The server's `proto-max-bulk-len` is set to its minimum, 1 MiB, so the cases at the
//! declared key and value limits exercise the real limit without writing 512 MiB.

use std::process::ExitCode;
use std::sync::OnceLock;

use cachekit_backend_redis::local::RedisServer;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_conformance::{harness::Harness, Suite};

static URL: OnceLock<String> = OnceLock::new();

async fn backend(prefix: &str) -> RedisBackend {
    let url = URL.get().map_or("redis://127.0.0.1:9", String::as_str);
    RedisBackend::connect(RedisConfig::new(url).with_key_prefix(prefix))
        .await
        .expect("connect to the test server")
}

fn main() -> ExitCode {
    // Even listing needs the server: a suite's capabilities come from a connected backend.
    let server = match RedisServer::existing_or_start_with(&["--proto-max-bulk-len", "1mb"]) {
        Ok(server) => server,
        Err(why) => {
            eprintln!("redis conformance cannot run: {why}");
            return ExitCode::FAILURE;
        }
    };
    if !std::env::args().any(|arg| arg == "--list") {
        eprintln!("{server}");
    }
    let _ = URL.set(server.url().to_owned());
    let code = Harness::new()
        .suite(Suite::new("redis", || backend("")))
        .suite(Suite::new("redis_prefixed", || {
            backend("cachekit:conformance:")
        }))
        .run();
    // The server is a child process: it must be killed here, not left running.
    drop(server);
    code
}
