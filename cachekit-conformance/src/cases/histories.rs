//! Concurrent histories: several clients at once on a few shared keys, every answer
//! explained by one order of the operations (see [`crate::history`]).

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, Bytes};

use crate::failure::{Answer, Operation};
use crate::history::check::Violation;
pub use crate::history::render::HISTORY_DIR_ENV;
use crate::history::render::{save, text_timeline};
use crate::history::{
    check_history, nanos, record_history, Answered, Call, ExpiryTolerance, History, OpMix, Verdict,
    Workload,
};
use crate::{CaseResult, Ctx, Failure};

/// Clients recording at once, and the keys they share.
const CLIENTS: usize = 4;
const KEYS: usize = 3;
/// Keys of the expiry history: more of them, so each is written less often.
const EXPIRY_KEYS: usize = 4;
/// How long the checker may spend on one key before it says "unknown".
const CHECK_BUDGET: Duration = Duration::from_secs(10);

async fn clients(ctx: &Ctx) -> Vec<Arc<dyn Backend>> {
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(ctx.another_client().await);
    }
    clients
}

fn keys(ctx: &Ctx, count: usize) -> Vec<String> {
    (0..count).map(|n| ctx.key(&format!("h{n}"))).collect()
}

/// Set, get, exists and delete from four clients at once on three keys, no ttls.
pub async fn concurrent_operations_are_linearizable(ctx: Ctx) -> CaseResult {
    // On the paused clock pauses are free, so the clients interleave at many points; on a
    // wall clock they are short, so the case costs little more than its operations.
    let (ops, pause) = if ctx.virtual_time {
        (60, Duration::from_millis(3))
    } else {
        (40, Duration::from_millis(2))
    };
    let workload = Workload::new(ops, pause, ctx.seed);
    let history = record_history(
        clients(&ctx).await,
        keys(&ctx, KEYS),
        &workload,
        ctx.caps.consistency.into(),
        None,
    )
    .await;
    judge(&ctx, &history, "concurrent_operations_are_linearizable")
}

/// The same with ttls short enough to expire while the clients run.
pub async fn concurrent_operations_with_expiry_are_linearizable(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let precision = ctx.caps.ttl.map_or(window.ttl, |ttl| ttl.precision);
    let tolerance = ExpiryTolerance {
        precision_nanos: nanos(precision),
        early_nanos: nanos(window.ttl - window.present_until),
        late_nanos: nanos(window.absent_by - window.ttl - precision),
    };
    // Runs last about five times the shorter ttl (two and a half on a wall clock), with few
    // writes, all with a ttl, so entries are
    // seen before, inside and after their expiry window; the longer ttl has a fraction of a
    // second (or of the precision, if coarser) that rounding down would lose.
    let pause = if ctx.virtual_time {
        window.ttl / 6
    } else {
        window.ttl / 12
    };
    let mut workload = Workload::new(60, pause, ctx.seed);
    workload.mix = OpMix::READ_MOSTLY;
    workload.plain_sets = false;
    workload.ttls = vec![
        window.ttl,
        window.ttl * 2 + (precision / 3).max(Duration::from_millis(400)),
    ];
    let history = record_history(
        clients(&ctx).await,
        keys(&ctx, EXPIRY_KEYS),
        &workload,
        ctx.caps.consistency.into(),
        Some(tolerance),
    )
    .await;
    judge(
        &ctx,
        &history,
        "concurrent_operations_with_expiry_are_linearizable",
    )
}

fn judge(ctx: &Ctx, history: &History, case: &str) -> CaseResult {
    match check_history(history, CHECK_BUDGET) {
        Verdict::Linearizable(_) => Ok(()),
        Verdict::Unknown { reason } => Err(Failure::new("check the recorded history")
            .expected("a decision: linearizable or not")
            .got(format!("unknown: {reason}"))
            .seed(ctx.seed)
            .note(save(history, None, case))),
        Verdict::NotLinearizable(violation) => {
            Err(violation_failure(ctx, history, &violation, case))
        }
    }
}

fn violation_failure(ctx: &Ctx, history: &History, violation: &Violation, case: &str) -> Failure {
    let timeline = text_timeline(history, violation);
    // The first operation the longest explanation could not place is where it broke.
    let stuck = violation
        .expected
        .as_ref()
        .map(|(index, _)| *index)
        .or_else(|| {
            (0..violation.ops.len()).find(|index| {
                !violation.explained.contains(index) && !violation.ops[*index].is_indeterminate()
            })
        })
        .and_then(|index| violation.ops.get(index).cloned());
    let mut failure =
        Failure::new("find an order of the concurrent operations that explains every answer")
            .key(history.keys.get(violation.key).map_or("", String::as_str))
            .expected(format!(
                "an order explaining every answer ({:?})",
                history.consistency
            ))
            .seed(ctx.seed)
            .steps(timeline.lines().map(str::to_owned).collect());
    if let Some(op) = stuck {
        let operation = match op.call {
            Call::Set { .. } => Operation::Set,
            Call::Get => Operation::Get,
            Call::Exists => Operation::Exists,
            Call::Delete => Operation::Delete,
        };
        failure = failure.operation(operation);
        if let Some(got) = answer(&op.answered) {
            failure = failure.got(got);
        }
        if let Some((_, expected)) = &violation.expected {
            if let Some(expected) = answer(expected) {
                failure = failure.expected(expected);
            }
        }
    }
    failure.note(save(history, Some(violation), case))
}

/// A recorded answer as a failure's answer field.
fn answer(answered: &Answered) -> Option<Answer> {
    match answered {
        Answered::Value(value) => Some(Answer::Value(
            value
                .as_ref()
                .map(|text| Bytes::from(text.clone().into_bytes())),
        )),
        Answered::Bool(answer) => Some(Answer::Bool(*answer)),
        Answered::Stored | Answered::Indeterminate { .. } => None,
    }
}
