//! `cachekit`: check a cache backend against the conformance rules, list the rules, or run
//! the reference server.

use std::process::ExitCode;

use cachekit_cli::check::{self, Target};
use cachekit_cli::rules::{self, RulesFormat};
use cachekit_cli::serve::{serve, ServeArgs};
use clap::{Parser, Subcommand};

/// Prove that a cache backend behaves: named rules, gated by what the backend declares.
///
/// Exit codes: 0 every claimed rule holds (or fails exactly as the baseline expects);
/// 1 a rule is violated (a new failure, or an unexpected pass); 2 nothing could be judged
/// (usage error, unreachable target, refused credentials, bad baseline, no case ran).
#[derive(Debug, Parser)]
#[command(name = "cachekit", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a backend against every rule it claims.
    #[command(subcommand)]
    Check(Box<Target>),
    /// List every rule: its id (`family::case`), its sentence and what it needs.
    Rules {
        /// Output format.
        #[arg(long, value_enum, default_value_t = RulesFormat::Text)]
        format: RulesFormat,
    },
    /// Run the reference server: the memory backend over the cachekit HTTP API.
    Serve(Box<ServeArgs>),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(target) => check::run(&target),
        Command::Rules { format } => {
            print!("{}", rules::render(format));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve(&args, "cachekit serve"),
    }
}
