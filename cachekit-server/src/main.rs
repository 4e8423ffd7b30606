//! `cachekit-server`: serves the in-memory backend over the cachekit HTTP API.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_core::Backend;
use cachekit_server::{start, ServerConfig};
use clap::builder::TypedValueParser;
use clap::Parser;

/// Serve a cachekit backend over HTTP: GET/PUT/DELETE/HEAD /cache/{key}, GET /health.
///
/// The in-memory store is bounded by --max-memory-bytes (256 MiB by default), evicting
/// entries when full. Every connection and request limit below has a default; each flag can
/// also be set by the environment variable named beside it. Ctrl-C (SIGINT) or SIGTERM stops
/// the server: requests in flight get --shutdown-timeout-ms to finish; a second signal stops
/// it at once.
#[derive(Debug, Parser)]
#[command(name = "cachekit-server", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port and prints it). Beyond loopback,
    /// set a token: without one, a warning is printed on stderr.
    #[arg(long, env = "CACHEKIT_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on /cache requests (and for /health details).
    /// Must be non-empty visible ASCII; an empty token is refused.
    #[arg(long, env = "CACHEKIT_SERVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Most bytes the in-memory store holds (keys + values + a fixed per-entry overhead),
    /// evicting entries beyond it.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    max_memory_bytes: usize,
    /// Most entries the in-memory store holds (evicting beyond it); by default only
    /// --max-memory-bytes bounds it.
    #[arg(long, env = "CACHEKIT_SERVER_CAPACITY")]
    capacity: Option<usize>,
    /// Largest accepted value, in bytes; larger PUTs get 413.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest a backend call (and /health) may take, in milliseconds; then 504.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_REQUEST_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    request_timeout_ms: u64,
    /// Longest a request body may take to arrive, in milliseconds; then 408.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_BODY_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    body_read_timeout_ms: u64,
    /// Longest a request head may take to arrive once started, in milliseconds; then the
    /// connection is closed. Also how long a new connection may stay silent before its
    /// first request begins.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_read_timeout_ms: u64,
    /// Longest a keep-alive connection may sit idle between requests (after its first
    /// request), in milliseconds.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_IDLE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    idle_timeout_ms: u64,
    /// Longest writing one response may take, in milliseconds; a client that does not read
    /// is disconnected.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_WRITE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    write_timeout_ms: u64,
    /// Most requests handled at once; others wait up to --queue-timeout-ms for a slot.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    max_concurrent_requests: usize,
    /// Longest a request waits for a slot, in milliseconds; then 503 with Retry-After: 1.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_QUEUE_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    queue_timeout_ms: u64,
    /// Most connections open at once; further ones wait in the listen backlog.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Largest request head (request line + headers), in bytes; larger ones get 431.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Longest a shutdown waits for requests in flight, in milliseconds, before closing
    /// their connections and exiting.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    shutdown_timeout_ms: u64,
}

impl Args {
    fn memory_config(&self) -> MemoryConfig {
        MemoryConfig {
            max_value_bytes: self.max_body_bytes,
            capacity: self.capacity,
            max_bytes: Some(self.max_memory_bytes),
            ..MemoryConfig::default()
        }
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            token: self.token.clone(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_concurrent_requests: self.max_concurrent_requests,
            queue_timeout: Duration::from_millis(self.queue_timeout_ms),
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // stdout carries only the listening line that scripts read.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // An empty CACHEKIT_SERVER_TOKEN arrives as an empty token (most likely a missing
    // secret), which validation refuses like `--token ""`.
    let args = Args::parse();
    let config = args.server_config();
    if let Err(err) = config.validate() {
        eprintln!("cachekit-server: {err}");
        return ExitCode::from(2);
    }
    if let Some(warning) = config.open_access_warning() {
        eprintln!("cachekit-server: warning: {warning}");
    }
    let backend = MemoryBackend::with_config(args.memory_config());
    if let Some(largest) = backend.capabilities().max_value_bytes {
        if largest < args.max_body_bytes {
            eprintln!(
                "cachekit-server: note: with --max-memory-bytes {}, the largest value the store \
                 can hold is {largest} bytes; larger PUTs get 413",
                args.max_memory_bytes
            );
        }
    }
    let server = match start(Arc::new(backend), &config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("cachekit-server: cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    // Printed on stdout so scripts that start the server on port 0 can read the address.
    println!("cachekit-server listening on {}", server.base_url());
    if let Err(err) = stop_requested().await {
        eprintln!("cachekit-server: cannot wait for a stop signal: {err}");
    }
    tracing::info!(
        "shutting down; requests in flight get {:?} to finish (Ctrl-C again to stop now)",
        config.shutdown_timeout
    );
    tokio::select! {
        stopped = server.shutdown() => match stopped {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("cachekit-server: server failed: {err}");
                ExitCode::FAILURE
            }
        },
        _ = stop_requested() => ExitCode::FAILURE,
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what service managers and container
/// runtimes send).
async fn stop_requested() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_bounded_by_256_mib_unless_told_otherwise() {
        let args = Args::try_parse_from(["cachekit-server"]).expect("defaults parse");
        assert_eq!(args.memory_config().max_bytes, Some(256 * 1024 * 1024));
        let args = Args::try_parse_from(["cachekit-server", "--max-memory-bytes", "1048576"])
            .expect("flag parses");
        assert_eq!(args.memory_config().max_bytes, Some(1024 * 1024));
        assert!(Args::try_parse_from(["cachekit-server", "--max-memory-bytes", "0"]).is_err());
    }

    #[test]
    fn the_flags_defaults_are_the_library_defaults() {
        let args = Args::try_parse_from(["cachekit-server"]).expect("defaults parse");
        assert_eq!(args.server_config(), ServerConfig::default());
    }
}
