//! A memcached server for tests: a process on a loopback port, or the server named by
//! `CACHEKIT_MEMCACHED_ADDR`.
//!
//! [`MemcachedServer::start`] uses `CACHEKIT_MEMCACHED_ADDR` if it is set, and otherwise
//! runs `CACHEKIT_MEMCACHED_BIN`, else `/usr/bin/memcached`, else `memcached` from `PATH`
//! (Debian/Ubuntu: `apt-get install memcached`) on a free port of 127.0.0.1.
//! [`MemcachedServer::start_with`] always starts a process, since its arguments describe
//! a server that has to be started.
//!
//! The process dies with the test process: it runs under a small `sh` that kills it as
//! soon as the pipe to this process closes, which the kernel does however this process
//! ends (a normal exit, a panic, a kill). That matters because test binaries keep their
//! server in a `static`, which is never dropped.

use std::fmt;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable: use the memcached at this `host:port` instead of starting one.
pub const ADDR_ENV: &str = "CACHEKIT_MEMCACHED_ADDR";
/// Environment variable: the memcached binary to run.
pub const BIN_ENV: &str = "CACHEKIT_MEMCACHED_BIN";
/// Where Debian's `memcached` package installs the server.
pub const DEFAULT_BIN: &str = "/usr/bin/memcached";

/// How long a started server has to answer `version`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up, in case another process takes the free port first.
const PORT_ATTEMPTS: usize = 5;
/// How long [`MemcachedServer::stop`] waits for the process to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs memcached (`$0 "$@"`) and kills it when stdin reaches end of file. fd 3 keeps the
/// pipe for the watcher: an asynchronous list's stdin is `/dev/null` in a
/// non-interactive shell. Memcached itself gets neither the pipe nor our stdout.
///
/// SIGKILL, not SIGTERM: memcached 1.6 acts on SIGTERM only at its next once-a-second
/// clock tick, which made every stop take up to a second; a test server has nothing to
/// save, and a hard kill is also the harsher outage for the restart tests.
const SUPERVISOR: &str = r#"exec 3<&0
"$0" "$@" 3<&- </dev/null >/dev/null &
pid=$!
echo "$pid"
(read _ <&3; kill -9 "$pid" 2>/dev/null) >/dev/null 2>&1 &
wait "$pid"
"#;

/// A running memcached, or the address of one given by [`ADDR_ENV`]. Stopped on drop.
pub struct MemcachedServer {
    addr: SocketAddr,
    running: Option<Running>,
    /// `None` for a server this process did not start.
    launch: Option<Launch>,
}

struct Running {
    supervisor: Child,
    /// Closing it tells the supervisor to kill memcached.
    lifeline: Option<ChildStdin>,
}

#[derive(Clone)]
struct Launch {
    binary: PathBuf,
    args: Vec<String>,
}

impl fmt::Debug for MemcachedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedServer")
            .field("addr", &self.addr)
            .field("owned", &self.is_owned())
            .field("running", &self.running.is_some())
            .finish()
    }
}

/// `memcached at 127.0.0.1:PORT (started: memcached -I 1k)` or `(from CACHEKIT_MEMCACHED_ADDR)`.
impl fmt::Display for MemcachedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.launch {
            Some(launch) => {
                write!(
                    f,
                    "memcached at {} (started: {}",
                    self.addr,
                    launch.binary.display()
                )?;
                for arg in &launch.args {
                    write!(f, " {arg}")?;
                }
                f.write_str(")")
            }
            None => write!(f, "memcached at {} (from {ADDR_ENV})", self.addr),
        }
    }
}

impl MemcachedServer {
    /// The server named by [`ADDR_ENV`], else a new process with default settings.
    pub fn start() -> Result<Self, String> {
        match std::env::var(ADDR_ENV) {
            Ok(addr) if !addr.trim().is_empty() => Self::existing(addr.trim()),
            _ => Self::start_with(&[]),
        }
    }

    /// A new process with `args` added to the loopback address and port, e.g.
    /// `["-I", "1k", "-o", "slab_chunk_max=1024"]`.
    ///
    /// An `-I` below 512k needs `-o slab_chunk_max=<bytes>` no larger than it, or
    /// memcached refuses to start. Memcached 1.6.18 reads that option in bytes (its help
    /// text says kilobytes), and crashes on its first large set with `slab_chunk_max=1`.
    pub fn start_with(args: &[&str]) -> Result<Self, String> {
        let launch = Launch {
            binary: find_binary()?,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_loopback_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match spawn(&launch, addr) {
                Ok(running) => {
                    return Ok(MemcachedServer {
                        addr,
                        running: Some(running),
                        launch: Some(launch),
                    })
                }
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        Err(format!(
            "memcached did not start in {PORT_ATTEMPTS} attempts:\n  {}",
            failures.join("\n  ")
        ))
    }

    fn existing(addr: &str) -> Result<Self, String> {
        use std::net::ToSocketAddrs;
        let resolved = addr
            .to_socket_addrs()
            .map_err(|err| format!("{ADDR_ENV}={addr}: not a host:port ({err})"))?
            .next()
            .ok_or_else(|| format!("{ADDR_ENV}={addr}: resolves to no address"))?;
        if server_pid(resolved).is_none() {
            return Err(format!(
                "{ADDR_ENV}={addr}: nothing there answers memcached's `stats`"
            ));
        }
        Ok(MemcachedServer {
            addr: resolved,
            running: None,
            launch: None,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as `host:port`, ready for [`MemcachedConfig::new`](crate::MemcachedConfig::new).
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Whether this process started the server (and can stop and restart it).
    pub fn is_owned(&self) -> bool {
        self.launch.is_some()
    }

    /// Stops the server and waits until it is gone; its port refuses connections after.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.is_owned() {
            return Err(format!(
                "cannot stop the server from {ADDR_ENV}: this process did not start it"
            ));
        }
        match self.running.take() {
            Some(running) => running.stop(),
            None => Ok(()),
        }
    }

    /// Stops the server if it runs, then starts a new, empty one on the same port with
    /// the same arguments.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        let Some(launch) = self.launch.clone() else {
            return Err(format!("cannot restart the server from {ADDR_ENV}"));
        };
        // The old listener is gone; memcached binds with SO_REUSEADDR, so connections in
        // TIME_WAIT do not keep the port. A brief retry covers a slow exit.
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match spawn(&launch, self.addr) {
                Ok(running) => {
                    self.running = Some(running);
                    return Ok(());
                }
                Err(why) if Instant::now() >= deadline => {
                    return Err(format!("cannot restart memcached on {}: {why}", self.addr))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop();
        }
    }
}

impl Running {
    fn stop(mut self) -> Result<(), String> {
        drop(self.lifeline.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.supervisor.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = self.supervisor.kill();
                    let _ = self.supervisor.wait();
                    return Err(format!("memcached did not stop within {STOP_TIMEOUT:?}"));
                }
                Err(err) => return Err(format!("cannot reap memcached: {err}")),
            }
        }
    }
}

/// [`BIN_ENV`], else [`DEFAULT_BIN`], else `memcached` on `PATH`.
fn find_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{BIN_ENV}={} is not a file; unset it to use {DEFAULT_BIN} \
                 (Debian/Ubuntu: `apt-get install memcached`)",
                bin.display()
            ))
        };
    }
    if Path::new(DEFAULT_BIN).is_file() {
        return Ok(PathBuf::from(DEFAULT_BIN));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("memcached"))
            .find(|candidate| candidate.is_file())
    });
    on_path.ok_or_else(|| {
        format!(
            "memcached is not installed: no {DEFAULT_BIN} and none on PATH. Install it \
             (Debian/Ubuntu: `apt-get install memcached`), point {BIN_ENV} at a binary, \
             or set {ADDR_ENV}=host:port to use a running server"
        )
    })
}

fn free_loopback_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot find a free loopback port: {err}"))
}

/// Whether this process runs as root, which memcached refuses without `-u`. On Linux
/// `/proc/self` belongs to the effective user.
fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn spawn(launch: &Launch, addr: SocketAddr) -> Result<Running, String> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(SUPERVISOR).arg(&launch.binary).args([
        "-l",
        "127.0.0.1",
        "-p",
        &addr.port().to_string(),
        "-U",
        "0",
    ]);
    if running_as_root() {
        command.args(["-u", "root"]);
    }
    let mut supervisor = command
        .args(&launch.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run sh to supervise memcached: {err}"))?;
    // The supervisor's first line is memcached's pid: readiness is that process answering,
    // not whichever memcached holds the port (another test may have taken it first).
    let mut pid_line = String::new();
    if let Some(stdout) = supervisor.stdout.take() {
        let _ = std::io::BufReader::new(stdout).read_line(&mut pid_line);
    }
    let pid: Option<u32> = pid_line.trim().parse().ok();
    let lifeline = supervisor.stdin.take();
    let mut running = Running {
        supervisor,
        lifeline,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = running.supervisor.try_wait() {
            // It exited: memcached refused its arguments or its port. Its stderr says why.
            let mut stderr = String::new();
            if let Some(mut pipe) = running.supervisor.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(format!(
                "memcached exited ({status}) before answering: {}",
                stderr.trim()
            ));
        }
        if pid.is_some() && server_pid(addr) == pid {
            // Nobody reads memcached's stderr from now on; it only writes there on
            // fatal errors, and a full pipe must not stall it.
            drop(running.supervisor.stderr.take());
            return Ok(running);
        }
        if Instant::now() >= deadline {
            let _ = running.stop();
            return Err(format!(
                "memcached did not answer on {addr} within {READY_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `pid` the memcached on `addr` reports in `stats`, if one answers.
fn server_pid(addr: SocketAddr) -> Option<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"stats\r\n").ok()?;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    // `stats` is a few dozen short lines; stop at END or after a bounded number.
    for _ in 0..200 {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line.starts_with("END") {
            return None;
        }
        if let Some(pid) = line.strip_prefix("STAT pid ") {
            return pid.trim().parse().ok();
        }
    }
    None
}
