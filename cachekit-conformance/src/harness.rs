//! The `cargo test` harness behind [`conformance_tests!`](crate::conformance_tests).
//!
//! Built on libtest-mimic, so every case is a real test with its own name
//! (`suite::family::case`), filters and `--exact` work, and cargo-nextest can list and run
//! cases one by one. Cases the backend's capabilities exclude are *ignored* tests, never
//! passes; their reasons are printed before the run.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::runner::{describe_failure, run_case, seed_from_env, Outcome, RunId, Suite};

/// Cases run at once unless `--test-threads` says otherwise: they mostly wait on I/O and
/// ttls, so running many at once keeps the matrix to about one ttl window.
pub const DEFAULT_TEST_THREADS: usize = 64;

/// Runs `suites` as a libtest-compatible test binary; the body of the macro's `main`.
pub fn main(suites: Vec<Suite>) -> ExitCode {
    main_with_threads(suites, DEFAULT_TEST_THREADS)
}

/// [`main`] with another default for the cases run at once, for a store that serves fewer
/// requests in parallel (an emulator, a single-threaded server); `--test-threads` still wins.
pub fn main_with_threads(suites: Vec<Suite>, default_test_threads: usize) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(default_test_threads);
    }
    let seed = seed_from_env();
    let run_id = RunId::new();
    let listing = args.list;
    let mut trials = Vec::new();
    for suite in suites {
        let capabilities = match suite.capabilities() {
            Ok(caps) => caps,
            Err(reason) => {
                let name = format!("{}::backend_factory", suite.name());
                trials.push(Trial::test(name, move || Err(Failed::from(reason))));
                continue;
            }
        };
        for case in crate::cases::all()
            .into_iter()
            .filter(|case| suite.includes(case))
        {
            let name = format!("{}::{}", suite.name(), case.id());
            if let Some(reason) = case.skip_reason(&capabilities) {
                if !listing {
                    eprintln!("skipping {name}: {reason}");
                }
                let message = format!("not applicable: {reason}");
                trials.push(
                    Trial::test(name, move || Err(Failed::from(message))).with_ignored_flag(true),
                );
                continue;
            }
            let suite = suite.clone();
            let capabilities = capabilities.clone();
            let run_id = run_id.clone();
            trials.push(Trial::test(name, move || {
                match run_case(&suite, &case, &capabilities, &run_id, seed) {
                    Outcome::Passed => Ok(()),
                    Outcome::Failed(failure) => {
                        Err(Failed::from(describe_failure(&case, &failure)))
                    }
                    Outcome::Skipped(reason) => {
                        Err(Failed::from(format!("not applicable: {reason}")))
                    }
                }
            }));
        }
    }
    if !listing {
        eprintln!(
            "cachekit conformance: seed {seed} (replay with {}={seed})",
            crate::runner::SEED_ENV
        );
    }
    libtest_mimic::run(&args, trials).exit_code()
}
