//! A store with one flaw real stores ship: it refuses keys containing `~` (a layer that
//! treats it as a home-directory or path marker) without declaring them unrepresentable.

use std::time::Duration;

use cachekit_backend_memory::MemoryBackend;
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, HealthReport, Result,
};

/// The memory backend, with the `~` flaw when `refuses_tilde`.
pub struct TildeShy {
    pub inner: MemoryBackend,
    pub refuses_tilde: bool,
}

impl TildeShy {
    pub fn new(refuses_tilde: bool) -> Self {
        TildeShy {
            inner: MemoryBackend::new(),
            refuses_tilde,
        }
    }

    fn check(&self, key: &str) -> Result<()> {
        if self.refuses_tilde && key.contains('~') {
            return Err(BackendError::invalid_key("`~` is reserved"));
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for TildeShy {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.check(key)?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.check(key)?;
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.check(key)?;
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.check(key)?;
        self.inner.exists(key).await
    }
    async fn health_check(&self) -> HealthReport {
        self.inner.health_check().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
