//! HttpBackend get/set against a raw reqwest loop on the same `cachekit-server`, same run.
//!
//! Rounds alternate between the two so drift on a shared machine hits both alike; the
//! medians' ratio (backend ops/s ÷ raw ops/s) is the figure reported.

use std::time::{Duration, Instant};

use cachekit_backend_http::{HttpBackend, HttpConfig};
use cachekit_backend_memory::MemoryBackend;
use cachekit_core::{Backend, Bytes};
use cachekit_server::{BackgroundServer, ServerConfig};

const ROUNDS: usize = 7;
const OPS_PER_ROUND: usize = 2000;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn ops_per_second<F, Fut>(mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for _ in 0..OPS_PER_ROUND {
        op().await;
    }
    OPS_PER_ROUND as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick then.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("client_overhead: run with `cargo bench` to measure");
        return;
    }
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let base = server.base_url().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let backend = HttpBackend::new(HttpConfig::new(&base)).expect("config");
        let raw = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let value = Bytes::from(vec![0x5a; 64]);
        let url = format!("{base}/cache/bench-key");
        backend
            .set("bench-key", value.clone(), None)
            .await
            .expect("preload");

        let mut samples: [Vec<f64>; 4] = Default::default();
        for _ in 0..ROUNDS {
            samples[0].push(
                ops_per_second(|| async {
                    let got = backend.get("bench-key").await.expect("get");
                    assert_eq!(got.map(|v| v.len()), Some(64));
                })
                .await,
            );
            samples[1].push(
                ops_per_second(|| async {
                    let response = raw.get(&url).send().await.expect("raw get");
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.bytes().await.expect("body").len(), 64);
                })
                .await,
            );
            samples[2].push(
                ops_per_second(|| async {
                    backend
                        .set("bench-key", value.clone(), None)
                        .await
                        .expect("set");
                })
                .await,
            );
            samples[3].push(
                ops_per_second(|| async {
                    let response = raw
                        .put(&url)
                        .body(value.clone())
                        .send()
                        .await
                        .expect("raw put");
                    assert!(response.status().is_success());
                })
                .await,
            );
        }
        let [backend_get, raw_get, backend_set, raw_set] = samples.map(median);
        println!(
            "get: HttpBackend {backend_get:.0} ops/s, raw reqwest {raw_get:.0} ops/s, ratio {:.3}",
            backend_get / raw_get
        );
        println!(
            "set: HttpBackend {backend_set:.0} ops/s, raw reqwest {raw_set:.0} ops/s, ratio {:.3}",
            backend_set / raw_set
        );
    });
}
