//! The DynamoDB backend under network faults: four clients, each with its own SDK client
//! through the fault proxy to one DynamoDB Local, while the proxy adds latency, resets
//! connections, delays requests unevenly, holds them and partitions the server; checked for
//! linearizability, error kinds, time bounds and recovery after the heal (see
//! `cachekit_conformance::history::under_faults`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_conformance::fault_proxy::FaultProxy;
use cachekit_conformance::history::under_faults::standard_run;
use cachekit_core::Backend;

/// Each attempt's deadline; the SDK makes up to `ATTEMPTS` of them per call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

fn run_with_attempts(local: &DynamoDbLocal, attempts: u32, seed: u64) -> Vec<String> {
    let upstream: SocketAddr = local
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("DynamoDB Local's address");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let table = format!("ck_faults_{seed}_{attempts}");
        // The table is made directly, with the default deadlines: a cold DynamoDB Local
        // takes seconds for its first request.
        let direct = DynamoDbBackend::connect(
            DynamoDbConfig::new(table.clone()).with_endpoint(local.endpoint()),
        )
        .expect("a client");
        direct
            .ensure_table_with(TtlDeletion::Untouched)
            .await
            .expect("create the table");
        // Warm the JVM up, so the first phase is about the network, not about the JIT.
        for n in 0..50 {
            let key = format!("warm-{n}");
            let _ = direct
                .set(&key, cachekit_core::Bytes::from_static(b"w"), None)
                .await;
            let _ = direct.get(&key).await;
        }
        let config = DynamoDbConfig::new(table)
            .with_operation_timeout(ATTEMPT_TIMEOUT * attempts)
            .with_max_attempts(attempts);
        let proxy = FaultProxy::start(upstream, seed)
            .await
            .expect("start the proxy");
        let clients: Vec<Arc<dyn Backend>> = (0..4)
            .map(|_| {
                let through = config
                    .clone()
                    .with_endpoint(format!("http://{}", proxy.local_addr()));
                Arc::new(DynamoDbBackend::connect(through).expect("a client")) as Arc<dyn Backend>
            })
            .collect();
        let budget = ATTEMPT_TIMEOUT * attempts;
        standard_run(&proxy, clients, "faulted", seed, ATTEMPT_TIMEOUT, budget)
            .await
            .problems
    })
}

/// One DynamoDB Local for both runs: two at once would halve what each can answer.
#[test]
fn answers_stay_linearizable_errors_are_actionable_and_service_returns() {
    let local = DynamoDbLocal::start().expect("start DynamoDB Local");
    for (attempts, seed) in [(1, 7), (3, 8)] {
        let problems = run_with_attempts(&local, attempts, seed);
        assert!(
            problems.is_empty(),
            "{attempts} attempt(s) per call:\n{}",
            problems.join("\n")
        );
    }
}
