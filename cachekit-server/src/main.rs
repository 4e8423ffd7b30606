//! `cachekit-server`: serves the in-memory backend over the cachekit HTTP API.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_server::{start, ServerConfig};
use clap::Parser;

/// Serve a cachekit backend over HTTP: GET/PUT/DELETE/HEAD /cache/{key}, GET /health.
#[derive(Debug, Parser)]
#[command(name = "cachekit-server", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on /cache requests.
    #[arg(long, env = "CACHEKIT_SERVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest accepted value, in bytes; larger PUTs get 413.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest a backend call may take before the request gets 504, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Most entries the in-memory backend holds (evicting beyond it); unbounded if absent.
    #[arg(long)]
    capacity: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let backend = MemoryBackend::with_config(MemoryConfig {
        max_value_bytes: args.max_body_bytes,
        capacity: args.capacity,
        ..MemoryConfig::default()
    });
    let config = ServerConfig {
        listen: args.listen,
        token: args.token,
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
    };
    let server = match start(Arc::new(backend), &config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    // Printed on stdout so scripts that start the server on port 0 can read the address.
    println!("cachekit-server listening on {}", server.base_url());
    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for Ctrl-C: {err}");
    }
    tracing::info!("shutting down; finishing requests in flight");
    match server.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
