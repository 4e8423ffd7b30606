//! RedisBackend get/set against the same commands sent through the `redis` crate's own
//! connection, on the same `redis-server`, same run; then `redis-benchmark -t get,set`
//! on that server as a reference for what the server itself does.
//!
//! Rounds alternate between the two so drift on a shared machine hits both alike; the
//! medians' ratio (backend ops/s ÷ raw ops/s) is the figure reported. Operations are
//! sequential (one in flight), the way a request handler uses a cache.

use std::process::Command;
use std::time::Instant;

use cachekit_backend_redis::local::RedisServer;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_core::{Backend, Bytes};
use redis::aio::ConnectionManager;

const ROUNDS: usize = 9;
const OPS_PER_ROUND: usize = 5_000;
const VALUE_BYTES: usize = 100;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn ops_per_second<F, Fut>(mut op: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for index in 0..OPS_PER_ROUND {
        op(index).await;
    }
    OPS_PER_ROUND as f64 / started.elapsed().as_secs_f64()
}

async fn raw_set(connection: &ConnectionManager, key: String, value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut connection.clone())
        .await
        .expect("raw SET");
}

async fn raw_get(connection: &ConnectionManager, key: String) {
    let _: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection.clone())
        .await
        .expect("raw GET");
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("raw_overhead: run with `cargo bench` to measure");
        return;
    }
    let server = RedisServer::start_with(&[]).unwrap_or_else(|why| panic!("{why}"));
    println!("{server}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let backend = RedisBackend::connect(RedisConfig::new(server.url()))
            .await
            .expect("connect");
        let raw = ConnectionManager::new(redis::Client::open(server.url()).expect("client"))
            .await
            .expect("raw connection");
        let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
        let (mut backend_set, mut raw_set_rate) = (Vec::new(), Vec::new());
        let (mut backend_get, mut raw_get_rate) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            backend_set.push(
                ops_per_second(|i| {
                    let backend = &backend;
                    let value = value.clone();
                    async move {
                        backend
                            .set(&format!("b{i}"), value, None)
                            .await
                            .expect("set");
                    }
                })
                .await,
            );
            raw_set_rate.push(ops_per_second(|i| raw_set(&raw, format!("r{i}"), &value)).await);
            backend_get.push(
                ops_per_second(|i| {
                    let backend = &backend;
                    async move {
                        backend.get(&format!("b{i}")).await.expect("get");
                    }
                })
                .await,
            );
            raw_get_rate.push(ops_per_second(|i| raw_get(&raw, format!("r{i}"))).await);
        }
        let (bs, rs) = (median(backend_set), median(raw_set_rate));
        let (bg, rg) = (median(backend_get), median(raw_get_rate));
        println!(
            "set: backend {bs:.0} ops/s, raw redis crate {rs:.0} ops/s, ratio {:.3}",
            bs / rs
        );
        println!(
            "get: backend {bg:.0} ops/s, raw redis crate {rg:.0} ops/s, ratio {:.3}",
            bg / rg
        );
    });
    let port = server.port().to_string();
    let output = Command::new("redis-benchmark")
        .args([
            "-p", &port, "-t", "get,set", "-n", "100000", "-d", "100", "-q",
        ])
        .output();
    match output {
        Ok(output) => {
            println!("redis-benchmark -t get,set -d {VALUE_BYTES} (50 clients, reference):");
            // Progress is redrawn with carriage returns; the summaries end each test.
            let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
            for line in text
                .lines()
                .filter(|line| line.contains("requests per second"))
            {
                println!("  {}", line.trim());
            }
        }
        Err(err) => println!("redis-benchmark not run: {err} (apt-get install redis-tools)"),
    }
}
