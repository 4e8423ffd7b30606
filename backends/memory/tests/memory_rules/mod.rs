//! Rules of the memory backend beyond the kit's: its declared bounds hold, its bookkeeping
//! (bytes, entries, clock records, reclaimed expiries) is exact, and its eviction keeps
//! what is being read. Registered with `extra = [..]`, so the harness runs and reports them
//! beside the kit's cases (family `extra`); each builds the store it needs.

use std::fmt::Display;
use std::time::Duration;

use cachekit_backend_memory::{
    MemoryBackend, MemoryConfig, MemoryStats, ENTRY_OVERHEAD_BYTES, SHARDS, SWEEP_RECORDS_PER_WRITE,
};
use cachekit_conformance::{CaseResult, Ctx, Failure, Operation};
use cachekit_core::{Backend, Bytes};

fn store(capacity: Option<usize>, max_bytes: Option<usize>) -> MemoryBackend {
    MemoryBackend::with_config(MemoryConfig {
        capacity,
        max_bytes,
        ..MemoryConfig::default()
    })
}

fn mismatch(check: &str, expected: impl Display, got: impl Display) -> Failure {
    Failure::new(check)
        .expected(expected.to_string())
        .got(got.to_string())
}

async fn set(store: &MemoryBackend, key: &str, value: &[u8], ttl: Option<Duration>) -> CaseResult {
    store
        .set(key, Bytes::copy_from_slice(value), ttl)
        .await
        .map_err(|err| {
            Failure::new("a write into a store with room to evict")
                .operation(Operation::Set)
                .key(key)
                .expected(cachekit_conformance::Answer::unit())
                .got(err.to_string())
        })
}

async fn get(store: &MemoryBackend, key: &str) -> Result<Option<Bytes>, Failure> {
    store.get(key).await.map_err(|err| {
        Failure::new("a read")
            .operation(Operation::Get)
            .key(key)
            .got(err.to_string())
    })
}

fn value_of(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8; (i * 37) % 600]
}

const BYTE_BUDGET: usize = 64 * 1024;

/// After every write the bytes held stay within the budget; at the end the counters equal
/// what a reader finds: the entries present, their cost, the writes that were evicted.
pub async fn the_byte_budget_holds_and_is_counted_exactly(ctx: Ctx) -> CaseResult {
    let store = store(None, Some(BYTE_BUDGET));
    let keys: Vec<String> = (0..1500)
        .map(|i| ctx.key(&format!("b/{i}/{}", "x".repeat(i % 7))))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        set(&store, key, &value_of(i), None).await?;
        let held = store.stats().bytes;
        if held > BYTE_BUDGET {
            return Err(mismatch(
                &format!("bytes held after write #{}", i + 1),
                format!("at most the budget, {BYTE_BUDGET}"),
                held,
            )
            .operation(Operation::Set)
            .key(key));
        }
    }
    let (mut present, mut cost) = (0usize, 0usize);
    for (i, key) in keys.iter().enumerate() {
        if let Some(value) = get(&store, key).await? {
            if value.as_ref() != value_of(i).as_slice() {
                return Err(
                    mismatch("a surviving entry's value", "as written", "another value")
                        .operation(Operation::Get)
                        .key(key),
                );
            }
            present += 1;
            cost += key.len() + value.len() + ENTRY_OVERHEAD_BYTES;
        }
    }
    let stats = store.stats();
    let counted = (
        stats.entries,
        store.stored_entries(),
        stats.bytes,
        stats.evictions,
    );
    let found = (present, present, cost, (keys.len() - present) as u64);
    if counted != found {
        return Err(mismatch(
            "(entries, stored_entries, bytes, evictions) against what reads find",
            format!("{found:?}"),
            format!("{counted:?}"),
        ));
    }
    if cost < BYTE_BUDGET / 2 {
        return Err(mismatch(
            "bytes held by a full store",
            format!("at least half the budget, {}", BYTE_BUDGET / 2),
            cost,
        ));
    }
    let report = store.health_check().await;
    let declared = report.details.get("max_bytes").cloned().unwrap_or_default();
    if declared != BYTE_BUDGET.to_string() {
        return Err(
            mismatch("max_bytes in the health details", BYTE_BUDGET, declared)
                .operation(Operation::HealthCheck),
        );
    }
    Ok(())
}

const CAPACITY: usize = 320;

/// Writes, overwrites and deletes never take the store past its entry bound, and the
/// entry count is what reads find.
pub async fn the_entry_bound_holds_under_writes_overwrites_and_deletes(ctx: Ctx) -> CaseResult {
    let store = store(Some(CAPACITY), None);
    let key = |i: usize| ctx.key(&format!("e/{i}"));
    for i in 0..3000usize {
        match i % 5 {
            0 => {
                store.delete(&key(i / 2)).await.map_err(|err| {
                    Failure::new("a delete")
                        .operation(Operation::Delete)
                        .got(err.to_string())
                })?;
            }
            1 => set(&store, &key(i / 3), b"overwritten", None).await?,
            _ => set(&store, &key(i), b"new", None).await?,
        }
        let held = store.stats().entries;
        if held > CAPACITY {
            return Err(mismatch(
                &format!("entries held after step #{}", i + 1),
                format!("at most the capacity, {CAPACITY}"),
                held,
            ));
        }
    }
    let mut present = 0;
    for i in 0..3000 {
        present += usize::from(get(&store, &key(i)).await?.is_some());
    }
    let held = store.stats().entries;
    if held != present {
        return Err(mismatch(
            "entries counted against entries found",
            present,
            held,
        ));
    }
    Ok(())
}

/// Overwrites leave stale clock records behind; they are dropped, so the queue stays
/// within about twice the entries however often keys are overwritten.
pub async fn overwrites_do_not_grow_the_clock(ctx: Ctx) -> CaseResult {
    const KEYS: usize = 100;
    let store = store(None, None);
    // Several keys per shard, so a key's stale records meet the sweep while it exists.
    for round in 0..100 {
        for k in 0..KEYS {
            set(&store, &ctx.key(&format!("o/{k}")), &[round as u8], None).await?;
        }
    }
    let MemoryStats {
        entries,
        clock_records,
        ..
    } = store.stats();
    let bound = 2 * entries + 65 * SHARDS;
    // Every live entry has its current record, so the queue is never shorter than that.
    if entries != KEYS || clock_records < entries || clock_records > bound {
        return Err(mismatch(
            "(entries, clock records) after 100 overwrites of each of 100 keys",
            format!("({KEYS}, between {KEYS} and {bound})"),
            format!("({entries}, {clock_records})"),
        ));
    }
    Ok(())
}

/// Expired entries are reclaimed by the writes that follow: each write examines its own
/// shard, and every 16th write one more shard in turn, so even shards nobody writes
/// are emptied of expired data.
pub async fn expired_entries_are_reclaimed_by_later_writes(ctx: Ctx) -> CaseResult {
    let store = store(None, None);
    for i in 0..1600 {
        set(
            &store,
            &ctx.key(&format!("t/{i}")),
            b"soon gone",
            Some(Duration::from_secs(1)),
        )
        .await?;
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    let writes = 150;
    for i in 0..writes {
        set(&store, &ctx.key(&format!("n/{i}")), b"kept", None).await?;
    }
    let stats = store.stats();
    let least = (SWEEP_RECORDS_PER_WRITE * writes) as u64;
    if stats.expired_reclaimed < least
        || stats.records_examined < stats.expired_reclaimed
        || stats.entries as u64 != 1600 + writes as u64 - stats.expired_reclaimed
    {
        return Err(mismatch(
            "(expired reclaimed, records examined, entries) after 150 writes",
            format!("reclaimed ≥ {least}, examined ≥ reclaimed, entries = 1750 − reclaimed"),
            format!(
                "({}, {}, {})",
                stats.expired_reclaimed, stats.records_examined, stats.entries
            ),
        ));
    }
    // Every write now lands in one shard: only the round-robin reaches the others.
    let hot = ctx.key("hot");
    for _ in 0..2048 {
        set(&store, &hot, b"again", None).await?;
    }
    let entries = store.stats().entries;
    if entries != writes + 1 {
        return Err(mismatch(
            "entries after 2048 more writes to one key (every expired one reclaimed)",
            writes + 1,
            entries,
        ));
    }
    Ok(())
}

/// A full store makes room by dropping expired entries, not live ones.
pub async fn a_full_store_evicts_expired_entries_first(ctx: Ctx) -> CaseResult {
    let store = store(Some(CAPACITY), None);
    for i in 0..2 * CAPACITY {
        set(
            &store,
            &ctx.key(&format!("t/{i}")),
            b"soon gone",
            Some(Duration::from_secs(1)),
        )
        .await?;
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    let before = store.stats();
    let fresh: Vec<String> = (0..96).map(|i| ctx.key(&format!("f/{i}"))).collect();
    for key in &fresh {
        set(&store, key, b"fresh", None).await?;
    }
    let after = store.stats();
    let evicted = after.evictions - before.evictions;
    let expired = after.expired_reclaimed - before.expired_reclaimed;
    // Each write into a full shard drops one expired entry; the round-robin sweep may
    // drop more. Whatever the count, the entries held must follow from it.
    let held = before.entries + fresh.len() - expired as usize;
    let examined = after.records_examined - before.records_examined;
    if evicted != 0 || expired < fresh.len() as u64 || after.entries != held || examined < expired {
        return Err(mismatch(
            "(live entries evicted, expired entries reclaimed, entries, records examined) after 96 writes into full shards",
            format!(
                "(0, at least {}, {} + 96 − reclaimed, at least reclaimed)",
                fresh.len(),
                before.entries
            ),
            format!("({evicted}, {expired}, {}, {examined})", after.entries),
        ));
    }
    for key in &fresh {
        if get(&store, key).await?.is_none() {
            return Err(mismatch(
                "a fresh entry written into a full store",
                "present",
                "absent",
            )
            .operation(Operation::Get)
            .key(key));
        }
    }
    Ok(())
}

/// CLOCK gives a read entry a second chance: one read between every two writes keeps it
/// however many writes push the store past its capacity.
pub async fn an_entry_read_between_writes_is_never_evicted(ctx: Ctx) -> CaseResult {
    let store = store(Some(CAPACITY), None);
    let kept = ctx.key("kept");
    set(&store, &kept, b"hot", None).await?;
    for i in 0..3000 {
        if get(&store, &kept).await?.is_none() {
            return Err(mismatch(
                &format!("an entry read before every write, after {i} writes"),
                "present",
                "evicted",
            )
            .operation(Operation::Get)
            .key(&kept));
        }
        set(&store, &ctx.key(&format!("c/{i}")), b"cold", None).await?;
    }
    Ok(())
}

/// On the tokio clock an entry is present until its deadline and gone at the deadline
/// itself, not a tick later.
pub async fn an_entry_is_gone_at_its_deadline_exactly(ctx: Ctx) -> CaseResult {
    let store = store(None, None);
    let key = ctx.key("deadline");
    set(&store, &key, b"v", Some(Duration::from_secs(1))).await?;
    tokio::time::advance(Duration::from_millis(999)).await;
    if get(&store, &key).await?.is_none() {
        return Err(mismatch("1 ms before the deadline", "present", "absent")
            .operation(Operation::Get)
            .key(&key));
    }
    tokio::time::advance(Duration::from_millis(1)).await;
    if get(&store, &key).await?.is_some() {
        return Err(mismatch("at the deadline", "absent", "present")
            .operation(Operation::Get)
            .key(&key));
    }
    Ok(())
}
