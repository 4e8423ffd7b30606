//! Security finding 3, measured: what a hostile `/health` answer makes the client allocate.
//!
//! A test binary of its own, with one test, so that the process's peak resident memory
//! (`VmHWM`) is this test's alone.

use std::time::Duration;

use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_core::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The JSON array the server answers: 4 million zeros in just under 8 MiB, within the
/// client's `max_response_bytes`.
const ELEMENTS: usize = 4_000_000;
/// Most the client's peak memory may grow while checking health. Before the fix the whole
/// body was read and parsed into one `serde_json::Value` per element: well over 100 MiB.
const MOST_GROWTH: u64 = 32 * 1024 * 1024;

fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

#[tokio::test]
async fn a_huge_json_health_body_costs_the_client_little_memory() {
    let body = format!("[{}0]", "0,".repeat(ELEMENTS - 1));
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body.as_bytes());
    drop(body);
    assert!(answer.len() < HttpConfig::new("http://x").max_response_bytes);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = socket.write_all(&answer).await;
            let _ = socket.shutdown().await;
        }
    });

    let mut config = HttpConfig::new(format!("http://{address}"));
    config.timeout = Duration::from_secs(30);
    config.retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let backend = HttpBackend::new(config).expect("valid config");
    // Warm up the client (its connection pool, TLS-free connector, runtime buffers).
    let _ = HttpBackend::new(HttpConfig::new("http://127.0.0.1:9"))
        .expect("valid config")
        .health_check()
        .await;
    let before = peak_resident_bytes();
    let report = backend.health_check().await;
    let after = peak_resident_bytes();
    server.abort();
    let growth = after.saturating_sub(before);
    eprintln!(
        "VmHWM before {} KiB, after {} KiB: +{} KiB; healthy: {}",
        before / 1024,
        after / 1024,
        growth / 1024,
        report.healthy
    );
    assert!(
        growth < MOST_GROWTH,
        "checking health against a {ELEMENTS}-element JSON array raised peak memory by {} MiB",
        growth / (1024 * 1024)
    );
}
