//! README.md must be true: its rule list is the registry's, and its test command is CI's.

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
const RULES_START: &str = "<!-- rules:start (generated from the registry; CACHEKIT_BLESS=1 cargo test -p cachekit-tests --test docs_are_true rewrites it) -->\n";
const RULES_END: &str = "<!-- rules:end -->";

fn readme() -> String {
    std::fs::read_to_string(README).unwrap_or_else(|err| panic!("cannot read {README}: {err}"))
}

/// The README's rule tables are exactly what the registry generates: every case, its
/// sentence and its gates, written once in `cases/mod.rs`.
#[test]
fn readme_rule_list_is_generated_from_the_registry() {
    let readme = readme();
    let (Some(start), Some(end)) = (readme.find(RULES_START), readme.find(RULES_END)) else {
        panic!("README.md lacks the rule-list markers {RULES_START:?} … {RULES_END:?}");
    };
    let listed = &readme[start + RULES_START.len()..end];
    let generated = cachekit_conformance::cases::rules_markdown();
    if listed == generated {
        return;
    }
    if std::env::var_os("CACHEKIT_BLESS").is_some() {
        let updated = format!(
            "{}{RULES_START}{generated}{}",
            &readme[..start],
            &readme[end..]
        );
        std::fs::write(README, updated).unwrap_or_else(|err| panic!("cannot write: {err}"));
        return;
    }
    let first_difference = listed
        .lines()
        .zip(generated.lines())
        .find(|(a, b)| a != b)
        .map_or_else(
            || "one list is a prefix of the other".to_owned(),
            |(a, b)| format!("README: {a}\nregistry: {b}"),
        );
    panic!(
        "README's rule list is not the registry's; rerun with CACHEKIT_BLESS=1 to regenerate.\n\
         first difference:\n{first_difference}"
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

/// The baseline example in the README is one the kit accepts: its case exists, its fields
/// are the ones the parser reads.
#[test]
fn readme_baseline_example_parses() {
    let readme = readme();
    let start = readme
        .find("```toml\n# conformance-baseline.toml\n")
        .expect("README shows a baseline example");
    let body = &readme[start + "```toml\n".len()..];
    let example = &body[..body.find("```").expect("the example block ends")];
    let baseline = cachekit_conformance::baseline::Baseline::parse(example)
        .unwrap_or_else(|err| panic!("the README's baseline example is refused: {err}"));
    assert_eq!(baseline.expected_failures().len(), 1);
}

/// The README's quick start installs the CLI and checks the embedded defaults with it.
#[test]
fn readme_quick_start_uses_the_cli() {
    let readme = readme();
    assert!(readme.contains("cargo install --path cachekit-cli\ncachekit check memory\n"));
}
