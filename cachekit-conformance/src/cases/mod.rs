//! The registry: every conformance case, grouped by the rule family it checks.
//!
//! Each case is an ordinary `async fn(Ctx) -> CaseResult` in its family's module; this file
//! only lists them with their rule sentence, the capabilities they need, and their timing.

use crate::case::{Case, CaseFn, Family, Need, Timing};

pub mod cancel;
pub mod concurrency;
pub mod crud;
pub mod delete_exists;
pub mod health;
pub mod keys;
pub mod model;
pub mod ttl;
pub mod values;

macro_rules! case {
    ($family:ident :: $name:ident, $rule:expr $(, needs: [$($need:expr),* $(,)?])? $(, timing: $timing:ident)? $(,)?) => {
        Case {
            family: family_of(stringify!($family)),
            name: stringify!($name),
            rule: $rule,
            needs: &[$($($need),*)?],
            timing: timing_or_instant(&[$(Timing::$timing)?]),
            run: CaseFn::Backend(|ctx| Box::pin($family::$name(ctx))),
        }
    };
}

const fn timing_or_instant(given: &[Timing]) -> Timing {
    match given {
        [timing] => *timing,
        _ => Timing::Instant,
    }
}

fn family_of(module: &str) -> Family {
    Family::ALL
        .into_iter()
        .find(|family| family.as_str() == module)
        .unwrap_or(Family::Crud)
}

const MIB: usize = 1024 * 1024;

/// Every case, in report order: backend cases, then (with the `http-faults` feature) the
/// fault-injection cases that run only against [`Suite::http_faults`](crate::Suite::http_faults) suites.
pub fn all() -> Vec<Case> {
    #[cfg(feature = "http-faults")]
    let cases = {
        let mut cases = backend_cases();
        cases.extend(crate::faults::cases());
        cases
    };
    #[cfg(not(feature = "http-faults"))]
    let cases = backend_cases();
    cases
}

fn backend_cases() -> Vec<Case> {
    use Need::*;
    vec![
        case!(
            crud::get_of_missing_key_is_none,
            "get of a key never set returns None"
        ),
        case!(
            crud::set_then_get_returns_the_value,
            "get returns exactly what set stored"
        ),
        case!(
            crud::overwrite_replaces_the_value,
            "a second set replaces the value"
        ),
        case!(
            crud::keys_hold_independent_values,
            "writing one key never changes another"
        ),
        case!(
            delete_exists::exists_is_false_for_missing_key,
            "exists of a key never set is false"
        ),
        case!(
            delete_exists::exists_is_true_after_set,
            "exists is true once a key is set"
        ),
        case!(
            delete_exists::delete_of_existing_key_returns_true,
            "delete returns true when a live entry existed"
        ),
        case!(
            delete_exists::delete_of_missing_key_returns_false,
            "delete returns false when no entry existed"
        ),
        case!(
            delete_exists::second_delete_returns_false,
            "deleting twice returns true, then false"
        ),
        case!(
            delete_exists::deleted_key_is_absent,
            "after delete, get is None and exists is false"
        ),
        case!(
            delete_exists::set_after_delete_recreates_the_entry,
            "a set after delete stores the key again"
        ),
        case!(
            delete_exists::delete_only_removes_its_own_key,
            "delete leaves other keys alone"
        ),
        case!(
            keys::unicode_keys_roundtrip,
            "unicode and emoji keys store and read back exactly"
        ),
        case!(
            keys::whitespace_and_control_keys_roundtrip,
            "keys with spaces, tabs and newlines store and read back"
        ),
        case!(
            keys::path_like_keys_roundtrip,
            "keys that look like paths are plain keys"
        ),
        case!(
            keys::url_special_keys_roundtrip,
            "keys with URL-special characters are plain keys"
        ),
        case!(
            keys::slash_and_encoded_slash_are_distinct,
            "`a/b`, `a%2Fb` and `a%252Fb` are different keys"
        ),
        case!(
            keys::case_variants_are_distinct,
            "keys differing only in case are different keys"
        ),
        case!(
            keys::unicode_normalisation_forms_are_distinct,
            "NFC and NFD spellings are different keys"
        ),
        case!(
            keys::whitespace_variants_are_distinct,
            "keys are not trimmed"
        ),
        case!(
            keys::key_prefix_is_not_a_match,
            "a key only matches itself, not its prefixes or extensions"
        ),
        case!(keys::dot_segment_keys_roundtrip, "`.` and `..` are plain keys", needs: [DotKeysAccepted]),
        case!(keys::declared_unrepresentable_keys_are_rejected_cleanly, "keys declared unrepresentable fail with InvalidKey and break nothing", needs: [RejectedKeys]),
        case!(
            keys::empty_key_is_invalid_key,
            "the empty key fails with InvalidKey"
        ),
        case!(keys::key_at_max_length_roundtrips, "a key of exactly the declared maximum length works", needs: [MaxKeyBytes]),
        case!(keys::key_over_max_length_is_invalid_key, "a key over the declared maximum fails with InvalidKey and is not truncated", needs: [MaxKeyBytes]),
        case!(
            values::empty_value_is_some_empty,
            "an empty value reads back as Some(empty), never None"
        ),
        case!(
            values::all_byte_values_roundtrip,
            "all 256 byte values survive a round trip"
        ),
        case!(
            values::nul_bytes_roundtrip,
            "NUL bytes are data, not terminators"
        ),
        case!(
            values::invalid_utf8_roundtrips,
            "values are bytes, never transcoded as text"
        ),
        case!(values::one_mib_value_roundtrips, "a 1 MiB value survives a round trip", needs: [ValuesOfAtLeast(MIB)]),
        case!(values::value_at_max_size_roundtrips, "a value of exactly the declared maximum size works", needs: [MaxValueBytes]),
        case!(values::value_over_max_size_is_value_too_large, "a value over the declared maximum fails with ValueTooLarge and stores nothing", needs: [MaxValueBytes]),
        case!(
            values::shorter_overwrite_leaves_no_tail,
            "overwriting with a shorter value leaves no bytes of the old one"
        ),
        case!(ttl::entry_is_visible_right_after_set, "an entry with a ttl is visible right after set", needs: [Ttl]),
        case!(ttl::entry_is_present_until_just_before_expiry, "an entry never expires early", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_get, "an expired entry is absent to get", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_exists, "an expired entry is absent to exists", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_delete, "delete of an expired entry returns false", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::entry_without_ttl_outlives_the_window, "an entry set without ttl does not expire", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::plain_overwrite_clears_the_ttl, "a set without ttl makes an entry persistent", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::later_set_extends_the_ttl, "a later set with a longer ttl extends the entry", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::later_set_shortens_the_ttl, "a later set with a shorter ttl replaces a longer one", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::sub_precision_ttl_rounds_up, "a ttl below the precision rounds up, not down to nothing", needs: [ObservableTtlRounding], timing: WaitsForExpiry),
        case!(ttl::zero_ttl_is_invalid_argument, "a zero ttl fails with InvalidArgument, never means `no ttl`", needs: [Ttl]),
        case!(ttl::ttl_above_maximum_is_invalid_argument, "a ttl above the declared maximum fails with InvalidArgument", needs: [Ttl]),
        case!(ttl::ttl_at_maximum_is_accepted, "a ttl of exactly the declared maximum is accepted", needs: [Ttl]),
        case!(
            cancel::dropped_set_leaves_old_or_new_value,
            "a set future dropped mid-flight leaves the old or the new value"
        ),
        case!(cancel::aborted_operations_leave_backend_usable, "aborted operations leave the backend usable and the key consistent", timing: Parallel),
        case!(concurrency::parallel_tasks_on_distinct_keys, "concurrent tasks on distinct keys do not interfere", timing: Parallel),
        case!(concurrency::concurrent_writers_leave_one_written_value, "after concurrent writes to one key, it holds one value that was written", timing: Parallel),
        case!(concurrency::readers_never_see_unwritten_values, "a reader never sees a value nobody wrote", needs: [NoEviction], timing: Parallel),
        case!(concurrency::concurrent_deletes_report_one_existed, "of concurrent deletes of one entry, exactly one returns true", timing: Parallel),
        case!(
            health::health_check_reports_healthy,
            "a reachable backend reports healthy"
        ),
        case!(
            health::health_check_names_the_backend_type,
            "the health report names the declared backend type"
        ),
        case!(
            health::health_check_measures_latency,
            "the health report carries a measured latency"
        ),
        case!(model::random_operation_sequences_match_a_hashmap_model, "any sequence of operations behaves like a HashMap", needs: [NoEviction], timing: Parallel),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_case_id_is_unique_and_its_family_matches_its_module() {
        let cases = all();
        let ids: HashSet<_> = cases.iter().map(Case::id).collect();
        assert_eq!(ids.len(), cases.len());
        // family_of falls back to Crud, so a typo in a module name would hide here.
        let crud = cases.iter().filter(|c| c.family == Family::Crud).count();
        assert_eq!(crud, 4);
        for family in Family::ALL {
            if family == Family::Faults && !cfg!(feature = "http-faults") {
                continue;
            }
            assert!(
                cases.iter().any(|c| c.family == family),
                "{family} has no case"
            );
        }
    }
}
