//! Running cases: one case on the runtime it needs, or a whole suite into a [`Report`].

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachekit_core::{Capabilities, Clock};

use crate::case::{Case, CaseFn, Family, Timing};
use crate::ctx::Ctx;
use crate::failure::{Failure, Operation, SEED_ENV};
use crate::suite::{panic_message, Suite, SuiteFactory};

/// Environment variable: seconds one case may take before it fails (default 120).
pub const CASE_TIMEOUT_ENV: &str = "CACHEKIT_CASE_TIMEOUT_SECS";

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed: the check, the operation, what was expected and what came back, as
    /// fields. [`CaseReport::message`] renders it under the case's rule.
    Failed(Failure),
    /// The backend's declared capabilities exclude the case; the text says which.
    Skipped(String),
}

impl Outcome {
    /// The failure, if the case failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// One case's line in a [`Report`].
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case that ran.
    pub case: Case,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time it took.
    pub duration: Duration,
}

impl CaseReport {
    /// The outcome as text for people: the broken rule and the failure's fields, or the
    /// reason a case was skipped; `None` for a pass.
    pub fn message(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Passed => None,
            Outcome::Failed(failure) => Some(describe_failure(&self.case, failure)),
            Outcome::Skipped(reason) => Some(reason.clone()),
        }
    }
}

/// The result of running a suite programmatically.
#[derive(Debug, Clone)]
pub struct Report {
    /// The suite's name.
    pub suite: String,
    /// What the backend declared.
    pub capabilities: Capabilities,
    /// One entry per selected case, in registry order.
    pub cases: Vec<CaseReport>,
    /// Wall time of the whole run.
    pub wall_time: Duration,
    /// The seed random cases used.
    pub seed: u64,
}

impl Report {
    /// Cases that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// (passed, failed, skipped) counts, over all families or one.
    pub fn counts(&self, family: Option<Family>) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        let selected = self
            .cases
            .iter()
            .filter(|c| family.is_none_or(|f| c.case.family == f));
        for case in selected {
            match case.outcome {
                Outcome::Passed => counts.0 += 1,
                Outcome::Failed(_) => counts.1 += 1,
                Outcome::Skipped(_) => counts.2 += 1,
            }
        }
        counts
    }

    /// Whether no case failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance report for `{}` (seed {})",
            self.suite, self.seed
        )?;
        for entry in &self.cases {
            let word = match &entry.outcome {
                Outcome::Passed => "pass",
                Outcome::Failed(_) => "FAIL",
                Outcome::Skipped(_) => "skip",
            };
            let detail = entry.message();
            writeln!(
                f,
                "  {word}  {:<62} {:>8.3}s",
                entry.case.id(),
                entry.duration.as_secs_f64()
            )?;
            if let Some(detail) = detail {
                for line in detail.lines() {
                    writeln!(f, "        {line}")?;
                }
            }
        }
        let (passed, failed, skipped) = self.counts(None);
        write!(
            f,
            "{passed} passed, {failed} failed, {skipped} skipped in {:.2}s",
            self.wall_time.as_secs_f64()
        )
    }
}

/// Called with each case's report as soon as it ends (from the thread that ran it), and
/// with the number of cases selected, before the first one starts.
pub trait Progress: Send + Sync {
    /// The run of a suite with `total` selected cases begins.
    fn started(&self, suite: &str, total: usize);
    /// One case ended.
    fn case_done(&self, suite: &str, report: &CaseReport);
}

/// Options for [`run_suite`].
#[derive(Clone)]
pub struct RunOptions {
    /// Only cases whose `family::name` contains this text.
    pub filter: Option<String>,
    /// Cases run at once; ttl cases mostly wait, so this is high by default.
    pub parallelism: usize,
    /// Seed for random cases; taken from `CACHEKIT_SEED` or drawn at random when `None`.
    pub seed: Option<u64>,
    /// Told about each case as it ends, for a live progress line.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            filter: None,
            parallelism: 64,
            seed: None,
            progress: None,
        }
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("filter", &self.filter)
            .field("parallelism", &self.parallelism)
            .field("seed", &self.seed)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Runs every registered case that matches `options` against `suite` and reports.
///
/// This is what the command-line validator uses; the test harness runs the very same
/// cases through [`run_case`].
pub fn run_suite(suite: &Suite, options: &RunOptions) -> Report {
    let started = Instant::now();
    let seed = options.seed.unwrap_or_else(seed_from_env);
    let run_id = RunId::new();
    let selected: Vec<Case> = crate::cases::all()
        .into_iter()
        .filter(|case| suite.includes(case))
        .filter(|case| {
            options
                .filter
                .as_deref()
                .is_none_or(|text| case.id().contains(text))
        })
        .collect();
    let capabilities = match suite.capabilities() {
        Ok(caps) => caps,
        Err(reason) => {
            let cases = selected
                .into_iter()
                .map(|case| CaseReport {
                    case,
                    outcome: Outcome::Failed(
                        Failure::new("build the backend and read its capabilities")
                            .operation(Operation::Setup)
                            .got(reason.clone()),
                    ),
                    duration: Duration::ZERO,
                })
                .collect();
            return Report {
                suite: suite.name().to_owned(),
                capabilities: Capabilities::new("unknown"),
                cases,
                wall_time: started.elapsed(),
                seed,
            };
        }
    };
    if let Some(progress) = &options.progress {
        progress.started(suite.name(), selected.len());
    }
    let results: Mutex<Vec<Option<CaseReport>>> = Mutex::new(vec![None; selected.len()]);
    let next = AtomicUsize::new(0);
    let workers = options.parallelism.clamp(1, selected.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = selected.get(index) else {
                    break;
                };
                let case_started = Instant::now();
                let outcome = run_case(suite, case, &capabilities, &run_id, seed);
                let report = CaseReport {
                    case: *case,
                    outcome,
                    duration: case_started.elapsed(),
                };
                if let Some(progress) = &options.progress {
                    progress.case_done(suite.name(), &report);
                }
                if let Ok(mut results) = results.lock() {
                    results[index] = Some(report);
                }
            });
        }
    });
    let cases = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    Report {
        suite: suite.name().to_owned(),
        capabilities,
        cases,
        wall_time: started.elapsed(),
        seed,
    }
}

/// A per-process tag so keys from concurrent runs against one shared store never meet.
#[derive(Debug, Clone)]
pub struct RunId(String);

impl RunId {
    /// A fresh random tag.
    pub fn new() -> Self {
        RunId(format!("{:08x}", rand::random::<u32>()))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one case against a fresh backend from `suite`, on the runtime its timing needs.
///
/// Never panics: a panicking case or backend is reported as [`Outcome::Failed`].
pub fn run_case(
    suite: &Suite,
    case: &Case,
    capabilities: &Capabilities,
    run_id: &RunId,
    seed: u64,
) -> Outcome {
    if let Some(reason) = suite.skip_reason(case, capabilities) {
        return Outcome::Skipped(reason);
    }
    let virtual_time = capabilities.clock == Clock::Tokio && case.timing == Timing::WaitsForExpiry;
    let runtime = match case.timing {
        Timing::Parallel => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(virtual_time)
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            return Outcome::Failed(
                Failure::new("build a tokio runtime for the case")
                    .operation(Operation::Setup)
                    .got(err.to_string()),
            )
        }
    };
    let prefix = format!("ck-{}-{}-", run_id.0, case.name);
    let timeout = case_timeout();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let running = match (suite.factory(), case.run) {
                (SuiteFactory::Backend(factory), CaseFn::Backend(run)) => {
                    let ctx = Ctx::new(factory().await, virtual_time, prefix, seed)
                        .with_factory(factory.clone());
                    run(ctx)
                }
                #[cfg(feature = "http-faults")]
                (SuiteFactory::HttpFaults(factory), CaseFn::HttpFaults(run)) => {
                    run(crate::ctx::faults::FaultCtx::new(factory.clone()))
                }
                (SuiteFactory::HttpApi(Ok(api)), CaseFn::HttpApi(run)) => run(
                    crate::ctx::api::ApiCtx::new(api.0.clone(), api.1.clone(), prefix),
                ),
                _ => {
                    return Err(
                        Failure::new("run the case in a suite of its kind").got(format!(
                            "`{}` does not belong in suite `{}`",
                            case.id(),
                            suite.name()
                        )),
                    )
                }
            };
            // Measured on the wall clock: on the paused clock, a case that waits 30 virtual
            // days would otherwise run straight past a virtual-time timeout.
            let (_finished, expired) = wall_clock_deadline(timeout);
            tokio::select! {
                result = running => result,
                _ = expired => Err(Failure::new("the case must finish")
                    .expected(format!("done within {timeout:?} ({CASE_TIMEOUT_ENV})"))
                    .got("still running: an operation hangs")),
            }
        })
    }));
    // Dropping a runtime whose tasks still hold blocking resources must not hang the run.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(failure)) => Outcome::Failed(failure),
        Err(panic) => Outcome::Failed(Failure::panicked(
            "the case must not panic",
            panic_message(&*panic),
        )),
    }
}

/// The failure under its case's rule, as people read it.
pub fn describe_failure(case: &Case, failure: &Failure) -> String {
    format!("rule violated: [{}] {}\n{failure}", case.family, case.rule)
}

/// A receiver that completes once `after` has passed on the wall clock. Dropping the
/// returned sender ends the watching thread early.
fn wall_clock_deadline(
    after: Duration,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (finished, finished_rx) = std::sync::mpsc::channel::<()>();
    let (expire, expired) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished_rx.recv_timeout(after) {
            let _ = expire.send(());
        }
    });
    (finished, expired)
}

fn case_timeout() -> Duration {
    std::env::var(CASE_TIMEOUT_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// The seed from `CACHEKIT_SEED`, or a random one.
pub fn seed_from_env() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(rand::random)
}
