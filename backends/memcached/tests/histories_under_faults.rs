//! The memcached backend under network faults: four clients, each with its own connection
//! pool through the fault proxy to one `memcached`, while the proxy adds latency, resets
//! connections, delays requests unevenly, holds them and partitions the server; checked for
//! linearizability, error kinds, time bounds and recovery after the heal (see
//! `cachekit_conformance::history::under_faults`).

use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_conformance::fault_proxy::FaultProxy;
use cachekit_conformance::history::under_faults::standard_run;
use cachekit_core::Backend;

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_linearizable_errors_are_actionable_and_service_returns() {
    let server = MemcachedServer::start().expect("start memcached");
    let proxy = FaultProxy::start(server.addr(), 6)
        .await
        .expect("start the proxy");
    let mut clients: Vec<Arc<dyn Backend>> = Vec::new();
    for _ in 0..4 {
        let mut config = MemcachedConfig::new(proxy.local_addr().to_string());
        config.connect_timeout = TIMEOUT;
        config.operation_timeout = TIMEOUT;
        let backend = MemcachedBackend::connect(config)
            .await
            .expect("connect through the proxy");
        clients.push(Arc::new(backend));
    }
    // A call may find its pooled connection dead and repeat once on a new one.
    let run = standard_run(&proxy, clients, "faulted", 6, TIMEOUT, TIMEOUT * 3).await;
    assert!(run.problems.is_empty(), "{}", run.problems.join("\n"));
}
