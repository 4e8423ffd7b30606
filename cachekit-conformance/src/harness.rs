//! The `cargo test` harness behind [`conformance_tests!`](crate::conformance_tests).
//!
//! Built on libtest-mimic, so every case is a real test with its own name
//! (`suite::family::case`), filters and `--exact` work, and cargo-nextest can list and run
//! cases one by one. Cases the backend's capabilities exclude are *ignored* tests, never
//! passes; their reasons are printed before the run. Cases a [`Baseline`] expects to fail
//! run as `[expected failure]` tests: they pass by failing, and fail when they pass.
//! A binary in which no case applies fails: a misconfigured suite must not go green.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

pub use libtest_mimic::Arguments;
use libtest_mimic::{Failed, Trial};

use crate::baseline::{verdict_for, Baseline, Verdict};
use crate::case::Case;
use crate::runner::{describe_failure, run_case, seed_from_env, Outcome, RunId};
use crate::suite::Suite;

/// Cases run at once unless `--test-threads` says otherwise: they mostly wait on I/O and
/// ttls, so running many at once keeps the matrix to about one ttl window.
pub const DEFAULT_TEST_THREADS: usize = 64;

/// The kind libtest prints before a case the baseline expects to fail.
pub const EXPECTED_FAILURE_KIND: &str = "expected failure";

/// Runs `suites` as a libtest-compatible test binary; the body of the macro's `main`.
pub fn main(suites: Vec<Suite>) -> ExitCode {
    main_with_threads(suites, DEFAULT_TEST_THREADS)
}

/// [`main`] with another default for the cases run at once, for a store that serves fewer
/// requests in parallel (an emulator, a single-threaded server); `--test-threads` still wins.
pub fn main_with_threads(suites: Vec<Suite>, default_test_threads: usize) -> ExitCode {
    suites
        .into_iter()
        .fold(Harness::new(), Harness::suite)
        .test_threads(default_test_threads)
        .run()
}

/// A conformance test binary being put together: suites, the author's extra cases, an
/// expected-failure baseline. [`conformance_tests!`](crate::conformance_tests) builds one.
#[derive(Debug)]
pub struct Harness {
    suites: Vec<Suite>,
    extra: Vec<Case>,
    baseline: Option<(String, String)>,
    default_test_threads: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty harness.
    pub fn new() -> Self {
        Harness {
            suites: Vec::new(),
            extra: Vec::new(),
            baseline: None,
            default_test_threads: DEFAULT_TEST_THREADS,
        }
    }

    /// Adds a suite.
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suites.push(suite);
        self
    }

    /// Adds the author's own cases ([`Case::extra`]); they run in every backend suite.
    pub fn extra(mut self, cases: impl IntoIterator<Item = Case>) -> Self {
        self.extra.extend(cases);
        self
    }

    /// Judges the run against a baseline: `path` names it in messages, `text` is its
    /// content (the macro embeds the file at compile time).
    pub fn baseline(mut self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.baseline = Some((path.into(), text.into()));
        self
    }

    /// Cases run at once unless `--test-threads` says otherwise.
    pub fn test_threads(mut self, threads: usize) -> Self {
        self.default_test_threads = threads;
        self
    }

    /// Parses the command line, runs the selected cases, and returns the exit code.
    pub fn run(self) -> ExitCode {
        self.run_with(Arguments::from_args())
    }

    /// Runs with libtest arguments given here rather than read from the command line.
    pub fn run_with(self, mut args: Arguments) -> ExitCode {
        if args.test_threads.is_none() {
            args.test_threads = Some(self.default_test_threads);
        }
        let baseline = match &self.baseline {
            None => None,
            Some((path, text)) => match Baseline::parse_with_extra(text, &self.extra) {
                Ok(baseline) => Some(baseline),
                Err(err) => {
                    eprintln!("cachekit conformance: baseline {path}: {err}");
                    return ExitCode::FAILURE;
                }
            },
        };
        let listing = args.list;
        let seed = seed_from_env();
        let expected = Arc::new(Mutex::new(Vec::new()));
        let trials = self.trials(baseline.as_ref(), listing, seed, &expected);
        let runnable = trials
            .iter()
            .filter(|trial| !trial.has_ignored_flag())
            .count();
        if runnable == 0 && !listing {
            eprintln!(
                "cachekit conformance: no case applies to any suite ({} suites): a run that \
                 checks nothing is a failure, not a pass",
                self.suites.len()
            );
            return ExitCode::FAILURE;
        }
        if !listing {
            eprintln!(
                "cachekit conformance: seed {seed} (replay with {}={seed})",
                crate::failure::SEED_ENV
            );
        }
        let conclusion = libtest_mimic::run(&args, trials);
        let expected = expected.lock().map(|list| list.clone()).unwrap_or_default();
        if !expected.is_empty() {
            let path = self.baseline.as_ref().map_or("", |(path, _)| path.as_str());
            eprintln!("\nexpected failures ({path}), not counted as passes:");
            for line in expected {
                eprintln!("    {line}");
            }
        }
        conclusion.exit_code()
    }

    fn trials(
        &self,
        baseline: Option<&Baseline>,
        listing: bool,
        seed: u64,
        expected: &Arc<Mutex<Vec<String>>>,
    ) -> Vec<Trial> {
        let mut trials = Vec::new();
        // Across all suites, so that one suite's heavy cases do not wait behind another's.
        let mut early = Vec::new();
        for suite in &self.suites {
            // One run id per suite: two suites of one binary may share a store, and a case's
            // keys must not meet the same case's keys of the other suite.
            let run_id = RunId::new();
            let capabilities = match suite.capabilities() {
                Ok(caps) => caps,
                Err(reason) => {
                    let name = format!("{}::backend_factory", suite.name());
                    trials.push(Trial::test(name, move || Err(Failed::from(reason))));
                    continue;
                }
            };
            let cases = crate::cases::all()
                .into_iter()
                .chain(self.extra.iter().copied())
                .filter(|case| suite.includes(case));
            for case in cases {
                let bucket = if case.starts_early() {
                    &mut early
                } else {
                    &mut trials
                };
                let name = format!("{}::{}", suite.name(), case.id());
                if let Some(reason) = suite.skip_reason(&case, &capabilities) {
                    if !listing {
                        eprintln!("skipping {name}: {reason}");
                    }
                    let message = format!("not applicable: {reason}");
                    bucket.push(
                        Trial::test(name, move || Err(Failed::from(message)))
                            .with_ignored_flag(true),
                    );
                    continue;
                }
                let expectation = baseline
                    .and_then(|baseline| baseline.expectation(suite.name(), &case.id()))
                    .cloned();
                let is_expected = expectation.is_some();
                let suite = suite.clone();
                let capabilities = capabilities.clone();
                let run_id = run_id.clone();
                let expected = expected.clone();
                let trial = Trial::test(name.clone(), move || {
                    let outcome = run_case(&suite, &case, &capabilities, &run_id, seed);
                    match (verdict_for(expectation.as_ref(), &outcome), outcome) {
                        (Verdict::ExpectedFailure(reason), _) => {
                            if let Ok(mut list) = expected.lock() {
                                list.push(format!("{name}: {reason}"));
                            }
                            Ok(())
                        }
                        (Verdict::UnexpectedPass(reason), _) => Err(Failed::from(format!(
                            "passed, but the baseline expects it to fail ({reason}): \
                             remove its entry so the rule stays enforced"
                        ))),
                        (_, Outcome::Failed(failure)) => {
                            Err(Failed::from(describe_failure(&case, &failure)))
                        }
                        (_, Outcome::Skipped(reason)) => {
                            Err(Failed::from(format!("not applicable: {reason}")))
                        }
                        (_, Outcome::Passed) => Ok(()),
                    }
                });
                bucket.push(if is_expected {
                    trial.with_kind(EXPECTED_FAILURE_KIND)
                } else {
                    trial
                });
            }
        }
        early.extend(trials);
        early
    }
}
