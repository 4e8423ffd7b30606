//! The harness behind `conformance_tests!`: baselines turn known failures into expected
//! ones and fail on new failures and unexpected passes; a harness with nothing to run fails;
//! extra cases run and are judged like the kit's.

mod support;

use std::process::ExitCode;

use cachekit_conformance::harness::{Arguments, Harness};
use cachekit_conformance::{extra_case, CaseResult, Ctx, Failure, Suite};
use support::TildeShy;

/// The one kit case the `~` flaw breaks, and only it when the run is filtered to it.
const TILDE_CASE: &str = "key_characters::tilde";

fn args(filter: &str) -> Arguments {
    Arguments {
        filter: Some(filter.to_owned()),
        exact: true,
        test_threads: Some(2),
        // Terse: the nested run's `test NAME ... FAILED` lines would otherwise reach the
        // outer run's stdout, where `cargo xtask test-all` counts conformance results.
        quiet: true,
        ..Arguments::default()
    }
}

fn suite(refuses_tilde: bool) -> Suite {
    Suite::new("shy", move || async move { TildeShy::new(refuses_tilde) })
}

fn baseline_expecting(case: &str) -> String {
    format!("version = 1\n\n[[expected_failure]]\ncase = \"{case}\"\nreason = \"`~` is reserved by our proxy\"\n")
}

#[test]
fn the_flawed_case_exists_in_the_registry() {
    assert!(cachekit_conformance::cases::all()
        .iter()
        .any(|case| case.id() == TILDE_CASE));
}

#[test]
fn a_new_failure_fails_the_run() {
    let code = Harness::new()
        .suite(suite(true))
        .run_with(args(&format!("shy::{TILDE_CASE}")));
    assert_ne!(code, ExitCode::SUCCESS);
}

#[test]
fn a_failure_the_baseline_expects_passes_the_run() {
    let code = Harness::new()
        .suite(suite(true))
        .baseline("baseline.toml", baseline_expecting(TILDE_CASE))
        .run_with(args(&format!("shy::{TILDE_CASE}")));
    assert_eq!(code, ExitCode::SUCCESS);
}

#[test]
fn a_pass_the_baseline_does_not_expect_fails_the_run() {
    let code = Harness::new()
        .suite(suite(false))
        .baseline("baseline.toml", baseline_expecting(TILDE_CASE))
        .run_with(args(&format!("shy::{TILDE_CASE}")));
    assert_ne!(code, ExitCode::SUCCESS);
}

#[test]
fn a_baseline_naming_no_case_fails_before_running() {
    let code = Harness::new()
        .suite(suite(false))
        .baseline(
            "baseline.toml",
            baseline_expecting("key_characters::no_such_case"),
        )
        .run_with(args(&format!("shy::{TILDE_CASE}")));
    assert_ne!(code, ExitCode::SUCCESS);
}

#[test]
fn a_harness_with_nothing_to_run_fails() {
    assert_ne!(
        Harness::new().run_with(Arguments {
            quiet: true,
            ..Arguments::default()
        }),
        ExitCode::SUCCESS
    );
}

async fn always_holds(_ctx: Ctx) -> CaseResult {
    Ok(())
}

async fn never_holds(_ctx: Ctx) -> CaseResult {
    Err(Failure::new("an extra rule that never holds"))
}

#[test]
fn extra_cases_run_beside_the_kits_and_are_judged_alike() {
    let passing = Harness::new()
        .suite(suite(false))
        .extra([extra_case!(always_holds, "an extra rule that holds")])
        .run_with(args("shy::extra::always_holds"));
    assert_eq!(passing, ExitCode::SUCCESS);
    let failing = Harness::new()
        .suite(suite(false))
        .extra([extra_case!(never_holds, "an extra rule that never holds")])
        .run_with(args("shy::extra::never_holds"));
    assert_ne!(failing, ExitCode::SUCCESS);
}
