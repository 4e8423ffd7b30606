//! Hundreds and thousands of keys: collisions, silent capacity limits and eviction that
//! is never declared only show at scale.

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::failure::{Answer, Operation};
use crate::{CaseResult, Ctx, Failure};

/// Keys the largest case writes, the smaller ones, and requests in flight at once.
const MANY: usize = 1000;
const SOME: usize = 400;
/// Keys the delete-half case writes: past 512, where a table that grows in steps rehashes,
/// so its deletes land while a rehash is under way.
const HALVED: usize = 520;
/// Keys the eviction-pressure case writes: past bounds of 1024, 2048, 4096 and 5000
/// entries, the sizes a bounded cache is most often left at. (Ehcache's fail-safe 10,000
/// would take DynamoDB Local past its matrix time.)
const PRESSURE: usize = 5_100;
const IN_FLIGHT: usize = 8;

fn value_of(i: usize) -> Vec<u8> {
    format!("value of key #{i}").into_bytes()
}

pub(crate) async fn set_all(ctx: &Ctx, keys: &[String]) -> CaseResult {
    stream::iter(keys.iter().enumerate())
        .map(|(i, key)| async move { ctx.set(key, &value_of(i), None).await })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await
}

/// Reads every key and reports every one that does not hold its own value.
async fn expect_all_present(ctx: &Ctx, check: &str, keys: &[String]) -> CaseResult {
    expect_every_nth_present(ctx, check, keys, 1).await
}

/// Reads keys 0, `step`, 2 × `step`, … and reports every one that does not hold its own
/// value (key #i holds `value_of(i)`).
async fn expect_every_nth_present(
    ctx: &Ctx,
    check: &str,
    keys: &[String],
    step: usize,
) -> CaseResult {
    let read = keys.iter().enumerate().step_by(step.max(1));
    let wrong: Vec<(usize, Option<cachekit_core::Bytes>)> = stream::iter(read)
        .map(|(i, key)| async move { ctx.get(key).await.map(|got| (i, got)) })
        .buffer_unordered(IN_FLIGHT)
        .try_filter(|(i, got)| {
            let right = got.as_deref() == Some(value_of(*i).as_slice());
            std::future::ready(!right)
        })
        .try_collect()
        .await?;
    let Some((first, got)) = wrong.first().cloned() else {
        return Ok(());
    };
    let read = keys.len().div_ceil(step.max(1));
    let mut failure = Failure::new(check)
        .operation(Operation::Get)
        .key(&keys[first])
        .expected(Answer::Value(Some(value_of(first).into())))
        .got(Answer::Value(got))
        .note(format!("{} of {read} keys read were wrong", wrong.len()));
    for (i, got) in wrong.iter().skip(1).take(4) {
        let shown = Answer::Value(got.clone());
        failure = failure.note(format!("also key #{i}: get -> {shown}"));
    }
    Err(failure)
}

/// Bytes the large-values case holds at once: past byte budgets of 4 and 8 MiB, the
/// `maxmemory` a small cache is often given.
const LARGE_VALUES_TOTAL: usize = 12 * 1024 * 1024;
/// The most values that case writes, for stores whose values are small.
const LARGE_VALUES_MOST: usize = 48;

/// Large values adding up to megabytes are all kept by a store that declares no eviction:
/// a byte budget evicts long before an entry count would.
pub async fn large_values_adding_up_to_12_mib_are_all_kept(ctx: Ctx) -> CaseResult {
    let len = ctx.value_len(1024 * 1024);
    let count = LARGE_VALUES_TOTAL
        .div_ceil(len.max(1))
        .min(LARGE_VALUES_MOST);
    let keys: Vec<String> = (0..count).map(|i| ctx.key(&format!("large/{i}"))).collect();
    let value = |i: usize| crate::cases::values::pattern(len, i as u8);
    let ctx = &ctx;
    // Half of them with a long ttl: `volatile-lru` evicts only those.
    let long_ttl = ctx.valid_ttl();
    stream::iter(keys.iter().enumerate())
        .map(|(i, key)| async move {
            let ttl = if i % 2 == 0 { long_ttl } else { None };
            ctx.set(key, &value(i), ttl).await
        })
        .buffer_unordered(IN_FLIGHT / 2)
        .try_collect::<()>()
        .await?;
    // Every value is read back, so the failure says how many were lost, not only the first;
    // only the first wrong answer is kept whole (a wrong answer may be a megabyte).
    let mut first_wrong: Option<(usize, Option<cachekit_core::Bytes>)> = None;
    let mut also_wrong = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let got = ctx.get(key).await?;
        if got.as_deref() == Some(value(i).as_slice()) {
            continue;
        }
        if first_wrong.is_none() {
            first_wrong = Some((i, got));
        } else {
            also_wrong.push((i, got.map(|bytes| bytes.len())));
        }
    }
    let Some((first, got)) = first_wrong else {
        return Ok(());
    };
    let mut failure = Failure::new(format!(
        "get of each of {count} values of {len} bytes, from a store that declares no eviction"
    ))
    .operation(Operation::Get)
    .key(&keys[first])
    .expected(format!("its own {len}-byte value"))
    .got(Answer::Value(got))
    .note(format!(
        "value #{first}, written in the first {} bytes; {} of {count} values were wrong",
        (first + 1) * len,
        also_wrong.len() + 1
    ));
    for (i, got_len) in also_wrong.iter().take(4) {
        let shown = match got_len {
            Some(got_len) => format!("a {got_len}-byte value that is not its own"),
            None => "a miss".to_owned(),
        };
        failure = failure.note(format!("also value #{i}: get -> {shown}"));
    }
    Err(failure)
}

/// How many entries with a ttl the expiry case holds at once: past fixed pools of 1024
/// expiry timers or heap slots.
const EXPIRING: usize = 1100;

/// 1100 entries with a ttl all expire: a fixed pool of expiry timers that drops the
/// ones over its size keeps those entries for ever.
pub async fn eleven_hundred_entries_with_a_ttl_all_expire(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let keys: Vec<String> = (0..EXPIRING)
        .map(|i| ctx.key(&format!("expiring/{i}")))
        .collect();
    // An entry set before an idle half-ttl, then the writes: they must not restart its ttl
    // (an append-only-file rewrite that writes entries back with their whole ttl does).
    let earlier = ctx.key("expiring/earlier");
    ctx.set(&earlier, b"earlier", Some(window.ttl)).await?;
    let earlier_acknowledged = tokio::time::Instant::now();
    tokio::time::sleep(window.ttl / 2).await;
    let ctx = &ctx;
    let started = tokio::time::Instant::now();
    stream::iter(keys.iter().enumerate())
        .map(|(i, key)| async move { ctx.set(key, &value_of(i), Some(window.ttl)).await })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    // Each entry's ttl counts from its own set; the last set ended just now.
    let last_set_ended = tokio::time::Instant::now();
    let written_in = started.elapsed();
    // On the paused clock no time passed: every entry must be there (a store that drops
    // writes with a ttl would otherwise pass), unless the store may evict. On a wall
    // clock the first may be gone already.
    if ctx.virtual_time && !ctx.caps.may_evict {
        expect_all_present(
            ctx,
            "get of each of 1100 entries right after their sets with a ttl",
            &keys,
        )
        .await?;
    }
    ctx.sleep_until(earlier_acknowledged, window.absent_by)
        .await;
    ctx.expect_exists(
        &format!(
            "exists of an entry set with ttl {:?}, {:?} after its set, with {EXPIRING} writes since",
            window.ttl, window.absent_by
        ),
        &earlier,
        false,
    )
    .await?;
    ctx.sleep_until(last_set_ended, window.absent_by).await;
    // Every other entry: a pool of 1024 timers leaves the last 76 for ever, 38 of them read.
    let present: Vec<usize> = stream::iter(keys.iter().enumerate().step_by(2))
        .map(|(i, key)| async move { ctx.exists(key).await.map(|found| (i, found)) })
        .buffer_unordered(IN_FLIGHT)
        .try_filter_map(|(i, found)| std::future::ready(Ok(found.then_some(i))))
        .try_collect()
        .await?;
    let Some(&first) = present.iter().min() else {
        return Ok(());
    };
    Err(Failure::new(format!(
        "exists of every other one of {EXPIRING} entries set with ttl {:?}, {:?} after the last set",
        window.ttl, window.absent_by
    ))
    .operation(Operation::Exists)
    .key(&keys[first])
    .expected(Answer::Bool(false))
    .got(Answer::Bool(true))
    .note(format!(
        "{} of the {} entries read had not expired (the sets took {written_in:?})",
        present.len(),
        EXPIRING.div_ceil(2)
    )))
}

/// A thousand keys are all there (each of 910 deletes answers true), and deleting all but
/// 90 of them leaves those 90 with their own values and the deleted ones gone (read one in
/// ten): a table that rehashes as it shrinks under a tenth of its peak must not lose or
/// keep the wrong ones. (That every key keeps its own value among thousands is the
/// eviction-pressure case's, which reads one key in three of 5100.)
pub async fn a_thousand_keys_keep_their_own_values(ctx: Ctx) -> CaseResult {
    let keys: Vec<String> = (0..MANY).map(|i| ctx.key(&format!("many/{i}"))).collect();
    set_all(&ctx, &keys).await?;
    // Every delete answering true shows its key was there; the gets after show the rest.
    let kept = |i: usize| i % 11 == 10;
    let ctx_ref = &ctx;
    stream::iter(keys.iter().enumerate().filter(|(i, _)| !kept(*i)))
        .map(|(_, key)| async move {
            ctx_ref
                .expect_delete("delete of all but 90 of 1000 keys", key, true)
                .await
        })
        .buffered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    // Every kept key, and one deleted key in ten (their deletes already answered).
    let read = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| kept(*i) || i % 10 == 0);
    let wrong: Vec<(usize, Option<cachekit_core::Bytes>)> = stream::iter(read)
        .map(|(i, key)| async move { ctx_ref.get(key).await.map(|got| (i, got)) })
        .buffer_unordered(IN_FLIGHT)
        .try_filter(|(i, got)| {
            let expected = kept(*i).then(|| value_of(*i));
            std::future::ready(got.as_deref() != expected.as_deref())
        })
        .try_collect()
        .await?;
    let Some((first, got)) = wrong.first().cloned() else {
        return Ok(());
    };
    let expected = kept(first).then(|| cachekit_core::Bytes::from(value_of(first)));
    Err(
        Failure::new("get of the 90 kept keys, and of a sample of the deleted, after all but 90 of 1000 were deleted")
            .operation(Operation::Get)
            .key(&keys[first])
            .expected(Answer::Value(expected))
            .got(Answer::Value(got))
            .note(format!("{} of the keys read were wrong", wrong.len())),
    )
}

/// Deleting half of 520 keys, in written order right after writing them, leaves the
/// other half.
pub async fn deleting_half_of_many_keys_leaves_the_rest(ctx: Ctx) -> CaseResult {
    let keys: Vec<String> = (0..HALVED).map(|i| ctx.key(&format!("half/{i}"))).collect();
    set_all(&ctx, &keys).await?;
    let ctx_ref = &ctx;
    stream::iter(keys.iter().step_by(2))
        .map(|key| async move {
            ctx_ref
                .expect_delete(
                    "delete of every other key of 520, in written order",
                    key,
                    true,
                )
                .await
        })
        .buffered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    let kept: Vec<String> = keys.iter().skip(1).step_by(2).cloned().collect();
    let kept_check = "the kept half of 520 keys after the other half was deleted";
    let kept_indices: Vec<usize> = (1..HALVED).step_by(2).collect();
    let wrong = stream::iter(kept.iter().zip(&kept_indices))
        .map(|(key, i)| async move { ctx_ref.get(key).await.map(|got| (*i, key, got)) })
        .buffer_unordered(IN_FLIGHT)
        .try_filter(|(i, _, got)| {
            std::future::ready(got.as_deref() != Some(value_of(*i).as_slice()))
        })
        .try_collect::<Vec<_>>()
        .await?;
    if let Some((i, key, got)) = wrong.first() {
        return Err(Failure::new(kept_check)
            .operation(Operation::Get)
            .key(key)
            .expected(Answer::Value(Some(value_of(*i).into())))
            .got(Answer::Value(got.clone()))
            .note(format!(
                "{} of {} kept keys were wrong",
                wrong.len(),
                kept.len()
            )));
    }
    for key in keys.iter().step_by(2).step_by(10) {
        ctx.expect_absent("a deleted key among 520", key).await?;
    }
    Ok(())
}

/// Keys that differ in a single position are different keys.
pub async fn keys_differing_in_one_position_are_distinct(ctx: Ctx) -> CaseResult {
    let base: Vec<char> = "0123456789abcdefghijklmnopqrstuvwxyz".chars().collect();
    let mut keys = vec![ctx.key(&base.iter().collect::<String>())];
    for position in 0..base.len() {
        let mut changed = base.clone();
        changed[position] = if changed[position] == 'Z' { 'Y' } else { 'Z' };
        keys.push(ctx.key(&changed.iter().collect::<String>()));
    }
    set_all(&ctx, &keys).await?;
    expect_all_present(&ctx, "get of keys that differ in one position", &keys).await
}

/// Keys that share a long prefix and differ only at the end are different keys.
pub async fn keys_sharing_a_long_prefix_are_distinct(ctx: Ctx) -> CaseResult {
    let room = ctx
        .caps
        .max_key_bytes
        .unwrap_or(1024)
        .min(1024)
        .saturating_sub(ctx.prefix().len() + 4);
    let shared = "p".repeat(room);
    let keys: Vec<String> = (0..64)
        .map(|i| ctx.key(&format!("{shared}{i:02}")))
        .collect();
    set_all(&ctx, &keys).await?;
    expect_all_present(
        &ctx,
        "get of keys that differ only after a long shared prefix",
        &keys,
    )
    .await
}

/// Overwrites of one key the many-overwrites case makes: past a version counter kept in
/// a byte.
const OVERWRITES: usize = 300;

/// Many overwrites of one key leave the last value.
pub async fn many_overwrites_leave_the_last_value(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    for round in 0..OVERWRITES {
        ctx.set(&key, format!("round {round}").as_bytes(), None)
            .await?;
    }
    let last = format!("round {}", OVERWRITES - 1);
    ctx.expect_present(
        &format!("get after {OVERWRITES} overwrites"),
        &key,
        last.as_bytes(),
    )
    .await
}

/// Bytes the overwriting case writes to one key in all, and the most sets it makes.
const OVERWRITTEN_BYTES: usize = 40 * 1024 * 1024;
const OVERWRITES_OF_LARGE_VALUES: usize = 40;

/// Overwriting one key again and again with large values never fills the store: what an
/// overwrite replaces is freed (a byte count that only a delete lowers refuses every set
/// once the total written passes its budget).
pub async fn overwriting_one_key_never_fills_the_store(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    let len = ctx.value_len(1024 * 1024);
    let rounds = OVERWRITTEN_BYTES
        .div_ceil(len.max(1))
        .min(OVERWRITES_OF_LARGE_VALUES);
    for round in 0..rounds {
        let value = super::values::pattern(len, round as u8);
        ctx.set(&key, &value, None).await.map_err(|failure| {
            failure.note(format!(
                "set {} of {rounds} of one key, each {len} bytes",
                round + 1
            ))
        })?;
    }
    let last = super::values::pattern(len, (rounds - 1) as u8);
    ctx.expect_present(
        &format!("get after {rounds} overwrites of {len} bytes each"),
        &key,
        &last,
    )
    .await
}

/// 400 keys written at once from eight tasks are all there.
pub async fn many_keys_written_in_parallel_are_all_there(ctx: Ctx) -> CaseResult {
    let keys: Arc<Vec<String>> =
        Arc::new((0..SOME).map(|i| ctx.key(&format!("par/{i}"))).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (ctx, keys) = (ctx.clone(), keys.clone());
        tasks.spawn(async move {
            for i in (worker..SOME).step_by(8) {
                ctx.set(&keys[i], &value_of(i), None).await?;
            }
            Ok::<(), Failure>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .map_err(|err| Failure::panicked("a writer task must not panic", err.to_string()))??;
    }
    expect_all_present(&ctx, "get of each of 400 keys written by 8 tasks", &keys).await
}

/// Writes far past any small capacity: whatever a store evicts, every key reads back its own
/// value or nothing, `exists` agrees with `get`, and the key written last is there. A store
/// that declares no eviction must hold every key (one in three is read): a bound of
/// 1024 to 5000 entries left at its default is caught here, past the thousand-key case.
pub async fn writes_past_capacity_read_back_their_value_or_nothing(ctx: Ctx) -> CaseResult {
    let keys: Vec<String> = (0..PRESSURE)
        .map(|i| ctx.key(&format!("pressure/{i}")))
        .collect();
    // Eight writes in flight (a remote store takes seconds for thousands one at a time), then
    // the last key alone, so that "written last" means what it says.
    let last = keys.len() - 1;
    set_all(&ctx, &keys[..last]).await?;
    ctx.set(&keys[last], &value_of(last), None).await?;
    ctx.expect_present(
        "the key written last, after 5100 writes",
        &keys[last],
        &value_of(last),
    )
    .await?;
    if !ctx.caps.may_evict {
        // One key in three is read: a bound that evicts the oldest loses key 0, and one that
        // evicts at random or by hash leaves gaps that the keys read miss only by a chance
        // of two in three per gap. (All 5100 would take DynamoDB Local, which serves one
        // request at a time, past its matrix time.)
        return expect_every_nth_present(
            &ctx,
            "get of one key in three of 5100, from key 0, from a store that declares no eviction",
            &keys,
            3,
        )
        .await;
    }
    // Each sampled key is judged on its own: get, then exists against get's answer.
    let ctx = &ctx;
    let present: Vec<bool> = stream::iter(keys.iter().enumerate().step_by(7))
        .map(|(i, key)| async move {
            let got = ctx.get(key).await?;
            if got
                .as_deref()
                .is_some_and(|value| value != value_of(i).as_slice())
            {
                return Err(
                    Failure::new("get of a key among 5100, under eviction pressure")
                        .operation(Operation::Get)
                        .key(key)
                        .expected(format!(
                            "its own value or None ({})",
                            Answer::Value(Some(value_of(i).into()))
                        ))
                        .got(Answer::Value(got)),
                );
            }
            ctx.expect_exists(
                "exists against get's answer, under eviction pressure",
                key,
                got.is_some(),
            )
            .await?;
            Ok(got.is_some())
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await?;
    let present = present.into_iter().filter(|held| *held).count();
    if present == 0 {
        return Err(Failure::new("keys still held after 5100 writes")
            .expected("some of the sampled keys (a store holds at least its capacity)")
            .got(Answer::Count(0)));
    }
    Ok(())
}
