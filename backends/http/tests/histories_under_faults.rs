//! The HTTP backend under network faults: a history recorded through the fault proxy
//! while it adds latency, resets connections, holds requests and partitions the server,
//! checked for linearizability, error kinds, time bounds and recovery after the heal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::fault_proxy::FaultProxy;
use cachekit_conformance::history::under_faults::{
    run_under_faults, standard_schedule, FaultExpectations,
};
use cachekit_conformance::history::{Consistency, Workload};
use cachekit_core::Backend;
use cachekit_server::{BackgroundServer, ServerConfig};

const TIMEOUT: Duration = Duration::from_millis(300);

fn server() -> BackgroundServer {
    let config = ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..ServerConfig::default()
    };
    BackgroundServer::spawn(MemoryBackend::new, config).expect("start cachekit-server")
}

fn address(base_url: &str) -> SocketAddr {
    base_url
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

async fn run(seed: u64, retry: RetryPolicy) -> Vec<String> {
    let server = server();
    let proxy = FaultProxy::start(address(server.base_url()), seed)
        .await
        .expect("start the fault proxy");
    let clients: Vec<Arc<dyn Backend>> = (0..4)
        .map(|_| {
            let mut config = HttpConfig::new(format!("http://{}", proxy.local_addr()));
            config.timeout = TIMEOUT;
            config.retry = retry;
            Arc::new(HttpBackend::new(config).expect("valid config")) as Arc<dyn Backend>
        })
        .collect();
    let keys = (0..3).map(|n| format!("faulted-{seed}-{n}")).collect();
    let phase = Duration::from_millis(400);
    let schedule = standard_schedule(phase, TIMEOUT);
    // The clients keep going until the schedule has played out (bounded in count too).
    let mut workload = Workload::new(2_000, Duration::from_millis(8), seed);
    workload.run_for = schedule.last().map(|last| last.at + phase);
    // Longer than any call may take with its retries: only a hung call is abandoned.
    workload.op_timeout = Duration::from_secs(10);
    let attempts = retry.max_retries + 1;
    let budget = TIMEOUT * attempts + retry.max_backoff * retry.max_retries;
    let run = run_under_faults(
        &proxy,
        clients,
        keys,
        &workload,
        Consistency::Linearizable,
        &schedule,
        &FaultExpectations::new(budget),
    )
    .await;
    let indeterminate = run
        .history
        .ops
        .iter()
        .filter(|op| op.is_indeterminate())
        .count();
    assert!(
        indeterminate > 0,
        "the faults caused no error at all: the schedule did not reach the backend"
    );
    assert!(
        run.history.determinate_count() > 100,
        "too few answered operations to judge: {}",
        run.history.determinate_count()
    );
    run.problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_answers_stay_linearizable_errors_are_actionable_and_service_returns() {
    let no_retries = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    for seed in [1] {
        let problems = run(seed, no_retries).await;
        assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_retries_answers_stay_linearizable_and_service_returns() {
    for seed in [2] {
        let problems = run(seed, RetryPolicy::default()).await;
        assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
    }
}
