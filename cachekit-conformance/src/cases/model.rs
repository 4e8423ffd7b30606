//! Model-based testing: random operation sequences, checked step by step against a
//! `HashMap`, shrunk to a minimal failing sequence with proptest's value trees.
//!
//! The case count comes from `CACHEKIT_PROPTEST_CASES` (default 64); the seed from the
//! run's seed (`CACHEKIT_SEED`), so a failure replays exactly.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use cachekit_core::{BackendError, Bytes};
use futures::stream::{self, StreamExt};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::failure::{preview_bytes, Answer, Operation};
use crate::{CaseResult, Ctx, Failure};

/// Environment variable: how many random sequences the model case runs.
pub const CASES_ENV: &str = "CACHEKIT_PROPTEST_CASES";

/// A small key space whose names differ only in ways a sloppy backend conflates.
const KEYS: [&str; 4] = ["k", "K", "k/x", "k%2Fx"];
const MAX_SHRINK_STEPS: usize = 512;
/// Sequences replayed at once (each on its own keys).
const SEQUENCES_IN_FLIGHT: usize = 8;
const PASSED_ALONE: &str = "it passed when replayed alone: the store answered differently \
                            while other sequences ran beside it, so it was not shrunk";

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Set(usize, Vec<u8>),
    SetWithTtl(usize, Vec<u8>),
    Delete(usize),
    Exists(usize),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get(k) => write!(f, "get({:?})", KEYS[*k]),
            Op::Set(k, v) => write!(f, "set({:?}, {})", KEYS[*k], preview_bytes(v)),
            Op::SetWithTtl(k, v) => {
                write!(f, "set({:?}, {}, ttl 1h)", KEYS[*k], preview_bytes(v))
            }
            Op::Delete(k) => write!(f, "delete({:?})", KEYS[*k]),
            Op::Exists(k) => write!(f, "exists({:?})", KEYS[*k]),
        }
    }
}

fn operations(with_ttl: bool) -> impl Strategy<Value = Vec<Op>> {
    let key = 0..KEYS.len();
    let value = vec(any::<u8>(), 0..6);
    let ttl_weight = if with_ttl { 1 } else { 0 };
    let op = prop_oneof![
        3 => key.clone().prop_map(Op::Get),
        3 => (key.clone(), value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        ttl_weight => (key.clone(), value).prop_map(|(k, v)| Op::SetWithTtl(k, v)),
        2 => key.clone().prop_map(Op::Delete),
        2 => key.prop_map(Op::Exists),
    ];
    vec(op, 1..32)
}

struct Divergence {
    step: usize,
    operation: Operation,
    expected: Answer,
    got: Answer,
}

fn error_answer(err: BackendError) -> Answer {
    Answer::Error {
        kind: err.kind(),
        message: err.to_string(),
    }
}

async fn replay(ctx: &Ctx, attempt: usize, ops: &[Op]) -> Result<(), Divergence> {
    let keys: Vec<String> = KEYS
        .iter()
        .map(|name| ctx.key(&format!("{attempt}/{name}")))
        .collect();
    let mut model: HashMap<usize, Vec<u8>> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let backend = &ctx.backend;
        let (operation, expected, got) = match op {
            Op::Get(k) => {
                let expected = Answer::Value(model.get(k).map(|v| Bytes::from(v.clone())));
                let got = backend
                    .get(&keys[*k])
                    .await
                    .map_or_else(error_answer, Answer::Value);
                (Operation::Get, expected, got)
            }
            Op::Set(k, v) | Op::SetWithTtl(k, v) => {
                let ttl = matches!(op, Op::SetWithTtl(..)).then(|| Duration::from_secs(3600));
                let got = match backend.set(&keys[*k], Bytes::from(v.clone()), ttl).await {
                    Ok(()) => Answer::unit(),
                    Err(err) => error_answer(err),
                };
                model.insert(*k, v.clone());
                (Operation::Set, Answer::unit(), got)
            }
            Op::Delete(k) => {
                let expected = Answer::Bool(model.remove(k).is_some());
                let got = backend
                    .delete(&keys[*k])
                    .await
                    .map_or_else(error_answer, Answer::Bool);
                (Operation::Delete, expected, got)
            }
            Op::Exists(k) => {
                let expected = Answer::Bool(model.contains_key(k));
                let got = backend
                    .exists(&keys[*k])
                    .await
                    .map_or_else(error_answer, Answer::Bool);
                (Operation::Exists, expected, got)
            }
        };
        if expected != got {
            return Err(Divergence {
                step,
                operation,
                expected,
                got,
            });
        }
    }
    Ok(())
}

fn case_count() -> usize {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(64)
}

fn rng_for(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Any sequence of operations behaves like a HashMap.
pub async fn random_operation_sequences_match_a_hashmap_model(ctx: Ctx) -> CaseResult {
    let cases = case_count();
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng_for(ctx.seed));
    let strategy = operations(ctx.caps.ttl.is_some());
    let mut trees = Vec::with_capacity(cases);
    for _ in 0..cases {
        trees.push(strategy.new_tree(&mut runner).map_err(|reason| {
            Failure::new("generate a random sequence").got(reason.to_string())
        })?);
    }
    // Each sequence has its own keys, so they can run side by side; against a remote store
    // one at a time would make this case as long as 64 sequences of round trips. Every
    // sequence runs to its end (none is cut off mid-request), and the failure reported is
    // the first failing sequence in order, whatever finished first.
    let outcomes: Vec<Option<Divergence>> = stream::iter(trees.iter().enumerate())
        .map(|(index, tree)| {
            let ops = tree.current();
            let ctx = &ctx;
            async move { replay(ctx, index + 1, &ops).await.err() }
        })
        .buffered(SEQUENCES_IN_FLIGHT)
        .collect()
        .await;
    let Some((case, first)) = outcomes
        .into_iter()
        .enumerate()
        .find_map(|(index, outcome)| outcome.map(|divergence| (index, divergence)))
    else {
        return Ok(());
    };
    let mut tree = trees.swap_remove(case);
    let mut attempt = cases + 1;
    let original_len = tree.current().len();
    let alone = replay(&ctx, attempt, &tree.current()).await;
    let mut minimal = (tree.current(), first);
    let Err(divergence) = alone else {
        let failure = divergence_failure(&ctx, case, cases, original_len, minimal);
        return Err(failure.note(PASSED_ALONE));
    };
    minimal.1 = divergence;
    // proptest's shrinking protocol: simplify while it still fails, complicate once it passes.
    let mut more = tree.simplify();
    let mut steps = 0;
    while more && steps < MAX_SHRINK_STEPS {
        steps += 1;
        attempt += 1;
        match replay(&ctx, attempt, &tree.current()).await {
            Err(divergence) => {
                minimal = (tree.current(), divergence);
                more = tree.simplify();
            }
            Ok(()) => more = tree.complicate(),
        }
    }
    Err(divergence_failure(&ctx, case, cases, original_len, minimal))
}

/// The failure for sequence `case` (0-based) of `cases`, shrunk from `original_len`
/// operations to `minimal`.
fn divergence_failure(
    ctx: &Ctx,
    case: usize,
    cases: usize,
    original_len: usize,
    minimal: (Vec<Op>, Divergence),
) -> Failure {
    let (ops, divergence) = minimal;
    let steps: Vec<String> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let marker = if i == divergence.step {
                "   <- diverges"
            } else {
                ""
            };
            format!("{op}{marker}")
        })
        .collect();
    Failure::new(format!(
        "random sequence {} of {cases} against a HashMap model, step {} of the shrunk \
         sequence ({original_len} operations before shrinking): {}",
        case + 1,
        divergence.step + 1,
        ops[divergence.step]
    ))
    .operation(divergence.operation)
    .expected(divergence.expected)
    .got(divergence.got)
    .steps(steps)
    .note("the keys of one sequence share one fresh prefix")
    .seed(ctx.seed)
}
