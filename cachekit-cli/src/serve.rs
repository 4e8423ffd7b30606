//! `cachekit serve` (and the `cachekit-server` binary): the reference server, the memory
//! backend served over the cachekit HTTP API with every connection and request limit
//! explicit. The flags live here, not in the `cachekit-server` library, so that library
//! depends on neither clap, tracing-subscriber nor the memory backend.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_core::Backend;
use cachekit_server::{start, ServerConfig};
use clap::builder::TypedValueParser;

/// The reference server's flags: where to listen, the token, the store's bounds and every
/// connection and request limit, each with a default and an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port and prints it). Beyond loopback,
    /// set a token: without one, a warning is printed on stderr.
    #[arg(long, env = "CACHEKIT_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on /cache requests (and for /health details).
    /// Must be non-empty visible ASCII; an empty token is refused.
    #[arg(long, env = "CACHEKIT_SERVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Most bytes the in-memory store holds (keys + values + a fixed per-entry overhead),
    /// evicting entries beyond it.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    pub max_memory_bytes: usize,
    /// Most entries the in-memory store holds (evicting beyond it); by default only
    /// --max-memory-bytes bounds it.
    #[arg(long, env = "CACHEKIT_SERVER_CAPACITY")]
    pub capacity: Option<usize>,
    /// Largest accepted value, in bytes; larger PUTs get 413.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a backend call (and /health) may take, in milliseconds; then 504.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_REQUEST_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub request_timeout_ms: u64,
    /// Longest a request body may take to arrive, in milliseconds; then 408.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_BODY_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub body_read_timeout_ms: u64,
    /// Longest a request head may take to arrive once started, in milliseconds; then the
    /// connection is closed. Also how long a new connection may stay silent before its
    /// first request begins.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,
    /// Longest a keep-alive connection may sit idle between requests (after its first
    /// request), in milliseconds.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_IDLE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub idle_timeout_ms: u64,
    /// Longest writing one response may take, in milliseconds; a client that does not read
    /// is disconnected.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_WRITE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub write_timeout_ms: u64,
    /// Most requests handled at once; others wait up to --queue-timeout-ms for a slot.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    pub max_concurrent_requests: usize,
    /// Longest a request waits for a slot, in milliseconds; then 503 with Retry-After: 1.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_QUEUE_TIMEOUT_MS",
        default_value_t = 1_000
    )]
    pub queue_timeout_ms: u64,
    /// Most connections open at once; further ones wait in the listen backlog.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Largest request head (request line + headers), in bytes; larger ones get 431.
    #[arg(long, env = "CACHEKIT_SERVER_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Longest a shutdown waits for requests in flight, in milliseconds, before closing
    /// their connections and exiting.
    #[arg(
        long,
        env = "CACHEKIT_SERVER_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub shutdown_timeout_ms: u64,
}

impl ServeArgs {
    /// The memory store's limits these flags describe.
    pub fn memory_config(&self) -> MemoryConfig {
        MemoryConfig {
            max_value_bytes: self.max_body_bytes,
            capacity: self.capacity,
            max_bytes: Some(self.max_memory_bytes),
            ..MemoryConfig::default()
        }
    }

    /// The server's limits these flags describe.
    pub fn server_config(&self) -> ServerConfig {
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

/// Runs the reference server (the memory backend behind cachekit-server) until Ctrl-C or
/// SIGTERM; `name` prefixes its messages. Exit code 2 for a refused configuration, 1 when
/// it cannot listen or fails.
pub fn serve(args: &ServeArgs, name: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve_until_stopped(args, name))
}

async fn serve_until_stopped(args: &ServeArgs, name: &str) -> ExitCode {
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
    let config = args.server_config();
    if let Err(err) = config.validate() {
        eprintln!("{name}: {err}");
        return ExitCode::from(2);
    }
    if let Some(warning) = config.open_access_warning() {
        eprintln!("{name}: warning: {warning}");
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
            eprintln!("{name}: cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    // Printed on stdout so scripts that start the server on port 0 can read the address.
    println!("{name} listening on {}", server.base_url());
    if let Err(err) = stop_requested().await {
        eprintln!("{name}: cannot wait for a stop signal: {err}");
    }
    tracing::info!(
        "shutting down; requests in flight get {:?} to finish (Ctrl-C again to stop now)",
        config.shutdown_timeout
    );
    tokio::select! {
        stopped = server.shutdown() => match stopped {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{name}: server failed: {err}");
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
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Args::try_parse_from(args).map(|args| args.serve)
    }

    #[test]
    fn the_store_is_bounded_by_256_mib_unless_told_otherwise() {
        let args = parse(&["cachekit-server"]).expect("defaults parse");
        assert_eq!(args.memory_config().max_bytes, Some(256 * 1024 * 1024));
        let args =
            parse(&["cachekit-server", "--max-memory-bytes", "1048576"]).expect("flag parses");
        assert_eq!(args.memory_config().max_bytes, Some(1024 * 1024));
        assert!(parse(&["cachekit-server", "--max-memory-bytes", "0"]).is_err());
    }

    #[test]
    fn the_flags_defaults_are_the_library_defaults() {
        let args = parse(&["cachekit-server"]).expect("defaults parse");
        assert_eq!(args.server_config(), ServerConfig::default());
    }
}
