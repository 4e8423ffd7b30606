//! The suite × rule-family matrix: counts per cell, from a programmatic [`Report`] or from
//! a test binary's libtest output (`test [kind] suite::family::case ... ok`), so a
//! workspace-wide `cargo test` needs nothing from the harness but its ordinary output.

use std::collections::BTreeMap;
use std::fmt;

use crate::case::Family;
use crate::harness::EXPECTED_FAILURE_KIND;
use crate::runner::Report;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cell {
    passed: usize,
    failed: usize,
    skipped: usize,
    expected_failures: usize,
}

/// How one case ended, as either source reports it.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
    ExpectedFailure,
}

/// Pass/fail/skip counts per (suite, family).
#[derive(Debug, Default)]
pub struct Matrix {
    cells: BTreeMap<(String, &'static str), Cell>,
    suites: Vec<String>,
}

impl Matrix {
    /// Counts `line` if it is a libtest result line of a conformance case.
    pub fn record(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test ") else {
            return;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            return;
        };
        let name = name.trim();
        let tagged = name
            .strip_prefix('[')
            .and_then(|rest| rest.strip_prefix(EXPECTED_FAILURE_KIND))
            .and_then(|rest| rest.strip_prefix(']'));
        let (name, expected_failure) = match tagged {
            Some(rest) => (rest.trim(), true),
            None => (name, false),
        };
        let mut parts = name.split("::");
        let (Some(suite), Some(family), Some(_case), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let result = match result.trim() {
            "ok" if expected_failure => Outcome::ExpectedFailure,
            "ok" => Outcome::Passed,
            "ignored" => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        self.count(suite, family, result);
    }

    fn count(&mut self, suite: &str, family: &str, result: Outcome) {
        let Some(family) = Family::ALL
            .into_iter()
            .map(Family::as_str)
            .find(|f| *f == family)
        else {
            return;
        };
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_owned());
        }
        let cell = self.cells.entry((suite.to_owned(), family)).or_default();
        match result {
            Outcome::Passed => cell.passed += 1,
            Outcome::Skipped => cell.skipped += 1,
            Outcome::Failed => cell.failed += 1,
            Outcome::ExpectedFailure => cell.expected_failures += 1,
        }
    }

    /// Counts every case of a programmatic run.
    pub fn record_report(&mut self, report: &Report, baseline: Option<&crate::baseline::Baseline>) {
        use crate::baseline::Verdict;
        for entry in &report.cases {
            let result = match crate::export::judge(baseline, report, entry) {
                Verdict::Passed => Outcome::Passed,
                Verdict::NewFailure | Verdict::UnexpectedPass(_) => Outcome::Failed,
                Verdict::Skipped => Outcome::Skipped,
                Verdict::ExpectedFailure(_) => Outcome::ExpectedFailure,
            };
            self.count(&report.suite, entry.case.family.as_str(), result);
        }
    }

    /// Failed cases over the whole matrix.
    pub fn failed(&self) -> usize {
        self.cells.values().map(|c| c.failed).sum()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.passed, self.failed, self.skipped)?;
        if self.expected_failures > 0 {
            write!(f, " +{}", self.expected_failures)?;
        }
        Ok(())
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suites.is_empty() {
            return write!(f, "conformance matrix: no conformance cases ran");
        }
        let tagged = self.cells.values().any(|c| c.expected_failures > 0);
        writeln!(
            f,
            "conformance matrix (passed/failed/skipped{}):",
            if tagged { ", +N expected failures" } else { "" }
        )?;
        write!(f, "  {:<14}", "family")?;
        for suite in &self.suites {
            write!(f, " {suite:>16}")?;
        }
        writeln!(f)?;
        let mut totals = vec![Cell::default(); self.suites.len()];
        for family in Family::ALL.into_iter().map(Family::as_str) {
            write!(f, "  {family:<14}")?;
            for (i, suite) in self.suites.iter().enumerate() {
                let cell = self
                    .cells
                    .get(&(suite.clone(), family))
                    .copied()
                    .unwrap_or_default();
                totals[i].passed += cell.passed;
                totals[i].failed += cell.failed;
                totals[i].skipped += cell.skipped;
                totals[i].expected_failures += cell.expected_failures;
                write!(f, " {:>16}", cell.to_string())?;
            }
            writeln!(f)?;
        }
        write!(f, "  {:<14}", "total")?;
        for total in totals {
            write!(f, " {:>16}", total.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_conformance_lines_and_ignores_everything_else() {
        let mut matrix = Matrix::default();
        for line in [
            "test memory::ttl::expired_entry_is_absent_from_get ... ok",
            "test memory::ttl::zero_ttl_is_invalid_argument     ... FAILED",
            "test memory::keys::declared_unrepresentable_keys_are_rejected_cleanly ... ignored",
            "test http::ttl::expired_entry_is_absent_from_get ... ok",
            "test tests::only_transient_kinds_are_retryable ... ok",
            "test memory::nofamily::x ... ok",
            "test [expected failure] memory::ttl::fractional_ttl_is_kept ... ok",
            "test                    http::crud::set_then_get_returns_the_value ... ok",
            "running 3 tests",
        ] {
            matrix.record(line);
        }
        assert_eq!(matrix.failed(), 1);
        assert_eq!(matrix.suites, ["memory", "http"]);
        let ttl = matrix.cells[&("memory".to_owned(), "ttl")];
        assert_eq!(
            (ttl.passed, ttl.failed, ttl.skipped, ttl.expected_failures),
            (1, 1, 0, 1)
        );
        assert_eq!(matrix.cells[&("http".to_owned(), "crud")].passed, 1);
        let text = matrix.to_string();
        assert!(text.contains("ttl"), "{text}");
        assert!(text.contains("1/1/0 +1"), "{text}");
    }
}
