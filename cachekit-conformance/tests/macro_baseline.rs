//! `conformance_tests!` with `baseline = ..`: a store with a known flaw (it refuses `~`
//! in keys without declaring it) runs the whole matrix, and its one known failure is an
//! `[expected failure]`, so this binary passes; a new failure or an unexpected pass would
//! fail it (see `tests/harness.rs`).

mod support;

use support::TildeShy;

cachekit_conformance::conformance_tests!(
    tilde_shy => async { TildeShy::new(true) },
    baseline = "tests/tilde-shy-baseline.toml",
);
