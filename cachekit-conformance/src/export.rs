//! Reports in formats other tools read: JSON, and JUnit XML for CI systems.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::runner::{Outcome, Report};

/// The reports as one JSON document:
/// `{"passed": bool, "suites": [{"suite", "backend_type", "seed", "wall_time_secs",
/// "counts": {"passed", "failed", "skipped"}, "capabilities": {..}, "cases": [{"id",
/// "family", "name", "rule", "outcome", "duration_secs", "message"}]}]}`.
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
                    let (outcome, message) = match &entry.outcome {
                        Outcome::Passed => ("passed", Value::Null),
                        Outcome::Failed(text) => ("failed", Value::String(text.clone())),
                        Outcome::Skipped(reason) => ("skipped", Value::String(reason.clone())),
                    };
                    json!({
                        "id": entry.case.id(),
                        "family": entry.case.family.as_str(),
                        "name": entry.case.name,
                        "rule": entry.case.rule,
                        "outcome": outcome,
                        "duration_secs": entry.duration.as_secs_f64(),
                        "message": message,
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
                Outcome::Failed(text) => {
                    let first = text.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        escape(first),
                        escape(text)
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
