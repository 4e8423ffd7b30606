//! Reports in formats other tools read: JSON, and JUnit XML for CI systems.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::failure::{Answer, Failure, Operation};
use crate::runner::{describe_failure, Outcome, Report};

/// The reports as one JSON document:
/// `{"passed": bool, "suites": [{"suite", "backend_type", "seed", "wall_time_secs",
/// "counts": {"passed", "failed", "skipped"}, "capabilities": {..}, "cases": [{"id",
/// "family", "name", "rule", "outcome", "duration_secs", "message", "failure"}]}]}`.
///
/// `message` is the rendered text for people; `failure` (on failed cases, else null) holds
/// the same facts as fields: `{"check", "operation", "key", "value", "expected", "got",
/// "steps", "seed", "notes"}`, where `value` is `{"len", "hex"}` and an answer is
/// `{"form", "text", ...}` with `value`/`bool`/`count`/`kind`/`message` by form.
pub fn to_json(reports: &[Report]) -> Value {
    let suites: Vec<Value> = reports
        .iter()
        .map(|report| {
            let (passed, failed, skipped) = report.counts(None);
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
                    json!({
                        "id": entry.case.id(),
                        "family": entry.case.family.as_str(),
                        "name": entry.case.name,
                        "rule": entry.case.rule,
                        "outcome": outcome,
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
                "counts": {"passed": passed, "failed": failed, "skipped": skipped},
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
    json!({
        "passed": reports.iter().all(Report::passed),
        "suites": suites,
    })
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
/// (`classname` = `cachekit.<suite>.<family>`), with `<failure>` or `<skipped>`.
pub fn to_junit_xml(reports: &[Report]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (mut tests, mut failures, mut skipped, mut time) = (0, 0, 0, 0.0);
    for report in reports {
        let (p, f, s) = report.counts(None);
        tests += p + f + s;
        failures += f;
        skipped += s;
        time += report.wall_time.as_secs_f64();
    }
    let _ = writeln!(
        xml,
        "<testsuites name=\"cachekit conformance\" tests=\"{tests}\" failures=\"{failures}\" \
         skipped=\"{skipped}\" time=\"{time:.3}\">"
    );
    for report in reports {
        let (p, f, s) = report.counts(None);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\" errors=\"0\" \
             time=\"{:.3}\">",
            escape(&report.suite),
            p + f + s,
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
            match &entry.outcome {
                Outcome::Passed => xml.push_str("/>\n"),
                Outcome::Failed(failure) => {
                    let text = describe_failure(&entry.case, failure);
                    let first = text.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        escape(first),
                        escape(&text)
                    );
                }
                Outcome::Skipped(reason) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(reason)
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
