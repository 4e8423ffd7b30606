//! What delete and exists return.

use crate::{CaseResult, Ctx};

/// exists of a key never set is false.
pub async fn exists_is_false_for_missing_key(ctx: Ctx) -> CaseResult {
    let key = ctx.key("never-set");
    ctx.expect_exists("exists of a key that was never set", &key, false)
        .await
}

/// exists is true once a key is set.
pub async fn exists_is_true_after_set(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_exists("exists after set", &key, true).await
}

/// delete returns true when a live entry existed.
pub async fn delete_of_existing_key_returns_true(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_delete("delete of a key that was set", &key, true)
        .await
}

/// delete returns false when no entry existed.
pub async fn delete_of_missing_key_returns_false(ctx: Ctx) -> CaseResult {
    let key = ctx.key("never-set");
    ctx.expect_delete("delete of a key that was never set", &key, false)
        .await
}

/// Deleting twice returns true, then false.
pub async fn second_delete_returns_false(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_delete("first delete", &key, true).await?;
    ctx.expect_delete("second delete of the same key", &key, false)
        .await
}

/// After delete, get is None and exists is false.
pub async fn deleted_key_is_absent(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.delete(&key).await?;
    ctx.expect_absent("get/exists after delete", &key).await
}

/// A set after delete stores the key again.
pub async fn set_after_delete_recreates_the_entry(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"old", None).await?;
    ctx.delete(&key).await?;
    ctx.set(&key, b"new", None).await?;
    ctx.expect_present("get/exists after delete then set", &key, b"new")
        .await
}

/// delete leaves other keys alone.
pub async fn delete_only_removes_its_own_key(ctx: Ctx) -> CaseResult {
    let doomed = ctx.key("doomed");
    let kept = ctx.key("doomed-not");
    ctx.set(&doomed, b"1", None).await?;
    ctx.set(&kept, b"2", None).await?;
    ctx.delete(&doomed).await?;
    ctx.expect_present("a neighbouring key after delete", &kept, b"2")
        .await
}
