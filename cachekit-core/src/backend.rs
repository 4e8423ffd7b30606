//! The `Backend` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::health::HealthReport;

/// A key-value store that cachekit can cache into.
///
/// Object safe: use it as `Arc<dyn Backend>`. The rules below are the contract; the
/// `cachekit-conformance` kit checks every one of them by name.
///
/// # Keys
/// Any non-empty UTF-8 string within [`Capabilities::max_key_bytes`]. Keys are exact: no
/// case folding, trimming, Unicode normalisation or path interpretation (`a/b`, `a%2Fb`
/// and `A/B` are three keys). An unrepresentable key fails with `InvalidKey`; it is never
/// truncated or rewritten.
///
/// # Values
/// Arbitrary bytes, including none at all: an empty value reads back as `Some(empty)`,
/// never `None`. A value over [`Capabilities::max_value_bytes`] fails with `ValueTooLarge`
/// and is not stored in part.
///
/// # Expiry
/// `set` replaces the value *and* the ttl: a `set` without ttl makes the entry persistent.
/// A ttl of zero, or above the declared maximum (at most 30 days), fails with
/// `InvalidArgument`. Ttls shorter than the declared precision round up, never down. An
/// expired entry is absent to `get`, `exists` and `delete`, whether or not storage has
/// physically removed it yet.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The value stored under `key`, or `None` if there is no live entry.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Stores `value` under `key`, replacing any previous value and ttl.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;

    /// Removes `key`; `true` if and only if a live entry existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Whether a live entry exists under `key`.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// Probes the store. A down store yields `healthy: false` within the backend's
    /// timeout; this method never fails and never panics.
    async fn health_check(&self) -> HealthReport;

    /// What this backend declares about itself.
    fn capabilities(&self) -> Capabilities;
}

macro_rules! forward_backend {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<B: Backend + ?Sized> Backend for $pointer<B> {
            async fn get(&self, key: &str) -> Result<Option<Bytes>> {
                (**self).get(key).await
            }
            async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
                (**self).set(key, value, ttl).await
            }
            async fn delete(&self, key: &str) -> Result<bool> {
                (**self).delete(key).await
            }
            async fn exists(&self, key: &str) -> Result<bool> {
                (**self).exists(key).await
            }
            async fn health_check(&self) -> HealthReport {
                (**self).health_check().await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    )+};
}

forward_backend!(Arc, Box);
