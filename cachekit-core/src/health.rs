//! Health reports.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::error::BackendError;

/// The detail in which a report counts the fields it left out, when it took its details
/// from an answer with more fields than it keeps (a remote health endpoint's JSON, say).
///
/// Present only when at least one field was left out, so a truncated list of details is
/// never mistaken for the whole answer.
pub const FIELDS_ELIDED_DETAIL: &str = "fields_elided";

/// The answer of [`Backend::health_check`](crate::Backend::health_check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Whether the backend can serve requests right now.
    pub healthy: bool,
    /// The backend type, as in [`Capabilities::backend_type`](crate::Capabilities::backend_type).
    pub backend_type: String,
    /// How long the probe took.
    pub latency: Duration,
    /// Free-form facts: an error message, a server version, a table name.
    pub details: BTreeMap<String, String>,
}

impl HealthReport {
    /// Runs `probe` with a deadline and reports its outcome and latency.
    ///
    /// A probe that fails or misses `timeout` yields an unhealthy report with the reason in
    /// `details["error"]`; it never panics and never waits longer than `timeout`.
    pub async fn probe<F>(backend_type: impl Into<String>, timeout: Duration, probe: F) -> Self
    where
        F: Future<Output = Result<BTreeMap<String, String>, BackendError>>,
    {
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(timeout, probe).await;
        let latency = started.elapsed();
        let (healthy, details) = match outcome {
            Ok(Ok(details)) => (true, details),
            Ok(Err(err)) => (false, error_details(&err.to_string())),
            Err(_) => (
                false,
                error_details(&format!("health probe timed out after {timeout:?}")),
            ),
        };
        HealthReport {
            healthy,
            backend_type: backend_type.into(),
            latency,
            details,
        }
    }
}

fn error_details(message: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("error".to_owned(), message.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_is_unhealthy_after_the_timeout() {
        let report = HealthReport::probe(
            "t",
            Duration::from_secs(2),
            std::future::pending::<Result<_, BackendError>>(),
        )
        .await;
        assert!(!report.healthy);
        assert_eq!(report.latency, Duration::from_secs(2));
        assert!(report.details["error"].contains("timed out"));
    }

    #[tokio::test]
    async fn a_failing_probe_carries_its_error() {
        let report = HealthReport::probe("t", Duration::from_secs(2), async {
            Err(BackendError::unavailable("connection refused"))
        })
        .await;
        assert!(!report.healthy);
        assert_eq!(report.details["error"], "unavailable: connection refused");
    }
}
