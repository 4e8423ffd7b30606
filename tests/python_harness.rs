//! The Python page's test harness, run against the reference backend.

use cachekit_backend_memory::MemoryBackend;
use cachekit_core::{async_trait, Backend, Bytes, Capabilities, HealthReport, Result};
use cachekit_tests::python_reference_harness;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn memory_backend_passes_the_python_page_harness() {
    let backend = MemoryBackend::new();
    assert_eq!(python_reference_harness(&backend).await, Ok(()));
}

/// Ignores every ttl: the one bug the Python harness was written to catch.
struct KeepsEverythingForever(MemoryBackend);

#[async_trait]
impl Backend for KeepsEverythingForever {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, _ttl: Option<Duration>) -> Result<()> {
        self.0.set(key, value, None).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.0.exists(key).await
    }
    async fn health_check(&self) -> HealthReport {
        self.0.health_check().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

#[tokio::test(start_paused = true)]
async fn the_python_harness_fails_a_backend_that_ignores_ttl() {
    let backend = KeepsEverythingForever(MemoryBackend::new());
    assert_eq!(
        python_reference_harness(&backend).await,
        Err("get 1.5 s after a 1 s ttl is None (expired)".to_owned())
    );
}
