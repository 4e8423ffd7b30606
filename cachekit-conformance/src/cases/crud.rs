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
