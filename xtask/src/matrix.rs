//! The backend × rule-family matrix, collected from libtest's `test NAME ... RESULT` lines.
//!
//! Conformance tests are named `suite::family::case`, so the matrix needs nothing from the
//! harness but its ordinary output.

use std::collections::BTreeMap;
use std::fmt;

use cachekit_conformance::Family;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Cell {
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// How one case ended, as either source reports it.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
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
        let mut parts = name.trim().split("::");
        let (Some(suite), Some(family), Some(_case), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let result = match result.trim() {
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
        }
    }

    /// Counts every case of a programmatic run.
    pub fn record_report(&mut self, report: &cachekit_conformance::Report) {
        for entry in &report.cases {
            let result = match entry.outcome {
                cachekit_conformance::Outcome::Passed => Outcome::Passed,
                cachekit_conformance::Outcome::Failed(_) => Outcome::Failed,
                cachekit_conformance::Outcome::Skipped(_) => Outcome::Skipped,
            };
            self.count(&report.suite, entry.case.family.as_str(), result);
        }
    }

    /// Failed cases over the whole matrix.
    pub fn failed(&self) -> usize {
        self.cells.values().map(|c| c.failed).sum()
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suites.is_empty() {
            return write!(f, "conformance matrix: no conformance cases ran");
        }
        writeln!(f, "conformance matrix (passed/failed/skipped):")?;
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
                write!(
                    f,
                    " {:>16}",
                    format!("{}/{}/{}", cell.passed, cell.failed, cell.skipped)
                )?;
            }
            writeln!(f)?;
        }
        write!(f, "  {:<14}", "total")?;
        for total in totals {
            write!(
                f,
                " {:>16}",
                format!("{}/{}/{}", total.passed, total.failed, total.skipped)
            )?;
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
            "running 3 tests",
        ] {
            matrix.record(line);
        }
        assert_eq!(matrix.failed(), 1);
        assert_eq!(matrix.suites, ["memory", "http"]);
        let ttl = matrix.cells[&("memory".to_owned(), "ttl")];
        assert_eq!((ttl.passed, ttl.failed, ttl.skipped), (1, 1, 0));
        let text = matrix.to_string();
        assert!(text.contains("ttl"), "{text}");
        assert!(text.contains("1/1/0"), "{text}");
    }
}
