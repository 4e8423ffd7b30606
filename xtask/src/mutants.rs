//! `cargo xtask mutants`: mutation testing of our own backends with their conformance
//! suites as the tests — does the kit catch real mutations of real code?
//!
//! Runs `cargo mutants` once per target (the mutated package and the packages whose tests
//! judge it), then prints caught / missed / timeout / unviable counts and the score
//! (caught ÷ viable): the kit's score. Survivors not listed in `mutants/equivalent.txt`
//! (each with the reason no request and answer can tell it from the original) then get a
//! second pass judged by the mutated crate's own tests, for what lies outside the API (a
//! startup warning, a redacting Debug impl, a client-side bound); the command fails on any
//! survivor that passes both and is not listed. Slow (every mutant is a build and a test
//! run), so not part of `test-all`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// A package to mutate, the test package whose conformance targets judge its mutants, and
/// those targets: only the kit's suites, never the crate's own unit tests, so the score
/// says what the kit catches.
struct Target {
    package: &'static str,
    tests: &'static str,
    test_targets: &'static [&'static str],
}

const TARGETS: &[Target] = &[
    Target {
        package: "cachekit-backend-memory",
        tests: "cachekit-backend-memory",
        test_targets: &["conformance"],
    },
    Target {
        package: "cachekit-server",
        tests: "cachekit-backend-http",
        test_targets: &["conformance", "http_api", "store_limits"],
    },
    Target {
        package: "cachekit-backend-http",
        tests: "cachekit-backend-http",
        test_targets: &["conformance"],
    },
];

/// cargo-mutants' exit code when the tests fail on the unmutated tree.
const CARGO_MUTANTS_BASELINE_FAILED: i32 = 4;

/// File of survivors accepted as equivalent: `<mutant as cargo-mutants prints it> # reason`.
const EQUIVALENT: &str = "mutants/equivalent.txt";

#[derive(Debug, Default)]
struct Counts {
    caught: usize,
    missed: Vec<String>,
    timeout: usize,
    unviable: usize,
}

impl Counts {
    fn score(&self) -> f64 {
        let viable = self.caught + self.missed.len() + self.timeout;
        if viable == 0 {
            return 0.0;
        }
        // A timeout means the mutant hung the suite: the suite noticed it.
        (self.caught + self.timeout) as f64 / viable as f64
    }

    /// The kit's score once the survivors listed as equivalent (no behaviour tells them
    /// from the original, so no suite could) leave the count of viable mutants.
    fn score_without_equivalents(&self, listed: usize) -> f64 {
        let viable = (self.caught + self.missed.len() + self.timeout).saturating_sub(listed);
        if viable == 0 {
            return 0.0;
        }
        (self.caught + self.timeout) as f64 / viable as f64
    }
}

/// `only`: package names to restrict the run to (all targets when empty); `shard`: `K/N`
/// to test only every N-th mutant starting at K (a sample, for packages too slow to run whole).
pub fn run(root: &Path, only: &[String], shard: Option<&str>) -> Result<bool, String> {
    if Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .map(|out| !out.status.success())
        .unwrap_or(true)
    {
        return Err("cargo-mutants is not installed: cargo install cargo-mutants".to_owned());
    }
    let equivalent = read_equivalent(&root.join(EQUIVALENT))?;
    let mut all_pass = true;
    for target in TARGETS {
        if !only.is_empty() && !only.iter().any(|name| name == target.package) {
            continue;
        }
        let output = root.join("target/mutants").join(target.package);
        std::fs::create_dir_all(&output)
            .map_err(|err| format!("cannot create {}: {err}", output.display()))?;
        println!(
            "==> cargo mutants --package {} (judged by {} tests {})",
            target.package,
            target.tests,
            target.test_targets.join(", ")
        );
        let test_args = target.test_targets.iter().flat_map(|name| ["--test", name]);
        let status = mutants_command(root, target.package, target.tests, &output, shard)
            .arg("--")
            .args(test_args)
            .status()
            .map_err(|err| format!("cannot run cargo mutants: {err}"))?;
        // cargo-mutants exits non-zero when mutants survive; the counts below say why.
        let counts = read_counts(&output.join("mutants.out"))?;
        println!(
            "{}{}: caught {}, missed {}, timeout {}, unviable {}; the kit's score {:.1}% of viable mutants (exit {})",
            target.package,
            shard.map(|shard| format!(" (shard {shard})")).unwrap_or_default(),
            counts.caught,
            counts.missed.len(),
            counts.timeout,
            counts.unviable,
            counts.score() * 100.0,
            status.code().unwrap_or(-1)
        );
        let (listed, unlisted): (Vec<&String>, Vec<&String>) = counts
            .missed
            .iter()
            .partition(|mutant| equivalent.contains(mutant.as_str()));
        // What the kit's suites cannot see (a startup warning, a Debug impl, an internal
        // bound) the crate's own tests must: a second pass over the unlisted survivors only.
        let caught_by_own_tests = if unlisted.is_empty() {
            Vec::new()
        } else {
            println!(
                "==> the {} unlisted survivors, judged by {}'s own tests",
                unlisted.len(),
                target.package
            );
            let pattern = unlisted
                .iter()
                .map(|mutant| regex_escape(mutant))
                .collect::<Vec<_>>()
                .join("|");
            let second = output.join("own-tests");
            std::fs::create_dir_all(&second)
                .map_err(|err| format!("cannot create {}: {err}", second.display()))?;
            let status = mutants_command(root, target.package, target.package, &second, None)
                .args(["--re", &format!("^({pattern})$")])
                .status()
                .map_err(|err| format!("cannot run cargo mutants: {err}"))?;
            // Only what the second pass reports caught (or hung) counts: a baseline that
            // fails tests no mutant at all, and must not read as every survivor caught.
            if status.code() == Some(CARGO_MUTANTS_BASELINE_FAILED) {
                return Err(format!(
                    "{}'s own tests fail on the unmutated tree: no survivor could be judged \
                     (see {})",
                    target.package,
                    second.join("mutants.out/log").display()
                ));
            }
            let mutants_out = second.join("mutants.out");
            let judged: Vec<String> = read_lines(&mutants_out.join("caught.txt"))?
                .into_iter()
                .chain(read_lines(&mutants_out.join("timeout.txt"))?)
                .collect();
            unlisted
                .iter()
                .filter(|mutant| judged.contains(mutant))
                .map(|mutant| (*mutant).clone())
                .collect()
        };
        let unexplained: Vec<&&String> = unlisted
            .iter()
            .filter(|mutant| !caught_by_own_tests.contains(mutant))
            .collect();
        println!(
            "{}: of {} survivors, {} listed as equivalent at the API, {} caught by its own tests, {} unexplained",
            target.package,
            counts.missed.len(),
            listed.len(),
            caught_by_own_tests.len(),
            unexplained.len()
        );
        println!(
            "{}: the kit's score {:.1}% of viable mutants, {:.1}% of those not listed as equivalent; \
             {} of the unlisted survivors are left to the crate's own tests",
            target.package,
            counts.score() * 100.0,
            counts.score_without_equivalents(listed.len()) * 100.0,
            caught_by_own_tests.len()
        );
        for mutant in &caught_by_own_tests {
            println!("    seen only by the crate's own tests: {mutant}");
        }
        for mutant in &unexplained {
            println!("    survived everything, not listed as equivalent: {mutant}");
        }
        all_pass &= unexplained.is_empty();
    }
    Ok(all_pass)
}

/// `cargo mutants` on `package`, judged by the tests of `tests`, writing to `output`.
fn mutants_command(
    root: &Path,
    package: &str,
    tests: &str,
    output: &Path,
    shard: Option<&str>,
) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("mutants")
        .args(["--package", package])
        .args(["--test-package", tests])
        .arg("--output")
        .arg(output)
        .args(if tests == package {
            // The unmutated baseline sets the test timeout.
            &["--timeout-multiplier", "3"][..]
        } else {
            // cargo-mutants runs its baseline with the mutated package's own tests, which
            // here are not the judges: skip it, and bound each test run explicitly.
            &["--baseline", "skip", "--timeout", "120"][..]
        })
        .args(shard.iter().flat_map(|shard| ["--shard", shard]))
        // Mutants must build in cargo-mutants' own scratch target. A shared target directory
        // keeps the last mutant's artifacts under the same names as the real tree's, newer
        // than its sources, so later builds of the real tree reuse a mutated crate.
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(root);
    command
}

/// `text` as a regex matching itself literally.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    }
}

fn read_counts(dir: &Path) -> Result<Counts, String> {
    if !dir.join("outcomes.json").exists() {
        return Err(format!(
            "cargo mutants wrote no {}",
            dir.join("outcomes.json").display()
        ));
    }
    Ok(Counts {
        caught: read_lines(&dir.join("caught.txt"))?.len(),
        missed: read_lines(&dir.join("missed.txt"))?,
        timeout: read_lines(&dir.join("timeout.txt"))?.len(),
        unviable: read_lines(&dir.join("unviable.txt"))?.len(),
    })
}

fn read_equivalent(path: &Path) -> Result<BTreeSet<String>, String> {
    Ok(read_lines(path)?
        .into_iter()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(" # ").next().map(|m| m.trim().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{regex_escape, Counts};

    #[rstest::rstest]
    #[case::nothing_listed(0, 0.8)]
    #[case::listed_survivors_leave_the_count(5, 1.0)]
    #[case::more_listed_than_viable(30, 0.0)]
    fn listed_equivalents_leave_the_denominator(#[case] listed: usize, #[case] expected: f64) {
        let counts = Counts {
            caught: 18,
            missed: vec![String::new(); 5],
            timeout: 2,
            unviable: 7,
        };
        assert!((counts.score_without_equivalents(listed) - expected).abs() < 1e-9);
    }

    #[test]
    fn a_mutant_name_escapes_to_a_literal_pattern() {
        assert_eq!(
            regex_escape("lib.rs:194:9: replace f -> Option<String> with Some(\"x\".into()) && [a]{1}|b^$*+?\\"),
            "lib\\.rs:194:9: replace f -> Option<String> with Some\\(\"x\"\\.into\\(\\)\\) && \\[a\\]\\{1\\}\\|b\\^\\$\\*\\+\\?\\\\"
        );
    }
}
