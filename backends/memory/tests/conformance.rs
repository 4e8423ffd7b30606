//! The full conformance matrix against the reference backend: unbounded, bounded far above
//! what the cases write, and bounded so tightly (by bytes, or by entries) that cases evict.

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
    memory_small_budget => async {
        MemoryBackend::with_config(MemoryConfig { max_bytes: Some(256 * 1024), ..MemoryConfig::default() })
    },
    memory_small_capacity => async {
        MemoryBackend::with_config(MemoryConfig { capacity: Some(320), ..MemoryConfig::default() })
    },
);
