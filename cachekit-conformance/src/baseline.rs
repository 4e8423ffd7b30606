//! Expected-failure baselines: the rules a partial implementation is known to break, each
//! with the reason, committed beside its tests.
//!
//! A run judged against a baseline fails only on a *new* failure or on an *unexpected
//! pass*: a rule that now holds must leave the baseline, so the list can only shrink.
//! The file is TOML:
//!
//! ```toml
//! version = 1
//!
//! [[expected_failure]]
//! case = "ttl::fractional_ttl_is_not_rounded_to_whole_seconds"
//! suite = "http"   # optional: without it the entry applies to every suite
//! reason = "the proxy in front of the store rounds ttls to whole seconds"
//! ```
//!
//! Every entry must name a registered case (`family::case`, as `cachekit rules` lists
//! them), so a typo cannot hide a failure.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::case::Case;
use crate::runner::{Outcome, Report};

/// The only baseline format this version reads.
pub const BASELINE_VERSION: u32 = 1;

/// One rule expected to fail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// The case id, `family::case`.
    pub case: String,
    /// The suite it applies to; every suite when `None`.
    #[serde(default)]
    pub suite: Option<String>,
    /// Why it fails, in the backend author's words.
    pub reason: String,
}

impl ExpectedFailure {
    fn applies_to(&self, suite: &str, case_id: &str) -> bool {
        self.case == case_id && self.suite.as_deref().is_none_or(|name| name == suite)
    }

    fn label(&self) -> String {
        match &self.suite {
            Some(suite) => format!("{suite}::{}", self.case),
            None => self.case.clone(),
        }
    }
}

/// A parsed baseline file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    version: u32,
    #[serde(default, rename = "expected_failure")]
    expected_failures: Vec<ExpectedFailure>,
}

impl Baseline {
    /// A baseline with these entries.
    pub fn new(expected_failures: Vec<ExpectedFailure>) -> Self {
        Baseline {
            version: BASELINE_VERSION,
            expected_failures,
        }
    }

    /// Parses a baseline and checks that every entry names a registered case, once.
    pub fn parse(text: &str) -> Result<Baseline, String> {
        Baseline::parse_with_extra(text, &[])
    }

    /// [`Baseline::parse`], where entries may also name the author's `extra` cases.
    pub fn parse_with_extra(text: &str, extra: &[Case]) -> Result<Baseline, String> {
        let baseline: Baseline =
            toml::from_str(text).map_err(|err| format!("not a valid baseline: {err}"))?;
        if baseline.version != BASELINE_VERSION {
            return Err(format!(
                "baseline version {} is not supported (this kit reads version {BASELINE_VERSION})",
                baseline.version
            ));
        }
        let known: BTreeSet<String> = crate::cases::all()
            .iter()
            .chain(extra)
            .map(Case::id)
            .collect();
        let mut seen = BTreeSet::new();
        for entry in &baseline.expected_failures {
            if !known.contains(&entry.case) {
                return Err(format!(
                    "baseline entry `{}` names no registered case (`cachekit rules` lists them)",
                    entry.case
                ));
            }
            if entry.reason.trim().is_empty() {
                return Err(format!(
                    "baseline entry `{}` gives no reason",
                    entry.label()
                ));
            }
            if !seen.insert(entry.label()) {
                return Err(format!(
                    "baseline entry `{}` is listed twice",
                    entry.label()
                ));
            }
        }
        Ok(baseline)
    }

    /// Reads and parses a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the baseline {}: {err}", path.display()))?;
        Baseline::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// The entries, in file order.
    pub fn expected_failures(&self) -> &[ExpectedFailure] {
        &self.expected_failures
    }

    /// The entry that expects `case_id` to fail in `suite`, if any.
    pub fn expectation(&self, suite: &str, case_id: &str) -> Option<&ExpectedFailure> {
        self.expected_failures
            .iter()
            .find(|entry| entry.applies_to(suite, case_id))
    }

    /// A baseline expecting exactly the failures in `reports`, each reason recording the
    /// check that failed (edit them into the real reasons before committing).
    pub fn recording(reports: &[Report]) -> Baseline {
        let expected_failures = reports
            .iter()
            .flat_map(|report| {
                report
                    .cases
                    .iter()
                    .filter_map(move |entry| match &entry.outcome {
                        Outcome::Failed(failure) => Some(ExpectedFailure {
                            case: entry.case.id(),
                            suite: Some(report.suite.clone()),
                            reason: format!("recorded failing: {}", failure.check()),
                        }),
                        _ => None,
                    })
            })
            .collect();
        Baseline::new(expected_failures)
    }

    /// The baseline as TOML, in the format [`Baseline::parse`] reads.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Rules this backend is known to break, each with the reason.\n\
             # A run with this baseline fails only on a new failure or an unexpected pass.\n",
        );
        let _ = writeln!(out, "version = {BASELINE_VERSION}");
        for entry in &self.expected_failures {
            out.push_str("\n[[expected_failure]]\n");
            let _ = writeln!(out, "case = {}", toml_string(&entry.case));
            if let Some(suite) = &entry.suite {
                let _ = writeln!(out, "suite = {}", toml_string(suite));
            }
            let _ = writeln!(out, "reason = {}", toml_string(&entry.reason));
        }
        out
    }
}

/// A TOML basic string: quoted, with quotes, backslashes and control characters escaped.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How one case ended once the baseline is taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed, and was not expected to fail.
    Passed,
    /// Failed, and the baseline does not expect it: a regression.
    NewFailure,
    /// Failed, as the baseline expects, for this reason.
    ExpectedFailure(String),
    /// Passed although the baseline expects it to fail: the entry must go.
    UnexpectedPass(String),
    /// Not applicable to the backend's declared capabilities.
    Skipped,
}

impl Verdict {
    /// Whether this verdict fails the run.
    pub fn fails_the_run(&self) -> bool {
        matches!(self, Verdict::NewFailure | Verdict::UnexpectedPass(_))
    }
}

/// The verdict for a case of `suite` with `outcome`, under `baseline` (none: every
/// failure is new).
pub fn verdict(
    baseline: Option<&Baseline>,
    suite: &str,
    case_id: &str,
    outcome: &Outcome,
) -> Verdict {
    verdict_for(
        baseline.and_then(|baseline| baseline.expectation(suite, case_id)),
        outcome,
    )
}

/// The verdict for `outcome` when `expectation` is the baseline entry for its case.
pub fn verdict_for(expectation: Option<&ExpectedFailure>, outcome: &Outcome) -> Verdict {
    match (outcome, expectation) {
        (Outcome::Skipped(_), _) => Verdict::Skipped,
        (Outcome::Passed, None) => Verdict::Passed,
        (Outcome::Passed, Some(entry)) => Verdict::UnexpectedPass(entry.reason.clone()),
        (Outcome::Failed(_), None) => Verdict::NewFailure,
        (Outcome::Failed(_), Some(entry)) => Verdict::ExpectedFailure(entry.reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::failure::Failure;

    const A_CASE: &str = "crud::set_then_get_returns_the_value";

    fn baseline(text: &str) -> Result<Baseline, String> {
        Baseline::parse(text)
    }

    #[test]
    fn a_written_baseline_reads_back_the_same() {
        let written = Baseline::new(vec![
            ExpectedFailure {
                case: A_CASE.to_owned(),
                suite: Some("http".to_owned()),
                reason: "quotes \" and \\ and\nnewlines survive".to_owned(),
            },
            ExpectedFailure {
                case: "crud::overwrite_replaces_the_value".to_owned(),
                suite: None,
                reason: "every suite".to_owned(),
            },
        ]);
        assert_eq!(baseline(&written.to_toml()), Ok(written));
    }

    #[rstest]
    #[case::unknown_case(
        "version = 1\n[[expected_failure]]\ncase = \"crud::no_such_case\"\nreason = \"r\"\n",
        "names no registered case"
    )]
    #[case::missing_reason(
        "version = 1\n[[expected_failure]]\ncase = \"crud::set_then_get_returns_the_value\"\n",
        "missing field `reason`"
    )]
    #[case::empty_reason(
        "version = 1\n[[expected_failure]]\ncase = \"crud::set_then_get_returns_the_value\"\nreason = \" \"\n",
        "gives no reason"
    )]
    #[case::listed_twice(
        "version = 1\n[[expected_failure]]\ncase = \"crud::set_then_get_returns_the_value\"\nreason = \"a\"\n[[expected_failure]]\ncase = \"crud::set_then_get_returns_the_value\"\nreason = \"b\"\n",
        "listed twice"
    )]
    #[case::unknown_field(
        "version = 1\n[[expected_failure]]\ncase = \"crud::set_then_get_returns_the_value\"\nreason = \"r\"\nrule = \"x\"\n",
        "unknown field `rule`"
    )]
    #[case::future_version("version = 2\n", "version 2 is not supported")]
    #[case::no_version("", "missing field `version`")]
    fn a_bad_baseline_is_refused_with_the_reason(#[case] text: &str, #[case] why: &str) {
        let err = baseline(text).expect_err("refused");
        assert!(err.contains(why), "{err}");
    }

    #[rstest]
    #[case::pass_not_expected(None, Outcome::Passed, Verdict::Passed)]
    #[case::failure_not_expected(None, Outcome::Failed(Failure::new("c")), Verdict::NewFailure)]
    #[case::failure_expected(Some(None), Outcome::Failed(Failure::new("c")), Verdict::ExpectedFailure("r".to_owned()))]
    #[case::pass_expected(Some(None), Outcome::Passed, Verdict::UnexpectedPass("r".to_owned()))]
    #[case::expected_in_this_suite(Some(Some("http")), Outcome::Failed(Failure::new("c")), Verdict::ExpectedFailure("r".to_owned()))]
    #[case::expected_in_another_suite(
        Some(Some("memory")),
        Outcome::Failed(Failure::new("c")),
        Verdict::NewFailure
    )]
    #[case::skipped_whatever_is_expected(Some(None), Outcome::Skipped("x".to_owned()), Verdict::Skipped)]
    fn verdicts(
        #[case] entry_suite: Option<Option<&str>>,
        #[case] outcome: Outcome,
        #[case] expected: Verdict,
    ) {
        let baseline = entry_suite.map(|suite| {
            Baseline::new(vec![ExpectedFailure {
                case: A_CASE.to_owned(),
                suite: suite.map(str::to_owned),
                reason: "r".to_owned(),
            }])
        });
        let got = verdict(baseline.as_ref(), "http", A_CASE, &outcome);
        assert_eq!(got, expected);
    }
}
