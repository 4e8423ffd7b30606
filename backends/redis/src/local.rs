//! A `redis-server` for tests: a child process on an ephemeral loopback port, or a server
//! you already run.
//!
//! [`RedisServer::start`] uses `CACHEKIT_REDIS_URL` if it is set (nothing is started);
//! otherwise it runs `redis-server` (from `CACHEKIT_REDIS_SERVER_BIN`, else `PATH`) with
//! persistence off and its files in a fresh temporary directory. Debian and Ubuntu ship it
//! in the `redis-server` package.

use std::fmt;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable: use the server at this URL instead of starting one.
pub const URL_ENV: &str = "CACHEKIT_REDIS_URL";
/// Environment variable: the `redis-server` binary to run.
pub const BIN_ENV: &str = "CACHEKIT_REDIS_SERVER_BIN";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 5;

/// A running `redis-server` (or a URL standing in for one); killed on drop.
pub struct RedisServer {
    url: String,
    port: u16,
    args: Vec<String>,
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("args", &self.args)
            .field("started", &self.child.is_some())
            .finish()
    }
}

/// `redis-server on 127.0.0.1:<port>` or `existing server from CACHEKIT_REDIS_URL`.
impl fmt::Display for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dir.is_some() {
            write!(f, "redis-server on 127.0.0.1:{}", self.port)
        } else {
            write!(f, "existing server from {URL_ENV}")
        }
    }
}

impl RedisServer {
    /// The server from `CACHEKIT_REDIS_URL`, or a fresh `redis-server` with default settings.
    pub fn start() -> Result<Self, String> {
        Self::existing_or_start_with(&[])
    }

    /// The server from `CACHEKIT_REDIS_URL` (whose settings are its own), or a fresh
    /// `redis-server` with `args`.
    pub fn existing_or_start_with(args: &[&str]) -> Result<Self, String> {
        if let Ok(url) = std::env::var(URL_ENV) {
            if !url.is_empty() {
                return Ok(RedisServer {
                    url,
                    port: 0,
                    args: Vec::new(),
                    dir: None,
                    child: None,
                });
            }
        }
        Self::start_with(args)
    }

    /// A fresh `redis-server` with `args` added to its command line (e.g.
    /// `["--requirepass", "pw"]`), whatever `CACHEKIT_REDIS_URL` says. `{port}` in an
    /// argument becomes the chosen port: `["--port", "0", "--tls-port", "{port}", …]`
    /// serves TLS only.
    pub fn start_with(args: &[&str]) -> Result<Self, String> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let dir =
                std::env::temp_dir().join(format!("cachekit-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
            let mut server = RedisServer {
                url: format!("redis://127.0.0.1:{port}"),
                port,
                args: args.clone(),
                dir: Some(dir),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Another process may have taken the port between our probe and the start.
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    /// `redis://127.0.0.1:<port>` (no credentials, database 0), or `CACHEKIT_REDIS_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback port (0 for an existing server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would: no save, no goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same arguments (empty).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Err(format!(
                "an existing server from {URL_ENV} cannot be restarted"
            ));
        };
        let binary = std::env::var(BIN_ENV).unwrap_or_else(|_| "redis-server".to_owned());
        let port = self.port.to_string();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|arg| arg.replace("{port}", &port))
            .collect();
        let log = dir.join("redis.log");
        // Readiness is read from this log: a restart must not find the last run's line.
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new(&binary)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                format!(
                    "cannot run {binary} ({err}); install it (`apt-get install redis-server`) or set {BIN_ENV}, or point {URL_ENV} at a running server"
                )
            })?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let last_lines: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(format!(
                    "{binary} on port {port} exited with {status}: {}",
                    last_lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            // Our child's own log, not whoever answers on the port: another process may
            // have taken it between the probe and the start.
            let ready = std::fs::read_to_string(&log)
                .is_ok_and(|text| text.contains("Ready to accept connections"));
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{binary} on port {port} did not answer within {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|err| format!("cannot find a free loopback port: {err}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|err| format!("cannot find a free loopback port: {err}"))
}
