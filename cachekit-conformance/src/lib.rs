//! A conformance kit for cachekit backends.
//!
//! One line in a backend crate's `tests/` generates the whole matrix, one named test per
//! rule, gated by the capabilities the backend declares:
//!
//! ```toml
//! # Cargo.toml of the backend crate
//! [dev-dependencies]
//! cachekit-conformance = "0.1"
//!
//! [[test]]
//! name = "conformance"
//! harness = false
//! ```
//!
//! ```no_run
//! // tests/conformance.rs
//! cachekit_conformance::conformance_tests!(memory => async {
//!     cachekit_backend_memory::MemoryBackend::new()
//! });
//! ```
//!
//! `cargo test --test conformance` then lists tests such as
//! `memory::ttl::expired_entry_is_absent_from_exists`; a failure names the rule, the check,
//! the key and value involved, what was expected and what came back.
//!
//! # How it is put together
//! Cases are ordinary `async fn(Ctx) -> CaseResult` functions in [`cases`], one module per
//! rule family. [`cases::all`] is the registry. The macro only registers the registry's
//! cases with a libtest-compatible harness ([`harness`]); [`run_suite`] runs the same cases
//! programmatically and returns a [`Report`], which is what command-line validation uses.
//!
//! Capability gating happens when the test list is built: a case whose needs the backend
//! does not declare becomes an *ignored* test, and its reason is printed, so an excluded
//! rule is never counted as passed.
//!
//! Backends that declare [`Clock::Tokio`](cachekit_core::Clock::Tokio) run their ttl cases
//! on a paused tokio clock, at no wall-time cost; all others wait for real, with every ttl
//! case running concurrently so the matrix waits about one ttl window in total.

pub mod baseline;
mod case;
pub mod cases;
mod ctx;
mod declared;
pub mod export;
mod failure;
pub mod fault_proxy;
pub mod harness;
pub mod history;
pub mod matrix;
mod runner;
pub mod soak;
mod suite;

pub use case::{Case, Family, Need, SuiteKind, Timing};
pub use ctx::api::ConnectionTimeouts;
#[cfg(feature = "http-faults")]
pub use ctx::faults::FaultTarget;
pub use ctx::{expect_error, Ctx, Observation, TtlWindow, OBSERVATION_ATTEMPTS};
pub use declared::WithCapabilities;
pub use failure::{Answer, CaseResult, Failure, Operation, SEED_ENV};
pub use runner::{
    describe_failure, run_case, run_suite, seed_from_env, CaseReport, Outcome, Progress, Report,
    RunId, RunOptions, CASE_TIMEOUT_ENV,
};
pub use suite::Suite;

/// Generates a test binary's `main` that runs the conformance matrix for each named backend.
///
/// Takes `name => factory` pairs, where `factory` is an async expression that builds the
/// backend. It is evaluated once per case, inside that case's runtime. The test target
/// needs `harness = false` in `Cargo.toml`.
///
/// ```no_run
/// use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
///
/// cachekit_conformance::conformance_tests!(
///     memory => async { MemoryBackend::new() },
///     memory_bounded => async {
///         MemoryBackend::with_config(MemoryConfig { capacity: Some(10_000), ..Default::default() })
///     },
/// );
/// ```
///
/// Two options may follow the suites:
/// - `baseline = "tests/conformance-baseline.toml"` (a path from the crate root, read at
///   compile time): rules known to fail, each with its reason; see [`baseline`]. An expected
///   failure runs as an `[expected failure]` test, and the run fails on a new failure or on
///   an unexpected pass.
/// - `extra = [case, ..]`: the author's own backend-specific cases, built with
///   [`extra_case!`], run in every backend suite and reported like the kit's (family `extra`).
///
/// ```no_run
/// use cachekit_backend_memory::MemoryBackend;
/// use cachekit_conformance::{CaseResult, Ctx};
///
/// /// A backend-specific rule, checked beside the kit's.
/// async fn a_fresh_store_is_empty(ctx: Ctx) -> CaseResult {
///     ctx.expect_absent("a key never written", &ctx.key("k")).await
/// }
///
/// cachekit_conformance::conformance_tests!(
///     memory => async { MemoryBackend::new() },
///     extra = [cachekit_conformance::extra_case!(a_fresh_store_is_empty, "a fresh store holds nothing")],
/// );
/// ```
///
/// With the `http-faults` feature, `name => http_faults(|target| async move { .. })` adds
/// the fault-injection family for a backend that speaks the cachekit HTTP API; see
/// [`FaultTarget`]. `name => http_api(url, token)` checks a running HTTP service
/// on the wire, with raw requests.
#[macro_export]
macro_rules! conformance_tests {
    (@build [$($chain:tt)*]) => {
        fn main() -> ::std::process::ExitCode {
            $crate::harness::Harness::new() $($chain)* .run()
        }
    };
    (@build [$($chain:tt)*] baseline = $path:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@build [
            $($chain)* .baseline(
                $path,
                ::std::include_str!(::std::concat!(::std::env!("CARGO_MANIFEST_DIR"), "/", $path)),
            )
        ] $($($rest)*)?);
    };
    (@build [$($chain:tt)*] extra = [$($case:expr),* $(,)?] $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@build [
            $($chain)* .extra([$($case),*])
        ] $($($rest)*)?);
    };
    (@build [$($chain:tt)*] $name:ident => http_api($url:expr, $token:expr) $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@build [
            $($chain)* .suite($crate::Suite::http_api(::std::stringify!($name), &$url, $token))
        ] $($($rest)*)?);
    };
    (@build [$($chain:tt)*] $name:ident => http_faults($factory:expr) $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@build [
            $($chain)* .suite($crate::Suite::http_faults(::std::stringify!($name), $factory))
        ] $($($rest)*)?);
    };
    (@build [$($chain:tt)*] $name:ident => $factory:expr $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@build [
            $($chain)* .suite($crate::Suite::new(::std::stringify!($name), || $factory))
        ] $($($rest)*)?);
    };
    ($($rest:tt)+) => {
        $crate::conformance_tests!(@build [] $($rest)+);
    };
}

/// A backend author's own case for the `extra = [..]` option of
/// [`conformance_tests!`]: `extra_case!(function, "the rule, in one sentence")`, where
/// `function` is an `async fn(Ctx) -> CaseResult` in scope. Chain
/// [`Case::with_needs`] / [`Case::with_timing`] to gate it or give it a paused clock.
#[macro_export]
macro_rules! extra_case {
    ($function:ident, $rule:expr $(,)?) => {
        $crate::Case::extra(::std::stringify!($function), $rule, |ctx| {
            ::std::boxed::Box::pin($function(ctx))
        })
    };
}
