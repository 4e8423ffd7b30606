//! Recording a history: concurrent clients issuing seeded random operations.

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, Bytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::{nanos, Answered, Call, Consistency, ExpiryTolerance, History, Op};

/// The kind recorded for an operation the recorder abandoned.
pub const CANCELLED: &str = "cancelled";

/// What the clients of a recorded history do.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Operations each client issues at most.
    pub ops_per_client: usize,
    /// A client stops issuing new operations once this long has passed, if set.
    pub run_for: Option<Duration>,
    /// The longest pause a client makes between two operations (each pause is random
    /// between zero and this).
    pub max_pause: Duration,
    /// The ttls sets choose from; empty: no set has a ttl.
    pub ttls: Vec<Duration>,
    /// Whether a set may also have no ttl (as likely as each ttl of `ttls`).
    pub plain_sets: bool,
    /// How often each operation is chosen.
    pub mix: OpMix,
    /// An operation still unanswered after this long is abandoned and recorded as
    /// indeterminate (a cancellation).
    pub op_timeout: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Workload {
    /// A short workload: `ops_per_client` operations per client, pauses up to `max_pause`.
    pub fn new(ops_per_client: usize, max_pause: Duration, seed: u64) -> Self {
        Workload {
            ops_per_client,
            run_for: None,
            max_pause,
            ttls: Vec::new(),
            plain_sets: true,
            mix: OpMix::BALANCED,
            op_timeout: Duration::from_secs(30),
            seed,
        }
    }
}

/// Relative weights of the four operations in a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpMix {
    /// Weight of `set`.
    pub set: u32,
    /// Weight of `get`.
    pub get: u32,
    /// Weight of `exists`.
    pub exists: u32,
    /// Weight of `delete`.
    pub delete: u32,
}

impl OpMix {
    /// Writes about as often as reads: keys change hands all the time.
    pub const BALANCED: OpMix = OpMix {
        set: 7,
        get: 6,
        exists: 3,
        delete: 4,
    };
    /// Mostly reads: an entry usually lives long enough to be seen expire.
    pub const READ_MOSTLY: OpMix = OpMix {
        set: 5,
        get: 61,
        exists: 32,
        delete: 2,
    };

    fn choose(&self, rng: &mut StdRng) -> Option<usize> {
        let weights = [self.set, self.get, self.exists, self.delete];
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.gen_range(0..total);
        weights.iter().position(|weight| {
            if pick < *weight {
                true
            } else {
                pick -= weight;
                false
            }
        })
    }
}

/// Runs one client per backend in `clients` concurrently on `keys`, and records what each
/// operation asked, when, and what it answered.
///
/// `clients` may hold the same backend more than once (a store whose instances do not
/// share entries is shared by its clients instead).
pub async fn record_history(
    clients: Vec<Arc<dyn Backend>>,
    keys: Vec<String>,
    workload: &Workload,
    consistency: Consistency,
    expiry: Option<ExpiryTolerance>,
) -> History {
    let declared = clients.first().map(|backend| backend.capabilities());
    let backend = declared
        .as_ref()
        .map(|caps| caps.backend_type.clone())
        .unwrap_or_default();
    let may_evict = declared.is_some_and(|caps| caps.may_evict);
    let started = Instant::now();
    let runs = clients
        .iter()
        .enumerate()
        .map(|(client, backend)| run_client(client, backend.as_ref(), &keys, workload, started));
    let mut ops: Vec<Op> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    ops.sort_by_key(|op| (op.invoked, op.client));
    History {
        backend,
        seed: workload.seed,
        keys,
        clients: clients.len(),
        consistency,
        expiry,
        may_evict,
        ops,
    }
}

fn nanos_since(started: Instant) -> u64 {
    nanos(started.elapsed())
}

async fn run_client(
    client: usize,
    backend: &dyn Backend,
    keys: &[String],
    workload: &Workload,
    started: Instant,
) -> Vec<Op> {
    let mut rng =
        StdRng::seed_from_u64(workload.seed ^ (client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut ops = Vec::with_capacity(workload.ops_per_client.min(4096));
    for number in 0..workload.ops_per_client {
        if workload
            .run_for
            .is_some_and(|limit| started.elapsed() >= limit)
        {
            break;
        }
        let pause = rng.gen_range(0..=nanos(workload.max_pause));
        if pause > 0 {
            tokio::time::sleep(Duration::from_nanos(pause)).await;
        }
        let key = rng.gen_range(0..keys.len().max(1));
        let Some(name) = keys.get(key) else {
            break;
        };
        let Some(choice) = workload.mix.choose(&mut rng) else {
            break;
        };
        let call = match choice {
            0 => {
                let plain = usize::from(workload.plain_sets || workload.ttls.is_empty());
                let choice = rng.gen_range(0..workload.ttls.len() + plain);
                Call::Set {
                    value: format!("c{client}.{number}"),
                    ttl_nanos: workload.ttls.get(choice).map(|ttl| nanos(*ttl)),
                }
            }
            1 => Call::Get,
            2 => Call::Exists,
            _ => Call::Delete,
        };
        let invoked = nanos_since(started);
        let answered = tokio::time::timeout(workload.op_timeout, perform(backend, name, &call))
            .await
            .unwrap_or_else(|_| Answered::Indeterminate {
                kind: CANCELLED.to_owned(),
                message: format!("no answer within {:?}", workload.op_timeout),
            });
        ops.push(Op {
            client,
            key,
            call,
            invoked,
            returned: nanos_since(started),
            answered,
        });
    }
    ops
}

async fn perform(backend: &dyn Backend, key: &str, call: &Call) -> Answered {
    let answer = match call {
        Call::Set { value, ttl_nanos } => backend
            .set(
                key,
                Bytes::from(value.clone().into_bytes()),
                ttl_nanos.map(Duration::from_nanos),
            )
            .await
            .map(|()| Answered::Stored),
        Call::Get => backend.get(key).await.map(|value| {
            Answered::Value(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        }),
        Call::Exists => backend.exists(key).await.map(Answered::Bool),
        Call::Delete => backend.delete(key).await.map(Answered::Bool),
    };
    answer.unwrap_or_else(|err| Answered::Indeterminate {
        kind: err.kind().wire_name().to_owned(),
        message: err.message().to_owned(),
    })
}
