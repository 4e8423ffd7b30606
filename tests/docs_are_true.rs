//! README.md must list every registered conformance case, and nothing that is not one.

use std::collections::BTreeSet;

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

#[test]
fn readme_lists_exactly_the_registered_cases() {
    let registered: BTreeSet<String> = cachekit_conformance::cases::all()
        .iter()
        .map(|case| case.id())
        .collect();
    let readme = readme();
    let listed: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|id| id.contains("::"))
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = registered.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&registered).collect();
    assert!(missing.is_empty(), "cases missing from README: {missing:?}");
    assert!(
        stale.is_empty(),
        "README lists cases that do not exist: {stale:?}"
    );
}

#[test]
fn readme_test_command_is_the_one_ci_runs() {
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run"))
        .unwrap_or_default();
    assert!(readme().contains("cargo xtask test-all"));
    assert!(
        ci.contains("cargo xtask test-all"),
        ".ci/run must call the README's test command"
    );
}
