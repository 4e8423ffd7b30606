//! The Redis backend under network faults: four clients, each with its own connection
//! through the fault proxy to one `redis-server`, while the proxy adds latency, resets
//! connections, delays requests unevenly, holds them and partitions the server; checked for
//! linearizability, error kinds, time bounds and recovery after the heal (see
//! `cachekit_conformance::history::under_faults`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_redis::local::RedisServer;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_conformance::fault_proxy::FaultProxy;
use cachekit_conformance::history::under_faults::standard_run;
use cachekit_core::Backend;

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_linearizable_errors_are_actionable_and_service_returns() {
    let server = RedisServer::start().expect("start redis-server");
    let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let proxy = FaultProxy::start(upstream, 5)
        .await
        .expect("start the proxy");
    let mut clients: Vec<Arc<dyn Backend>> = Vec::new();
    for _ in 0..4 {
        let mut config = RedisConfig::new(format!("redis://{}/0", proxy.local_addr()));
        config.connect_timeout = TIMEOUT;
        config.operation_timeout = TIMEOUT;
        let backend = RedisBackend::connect(config)
            .await
            .expect("connect through the proxy");
        clients.push(Arc::new(backend));
    }
    // A call may connect again first (a replaced connection), then run the command.
    let run = standard_run(&proxy, clients, "faulted", 5, TIMEOUT, TIMEOUT * 2).await;
    assert!(run.problems.is_empty(), "{}", run.problems.join("\n"));
}
