//! `cargo xtask test-all`: provision, then fmt, clippy, `cargo install` of the CLI, every
//! test (the CLI's against the installed binary), `cargo package`, and the matrix.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_backend_dynamodb::local::{find_or_install_jar, NO_DOCKER_ENV};
use cachekit_conformance::matrix::Matrix;

use crate::provision;

/// Backends whose conformance runs can be selected, and the package that runs each.
const BACKENDS: [(&str, &str); 5] = [
    ("memory", "cachekit-backend-memory"),
    ("http", "cachekit-backend-http"),
    ("dynamodb", "cachekit-backend-dynamodb"),
    ("redis", "cachekit-backend-redis"),
    ("memcached", "cachekit-backend-memcached"),
];

/// Free space a clean run needs where its target directory is: measured at about 11 GiB for
/// a clean `test-all` (the test build, the installed CLI and the tarballs' verify build), plus
/// room for the servers' files. Below it the run stops at once instead of failing a build
/// half an hour in with "No space left on device".
const MIN_FREE_DISK_GIB: u64 = 14;

/// Tells the CLI tests which `cachekit` binary to run: the one `cargo install` put here.
const INSTALLED_CLI_ENV: &str = "CACHEKIT_CLI_BIN";

/// Options of `test-all`.
#[derive(Debug, clap::Args)]
pub struct TestAllArgs {
    /// Only these backends' test suites (comma-separated: memory,http,dynamodb,redis,
    /// memcached); every other crate's tests still run.
    #[arg(long, value_delimiter = ',', value_name = "BACKENDS")]
    only: Option<Vec<String>>,
    /// Neither start nor use Docker: DynamoDB Local runs as a local java process.
    #[arg(long)]
    no_docker: bool,
}

/// One step's name, whether it passed, and how long it took.
struct StepResult {
    name: &'static str,
    passed: bool,
    took: Duration,
}

/// Runs everything; `Ok(true)` when it all passed.
pub fn run(root: &Path, args: &TestAllArgs) -> Result<bool, String> {
    let started = Instant::now();
    let selected: Vec<&str> = match &args.only {
        Some(only) => {
            for name in only {
                if !BACKENDS.iter().any(|(backend, _)| backend == name) {
                    let known: Vec<&str> = BACKENDS.iter().map(|(backend, _)| *backend).collect();
                    return Err(format!(
                        "unknown backend `{name}` in --only; known: {}",
                        known.join(", ")
                    ));
                }
            }
            BACKENDS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| only.iter().any(|o| o == name))
                .collect()
        }
        None => BACKENDS.iter().map(|(name, _)| *name).collect(),
    };
    let mut results = Vec::new();
    let mut no_docker = args.no_docker;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);

    println!("\n==> [disk] free space for {}", target_dir.display());
    let step_started = Instant::now();
    let disk = enough_disk(&target_dir, MIN_FREE_DISK_GIB);
    match &disk {
        Ok(free_gib) => println!("    {free_gib} GiB free (needs {MIN_FREE_DISK_GIB})"),
        Err(why) => eprintln!("    {why}"),
    }
    results.push(StepResult {
        name: "disk",
        passed: disk.is_ok(),
        took: step_started.elapsed(),
    });
    if disk.is_err() {
        println!("\ntest-all FAILED: not enough disk space to build");
        return Ok(false);
    }

    // The CLI's and the function cache's tests start these too, whatever --only says.
    println!("\n==> [provision] redis-server, memcached, openssl");
    let step_started = Instant::now();
    let servers = provision::ensure_test_servers();
    if let Err(why) = &servers {
        eprintln!("    {why}");
    }
    results.push(StepResult {
        name: "servers",
        passed: servers.is_ok(),
        took: step_started.elapsed(),
    });

    if selected.contains(&"dynamodb") {
        println!("\n==> [provision] DynamoDB Local");
        let step_started = Instant::now();
        let provisioned = provision_dynamodb(root, &mut no_docker);
        if let Err(why) = &provisioned {
            eprintln!("    {why}");
        }
        results.push(StepResult {
            name: "provision",
            passed: provisioned.is_ok(),
            took: step_started.elapsed(),
        });
    }

    let excluded: Vec<&str> = BACKENDS
        .iter()
        .filter(|(name, _)| !selected.contains(name))
        .map(|(_, package)| *package)
        .collect();
    let mut test_args = vec!["test", "--workspace", "--no-fail-fast"];
    for package in &excluded {
        test_args.extend(["--exclude", package]);
    }
    let clippy: &[&str] = &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ];
    // The CLI tests run the binary as a user installs it, not only the test build's copy;
    // the install shares the build's target directory, so it compiles little of its own.
    let target_dir_arg = target_dir.to_string_lossy().into_owned();
    let install_root = target_dir.join("cachekit-install");
    let install_root_arg = install_root.to_string_lossy().into_owned();
    let install: &[&str] = &[
        "install",
        "--path",
        "cachekit-cli",
        "--debug",
        "--locked",
        "--force",
        "--target-dir",
        &target_dir_arg,
        "--root",
        &install_root_arg,
    ];
    let installed_cli = install_root.join("bin/cachekit");
    // Every publishable crate packs and builds from its tarball alone (path dependencies
    // carry exact versions; the local overlay resolves them to this workspace's crates).
    // The tarballs build in a target directory of their own: see `forget_packaged_crates`.
    let verify_dir = target_dir.join("package-verify");
    let verify_dir_arg = verify_dir.to_string_lossy().into_owned();
    let package: &[&str] = &[
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "cachekit-tests",
        "--allow-dirty",
        "--target-dir",
        &verify_dir_arg,
    ];
    let steps: [(&'static str, &[&str]); 5] = [
        ("fmt", &["fmt", "--all", "--", "--check"]),
        ("clippy", clippy),
        ("install", install),
        ("tests", &test_args),
        ("package", package),
    ];
    let mut matrix = Matrix::default();
    for (name, cargo_args) in steps {
        if name == "package" {
            forget_packaged_crates(&verify_dir);
        }
        println!("\n==> [{name}] cargo {}", cargo_args.join(" "));
        let step_started = Instant::now();
        // Nobody debugs the tarballs' build: without debug info it is a third of the size.
        let env: &[(&str, &OsStr)] = match name {
            "tests" => &[(INSTALLED_CLI_ENV, installed_cli.as_os_str())],
            "package" => &[("CARGO_PROFILE_DEV_DEBUG", OsStr::new("none"))],
            _ => &[],
        };
        let passed = run_cargo(root, cargo_args, no_docker, env, |line| matrix.record(line));
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
            "  {word} {:<10} {:>7.1}s",
            step.name,
            step.took.as_secs_f64()
        );
    }
    if !excluded.is_empty() {
        println!("  (--only: not run: {})", excluded.join(", "));
    }
    if let Some(used_kib) = disk_used_kib(&target_dir) {
        println!(
            "  target directory {}: {:.1} GiB",
            target_dir.display(),
            used_kib as f64 / (1024.0 * 1024.0)
        );
    }
    println!("\n{matrix}");
    let all_passed = results.iter().all(|s| s.passed) && matrix.failed() == 0;
    println!(
        "test-all {} in {:.1}s",
        if all_passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(all_passed)
}

/// Docker and the image if possible; otherwise the jar for process mode, saying why.
fn provision_dynamodb(root: &Path, no_docker: &mut bool) -> Result<(), String> {
    if !*no_docker {
        let docker =
            provision::ensure_docker(root).and_then(|()| provision::dynamodb_image(root, false));
        match docker {
            Ok(()) => {
                println!("    DynamoDB tests will run DynamoDB Local in Docker (testcontainers)");
                return Ok(());
            }
            Err(why) => {
                println!("    Docker is not usable: {why}");
                println!("    falling back to DynamoDB Local as a local java process");
                *no_docker = true;
            }
        }
    }
    let dir = find_or_install_jar()?;
    println!(
        "    DynamoDB tests will run the jar in {} as a process",
        dir.display()
    );
    Ok(())
}

/// Removes what `cargo package` kept of our own crates from an earlier run.
///
/// To verify a tarball, cargo resolves the workspace's crates through a local registry
/// overlay: it unpacks them under `$CARGO_HOME/registry/src/-<hash>/<name>-<version>` and
/// builds them as registry crates, which it takes to be immutable. Our versions do not
/// change between commits, so both the unpacked sources and the compiled artifacts of an
/// earlier run would be reused as they are (a `cachekit-core` from before a new function),
/// and verification would fail for a reason that is not in the tree. So the sources go
/// (only `cachekit*` directories inside overlay registries, whose names start with `-`;
/// crates.io's are `index.crates.io-…`), and the tarballs build in `verify_dir`, where
/// our crates' artifacts go too while every dependency's stay.
fn forget_packaged_crates(verify_dir: &Path) {
    let ours = |entry: &std::fs::DirEntry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        name.starts_with("cachekit") || name.starts_with("libcachekit")
    };
    let remove = |entry: std::fs::DirEntry| {
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
    };
    for built in ["debug/.fingerprint", "debug/deps", "debug/build"] {
        if let Ok(entries) = std::fs::read_dir(verify_dir.join(built)) {
            entries
                .flatten()
                .filter(|entry| ours(entry))
                .for_each(remove);
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let Some(Ok(registries)) = cargo_home.map(|home| std::fs::read_dir(home.join("registry/src")))
    else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(registry.path()) {
            entries
                .flatten()
                .filter(|entry| ours(entry))
                .for_each(remove);
        }
    }
}

/// The GiB free on the file system that holds `dir` (or its nearest existing ancestor), as
/// `df` reports them; an error saying how much is missing when that is under `needed_gib`.
fn enough_disk(dir: &Path, needed_gib: u64) -> Result<u64, String> {
    let existing = dir
        .ancestors()
        .find(|ancestor| ancestor.exists())
        .unwrap_or(dir);
    let output = Command::new("df")
        .args(["-Pk"])
        .arg(existing)
        .output()
        .map_err(|err| format!("cannot run df to measure free disk space: {err}"))?;
    let report = String::from_utf8_lossy(&output.stdout);
    let free_kib = free_kib_from_df(&report).ok_or_else(|| {
        format!(
            "cannot read free space from `df -Pk {}`: {}",
            existing.display(),
            report.trim()
        )
    })?;
    let free_gib = free_kib / (1024 * 1024);
    if free_gib < needed_gib {
        return Err(format!(
            "only {free_gib} GiB free on the file system of {}; a clean run needs {needed_gib} GiB \
             (remove old target directories, e.g. `cargo clean`)",
            existing.display()
        ));
    }
    Ok(free_gib)
}

/// What `du` says `dir` takes on disk, in KiB.
fn disk_used_kib(dir: &Path) -> Option<u64> {
    let output = Command::new("du").arg("-sk").arg(dir).output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The "Available" column (KiB) of the data line in `df -P` output.
fn free_kib_from_df(report: &str) -> Option<u64> {
    let line = report.lines().nth(1)?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs cargo with `args`, echoing its stdout line by line through `on_line` as well.
fn run_cargo(
    root: &Path,
    args: &[&str],
    no_docker: bool,
    env: &[(&str, &OsStr)],
    mut on_line: impl FnMut(&str),
) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(root).stdout(Stdio::piped());
    command.envs(env.iter().copied());
    if no_docker {
        command.env(NO_DOCKER_ENV, "1");
    }
    let mut child = match command.spawn() {
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

#[cfg(test)]
mod tests {
    use super::free_kib_from_df;

    #[test]
    fn free_space_is_the_available_column_of_dfs_data_line() {
        let report = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                      /dev/vda         264091588 13107200  82837504      14% /\n";
        assert_eq!(free_kib_from_df(report), Some(82_837_504));
    }

    #[test]
    fn a_df_report_without_a_data_line_has_no_free_space() {
        assert_eq!(
            free_kib_from_df("Filesystem 1024-blocks Used Available\n"),
            None
        );
        assert_eq!(free_kib_from_df(""), None);
    }
}
