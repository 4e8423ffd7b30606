//! The reference server binary (`cachekit-server`, the same code as `cachekit serve`) as
//! an operator runs it: its defaults, flags, signals and start-up checks.

// The raw-connection helpers the server's own tests use.
#[path = "../../cachekit-server/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rstest::rstest;
use support::{get_request, put_request, RawConnection};
use tokio::io::AsyncWriteExt;

const BINARY: &str = env!("CARGO_BIN_EXE_cachekit-server");
/// How long the binary may take to start listening (or to refuse to).
const START_BOUND: Duration = Duration::from_secs(30);

/// A running `cachekit-server` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary on a free loopback port with these extra arguments.
    fn start(args: &[&str]) -> Server {
        Self::start_listening("127.0.0.1:0", args)
    }

    fn start_listening(listen: &str, args: &[&str]) -> Server {
        let mut child = Command::new(BINARY)
            .args(["--listen", listen])
            .args(args)
            .env_remove("CACHEKIT_SERVER_TOKEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cachekit-server");
        let stderr = collect_stderr(&mut child);
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let line = line_rx.recv_timeout(START_BOUND).unwrap_or_default();
        let Some(url) = line
            .trim()
            .strip_prefix("cachekit-server listening on http://")
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no listening line; stdout {line:?}, stderr {:?}",
                stderr.lock().map(|s| s.clone())
            );
        };
        let addr = url.parse().expect("an address");
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn resident_bytes(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    /// Peak resident memory of the process so far (`VmHWM`).
    fn peak_resident_bytes(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("a {field} line"))
    }

    fn interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT failed");
    }

    /// The exit status, if the process exits within `bound`.
    fn exit_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        wait_within(&mut self.child, bound)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_within(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Everything the child writes on stderr, gathered by a thread.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let collected = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("piped stderr");
    let sink = Arc::clone(&collected);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
    collected
}

/// Item B: 100,000 one-byte values must cost about what they hold, not a read buffer
/// each. Before the fix, each stored value was a slice of hyper's read buffer and kept that
/// 8 KiB+ allocation alive: about 800 MB for these writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_values_do_not_pin_the_servers_read_buffers() {
    const VALUES: usize = 100_000;
    const CONNECTIONS: usize = 4;
    const MOST_GROWTH: u64 = 64 * 1024 * 1024;
    let server = Server::start(&[]);
    // Warm up: the runtime's worker threads and the connections' first buffers.
    let mut warm_up = RawConnection::connect(server.addr).await;
    assert_eq!(
        warm_up.exchange(&put_request("warm", b"w")).await.status,
        204
    );
    let before = server.resident_bytes();
    let started = Instant::now();
    let mut writers = Vec::new();
    for connection in 0..CONNECTIONS {
        let addr = server.addr;
        writers.push(tokio::spawn(async move {
            let mut client = RawConnection::connect(addr).await;
            for n in (connection..VALUES).step_by(CONNECTIONS) {
                let response = client.exchange(&put_request(&format!("k{n}"), b"v")).await;
                assert_eq!(response.status, 204, "PUT k{n}");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let after = server.resident_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "VmRSS before {} KiB, after {} KiB: +{} KiB for {VALUES} one-byte values ({:?})",
        before / 1024,
        after / 1024,
        growth / 1024,
        started.elapsed()
    );
    for n in [0, VALUES / 2, VALUES - 1] {
        let response = warm_up.exchange(&get_request(&format!("k{n}"))).await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"v"[..])
        );
    }
    assert!(
        growth < MOST_GROWTH,
        "resident memory grew by {} MiB for {VALUES} one-byte values",
        growth / (1024 * 1024)
    );
}

/// Sends a chunked `PUT /cache/{key}` whose body is `chunks` one-byte chunks, written in
/// large blocks, and returns the answer's status.
async fn put_in_one_byte_chunks(client: &mut RawConnection, key: &str, chunks: usize) -> u16 {
    const CHUNK: &[u8] = b"1\r\nx\r\n";
    const CHUNKS_PER_WRITE: usize = 10_000;
    client
        .send(
            format!(
                "PUT /cache/{key} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let block = CHUNK.repeat(CHUNKS_PER_WRITE);
    let mut left = chunks;
    while left > 0 {
        let now = left.min(CHUNKS_PER_WRITE);
        client.send(&block[..now * CHUNK.len()]).await;
        left -= now;
    }
    client.send(b"0\r\n\r\n").await;
    client.response().await.expect("a response").status
}

/// Security finding 1: a body of many tiny chunks costs about its value bytes, not a
/// handle per chunk. Before the fix the body was kept as one `Bytes` per chunk until it
/// ended (32 bytes each, plus the read buffers they pinned): these 500,000 one-byte chunks
/// (a 500 KB value, well under `--max-body-bytes`) raised the server's peak memory by
/// about 20 MiB; a body of millions of them, by hundreds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_one_byte_chunks_costs_its_bytes_not_a_handle_per_chunk() {
    const CHUNKS: usize = 500_000;
    const MOST_GROWTH: u64 = 8 * 1024 * 1024;
    let server = Server::start(&[]);
    let mut client = RawConnection::connect(server.addr).await;
    // Warm up: the runtime's worker threads, the connection's buffers, the store's table.
    assert_eq!(put_in_one_byte_chunks(&mut client, "warm", 1000).await, 204);
    let before = server.peak_resident_bytes();
    let started = Instant::now();
    assert_eq!(
        put_in_one_byte_chunks(&mut client, "chunky", CHUNKS).await,
        204
    );
    let after = server.peak_resident_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "VmHWM before {} KiB, after {} KiB: +{} KiB for {CHUNKS} one-byte chunks ({:?})",
        before / 1024,
        after / 1024,
        growth / 1024,
        started.elapsed()
    );
    let stored = client.exchange(&get_request("chunky")).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body, vec![b'x'; CHUNKS]);
    assert!(
        growth < MOST_GROWTH,
        "peak resident memory grew by {} KiB for a {CHUNKS}-byte value sent in one-byte chunks",
        growth / 1024
    );
}

/// Item A: `--max-memory-bytes` bounds the store: writing more than the budget evicts.
#[tokio::test]
async fn the_store_evicts_beyond_max_memory_bytes() {
    const VALUES: usize = 2048;
    let server = Server::start(&["--max-memory-bytes", "1048576"]);
    let mut client = RawConnection::connect(server.addr).await;
    let value = vec![b'v'; 1024];
    for n in 0..VALUES {
        let response = client
            .exchange(&put_request(&format!("k{n}"), &value))
            .await;
        assert_eq!(response.status, 204, "PUT k{n}");
    }
    let mut live = 0;
    for n in 0..VALUES {
        if client.exchange(&get_request(&format!("k{n}"))).await.status == 200 {
            live += 1;
        }
    }
    // 2048 entries of over 1 KiB each cannot fit in 1 MiB.
    assert!(
        live > 0 && live < 1024,
        "{live} of {VALUES} entries still held"
    );
}

/// Items A and C: every limit is a documented flag with its default and its variable.
#[test]
fn help_documents_every_limit_with_its_default() {
    let output = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, default) in [
        ("--max-memory-bytes", "268435456"),
        ("--max-body-bytes", "8388608"),
        ("--request-timeout-ms", "5000"),
        ("--body-read-timeout-ms", "30000"),
        ("--header-read-timeout-ms", "10000"),
        ("--idle-timeout-ms", "60000"),
        ("--write-timeout-ms", "30000"),
        ("--max-concurrent-requests", "256"),
        ("--queue-timeout-ms", "1000"),
        ("--max-connections", "1024"),
        ("--max-header-bytes", "16384"),
        ("--shutdown-timeout-ms", "10000"),
    ] {
        let section = help
            .split_once(&format!("{flag} <"))
            .map(|(_, rest)| rest.split("\n\n").take(2).collect::<Vec<_>>().join("\n"))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        assert!(
            section.contains(&format!("[default: {default}]")),
            "{flag}: {section}"
        );
        let variable = format!(
            "CACHEKIT_SERVER_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(section.contains(&variable), "{flag}: {section}");
    }
    assert!(help.contains("--capacity"));
}

/// Item C(v): on SIGINT the binary stops within its shutdown deadline even while a client
/// trickles a body (one byte every 50 ms, for up to 20 s, which would otherwise keep the
/// request, and the process, alive until it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_a_trickling_client_exits_within_the_shutdown_deadline() {
    const DEADLINE: Duration = Duration::from_millis(1000);
    const SLACK: Duration = Duration::from_secs(5);
    let mut server = Server::start(&[
        "--shutdown-timeout-ms",
        "1000",
        "--body-read-timeout-ms",
        "60000",
        "--header-read-timeout-ms",
        "60000",
        "--idle-timeout-ms",
        "60000",
    ]);
    let mut trickler = RawConnection::connect(server.addr).await;
    trickler
        .send(b"PUT /cache/k HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n")
        .await;
    let mut stream = trickler.into_stream();
    let trickle = tokio::spawn(async move {
        for _ in 0..400 {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let interrupted = Instant::now();
    server.interrupt();
    let status = tokio::task::block_in_place(|| server.exit_within(DEADLINE + SLACK));
    let took = interrupted.elapsed();
    trickle.abort();
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGINT"));
    assert!(status.success(), "{status:?}");
    assert!(
        took >= DEADLINE,
        "exited after {took:?}, before the deadline"
    );
}

/// Item D: an empty token is refused at start-up, whether given as a flag or by the
/// environment (where it most likely means a missing secret), with a non-zero exit.
#[rstest]
#[case::flag(&["--token", ""], None)]
#[case::environment(&[], Some(""))]
fn an_empty_token_is_refused_at_start_up(#[case] args: &[&str], #[case] env: Option<&str>) {
    let mut command = Command::new(BINARY);
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("CACHEKIT_SERVER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(value) = env {
        command.env("CACHEKIT_SERVER_TOKEN", value);
    }
    let mut child = command.spawn().expect("spawn");
    let stderr = collect_stderr(&mut child);
    let Some(status) = wait_within(&mut child, START_BOUND) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("an empty token was accepted: the server kept running");
    };
    assert!(!status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let message = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(message.contains("token is empty"), "stderr: {message}");
}

/// Item D: listening beyond loopback without a token prints a warning on stderr.
#[test]
fn listening_beyond_loopback_without_a_token_warns_on_stderr() {
    let server = Server::start_listening("0.0.0.0:0", &[]);
    let started = Instant::now();
    let warned = |text: &str| text.contains("warning") && text.contains("without a token");
    while started.elapsed() < START_BOUND {
        if server.stderr.lock().is_ok_and(|text| warned(&text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "no warning on stderr: {:?}",
        server.stderr.lock().map(|s| s.clone())
    );
}
