//! What delete and exists return.

use std::time::Duration;

use crate::failure::Operation;
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

/// delete returns true when a live entry existed, however often it was overwritten (a
/// conditional delete that matches the version of the first write matches nothing after
/// an overwrite).
pub async fn delete_of_existing_key_returns_true(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    ctx.expect_delete("delete of a key that was set", &key, true)
        .await?;
    let overwritten = ctx.key("overwritten");
    ctx.set(&overwritten, b"first", None).await?;
    ctx.set(&overwritten, b"second", None).await?;
    ctx.expect_delete("delete of a key set twice", &overwritten, true)
        .await
}

/// After an hour with no calls, a delete of a stored key still answers true, and the
/// next one false (virtual time): a pooled connection dropped while idle, and a client
/// that replays the delete on a new one, reports the replay's "nothing there".
///
/// The entry is then gone at once and an hour later, and so is an entry overwritten after
/// an idle hour and then deleted: a store that moves idle entries to a colder tier, and
/// deletes only the hot copy, serves the cold one (or the value before the overwrite).
pub async fn a_delete_after_an_idle_hour_answers_truly(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    let hour = Duration::from_secs(3600);
    tokio::time::sleep(hour).await;
    ctx.expect_delete("delete of a stored key after an idle hour", &key, true)
        .await?;
    ctx.expect_absent("a key deleted after an idle hour", &key)
        .await?;
    tokio::time::sleep(hour).await;
    ctx.expect_absent("a key deleted after an idle hour, an hour later", &key)
        .await?;
    ctx.expect_delete("delete of a deleted key after an idle hour", &key, false)
        .await?;
    let overwritten = ctx.key("overwritten");
    ctx.set(&overwritten, b"first", None).await?;
    tokio::time::sleep(hour).await;
    ctx.set(&overwritten, b"second", None).await?;
    ctx.expect_delete(
        "delete of a key overwritten after an idle hour",
        &overwritten,
        true,
    )
    .await?;
    ctx.expect_absent(
        "a key overwritten after an idle hour, then deleted",
        &overwritten,
    )
    .await
}

/// A delete through one client removes an entry another client wrote (where the store is
/// shared across instances; otherwise both are the same client): a client that keeps its
/// own filter of the keys it wrote, and skips deletes of others, leaves them in place.
pub async fn a_delete_removes_what_another_client_wrote(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    let other = ctx.another_client().await;
    let check = "delete, through another client, of an entry this one wrote";
    let existed = other
        .delete(&key)
        .await
        .map_err(|err| crate::ctx::unexpected(Operation::Delete, check, &key, err))?;
    crate::ctx::expect_eq(check, &key, Operation::Delete, true, existed)?;
    crate::ctx::wait_out_staleness(ctx.caps.consistency).await;
    ctx.expect_absent("an entry another client deleted", &key)
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
    ctx.expect_absent("get/exists after delete", &key).await?;
    // A key that is a prefix of one still stored: a store keyed by a trie must also clear
    // the deleted key's mark on what is now an inner node.
    let (prefix, longer) = (ctx.key("p"), ctx.key("p/longer"));
    ctx.set(&prefix, b"v", None).await?;
    ctx.set(&longer, b"w", None).await?;
    ctx.delete(&prefix).await?;
    ctx.expect_absent(
        "get/exists after delete of a key that prefixes a stored key",
        &prefix,
    )
    .await
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

/// A delete of a missing key creates nothing.
pub async fn delete_of_a_missing_key_creates_nothing(ctx: Ctx) -> CaseResult {
    let key = ctx.key("never-set");
    ctx.expect_delete("delete of a key never set", &key, false)
        .await?;
    ctx.expect_absent("get/exists after a delete of a key never set", &key)
        .await
}

/// Many tasks setting and deleting one key leave get and exists in agreement.
pub async fn racing_sets_and_deletes_leave_get_and_exists_in_agreement(ctx: Ctx) -> CaseResult {
    let key = ctx.key("raced");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let (ctx, key) = (ctx.clone(), key.clone());
        tasks.spawn(async move {
            for round in 0..20 {
                if (task + round) % 2 == 0 {
                    ctx.set(&key, format!("{task}/{round}").as_bytes(), None)
                        .await?;
                } else {
                    ctx.delete(&key).await?;
                }
            }
            Ok::<(), crate::failure::Failure>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|err| {
            crate::failure::Failure::panicked("a racing task must not panic", err.to_string())
        })??;
    }
    let got = ctx.get(&key).await?;
    ctx.expect_exists(
        "exists after the race, against get's answer",
        &key,
        got.is_some(),
    )
    .await?;
    ctx.expect_delete(
        "delete after the race, against get's answer",
        &key,
        got.is_some(),
    )
    .await?;
    ctx.expect_absent("get/exists once the raced key is deleted", &key)
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
