//! In-process cachekit backend.
//!
//! The reference implementation of the [`Backend`] contract and the embedded default.
//! Entries live in a fixed number of shards, each behind its own reader-writer lock, so
//! readers of different shards never contend and readers of one shard share its lock.
//!
//! Expiry is checked lazily on every read. Writes also reclaim expired entries a few at
//! a time ([`SWEEP_RECORDS_PER_WRITE`]), so memory held by expired entries stays bounded
//! without a background task and without ever scanning a shard. A store bounded by entries
//! or bytes evicts with CLOCK (second chance), amortised O(1) per write. Expiry follows
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
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, Clock, ErrorKind, HealthReport,
    Result, TtlSupport, PROTOCOL_MAX_TTL,
};
use parking_lot::RwLock;
use tokio::time::Instant;

/// Clock records each write examines in its own shard for expired entries, so expired data
/// is reclaimed a little at a time, without a background task and without scanning a shard.
pub const SWEEP_RECORDS_PER_WRITE: usize = 2;

/// Every this many writes, one more shard, taken in turn, has [`SWEEP_RECORDS_PER_ROUND`]
/// records examined, so shards that are never written are still reclaimed.
pub const SWEEP_ROUND_EVERY_WRITES: u64 = 16;

/// Records a round-robin sweep examines in one shard.
pub const SWEEP_RECORDS_PER_ROUND: usize = 32;

/// What one entry costs against [`MemoryConfig::max_bytes`] on top of its key and value:
/// an estimate of its map slot, the shared key allocation, its clock record and the
/// allocator's headers.
pub const ENTRY_OVERHEAD_BYTES: usize = 160;

/// Number of independently locked shards; budgets are split evenly between them.
pub const SHARDS: usize = 16;

/// Limits of a [`MemoryBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Longest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Most entries held at once; beyond it, writes evict other entries. Split evenly over
    /// the [`SHARDS`] shards and rounded up, so up to `SHARDS - 1` more may be held.
    pub capacity: Option<usize>,
    /// Most bytes held at once (keys + values + [`ENTRY_OVERHEAD_BYTES`] per entry); beyond
    /// it, writes evict other entries.
    pub max_bytes: Option<usize>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_key_bytes: 1024,
            max_value_bytes: 8 * 1024 * 1024,
            capacity: None,
            max_bytes: None,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
    /// Which clock record speaks for this entry; older records of the same key are stale.
    generation: u64,
    /// Set by reads, cleared by the clock hand: a read entry survives one more pass.
    referenced: AtomicBool,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|deadline| now < deadline)
    }
}

fn entry_cost(key: &str, value: &[u8]) -> usize {
    key.len()
        .saturating_add(value.len())
        .saturating_add(ENTRY_OVERHEAD_BYTES)
}

/// Per-shard limits; `None` means unbounded.
#[derive(Debug, Clone, Copy)]
struct ShardLimits {
    entries: Option<usize>,
    bytes: Option<usize>,
}

/// One shard: the map, and a CLOCK queue in insertion order that eviction and the
/// incremental expiry sweep walk from the front.
#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Arc<str>, Entry>,
    clock: VecDeque<(Arc<str>, u64)>,
    bytes: usize,
    next_generation: u64,
}

/// What one write did to the shard, for the backend's counters.
#[derive(Debug, Default)]
struct WriteEffects {
    evicted: u64,
    expired: u64,
    examined: u64,
}

impl Shard {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        self.remove_keeping_key(key).map(|(_, entry)| entry)
    }

    fn remove_keeping_key(&mut self, key: &str) -> Option<(Arc<str>, Entry)> {
        let (key, entry) = self.entries.remove_entry(key)?;
        self.bytes -= entry_cost(&key, &entry.value);
        Some((key, entry))
    }

    fn is_current(&self, record: &(Arc<str>, u64)) -> bool {
        self.entries
            .get(&record.0)
            .is_some_and(|entry| entry.generation == record.1)
    }

    fn over(&self, limits: ShardLimits, incoming: usize) -> bool {
        let too_many = limits
            .entries
            .is_some_and(|most| self.entries.len() >= most);
        let too_big = limits
            .bytes
            .is_some_and(|most| self.bytes.saturating_add(incoming) > most);
        too_many || too_big
    }

    /// Removes one entry chosen by the clock hand: expired ones go at once, read ones get a
    /// second chance. Each record passed over was either stale or had its read bit cleared,
    /// so the work is paid for by earlier writes and reads: amortised O(1).
    fn evict_one(&mut self, now: Instant, effects: &mut WriteEffects) -> bool {
        while let Some(record) = self.clock.pop_front() {
            effects.examined += 1;
            let Some(entry) = self.entries.get(&record.0) else {
                continue;
            };
            if entry.generation != record.1 {
                continue;
            }
            let live = entry.is_live(now);
            if live && entry.referenced.swap(false, Ordering::Relaxed) {
                self.clock.push_back(record);
                continue;
            }
            self.remove(&record.0);
            if live {
                effects.evicted += 1;
            } else {
                effects.expired += 1;
            }
            return true;
        }
        false
    }

    /// Moves the clock hand `records` records without evicting: stale records are dropped,
    /// expired entries removed, live ones go round again with their read bit spent, as any
    /// pass of the hand spends it.
    fn sweep(&mut self, records: usize, now: Instant, effects: &mut WriteEffects) {
        for _ in 0..records {
            let Some(record) = self.clock.pop_front() else {
                return;
            };
            effects.examined += 1;
            match self.entries.get(&record.0) {
                Some(entry) if entry.generation == record.1 => {
                    if entry.is_live(now) {
                        entry.referenced.store(false, Ordering::Relaxed);
                        self.clock.push_back(record);
                    } else {
                        self.remove(&record.0);
                        effects.expired += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Deletes and overwrites leave stale records behind; once they outnumber the live
    /// ones, one pass drops them all. Each pass follows as many stale pushes as it walks.
    fn compact_clock(&mut self) {
        if self.clock.len() > 2 * self.entries.len() + 64 {
            let clock = std::mem::take(&mut self.clock);
            self.clock = clock
                .into_iter()
                .filter(|record| self.is_current(record))
                .collect();
        }
    }

    fn insert(
        &mut self,
        key: &str,
        value: Bytes,
        expires_at: Option<Instant>,
        limits: ShardLimits,
        now: Instant,
    ) -> WriteEffects {
        let mut effects = WriteEffects::default();
        // An overwrite reuses the key's allocation, so its stale clock record costs no copy.
        let previous_key = self.remove_keeping_key(key).map(|(key, _)| key);
        let cost = entry_cost(key, &value);
        while self.over(limits, cost) {
            if !self.evict_one(now, &mut effects) {
                break;
            }
        }
        // A write that evicted has moved the hand already; moving it further would hand the
        // entries just passed a second chance they did not earn.
        if effects.evicted + effects.expired == 0 {
            self.sweep(SWEEP_RECORDS_PER_WRITE, now, &mut effects);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let key: Arc<str> = previous_key.unwrap_or_else(|| Arc::from(key));
        self.clock.push_back((key.clone(), generation));
        self.bytes += cost;
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                generation,
                referenced: AtomicBool::new(false),
            },
        );
        self.compact_clock();
        effects
    }
}

/// Counters a [`MemoryBackend`] keeps, for health details and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Entries physically held, expired ones not yet reclaimed included.
    pub entries: usize,
    /// Bytes held, counted as [`MemoryConfig::max_bytes`] counts them.
    pub bytes: usize,
    /// Live entries removed to make room.
    pub evictions: u64,
    /// Expired entries reclaimed by writes.
    pub expired_reclaimed: u64,
    /// Clock records writes have examined while evicting and sweeping; divided by the
    /// number of writes, this shows that eviction does not scan.
    pub records_examined: u64,
    /// Writes made.
    pub writes: u64,
    /// Records in the shards' clock queues, stale ones (left by overwrites and deletes)
    /// included; compaction keeps it within about twice the entries.
    pub clock_records: usize,
}

/// A sharded in-memory store that implements [`Backend`].
///
/// Bounded by entries ([`MemoryConfig::capacity`]) and/or bytes ([`MemoryConfig::max_bytes`]),
/// it evicts when full and declares `may_evict`. Each shard holds an equal part of each
/// bound, so a shard whose keys hash unevenly may evict before the store as a whole is full.
/// Eviction is CLOCK (second chance): entries go roughly in insertion order, but an entry read
/// since the hand last passed is kept for one more pass; expired entries go first.
#[derive(Debug)]
pub struct MemoryBackend {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    capabilities: Capabilities,
    limits: ShardLimits,
    writes: AtomicU64,
    evictions: AtomicU64,
    expired_reclaimed: AtomicU64,
    records_examined: AtomicU64,
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
    ///
    /// With a byte budget, the declared largest value shrinks if needed so that one entry
    /// with the longest key always fits in a shard's share of the budget.
    pub fn with_config(config: MemoryConfig) -> Self {
        let limits = ShardLimits {
            entries: config.capacity.map(|most| most.div_ceil(SHARDS).max(1)),
            bytes: config.max_bytes.map(|most| most / SHARDS),
        };
        let max_value_bytes = match limits.bytes {
            Some(shard_bytes) => config.max_value_bytes.min(
                shard_bytes
                    .saturating_sub(config.max_key_bytes)
                    .saturating_sub(ENTRY_OVERHEAD_BYTES),
            ),
            None => config.max_value_bytes,
        };
        let capabilities = Capabilities::new("memory")
            .with_ttl(TtlSupport {
                precision: Duration::from_millis(1),
                max: PROTOCOL_MAX_TTL,
            })
            .with_max_key_bytes(config.max_key_bytes)
            .with_max_value_bytes(max_value_bytes)
            .with_may_evict(config.capacity.is_some() || config.max_bytes.is_some())
            .with_clock(Clock::Tokio);
        MemoryBackend {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            capabilities,
            limits,
            writes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expired_reclaimed: AtomicU64::new(0),
            records_examined: AtomicU64::new(0),
        }
    }

    /// Entries physically held, expired ones not yet reclaimed included.
    pub fn stored_entries(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().entries.len())
            .sum()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MemoryStats {
        let (entries, bytes, clock_records) =
            self.shards
                .iter()
                .fold((0, 0, 0), |(entries, bytes, records), shard| {
                    let shard = shard.read();
                    (
                        entries + shard.entries.len(),
                        bytes + shard.bytes,
                        records + shard.clock.len(),
                    )
                });
        MemoryStats {
            entries,
            bytes,
            evictions: self.evictions.load(Ordering::Relaxed),
            expired_reclaimed: self.expired_reclaimed.load(Ordering::Relaxed),
            records_examined: self.records_examined.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            clock_records,
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard> {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[index]
    }

    fn read_live<T>(&self, key: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let now = Instant::now();
        let shard = self.shard(key).read();
        let entry = shard.entries.get(key).filter(|entry| entry.is_live(now))?;
        // Checked first so that readers of a hot entry do not all write its cache line.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(read(entry))
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
        let cost = entry_cost(key, &value);
        if let Some(shard_bytes) = self.limits.bytes.filter(|most| cost > *most) {
            return Err(BackendError::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "an entry of {cost} bytes (key + value + {ENTRY_OVERHEAD_BYTES} overhead) \
                     exceeds a shard's share of the byte budget ({shard_bytes} bytes)"
                ),
            ));
        }
        // A `Bytes` may share a larger allocation (a read buffer, a grown Vec); an exact
        // copy makes the budget count what is really held.
        let value = Bytes::copy_from_slice(&value);
        let now = Instant::now();
        let expires_at = ttl.map(|ttl| now + ttl);
        let mut effects = self
            .shard(key)
            .write()
            .insert(key, value, expires_at, self.limits, now);
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if writes % SWEEP_ROUND_EVERY_WRITES == 0 {
            let turn = (writes / SWEEP_ROUND_EVERY_WRITES) as usize % self.shards.len();
            // A busy shard is skipped this round rather than waited for.
            if let Some(mut shard) = self.shards[turn].try_write() {
                shard.sweep(SWEEP_RECORDS_PER_ROUND, now, &mut effects);
            }
        }
        self.evictions.fetch_add(effects.evicted, Ordering::Relaxed);
        self.expired_reclaimed
            .fetch_add(effects.expired, Ordering::Relaxed);
        self.records_examined
            .fetch_add(effects.examined, Ordering::Relaxed);
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
            let stats = self.stats();
            let mut details = vec![
                ("entries".to_owned(), stats.entries.to_string()),
                ("bytes".to_owned(), stats.bytes.to_string()),
                ("evictions".to_owned(), stats.evictions.to_string()),
            ];
            if let Some(shard_bytes) = self.limits.bytes {
                details.push(("max_bytes".to_owned(), (shard_bytes * SHARDS).to_string()));
            }
            Ok(details.into_iter().collect())
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

    fn bounded(capacity: Option<usize>, max_bytes: Option<usize>) -> MemoryBackend {
        MemoryBackend::with_config(MemoryConfig {
            capacity,
            max_bytes,
            ..MemoryConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_reclaimed_by_later_writes() -> Result<()> {
        let cache = MemoryBackend::new();
        for i in 0..1000 {
            let ttl = Some(Duration::from_secs(1));
            cache.set(&format!("short-{i}"), Bytes::new(), ttl).await?;
        }
        assert_eq!(cache.stored_entries(), 1000);
        tokio::time::advance(Duration::from_secs(2)).await;
        // Each write sweeps a couple of records of its shard; 2000 writes pass every record.
        for i in 0..2000 {
            cache
                .set(&format!("churn-{}", i % 8), Bytes::new(), None)
                .await?;
        }
        assert_eq!(cache.stored_entries(), 8);
        assert_eq!(cache.stats().expired_reclaimed, 1000);
        Ok(())
    }

    #[tokio::test]
    async fn capacity_bounds_the_number_of_entries() -> Result<()> {
        let cache = bounded(Some(160), None);
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
        let cache = bounded(Some(SHARDS), None);
        cache.set("a", Bytes::from_static(b"1"), None).await?;
        for _ in 0..10 {
            cache.set("a", Bytes::from_static(b"2"), None).await?;
        }
        assert_eq!(cache.stored_entries(), 1);
        assert_eq!(cache.stats().evictions, 0);
        Ok(())
    }

    #[tokio::test]
    async fn byte_budget_bounds_keys_values_and_overhead() -> Result<()> {
        let budget = 4 * 1024 * 1024;
        let cache = bounded(None, Some(budget));
        assert!(cache.capabilities().may_evict);
        let value = Bytes::from(vec![7u8; 10_000]);
        for i in 0..2000 {
            cache.set(&format!("k{i}"), value.clone(), None).await?;
        }
        let stats = cache.stats();
        assert!(stats.bytes <= budget, "{stats:?}");
        // 2000 × 10 kB is 20 MB: most entries had to go, and what stayed fills the budget.
        assert!(stats.evictions >= 1500, "{stats:?}");
        assert!(stats.bytes >= budget / 2, "{stats:?}");
        assert_eq!(cache.get("k1999").await?, Some(value));
        Ok(())
    }

    #[tokio::test]
    async fn the_budget_caps_the_declared_value_size() -> Result<()> {
        let cache = bounded(None, Some(SHARDS * 64 * 1024));
        let declared = cache.capabilities().max_value_bytes;
        let expected = 64 * 1024 - 1024 - ENTRY_OVERHEAD_BYTES;
        assert_eq!(declared, Some(expected));
        let longest_key = "k".repeat(1024);
        cache
            .set(&longest_key, Bytes::from(vec![1u8; expected]), None)
            .await?;
        assert_eq!(
            cache.get(&longest_key).await?.map(|v| v.len()),
            Some(expected)
        );
        Ok(())
    }

    #[test]
    fn a_recently_read_entry_survives_a_pass_of_the_clock() {
        let limits = ShardLimits {
            entries: Some(4),
            bytes: None,
        };
        let now = Instant::now();
        let mut shard = Shard::default();
        shard.insert("hot", Bytes::from_static(b"h"), None, limits, now);
        for i in 0..40 {
            // A read sets the bit that the next pass of the hand spends instead of the entry.
            if let Some(entry) = shard.entries.get("hot") {
                entry.referenced.store(true, Ordering::Relaxed);
            }
            let key = format!("cold-{i}");
            shard.insert(&key, Bytes::from_static(b"c"), None, limits, now);
            assert!(
                shard.entries.contains_key("hot"),
                "hot evicted at write {i}"
            );
        }
        assert_eq!(shard.entries.len(), 4);
        // Unread, it goes within two passes of the hand: one spends its last read bit.
        for i in 0..8 {
            let key = format!("late-{i}");
            shard.insert(&key, Bytes::from_static(b"c"), None, limits, now);
        }
        assert!(!shard.entries.contains_key("hot"));
    }

    #[tokio::test]
    async fn eviction_examines_a_bounded_number_of_records_per_write() -> Result<()> {
        let cache = bounded(Some(100_000), None);
        for i in 0..100_000 {
            cache.set(&format!("fill-{i}"), Bytes::new(), None).await?;
        }
        let before = cache.stats();
        // Full: every new key evicts; some are read to exercise the second chance.
        for i in 0..20_000 {
            cache.set(&format!("new-{i}"), Bytes::new(), None).await?;
            if i % 3 == 0 {
                cache.get(&format!("new-{}", i / 2)).await?;
            }
            if i % 5 == 0 {
                cache.delete(&format!("new-{}", i / 4)).await?;
            }
        }
        let after = cache.stats();
        let writes = after.writes - before.writes;
        let examined = after.records_examined - before.records_examined;
        // A scan of a shard would be ~6,000 records per write; a clock hand a handful.
        assert!(
            examined <= writes * 8,
            "{examined} records examined for {writes} writes"
        );
        assert!(after.evictions - before.evictions >= 15_000, "{after:?}");
        Ok(())
    }

    #[tokio::test]
    async fn an_entry_larger_than_a_shards_budget_is_refused() -> Result<()> {
        // A shard's share is 4 KiB: any 1 KiB key with more than ~2.9 KiB of value cannot fit.
        let cache = bounded(None, Some(SHARDS * 4096));
        let long_key = "k".repeat(1024);
        let err = cache
            .set(&long_key, Bytes::from(vec![0u8; 3000]), None)
            .await
            .err()
            .map(|err| err.kind());
        assert_eq!(err, Some(ErrorKind::ValueTooLarge));
        assert_eq!(cache.stats().bytes, 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_stored_value_does_not_keep_a_larger_buffer_alive() -> Result<()> {
        let cache = MemoryBackend::new();
        let buffer = Bytes::from(vec![7u8; 64 * 1024]);
        cache.set("k", buffer.slice(..1), None).await?;
        let stored = cache.get("k").await?.unwrap_or_default();
        // The stored value is its own allocation, not a window into the 64 KiB buffer.
        assert_ne!(stored.as_ptr(), buffer.as_ptr());
        Ok(())
    }

    #[test]
    fn overwrites_share_one_key_allocation_with_their_stale_records() {
        let limits = ShardLimits {
            entries: None,
            bytes: None,
        };
        let now = Instant::now();
        let mut shard = Shard::default();
        let key = "k".repeat(1000);
        for _ in 0..10 {
            shard.insert(&key, Bytes::from_static(b"v"), None, limits, now);
        }
        let first = shard.clock.front().map(|(key, _)| Arc::as_ptr(key));
        let current = shard.entries.keys().next().map(Arc::as_ptr);
        assert_eq!(first, current);
    }

    #[tokio::test]
    async fn deletes_and_overwrites_do_not_grow_the_clock_without_bound() -> Result<()> {
        let cache = MemoryBackend::new();
        for i in 0..100_000 {
            cache.set("same", Bytes::from_static(b"v"), None).await?;
            if i % 2 == 0 {
                cache.delete("same").await?;
            }
        }
        let records: usize = cache.shards.iter().map(|s| s.read().clock.len()).sum();
        assert!(records <= 200, "{records} clock records for one key");
        Ok(())
    }
}
