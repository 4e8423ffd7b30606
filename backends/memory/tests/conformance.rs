//! The full conformance matrix against the reference backend: unbounded, bounded far above
//! what the cases write, and bounded so tightly (by bytes, or by entries) that cases evict;
//! plus the memory backend's own rules (`memory_rules`), reported beside the kit's.

mod memory_rules;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use cachekit_conformance::{extra_case, Timing};
use memory_rules::*;

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
    extra = [
        extra_case!(the_byte_budget_holds_and_is_counted_exactly, "bytes held stay within the budget after every write and equal the cost of the entries present"),
        extra_case!(the_entry_bound_holds_under_writes_overwrites_and_deletes, "writes, overwrites and deletes never take the store past its entry bound"),
        extra_case!(overwrites_do_not_grow_the_clock, "overwrites leave no unbounded trail of clock records"),
        extra_case!(expired_entries_are_reclaimed_by_later_writes, "expired entries are reclaimed by later writes, in every shard")
            .with_timing(Timing::WaitsForExpiry),
        extra_case!(a_full_store_evicts_expired_entries_first, "a full store makes room by dropping expired entries, not live ones")
            .with_timing(Timing::WaitsForExpiry),
        extra_case!(an_entry_read_between_writes_is_never_evicted, "an entry read between every two writes is never evicted"),
        extra_case!(an_entry_is_gone_at_its_deadline_exactly, "an entry is present until its deadline and gone at the deadline itself")
            .with_timing(Timing::WaitsForExpiry),
    ],
);
