//! `cargo xtask mutants`: mutation testing of our own backends with their conformance
//! suites as the tests — does the kit catch real mutations of real code?
//!
//! Runs `cargo mutants` once per target (the mutated package and the packages whose tests
//! judge it), then prints caught / missed / timeout / unviable counts and the kit's score
//! (caught ÷ viable). Every survivor must be accounted for in one of two committed lists,
//! each line the mutant as cargo-mutants prints it and, after ` # `, why:
//! - `mutants/equivalent.txt`: no request and answer can tell it from the original;
//! - `mutants/unreached.txt`: no request of the kit's suites can show the difference (a
//!   start-up warning, a redacting Debug impl, configuration checks, a bound no answer of
//!   our server comes near).
//!
//! Survivors of the second list, and any survivor of neither, get a second pass judged by
//! the mutated crate's own tests. The command fails on a survivor those tests miss too,
//! and, on a whole run (no shard), on a survivor in neither list and on a list line that
//! names no survivor (the mutant is caught now, or the code moved): the lists stay exact.
//! Three scores are printed: over every viable mutant, without the equivalent ones, and
//! without both lists. Slow (every mutant is a build and a test run), so not part of
//! `test-all`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// A package to mutate, the test package whose conformance targets judge its mutants, and
/// those targets: only the kit's suites, never the crate's own unit tests, so the score
/// says what the kit catches.
struct Target {
    package: &'static str,
    /// Where its sources live, as cargo-mutants names them: the lists' lines for this
    /// package start with it.
    source_dir: &'static str,
    tests: &'static str,
    test_targets: &'static [&'static str],
}

const TARGETS: &[Target] = &[
    Target {
        package: "cachekit-backend-memory",
        source_dir: "backends/memory/",
        tests: "cachekit-backend-memory",
        test_targets: &["conformance"],
    },
    Target {
        package: "cachekit-server",
        source_dir: "cachekit-server/",
        tests: "cachekit-backend-http",
        test_targets: &["conformance", "http_api", "store_limits"],
    },
    Target {
        package: "cachekit-backend-http",
        source_dir: "backends/http/",
        tests: "cachekit-backend-http",
        test_targets: &["conformance"],
    },
];

/// cargo-mutants' exit code when the tests fail on the unmutated tree.
const CARGO_MUTANTS_BASELINE_FAILED: i32 = 4;

/// Survivors accepted as equivalent: `<mutant as cargo-mutants prints it> # reason`.
const EQUIVALENT: &str = "mutants/equivalent.txt";
/// Survivors in code no request of the kit's suites reaches, in the same form.
const UNREACHED: &str = "mutants/unreached.txt";

#[derive(Debug, Default)]
struct Counts {
    caught: usize,
    missed: Vec<String>,
    timeout: Vec<String>,
    unviable: usize,
}

impl Counts {
    fn score(&self) -> f64 {
        self.score_without(0)
    }

    /// The kit's score once `listed` survivors (equivalent ones, or ones no request of the
    /// suites reaches) leave the count of viable mutants. A timeout counts as caught: the
    /// mutant hung the suite, and the suite noticed.
    fn score_without(&self, listed: usize) -> f64 {
        let viable = (self.caught + self.missed.len() + self.timeout.len()).saturating_sub(listed);
        if viable == 0 {
            return 0.0;
        }
        (self.caught + self.timeout.len()) as f64 / viable as f64
    }
}

/// The survivors of one target, sorted by which list accounts for them.
#[derive(Debug, Default, PartialEq)]
struct Survivors {
    equivalent: Vec<String>,
    unreached: Vec<String>,
    unlisted: Vec<String>,
}

impl Survivors {
    fn sort(
        missed: &[String],
        equivalent: &BTreeSet<String>,
        unreached: &BTreeSet<String>,
    ) -> Self {
        let mut sorted = Survivors::default();
        for mutant in missed {
            let list = if equivalent.contains(mutant) {
                &mut sorted.equivalent
            } else if unreached.contains(mutant) {
                &mut sorted.unreached
            } else {
                &mut sorted.unlisted
            };
            list.push(mutant.clone());
        }
        sorted
    }
}

/// Lines of `listed` for the package under `source_dir` that name no mutant of this run
/// left uncaught (`not_caught`): the kit catches that mutant now, or the code moved and
/// the line must follow it.
fn stale_lines<'a>(
    listed: &'a BTreeSet<String>,
    source_dir: &str,
    not_caught: &[String],
) -> Vec<&'a String> {
    listed
        .iter()
        .filter(|line| line.starts_with(source_dir) && !not_caught.contains(line))
        .collect()
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
    let equivalent = read_listed(&root.join(EQUIVALENT))?;
    let unreached = read_listed(&root.join(UNREACHED))?;
    if let Some(twice) = equivalent.intersection(&unreached).next() {
        return Err(format!(
            "listed in both {EQUIVALENT} and {UNREACHED}: {twice}"
        ));
    }
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
            counts.timeout.len(),
            counts.unviable,
            counts.score() * 100.0,
            status.code().unwrap_or(-1)
        );
        let survivors = Survivors::sort(&counts.missed, &equivalent, &unreached);
        // What the kit's suites cannot see (a startup warning, a Debug impl, an internal
        // bound) the crate's own tests must: a second pass over those survivors only.
        let to_judge: Vec<&String> = survivors
            .unreached
            .iter()
            .chain(&survivors.unlisted)
            .collect();
        let caught_by_own_tests = if to_judge.is_empty() {
            Vec::new()
        } else {
            println!(
                "==> the {} survivors not listed as equivalent, judged by {}'s own tests",
                to_judge.len(),
                target.package
            );
            judged_by_own_tests(root, target.package, &output.join("own-tests"), &to_judge)?
        };
        let missed_by_own_tests = |list: &[String]| -> Vec<String> {
            list.iter()
                .filter(|mutant| !caught_by_own_tests.contains(mutant))
                .cloned()
                .collect()
        };
        let unreached_and_missed = missed_by_own_tests(&survivors.unreached);
        let unexplained = missed_by_own_tests(&survivors.unlisted);
        println!(
            "{}: of {} survivors, {} listed as equivalent, {} listed as unreached by the kit's requests, \
             {} listed in neither; the crate's own tests catch {} of the {} judged again",
            target.package,
            counts.missed.len(),
            survivors.equivalent.len(),
            survivors.unreached.len(),
            survivors.unlisted.len(),
            caught_by_own_tests.len(),
            to_judge.len()
        );
        println!(
            "{}: the kit's score {:.1}% of viable mutants, {:.1}% without the equivalent ones, \
             {:.1}% without both lists",
            target.package,
            counts.score() * 100.0,
            counts.score_without(survivors.equivalent.len()) * 100.0,
            counts.score_without(survivors.equivalent.len() + survivors.unreached.len()) * 100.0,
        );
        for mutant in &survivors.unlisted {
            if caught_by_own_tests.contains(mutant) {
                println!("    listed in neither, seen only by the crate's own tests: {mutant}");
            }
        }
        for mutant in &unreached_and_missed {
            println!("    listed as unreached, but the crate's own tests miss it too: {mutant}");
        }
        for mutant in &unexplained {
            println!("    survived everything, listed in neither: {mutant}");
        }
        all_pass &= unexplained.is_empty() && unreached_and_missed.is_empty();
        // A sample sees only some survivors: only a whole run can hold the lists to account.
        if shard.is_none() {
            // A listed mutant that hung the suite this time (the machine was slow) may
            // survive the next run: only one that was caught outright makes its line stale.
            let not_caught = [counts.missed.as_slice(), &counts.timeout].concat();
            let mut stale = 0;
            for (path, list) in [(EQUIVALENT, &equivalent), (UNREACHED, &unreached)] {
                for line in stale_lines(list, target.source_dir, &not_caught) {
                    println!(
                        "    {path} names no survivor of this run (caught now, or moved): {line}"
                    );
                    stale += 1;
                }
            }
            if !survivors.unlisted.is_empty() || stale > 0 {
                println!(
                    "{}: {} survivors in neither list and {stale} list lines naming no \
                     survivor: update {EQUIVALENT} or {UNREACHED}",
                    target.package,
                    survivors.unlisted.len()
                );
                all_pass = false;
            }
        }
    }
    Ok(all_pass)
}

/// Runs `package`'s own tests against just `mutants`, writing to `output`, and returns the
/// ones they catch (or hang).
fn judged_by_own_tests(
    root: &Path,
    package: &str,
    output: &Path,
    mutants: &[&String],
) -> Result<Vec<String>, String> {
    let pattern = mutants
        .iter()
        .map(|mutant| regex_escape(mutant))
        .collect::<Vec<_>>()
        .join("|");
    std::fs::create_dir_all(output)
        .map_err(|err| format!("cannot create {}: {err}", output.display()))?;
    let status = mutants_command(root, package, package, output, None)
        .args(["--re", &format!("^({pattern})$")])
        .status()
        .map_err(|err| format!("cannot run cargo mutants: {err}"))?;
    // Only what this pass reports caught (or hung) counts: a baseline that fails tests no
    // mutant at all, and must not read as every survivor caught.
    if status.code() == Some(CARGO_MUTANTS_BASELINE_FAILED) {
        return Err(format!(
            "{package}'s own tests fail on the unmutated tree: no survivor could be judged \
             (see {})",
            output.join("mutants.out/log").display()
        ));
    }
    let mutants_out = output.join("mutants.out");
    let judged: Vec<String> = read_lines(&mutants_out.join("caught.txt"))?
        .into_iter()
        .chain(read_lines(&mutants_out.join("timeout.txt"))?)
        .collect();
    Ok(mutants
        .iter()
        .filter(|mutant| judged.contains(mutant))
        .map(|mutant| (*mutant).clone())
        .collect())
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
        timeout: read_lines(&dir.join("timeout.txt"))?,
        unviable: read_lines(&dir.join("unviable.txt"))?.len(),
    })
}

/// The mutants a list names: each line's text before ` # `; `#` lines are comments.
fn read_listed(path: &Path) -> Result<BTreeSet<String>, String> {
    Ok(read_lines(path)?
        .into_iter()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(" # ").next().map(|m| m.trim().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{regex_escape, stale_lines, Counts, Survivors};

    fn set(lines: &[&str]) -> BTreeSet<String> {
        lines.iter().map(|line| (*line).to_owned()).collect()
    }

    #[rstest::rstest]
    #[case::nothing_listed(0, 0.8)]
    #[case::listed_survivors_leave_the_count(5, 1.0)]
    #[case::more_listed_than_viable(30, 0.0)]
    fn listed_survivors_leave_the_denominator(#[case] listed: usize, #[case] expected: f64) {
        let counts = Counts {
            caught: 18,
            missed: vec![String::new(); 5],
            timeout: vec![String::new(); 2],
            unviable: 7,
        };
        assert!((counts.score_without(listed) - expected).abs() < 1e-9);
    }

    #[rstest::rstest]
    #[case::equivalent("a.rs:1:1: x", Survivors { equivalent: vec!["a.rs:1:1: x".into()], ..Survivors::default() })]
    #[case::unreached("a.rs:2:1: y", Survivors { unreached: vec!["a.rs:2:1: y".into()], ..Survivors::default() })]
    #[case::in_neither_list("a.rs:3:1: z", Survivors { unlisted: vec!["a.rs:3:1: z".into()], ..Survivors::default() })]
    #[case::same_text_on_another_line("a.rs:9:1: x", Survivors { unlisted: vec!["a.rs:9:1: x".into()], ..Survivors::default() })]
    fn each_survivor_is_sorted_by_its_list(#[case] survivor: &str, #[case] expected: Survivors) {
        let sorted = Survivors::sort(
            &[survivor.to_owned()],
            &set(&["a.rs:1:1: x"]),
            &set(&["a.rs:2:1: y"]),
        );
        assert_eq!(sorted, expected);
    }

    #[rstest::rstest]
    #[case::still_a_survivor("srv/a.rs:1:1: x", &["srv/a.rs:1:1: x"], false)]
    #[case::caught_or_moved("srv/a.rs:1:1: x", &["srv/a.rs:2:1: x"], true)]
    #[case::another_package("cli/a.rs:1:1: x", &[], false)]
    fn a_line_naming_no_survivor_of_its_package_is_stale(
        #[case] line: &str,
        #[case] missed: &[&str],
        #[case] stale: bool,
    ) {
        let listed = set(&[line]);
        let missed: Vec<String> = missed.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(!stale_lines(&listed, "srv/", &missed).is_empty(), stale);
    }

    #[test]
    fn a_mutant_name_escapes_to_a_literal_pattern() {
        assert_eq!(
            regex_escape("lib.rs:194:9: replace f -> Option<String> with Some(\"x\".into()) && [a]{1}|b^$*+?\\"),
            "lib\\.rs:194:9: replace f -> Option<String> with Some\\(\"x\"\\.into\\(\\)\\) && \\[a\\]\\{1\\}\\|b\\^\\$\\*\\+\\?\\\\"
        );
    }
}
