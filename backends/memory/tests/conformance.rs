//! The full conformance matrix against the reference backend, unbounded and capacity-bounded.

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};

cachekit_conformance::conformance_tests!(
    memory => async { MemoryBackend::new() },
    memory_bounded => async {
        MemoryBackend::with_config(MemoryConfig {
            capacity: Some(100_000),
            max_bytes: Some(64 * 1024 * 1024),
            ..MemoryConfig::default()
        })
    },
);
