//! A long concurrent history against a suite's backend, for people who want to soak a
//! service rather than run the matrix: `cachekit check … --histories 30s`.

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::Backend;

use crate::history::check::{Stats, Violation};
use crate::history::render::text_timeline;
use crate::history::{check_history, record_history, History, Verdict, Workload};
use crate::suite::{Suite, SuiteFactory};
use crate::Ctx;

/// What a soak found.
#[derive(Debug, Clone)]
pub enum SoakOutcome {
    /// One order explains every answer.
    Linearizable(Stats),
    /// No order does: the violation, shrunk, as a text timeline.
    NotLinearizable {
        /// The shrunk violation.
        violation: Violation,
        /// It as text, one block per client.
        timeline: String,
    },
    /// Undecided (checking ran out of time, or nothing to judge).
    Unknown(String),
}

/// A soak's history and its outcome.
#[derive(Debug, Clone)]
pub struct Soak {
    /// Everything recorded.
    pub history: History,
    /// What checking it concluded.
    pub outcome: SoakOutcome,
}

/// Keys a soak spreads its operations over: enough that each key's sub-history stays
/// small enough to check quickly, few enough that clients still collide on them.
const SOAK_KEYS: usize = 8;

/// Records four clients on eight keys for `duration` against `suite`'s backend (a new
/// backend value per client when its instances share entries), then checks the history,
/// giving the checker `check_budget` per key. `Err` when the suite has no backend factory.
pub fn soak(
    suite: &Suite,
    duration: Duration,
    seed: u64,
    check_budget: Duration,
) -> Result<Soak, String> {
    let SuiteFactory::Backend(factory) = suite.factory() else {
        return Err(format!("suite `{}` has no backend to soak", suite.name()));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|err| format!("cannot build a tokio runtime: {err}"))?;
    let history = runtime.block_on(async {
        // The same rule as the histories cases': own backend values when instances share.
        let ctx =
            Ctx::new(factory().await, false, String::new(), seed).with_factory(factory.clone());
        let caps = ctx.caps.clone();
        let mut clients: Vec<Arc<dyn Backend>> = vec![ctx.backend.clone()];
        for _ in 1..4 {
            clients.push(ctx.another_client().await);
        }
        let keys = (0..SOAK_KEYS)
            .map(|n| format!("ck-soak-{seed:x}-{n}"))
            .collect();
        let mut workload = Workload::new(usize::MAX, Duration::from_millis(2), seed);
        workload.run_for = Some(duration);
        record_history(clients, keys, &workload, caps.consistency.into(), None).await
    });
    let outcome = match check_history(&history, check_budget) {
        Verdict::Linearizable(stats) => SoakOutcome::Linearizable(stats),
        Verdict::NotLinearizable(violation) => SoakOutcome::NotLinearizable {
            timeline: text_timeline(&history, &violation),
            violation,
        },
        Verdict::Unknown { reason } => SoakOutcome::Unknown(reason),
    };
    Ok(Soak { history, outcome })
}
