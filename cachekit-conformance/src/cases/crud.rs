//! Basic reads and writes.

use crate::{CaseResult, Ctx};

/// get of a key never set returns None.
pub async fn get_of_missing_key_is_none(ctx: Ctx) -> CaseResult {
    let key = ctx.key("never-set");
    ctx.expect_get("get of a key that was never set", &key, None)
        .await
}

/// get returns exactly what set stored.
pub async fn set_then_get_returns_the_value(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"value", None).await?;
    ctx.expect_get("get right after set", &key, Some(b"value"))
        .await
}

/// A second set replaces the value.
pub async fn overwrite_replaces_the_value(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"first", None).await?;
    ctx.set(&key, b"second", None).await?;
    ctx.expect_get("get after overwriting", &key, Some(b"second"))
        .await
}

/// An overwrite with a value of the same length replaces it.
pub async fn same_length_overwrite_replaces_the_value(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"first", None).await?;
    ctx.set(&key, b"fifth", None).await?;
    ctx.expect_get(
        "get after overwriting with a value of the same length",
        &key,
        Some(b"fifth"),
    )
    .await
}

/// A set after a miss is visible: a miss is never cached.
pub async fn a_set_after_a_miss_is_visible(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.expect_get("get of a key not yet set", &key, None)
        .await?;
    ctx.set(&key, b"now set", None).await?;
    ctx.expect_get(
        "get right after a set that followed a miss",
        &key,
        Some(b"now set"),
    )
    .await
}

/// A get of a missing key creates nothing.
pub async fn get_of_a_missing_key_creates_nothing(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.expect_get("get of a key never set", &key, None).await?;
    ctx.expect_exists("exists after a get of a key never set", &key, false)
        .await?;
    ctx.expect_delete("delete after a get of a key never set", &key, false)
        .await
}

/// Two keys holding equal bytes stay two values.
pub async fn keys_with_equal_values_stay_independent(ctx: Ctx) -> CaseResult {
    // A store that deduplicates equal values into one blob must copy it before changing
    // it: an overwrite of one key, even with a value of the same length, leaves the other.
    let (first, second) = (ctx.key("first"), ctx.key("second"));
    ctx.set(&first, b"shared bytes", None).await?;
    ctx.set(&second, b"shared bytes", None).await?;
    ctx.set(&first, b"other bytes!", None).await?;
    ctx.expect_get(
        "get of a key whose equal-valued neighbour was overwritten",
        &second,
        Some(b"shared bytes"),
    )
    .await?;
    ctx.expect_delete("delete of one of two keys with equal values", &second, true)
        .await?;
    ctx.expect_get(
        "get of a key whose equal-valued neighbour was deleted",
        &first,
        Some(b"other bytes!"),
    )
    .await?;
    // Deleting one of two keys that still share their bytes must not free them: small and
    // large (deduplication often starts at a size threshold).
    for len in [12, ctx.value_len(4096)] {
        let value = crate::cases::values::pattern(len, 0x5c);
        let (kept, dropped) = (
            ctx.key(&format!("kept-{len}")),
            ctx.key(&format!("dropped-{len}")),
        );
        ctx.set(&kept, &value, None).await?;
        ctx.set(&dropped, &value, None).await?;
        ctx.expect_delete(
            "delete of one of two keys with equal values",
            &dropped,
            true,
        )
        .await?;
        ctx.expect_get(
            &format!("get of a key whose {len}-byte value another key, now deleted, shared"),
            &kept,
            Some(value.as_slice()),
        )
        .await?;
    }
    Ok(())
}

/// Writing one key never changes another.
pub async fn keys_hold_independent_values(ctx: Ctx) -> CaseResult {
    let keys: Vec<String> = (0..5).map(|i| ctx.key(&format!("k{i}"))).collect();
    for (i, key) in keys.iter().enumerate() {
        ctx.set(key, format!("value-{i}").as_bytes(), None).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let expected = format!("value-{i}");
        ctx.expect_get("get of each of five keys", key, Some(expected.as_bytes()))
            .await?;
    }
    Ok(())
}
