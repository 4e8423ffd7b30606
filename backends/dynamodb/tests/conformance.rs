//! The full conformance matrix for the DynamoDB backend against DynamoDB Local: one
//! server per test binary (an existing endpoint, a testcontainers container, or the jar
//! as a process; the output says which), shared by every case through the kit's unique
//! key prefixes.
//!
//! The table has TTL deletion OFF: DynamoDB Local deletes expired items within about a
//! second, which would hide a backend that forgets to filter expired items on read
//! (real DynamoDB may take days). What the ttl cases test here is the backend's own filter.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_conformance::Suite;

const TABLE: &str = "cachekit_conformance";

static ENDPOINT: OnceLock<String> = OnceLock::new();

fn backend() -> DynamoDbBackend {
    let endpoint = ENDPOINT.get().map_or("http://127.0.0.1:9", String::as_str);
    // With 32 cases at once, DynamoDB Local's queue can hold a health probe past the
    // default 2 s, which would report a healthy store as unhealthy; 4 s still keeps a
    // probe that times out within the kit's 5 s health bound.
    let config = DynamoDbConfig::new(TABLE)
        .with_endpoint(endpoint)
        .with_health_timeout(Duration::from_secs(4));
    DynamoDbBackend::connect(config).expect("a local endpoint needs no credentials")
}

fn main() -> ExitCode {
    // Listing (cargo nextest does it) reads declared capabilities only; no server needed.
    let listing = std::env::args().any(|arg| arg == "--list");
    let local = if listing {
        None
    } else {
        match start() {
            Ok(local) => Some(local),
            Err(why) => {
                eprintln!("dynamodb conformance cannot run: {why}");
                return ExitCode::FAILURE;
            }
        }
    };
    // DynamoDB Local is one JVM over SQLite: requests queue there, so fewer cases run at
    // once than the kit's default (64), which lets the cases that mostly wait for ttls run
    // beside the heavy ones without the queue reaching the client's 5 s attempt timeout.
    let suites = vec![Suite::new("dynamodb", || async { backend() })];
    let code = cachekit_conformance::harness::main_with_threads(suites, 32);
    drop(local);
    code
}

fn start() -> Result<DynamoDbLocal, String> {
    let local = DynamoDbLocal::start()?;
    eprintln!("{local}");
    let _ = ENDPOINT.set(local.endpoint().to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    // The container handle must not be dropped inside the runtime: its removal blocks.
    let prepared: Result<(), String> = runtime.block_on(async {
        let backend = backend();
        backend
            .ensure_table_with(TtlDeletion::Untouched)
            .await
            .map_err(|err| format!("cannot create table {TABLE}: {err}"))?;
        let ttl = backend
            .client()
            .describe_time_to_live()
            .table_name(TABLE)
            .send()
            .await
            .map_err(|err| format!("DescribeTimeToLive: {err}"))?;
        let status = ttl
            .time_to_live_description
            .and_then(|description| description.time_to_live_status);
        eprintln!("table {TABLE}: TTL deletion {status:?} (expiry is the backend's read filter)");
        Ok(())
    });
    prepared.map(|()| local)
}
