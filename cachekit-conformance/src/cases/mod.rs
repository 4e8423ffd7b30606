//! The registry: every conformance case, grouped by the rule family it checks.
//!
//! Each case is an ordinary `async fn(Ctx) -> CaseResult` in its family's module; this file
//! only lists them with their rule sentence, the capabilities they need, and their timing.

use crate::case::{Case, CaseContext, Family, Need, Timing};

pub use histories::HISTORY_DIR_ENV;

mod cancel;
mod concurrency;
mod consistency;
mod crud;
mod deferred;
mod delete_exists;
#[cfg(feature = "http-faults")]
mod faults;
mod health;
mod histories;
mod http_api;
mod key_characters;
mod keys;
mod model;
mod scale;
mod ttl;
mod values;

macro_rules! case {
    ($family:ident :: $name:ident, $rule:expr $(, needs: [$($need:expr),* $(,)?])? $(, timing: $timing:ident)? $(,)?) => {
        Case {
            family: family_of(stringify!($family)),
            name: stringify!($name),
            rule: $rule,
            needs: &[$($($need),*)?],
            timing: timing_or_instant(&[$(Timing::$timing)?]),
            run: CaseContext::case_fn(|ctx| Box::pin($family::$name(ctx))),
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
    let mut cases = backend_cases();
    #[cfg(feature = "http-faults")]
    cases.extend(fault_cases());
    cases.extend(http_api_cases());
    cases
}

fn backend_cases() -> Vec<Case> {
    let mut cases = listed_cases();
    // Families generated from a table register their cases after their family's others.
    let values_end = cases
        .iter()
        .rposition(|case| case.family == Family::Values)
        .map_or(cases.len(), |i| i + 1);
    cases.splice(values_end..values_end, values::length_cases());
    let keys_end = cases
        .iter()
        .rposition(|case| case.family == Family::Keys)
        .map_or(cases.len(), |i| i + 1);
    cases.splice(keys_end..keys_end, key_characters::cases());
    cases
}

fn listed_cases() -> Vec<Case> {
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
            crud::same_length_overwrite_replaces_the_value,
            "an overwrite with a value of the same length replaces it"
        ),
        case!(
            crud::a_set_after_a_miss_is_visible,
            "a set after a miss is visible: misses are never cached"
        ),
        case!(
            crud::get_of_a_missing_key_creates_nothing,
            "a get of a missing key creates nothing exists or delete could see"
        ),
        case!(
            crud::keys_with_equal_values_stay_independent,
            "two keys holding equal bytes stay independent: overwriting or deleting one leaves the other"
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
        case!(delete_exists::a_delete_after_an_idle_hour_answers_truly, "after an hour with no calls, delete still answers whether a live entry existed, and the entry it deleted stays gone", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(delete_exists::a_delete_removes_what_another_client_wrote, "a delete through one client removes an entry another client wrote, and answers true"),
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
            delete_exists::delete_of_a_missing_key_creates_nothing,
            "a delete of a missing key creates nothing get or exists could see"
        ),
        case!(delete_exists::racing_sets_and_deletes_leave_get_and_exists_in_agreement, "after sets and deletes race on one key, get, exists and delete agree", timing: Parallel),
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
            "keys differing only in case, or in what a collation folds (hiragana and katakana), are different keys"
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
            keys::delete_and_exists_respect_case,
            "delete and exists touch only the exact key, never another spelling"
        ),
        case!(
            keys::key_prefix_is_not_a_match,
            "a key only matches itself, not its prefixes, extensions or namespaced forms"
        ),
        case!(
            keys::keys_with_colliding_hashes_are_distinct,
            "keys whose 32-bit hashes collide (Java's hashCode, CRC-32) are different keys"
        ),
        case!(
            keys::numeric_spellings_are_distinct_keys,
            "keys that spell the same number differently are different keys"
        ),
        case!(
            keys::object_member_names_are_plain_keys,
            "names special to maps built on objects (`__proto__`, `constructor`, `toString`, ...) are plain keys"
        ),
        case!(
            keys::special_words_are_plain_keys,
            "whole keys that some layer takes for something else (`0`, `*`, a lone space or tab, `null`, `nil`, `None`, `undefined`, `false`) are plain keys, and deleting one leaves other keys alone"
        ),
        case!(
            keys::leading_characters_are_kept,
            "a key's first characters are kept, whatever they are"
        ),
        case!(keys::dot_segment_keys_roundtrip, "`.` and `..` are plain keys", needs: [DotKeysAccepted]),
        case!(keys::many_rejected_keys_leave_the_store_usable, "a dozen rejected keys in a row leave the store usable (they are the caller's errors, not the store's)"),
        case!(keys::declared_unrepresentable_keys_are_rejected_cleanly, "keys declared unrepresentable fail with InvalidKey and break nothing", needs: [RejectedKeys]),
        case!(
            keys::empty_key_is_invalid_key,
            "the empty key fails with InvalidKey"
        ),
        case!(keys::key_at_max_length_roundtrips, "a key of exactly the declared maximum length works, with or without a ttl, whether made of two-byte, four-byte, escapable or NUL characters", needs: [MaxKeyBytes]),
        case!(keys::key_and_value_at_their_maxima_work_together, "a key and a value both at their declared maxima work together", needs: [MaxKeyBytes, MaxValueBytes]),
        case!(keys::key_over_max_length_is_invalid_key, "a key over the declared maximum fails with InvalidKey and is not truncated", needs: [MaxKeyBytes]),
        case!(
            values::empty_value_is_some_empty,
            "an empty value reads back as Some(empty), never None, also when set with a ttl"
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
        case!(values::value_at_max_size_roundtrips, "a value of exactly the declared maximum size works, with or without a ttl, another one can overwrite it, and deleting it answers true then false", needs: [MaxValueBytes]),
        case!(values::value_over_max_size_is_value_too_large, "a value over the declared maximum, compressible or not, with or without a ttl, fails with ValueTooLarge and stores nothing", needs: [MaxValueBytes]),
        case!(values::value_just_under_max_size_roundtrips, "a value one byte under the declared maximum works", needs: [MaxValueBytes]),
        case!(values::a_large_value_occupies_only_its_own_key, "a large value lives under its own key only: no chunk-named keys beside it, and writes to such names leave it whole", needs: [NoEviction]),
        case!(values::compressible_value_roundtrips, "highly compressible values (all zeros, a repeated pattern, whole 4 KiB blocks of zeros) read back exactly"),
        case!(values::incompressible_value_roundtrips, "an incompressible value reads back exactly"),
        case!(
            values::text_like_values_are_not_interpreted,
            "values that look like JSON, numbers, a null, an error reply, padded text, CRLF-terminated lines, a text protocol's END line or UTF-8 with four-byte characters stay bytes"
        ),
        case!(
            values::values_that_start_like_an_encoding_are_not_decoded,
            "values that start like gzip, zstd, a pickle or a flags byte are returned as stored"
        ),
        case!(
            values::shorter_overwrite_leaves_no_tail,
            "overwriting with a shorter value leaves no bytes of the old one"
        ),
        case!(ttl::entry_is_visible_right_after_set, "an entry with a ttl is visible right after set", needs: [Ttl]),
        case!(ttl::entry_is_present_until_just_before_expiry, "an entry never expires early", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::a_longer_ttl_is_not_cut_short, "an entry with a ttl of several seconds is present until just before it ends", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_get, "an expired entry is absent to get, and reading it does not bring it back", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_exists, "an expired entry is absent to exists", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expired_entry_is_absent_from_delete, "delete of an expired entry returns false", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::a_large_value_with_a_ttl_expires, "a value of 513 KiB (or the declared maximum) set with a ttl is there just before its ttl and expires like a small one", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::the_last_of_many_writes_sets_the_ttl, "after 63 sets of a key without a ttl, a set with one makes it expire", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::entry_without_ttl_outlives_the_window, "an entry set without ttl does not expire", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::plain_overwrite_clears_the_ttl, "a set without ttl makes an entry persistent", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::a_deleted_entrys_ttl_does_not_reach_the_next_set, "a deleted entry's ttl never cuts short a later set of the same key", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::rewriting_the_same_value_applies_its_ttl, "a set applies its ttl (or its lack of one) even when the value is unchanged", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::a_set_after_expiry_stores_a_fresh_entry, "a set on an expired entry stores a fresh one: not dropped, without the old deadline, and still there after a pause", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::an_expired_entry_uncovers_no_older_value, "an expired entry uncovers no older value of its key, before or after a delete", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::set_with_ttl_on_a_persistent_entry_makes_it_expire, "a set with a ttl on a persistent entry makes it expire", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::each_key_keeps_its_own_ttl, "each key keeps its own ttl, whatever its neighbours were set with", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::later_set_extends_the_ttl, "a later set with a longer ttl extends the entry", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::later_set_shortens_the_ttl, "a later set with a shorter ttl replaces a longer one", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::a_set_with_the_same_ttl_restarts_it, "a set with the same ttl as the live entry's restarts the ttl from that set", needs: [SubSecondTtlPrecision], timing: WaitsForExpiry),
        case!(ttl::sub_precision_ttl_rounds_up, "a ttl below the precision rounds up, not down to nothing", needs: [ObservableTtlRounding], timing: WaitsForExpiry),
        case!(ttl::zero_ttl_is_invalid_argument, "a zero ttl fails with InvalidArgument, never means `no ttl`", needs: [Ttl]),
        case!(ttl::ttl_above_maximum_is_invalid_argument, "a ttl above the declared maximum fails with InvalidArgument", needs: [Ttl]),
        case!(ttl::ttls_that_wrap_an_integer_are_invalid_argument, "a ttl over the declared maximum that would wrap a 32- or 64-bit integer (or overflow a deadline) fails with InvalidArgument", needs: [Ttl]),
        case!(ttl::ttl_at_maximum_is_accepted, "a ttl of exactly the declared maximum is accepted", needs: [Ttl]),
        case!(ttl::fractional_ttl_is_not_rounded_down, "a ttl with a fractional second is not rounded down", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::fractional_ttl_is_not_rounded_up_past_the_precision, "a ttl with a fractional second is not rounded up by more than the precision", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::expiry_counts_from_the_set_at_any_sub_second_phase, "expiry counts from the set itself, whatever fraction of a second it falls on", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::reads_do_not_extend_the_ttl, "reading an entry never extends its ttl", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::rejected_set_leaves_the_ttl_alone, "a rejected set (a zero ttl, a value over the maximum) leaves the entry's ttl, or its lack of one, as it was", needs: [Ttl], timing: WaitsForExpiry),
        case!(ttl::entry_without_ttl_survives_thirty_days, "an entry without ttl is still there thirty days later", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(ttl::an_expired_entry_stays_expired_for_a_hundred_days, "an expired entry is still gone past 2^31 and 2^32 ms (24.9 and 49.7 days) and at 100 days, and an entry without ttl still there", needs: [Ttl, VirtualClock], timing: WaitsForExpiry),
        case!(ttl::ttls_of_minutes_and_hours_set_at_an_odd_moment_are_not_cut_short, "ttls of 100 s, 10 min and 1 h (or the maximum, if shorter) set off any whole minute hold until just before they end, and then end", needs: [Ttl, VirtualClock], timing: WaitsForExpiry),
        case!(ttl::one_day_ttl_lasts_exactly_a_day, "a one-day ttl holds for the whole day and ends with it", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(ttl::maximum_ttl_lasts_until_its_end, "the maximum ttl holds until its last moment and then ends", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(ttl::maximum_ttl_with_a_fraction_is_not_truncated, "a ttl just under the maximum keeps its fractional second", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(deferred::deleted_entry_stays_deleted, "a deleted entry does not come back later", timing: WaitsForExpiry),
        case!(deferred::deleted_entry_stays_deleted_for_a_month, "a deleted entry is still gone 11 and 31 days later", needs: [VirtualClock], timing: WaitsForExpiry),
        case!(deferred::overwritten_value_stays_overwritten, "an overwritten value does not come back later", timing: WaitsForExpiry),
        case!(deferred::stored_value_stays_as_stored, "a stored value does not change or vanish while nobody writes it", needs: [NoEviction], timing: WaitsForExpiry),
        case!(deferred::rejected_write_never_lands, "a write that failed does not land later", timing: WaitsForExpiry),
        case!(deferred::a_delete_does_not_hit_a_later_set, "a delete, of a missing key or of a stored one, does not remove a value set after it", timing: WaitsForExpiry),
        case!(deferred::delete_does_not_spread_later, "deleting one key does not later remove another", needs: [NoEviction], timing: WaitsForExpiry),
        case!(
            consistency::operations_agree_after_every_write_and_delete,
            "after every write and delete, get, exists and delete agree with each other and the history"
        ),
        case!(
            consistency::operations_agree_about_empty_values,
            "get, exists and delete agree about empty values after every step"
        ),
        case!(consistency::operations_agree_across_expiry, "get, exists and delete agree before and after expiry", needs: [Ttl], timing: WaitsForExpiry),
        case!(scale::eleven_hundred_entries_with_a_ttl_all_expire, "1100 entries with a ttl all expire (every other one is read after; on virtual time without eviction all are read first), and their writes do not restart the ttl of an entry set before them", needs: [Ttl], timing: WaitsForExpiry),
        case!(scale::a_thousand_keys_keep_their_own_values, "of a thousand keys, deleting all but 90 answers true for each and leaves the 90 with their own values and the deleted ones gone", needs: [NoEviction], timing: Parallel),
        case!(scale::large_values_adding_up_to_12_mib_are_all_kept, "large values adding up to 12 MiB are all kept where no eviction is declared", needs: [NoEviction], timing: Parallel),
        case!(scale::deleting_half_of_many_keys_leaves_the_rest, "deleting half of 520 keys, in written order right after writing them, answers true for each and leaves the other half", needs: [NoEviction], timing: Parallel),
        case!(scale::keys_differing_in_one_position_are_distinct, "keys that differ in a single position are different keys", needs: [NoEviction]),
        case!(scale::keys_sharing_a_long_prefix_are_distinct, "keys that share a long prefix and differ only at the end are different keys", needs: [NoEviction]),
        case!(scale::overwriting_one_key_never_fills_the_store, "overwriting one key 40 times with 1 MiB values (or the declared maximum) never fills the store: every set succeeds and the last value is there"),
        case!(
            scale::many_overwrites_leave_the_last_value,
            "after 300 overwrites of one key, the last value is there"
        ),
        case!(
            scale::writes_past_capacity_read_back_their_value_or_nothing,
            "after 5100 writes, the last write is there and the keys read back (one in three, or one in seven where eviction is declared) hold their own value (or nothing, where eviction is declared)"
        ),
        case!(scale::many_keys_written_in_parallel_are_all_there, "400 keys written by eight tasks at once are all there", needs: [NoEviction], timing: Parallel),
        case!(cancel::dropped_set_leaves_old_or_new_value, "a set future dropped mid-flight leaves the old or the new value, a set with a ttl never without its ttl, and a later set is not held up by it and is still there after a pause", timing: WaitsForExpiry),
        case!(cancel::aborted_operations_leave_backend_usable, "aborted operations leave the backend usable and the key consistent, exists agreeing with get, and the next set on the key is not held up by them", timing: Parallel),
        case!(concurrency::racing_sets_with_and_without_a_ttl_leave_one_whole, "a set with a ttl racing a plain set leaves one of them whole, never the plain value with the other's ttl; exists agrees with a get that saw a set in flight", needs: [Ttl], timing: WaitsForExpiry),
        case!(concurrency::parallel_tasks_on_distinct_keys, "concurrent tasks on distinct keys do not interfere", timing: Parallel),
        case!(concurrency::concurrent_writers_leave_one_written_value, "after concurrent writes to one key, it holds one value that was written", needs: [ValuesOfAtLeast(concurrency::WRITTEN_VALUE_BYTES)], timing: Parallel),
        case!(concurrency::readers_never_see_unwritten_values, "a reader never sees a value nobody wrote", needs: [NoEviction, ValuesOfAtLeast(concurrency::WRITTEN_VALUE_BYTES)], timing: Parallel),
        case!(concurrency::concurrent_deletes_report_one_existed, "of concurrent deletes of one entry, exactly one returns true", timing: Parallel),
        case!(histories::concurrent_operations_are_linearizable, "concurrent sets, gets, exists and deletes from several clients can be put in one order that explains every answer (or, for a store that declares eventual consistency, every read is at most the declared staleness old; an evicting store may lose entries, never bring them back)", timing: WaitsForExpiry),
        case!(histories::concurrent_operations_with_expiry_are_linearizable, "with ttls in play, one order also explains every answer when each entry expires inside its declared precision and, once seen gone, stays gone until the next set", needs: [Ttl], timing: WaitsForExpiry),
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
        case!(health::health_details_carry_no_credentials, "health details carry no credentials: no password or secret parameter in a URL, no Authorization value, no secret-named detail"),
        case!(health::health_check_answers_within_the_bound, "a health check of a reachable backend holding 300 entries answers within 5 s", timing: WaitsForExpiry),
        case!(health::caller_errors_leave_the_store_healthy, "after a refused key and a refused value, a health check still reports healthy"),
        case!(health::health_checks_leave_ttls_running, "health checks leave ttls running: an entry set with a ttl before them still expires", needs: [Ttl], timing: WaitsForExpiry),
        case!(
            health::repeated_health_checks_stay_healthy_and_change_nothing,
            "repeated health checks stay healthy and change no data, entries that expire within a minute included"
        ),
        case!(model::random_operation_sequences_match_a_hashmap_model, "any sequence of operations behaves like a HashMap", needs: [NoEviction], timing: Parallel),
    ]
}

/// The fault cases: they run only in [`Suite::http_faults`](crate::Suite::http_faults)
/// suites, against servers each case starts.
#[cfg(feature = "http-faults")]
#[rustfmt::skip]
fn fault_cases() -> Vec<Case> {
    vec![
        case!(faults::every_success_status_of_the_api_is_accepted, "PUT 200/201/204, DELETE 200/204 and HEAD 200 are successes", timing: Parallel),
        case!(faults::transient_failure_is_retried_then_succeeds, "a 503 followed by a 200 yields the value after one retry", timing: Parallel),
        case!(faults::status_500_is_unavailable_after_bounded_retries, "a persistent 500 on GET is Unavailable after exactly 1 + max_retries requests", timing: Parallel),
        case!(faults::status_503_on_set_is_unavailable_after_bounded_retries, "a persistent 503 on PUT is Unavailable after exactly 1 + max_retries requests", timing: Parallel),
        case!(faults::status_429_is_throttled_and_honours_retry_after, "429 with a Retry-After of exactly the longest wait the backend is told to honour is Throttled, waited for between retries, and reported", timing: Parallel),
        case!(faults::a_retry_after_too_long_to_wait_is_reported_not_waited, "a 429 asking for a 2-hour wait is Throttled after one request and reports the whole wait", timing: Parallel),
        case!(faults::a_retry_after_date_in_the_past_is_no_reason_to_give_up, "a 429 whose Retry-After is a date in the past is retried like any 429, never taken as a wait too long to honour", timing: Parallel),
        case!(faults::a_reset_inside_a_body_is_unavailable, "a connection reset in the middle of a body is Unavailable, never part of a value and not Protocol", timing: Parallel),
        case!(faults::a_connection_lost_before_the_answer_is_unavailable, "a connection reset or closed before any answer is Unavailable, and a PUT so cut is not retried", timing: Parallel),
        case!(faults::status_401_is_auth_and_not_retried, "401 is Auth after one request", timing: Parallel),
        case!(faults::status_403_is_auth_and_not_retried, "403 is Auth after one request", timing: Parallel),
        case!(faults::status_504_is_timeout, "a 504 from a gateway is Timeout", timing: Parallel),
        case!(faults::status_400_keeps_the_kind_its_body_names, "a 400 whose body names invalid_key or value_too_large keeps that kind, even after a 2 KiB message; any other 400 is InvalidArgument, after one request", timing: Parallel),
        case!(faults::status_413_is_value_too_large_and_not_retried, "413 on PUT is ValueTooLarge after one request", timing: Parallel),
        case!(faults::delete_is_not_retried_after_a_server_error, "a 500 on DELETE is Unavailable after one request: a retry could misreport whether it existed", timing: Parallel),
        case!(faults::slow_response_is_timeout, "an answer slower than the timeout is Timeout, after bounded retries", timing: Parallel),
        case!(faults::unexpected_status_is_protocol, "a status outside the API (418, 302) is Protocol, not a value and not a miss", timing: Parallel),
        case!(faults::error_status_with_garbage_body_is_still_classified, "an error status with a non-JSON, binary body is still classified by its status", timing: Parallel),
        case!(faults::body_shorter_than_content_length_is_protocol, "a body cut short of its Content-Length is Protocol, never a truncated value", timing: Parallel),
        case!(faults::garbage_instead_of_http_is_protocol, "bytes that are not HTTP are Protocol", timing: Parallel),
        case!(faults::response_over_the_cap_is_protocol, "a body of exactly the response cap is a value; one byte over is Protocol, never truncated", timing: Parallel),
        case!(faults::a_get_that_times_out_once_is_retried_then_succeeds, "a GET whose first attempt times out is retried, and the retry's answer is returned", timing: Parallel),
        case!(faults::a_delete_that_times_out_is_not_retried, "a DELETE that times out is Timeout after one request: it may have been applied", timing: Parallel),
        case!(faults::a_set_that_times_out_is_not_retried, "a PUT that times out is Timeout after one request: a retry could succeed while the first attempt lands later, over a newer write", timing: Parallel),
        case!(faults::set_is_not_retried_after_a_server_error, "a 500 on PUT is Unavailable after one request: the value may be stored, and a retry could reorder it with other writers", timing: Parallel),
        case!(faults::unreachable_service_is_unavailable_and_unhealthy, "connection refused is Unavailable, and health_check says unhealthy", timing: Parallel),
        case!(faults::health_needs_a_success_status_and_a_body_that_agrees, "a health answer is healthy only with a success status and a body that does not say unhealthy, 8 KiB of details included", timing: Parallel),
        case!(faults::hanging_service_is_unhealthy_within_the_timeout, "a service that never answers is unhealthy within the timeout", timing: Parallel),
        case!(faults::an_unhealthy_answer_keeps_its_reason, "an unhealthy health answer's reason, plain text on a 503 or a JSON field beside healthy: false, reaches the report's details", timing: Parallel),
        case!(faults::an_error_body_of_exactly_the_cap_keeps_its_kind, "a 400 whose body is exactly the error-body cap, in pieces (Content-Length or chunked), is read whole and the kind it names counts; one byte over, the status alone decides", timing: Parallel),
        case!(faults::an_endless_error_body_is_cut_and_the_status_decides, "a 400 whose body never ends is InvalidArgument within twice the timeout and 1 s: the body is cut at the cap, never read to its end", timing: Parallel),
        case!(faults::a_health_answer_of_exactly_the_cap_is_read_whole, "a health answer of exactly the health-body cap, in pieces (Content-Length or chunked), is read whole and healthy; one byte over is not healthy", timing: Parallel),
        case!(faults::health_details_are_capped_and_the_cut_is_counted, "a health answer with more fields than the details cap keeps at most that many under their names and counts the rest exactly in `fields_elided`; within the cap it keeps all and counts nothing", timing: Parallel),
    ]
}

/// The raw HTTP API cases: they run only in [`Suite::http_api`](crate::Suite::http_api)
/// suites.
#[rustfmt::skip]
fn http_api_cases() -> Vec<Case> {
    use Need::*;
    vec![
        case!(http_api::put_then_get_returns_the_body_exactly, "PUT then GET returns the body byte for byte, whatever its Content-Type"),
        case!(http_api::a_get_sees_the_last_write_at_once, "a GET or HEAD right after a PUT or DELETE sees it, however the key is spelled and whatever else the query holds (or the PUT is refused)"),
        case!(http_api::get_of_a_missing_key_is_404, "GET of a key never stored is 404"),
        case!(http_api::delete_answers_whether_the_entry_existed, "DELETE is 200/204 for a live entry and 404 for a missing one"),
        case!(http_api::head_answers_without_a_body, "HEAD is 200 or 404 and never sends a body"),
        case!(http_api::an_absolute_form_target_names_the_same_key, "a target in absolute form (`http://host/cache/{key}`) names the same entry as the origin form, for PUT, GET, HEAD and DELETE"),
        case!(http_api::a_literal_slash_never_reaches_a_key, "a literal `/` inside the key segment, trailing or doubled ones included, is refused, never part of a key"),
        case!(http_api::encoded_slash_is_part_of_one_key, "`%2F` is a slash inside one key, and `%2f` names the same key"),
        case!(http_api::dot_segments_are_never_resolved, "dot segments in the path are never resolved into another key"),
        case!(http_api::plus_in_a_key_is_a_plus, "`+` in a key is a plus, never a space"),
        case!(http_api::percent_encoded_utf8_is_decoded_exactly, "percent-encoded UTF-8 is decoded exactly, never normalised or case-folded; an escape that is not UTF-8 never becomes U+FFFD"),
        case!(http_api::escaped_delimiters_stay_in_the_key, "an escaped `%`, `?`, `#` or NUL is part of the key, decoded exactly once"),
        case!(http_api::ttl_is_parsed_strictly, "`ttl` is whole seconds in 1..=30 days; anything else is 400 and stores nothing", needs: [Ttl]),
        case!(http_api::ttl_in_whole_seconds_expires, "a PUT with `ttl=1` is present at once and gone 2.5 s later, also when `ttl` is not the first query parameter (if the service takes another)", needs: [Ttl], timing: WaitsForExpiry),
        case!(http_api::a_body_cut_short_stores_nothing, "a PUT body shorter than its Content-Length stores nothing"),
        case!(http_api::a_chunked_body_is_stored_whole, "a chunked PUT body is stored whole"),
        case!(http_api::an_empty_body_stores_an_empty_value, "a PUT with an empty body stores an empty value, not nothing: GET answers it and HEAD is 200"),
        case!(http_api::a_value_over_the_declared_maximum_is_413, "a PUT one byte over the declared maximum value size is 413 with `cachekit-error-kind: value_too_large` and stores nothing; one at the maximum is stored", needs: [MaxValueBytes]),
        case!(http_api::a_kept_alive_connection_serves_the_next_request, "a connection kept alive serves the next request alike, and is closed only after a response that says so"),
        case!(http_api::a_request_sent_in_pieces_is_answered, "a request whose head and body arrive in pieces, 300 ms apart, is answered like one sent at once"),
        case!(http_api::a_silent_connection_is_closed_after_the_header_timeout, "a connection that never sends is closed when the declared header timeout runs out, not before and at most 1.5 s after", needs: [HeaderTimeout]),
        case!(http_api::a_trickled_head_is_cut_off_after_the_header_timeout, "a request head trickled a byte at a time is cut off at most 1.5 s after the declared header timeout from its first byte, and not before it from the connection's opening", needs: [HeaderTimeout]),
        case!(http_api::a_trickled_head_on_a_kept_alive_connection_is_cut_off_after_the_header_timeout, "on a kept-alive connection, a request head trickled a byte at a time gets the declared header timeout from its first byte, not less and at most 1.5 s more, not the idle timeout", needs: [HeaderTimeout]),
        case!(http_api::a_client_that_stops_reading_is_cut_off_after_the_write_timeout, "a client that pipelines GETs of a large value and stops reading is cut off at most 1.5 s after the declared write timeout, before all the answers can be read", needs: [WriteTimeout]),
        case!(http_api::an_idle_connection_is_closed_after_the_idle_timeout, "a kept-alive connection waits the declared idle timeout for its next request, not less, and is closed at most 1.5 s after", needs: [IdleTimeout]),
        case!(http_api::methods_outside_the_api_change_nothing, "methods outside the API (POST, PATCH, PURGE, unknown ones, POSTs with a method-override header) are refused and change nothing"),
        case!(http_api::the_empty_key_is_refused, "`/cache/` with no key is refused"),
        case!(http_api::health_answers_json_with_healthy, "GET /health is 200 with JSON `healthy: true` on a reachable service"),
        case!(http_api::health_without_the_token_shows_only_whether_healthy, "with a token configured, GET /health without it answers only whether the service is healthy", needs: [AuthToken]),
        case!(http_api::health_latency_fits_in_the_round_trip, "a `latency_ms` in a health answer, when present, is a number from 0 to the request's own round trip"),
        case!(http_api::wrong_tokens_are_all_refused, "with a token configured, no wrong token is accepted, however near the real one (2,000 and more tried)", needs: [AuthToken]),
        case!(http_api::every_method_needs_the_token, "with a token configured, every method without it is 401/403, and `bearer` works in any case", needs: [AuthToken]),
    ]
}

/// The rule list as Markdown, one table per family, in registry order: what the README
/// shows under "The rules the kit checks". Each rule's sentence is written once, in the
/// registry; the README is generated from it (a test keeps the two equal).
pub fn rules_markdown() -> String {
    let cases = all();
    let mut text = String::new();
    for family in Family::ALL {
        let members: Vec<&Case> = cases.iter().filter(|c| c.family == family).collect();
        if members.is_empty() {
            continue;
        }
        let scope = match family {
            Family::Faults => " (only in `http_faults(...)` suites, feature `http-faults`)",
            Family::HttpApi => " (only in `http_api(URL, token)` suites: raw requests)",
            _ => "",
        };
        text.push_str(&format!(
            "**{family}**{scope} — {} cases\n\n| case | rule | needs |\n|---|---|---|\n",
            members.len()
        ));
        for case in members {
            let needs = if case.suite_kind() != crate::case::SuiteKind::Backend {
                "HTTP API".to_owned()
            } else if case.needs.is_empty() {
                "—".to_owned()
            } else {
                let labels: Vec<String> = case.needs.iter().map(|need| need.label()).collect();
                labels.join(", ")
            };
            let rule = case.rule.replace('|', "\\|");
            text.push_str(&format!("| `{}` | {rule} | {needs} |\n", case.id()));
        }
        text.push('\n');
    }
    text
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
        assert_eq!(crud, 8);
        for family in Family::ALL {
            if (family == Family::Faults && !cfg!(feature = "http-faults"))
                || family == Family::Extra
            {
                continue;
            }
            assert!(
                cases.iter().any(|c| c.family == family),
                "{family} has no case"
            );
        }
    }
}
