//! What a case gets: the backend under test, its capabilities, a private key prefix,
//! and checks that turn unexpected answers into [`Failure`]s.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, BackendError, Bytes, Capabilities, Consistency, ErrorKind};
use tokio::time::Instant;

use crate::failure::{Answer, CaseResult, Failure, Operation};

pub(crate) mod api;
#[cfg(feature = "http-faults")]
pub(crate) mod faults;

/// A backend being built by a suite's factory.
pub(crate) type BackendFuture = Pin<Box<dyn Future<Output = Arc<dyn Backend>>>>;
/// A suite's factory: each call builds a new backend value from the same configuration.
pub(crate) type Factory = dyn Fn() -> BackendFuture + Send + Sync;

/// The waits ttl cases use, derived from the declared precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlWindow {
    /// The ttl cases set.
    pub ttl: Duration,
    /// Until this long after `set`, the entry must still be there ("never early").
    pub present_until: Duration,
    /// By this long after `set`, the entry must be gone: ttl + precision + slack.
    pub absent_by: Duration,
}

/// Whether an observation could be judged: an answer that came back after the earliest
/// moment the entry may legally have expired proves nothing about "never early".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The answers arrived in time and were checked.
    Judged,
    /// They arrived too late to tell; the attempt should be made again.
    TooLate,
}

/// Fresh attempts a "present before expiry" check makes before it gives up, on a machine
/// too loaded to observe the entry in time.
pub const OBSERVATION_ATTEMPTS: usize = 5;

/// The context a case runs in.
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test.
    pub backend: Arc<dyn Backend>,
    /// What it declared.
    pub caps: Capabilities,
    /// Whether time is the paused tokio clock (ttl waits cost nothing).
    pub virtual_time: bool,
    /// Seed for anything random in the case; printed on failure.
    pub seed: u64,
    prefix: String,
    factory: Option<Arc<Factory>>,
}

impl Ctx {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        virtual_time: bool,
        prefix: String,
        seed: u64,
    ) -> Self {
        let caps = backend.capabilities();
        Ctx {
            backend,
            caps,
            virtual_time,
            seed,
            prefix,
            factory: None,
        }
    }

    /// The same context, able to build more backends from the suite's factory.
    pub(crate) fn with_factory(mut self, factory: Arc<Factory>) -> Self {
        self.factory = Some(factory);
        self
    }

    /// A backend for one more client: a new value from the suite's factory (its own
    /// connections) when the backend declares that instances share entries, otherwise the
    /// backend under test itself, shared.
    pub async fn another_client(&self) -> Arc<dyn Backend> {
        match &self.factory {
            Some(factory) if self.caps.shared_across_instances => factory().await,
            _ => self.backend.clone(),
        }
    }

    /// A key private to this case run: the case's unique prefix plus `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The private prefix every key of this case starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The ttl waits for this backend. Callers must hold a ttl capability.
    pub fn ttl_window(&self) -> TtlWindow {
        let precision = self
            .caps
            .ttl
            .map_or(Duration::from_secs(1), |ttl| ttl.precision);
        let ttl = precision.max(Duration::from_secs(1));
        // On a wall clock, requests take time to travel; on the paused clock they take none.
        let (margin, slack) = if self.virtual_time {
            (Duration::from_millis(1), Duration::from_millis(1))
        } else {
            (Duration::from_millis(250), Duration::from_millis(500))
        };
        TtlWindow {
            ttl,
            present_until: ttl - margin,
            absent_by: ttl + precision + slack,
        }
    }

    /// A ttl every backend that declares ttl support accepts (an hour, or its maximum if
    /// that is shorter), for cases that must also try a set with a ttl; `None` without ttl
    /// support.
    pub fn valid_ttl(&self) -> Option<Duration> {
        // Not rounded up to the precision: that could pass a maximum that is no multiple
        // of it; the store rounds.
        self.caps
            .ttl
            .map(|ttl| Duration::from_secs(3600).min(ttl.max))
    }

    /// `len`, or the declared maximum value size if that is smaller: a case that needs a
    /// sizeable value, but not one of exactly this size, still runs on a small store.
    pub fn value_len(&self, len: usize) -> usize {
        len.min(self.caps.max_value_bytes.unwrap_or(usize::MAX))
    }

    /// Waits long enough for a late write, a write-behind flush or a lagging replica to
    /// show: an hour on the paused clock (free), 300 ms on a wall clock.
    pub async fn pause(&self) {
        let length = if self.virtual_time {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(300)
        };
        tokio::time::sleep(length).await;
    }

    /// Sleeps until `offset` after `start` on the case's clock.
    pub async fn sleep_until(&self, start: Instant, offset: Duration) {
        tokio::time::sleep_until(start + offset).await;
    }

    /// `set`, with an unexpected error turned into a failure.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> CaseResult {
        self.backend
            .set(key, Bytes::copy_from_slice(value), ttl)
            .await
            .map_err(|err| {
                unexpected(Operation::Set, format!("set(ttl: {ttl:?})"), key, err).value(value)
            })
    }

    /// `get`, with an unexpected error turned into a failure.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, Failure> {
        self.backend
            .get(key)
            .await
            .map_err(|err| unexpected(Operation::Get, "get", key, err))
    }

    /// `exists`, with an unexpected error turned into a failure.
    pub async fn exists(&self, key: &str) -> Result<bool, Failure> {
        self.backend
            .exists(key)
            .await
            .map_err(|err| unexpected(Operation::Exists, "exists", key, err))
    }

    /// `delete`, with an unexpected error turned into a failure.
    pub async fn delete(&self, key: &str) -> Result<bool, Failure> {
        self.backend
            .delete(key)
            .await
            .map_err(|err| unexpected(Operation::Delete, "delete", key, err))
    }

    /// `get(key)` must return exactly `expected`.
    pub async fn expect_get(&self, check: &str, key: &str, expected: Option<&[u8]>) -> CaseResult {
        let got = self.get(key).await?;
        if got.as_deref() == expected {
            return Ok(());
        }
        let mut failure = Failure::new(check)
            .operation(Operation::Get)
            .key(key)
            .expected(Answer::Value(expected.map(Bytes::copy_from_slice)))
            .got(Answer::Value(got));
        if let Some(value) = expected {
            failure = failure.value(value);
        }
        Err(failure)
    }

    /// `exists(key)` must return `expected`.
    pub async fn expect_exists(&self, check: &str, key: &str, expected: bool) -> CaseResult {
        let got = self.exists(key).await?;
        expect_eq(check, key, Operation::Exists, expected, got)
    }

    /// `delete(key)` must return `expected`.
    pub async fn expect_delete(&self, check: &str, key: &str, expected: bool) -> CaseResult {
        let got = self.delete(key).await?;
        expect_eq(check, key, Operation::Delete, expected, got)
    }

    /// `get` returns `value` and `exists` returns true.
    pub async fn expect_present(&self, check: &str, key: &str, value: &[u8]) -> CaseResult {
        self.expect_get(check, key, Some(value)).await?;
        self.expect_exists(check, key, true).await
    }

    /// `get` returns `value` and `exists` returns true, judged only if both answers arrived
    /// before `deadline` (the entry's earliest legal expiry).
    pub async fn expect_present_before(
        &self,
        check: &str,
        key: &str,
        value: &[u8],
        deadline: Instant,
    ) -> Result<Observation, Failure> {
        let got = self.get(key).await?;
        let exists = self.exists(key).await?;
        if Instant::now() >= deadline {
            return Ok(Observation::TooLate);
        }
        if got.as_deref() != Some(value) {
            return Err(Failure::new(check)
                .operation(Operation::Get)
                .key(key)
                .value(value)
                .expected(Answer::Value(Some(Bytes::copy_from_slice(value))))
                .got(Answer::Value(got)));
        }
        expect_eq(check, key, Operation::Exists, true, exists)?;
        Ok(Observation::Judged)
    }

    /// Runs `attempt(n)` with n = 0, 1, … until one is judged, at most
    /// [`OBSERVATION_ATTEMPTS`] times; each attempt should use fresh keys.
    pub async fn until_judged<F, Fut>(&self, check: &str, mut attempt: F) -> CaseResult
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<Observation, Failure>>,
    {
        for n in 0..OBSERVATION_ATTEMPTS {
            if attempt(n).await? == Observation::Judged {
                return Ok(());
            }
        }
        Err(Failure::new(check)
            .expected("an answer that arrives before the entry may legally expire")
            .got(format!(
                "{OBSERVATION_ATTEMPTS} attempts, every answer too late to judge: the machine or \
                 the network is too slow for this ttl"
            )))
    }

    /// `get` returns `None` and `exists` returns false.
    pub async fn expect_absent(&self, check: &str, key: &str) -> CaseResult {
        self.expect_get(check, key, None).await?;
        self.expect_exists(check, key, false).await
    }
}

/// `result` must be an error of `kind`; `operation` is what produced it.
pub fn expect_error<T: Debug>(
    check: &str,
    operation: Operation,
    key: &str,
    result: Result<T, BackendError>,
    kind: ErrorKind,
) -> CaseResult {
    let failure = || {
        Failure::new(check)
            .operation(operation)
            .key(key)
            .expected(Answer::ErrorOfKind(kind))
    };
    match result {
        Err(err) if err.kind() == kind => Ok(()),
        Err(err) => Err(failure().got(Answer::Error {
            kind: err.kind(),
            message: err.to_string(),
        })),
        Ok(value) => Err(failure().got(Answer::Succeeded(short_debug(&value)))),
    }
}

/// Waits out the staleness a store declares (nothing for a linearizable one), so that a
/// read after a write judges what the store promised, not a lagging replica.
pub(crate) async fn wait_out_staleness(consistency: Consistency) {
    if let Consistency::Eventual { staleness } = consistency {
        tokio::time::sleep(staleness).await;
    }
}

pub(crate) fn expect_eq(
    check: &str,
    key: &str,
    operation: Operation,
    expected: bool,
    got: bool,
) -> CaseResult {
    if expected == got {
        return Ok(());
    }
    Err(Failure::new(check)
        .operation(operation)
        .key(key)
        .expected(Answer::Bool(expected))
        .got(Answer::Bool(got)))
}

pub(crate) fn unexpected(
    operation: Operation,
    call: impl Into<String>,
    key: &str,
    err: BackendError,
) -> Failure {
    Failure::new(format!("{} must succeed", call.into()))
        .operation(operation)
        .key(key)
        .expected(Answer::Succeeded("_".to_owned()))
        .got(Answer::Error {
            kind: err.kind(),
            message: err.to_string(),
        })
}

fn short_debug<T: Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    if text.len() <= 80 {
        return text;
    }
    let cut = (0..=80)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..cut])
}
