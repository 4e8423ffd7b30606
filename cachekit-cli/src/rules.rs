//! `cachekit rules`: every rule the kit checks, from the registry (each sentence is
//! written once, there).

use cachekit_conformance::{cases, Case, SuiteKind};
use serde_json::json;

/// How to print the rules.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum RulesFormat {
    /// One line per rule: `family::case  sentence  [needs …]`.
    #[default]
    Text,
    /// The README's Markdown tables.
    Markdown,
    /// A JSON array of `{"id", "family", "name", "rule", "needs", "suite_kind"}`.
    Json,
}

fn needs(case: &Case) -> Vec<String> {
    case.needs.iter().map(|need| need.label()).collect()
}

fn suite_kind(case: &Case) -> &'static str {
    match case.suite_kind() {
        SuiteKind::Backend => "backend",
        SuiteKind::HttpFaults => "http_faults",
        SuiteKind::HttpApi => "http_api",
    }
}

/// The rule list in `format`.
pub fn render(format: RulesFormat) -> String {
    let all = cases::all();
    match format {
        RulesFormat::Markdown => cases::rules_markdown(),
        RulesFormat::Json => {
            let rules: Vec<_> = all
                .iter()
                .map(|case| {
                    json!({
                        "id": case.id(),
                        "family": case.family.as_str(),
                        "name": case.name,
                        "rule": case.rule,
                        "needs": needs(case),
                        "suite_kind": suite_kind(case),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&rules).unwrap_or_default() + "\n"
        }
        RulesFormat::Text => {
            let width = all.iter().map(|case| case.id().len()).max().unwrap_or(0);
            let mut text = String::new();
            for case in &all {
                let mut gates = needs(case);
                if case.suite_kind() != SuiteKind::Backend {
                    gates.insert(0, format!("{} suites only", suite_kind(case)));
                }
                let gates = if gates.is_empty() {
                    String::new()
                } else {
                    format!("  [needs {}]", gates.join(", "))
                };
                text.push_str(&format!("{:<width$}  {}{gates}\n", case.id(), case.rule));
            }
            text.push_str(&format!("{} rules\n", all.len()));
            text
        }
    }
}
