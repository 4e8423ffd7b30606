//! A backend whose capabilities are declared from outside.
//!
//! A client of a remote service (the HTTP backend, say) cannot know what the service
//! behind it supports: its limits, whether it expires entries. Whoever validates the
//! service declares that instead, and the kit gates cases on the declaration. Every
//! operation still goes to the service untouched, so what is checked is the service.

use std::time::Duration;

use cachekit_core::{async_trait, Backend, Bytes, Capabilities, HealthReport, Result};

/// `backend`, declaring `capabilities` instead of its own.
#[derive(Debug, Clone)]
pub struct WithCapabilities<B> {
    backend: B,
    capabilities: Capabilities,
}

impl<B: Backend> WithCapabilities<B> {
    /// Wraps `backend` so that it declares `capabilities`.
    pub fn new(backend: B, capabilities: Capabilities) -> Self {
        WithCapabilities {
            backend,
            capabilities,
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for WithCapabilities<B> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.backend.get(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.backend.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.backend.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.backend.exists(key).await
    }

    async fn health_check(&self) -> HealthReport {
        self.backend.health_check().await
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }
}
