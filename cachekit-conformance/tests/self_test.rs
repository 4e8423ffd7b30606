//! The kit's own test: backends with one deliberate flaw each must be failed by the named
//! cases, and the same store without the flaw must pass everything.

use std::collections::HashMap;
use std::time::Duration;

use cachekit_conformance::{
    run_suite, Answer, Failure, Operation, Outcome, Report, RunOptions, Suite,
};
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, Clock, HealthReport, Result,
    TtlSupport, PROTOCOL_MAX_TTL,
};
use parking_lot::Mutex;
use tokio::time::Instant;
use unicode_normalization::UnicodeNormalization;

const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    IgnoresTtl,
    DeleteAlwaysTrue,
    DeleteCountsExpiredEntries,
    ExistsIgnoresExpiry,
    EmptyValueReadAsNone,
    TruncatesLargeValues,
    LowercasesKeys,
    NormalisesUnicode,
    DecodesPercentEscapes,
    TrimsKeys,
    SwallowsErrorsAsNone,
    KeepsOldTtlOnOverwrite,
    ExpiresEarly,
    ZeroTtlMeansNoTtl,
    RoundsTtlDown,
    TornWrites,
    TruncatesLongKeys,
    CountsKeyCharsNotBytes,
    MislabelsHealthReport,
}

/// A small, otherwise correct store with one flaw switched on.
struct Flawed {
    flaw: Flaw,
    entries: Mutex<HashMap<String, (Bytes, Option<Instant>)>>,
}

impl Flawed {
    fn new(flaw: Flaw) -> Self {
        Flawed {
            flaw,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, key: &str) -> Result<String> {
        let mut key = match self.flaw {
            Flaw::LowercasesKeys => key.to_lowercase(),
            Flaw::NormalisesUnicode => key.nfc().collect(),
            Flaw::DecodesPercentEscapes => key.replace("%2F", "/").replace("%2f", "/"),
            Flaw::TrimsKeys => key.trim().to_owned(),
            _ => key.to_owned(),
        };
        match self.flaw {
            Flaw::TruncatesLongKeys if key.len() > MAX_KEY_BYTES => {
                let mut cut = MAX_KEY_BYTES;
                while !key.is_char_boundary(cut) {
                    cut -= 1;
                }
                key.truncate(cut);
            }
            Flaw::CountsKeyCharsNotBytes if key.chars().count() <= MAX_KEY_BYTES => {}
            _ => self.capabilities().check_key(&key)?,
        }
        Ok(key)
    }

    fn live(&self, key: &str) -> Option<Bytes> {
        let entries = self.entries.lock();
        let (value, expires_at) = entries.get(key)?;
        let ignore_expiry = self.flaw == Flaw::IgnoresTtl;
        (ignore_expiry || expires_at.is_none_or(|at| Instant::now() < at)).then(|| value.clone())
    }

    fn swallow<T: Default>(&self, result: Result<T>) -> Result<T> {
        match (self.flaw, result) {
            (Flaw::SwallowsErrorsAsNone, Err(_)) => Ok(T::default()),
            (_, result) => result,
        }
    }

    async fn set_inner(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let key = self.key(key)?;
        let value = match self.flaw {
            Flaw::TruncatesLargeValues => value.slice(..value.len().min(64 * 1024)),
            _ => value,
        };
        self.capabilities().check_value(&value)?;
        let ttl = match (self.flaw, ttl) {
            (Flaw::ZeroTtlMeansNoTtl, Some(ttl)) if ttl.is_zero() => None,
            (Flaw::RoundsTtlDown, Some(ttl)) => Some(Duration::from_secs(ttl.as_secs())),
            _ => self.capabilities().check_ttl(ttl)?,
        };
        let ttl = match self.flaw {
            Flaw::ExpiresEarly => ttl.map(|ttl| ttl / 2),
            _ => ttl,
        };
        let now = Instant::now();
        let mut expires_at = ttl.map(|ttl| now + ttl);
        if self.flaw == Flaw::KeepsOldTtlOnOverwrite && expires_at.is_none() {
            expires_at = self.entries.lock().get(&key).and_then(|(_, at)| *at);
        }
        if self.flaw == Flaw::TornWrites && value.len() > 1 {
            let half = value.slice(..value.len() / 2);
            self.entries.lock().insert(key.clone(), (half, expires_at));
            tokio::task::yield_now().await;
        }
        self.entries.lock().insert(key, (value, expires_at));
        Ok(())
    }

    async fn delete_inner(&self, key: &str) -> Result<bool> {
        let key = self.key(key)?;
        let live = self.live(&key).is_some();
        let removed = self.entries.lock().remove(&key).is_some();
        Ok(match self.flaw {
            Flaw::DeleteAlwaysTrue => true,
            Flaw::DeleteCountsExpiredEntries => removed,
            _ => live && removed,
        })
    }
}

#[async_trait]
impl Backend for Flawed {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let got = self.key(key).map(|key| self.live(&key));
        let got = self.swallow(got)?;
        Ok(match (self.flaw, got) {
            (Flaw::EmptyValueReadAsNone, Some(value)) if value.is_empty() => None,
            (_, got) => got,
        })
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let result = self.set_inner(key, value, ttl).await;
        self.swallow(result)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let result = self.delete_inner(key).await;
        self.swallow(result)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let key = self.swallow(self.key(key).map(Some))?;
        let Some(key) = key else { return Ok(false) };
        if self.flaw == Flaw::ExistsIgnoresExpiry {
            return Ok(self.entries.lock().contains_key(&key));
        }
        Ok(self.live(&key).is_some())
    }

    async fn health_check(&self) -> HealthReport {
        let name = match self.flaw {
            Flaw::MislabelsHealthReport => "custom",
            _ => "flawed",
        };
        HealthReport::probe(name, Duration::from_secs(1), async {
            Ok::<_, BackendError>(HashMap::new().into_iter().collect())
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        let precision = match self.flaw {
            Flaw::RoundsTtlDown => Duration::from_secs(1),
            _ => Duration::from_millis(1),
        };
        Capabilities::new("flawed")
            .with_ttl(TtlSupport {
                precision,
                max: PROTOCOL_MAX_TTL,
            })
            .with_max_key_bytes(MAX_KEY_BYTES)
            .with_max_value_bytes(MAX_VALUE_BYTES)
            .with_clock(Clock::Tokio)
    }
}

fn run(flaw: Flaw, seed: u64) -> Report {
    run_filtered(flaw, seed, None)
}

fn run_filtered(flaw: Flaw, seed: u64, filter: Option<&str>) -> Report {
    let suite = Suite::new(
        format!("{flaw:?}"),
        move || async move { Flawed::new(flaw) },
    );
    run_suite(
        &suite,
        &RunOptions {
            seed: Some(seed),
            filter: filter.map(str::to_owned),
            ..RunOptions::default()
        },
    )
}

fn failed_ids(report: &Report) -> Vec<String> {
    report.failures().map(|c| c.case.id()).collect()
}

#[test]
fn the_flawless_store_passes_every_case() {
    let report = run(Flaw::None, 7);
    assert!(report.passed(), "{report}");
    let (passed, _, skipped) = report.counts(None);
    assert!(passed >= 50, "only {passed} passed");
    // Only the rejected-keys case, since this store declares none.
    assert_eq!(skipped, 1, "{report}");
}

#[test]
fn every_flaw_is_failed_by_the_cases_that_name_its_rule() {
    use Flaw::*;
    let expectations: &[(Flaw, &[&str])] = &[
        (
            IgnoresTtl,
            &[
                "ttl::expired_entry_is_absent_from_get",
                "ttl::expired_entry_is_absent_from_exists",
                "ttl::expired_entry_is_absent_from_delete",
                "ttl::later_set_shortens_the_ttl",
            ],
        ),
        (
            DeleteAlwaysTrue,
            &[
                "delete_exists::delete_of_missing_key_returns_false",
                "delete_exists::second_delete_returns_false",
                "concurrency::concurrent_deletes_report_one_existed",
                "model::random_operation_sequences_match_a_hashmap_model",
            ],
        ),
        (
            DeleteCountsExpiredEntries,
            &["ttl::expired_entry_is_absent_from_delete"],
        ),
        (
            ExistsIgnoresExpiry,
            &["ttl::expired_entry_is_absent_from_exists"],
        ),
        (EmptyValueReadAsNone, &["values::empty_value_is_some_empty"]),
        (
            TruncatesLargeValues,
            &[
                "values::one_mib_value_roundtrips",
                "values::value_at_max_size_roundtrips",
            ],
        ),
        (
            LowercasesKeys,
            &[
                "keys::case_variants_are_distinct",
                "model::random_operation_sequences_match_a_hashmap_model",
            ],
        ),
        (
            NormalisesUnicode,
            &["keys::unicode_normalisation_forms_are_distinct"],
        ),
        (
            DecodesPercentEscapes,
            &["keys::slash_and_encoded_slash_are_distinct"],
        ),
        (TrimsKeys, &["keys::whitespace_variants_are_distinct"]),
        (
            SwallowsErrorsAsNone,
            &[
                "keys::empty_key_is_invalid_key",
                "keys::key_over_max_length_is_invalid_key",
                "values::value_over_max_size_is_value_too_large",
                "ttl::zero_ttl_is_invalid_argument",
                "ttl::ttl_above_maximum_is_invalid_argument",
            ],
        ),
        (
            KeepsOldTtlOnOverwrite,
            &["ttl::plain_overwrite_clears_the_ttl"],
        ),
        (
            ExpiresEarly,
            &["ttl::entry_is_present_until_just_before_expiry"],
        ),
        (ZeroTtlMeansNoTtl, &["ttl::zero_ttl_is_invalid_argument"]),
        (RoundsTtlDown, &["ttl::sub_precision_ttl_rounds_up"]),
        (TornWrites, &["cancel::dropped_set_leaves_old_or_new_value"]),
        (
            TruncatesLongKeys,
            &["keys::key_over_max_length_is_invalid_key"],
        ),
        (
            CountsKeyCharsNotBytes,
            &["keys::key_over_max_length_is_invalid_key"],
        ),
        (
            MislabelsHealthReport,
            &["health::health_check_names_the_backend_type"],
        ),
    ];
    let mut missed = Vec::new();
    for (flaw, cases) in expectations {
        let report = run(*flaw, 11);
        let failed = failed_ids(&report);
        for case in *cases {
            if !failed.iter().any(|id| id == case) {
                missed.push(format!(
                    "{flaw:?} was not failed by {case}; failed: {failed:?}"
                ));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

fn failure_of(report: &Report, id: &str) -> Failure {
    let entry = report.cases.iter().find(|c| c.case.id() == id);
    match entry.map(|c| &c.outcome) {
        Some(Outcome::Failed(failure)) => failure.clone(),
        other => panic!("expected {id} to fail, got {other:?}"),
    }
}

#[test]
fn a_failure_names_the_rule_the_check_the_key_and_both_answers() {
    let report = run(Flaw::ExistsIgnoresExpiry, 3);
    let id = "ttl::expired_entry_is_absent_from_exists";
    let failure = failure_of(&report, id);
    assert_eq!(failure.operation_checked(), Some(Operation::Exists));
    assert_eq!(failure.expected_answer(), Some(&Answer::Bool(false)));
    assert_eq!(failure.got_answer(), Some(&Answer::Bool(true)));
    assert!(failure
        .key_involved()
        .is_some_and(|key| key.starts_with("ck-") && key.contains("expired_entry")));
    // The rendered form, as the README shows it.
    let entry = report.cases.iter().find(|c| c.case.id() == id);
    let text = entry.and_then(|c| c.message()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("rule violated: [ttl] an expired entry is absent to exists")
    );
    assert!(lines.contains(&"  expected: exists -> false"), "{text}");
    assert!(lines.contains(&"  got:      exists -> true"), "{text}");
}

#[test]
fn the_model_case_shrinks_to_a_short_sequence_and_replays_from_its_seed() {
    let model_failure = |seed| {
        failure_of(
            &run_filtered(Flaw::LowercasesKeys, seed, Some(MODEL)),
            MODEL,
        )
    };
    let first = model_failure(42);
    assert_eq!(first.replay_seed(), Some(42));
    // set("K"), then a read of "k": two operations expose a case-folding store.
    assert!(
        (2..=3).contains(&first.steps_taken().len()),
        "not shrunk: {first}"
    );
    assert_eq!(model_failure(42), first, "same seed, same failure");
}

const MODEL: &str = "model::random_operation_sequences_match_a_hashmap_model";

/// The failure a flaw causes in the model case is classified by its fields, whatever the
/// seed: this is what fixtures rely on instead of the rendered text.
#[test]
fn the_model_case_reports_a_delete_that_never_says_true_in_fields_for_any_seed() {
    for seed in [1, 2, 3, 5, 8, 13, 21, 34] {
        let failure = failure_of(
            &run_filtered(Flaw::DeleteAlwaysTrue, seed, Some(MODEL)),
            MODEL,
        );
        assert_eq!(
            failure.operation_checked(),
            Some(Operation::Delete),
            "{failure}"
        );
        assert_eq!(
            failure.expected_answer(),
            Some(&Answer::Bool(false)),
            "{failure}"
        );
        assert_eq!(failure.got_answer(), Some(&Answer::Bool(true)), "{failure}");
    }
}
