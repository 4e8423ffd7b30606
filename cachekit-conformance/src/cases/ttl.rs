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

/// How a "present at" check sets its entry and how long the entry must live.
#[derive(Clone, Copy)]
struct Lifetime {
    /// The ttl given to `set`.
    ttl: Duration,
    /// The least the entry may live from the start of its set (the ttl, or the ttl rounded
    /// up to the precision).
    at_least: Duration,
}

impl Lifetime {
    fn exactly(ttl: Duration) -> Self {
        Lifetime { ttl, at_least: ttl }
    }
}

/// How much a retried "present" check stretches its ttl and waits: doubled per attempt.
fn stretch_factor(attempt: usize) -> u32 {
    1 << attempt.min(8)
}

/// The longest ttl a stretched retry of a "present" check sets: five tries of a ttl this long
/// still fit in the default case timeout.
const LONGEST_STRETCHED_TTL: Duration = Duration::from_secs(16);

/// [`stretch_factor`], halved until the stretched ttl is within the declared maximum `max`
/// (a longer one would be refused) and [`LONGEST_STRETCHED_TTL`].
pub(super) fn affordable_stretch(ttl: Duration, max: Duration, attempt: usize) -> u32 {
    let mut stretch = stretch_factor(attempt);
    while stretch > 1 && (ttl * stretch > max || ttl * stretch > LONGEST_STRETCHED_TTL) {
        stretch /= 2;
    }
    stretch
}

/// Sets a fresh key and checks it is present `at` after the set began; answers that arrive
/// once the entry may legally have expired prove nothing, and the attempt is made again.
async fn present_at(
    ctx: &Ctx,
    check: &str,
    name: &str,
    lifetime: Lifetime,
    at: Duration,
) -> CaseResult {
    ctx.until_judged(check, |attempt| async move {
        // A late answer is retried with everything stretched, so it can be judged next time;
        // a ttl below the precision cannot stretch and is checked at once anyway.
        let stretch = if lifetime.ttl == lifetime.at_least {
            let max = ctx.caps.ttl.map_or(Duration::MAX, |support| support.max);
            affordable_stretch(lifetime.ttl, max, attempt)
        } else {
            1
        };
        let key = ctx.key(&format!("{name}#{attempt}"));
        let start = Instant::now();
        ctx.set(&key, b"v", Some(lifetime.ttl * stretch)).await?;
        ctx.sleep_until(start, at * stretch).await;
        ctx.expect_present_before(check, &key, b"v", start + lifetime.at_least * stretch)
            .await
    })
    .await
}

/// An entry with a ttl is visible right after set.
pub async fn entry_is_visible_right_after_set(ctx: Ctx) -> CaseResult {
    let ttl = ctx.ttl_window().ttl;
    let check = "get/exists right after a set with ttl";
    present_at(&ctx, check, "k", Lifetime::exactly(ttl), Duration::ZERO).await
}

/// An entry never expires early.
pub async fn entry_is_present_until_just_before_expiry(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let check = format!(
        "get/exists {:?} after a set with ttl {:?}",
        window.present_until, window.ttl
    );
    let lifetime = Lifetime::exactly(window.ttl);
    present_at(&ctx, &check, "k", lifetime, window.present_until).await
}

/// How many of the backend's shortest ttls the longer-ttl case uses.
const LONGER_TTL_FACTOR: u32 = 4;

/// An entry with a ttl of several seconds is present until just before it ends. On a wall
/// clock the kit judges presence a fixed margin before the ttl (250 ms), so only a longer
/// ttl shows a store that cuts every ttl short by a fraction (a fifth of 1 s hides in the
/// margin; a fifth of 4 s does not).
pub async fn a_longer_ttl_is_not_cut_short(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let ttl = (window.ttl * LONGER_TTL_FACTOR).min(support(&ctx)?.max);
    let at = ttl.saturating_sub(window.ttl - window.present_until);
    let check = format!("get/exists {at:?} after a set with ttl {ttl:?}");
    present_at(&ctx, &check, "k", Lifetime::exactly(ttl), at).await
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
    ctx.expect_get(&format!("get {when}"), &key, None).await?;
    // Reading the expired entry must not bring it back later (read repair from a replica
    // that never got the ttl).
    ctx.pause().await;
    ctx.expect_get(
        &format!("get {when}, read once, and a pause later"),
        &key,
        None,
    )
    .await
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

/// How long the large-value expiry case's value is: past DynamoDB's 400 KiB item limit and
/// memcached's 512 KiB slab chunk, where stores move a value to another code path
/// (an S3 pointer, a chained item) that can forget the ttl.
const LARGE_EXPIRING_VALUE_BYTES: usize = 513 * 1024;

/// A large value set with a ttl expires like a small one.
pub async fn a_large_value_with_a_ttl_expires(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let value = super::values::pattern(ctx.value_len(LARGE_EXPIRING_VALUE_BYTES), 0x2d);
    let check = format!(
        "get/exists {:?} after a set of {} bytes with ttl {:?}",
        window.present_until,
        value.len(),
        window.ttl
    );
    // Stored, and read just before the ttl ends (a store that drops large values set with a
    // ttl must not pass, nor, on the paused clock, one whose large-value reads slide the
    // ttl). Answers that come after the ttl could have ended prove nothing: that attempt
    // is made again with a fresh key.
    let judged = std::sync::Mutex::new(None);
    ctx.until_judged(&check, |attempt| {
        let (ctx, value, check, judged) = (&ctx, &value, &check, &judged);
        async move {
            let key = ctx.key(&format!("large#{attempt}"));
            let start = Instant::now();
            ctx.set(&key, value, Some(window.ttl)).await?;
            let acknowledged = Instant::now();
            ctx.sleep_until(start, window.present_until).await;
            let observation = ctx
                .expect_present_before(check, &key, value, start + window.ttl)
                .await?;
            if let Ok(mut judged) = judged.lock() {
                *judged = Some((key, acknowledged));
            }
            Ok(observation)
        }
    })
    .await?;
    let Some((key, acknowledged)) = judged.into_inner().ok().flatten() else {
        return Err(Failure::new(check).got("no attempt was recorded"));
    };
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let when = format!(
        "{:?} after a set of {} bytes with ttl {:?}",
        window.absent_by,
        value.len(),
        window.ttl
    );
    // exists first: a get could purge the entry and hide a missing filter.
    ctx.expect_exists(&format!("exists {when}"), &key, false)
        .await?;
    ctx.expect_get(&format!("get {when}"), &key, None).await?;
    ctx.expect_delete(&format!("delete {when}"), &key, false)
        .await
}

/// Writes of one key the many-writes expiry case makes before its last, with a ttl.
const WRITES_BEFORE_THE_TTL: usize = 63;

/// The last of many writes of one key sets its ttl: 63 sets without one, then a set with
/// one, and the entry expires (a log-structured store that compacts a key's versions every
/// 64 writes can rewrite the latest without its expiry).
pub async fn the_last_of_many_writes_sets_the_ttl(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    for round in 0..WRITES_BEFORE_THE_TTL {
        ctx.set(&key, format!("round {round}").as_bytes(), None)
            .await?;
    }
    let when = set_and_wait_for_expiry(&ctx, &key).await?;
    let when = format!("{when}, which followed {WRITES_BEFORE_THE_TTL} sets without one");
    ctx.expect_exists(&format!("exists {when}"), &key, false)
        .await?;
    ctx.expect_get(&format!("get {when}"), &key, None).await
}

/// An entry set without ttl does not expire.
pub async fn entry_without_ttl_outlives_the_window(ctx: Ctx) -> CaseResult {
    let expiring = ctx.key("expiring");
    let persistent = ctx.key("persistent");
    ctx.set(&persistent, b"forever", None).await?;
    // A key that extends the expiring one: a store that reaps an expired key with a range
    // delete over its prefix takes it along.
    let extension = ctx.key("expiring/persistent");
    ctx.set(&extension, b"forever too", None).await?;
    let when = set_and_wait_for_expiry(&ctx, &expiring).await?;
    ctx.expect_present(
        &format!(
            "an entry without ttl whose key extends its neighbour's, {when} on that neighbour"
        ),
        &extension,
        b"forever too",
    )
    .await?;
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

/// A delete takes the entry's ttl with it: the deleted entry's deadline never cuts short
/// a later set of the same key (a per-key expiry timer that a delete forgets to cancel).
pub async fn a_deleted_entrys_ttl_does_not_reach_the_next_set(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"deleted", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.expect_delete("delete of an entry with a ttl", &key, true)
        .await?;
    ctx.set(&key, b"set-after-delete", None).await?;
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.expect_present(
        "get/exists past the deleted entry's ttl, of a set without ttl made after the delete",
        &key,
        b"set-after-delete",
    )
    .await
}

/// A set applies its ttl even when it writes the value already stored ("skip unchanged
/// writes" must not skip the ttl): the same value set without a ttl stays, and set with
/// one expires.
pub async fn rewriting_the_same_value_applies_its_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let (losing, gaining) = (ctx.key("loses-its-ttl"), ctx.key("gains-a-ttl"));
    ctx.set(&gaining, b"same", None).await?;
    ctx.set(&losing, b"same", Some(window.ttl)).await?;
    ctx.set(&losing, b"same", None).await?;
    ctx.set(&gaining, b"same", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.expect_present(
        "get/exists past the ttl, after the same value was set again without one",
        &losing,
        b"same",
    )
    .await?;
    let check = format!(
        "get/exists {:?} after a persistent entry was set again, same value, with ttl {:?}",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &gaining).await
}

/// A set on an expired entry, not yet swept, stores a fresh entry: not dropped as if the
/// key were taken, and without the expired entry's deadline (an upsert that refreshes
/// only rows it finds live).
pub async fn a_set_after_expiry_stores_a_fresh_entry(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"expired", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.set(&key, b"fresh", None).await?;
    ctx.expect_present(
        "get/exists after a set without ttl on an expired entry",
        &key,
        b"fresh",
    )
    .await?;
    // A sweeper that listed the expired key before the set deletes it by name later.
    ctx.pause().await;
    ctx.expect_present(
        "get/exists a pause after a set without ttl on an expired entry",
        &key,
        b"fresh",
    )
    .await
}

/// An expired entry is gone for good: neither its expiry nor a delete after it uncovers an
/// older value of the key (a multi-version store that pops the top version).
pub async fn an_expired_entry_uncovers_no_older_value(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"older, persistent", None).await?;
    ctx.set(&key, b"newer, expiring", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.expect_absent("get/exists after the newer entry expired", &key)
        .await?;
    ctx.expect_delete("delete of the expired entry", &key, false)
        .await?;
    ctx.expect_absent("get/exists after a delete of the expired entry", &key)
        .await
}

/// A set with a ttl on a persistent entry makes it expire.
pub async fn set_with_ttl_on_a_persistent_entry_makes_it_expire(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"persistent", None).await?;
    ctx.set(&key, b"expiring", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!(
        "get/exists {:?} after a persistent entry was overwritten with ttl {:?}",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &key).await
}

/// Each key keeps its own ttl, whatever its neighbours were set with.
pub async fn each_key_keeps_its_own_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let long = Duration::from_secs(3600).min(support(&ctx)?.max);
    let (first, second) = (ctx.key("long"), ctx.key("short"));
    ctx.set(&first, b"long", Some(long)).await?;
    ctx.set(&second, b"short", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    ctx.sleep_until(acknowledged, window.absent_by).await;
    ctx.expect_absent(
        "the short-lived key, set right after a long-lived one",
        &second,
    )
    .await?;
    ctx.expect_present("the long-lived key", &first, b"long")
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

/// A set with the same ttl as the live entry's restarts the ttl from that set: a client that
/// sends an unchanged ttl as `KEEPTTL`, or an expiry policy that keeps the current duration on
/// an update (Caffeine's `expireAfterUpdate` returning `currentDuration`), lets the rewritten
/// entry die at the first set's deadline.
pub async fn a_set_with_the_same_ttl_restarts_it(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let slack = window.absent_by - window.ttl;
    let margin = window.ttl - window.present_until;
    // Set again halfway: the first entry is surely live then, and the second set's deadline
    // (less the presence margin) lies past the first one's latest legal expiry, where the
    // entry is looked for. The shortest such ttl keeps the case short on a wall clock.
    let ttl = (2..=LONGER_TTL_FACTOR)
        .map(|factor| window.ttl * factor)
        .find(|ttl| *ttl / 2 > slack + margin)
        .unwrap_or(window.ttl * LONGER_TTL_FACTOR)
        .min(support(&ctx)?.max);
    let again = ttl / 2;
    if again <= slack + margin {
        // A maximum ttl this short leaves no moment at which the first set's deadline has
        // surely passed and the second's surely has not: nothing to judge.
        return Ok(());
    }
    let check = format!(
        "get/exists {:?} after a set with ttl {ttl:?}, set again {again:?} later with the same ttl",
        ttl + slack
    );
    let ctx = &ctx;
    ctx.until_judged(&check, |attempt| {
        let check = check.clone();
        async move {
            let key = ctx.key(&format!("k#{attempt}"));
            ctx.set(&key, b"first", Some(ttl)).await?;
            let first = Instant::now();
            ctx.sleep_until(first, again).await;
            let second = Instant::now();
            ctx.set(&key, b"second", Some(ttl)).await?;
            ctx.sleep_until(first, ttl + slack).await;
            ctx.expect_present_before(&check, &key, b"second", second + ttl)
                .await
        }
    })
    .await
}

/// A ttl below the precision rounds up, not down to nothing.
pub async fn sub_precision_ttl_rounds_up(ctx: Ctx) -> CaseResult {
    let precision = support(&ctx)?.precision;
    // Under half the precision, so rounding to the nearest step takes it to zero.
    let tiny = (precision * 2 / 5).max(Duration::from_nanos(1));
    let window = ctx.ttl_window();
    let check = format!("get/exists right after a set with ttl {tiny:?} (precision {precision:?})");
    // Rounded up, the entry may not expire before `precision` has passed.
    let lifetime = Lifetime {
        ttl: tiny,
        at_least: precision,
    };
    present_at(&ctx, &check, "rounded", lifetime, Duration::ZERO).await?;
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(tiny)).await?;
    let acknowledged = Instant::now();
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

/// Ttls that wrap an integer a store may squeeze them into before its range check (i32
/// and u32 seconds, u32 milliseconds, i64 seconds) or overflow a deadline (the largest
/// `Duration`). Each is over any declared maximum, so each must fail the same way.
const WRAPPING_TTLS: [(Duration, &str); 5] = [
    (
        Duration::from_millis((1 << 32) + 1),
        "2^32 ms + 1 ms (u32 milliseconds wrap to 1 ms)",
    ),
    (
        Duration::from_secs((1 << 31) + 1),
        "2^31 s + 1 s (i32 seconds wrap negative)",
    ),
    (
        Duration::from_secs((1 << 32) + 5),
        "2^32 s + 5 s (u32 seconds wrap to 5 s)",
    ),
    (
        Duration::from_secs((1 << 63) + 1),
        "2^63 s + 1 s (i64 seconds wrap negative)",
    ),
    (Duration::MAX, "Duration::MAX (any deadline overflows)"),
];

/// Ttls far over the maximum fail with InvalidArgument too, whatever integer they
/// would wrap: never a short ttl, never no ttl, never a panic.
pub async fn ttls_that_wrap_an_integer_are_invalid_argument(ctx: Ctx) -> CaseResult {
    let max = support(&ctx)?.max;
    for (ttl, what) in WRAPPING_TTLS.iter().filter(|(ttl, _)| *ttl > max) {
        rejects_ttl(&ctx, *ttl, &format!("a ttl of {what}")).await?;
    }
    Ok(())
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

/// A ttl with a fractional second, a little over the usual window.
fn fractional_ttl(ctx: &Ctx) -> Result<Duration, Failure> {
    let precision = support(ctx)?.precision;
    let fraction = (precision * 3 / 10).max(Duration::from_millis(300));
    Ok(ctx.ttl_window().ttl + fraction)
}

/// A fractional ttl is not rounded down: the entry lives at least that long.
pub async fn fractional_ttl_is_not_rounded_down(ctx: Ctx) -> CaseResult {
    let ttl = fractional_ttl(&ctx)?;
    let margin = ctx.ttl_window().ttl - ctx.ttl_window().present_until;
    let check = format!("get/exists {:?} after a set with ttl {ttl:?}", ttl - margin);
    present_at(&ctx, &check, "k", Lifetime::exactly(ttl), ttl - margin).await
}

/// A fractional ttl is not rounded up by more than the declared precision.
pub async fn fractional_ttl_is_not_rounded_up_past_the_precision(ctx: Ctx) -> CaseResult {
    let ttl = fractional_ttl(&ctx)?;
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    if !ctx.virtual_time {
        // Just after a wall-clock second begins, a store that rounds twice (the ttl up to the
        // precision, then the expiry instant up to a whole second) always overshoots.
        sleep_until_just_after_a_wall_clock_second().await;
    }
    ctx.set(&key, b"v", Some(ttl)).await?;
    let acknowledged = Instant::now();
    let absent_by = ttl + (window.absent_by - window.ttl);
    ctx.sleep_until(acknowledged, absent_by).await;
    let check = format!("get/exists {absent_by:?} after a set with ttl {ttl:?}");
    ctx.expect_absent(&check, &key).await
}

async fn sleep_until_just_after_a_wall_clock_second() {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into_second = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into_second + Duration::from_millis(20)).await;
}

/// Expiry counts from the set itself, at whatever fraction of a second it happens.
pub async fn expiry_counts_from_the_set_at_any_sub_second_phase(ctx: Ctx) -> CaseResult {
    // Sets at .25, .5 and .75 of a second, watched side by side: a store that counts from
    // the whole second the set fell in expires up to a second early.
    let phases = (1..4u32).map(|quarter| expire_at_phase(&ctx, quarter));
    futures::future::try_join_all(phases).await.map(|_| ())
}

async fn expire_at_phase(ctx: &Ctx, quarter: u32) -> CaseResult {
    let window = ctx.ttl_window();
    let check = format!(
        "get/exists {:?} after a set with ttl {:?}, made {quarter}/4 s into a second",
        window.present_until, window.ttl,
    );
    let max_ttl = ctx.caps.ttl.map_or(Duration::MAX, |support| support.max);
    // The attempt that was judged, for the expiry half of the check.
    let last = std::cell::RefCell::new(None);
    ctx.until_judged(&check, |attempt| {
        let check = check.clone();
        let last = &last;
        async move {
            let stretch = affordable_stretch(window.ttl, max_ttl, attempt);
            tokio::time::sleep(Duration::from_millis(250) * quarter).await;
            let key = ctx.key(&format!("phase-{quarter}#{attempt}"));
            let start = Instant::now();
            ctx.set(&key, b"v", Some(window.ttl * stretch)).await?;
            let absent_by = window.ttl * stretch + (window.absent_by - window.ttl);
            *last.borrow_mut() = Some((key.clone(), Instant::now(), absent_by));
            ctx.sleep_until(start, window.present_until * stretch).await;
            ctx.expect_present_before(&check, &key, b"v", start + window.ttl * stretch)
                .await
        }
    })
    .await?;
    let Some((key, acknowledged, absent_by)) = last.into_inner() else {
        return Ok(());
    };
    ctx.sleep_until(acknowledged, absent_by).await;
    let check = format!("the same key {absent_by:?} after its set");
    ctx.expect_absent(&check, &key).await
}

/// Reading an entry does not extend its ttl.
pub async fn reads_do_not_extend_the_ttl(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    for tenth in 1..10u32 {
        ctx.sleep_until(acknowledged, window.present_until * tenth / 10)
            .await;
        ctx.get(&key).await?;
        ctx.exists(&key).await?;
    }
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!(
        "get/exists {:?} after a set with ttl {:?}, read nine times meanwhile",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &key).await
}

/// A rejected set leaves the entry's ttl as it was.
pub async fn rejected_set_leaves_the_ttl_alone(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("k");
    ctx.set(&key, b"v", Some(window.ttl)).await?;
    let acknowledged = Instant::now();
    // A zero ttl is refused (the rule of `zero_ttl_is_invalid_argument`); the refusal
    // must not make the entry persistent or restart its clock.
    let _ = ctx
        .backend
        .set(&key, Bytes::from_static(b"v"), Some(Duration::ZERO))
        .await;
    // So is a value over the maximum, with or without a ttl of its own: a pipeline that
    // sends the ttl command beside the refused SET still applies it.
    let mut persistent = None;
    if let Some(max) = ctx.caps.max_value_bytes {
        let kept = ctx.key("persistent");
        ctx.set(&kept, b"kept", None).await?;
        let too_large = Bytes::from(super::values::pattern(max + 1, 0x7e));
        let _ = ctx.backend.set(&key, too_large.clone(), None).await;
        let _ = ctx.backend.set(&kept, too_large, Some(window.ttl)).await;
        persistent = Some(kept);
    }
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!(
        "get/exists {:?} after a set with ttl {:?} and rejected overwrites",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &key).await?;
    if let Some(persistent) = persistent {
        ctx.expect_present(
            "get/exists of an entry without ttl after a too-large overwrite with a ttl was refused",
            &persistent,
            b"kept",
        )
        .await?;
    }
    Ok(())
}

/// An entry without ttl is still there after thirty days (virtual time).
pub async fn entry_without_ttl_survives_thirty_days(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    tokio::time::sleep(Duration::from_secs(30 * 24 * 3600)).await;
    ctx.expect_present("get/exists thirty days after a set without ttl", &key, b"v")
        .await
}

/// An expired entry stays expired however long after (virtual time): just past 2^31 and
/// 2^32 milliseconds (24.9 and 49.7 days), and at 100 days; an entry without ttl stays. A
/// deadline kept in a 32-bit millisecond tick wraps there, and for as long as the ttl was
/// the expired entry is back.
pub async fn an_expired_entry_stays_expired_for_a_hundred_days(ctx: Ctx) -> CaseResult {
    let ttl = Duration::from_secs(3600).min(support(&ctx)?.max);
    let (expiring, persistent) = (ctx.key("expiring"), ctx.key("persistent"));
    let start = Instant::now();
    ctx.set(&expiring, b"short-lived", Some(ttl)).await?;
    ctx.set(&persistent, b"kept", None).await?;
    // A sixtieth of the ttl past each wrap: inside the ttl, had the tick started again
    // from zero.
    let past_wrap = |bits: u32| Duration::from_millis(1 << bits) + (ttl / 60);
    for after in [
        past_wrap(31),
        past_wrap(32),
        Duration::from_secs(100 * 24 * 3600),
    ] {
        ctx.sleep_until(start, after).await;
        ctx.expect_absent(
            &format!("get/exists {after:?} after a set with ttl {ttl:?}"),
            &expiring,
        )
        .await?;
        ctx.expect_present(
            &format!("get/exists {after:?} after a set without ttl"),
            &persistent,
            b"kept",
        )
        .await?;
    }
    Ok(())
}

/// Ttls of minutes and an hour, set at an odd second, hold until just before they end
/// (virtual time): a timing wheel that fires a whole coarse bucket at its start ends
/// them up to a bucket early.
pub async fn ttls_of_minutes_and_hours_set_at_an_odd_moment_are_not_cut_short(
    ctx: Ctx,
) -> CaseResult {
    let max = support(&ctx)?.max;
    let mut ttls: Vec<Duration> = [100, 600, 3600]
        .map(|seconds| Duration::from_secs(seconds).min(max))
        .to_vec();
    ttls.dedup();
    for (i, ttl) in ttls.into_iter().enumerate() {
        // Off any bucket boundary a store may align to.
        tokio::time::sleep(Duration::from_millis(63_500)).await;
        long_ttl_boundary_of(&ctx, &ctx.key(&format!("odd-{i}")), ttl).await?;
    }
    Ok(())
}

/// A one-day ttl holds for the whole day and ends with it (virtual time).
pub async fn one_day_ttl_lasts_exactly_a_day(ctx: Ctx) -> CaseResult {
    let day = Duration::from_secs(24 * 3600);
    long_ttl_boundary(&ctx, day.min(support(&ctx)?.max)).await
}

/// The maximum ttl holds until its last moment and then ends (virtual time).
pub async fn maximum_ttl_lasts_until_its_end(ctx: Ctx) -> CaseResult {
    long_ttl_boundary(&ctx, support(&ctx)?.max).await
}

async fn long_ttl_boundary(ctx: &Ctx, ttl: Duration) -> CaseResult {
    long_ttl_boundary_of(ctx, &ctx.key("k"), ttl).await
}

async fn long_ttl_boundary_of(ctx: &Ctx, key: &str, ttl: Duration) -> CaseResult {
    let precision = support(ctx)?.precision;
    let start = Instant::now();
    ctx.set(key, b"v", Some(ttl)).await?;
    let acknowledged = Instant::now();
    let just_before = ttl - precision.min(ttl / 2);
    ctx.sleep_until(start, just_before).await;
    let check = format!("get/exists {just_before:?} after a set with ttl {ttl:?}");
    ctx.expect_present(&check, key, b"v").await?;
    let window = ctx.ttl_window();
    let after = ttl + (window.absent_by - window.ttl);
    ctx.sleep_until(acknowledged, after).await;
    let check = format!("get/exists {after:?} after a set with ttl {ttl:?}");
    ctx.expect_absent(&check, key).await
}

/// A ttl just under the maximum with a sub-second remainder is kept to the precision.
pub async fn maximum_ttl_with_a_fraction_is_not_truncated(ctx: Ctx) -> CaseResult {
    let max = support(&ctx)?.max;
    let precision = support(&ctx)?.precision;
    let fraction = (precision * 3 / 10).max(Duration::from_millis(300));
    let ttl = max - Duration::from_secs(1) + fraction;
    let key = ctx.key("k");
    let start = Instant::now();
    ctx.set(&key, b"v", Some(ttl)).await?;
    let just_before = ttl - Duration::from_millis(1).max(precision / 10);
    ctx.sleep_until(start, just_before).await;
    let check = format!("get/exists {just_before:?} after a set with ttl {ttl:?}");
    ctx.expect_present(&check, &key, b"v").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::first_attempt_is_not_stretched(1_000, 3_600_000, 0, 1)]
    #[case::a_short_ttl_doubles_per_attempt(1_000, 3_600_000, 3, 8)]
    #[case::a_short_ttl_stops_at_sixteen_seconds(1_000, 3_600_000, 5, 16)]
    #[case::four_seconds_stops_at_sixteen_seconds(4_000, 3_600_000, 2, 4)]
    #[case::eight_seconds_stretches_once(8_000, 3_600_000, 4, 2)]
    #[case::the_declared_maximum_caps_it(4_000, 10_000, 3, 2)]
    #[case::a_ttl_at_the_maximum_never_stretches(5_000, 5_000, 4, 1)]
    #[case::a_ttl_over_sixteen_seconds_never_stretches(20_000, 3_600_000, 4, 1)]
    fn stretch_stays_within_the_maximum_and_the_budget(
        #[case] ttl_ms: u64,
        #[case] max_ms: u64,
        #[case] attempt: usize,
        #[case] expected: u32,
    ) {
        let (ttl, max) = (Duration::from_millis(ttl_ms), Duration::from_millis(max_ms));
        assert_eq!(affordable_stretch(ttl, max, attempt), expected);
    }
}
