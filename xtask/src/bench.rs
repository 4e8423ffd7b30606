//! `cargo xtask bench`: the benchmarks, each reported as a ratio against a baseline
//! measured in the same run on the same machine.
//!
//! 1. `cargo bench` targets (HttpBackend vs raw reqwest, DynamoDbBackend vs raw aws-sdk
//!    calls on DynamoDB Local, RedisBackend vs the raw redis crate on redis-server, MemcachedBackend vs raw meta
//!    commands on memcached, the `#[cachekit::cache]` hit path vs a bare backend get),
//!    which print their own ratios.
//! 2. `cachekit-server` GET-hit throughput under `wrk` on loopback vs a hello-world axum
//!    server built the same way; rounds alternate, medians are compared.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const WRK_ROUNDS: usize = 3;
const WRK_SECONDS: u32 = 5;

pub fn run(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for (package, bench) in [
        ("cachekit-backend-http", "client_overhead"),
        ("cachekit-backend-dynamodb", "sdk_overhead"),
        ("cachekit-backend-redis", "raw_overhead"),
        ("cachekit-backend-memcached", "raw_overhead"),
        ("cachekit", "hit_path"),
    ] {
        println!("==> cargo bench -p {package} --bench {bench}");
        let status = Command::new(&cargo)
            .args(["bench", "-p", package, "--bench", bench])
            .current_dir(root)
            .status()
            .map_err(|err| format!("cannot run cargo bench: {err}"))?;
        if !status.success() {
            return Err(format!("cargo bench -p {package} --bench {bench} failed"));
        }
    }
    server_throughput(root, &cargo)
}

fn server_throughput(root: &Path, cargo: &str) -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk is not installed; on Debian: apt-get install -y wrk".to_owned());
    }
    println!("==> building release binaries for the server benchmark");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "cachekit-cli",
            "-p",
            "cachekit-server",
            "--bin",
            "cachekit-server",
            "--example",
            "hello_server",
        ])
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot build: {err}"))?;
    if !status.success() {
        return Err("release build failed".to_owned());
    }
    let release = root.join("target/release");
    let mut server = Spawned::start(
        Command::new(release.join("cachekit-server")).args(["--listen", "127.0.0.1:0"]),
    )?;
    let mut hello =
        Spawned::start(Command::new(release.join("examples/hello_server")).arg("127.0.0.1:0"))?;
    let key_url = format!("{}/cache/bench-key", server.url);
    let status = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "--data-binary",
            &"Z".repeat(64),
            &key_url,
        ])
        .status()
        .map_err(|err| format!("cannot run curl to preload the key: {err}"))?;
    if !status.success() {
        return Err("preloading the benchmark key failed".to_owned());
    }
    let hello_url = format!("{}/cache/bench-key", hello.url);
    let mut served = Vec::new();
    let mut baseline = Vec::new();
    for round in 1..=WRK_ROUNDS {
        println!("  round {round}/{WRK_ROUNDS}: {WRK_SECONDS}s each");
        served.push(wrk(&key_url)?);
        baseline.push(wrk(&hello_url)?);
    }
    server.stop();
    hello.stop();
    let (served, baseline) = (median(served), median(baseline));
    println!(
        "server GET hit: cachekit-server {served:.0} req/s, hello-world {baseline:.0} req/s, ratio {:.3}",
        served / baseline
    );
    Ok(())
}

fn wrk(url: &str) -> Result<f64, String> {
    let output = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{WRK_SECONDS}s"), url])
        .output()
        .map_err(|err| format!("cannot run wrk: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("wrk printed no request rate:\n{text}"))
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A child process that printed `... listening on <url>` on its first line.
struct Spawned {
    child: Child,
    url: String,
}

impl Spawned {
    fn start(command: &mut Command) -> Result<Self, String> {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start {command:?}: {err}"))?;
        let mut first_line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut first_line);
        }
        let url = first_line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .map(str::to_owned);
        match url {
            Some(url) => Ok(Spawned { child, url }),
            None => {
                let _ = child.kill();
                Err(format!(
                    "{command:?} did not report its address: {first_line:?}"
                ))
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}
