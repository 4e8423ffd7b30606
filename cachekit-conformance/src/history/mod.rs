//! Concurrent histories and their linearizability check, with expiry.
//!
//! Clients issue operations on a few keys at once; each operation is recorded with the
//! instants it was invoked and answered ([`record`]). The checker ([`check`]) then asks
//! whether some order of those operations, each placed at one instant between its
//! invocation and its answer, explains every answer with a register per key whose value
//! may expire. Operations that failed with a timeout or a lost connection are
//! *indeterminate*: they may have taken effect at any later instant, or never.
//!
//! The search is Wing and Gong's, with Lowe's memoisation (as in porcupine), over each
//! key's sub-history on its own. It is bounded in time: running out says "unknown", never
//! "linearizable". A failing key's sub-history is shrunk ([`check::shrink`]) and shown as a
//! timeline per client, in text and as a self-contained HTML page ([`render`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod check;
pub mod record;
pub mod render;
pub mod under_faults;

pub use check::{check_history, Verdict};
pub use record::{record_history, OpMix, Workload};

/// What one operation asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// `set(key, value, ttl)`; values are unique within a history, so a read names its write.
    Set {
        /// The value written, as text.
        value: String,
        /// Its ttl in nanoseconds, if any.
        ttl_nanos: Option<u64>,
    },
    /// `get(key)`.
    Get,
    /// `exists(key)`.
    Exists,
    /// `delete(key)`.
    Delete,
}

/// What one operation answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "answer", rename_all = "snake_case")]
pub enum Answered {
    /// A set that succeeded.
    Stored,
    /// A get's answer: the value read (lossy text of its bytes), or `None` when absent.
    Value(Option<String>),
    /// An `exists` or `delete` answer.
    Bool(bool),
    /// An error (a timeout, a lost connection, a cancellation, or any other): the effect is
    /// unknown, so the operation may have taken effect at any instant after its
    /// invocation, or never.
    Indeterminate {
        /// The error's kind as its wire name (`timeout`, `unavailable`, …), or `cancelled`.
        kind: String,
        /// The error's message.
        message: String,
    },
}

/// One recorded operation. Instants are nanoseconds since the history began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client that issued it (each client issues one operation at a time).
    pub client: usize,
    /// The key, as an index into [`History::keys`].
    pub key: usize,
    /// What was asked.
    pub call: Call,
    /// When it was sent.
    pub invoked: u64,
    /// When the answer arrived.
    pub returned: u64,
    /// The answer.
    pub answered: Answered,
}

impl Op {
    /// Whether the operation's effect is unknown.
    pub fn is_indeterminate(&self) -> bool {
        matches!(self.answered, Answered::Indeterminate { .. })
    }

    /// Whether it can change the state (a set or a delete).
    pub fn is_write(&self) -> bool {
        matches!(self.call, Call::Set { .. } | Call::Delete)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.call {
            Call::Set {
                value,
                ttl_nanos: None,
            } => write!(f, "set({value})")?,
            Call::Set {
                value,
                ttl_nanos: Some(ttl),
            } => write!(f, "set({value}, ttl {:?})", Duration::from_nanos(*ttl))?,
            Call::Get => write!(f, "get")?,
            Call::Exists => write!(f, "exists")?,
            Call::Delete => write!(f, "delete")?,
        }
        match &self.answered {
            Answered::Stored => Ok(()),
            Answered::Value(Some(value)) => write!(f, " -> {value}"),
            Answered::Value(None) => write!(f, " -> absent"),
            Answered::Bool(answer) => write!(f, " -> {answer}"),
            Answered::Indeterminate { kind, .. } => write!(f, " -> ? ({kind})"),
        }
    }
}

/// How consistent the store under test claims to be, which decides the checker's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Consistency {
    /// Every operation takes effect at one instant between its invocation and its answer.
    Linearizable,
    /// Writes are linearizable; a read may return what was current up to `staleness_nanos`
    /// before it was invoked (a lagging replica), and converges within that bound.
    Eventual {
        /// The declared bound on how old a read may be.
        staleness_nanos: u64,
    },
}

/// `duration` in nanoseconds, the unit every instant of a history is kept in (saturating:
/// 584 years is past any history).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl From<cachekit_core::Consistency> for Consistency {
    fn from(declared: cachekit_core::Consistency) -> Self {
        match declared {
            cachekit_core::Consistency::Linearizable => Consistency::Linearizable,
            cachekit_core::Consistency::Eventual { staleness } => Consistency::Eventual {
                staleness_nanos: nanos(staleness),
            },
        }
    }
}

/// How long an entry set with a ttl lives, around its ttl: it must be present for at least
/// `ttl - early` after the set was invoked, and absent from
/// `round_up(ttl) + precision + late` after it returned. In between, both answers are legal, but once a read
/// saw it absent it stays absent until the next set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryTolerance {
    /// The declared ttl precision in nanoseconds (ttls are rounded up to it).
    pub precision_nanos: u64,
    /// How much earlier than its ttl an entry may be seen gone (clock and transit slack).
    pub early_nanos: u64,
    /// How much later than its rounded-up ttl plus precision it may still be seen.
    pub late_nanos: u64,
}

impl ExpiryTolerance {
    /// The earliest and the latest instant, relative to the set, an entry with `ttl` expires.
    pub fn window(&self, ttl: u64) -> (u64, u64) {
        let step = self.precision_nanos.max(1);
        let rounded = ttl.div_ceil(step).saturating_mul(step);
        (
            ttl.saturating_sub(self.early_nanos),
            rounded
                .saturating_add(self.precision_nanos)
                .saturating_add(self.late_nanos),
        )
    }
}

/// A recorded history: the keys it used and every operation, in invocation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The backend type it was recorded against.
    pub backend: String,
    /// The seed that chose its operations.
    pub seed: u64,
    /// The keys, by index.
    pub keys: Vec<String>,
    /// How many clients issued operations.
    pub clients: usize,
    /// The model it is checked against.
    pub consistency: Consistency,
    /// Expiry tolerance, when ttls were used.
    pub expiry: Option<ExpiryTolerance>,
    /// Whether the store may evict entries early: then a read may find any entry gone
    /// (but once gone it stays gone until the next set).
    #[serde(default)]
    pub may_evict: bool,
    /// Every operation.
    pub ops: Vec<Op>,
}

impl History {
    /// The operations on one key, in invocation order.
    pub fn ops_on(&self, key: usize) -> Vec<Op> {
        self.ops
            .iter()
            .filter(|op| op.key == key)
            .cloned()
            .collect()
    }

    /// How many operations have a known outcome.
    pub fn determinate_count(&self) -> usize {
        self.ops.iter().filter(|op| !op.is_indeterminate()).count()
    }

    /// The history as pretty JSON, for saving next to a failure.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
    }
}
