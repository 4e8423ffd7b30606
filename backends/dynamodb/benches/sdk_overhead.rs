//! DynamoDbBackend get/set against raw aws-sdk-dynamodb calls on the same DynamoDB Local,
//! same run, same client configuration.
//!
//! Rounds alternate between the two so drift on a shared machine hits both alike; the
//! medians' ratio (backend ops/s ÷ raw ops/s) is the figure reported, with the time
//! DynamoDB Local took to start.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cachekit_backend_dynamodb::aws_sdk_dynamodb::primitives::Blob;
use cachekit_backend_dynamodb::aws_sdk_dynamodb::types::AttributeValue;
use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_core::{Backend, Bytes};

const ROUNDS: usize = 7;
const OPS_PER_ROUND: usize = 300;
const TABLE: &str = "cachekit_bench";

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
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("sdk_overhead: run with `cargo bench` to measure");
        return;
    }
    let local = DynamoDbLocal::start().unwrap_or_else(|why| panic!("{why}"));
    println!(
        "DynamoDB Local: {} ready in {:.2}s",
        local.mode(),
        local.started_in().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let backend = DynamoDbBackend::connect(
            DynamoDbConfig::new(TABLE).with_endpoint(local.endpoint()),
        )
        .expect("config");
        backend
            .ensure_table_with(TtlDeletion::Untouched)
            .await
            .expect("table");
        let raw = backend.client().clone();
        let value = Bytes::from(vec![0x5a; 64]);
        let ttl = Duration::from_secs(3600);
        backend
            .set("bench-key", value.clone(), Some(ttl))
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
                    let item = raw
                        .get_item()
                        .table_name(TABLE)
                        .key("key", AttributeValue::S("bench-key".to_owned()))
                        .consistent_read(true)
                        .send()
                        .await
                        .expect("raw get")
                        .item
                        .expect("item");
                    assert!(matches!(item.get("value"), Some(AttributeValue::B(b)) if b.as_ref().len() == 64));
                })
                .await,
            );
            samples[2].push(
                ops_per_second(|| async {
                    backend
                        .set("bench-key", value.clone(), Some(ttl))
                        .await
                        .expect("set");
                })
                .await,
            );
            samples[3].push(
                ops_per_second(|| async {
                    let expires = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("clock")
                        .as_secs()
                        + ttl.as_secs();
                    raw.put_item()
                        .table_name(TABLE)
                        .item("key", AttributeValue::S("bench-key".to_owned()))
                        .item("value", AttributeValue::B(Blob::new(value.to_vec())))
                        .item("ttl", AttributeValue::N(expires.to_string()))
                        .send()
                        .await
                        .expect("raw put");
                })
                .await,
            );
        }
        let [backend_get, raw_get, backend_set, raw_set] = samples.map(median);
        println!(
            "get: DynamoDbBackend {backend_get:.0} ops/s, raw aws-sdk {raw_get:.0} ops/s, ratio {:.3}",
            backend_get / raw_get
        );
        println!(
            "set: DynamoDbBackend {backend_set:.0} ops/s, raw aws-sdk {raw_set:.0} ops/s, ratio {:.3}",
            backend_set / raw_set
        );
    });
    drop(runtime);
    drop(local);
}
