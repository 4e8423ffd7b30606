//! The Python cachekit page's `HTTPBackend` example, ported literally, as a regression test
//! of the kit's strength: the kit must fail it on exactly the rules its bugs break.
//!
//! Its bugs, line by line: URLs built by string formatting (`f"{api_url}/cache/{key}"`, so
//! `/`, `?`, `#` and dot segments change the request); `delete` trusts only `200` (a `204`
//! is reported as "did not exist"); `if ttl` drops a zero or sub-second ttl and stores the
//! entry forever; every failure is one undifferentiated error with no retries; the
//! `health_check` template reports a hard-coded latency of 0.

use std::collections::BTreeMap;
use std::time::Duration;

use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::{run_suite, Report, RunOptions, Suite};
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, ErrorKind, HealthReport, Result,
};
use cachekit_server::{BackgroundServer, ServerConfig};

struct PythonHttpBackend {
    api_url: String,
    client: reqwest::Client,
}

impl PythonHttpBackend {
    fn new(api_url: &str) -> Self {
        PythonHttpBackend {
            api_url: api_url.to_owned(),
            client: reqwest::Client::new(),
        }
    }
}

/// `response.raise_for_status()` wrapped in one catch-all `BackendError`, as Step 2 shows.
fn raised(err: reqwest::Error) -> BackendError {
    BackendError::new(ErrorKind::Other, format!("Retrieval failed: {err}"))
}

#[async_trait]
impl Backend for PythonHttpBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let url = format!("{}/cache/{}", self.api_url, key);
        let response = self.client.get(url).send().await.map_err(raised)?;
        if response.status() == 404 {
            return Ok(None);
        }
        let response = response.error_for_status().map_err(raised)?;
        response.bytes().await.map(Some).map_err(raised)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        // Python's ttl is an int of seconds, and `if ttl` is false for 0.
        let ttl = ttl.map(|ttl| ttl.as_secs());
        let mut request = self
            .client
            .put(format!("{}/cache/{}", self.api_url, key))
            .body(value);
        if let Some(ttl) = ttl.filter(|ttl| *ttl != 0) {
            request = request.query(&[("ttl", ttl)]);
        }
        let response = request.send().await.map_err(raised)?;
        response.error_for_status().map(drop).map_err(raised)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let url = format!("{}/cache/{}", self.api_url, key);
        let response = self.client.delete(url).send().await.map_err(raised)?;
        Ok(response.status() == 200)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let url = format!("{}/cache/{}", self.api_url, key);
        let response = self.client.head(url).send().await.map_err(raised)?;
        Ok(response.status() == 200)
    }

    async fn health_check(&self) -> HealthReport {
        // The page's template: ping, then `{"backend_type": "custom", "latency_ms": 0}`.
        let healthy = self.client.get(&self.api_url).send().await.is_ok();
        HealthReport {
            healthy,
            backend_type: "custom".to_owned(),
            latency: Duration::ZERO,
            details: BTreeMap::new(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        // The page declares nothing; these are the protocol's defaults.
        Capabilities::new("custom")
    }
}

fn failed(report: &Report) -> Vec<String> {
    report.failures().map(|c| c.case.id()).collect()
}

fn assert_fails_on(report: &Report, rules: &[&str]) {
    let failed = failed(report);
    let missed: Vec<_> = rules
        .iter()
        .filter(|rule| !failed.iter().any(|f| f == *rule))
        .collect();
    assert!(missed.is_empty(), "the kit missed {missed:?}\n{report}");
}

/// Pinned so that every machine runs the same random cases.
const SEED: u64 = 20_251_125;

#[test]
fn the_kit_fails_the_python_http_backend_on_its_bugs() {
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let url = server.base_url().to_owned();
    let suite = Suite::new("python_http", move || {
        let url = url.clone();
        async move { PythonHttpBackend::new(&url) }
    });
    let report = run_suite(
        &suite,
        &RunOptions {
            seed: Some(SEED),
            ..RunOptions::default()
        },
    );
    assert_fails_on(
        &report,
        &[
            // Key collisions and paths changed by unescaped keys.
            "keys::slash_and_encoded_slash_are_distinct",
            "keys::url_special_keys_roundtrip",
            "keys::path_like_keys_roundtrip",
            "keys::dot_segment_keys_roundtrip",
            // 204 read as "did not exist".
            "delete_exists::delete_of_existing_key_returns_true",
            // `if ttl`: zero and sub-second ttls silently mean "forever".
            "ttl::zero_ttl_is_invalid_argument",
            "ttl::sub_precision_ttl_rounds_up",
            // The template's hard-coded health answer.
            "health::health_check_measures_latency",
        ],
    );
    // What it gets right stays green: the kit blames rules, not everything.
    let passed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome == cachekit_conformance::Outcome::Passed)
        .map(|c| c.case.id())
        .collect();
    for rule in [
        "crud::set_then_get_returns_the_value",
        "ttl::expired_entry_is_absent_from_get",
        "values::all_byte_values_roundtrip",
    ] {
        assert!(
            passed.iter().any(|p| p == rule),
            "{rule} should pass\n{report}"
        );
    }
}

#[test]
fn the_kit_fails_the_python_http_backend_under_faults() {
    let suite = Suite::http_faults("python_http_faults", |target| async move {
        PythonHttpBackend::new(&target.base_url)
    });
    let report = run_suite(
        &suite,
        &RunOptions {
            seed: Some(SEED),
            ..RunOptions::default()
        },
    );
    assert_fails_on(
        &report,
        &[
            // One catch-all error kind, and no retries.
            "faults::an_error_body_of_exactly_the_cap_keeps_its_kind",
            "faults::an_endless_error_body_is_cut_and_the_status_decides",
            "faults::status_500_is_unavailable_after_bounded_retries",
            "faults::status_429_is_throttled_and_honours_retry_after",
            "faults::status_401_is_auth_and_not_retried",
            "faults::transient_failure_is_retried_then_succeeds",
            // 204 on DELETE is "did not exist".
            "faults::every_success_status_of_the_api_is_accepted",
            "faults::body_shorter_than_content_length_is_protocol",
            // No client timeout at all: a silent service hangs the health check.
            "faults::hanging_service_is_unhealthy_within_the_timeout",
            // The health check only pings: an answer it never read is healthy, and none of
            // the answer's fields reach the report, without a count of what was dropped.
            "faults::a_health_answer_of_exactly_the_cap_is_read_whole",
            "faults::health_details_are_capped_and_the_cut_is_counted",
            "faults::an_unhealthy_answer_keeps_its_reason",
        ],
    );
}
