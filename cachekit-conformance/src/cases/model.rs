//! Model-based testing: random operation sequences, checked step by step against a
//! `HashMap`, shrunk to a minimal failing sequence with proptest's value trees.
//!
//! The case count comes from `CACHEKIT_PROPTEST_CASES` (default 64); the seed from the
//! run's seed (`CACHEKIT_SEED`), so a failure replays exactly.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use cachekit_core::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::failure::{preview_bytes, preview_option};
use crate::{CaseResult, Ctx, Failure, SEED_ENV};

/// Environment variable: how many random sequences the model case runs.
pub const CASES_ENV: &str = "CACHEKIT_PROPTEST_CASES";

/// A small key space whose names differ only in ways a sloppy backend conflates.
const KEYS: [&str; 4] = ["k", "K", "k/x", "k%2Fx"];
const MAX_SHRINK_STEPS: usize = 512;

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
    expected: String,
    got: String,
}

async fn replay(ctx: &Ctx, attempt: usize, ops: &[Op]) -> Result<(), Divergence> {
    let keys: Vec<String> = KEYS
        .iter()
        .map(|name| ctx.key(&format!("{attempt}/{name}")))
        .collect();
    let mut model: HashMap<usize, Vec<u8>> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let diverged = |expected: String, got: String| Divergence {
            step,
            expected,
            got,
        };
        let backend = &ctx.backend;
        match op {
            Op::Get(k) => {
                let expected = preview_option(model.get(k).map(Vec::as_slice));
                match backend.get(&keys[*k]).await {
                    Ok(got) if got.as_deref() == model.get(k).map(Vec::as_slice) => {}
                    Ok(got) => return Err(diverged(expected, preview_option(got.as_deref()))),
                    Err(err) => return Err(diverged(expected, format!("error: {err}"))),
                }
            }
            Op::Set(k, v) | Op::SetWithTtl(k, v) => {
                let ttl = matches!(op, Op::SetWithTtl(..)).then(|| Duration::from_secs(3600));
                if let Err(err) = backend.set(&keys[*k], Bytes::from(v.clone()), ttl).await {
                    return Err(diverged("Ok".into(), format!("error: {err}")));
                }
                model.insert(*k, v.clone());
            }
            Op::Delete(k) => {
                let expected = model.remove(k).is_some();
                match backend.delete(&keys[*k]).await {
                    Ok(got) if got == expected => {}
                    Ok(got) => return Err(diverged(expected.to_string(), got.to_string())),
                    Err(err) => {
                        return Err(diverged(expected.to_string(), format!("error: {err}")))
                    }
                }
            }
            Op::Exists(k) => {
                let expected = model.contains_key(k);
                match backend.exists(&keys[*k]).await {
                    Ok(got) if got == expected => {}
                    Ok(got) => return Err(diverged(expected.to_string(), got.to_string())),
                    Err(err) => {
                        return Err(diverged(expected.to_string(), format!("error: {err}")))
                    }
                }
            }
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
    let mut attempt = 0;
    for case in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|reason| Failure::new("generate a random sequence").got(reason.to_string()))?;
        attempt += 1;
        let Err(first) = replay(&ctx, attempt, &tree.current()).await else {
            continue;
        };
        let original_len = tree.current().len();
        let mut minimal = (tree.current(), first);
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
        let (ops, divergence) = minimal;
        let listing: Vec<String> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                format!(
                    "{:>3}. {op}{}",
                    i + 1,
                    if i == divergence.step {
                        "   <- diverges"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        return Err(Failure::new(format!(
            "random sequence {} of {cases} against a HashMap model (shrunk from {original_len} to {} operations)",
            case + 1,
            ops.len()
        ))
        .expected(format!("step {}: {} -> {}", divergence.step + 1, ops[divergence.step], divergence.expected))
        .got(format!("step {}: {} -> {}", divergence.step + 1, ops[divergence.step], divergence.got))
        .note(format!("minimal failing sequence (keys share one fresh prefix):\n{}", listing.join("\n")))
        .note(format!("replay with {SEED_ENV}={}", ctx.seed)));
    }
    Ok(())
}
