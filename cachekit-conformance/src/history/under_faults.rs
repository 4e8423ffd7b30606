//! A history recorded while a [`FaultProxy`] misbehaves on a schedule, and what a network
//! backend must show under it: answers one order explains, errors of the kinds a caller
//! can act on within the backend's own timeout, and service again soon after the heal,
//! from the same backend values.

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, Bytes};
use tokio::time::Instant;

use super::check::Verdict;
use super::record::CANCELLED;
use super::{check_history, record_history, Answered, Consistency, History, Workload};
use crate::fault_proxy::{FaultProxy, Faults};

/// One step of a fault schedule: from `at` (since recording began), these faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPhase {
    /// When it starts.
    pub at: Duration,
    /// What the network does from then on.
    pub faults: Faults,
}

/// The schedule every network backend is put through, one phase every `phase` from the
/// start: jittery latency, connections reset after a few hundred bytes, a slow and uneven
/// network (some requests arrive long after the client gave up on them, others at once),
/// a clean network, a blackhole (requests hang past the client's timeout), a partition,
/// then healed.
/// `client_timeout` is the backend's per-attempt timeout: the uneven network delays each
/// chunk by up to twice that, so about half the attempts time out and their retries race
/// the originals.
pub fn standard_schedule(phase: Duration, client_timeout: Duration) -> Vec<FaultPhase> {
    let jittery = Faults {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(4),
        ..Faults::default()
    };
    let resets = Faults {
        reset_after_bytes: Some(700),
        ..jittery
    };
    let uneven = Faults {
        jitter: client_timeout * 2,
        ..Faults::default()
    };
    let blackhole = Faults {
        blackhole: true,
        ..Faults::default()
    };
    let partitioned = Faults {
        partitioned: true,
        ..Faults::default()
    };
    [
        jittery,
        resets,
        uneven,
        Faults::default(),
        blackhole,
        partitioned,
        Faults::default(),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, faults)| FaultPhase {
        at: phase * n as u32,
        faults,
    })
    .collect()
}

/// What a run under faults must respect.
#[derive(Debug, Clone)]
pub struct FaultExpectations {
    /// The backend's own per-operation timeout: no call may take much longer.
    pub op_timeout: Duration,
    /// How soon after the heal a set and a get on a fresh key must both succeed.
    pub recovery_within: Duration,
    /// Error kinds (wire names) a fault may cause.
    pub allowed_kinds: Vec<&'static str>,
}

impl FaultExpectations {
    /// Timeouts and lost connections only, each call within `op_timeout` plus a second of
    /// scheduling slack, service back within 5 s of the heal.
    pub fn new(op_timeout: Duration) -> Self {
        FaultExpectations {
            op_timeout,
            recovery_within: Duration::from_secs(5),
            allowed_kinds: vec!["timeout", "unavailable"],
        }
    }
}

/// What a run under faults found. `problems` empty means the backend passed.
#[derive(Debug, Clone)]
pub struct FaultRun {
    /// The history recorded.
    pub history: History,
    /// The checker's verdict on it.
    pub verdict: Verdict,
    /// Every broken expectation, one line each.
    pub problems: Vec<String>,
    /// How long after the heal the first set + get on a fresh key succeeded.
    pub recovered_after: Option<Duration>,
}

/// Records a history from `clients` (connected through `proxy`) while `schedule` plays,
/// heals the proxy, then checks the history, the errors and the recovery.
pub async fn run_under_faults(
    proxy: &FaultProxy,
    clients: Vec<Arc<dyn Backend>>,
    keys: Vec<String>,
    workload: &Workload,
    consistency: Consistency,
    schedule: &[FaultPhase],
    expect: &FaultExpectations,
) -> FaultRun {
    let started = Instant::now();
    let play = async {
        for phase in schedule {
            tokio::time::sleep_until(started + phase.at).await;
            proxy.set(phase.faults);
        }
    };
    let record = record_history(clients.clone(), keys.clone(), workload, consistency, None);
    let (history, ()) = tokio::join!(record, play);
    proxy.heal();
    let mut problems = Vec::new();
    let verdict = check_history(&history, Duration::from_secs(10));
    match &verdict {
        Verdict::Linearizable(_) => {}
        Verdict::NotLinearizable(violation) => problems.push(format!(
            "not linearizable on key {:?}:\n{}",
            history.keys.get(violation.key),
            super::render::text_timeline(&history, violation)
        )),
        Verdict::Unknown { reason } => problems.push(format!("undecided: {reason}")),
    }
    let slack = Duration::from_secs(1);
    for op in &history.ops {
        let took = Duration::from_nanos(op.returned.saturating_sub(op.invoked));
        if let Answered::Indeterminate { kind, message } = &op.answered {
            if kind == CANCELLED || !expect.allowed_kinds.contains(&kind.as_str()) {
                problems.push(format!(
                    "client {} {op}: error kind `{kind}` ({message}); expected one of {:?}",
                    op.client, expect.allowed_kinds
                ));
            }
        }
        if took > expect.op_timeout + slack {
            problems.push(format!(
                "client {} {op}: took {took:?}, past the backend's timeout of {:?}",
                op.client, expect.op_timeout
            ));
        }
    }
    let recovered_after = recovery(&clients, &keys, expect.recovery_within).await;
    if recovered_after.is_none() {
        problems.push(format!(
            "no set and get on a fresh key succeeded within {:?} of the heal, on the same \
             backend values",
            expect.recovery_within
        ));
    }
    FaultRun {
        history,
        verdict,
        problems,
        recovered_after,
    }
}

/// How long until every client set and read back a fresh key after the heal.
async fn recovery(
    clients: &[Arc<dyn Backend>],
    keys: &[String],
    within: Duration,
) -> Option<Duration> {
    let healed = Instant::now();
    let key = format!("{}-recovered", keys.first().map_or("", String::as_str));
    for (client, backend) in clients.iter().enumerate() {
        let value = Bytes::from(format!("after-heal-{client}"));
        loop {
            if healed.elapsed() > within {
                return None;
            }
            let stored = backend.set(&key, value.clone(), None).await.is_ok();
            if stored && backend.get(&key).await.ok().flatten().as_ref() == Some(&value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some(healed.elapsed())
}

/// Fewer answered operations than this in a [`standard_run`] judge too little to pass.
pub const MIN_ANSWERED: usize = 40;

/// How long each phase of [`standard_run`]'s schedule lasts: longer than a client timeout
/// of a few hundred milliseconds, so a blackhole is seen as timeouts, not only as the resets
/// of the partition that follows it.
pub const STANDARD_PHASE: Duration = Duration::from_millis(400);

/// The run every network backend's own tests make: four `clients` (connected through
/// `proxy`) on three keys starting with `key_prefix`, operations every few milliseconds
/// for as long as [`standard_schedule`] plays, each call allowed `call_budget` (the
/// backend's timeout times its attempts, plus backoff).
pub async fn standard_run(
    proxy: &FaultProxy,
    clients: Vec<Arc<dyn Backend>>,
    key_prefix: &str,
    seed: u64,
    client_timeout: Duration,
    call_budget: Duration,
) -> FaultRun {
    scheduled_run(
        proxy,
        clients,
        key_prefix,
        seed,
        (client_timeout, call_budget),
        STANDARD_PHASE,
        Consistency::Linearizable,
    )
    .await
}

/// [`standard_run`] with phases of `phase` each (the whole run lasts seven of them), as
/// `cachekit check … --histories 30s --faults` runs it; `timeouts` are the client's
/// per-attempt timeout and the longest one call may take; the history is judged against
/// `consistency`, as the service declares it.
pub async fn scheduled_run(
    proxy: &FaultProxy,
    clients: Vec<Arc<dyn Backend>>,
    key_prefix: &str,
    seed: u64,
    timeouts: (Duration, Duration),
    phase: Duration,
    consistency: Consistency,
) -> FaultRun {
    let (client_timeout, call_budget) = timeouts;
    let schedule = standard_schedule(phase, client_timeout);
    let keys = (0..3).map(|n| format!("{key_prefix}-{seed}-{n}")).collect();
    let mut workload = Workload::new(usize::MAX, Duration::from_millis(8), seed);
    workload.run_for = schedule.last().map(|last| last.at + phase);
    // Longer than any call may take: only a call that ignores its own timeout is abandoned.
    workload.op_timeout = call_budget * 4 + Duration::from_secs(2);
    let mut run = run_under_faults(
        proxy,
        clients,
        keys,
        &workload,
        consistency,
        &schedule,
        &FaultExpectations::new(call_budget),
    )
    .await;
    if !run.history.ops.iter().any(super::Op::is_indeterminate) {
        run.problems.push(
            "the faults caused no error at all: the schedule never reached the backend".to_owned(),
        );
    }
    if run.history.determinate_count() < MIN_ANSWERED {
        run.problems.push(format!(
            "too few answered operations to judge: {}",
            run.history.determinate_count()
        ));
    }
    run
}
