//! Expiry: entries live exactly as long as their latest `set` said, and not a moment less.
//!
//! Waits are two-sided: present until `ttl - margin`, absent by `ttl + precision + slack`
//! (see [`TtlWindow`](crate::TtlWindow)). Each case measures from just before its `set`.

use std::time::Duration;

use cachekit_core::{Bytes, ErrorKind, TtlSupport};
use tokio::time::Instant;

use crate::failure::Operation;
use crate::{expect_error, CaseResult, Ctx, Failure};

fn support(ctx: &Ctx) -> Result<TtlSupport, Failure> {
    ctx.caps
        .ttl
        .ok_or_else(|| Failure::new("the case needs declared ttl support"))
}

/// An entry with a ttl is visible right after set.
pub async fn entry_is_visible_right_after_set(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(ctx.ttl_window().ttl)).await?;
    ctx.expect_present("get/exists right after a set with ttl", &key, b"v")
        .await
}

/// An entry never expires early.
pub async fn entry_is_present_until_just_before_expiry(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    let start = Instant::now();
    ctx.set(&key, b"v", Some(window.ttl)).await?;
    ctx.sleep_until(start, window.present_until).await;
    let check = format!(
        "get/exists {:?} after a set with ttl {:?}",
        window.present_until, window.ttl
    );
    ctx.expect_present(&check, &key, b"v").await
}

async fn set_and_wait_for_expiry(ctx: &Ctx, key: &str) -> Result<String, Failure> {
    let window = ctx.ttl_window();
    ctx.set(key, b"v", Some(window.ttl)).await?;
    // The ttl may start as late as the set's acknowledgement: count from there.
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    Ok(format!(
        "{:?} after a set with ttl {:?}",
        window.absent_by, window.ttl
    ))
}

/// An expired entry is absent to get.
pub async fn expired_entry_is_absent_from_get(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    let when = set_and_wait_for_expiry(&ctx, &key).await?;
    ctx.expect_get(&format!("get {when}"), &key, None).await
}

/// An expired entry is absent to exists.
pub async fn expired_entry_is_absent_from_exists(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    let when = set_and_wait_for_expiry(&ctx, &key).await?;
    // exists first and alone: a get could purge the entry and hide a missing filter.
    ctx.expect_exists(&format!("exists {when}"), &key, false)
        .await
}

/// delete of an expired entry returns false.
pub async fn expired_entry_is_absent_from_delete(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    let when = set_and_wait_for_expiry(&ctx, &key).await?;
    ctx.expect_delete(&format!("delete {when}"), &key, false)
        .await
}

/// An entry set without ttl does not expire.
pub async fn entry_without_ttl_outlives_the_window(ctx: Ctx) -> CaseResult {
    let expiring = ctx.key("expiring");
    let persistent = ctx.key("persistent");
    ctx.set(&persistent, b"forever", None).await?;
    let when = set_and_wait_for_expiry(&ctx, &expiring).await?;
    ctx.expect_present(
        &format!("an entry without ttl, {when} on a neighbour"),
        &persistent,
        b"forever",
    )
    .await?;
    ctx.expect_absent(&format!("the neighbour with ttl, {when}"), &expiring)
        .await
}

/// A set without ttl makes an entry persistent.
pub async fn plain_overwrite_clears_the_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"with-ttl", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.set(&key, b"without-ttl", None).await?;
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.expect_present(
        "get/exists past the first ttl, after an overwrite without ttl",
        &key,
        b"without-ttl",
    )
    .await
}

/// A later set with a longer ttl extends the entry.
pub async fn later_set_extends_the_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let longer = (window.absent_by * 10).min(support(&ctx)?.max);
    let key = ctx.key("k");
    ctx.set(&key, b"short", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.set(&key, b"long", Some(longer)).await?;
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!("get/exists past the first ttl, after a set with ttl {longer:?}");
    ctx.expect_present(&check, &key, b"long").await
}

/// A later set with a shorter ttl replaces a longer one.
pub async fn later_set_shortens_the_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let longer = Duration::from_secs(3600).min(support(&ctx)?.max);
    let key = ctx.key("k");
    ctx.set(&key, b"long", Some(longer)).await?;
    ctx.set(&key, b"short", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!(
        "get/exists {:?} after replacing a ttl of {longer:?} with {:?}",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &key).await
}

/// A ttl below the precision rounds up, not down to nothing.
pub async fn sub_precision_ttl_rounds_up(ctx: Ctx) -> CaseResult {
    let precision = support(&ctx)?.precision;
    let tiny = (precision / 2).max(Duration::from_nanos(1));
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(tiny)).await?;
    let acknowledged = Instant::now();
    let check = format!("get/exists right after a set with ttl {tiny:?} (precision {precision:?})");
    ctx.expect_present(&check, &key, b"v").await?;
    ctx.sleep_until(acknowledged, precision + (window.absent_by - window.ttl))
        .await;
    let check = format!("get/exists once the rounded-up ttl of {precision:?} elapsed");
    ctx.expect_absent(&check, &key).await
}

/// A zero ttl fails with InvalidArgument, never means "no ttl".
pub async fn zero_ttl_is_invalid_argument(ctx: Ctx) -> CaseResult {
    rejects_ttl(&ctx, Duration::ZERO, "a zero ttl").await
}

/// A ttl above the declared maximum fails with InvalidArgument.
pub async fn ttl_above_maximum_is_invalid_argument(ctx: Ctx) -> CaseResult {
    let too_long = support(&ctx)?.max + Duration::from_secs(1);
    rejects_ttl(&ctx, too_long, "a ttl one second over the maximum").await
}

/// A ttl of exactly the declared maximum is accepted.
pub async fn ttl_at_maximum_is_accepted(ctx: Ctx) -> CaseResult {
    let max = support(&ctx)?.max;
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(max)).await?;
    ctx.expect_present(
        &format!("get/exists after a set with ttl {max:?}"),
        &key,
        b"v",
    )
    .await
}

async fn rejects_ttl(ctx: &Ctx, ttl: Duration, what: &str) -> CaseResult {
    let fresh = ctx.key("fresh");
    let set = ctx
        .backend
        .set(&fresh, Bytes::from_static(b"v"), Some(ttl))
        .await;
    expect_error(
        &format!("set with {what}"),
        Operation::Set,
        &fresh,
        set,
        ErrorKind::InvalidArgument,
    )?;
    ctx.expect_absent(&format!("a key whose only set had {what}"), &fresh)
        .await?;

    let existing = ctx.key("existing");
    ctx.set(&existing, b"old", None).await?;
    let set = ctx
        .backend
        .set(&existing, Bytes::from_static(b"new"), Some(ttl))
        .await;
    expect_error(
        &format!("overwrite with {what}"),
        Operation::Set,
        &existing,
        set,
        ErrorKind::InvalidArgument,
    )?;
    ctx.expect_present(
        &format!("a key after a rejected overwrite with {what}"),
        &existing,
        b"old",
    )
    .await
}
