//! Cost of a write that must evict, in a store full at 10k entries and at 1M entries.
//!
//! If eviction scanned a shard, a write into the 1M-entry store would cost ~100× one into
//! the 10k-entry store; with the clock hand both cost about the same. A write into an
//! unbounded store of the same size (no eviction) is the same-run baseline for the price
//! of evicting at all. Rounds alternate so machine drift hits every variant alike.

use std::time::Instant;

use cachekit_backend_memory::{MemoryBackend, MemoryConfig, ENTRY_OVERHEAD_BYTES};
use cachekit_core::{Backend, Bytes};

const ROUNDS: usize = 5;
const WRITES_PER_ROUND: usize = 200_000;
const VALUE: &[u8] = b"sixteen byte val";

fn key(i: usize) -> String {
    format!("key-{i:012}")
}

fn budget_for(entries: usize) -> usize {
    entries * (key(0).len() + VALUE.len() + ENTRY_OVERHEAD_BYTES)
}

struct Variant {
    name: &'static str,
    backend: MemoryBackend,
    next_key: usize,
    samples: Vec<f64>,
}

impl Variant {
    async fn filled(name: &'static str, entries: usize, bounded: bool) -> Variant {
        let backend = MemoryBackend::with_config(MemoryConfig {
            max_bytes: bounded.then(|| budget_for(entries)),
            ..MemoryConfig::default()
        });
        for i in 0..entries {
            set(&backend, i).await;
        }
        Variant {
            name,
            backend,
            next_key: entries,
            samples: Vec::new(),
        }
    }

    async fn round(&mut self) {
        let started = Instant::now();
        for _ in 0..WRITES_PER_ROUND {
            set(&self.backend, self.next_key).await;
            self.next_key += 1;
        }
        let nanos = started.elapsed().as_nanos() as f64 / WRITES_PER_ROUND as f64;
        self.samples.push(nanos);
    }

    fn median(&self) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }
}

async fn set(backend: &MemoryBackend, i: usize) {
    if let Err(err) = backend.set(&key(i), Bytes::from_static(VALUE), None).await {
        panic!("set failed: {err}");
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick then.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("eviction: run with `cargo bench` to measure");
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("cannot build a runtime: {err}"),
    };
    runtime.block_on(async {
        let mut variants = vec![
            Variant::filled("full at 10k entries, evicting", 10_000, true).await,
            Variant::filled("full at 1M entries, evicting", 1_000_000, true).await,
        ];
        // The unbounded baseline starts at 1M entries too; it grows as it is written.
        variants.push(Variant::filled("1M entries, unbounded (baseline)", 1_000_000, false).await);
        for _ in 0..ROUNDS {
            for variant in &mut variants {
                variant.round().await;
            }
        }
        for variant in &variants {
            let stats = variant.backend.stats();
            println!(
                "{:<34} {:>8.1} ns/write  {:>5.2} records examined/write  {} evictions",
                variant.name,
                variant.median(),
                stats.records_examined as f64 / stats.writes as f64,
                stats.evictions,
            );
        }
        let small = variants[0].median();
        let large = variants[1].median();
        let baseline = variants[2].median();
        println!("ratio 1M/10k evicting write: {:.3}", large / small);
        println!(
            "ratio evicting/unbounded write at 1M: {:.3}",
            large / baseline
        );
    });
}
