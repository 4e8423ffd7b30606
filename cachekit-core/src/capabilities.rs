//! What a backend declares about itself, and the argument checks that follow from it.

use std::time::Duration;

use crate::error::{BackendError, Result};

/// The longest ttl the cachekit protocol accepts: 30 days.
pub const PROTOCOL_MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Which clock a backend's expiry follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Real time; conformance checks on ttl have to wait for it.
    Wall,
    /// `tokio::time::Instant`, so a paused tokio runtime controls expiry and ttl checks
    /// cost no wall time. Only in-process backends can honestly claim this.
    Tokio,
}

/// How current a read is, as a backend declares it; the conformance kit's concurrent
/// histories are checked against this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Every operation takes effect at one instant between its call and its answer: what
    /// a single store (one process, one primary) gives.
    #[default]
    Linearizable,
    /// Writes are linearizable, but a read may return what was current up to `staleness`
    /// before it was called (a lagging replica, a near cache), and replicas converge within
    /// that bound.
    Eventual {
        /// The longest a read may lag behind the writes.
        staleness: Duration,
    },
}

/// How a backend supports per-entry expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlSupport {
    /// The granularity expiry is stored at; shorter ttls are rounded up to it.
    pub precision: Duration,
    /// The longest ttl accepted; longer ones fail with `InvalidArgument`.
    pub max: Duration,
}

impl TtlSupport {
    /// Second-granular expiry up to the protocol maximum, as an HTTP or DynamoDB store has.
    pub const SECONDS: TtlSupport = TtlSupport {
        precision: Duration::from_secs(1),
        max: PROTOCOL_MAX_TTL,
    };

    /// Rounds `ttl` up to a whole multiple of the precision.
    pub fn round_up(&self, ttl: Duration) -> Duration {
        let step = self.precision.as_nanos().max(1);
        let steps = ttl.as_nanos().div_ceil(step);
        let nanos = steps.saturating_mul(step);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// What a backend declares about itself, so callers and the conformance kit know
/// which rules apply to it instead of guessing.
///
/// Built with [`Capabilities::new`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use cachekit_core::{Capabilities, TtlSupport};
///
/// let caps = Capabilities::new("my-store")
///     .with_ttl(TtlSupport::SECONDS)
///     .with_max_key_bytes(250)
///     .with_max_value_bytes(1 << 20);
/// assert_eq!(caps.check_ttl(Some(Duration::from_millis(1))).unwrap(), Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// A short name of the backend type, e.g. `memory`, `http`, `dynamodb`.
    pub backend_type: String,
    /// Expiry support; `None` means ttls are rejected with `InvalidArgument`.
    pub ttl: Option<TtlSupport>,
    /// Longest key in UTF-8 bytes, if bounded.
    pub max_key_bytes: Option<usize>,
    /// Largest value in bytes, if bounded.
    pub max_value_bytes: Option<usize>,
    /// Keys this backend cannot represent and rejects with `InvalidKey` (e.g. `.` and `..`
    /// over HTTP, where URL parsers collapse dot segments).
    pub rejected_keys: Vec<String>,
    /// Whether two instances built from the same configuration see the same entries.
    pub shared_across_instances: bool,
    /// Whether entries may disappear before their ttl (capacity eviction).
    pub may_evict: bool,
    /// Which clock expiry follows.
    pub clock: Clock,
    /// How current its reads are.
    pub consistency: Consistency,
}

impl Capabilities {
    /// Defaults for a remote store: second-precision ttl up to 30 days, unbounded keys and values,
    /// no eviction, wall clock. Narrow them with the `with_*` methods.
    pub fn new(backend_type: impl Into<String>) -> Self {
        Capabilities {
            backend_type: backend_type.into(),
            ttl: Some(TtlSupport::SECONDS),
            max_key_bytes: None,
            max_value_bytes: None,
            rejected_keys: Vec::new(),
            shared_across_instances: false,
            may_evict: false,
            clock: Clock::Wall,
            consistency: Consistency::Linearizable,
        }
    }

    /// Declares ttl support.
    pub fn with_ttl(mut self, ttl: TtlSupport) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Declares that ttls are not supported.
    pub fn without_ttl(mut self) -> Self {
        self.ttl = None;
        self
    }

    /// Declares the longest key, in UTF-8 bytes.
    pub fn with_max_key_bytes(mut self, max: usize) -> Self {
        self.max_key_bytes = Some(max);
        self
    }

    /// Declares the largest value, in bytes.
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = Some(max);
        self
    }

    /// Declares keys that are rejected with `InvalidKey` although they are within the length limit.
    pub fn with_rejected_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rejected_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Declares whether separate instances share one store.
    pub fn with_shared_across_instances(mut self, shared: bool) -> Self {
        self.shared_across_instances = shared;
        self
    }

    /// Declares whether entries may be evicted before their ttl.
    pub fn with_may_evict(mut self, may_evict: bool) -> Self {
        self.may_evict = may_evict;
        self
    }

    /// Declares the clock expiry follows.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Declares how current reads are (linearizable unless said otherwise).
    pub fn with_consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Rejects keys this backend cannot store: empty, longer than declared, or declared as rejected.
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(BackendError::invalid_key(
                "the empty key is not a valid key",
            ));
        }
        if let Some(max) = self.max_key_bytes {
            if key.len() > max {
                return Err(BackendError::invalid_key(format!(
                    "key is {} bytes, the limit of {} is {max}",
                    key.len(),
                    self.backend_type
                )));
            }
        }
        if self.rejected_keys.iter().any(|rejected| rejected == key) {
            return Err(BackendError::invalid_key(format!(
                "key {key:?} cannot be represented by {}",
                self.backend_type
            )));
        }
        Ok(())
    }

    /// Rejects values larger than the declared maximum.
    pub fn check_value(&self, value: &[u8]) -> Result<()> {
        match self.max_value_bytes {
            Some(max) if value.len() > max => Err(BackendError::value_too_large(format!(
                "value is {} bytes, the limit of {} is {max}",
                value.len(),
                self.backend_type
            ))),
            _ => Ok(()),
        }
    }

    /// Validates a ttl and rounds it up to the declared precision.
    ///
    /// Zero, anything above the declared maximum, and any ttl on a backend without ttl
    /// support fail with `InvalidArgument`; a silent "no ttl" would keep entries forever.
    pub fn check_ttl(&self, ttl: Option<Duration>) -> Result<Option<Duration>> {
        let Some(ttl) = ttl else { return Ok(None) };
        let Some(support) = self.ttl else {
            return Err(BackendError::invalid_argument(format!(
                "{} does not support ttl",
                self.backend_type
            )));
        };
        if ttl.is_zero() {
            return Err(BackendError::invalid_argument(
                "a ttl of zero is not allowed; omit the ttl for a persistent entry",
            ));
        }
        if ttl > support.max {
            return Err(BackendError::invalid_argument(format!(
                "ttl of {ttl:?} exceeds the maximum of {:?}",
                support.max
            )));
        }
        Ok(Some(support.round_up(ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn kind<T: std::fmt::Debug>(result: Result<T>) -> ErrorKind {
        match result {
            Err(err) => err.kind(),
            Ok(value) => panic!("expected an error, got Ok({value:?})"),
        }
    }

    #[test]
    fn ttl_rounds_up_to_precision_and_rejects_zero_and_too_long() {
        let caps = Capabilities::new("t").with_ttl(TtlSupport::SECONDS);
        assert_eq!(
            caps.check_ttl(Some(Duration::from_millis(1001))).ok(),
            Some(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            caps.check_ttl(Some(Duration::from_secs(3))).ok(),
            Some(Some(Duration::from_secs(3)))
        );
        assert_eq!(caps.check_ttl(None).ok(), Some(None));
        assert_eq!(
            kind(caps.check_ttl(Some(Duration::ZERO))),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(caps.check_ttl(Some(PROTOCOL_MAX_TTL + Duration::from_secs(1)))),
            ErrorKind::InvalidArgument
        );
        assert!(caps.check_ttl(Some(PROTOCOL_MAX_TTL)).is_ok());
    }

    #[test]
    fn ttl_on_backend_without_ttl_is_invalid_argument() {
        let caps = Capabilities::new("t").without_ttl();
        assert_eq!(
            kind(caps.check_ttl(Some(Duration::from_secs(1)))),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn key_limits_count_bytes_not_chars() {
        let caps = Capabilities::new("t")
            .with_max_key_bytes(4)
            .with_rejected_keys([".", ".."]);
        assert!(caps.check_key("abcd").is_ok());
        assert_eq!(kind(caps.check_key("ééé")), ErrorKind::InvalidKey);
        assert_eq!(kind(caps.check_key("")), ErrorKind::InvalidKey);
        assert_eq!(kind(caps.check_key("..")), ErrorKind::InvalidKey);
        assert!(caps.check_key("...").is_ok());
    }

    #[test]
    fn value_limit_is_inclusive() {
        let caps = Capabilities::new("t").with_max_value_bytes(3);
        assert!(caps.check_value(b"abc").is_ok());
        assert_eq!(kind(caps.check_value(b"abcd")), ErrorKind::ValueTooLarge);
    }
}
