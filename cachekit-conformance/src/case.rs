//! The shape of a conformance case and how capabilities gate it.

use std::fmt;
use std::time::Duration;

use cachekit_core::{Capabilities, Clock};
use futures::future::LocalBoxFuture;

use crate::ctx::api::ApiCtx;
#[cfg(feature = "http-faults")]
use crate::ctx::faults::FaultCtx;
use crate::ctx::Ctx;
use crate::failure::CaseResult;

/// The rule families; a case's full name is `family::case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// get/set/overwrite.
    Crud,
    /// Return values of delete and exists.
    DeleteExists,
    /// Keys are exact, limits are enforced.
    Keys,
    /// Each character some layer treats specially is an ordinary key character.
    KeyCharacters,
    /// Values are opaque bytes, limits are enforced.
    Values,
    /// Expiry.
    Ttl,
    /// What was acknowledged stays true when looked at again later.
    Deferred,
    /// Every operation agrees with every other after every step.
    Consistency,
    /// Hundreds and thousands of keys.
    Scale,
    /// Dropped futures leave the store consistent.
    Cancel,
    /// Many tasks at once.
    Concurrency,
    /// Concurrent histories checked for linearizability, with expiry.
    Histories,
    /// `health_check`.
    Health,
    /// Random operation sequences against a `HashMap` model.
    Model,
    /// Error classification and retries under injected HTTP faults.
    Faults,
    /// The cachekit HTTP API as a wire contract, checked with raw requests.
    HttpApi,
    /// A backend author's own cases, added to the same harness with
    /// [`extra_case!`](crate::extra_case) (not in the kit's registry).
    Extra,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 17] = [
        Family::Crud,
        Family::DeleteExists,
        Family::Keys,
        Family::KeyCharacters,
        Family::Values,
        Family::Ttl,
        Family::Deferred,
        Family::Consistency,
        Family::Scale,
        Family::Cancel,
        Family::Concurrency,
        Family::Histories,
        Family::Health,
        Family::Model,
        Family::Faults,
        Family::HttpApi,
        Family::Extra,
    ];

    /// The module-like name used in test names.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Crud => "crud",
            Family::DeleteExists => "delete_exists",
            Family::Keys => "keys",
            Family::KeyCharacters => "key_characters",
            Family::Deferred => "deferred",
            Family::Consistency => "consistency",
            Family::Scale => "scale",
            Family::Values => "values",
            Family::Ttl => "ttl",
            Family::Cancel => "cancel",
            Family::Concurrency => "concurrency",
            Family::Histories => "histories",
            Family::Health => "health",
            Family::Model => "model",
            Family::Faults => "faults",
            Family::HttpApi => "http_api",
            Family::Extra => "extra",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a case that needs [`Need::AuthToken`] is skipped in a suite without a token.
pub(crate) const NO_TOKEN_REASON: &str = "no bearer token configured: auth cannot be checked";

/// Why a case that needs [`Need::HeaderTimeout`] is skipped in a suite that declares none.
pub(crate) const NO_HEADER_TIMEOUT_REASON: &str =
    "no header timeout declared: slow-client defences cannot be checked";
/// Why a case that needs [`Need::IdleTimeout`] is skipped in a suite that declares none.
pub(crate) const NO_IDLE_TIMEOUT_REASON: &str =
    "no idle timeout declared: keep-alive expiry cannot be checked";
/// Why a case that needs [`Need::WriteTimeout`] is skipped in a suite that declares none.
pub(crate) const NO_WRITE_TIMEOUT_REASON: &str =
    "no write timeout declared: the defence against clients that stop reading cannot be checked";

/// A declared capability a case depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The backend supports ttl.
    Ttl,
    /// Sub-precision rounding can be observed: second-or-coarser precision, or a tokio clock.
    ObservableTtlRounding,
    /// A declared maximum key length.
    MaxKeyBytes,
    /// A declared maximum value size.
    MaxValueBytes,
    /// Values of at least this many bytes are accepted.
    ValuesOfAtLeast(usize),
    /// Some keys are declared unrepresentable.
    RejectedKeys,
    /// The keys `.` and `..` are not declared unrepresentable.
    DotKeysAccepted,
    /// Entries are never evicted early.
    NoEviction,
    /// Expiry follows the tokio clock, so a case can jump days ahead for free.
    VirtualClock,
    /// Ttls finer than a second, or expiry on the tokio clock: deadlines a second apart can
    /// be told apart within a few seconds.
    SubSecondTtlPrecision,
    /// The target is configured with a bearer token (a property of the suite, not of the
    /// capabilities: [`crate::Suite::skip_reason`] judges it).
    AuthToken,
    /// The target declares its header timeout (a property of the suite, like
    /// [`Need::AuthToken`]).
    HeaderTimeout,
    /// The target declares its keep-alive idle timeout (a property of the suite).
    IdleTimeout,
    /// The target declares its response write timeout (a property of the suite).
    WriteTimeout,
}

impl Need {
    /// The need as the README's rule table shows it.
    pub fn label(self) -> String {
        match self {
            Need::ValuesOfAtLeast(size) if size % (1024 * 1024) == 0 => {
                format!("values ≥ {} MiB", size / (1024 * 1024))
            }
            Need::ValuesOfAtLeast(size) => format!("values ≥ {size} B"),
            other => format!("{other:?}"),
        }
    }

    /// Why a backend with `caps` does not meet this need, or `None` if it does.
    pub fn unmet_reason(self, caps: &Capabilities) -> Option<String> {
        let met = match self {
            Need::Ttl => caps.ttl.is_some(),
            Need::ObservableTtlRounding => caps.ttl.is_some_and(|ttl| {
                ttl.precision >= Duration::from_secs(1) || caps.clock == Clock::Tokio
            }),
            Need::MaxKeyBytes => caps.max_key_bytes.is_some(),
            Need::MaxValueBytes => caps.max_value_bytes.is_some(),
            Need::ValuesOfAtLeast(size) => caps.max_value_bytes.is_none_or(|max| max >= size),
            Need::RejectedKeys => !caps.rejected_keys.is_empty(),
            Need::DotKeysAccepted => !caps.rejected_keys.iter().any(|k| k == "." || k == ".."),
            Need::NoEviction => !caps.may_evict,
            Need::VirtualClock => caps.ttl.is_some() && caps.clock == Clock::Tokio,
            Need::SubSecondTtlPrecision => caps.ttl.is_some_and(|ttl| {
                ttl.precision < Duration::from_secs(1) || caps.clock == Clock::Tokio
            }),
            Need::AuthToken | Need::HeaderTimeout | Need::IdleTimeout | Need::WriteTimeout => true,
        };
        if met {
            return None;
        }
        Some(match self {
            Need::Ttl => "ttl: not claimed".to_owned(),
            Need::ObservableTtlRounding if caps.ttl.is_none() => "ttl: not claimed".to_owned(),
            Need::ObservableTtlRounding => {
                "ttl precision is finer than 1s on a wall clock: rounding is not observable".into()
            }
            Need::MaxKeyBytes => "no maximum key length declared".to_owned(),
            Need::MaxValueBytes => "no maximum value size declared".to_owned(),
            Need::ValuesOfAtLeast(size) => {
                format!("declared maximum value size is below {size} bytes")
            }
            Need::RejectedKeys => "no keys declared unrepresentable".to_owned(),
            Need::DotKeysAccepted => "`.`/`..` are declared unrepresentable".to_owned(),
            Need::NoEviction => "entries may be evicted early".to_owned(),
            Need::VirtualClock if caps.ttl.is_none() => "ttl: not claimed".to_owned(),
            Need::VirtualClock => {
                "expiry follows a wall clock: days-long horizons cannot be waited for".to_owned()
            }
            Need::SubSecondTtlPrecision if caps.ttl.is_none() => "ttl: not claimed".to_owned(),
            Need::SubSecondTtlPrecision => "ttl precision of 1 s or coarser on a wall clock: \
                 deadlines a second apart take too long to tell apart"
                .to_owned(),
            Need::AuthToken => NO_TOKEN_REASON.to_owned(),
            Need::HeaderTimeout => NO_HEADER_TIMEOUT_REASON.to_owned(),
            Need::IdleTimeout => NO_IDLE_TIMEOUT_REASON.to_owned(),
            Need::WriteTimeout => NO_WRITE_TIMEOUT_REASON.to_owned(),
        })
    }
}

/// How a case uses time and threads, which decides the runtime it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// No waiting: a current-thread runtime.
    Instant,
    /// Waits for ttls: a paused runtime when the backend follows the tokio clock.
    WaitsForExpiry,
    /// Needs real parallelism: a multi-thread runtime.
    Parallel,
}

/// One registered conformance case: an ordinary async function plus its metadata.
#[derive(Clone, Copy)]
pub struct Case {
    /// The family it belongs to.
    pub family: Family,
    /// Its function name, unique within the family.
    pub name: &'static str,
    /// The rule it checks, in one sentence.
    pub rule: &'static str,
    /// Capabilities it depends on.
    pub needs: &'static [Need],
    /// Its use of time and threads.
    pub timing: Timing,
    pub(crate) run: CaseFn,
}

/// How a case is invoked: against a backend, against a fault-injecting HTTP server, or
/// with raw requests against an HTTP service.
#[derive(Clone, Copy)]
pub(crate) enum CaseFn {
    Backend(fn(Ctx) -> LocalBoxFuture<'static, CaseResult>),
    #[cfg(feature = "http-faults")]
    HttpFaults(fn(FaultCtx) -> LocalBoxFuture<'static, CaseResult>),
    HttpApi(fn(ApiCtx) -> LocalBoxFuture<'static, CaseResult>),
}

/// What a case function receives decides how it is invoked: one registry macro serves
/// backend, fault and API cases alike.
pub(crate) trait CaseContext: Sized + 'static {
    /// Wraps a case function of this context.
    fn case_fn(run: fn(Self) -> LocalBoxFuture<'static, CaseResult>) -> CaseFn;
}

impl CaseContext for Ctx {
    fn case_fn(run: fn(Self) -> LocalBoxFuture<'static, CaseResult>) -> CaseFn {
        CaseFn::Backend(run)
    }
}

impl CaseContext for ApiCtx {
    fn case_fn(run: fn(Self) -> LocalBoxFuture<'static, CaseResult>) -> CaseFn {
        CaseFn::HttpApi(run)
    }
}

#[cfg(feature = "http-faults")]
impl CaseContext for FaultCtx {
    fn case_fn(run: fn(Self) -> LocalBoxFuture<'static, CaseResult>) -> CaseFn {
        CaseFn::HttpFaults(run)
    }
}

/// Which kind of suite a case runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteKind {
    /// [`Suite::new`](crate::Suite::new): a backend from a factory.
    Backend,
    /// [`Suite::http_faults`](crate::Suite::http_faults): a backend pointed at fault servers.
    HttpFaults,
    /// [`Suite::http_api`](crate::Suite::http_api): raw requests to an HTTP service.
    HttpApi,
}

impl Case {
    /// A backend author's own case, in the `extra` family: run by the same harness and
    /// reported like the kit's cases. Usually built with [`extra_case!`](crate::extra_case).
    pub fn extra(
        name: &'static str,
        rule: &'static str,
        run: fn(Ctx) -> LocalBoxFuture<'static, CaseResult>,
    ) -> Case {
        Case {
            family: Family::Extra,
            name,
            rule,
            needs: &[],
            timing: Timing::Instant,
            run: CaseFn::Backend(run),
        }
    }

    /// The same case with these needs (gated like the kit's cases).
    pub fn with_needs(mut self, needs: &'static [Need]) -> Case {
        self.needs = needs;
        self
    }

    /// The same case with this timing (e.g. [`Timing::WaitsForExpiry`] to run on a paused
    /// clock when the backend follows the tokio clock).
    pub fn with_timing(mut self, timing: Timing) -> Case {
        self.timing = timing;
        self
    }

    /// The kind of suite this case belongs to.
    pub fn suite_kind(&self) -> SuiteKind {
        match self.run {
            CaseFn::Backend(_) => SuiteKind::Backend,
            #[cfg(feature = "http-faults")]
            CaseFn::HttpFaults(_) => SuiteKind::HttpFaults,
            CaseFn::HttpApi(_) => SuiteKind::HttpApi,
        }
    }

    /// `family::name`, the name used in reports and test filters.
    pub fn id(&self) -> String {
        format!("{}::{}", self.family, self.name)
    }

    /// Whether the harness starts this case before the others: the families that send the
    /// most requests. Against a store with little throughput (an emulator on two cores)
    /// they are the longest cases, and started last they run alone at the end; started
    /// first, the cases that mostly wait for ttls overlap them.
    pub(crate) fn starts_early(&self) -> bool {
        matches!(
            self.family,
            Family::Scale | Family::Model | Family::Histories | Family::Concurrency
        )
    }

    /// Why this case does not apply to a backend with `caps`, if it does not.
    pub fn skip_reason(&self, caps: &Capabilities) -> Option<String> {
        self.needs.iter().find_map(|need| need.unmet_reason(caps))
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id())
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}
