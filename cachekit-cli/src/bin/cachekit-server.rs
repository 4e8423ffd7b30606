//! `cachekit-server`: the reference server on its own, the same as `cachekit serve`.

use std::process::ExitCode;

use cachekit_cli::serve::{serve, ServeArgs};
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
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    serve(&Cli::parse().serve, "cachekit-server")
}
