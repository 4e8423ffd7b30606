//! In-process cachekit backend.
//!
//! The reference implementation of the [`Backend`] contract and the embedded default.
//! Entries live in a fixed number of shards, each behind its own reader-writer lock, so
//! readers of different shards never contend and readers of one shard share its lock.
//!
//! Expiry is checked lazily on every read, and expired entries are also purged in an
//! amortised sweep: every [`PURGE_EVERY_WRITES`] writes, one shard is swept, so memory
//! held by expired entries stays bounded without a background task. Expiry follows
//! `tokio::time::Instant`, which lets tests run ttl cases on a paused clock.
//!
//! ```
//! use std::time::Duration;
//! use cachekit_backend_memory::MemoryBackend;
//! use cachekit_core::{Backend, Bytes};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let cache = MemoryBackend::new();
//! cache.set("user:1", Bytes::from_static(b"alice"), Some(Duration::from_secs(60))).await?;
//! assert_eq!(cache.get("user:1").await?, Some(Bytes::from_static(b"alice")));
//! # Ok::<_, cachekit_core::BackendError>(()) }).unwrap();
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachekit_core::{
    async_trait, Backend, Bytes, Capabilities, Clock, HealthReport, Result, TtlSupport,
    PROTOCOL_MAX_TTL,
};
use parking_lot::RwLock;
use tokio::time::Instant;

/// One shard is swept for expired entries after this many writes.
pub const PURGE_EVERY_WRITES: usize = 64;

const SHARDS: usize = 16;

/// Limits of a [`MemoryBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Longest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Most entries held at once; beyond it, writes evict other entries (expired ones first).
    pub capacity: Option<usize>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_key_bytes: 1024,
            max_value_bytes: 8 * 1024 * 1024,
            capacity: None,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|deadline| now < deadline)
    }
}

type Shard = RwLock<HashMap<String, Entry>>;

/// A sharded in-memory store that implements [`Backend`].
#[derive(Debug)]
pub struct MemoryBackend {
    shards: Box<[Shard]>,
    hasher: RandomState,
    capabilities: Capabilities,
    capacity_per_shard: Option<usize>,
    writes: AtomicUsize,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An unbounded store with the default key and value limits.
    pub fn new() -> Self {
        Self::with_config(MemoryConfig::default())
    }

    /// A store with explicit limits.
    pub fn with_config(config: MemoryConfig) -> Self {
        let capabilities = Capabilities::new("memory")
            .with_ttl(TtlSupport {
                precision: Duration::from_millis(1),
                max: PROTOCOL_MAX_TTL,
            })
            .with_max_key_bytes(config.max_key_bytes)
            .with_max_value_bytes(config.max_value_bytes)
            .with_may_evict(config.capacity.is_some())
            .with_clock(Clock::Tokio);
        MemoryBackend {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            capabilities,
            capacity_per_shard: config.capacity.map(|cap| cap.div_ceil(SHARDS).max(1)),
            writes: AtomicUsize::new(0),
        }
    }

    /// Entries physically held, expired ones not yet purged included.
    pub fn stored_entries(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    fn shard(&self, key: &str) -> &Shard {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[index]
    }

    fn read_live<T>(&self, key: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let now = Instant::now();
        let shard = self.shard(key).read();
        shard.get(key).filter(|entry| entry.is_live(now)).map(read)
    }

    fn after_write(&self) {
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if writes % PURGE_EVERY_WRITES == 0 {
            let index = (writes / PURGE_EVERY_WRITES) % self.shards.len();
            let now = Instant::now();
            self.shards[index]
                .write()
                .retain(|_, entry| entry.is_live(now));
        }
    }
}

fn make_room(shard: &mut HashMap<String, Entry>, capacity: usize, incoming: &str, now: Instant) {
    if shard.len() < capacity || shard.contains_key(incoming) {
        return;
    }
    shard.retain(|_, entry| entry.is_live(now));
    while shard.len() >= capacity {
        let Some(victim) = shard.keys().next().cloned() else {
            return;
        };
        shard.remove(&victim);
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.capabilities.check_key(key)?;
        Ok(self.read_live(key, |entry| entry.value.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.capabilities.check_key(key)?;
        self.capabilities.check_value(&value)?;
        let ttl = self.capabilities.check_ttl(ttl)?;
        let now = Instant::now();
        let entry = Entry {
            value,
            expires_at: ttl.map(|ttl| now + ttl),
        };
        {
            let mut shard = self.shard(key).write();
            if let Some(capacity) = self.capacity_per_shard {
                make_room(&mut shard, capacity, key, now);
            }
            shard.insert(key.to_owned(), entry);
        }
        self.after_write();
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.capabilities.check_key(key)?;
        let removed = self.shard(key).write().remove(key);
        Ok(removed.is_some_and(|entry| entry.is_live(Instant::now())))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.capabilities.check_key(key)?;
        Ok(self.read_live(key, |_| ()).is_some())
    }

    async fn health_check(&self) -> HealthReport {
        HealthReport::probe("memory", Duration::from_secs(1), async {
            Ok([("entries".to_owned(), self.stored_entries().to_string())].into())
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_purged_by_later_writes() -> Result<()> {
        let cache = MemoryBackend::new();
        for i in 0..1000 {
            let ttl = Some(Duration::from_secs(1));
            cache.set(&format!("short-{i}"), Bytes::new(), ttl).await?;
        }
        assert_eq!(cache.stored_entries(), 1000);
        tokio::time::advance(Duration::from_secs(2)).await;
        // Enough writes to sweep every shard once.
        for i in 0..PURGE_EVERY_WRITES * SHARDS {
            cache
                .set(&format!("churn-{}", i % 8), Bytes::new(), None)
                .await?;
        }
        assert_eq!(cache.stored_entries(), 8);
        Ok(())
    }

    #[tokio::test]
    async fn capacity_bounds_the_number_of_entries() -> Result<()> {
        let cache = MemoryBackend::with_config(MemoryConfig {
            capacity: Some(160),
            ..MemoryConfig::default()
        });
        for i in 0..5000 {
            cache
                .set(&format!("k{i}"), Bytes::from_static(b"v"), None)
                .await?;
        }
        assert!(cache.stored_entries() <= 160, "{}", cache.stored_entries());
        assert_eq!(
            cache.get("k4999").await?,
            Some(Bytes::from_static(b"v")),
            "the newest write survives eviction"
        );
        Ok(())
    }

    #[tokio::test]
    async fn overwriting_at_capacity_evicts_nothing() -> Result<()> {
        let cache = MemoryBackend::with_config(MemoryConfig {
            capacity: Some(SHARDS),
            ..MemoryConfig::default()
        });
        cache.set("a", Bytes::from_static(b"1"), None).await?;
        for _ in 0..10 {
            cache.set("a", Bytes::from_static(b"2"), None).await?;
        }
        assert_eq!(cache.stored_entries(), 1);
        Ok(())
    }
}
