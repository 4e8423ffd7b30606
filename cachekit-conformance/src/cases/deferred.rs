//! What a backend acknowledged stays true when looked at again later: no write applied
//! late, no deleted entry resurrected, no rejected write landing after all.
//!
//! A write-behind queue, an asynchronously replicated replica or a near cache that is
//! refreshed late all answer correctly once, right away; these cases look again after a
//! pause ([`Ctx::pause`]), and once more after a second one.

use std::time::Duration;

use cachekit_core::Bytes;

use crate::{CaseResult, Ctx};

async fn twice_after_pauses<'a, F, Fut>(ctx: &'a Ctx, mut check: F) -> CaseResult
where
    F: FnMut(&'static str) -> Fut,
    Fut: std::future::Future<Output = CaseResult> + 'a,
{
    ctx.pause().await;
    check("after a pause").await?;
    ctx.pause().await;
    check("after a second pause").await
}

/// A deleted entry does not come back.
pub async fn deleted_entry_stays_deleted(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_delete("delete of a stored key", &key, true)
        .await?;
    twice_after_pauses(&ctx, |when| {
        let (ctx, key) = (ctx.clone(), key.clone());
        async move {
            ctx.expect_absent(&format!("a deleted key, {when}"), &key)
                .await
        }
    })
    .await
}

/// A deleted entry is still gone eleven and thirty-one days later (virtual time): a
/// tombstone purged after a grace period (Cassandra's ten days) lets a replica that
/// missed the delete bring the value back.
pub async fn deleted_entry_stays_deleted_for_a_month(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_delete("delete of a stored key", &key, true)
        .await?;
    let deleted = tokio::time::Instant::now();
    for days in [11, 31] {
        tokio::time::sleep_until(deleted + Duration::from_secs(days * 24 * 3600)).await;
        ctx.expect_absent(&format!("a deleted key, {days} days later"), &key)
            .await?;
    }
    Ok(())
}

/// An overwritten value does not come back.
pub async fn overwritten_value_stays_overwritten(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"first", None).await?;
    ctx.set(&key, b"second", None).await?;
    ctx.expect_present("get right after the overwrite", &key, b"second")
        .await?;
    twice_after_pauses(&ctx, |when| {
        let (ctx, key) = (ctx.clone(), key.clone());
        async move {
            ctx.expect_present(&format!("an overwritten key, {when}"), &key, b"second")
                .await
        }
    })
    .await
}

/// A stored value does not change or vanish while nobody writes it.
pub async fn stored_value_stays_as_stored(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    let value = super::values::pattern(ctx.value_len(3000), 0x3c);
    ctx.set(&key, &value, None).await?;
    ctx.expect_present("get right after set", &key, &value)
        .await?;
    twice_after_pauses(&ctx, |when| {
        let (ctx, key, value) = (ctx.clone(), key.clone(), value.clone());
        async move {
            ctx.expect_present(&format!("an untouched key, {when}"), &key, &value)
                .await
        }
    })
    .await
}

/// A write that failed does not land later.
pub async fn rejected_write_never_lands(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"kept", None).await?;
    // A zero ttl is invalid for every backend, with or without ttl support.
    let rejected = ctx
        .backend
        .set(
            &key,
            Bytes::from_static(b"rejected"),
            Some(std::time::Duration::ZERO),
        )
        .await;
    if rejected.is_ok() {
        // Whether a zero ttl is refused is `ttl::zero_ttl_is_invalid_argument`'s rule.
        return Ok(());
    }
    twice_after_pauses(&ctx, |when| {
        let (ctx, key) = (ctx.clone(), key.clone());
        async move {
            ctx.expect_present(
                &format!("a key whose overwrite failed, {when}"),
                &key,
                b"kept",
            )
            .await
        }
    })
    .await
}

/// A delete, of a missing key or of a stored one, never lands late on a value written
/// after it (a delete queued or retried behind the set that follows it).
pub async fn a_delete_does_not_hit_a_later_set(ctx: Ctx) -> CaseResult {
    let (missing, existing) = (ctx.key("missing"), ctx.key("existing"));
    ctx.expect_delete("delete of a key never set", &missing, false)
        .await?;
    ctx.set(&missing, b"later", None).await?;
    ctx.set(&existing, b"earlier", None).await?;
    ctx.expect_delete("delete of a key that was set", &existing, true)
        .await?;
    ctx.set(&existing, b"later", None).await?;
    twice_after_pauses(&ctx, |when| {
        let (ctx, missing, existing) = (ctx.clone(), missing.clone(), existing.clone());
        async move {
            ctx.expect_present(
                &format!("a key set after a delete of nothing, {when}"),
                &missing,
                b"later",
            )
            .await?;
            ctx.expect_present(
                &format!("a key set again after its delete, {when}"),
                &existing,
                b"later",
            )
            .await
        }
    })
    .await
}

/// Deleting one key does not later remove another.
pub async fn delete_does_not_spread_later(ctx: Ctx) -> CaseResult {
    let (doomed, kept) = (ctx.key("doomed"), ctx.key("kept"));
    ctx.set(&doomed, b"d", None).await?;
    ctx.set(&kept, b"k", None).await?;
    ctx.expect_delete("delete of one of two keys", &doomed, true)
        .await?;
    twice_after_pauses(&ctx, |when| {
        let (ctx, kept) = (ctx.clone(), kept.clone());
        async move {
            ctx.expect_present(
                &format!("the neighbour of a deleted key, {when}"),
                &kept,
                b"k",
            )
            .await
        }
    })
    .await
}
