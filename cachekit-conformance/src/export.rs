//! Reports in formats other tools read: JSON (versioned schema), JUnit XML for CI
//! systems, and a Markdown summary for a CI step summary. Each can judge the run against an
//! expected-failure [`Baseline`].

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::baseline::{verdict, Baseline, Verdict};
use crate::failure::{Answer, Failure, Operation};
use crate::runner::{describe_failure, CaseReport, Outcome, Report};

/// The version of the JSON document [`to_json`] writes; it changes only when a field
/// changes meaning or goes away (new fields may appear within a version).
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The reports as one JSON document (schema version [`JSON_SCHEMA_VERSION`]):
/// `{"schema_version": 1, "passed": bool, "counts": {..}, "suites": [{"suite",
/// "backend_type", "seed", "wall_time_secs", "counts": {"passed", "failed", "skipped",
/// "expected_failures", "unexpected_passes"}, "capabilities": {..}, "cases": [{"id",
/// "family", "name", "rule", "outcome", "verdict", "expected_failure_reason",
/// "duration_secs", "message", "failure"}]}]}`.
///
/// `outcome` is what the case did (`passed` / `failed` / `skipped`); `verdict` is what it
/// means for the run once the baseline is applied (`passed`, `new_failure`,
/// `expected_failure`, `unexpected_pass`, `skipped`), and `passed` is true when no verdict
/// fails the run. `message` is the rendered text for people; `failure` (on failed cases,
/// else null) holds the same facts as fields: `{"check", "operation", "key", "value",
/// "expected", "got", "steps", "seed", "notes"}`, where `value` is `{"len", "hex"}` and an
/// answer is `{"form", "text", ...}` with `value`/`bool`/`count`/`kind`/`message` by form.
pub fn to_json(reports: &[Report], baseline: Option<&Baseline>) -> Value {
    let suites: Vec<Value> = reports
        .iter()
        .map(|report| {
            let counts = Counts::of(report, baseline);
            let caps = &report.capabilities;
            let cases: Vec<Value> = report
                .cases
                .iter()
                .map(|entry| {
                    let outcome = match &entry.outcome {
                        Outcome::Passed => "passed",
                        Outcome::Failed(_) => "failed",
                        Outcome::Skipped(_) => "skipped",
                    };
                    let verdict = judge(baseline, report, entry);
                    let reason = match &verdict {
                        Verdict::ExpectedFailure(reason) | Verdict::UnexpectedPass(reason) => {
                            Some(reason.clone())
                        }
                        _ => None,
                    };
                    json!({
                        "id": entry.case.id(),
                        "family": entry.case.family.as_str(),
                        "name": entry.case.name,
                        "rule": entry.case.rule,
                        "outcome": outcome,
                        "verdict": verdict_name(&verdict),
                        "expected_failure_reason": reason,
                        "duration_secs": entry.duration.as_secs_f64(),
                        "message": entry.message(),
                        "failure": entry.outcome.failure().map(failure_json),
                    })
                })
                .collect();
            json!({
                "suite": report.suite,
                "backend_type": caps.backend_type,
                "seed": report.seed,
                "wall_time_secs": report.wall_time.as_secs_f64(),
                "counts": counts.json(),
                "capabilities": {
                    "ttl": caps.ttl.map(|ttl| json!({
                        "precision_secs": ttl.precision.as_secs_f64(),
                        "max_secs": ttl.max.as_secs(),
                    })),
                    "max_key_bytes": caps.max_key_bytes,
                    "max_value_bytes": caps.max_value_bytes,
                    "rejected_keys": caps.rejected_keys,
                    "shared_across_instances": caps.shared_across_instances,
                    "may_evict": caps.may_evict,
                },
                "cases": cases,
            })
        })
        .collect();
    let total = Counts::total(reports, baseline);
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "passed": total.run_passes(),
        "counts": total.json(),
        "suites": suites,
    })
}

/// How the cases of one or more reports ended, once the baseline is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Passed, not expected to fail.
    pub passed: usize,
    /// Failed, not expected to: regressions.
    pub new_failures: usize,
    /// Failed as the baseline expects.
    pub expected_failures: usize,
    /// Passed although the baseline expects a failure.
    pub unexpected_passes: usize,
    /// Not applicable.
    pub skipped: usize,
}

impl Counts {
    /// The counts of one report.
    pub fn of(report: &Report, baseline: Option<&Baseline>) -> Counts {
        let mut counts = Counts::default();
        for entry in &report.cases {
            match judge(baseline, report, entry) {
                Verdict::Passed => counts.passed += 1,
                Verdict::NewFailure => counts.new_failures += 1,
                Verdict::ExpectedFailure(_) => counts.expected_failures += 1,
                Verdict::UnexpectedPass(_) => counts.unexpected_passes += 1,
                Verdict::Skipped => counts.skipped += 1,
            }
        }
        counts
    }

    /// The counts of several reports together.
    pub fn total(reports: &[Report], baseline: Option<&Baseline>) -> Counts {
        reports
            .iter()
            .map(|report| Counts::of(report, baseline))
            .fold(Counts::default(), |a, b| Counts {
                passed: a.passed + b.passed,
                new_failures: a.new_failures + b.new_failures,
                expected_failures: a.expected_failures + b.expected_failures,
                unexpected_passes: a.unexpected_passes + b.unexpected_passes,
                skipped: a.skipped + b.skipped,
            })
    }

    /// Cases that ran (not skipped).
    pub fn ran(&self) -> usize {
        self.passed + self.new_failures + self.expected_failures + self.unexpected_passes
    }

    /// Whether the run passes: something ran, nothing regressed, nothing passed unexpectedly.
    pub fn run_passes(&self) -> bool {
        self.ran() > 0 && self.new_failures == 0 && self.unexpected_passes == 0
    }

    fn json(&self) -> Value {
        json!({
            "passed": self.passed,
            "failed": self.new_failures + self.expected_failures,
            "skipped": self.skipped,
            "new_failures": self.new_failures,
            "expected_failures": self.expected_failures,
            "unexpected_passes": self.unexpected_passes,
        })
    }
}

/// The verdict on one case of `report`.
pub fn judge(baseline: Option<&Baseline>, report: &Report, entry: &CaseReport) -> Verdict {
    verdict(baseline, &report.suite, &entry.case.id(), &entry.outcome)
}

fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "passed",
        Verdict::NewFailure => "new_failure",
        Verdict::ExpectedFailure(_) => "expected_failure",
        Verdict::UnexpectedPass(_) => "unexpected_pass",
        Verdict::Skipped => "skipped",
    }
}

/// A Markdown summary for a CI step summary: a table of counts per suite, then every new
/// failure (rule, check, expected, got), every unexpected pass and every expected failure
/// with its reason.
pub fn to_markdown(reports: &[Report], baseline: Option<&Baseline>) -> String {
    let total = Counts::total(reports, baseline);
    let mut md = format!(
        "## cachekit conformance: {}\n\n",
        if total.run_passes() {
            "passed"
        } else {
            "FAILED"
        }
    );
    md.push_str(
        "| suite | backend | passed | new failures | expected failures | unexpected passes | skipped | time |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for report in reports {
        let c = Counts::of(report, baseline);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            md_cell(&report.suite),
            md_cell(&report.capabilities.backend_type),
            c.passed,
            c.new_failures,
            c.expected_failures,
            c.unexpected_passes,
            c.skipped,
            report.wall_time.as_secs_f64()
        );
    }
    let section = |title: &str, wanted: fn(&Verdict) -> bool, md: &mut String| {
        let mut rows = String::new();
        for report in reports {
            for entry in &report.cases {
                let verdict = judge(baseline, report, entry);
                if !wanted(&verdict) {
                    continue;
                }
                let detail = match (&verdict, &entry.outcome) {
                    (Verdict::NewFailure, Outcome::Failed(failure)) => format!(
                        "{} — expected {}, got {}",
                        failure.check(),
                        failure
                            .expected_answer()
                            .map_or_else(|| "—".to_owned(), ToString::to_string),
                        failure
                            .got_answer()
                            .map_or_else(|| "—".to_owned(), ToString::to_string)
                    ),
                    (Verdict::ExpectedFailure(reason) | Verdict::UnexpectedPass(reason), _) => {
                        reason.clone()
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    rows,
                    "| `{}::{}` | {} | {} |",
                    md_cell(&report.suite),
                    entry.case.id(),
                    md_cell(entry.case.rule),
                    md_cell(&detail)
                );
            }
        }
        if !rows.is_empty() {
            let _ = write!(
                md,
                "\n### {title}\n\n| case | rule | detail |\n|---|---|---|\n{rows}"
            );
        }
    };
    section(
        "New failures",
        |v| matches!(v, Verdict::NewFailure),
        &mut md,
    );
    section(
        "Unexpected passes (remove them from the baseline)",
        |v| matches!(v, Verdict::UnexpectedPass(_)),
        &mut md,
    );
    section(
        "Expected failures (baseline)",
        |v| matches!(v, Verdict::ExpectedFailure(_)),
        &mut md,
    );
    md
}

/// Text safe inside one Markdown table cell: pipes escaped, line breaks flattened.
fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn failure_json(failure: &Failure) -> Value {
    json!({
        "check": failure.check(),
        "operation": failure.operation_checked().map(Operation::as_str),
        "key": failure.key_involved(),
        "value": failure.value_involved().map(|value| bytes_json(value)),
        "expected": failure.expected_answer().map(answer_json),
        "got": failure.got_answer().map(answer_json),
        "steps": failure.steps_taken(),
        "seed": failure.replay_seed(),
        "notes": failure.notes(),
    })
}

fn bytes_json(bytes: &[u8]) -> Value {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    json!({"len": bytes.len(), "hex": hex})
}

fn answer_json(answer: &Answer) -> Value {
    let mut fields = json!({"form": answer.form(), "text": answer.to_string()});
    let extra = match answer {
        Answer::Value(value) => json!({"value": value.as_deref().map(bytes_json)}),
        Answer::Bool(value) => json!({"bool": value}),
        Answer::Count(count) => json!({"count": count}),
        Answer::ErrorOfKind(kind) => json!({"kind": kind.to_string()}),
        Answer::Error { kind, message } => json!({"kind": kind.to_string(), "message": message}),
        _ => json!({}),
    };
    if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        fields.extend(extra);
    }
    fields
}

/// The reports as JUnit XML: one `<testsuite>` per report, one `<testcase>` per case
/// (`classname` = `cachekit.<suite>.<family>`). New failures and unexpected passes are
/// `<failure>`s; skipped cases and expected failures are `<skipped>` with the reason (JUnit
/// has no "expected failure", and an expected failure is never a pass).
pub fn to_junit_xml(reports: &[Report], baseline: Option<&Baseline>) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = Counts::total(reports, baseline);
    let time: f64 = reports.iter().map(|r| r.wall_time.as_secs_f64()).sum();
    let _ = writeln!(
        xml,
        "<testsuites name=\"cachekit conformance\" tests=\"{}\" failures=\"{}\" \
         skipped=\"{}\" time=\"{time:.3}\">",
        total.ran() + total.skipped,
        total.new_failures + total.unexpected_passes,
        total.skipped + total.expected_failures,
    );
    for report in reports {
        let c = Counts::of(report, baseline);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" \
             time=\"{:.3}\">",
            escape(&report.suite),
            c.ran() + c.skipped,
            c.new_failures + c.unexpected_passes,
            c.skipped + c.expected_failures,
            report.wall_time.as_secs_f64()
        );
        let _ = writeln!(
            xml,
            "    <properties><property name=\"seed\" value=\"{}\"/></properties>",
            report.seed
        );
        for entry in &report.cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"cachekit.{}.{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&report.suite),
                entry.case.family.as_str(),
                escape(entry.case.name),
                entry.duration.as_secs_f64()
            );
            let (element, message, body) = match (judge(baseline, report, entry), &entry.outcome) {
                (Verdict::Passed, _) => {
                    xml.push_str("/>\n");
                    continue;
                }
                (Verdict::ExpectedFailure(reason), _) => (
                    "skipped",
                    format!("expected failure (baseline): {reason}"),
                    None,
                ),
                (Verdict::UnexpectedPass(reason), _) => (
                    "failure",
                    format!(
                        "unexpected pass: the baseline expects a failure ({reason}); remove the entry"
                    ),
                    None,
                ),
                (Verdict::NewFailure, Outcome::Failed(failure)) => {
                    let text = describe_failure(&entry.case, failure);
                    let first = text.lines().next().unwrap_or("failed").to_owned();
                    ("failure", first, Some(text))
                }
                (_, Outcome::Skipped(reason)) => ("skipped", reason.clone(), None),
                (_, outcome) => ("failure", format!("{outcome:?}"), None),
            };
            match body {
                Some(body) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <{element} message=\"{}\">{}</{element}>\n    </testcase>",
                        escape(&message),
                        escape(&body)
                    );
                }
                None => {
                    let _ = writeln!(
                        xml,
                        ">\n      <{element} message=\"{}\"/>\n    </testcase>",
                        escape(&message)
                    );
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Escapes text for an XML attribute or element; characters XML 1.0 cannot carry at all
/// (most control characters) become `\u{..}` escapes, so nothing is silently dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(ch),
            '\r' => out.push_str("&#13;"),
            ch if (ch as u32) < 0x20 || ch == '\u{FFFE}' || ch == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_every_character_visible() {
        assert_eq!(
            escape("a<b>&\"c\" 'd'\u{0}\u{1b}é"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;\\u{0}\\u{1b}é"
        );
    }
}
