//! Many tasks at once: no interference across keys, no torn or invented values on one key.

use std::collections::HashSet;
use std::sync::Arc;

use cachekit_core::Bytes;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinSet;

use crate::failure::{Answer, Operation};
use crate::{CaseResult, Ctx, Failure};

/// Waits for every task and returns the first failure, if any.
async fn join_all(mut tasks: JoinSet<CaseResult>) -> CaseResult {
    let mut first_failure = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|err| {
            Err(Failure::panicked(
                "a concurrent task must not panic",
                err.to_string(),
            ))
        });
        if let (Err(failure), None) = (result, &first_failure) {
            first_failure = Some(failure);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// Size of the values concurrent writers write: large enough to be written in pieces.
pub const WRITTEN_VALUE_BYTES: usize = 16 * 1024;

/// A value that identifies its writer and round in every byte run, so a torn mix of two
/// values is never equal to any value written.
fn written_value(writer: usize, round: usize) -> Vec<u8> {
    // Lengths differ too: a read between an overwrite's length and its bytes shows the
    // old bytes cut or padded.
    let len = WRITTEN_VALUE_BYTES - (writer * 7 + round) % 64;
    let mut value = super::values::pattern(len, (writer * 31 + round) as u8);
    value[..8].copy_from_slice(
        &((writer as u32) << 16 | round as u32)
            .to_le_bytes()
            .repeat(2),
    );
    value
}

/// Concurrent tasks on distinct keys do not interfere.
pub async fn parallel_tasks_on_distinct_keys(ctx: Ctx) -> CaseResult {
    let mut tasks = JoinSet::new();
    for task in 0..32 {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let key = ctx.key(&format!("task{task}"));
            for round in 0..5 {
                let value = format!("task {task} round {round}");
                ctx.set(&key, value.as_bytes(), None).await?;
                ctx.expect_get(
                    "get of a key only this task writes",
                    &key,
                    Some(value.as_bytes()),
                )
                .await?;
                ctx.expect_delete("delete of a key only this task writes", &key, true)
                    .await?;
                ctx.expect_exists("exists after this task's delete", &key, false)
                    .await?;
            }
            Ok(())
        });
    }
    join_all(tasks).await
}

/// After concurrent writes to one key, it holds one value that was written.
pub async fn concurrent_writers_leave_one_written_value(ctx: Ctx) -> CaseResult {
    let key = ctx.key("contended");
    let (writers, rounds) = (16, 4);
    let barrier = Arc::new(Barrier::new(writers));
    let mut tasks = JoinSet::new();
    for writer in 0..writers {
        let (ctx, key, barrier) = (ctx.clone(), key.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            for round in 0..rounds {
                ctx.set(&key, &written_value(writer, round), None).await?;
            }
            Ok(())
        });
    }
    join_all(tasks).await?;
    let written: HashSet<Vec<u8>> = (0..writers)
        .flat_map(|w| (0..rounds).map(move |r| written_value(w, r)))
        .collect();
    let got = ctx.get(&key).await?;
    match got {
        Some(value) if written.contains(value.as_ref()) => Ok(()),
        other => Err(Failure::new("get after 16 writers raced on one key")
            .operation(Operation::Get)
            .key(&key)
            .expected("exactly one of the 64 values written")
            .got(Answer::Value(other))),
    }
}

/// Reads each reader makes past its first ones for every write that has finished: enough
/// to land inside the writes still in flight, few enough that a store whose writes queue
/// (one key's writes run one at a time) is not flooded with reads meanwhile.
const READS_PER_FINISHED_WRITE: usize = 3;

/// How far the writers of the contended-key case have got: one value, so that a reader
/// sees both counts as of the same moment.
#[derive(Debug, Clone, Copy)]
struct WriteProgress {
    finished_writes: usize,
    writers_left: usize,
}

/// Counts a writer out when its task ends, however it ends (a panic included), so that no
/// reader waits for writes that will never come.
struct CountedOutOnDrop(Arc<watch::Sender<WriteProgress>>);

impl Drop for CountedOutOnDrop {
    fn drop(&mut self) {
        self.0.send_modify(|progress| {
            progress.writers_left = progress.writers_left.saturating_sub(1)
        });
    }
}

/// A reader never sees a value nobody wrote. Readers and writers start together, and the
/// readers keep reading, letting the other tasks run between reads, for as long as any
/// writer writes: a read that finished before the writers began would see nothing of a
/// write in progress. Past their first reads they keep pace with the writes that finish,
/// so the reads stay spread over the whole race.
pub async fn readers_never_see_unwritten_values(ctx: Ctx) -> CaseResult {
    let key = ctx.key("contended");
    let (writers, rounds, readers, reads) = (4, 25, 4, 50);
    let progress = Arc::new(watch::Sender::new(WriteProgress {
        finished_writes: 0,
        writers_left: writers,
    }));
    let start = Arc::new(Barrier::new(writers + readers));
    let initial = written_value(usize::MAX >> 40, 0);
    ctx.set(&key, &initial, None).await?;
    let mut written: HashSet<Vec<u8>> = (0..writers)
        .flat_map(|w| (0..rounds).map(move |r| written_value(w, r)))
        .collect();
    written.insert(initial);
    let written = Arc::new(written);
    let mut tasks = JoinSet::new();
    for writer in 0..writers {
        let (ctx, key, start) = (ctx.clone(), key.clone(), start.clone());
        let counted_out = CountedOutOnDrop(progress.clone());
        tasks.spawn(async move {
            start.wait().await;
            for round in 0..rounds {
                ctx.set(&key, &written_value(writer, round), None).await?;
                counted_out
                    .0
                    .send_modify(|progress| progress.finished_writes += 1);
            }
            Ok(())
        });
    }
    for _ in 0..readers {
        let (ctx, key, written, start) = (ctx.clone(), key.clone(), written.clone(), start.clone());
        let mut watched = progress.subscribe();
        tasks.spawn(async move {
            start.wait().await;
            let mut read = 0;
            loop {
                // Both counts, and the mark that they were seen, in one step: a write or a
                // writer leaving after this wakes the wait below.
                let now = *watched.borrow_and_update();
                if read >= reads && now.writers_left == 0 {
                    return Ok(());
                }
                if read >= reads + READS_PER_FINISHED_WRITE * now.finished_writes {
                    if watched.changed().await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                read += 1;
                tokio::task::yield_now().await;
                let got: Option<Bytes> = ctx.get(&key).await?;
                if !got.as_ref().is_some_and(|v| written.contains(v.as_ref())) {
                    return Err(Failure::new(format!(
                        "read #{read} while writers overwrite a key that always holds a value"
                    ))
                    .operation(Operation::Get)
                    .key(&key)
                    .expected("one of the values written")
                    .got(Answer::Value(got)));
                }
            }
        });
    }
    join_all(tasks).await
}

/// A set with a ttl and a plain set racing on one key leave one of them whole: the plain
/// value without a ttl, or the other value with its ttl, never the plain value expiring
/// with the other's ttl (SET and EXPIRE sent as two commands). And a get that has seen a
/// set still in flight is not contradicted by exists (an index written after the value).
pub async fn racing_sets_with_and_without_a_ttl_leave_one_whole(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let mut raced = Vec::new();
    for polls in 0..4 {
        let key = ctx.key(&format!("raced-{polls}"));
        let with_ttl = ctx
            .backend
            .set(&key, Bytes::from_static(b"expiring"), Some(window.ttl));
        let mut with_ttl = std::pin::pin!(with_ttl);
        // Started and left unfinished after `polls` turns, while the plain set runs whole.
        let finished = poll_a_few_times(with_ttl.as_mut(), polls).await;
        ctx.set(&key, b"plain", None).await?;
        let result = run_to_the_end(with_ttl, finished).await;
        result.map_err(|err| {
            crate::ctx::unexpected(Operation::Set, "set(ttl) raced by a plain set", &key, err)
        })?;
        let got = ctx.get(&key).await?;
        expect_written(&key, got.as_deref(), &[b"plain", b"expiring"])?;
        raced.push((key.clone(), got));

        let fresh = ctx.key(&format!("fresh-{polls}"));
        let set = ctx.backend.set(&fresh, Bytes::from_static(b"v"), None);
        let mut set = std::pin::pin!(set);
        let finished = poll_a_few_times(set.as_mut(), polls).await;
        if ctx.get(&fresh).await?.is_some() {
            ctx.expect_exists("exists after a get saw a set still in flight", &fresh, true)
                .await?;
        }
        let result = run_to_the_end(set, finished).await;
        result.map_err(|err| crate::ctx::unexpected(Operation::Set, "set", &fresh, err))?;
    }
    let settled = tokio::time::Instant::now();
    ctx.sleep_until(settled, window.absent_by).await;
    for (key, got) in raced {
        let check = format!(
            "get, past the ttl, of a key whose racing sets left {}",
            crate::failure::preview_option(got.as_deref())
        );
        match got.as_deref() {
            Some(b"plain") => ctx.expect_present(&check, &key, b"plain").await?,
            _ => ctx.expect_absent(&check, &key).await?,
        }
    }
    Ok(())
}

/// Polls `operation` up to `polls` times; its output if it finished within them.
async fn poll_a_few_times<F: std::future::Future>(
    mut operation: std::pin::Pin<&mut F>,
    polls: usize,
) -> Option<F::Output> {
    for _ in 0..polls {
        if let std::task::Poll::Ready(output) = futures::poll!(operation.as_mut()) {
            return Some(output);
        }
    }
    None
}

/// `operation`'s output: the one [`poll_a_few_times`] already got, or else what it gives
/// once polled to the end.
async fn run_to_the_end<F: std::future::Future>(
    operation: std::pin::Pin<&mut F>,
    finished: Option<F::Output>,
) -> F::Output {
    match finished {
        Some(output) => output,
        None => operation.await,
    }
}

fn expect_written(key: &str, got: Option<&[u8]>, written: &[&[u8]]) -> CaseResult {
    if got.is_some_and(|value| written.contains(&value)) {
        return Ok(());
    }
    Err(Failure::new("get after two racing sets")
        .operation(Operation::Get)
        .key(key)
        .expected("one of the values written")
        .got(Answer::Value(got.map(Bytes::copy_from_slice))))
}

/// Of concurrent deletes of one entry, exactly one returns true.
pub async fn concurrent_deletes_report_one_existed(ctx: Ctx) -> CaseResult {
    let deleters = 8;
    for round in 0..16 {
        let key = ctx.key(&format!("k{round}"));
        ctx.set(&key, b"v", None).await?;
        let barrier = Arc::new(Barrier::new(deleters));
        let mut tasks = JoinSet::new();
        for _ in 0..deleters {
            let (ctx, key, barrier) = (ctx.clone(), key.clone(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                ctx.delete(&key).await
            });
        }
        let mut existed = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(true)) => existed += 1,
                Ok(Ok(false)) => {}
                Ok(Err(failure)) => return Err(failure),
                Err(err) => {
                    return Err(Failure::panicked(
                        "a concurrent delete must not panic",
                        err.to_string(),
                    ))
                }
            }
        }
        if existed != 1 {
            return Err(
                Failure::new(format!("{deleters} concurrent deletes of one entry"))
                    .operation(Operation::Delete)
                    .key(&key)
                    .expected(Answer::Count(1))
                    .got(Answer::Count(existed))
                    .note("counts are of deletes that answered true"),
            );
        }
    }
    Ok(())
}
