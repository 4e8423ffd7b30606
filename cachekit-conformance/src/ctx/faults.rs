//! The context of the fault cases: the settings a backend under test is built with
//! ([`FaultTarget`]) and the factory that builds it against a server a case started.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::Backend;

/// Where and how the backend under test must be configured for a fault case.
///
/// Built by the kit and handed to the suite's factory; more settings may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultTarget {
    /// The fault server's base URL; the API lives at `{base_url}/cache/{key}`.
    pub base_url: String,
    /// Deadline of each attempt.
    pub timeout: Duration,
    /// Retries after the first attempt for transient failures (5xx, 429, connect errors)
    /// of GET, HEAD and PUT; DELETE only where the server refused it (429, 503).
    pub max_retries: u32,
    /// Upper bound of computed backoff; a `Retry-After` of 1 s must still be honoured.
    pub max_backoff: Duration,
    /// Largest response body the backend accepts.
    pub max_response_bytes: usize,
    /// Longest `Retry-After` the backend waits for before retrying; a longer one is
    /// returned to the caller as `Throttled`. The cases ask for exactly this long (1 s),
    /// so a bound that excludes its own value fails them, and for far longer (2 h).
    pub max_retry_after: Duration,
    /// Most bytes of an error response's body the backend reads for its message and kind
    /// (3 KiB). A body of exactly this length must be read whole; a longer or endless one is
    /// cut, and the status still decides the kind.
    pub max_error_body_bytes: usize,
    /// Largest `/health` body the backend reads (20 KiB). An answer of exactly this length
    /// must be read whole; a `2xx` answer one byte longer is not read whole, so it cannot
    /// be judged healthy.
    pub max_health_body_bytes: usize,
    /// Most fields of a health answer the backend keeps in its report's details (7); the
    /// number it leaves out goes in
    /// [`FIELDS_ELIDED_DETAIL`](cachekit_core::FIELDS_ELIDED_DETAIL).
    pub max_health_details: usize,
}

pub(crate) type TargetedFuture = Pin<Box<dyn Future<Output = Arc<dyn Backend>>>>;
pub(crate) type FaultFactory = dyn Fn(FaultTarget) -> TargetedFuture + Send + Sync;

/// What a fault case gets: a way to build the backend against a server it started.
pub struct FaultCtx {
    factory: Arc<FaultFactory>,
}

pub(crate) const TIMEOUT: Duration = Duration::from_millis(400);
pub(crate) const RETRIES: u32 = 2;
pub(crate) const RESPONSE_CAP: usize = 64 * 1024;
/// The `Retry-After` the throttling cases ask for, and the longest the backend is told to
/// wait for: the boundary itself.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(1);
pub(crate) const KEY: &str = "fault-key";
// The caps are no client's likely default (nor powers of two), and the cases try both sides
// of each: a backend that keeps its own cap instead of the one it was given is seen.
pub(crate) const ERROR_BODY_CAP: usize = 3 * 1024;
pub(crate) const HEALTH_BODY_CAP: usize = 20 * 1024;
pub(crate) const HEALTH_DETAILS_CAP: usize = 7;

impl FaultCtx {
    pub(crate) fn new(factory: Arc<FaultFactory>) -> Self {
        FaultCtx { factory }
    }

    /// The settings every fault case uses.
    pub fn target(base_url: &str) -> FaultTarget {
        FaultTarget {
            base_url: base_url.to_owned(),
            timeout: TIMEOUT,
            max_retries: RETRIES,
            max_backoff: Duration::from_millis(100),
            max_response_bytes: RESPONSE_CAP,
            max_retry_after: MAX_RETRY_AFTER,
            max_error_body_bytes: ERROR_BODY_CAP,
            max_health_body_bytes: HEALTH_BODY_CAP,
            max_health_details: HEALTH_DETAILS_CAP,
        }
    }

    pub(crate) async fn backend_for(&self, base_url: &str) -> Arc<dyn Backend> {
        (self.factory)(Self::target(base_url)).await
    }
}
