//! Cancel safety: a future dropped or a task aborted mid-operation leaves the key in its old
//! or its new state, and the backend fully usable.

use std::future::Future;
use std::time::Duration;

use cachekit_core::{Bytes, Clock};

use crate::failure::{preview_option, Answer, Operation};
use crate::{CaseResult, Ctx, Failure};

const ROUNDS: usize = 16;

/// Polls `operation` for `polls` scheduler turns, then drops it wherever it is.
async fn drop_after<F: Future>(operation: F, polls: usize) {
    tokio::select! {
        biased;
        _ = operation => {}
        _ = async { for _ in 0..polls { tokio::task::yield_now().await } } => {}
    }
}

/// Gives a request that was already sent when its future was dropped time to land, so the
/// read below sees the store's settled state rather than racing it. An in-process store
/// (one on the tokio clock) has nothing in flight once the future is gone.
async fn settle(ctx: &Ctx) {
    if ctx.caps.clock != Clock::Tokio {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn expect_one_of(
    check: &str,
    key: &str,
    got: Option<&[u8]>,
    allowed: &[Option<&[u8]>],
) -> CaseResult {
    if allowed.contains(&got) {
        return Ok(());
    }
    let allowed: Vec<String> = allowed.iter().map(|v| preview_option(*v)).collect();
    Err(Failure::new(check)
        .operation(Operation::Get)
        .key(key)
        .expected(format!("one of {}", allowed.join(", ")))
        .got(Answer::Value(got.map(Bytes::copy_from_slice))))
}

/// A set future dropped mid-flight leaves the old or the new value.
pub async fn dropped_set_leaves_old_or_new_value(ctx: Ctx) -> CaseResult {
    let old = super::values::pattern(ctx.value_len(8 * 1024), 0x01);
    let new = super::values::pattern(ctx.value_len(8 * 1024), 0x02);
    for round in 0..ROUNDS {
        let key = ctx.key(&format!("k{round}"));
        ctx.set(&key, &old, None).await?;
        let pending = ctx.backend.set(&key, Bytes::from(new.clone()), None);
        drop_after(pending, round % 4).await;
        settle(&ctx).await;
        let got = ctx.get(&key).await?;
        let check = format!("get after a set was dropped after {} polls", round % 4);
        expect_one_of(&check, &key, got.as_deref(), &[Some(&old), Some(&new)])?;
        a_later_set_wins(&ctx, &key, &new).await?;
    }
    // Looked at again once time has passed: a dropped write still queued behind the
    // connection must not land over the later sets.
    ctx.pause().await;
    for round in 0..ROUNDS {
        let key = ctx.key(&format!("k{round}"));
        let got = ctx.get(&key).await?;
        expect_one_of(
            "get, a pause later, of a key set after a dropped set",
            &key,
            got.as_deref(),
            &[Some(b"after")],
        )?;
    }
    dropped_sets_with_a_ttl_leave_old_or_expiring_new(&ctx, &old, &new).await
}

/// A dropped set with a ttl leaves the old entry or the new one with its ttl, never the
/// new value without it (a SET and an "expire if still mine" sent as two steps).
async fn dropped_sets_with_a_ttl_leave_old_or_expiring_new(
    ctx: &Ctx,
    old: &[u8],
    new: &[u8],
) -> CaseResult {
    if ctx.caps.ttl.is_none() {
        return Ok(());
    }
    let window = ctx.ttl_window();
    let keys: Vec<String> = (0..4).map(|i| ctx.key(&format!("ttl-{i}"))).collect();
    for (polls, key) in keys.iter().enumerate() {
        ctx.set(key, old, None).await?;
        let pending = ctx
            .backend
            .set(key, Bytes::copy_from_slice(new), Some(window.ttl));
        drop_after(pending, polls).await;
    }
    let dropped = tokio::time::Instant::now();
    settle(ctx).await;
    ctx.sleep_until(dropped, window.absent_by).await;
    for (polls, key) in keys.iter().enumerate() {
        let mut got = ctx.get(key).await?;
        // A request already sent may have landed late, its ttl counting from then: one
        // more window for it to run out.
        if got.as_deref() == Some(new) && ctx.caps.clock != Clock::Tokio {
            ctx.sleep_until(tokio::time::Instant::now(), window.absent_by)
                .await;
            got = ctx.get(key).await?;
        }
        let check = format!(
            "get, past its ttl, of a key whose set with ttl {:?} was dropped after {polls} polls",
            window.ttl
        );
        expect_one_of(&check, key, got.as_deref(), &[Some(old), None])?;
    }
    Ok(())
}

/// What `key` holds once get and exists agree about it. A store with requests in flight
/// may apply a dropped one between the two reads: there they get further rounds until
/// [`LANDING_BOUND`]; an in-process store has nothing in flight, and disagreeing once fails.
async fn get_and_exists_agree(ctx: &Ctx, when: &str, key: &str) -> Result<Option<Bytes>, Failure> {
    let give_up = tokio::time::Instant::now() + LANDING_BOUND;
    loop {
        let got = ctx.get(key).await?;
        let exists = ctx.exists(key).await?;
        if exists == got.is_some() {
            return Ok(got);
        }
        if ctx.caps.clock == Clock::Tokio || tokio::time::Instant::now() >= give_up {
            return Err(Failure::new(format!("exists {when}, agreeing with get"))
                .operation(Operation::Exists)
                .key(key)
                .expected(Answer::Bool(got.is_some()))
                .got(Answer::Bool(exists))
                .note(format!("get -> {}", preview_option(got.as_deref()))));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a set on a key whose last operation was cancelled may take: one virtual second
/// on the paused clock (an in-process store has nothing to wait for), ten wall-clock
/// seconds elsewhere (a loaded remote store's slowest ordinary set, with room to spare).
/// A lock or lease that the cancelled operation took and never released must not be left
/// for the next writer to wait out: Redlock-style write leases run 10 to 30 s.
fn set_after_cancel_bound(ctx: &Ctx) -> Duration {
    if ctx.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    }
}

/// `set`, which must finish within [`set_after_cancel_bound`]: a set that has not is cut
/// off there and fails `check`, rather than waiting out whatever holds it.
async fn set_promptly(ctx: &Ctx, check: &str, key: &str, value: &[u8]) -> CaseResult {
    let bound = set_after_cancel_bound(ctx);
    match tokio::time::timeout(bound, ctx.set(key, value, None)).await {
        Ok(answered) => answered,
        Err(_) => Err(Failure::new(check)
            .operation(Operation::Set)
            .key(key)
            .value(value)
            .expected(format!("an answer within {bound:?}"))
            .got("no answer yet, cut off at the bound")
            .note(
                "an operation on this key was just cancelled: a lock or lease it took must not \
                 outlive it",
            )),
    }
}

/// A set made after a dropped set of `dropped` is what `key` holds. A store with requests
/// in flight may still apply the dropped set late (a loaded server queues it, as DynamoDB
/// Local did past a 50 ms settle): reading exactly `dropped` there earns another round until
/// [`LANDING_BOUND`]; any other wrong answer, or an error, fails at once.
async fn a_later_set_wins(ctx: &Ctx, key: &str, dropped: &[u8]) -> CaseResult {
    let give_up = tokio::time::Instant::now() + LANDING_BOUND;
    loop {
        set_promptly(ctx, "a set after a dropped set", key, b"after").await?;
        let got = ctx.get(key).await?;
        let landed_late = got.as_deref() == Some(dropped)
            && ctx.caps.clock != Clock::Tokio
            && tokio::time::Instant::now() < give_up;
        if !landed_late {
            expect_one_of(
                "a set after a dropped set",
                key,
                got.as_deref(),
                &[Some(b"after")],
            )?;
            return ctx
                .expect_exists("a set after a dropped set", key, true)
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Aborted operations leave the backend usable and the key consistent.
pub async fn aborted_operations_leave_backend_usable(ctx: Ctx) -> CaseResult {
    for round in 0..ROUNDS {
        let key = ctx.key(&format!("k{round}"));
        ctx.set(&key, b"old", None).await?;
        let tasks = [
            spawn_op(&ctx, &key, Op::Set),
            spawn_op(&ctx, &key, Op::Get),
            spawn_op(&ctx, &key, Op::Exists),
        ];
        for _ in 0..round % 4 {
            tokio::task::yield_now().await;
        }
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        settle(&ctx).await;
        let got = ctx.get(&key).await?;
        let allowed: [Option<&[u8]>; 2] = [Some(b"old"), Some(b"new")];
        expect_one_of(
            "get after aborted set/get/exists",
            &key,
            got.as_deref(),
            &allowed,
        )?;

        let delete = spawn_op(&ctx, &key, Op::Delete);
        tokio::task::yield_now().await;
        delete.abort();
        let _ = delete.await;
        settle(&ctx).await;
        let got = ctx.get(&key).await?;
        let allowed: [Option<&[u8]>; 3] = [Some(b"old"), Some(b"new"), None];
        expect_one_of(
            "get after an aborted delete",
            &key,
            got.as_deref(),
            &allowed,
        )?;
        // Half a delete must not leave exists and get telling different stories.
        get_and_exists_agree(&ctx, "after an aborted delete", &key).await?;

        // A delete future dropped after a few polls, not only an aborted task.
        set_promptly(&ctx, "a set after an aborted set and delete", &key, b"old").await?;
        drop_after(ctx.backend.delete(&key), round % 4).await;
        settle(&ctx).await;
        let got = get_and_exists_agree(&ctx, "after a dropped delete", &key).await?;
        expect_one_of(
            "get after a dropped delete",
            &key,
            got.as_deref(),
            &[Some(b"old"), None],
        )?;

        key_is_usable_after_aborts(&ctx, &key).await?;
    }
    Ok(())
}

/// How long a remote store's aborted requests may still be landing before a key that never
/// takes a set/get/delete round trip counts as stuck.
const LANDING_BOUND: Duration = Duration::from_secs(5);

/// A set, get, exists and delete on `key` answer as on a fresh key. An aborted request
/// already on the wire may land at any later instant (a loaded server queues it), and can
/// spoil one round of these; so a store with requests in flight gets further rounds until
/// [`LANDING_BOUND`], and only a key that never recovers fails. An in-process store has
/// nothing in flight: one round, judged strictly.
async fn key_is_usable_after_aborts(ctx: &Ctx, key: &str) -> CaseResult {
    let give_up = tokio::time::Instant::now() + LANDING_BOUND;
    loop {
        let round = async {
            set_promptly(ctx, "a set after aborted operations", key, b"after").await?;
            ctx.expect_present("set/get after aborted operations", key, b"after")
                .await?;
            ctx.expect_delete("delete after aborted operations", key, true)
                .await
        };
        match round.await {
            Err(_) if ctx.caps.clock != Clock::Tokio && tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answered => return answered,
        }
    }
}

#[derive(Clone, Copy)]
enum Op {
    Set,
    Get,
    Exists,
    Delete,
}

fn spawn_op(ctx: &Ctx, key: &str, op: Op) -> tokio::task::JoinHandle<()> {
    let backend = ctx.backend.clone();
    let key = key.to_owned();
    tokio::spawn(async move {
        // Results are irrelevant: the task is aborted, and what it left behind is checked.
        let _ = match op {
            Op::Set => backend
                .set(&key, Bytes::from_static(b"new"), None)
                .await
                .map(drop),
            Op::Get => backend.get(&key).await.map(drop),
            Op::Exists => backend.exists(&key).await.map(drop),
            Op::Delete => backend.delete(&key).await.map(drop),
        };
    })
}
