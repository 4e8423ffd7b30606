//! The hit path of `#[cachekit::cache]` on the memory backend — key hash, backend get,
//! envelope decode — beside a bare backend `get` of the same bytes, same run.
//!
//! Rounds alternate between the two; the medians of ns/op are reported with their ratio.

use std::time::{Duration, Instant};

use cachekit::{Backend, Cache, CacheKey};
use cachekit_backend_memory::MemoryBackend;
use serde::{Deserialize, Serialize};

const ROUNDS: usize = 9;
const OPS_PER_ROUND: u32 = 200_000;

#[derive(Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    languages: Vec<String>,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("hit_path: run with `cargo bench` to measure");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cache = Cache::new(MemoryBackend::new());
        let namespace = "bench::user_profile";
        let key = CacheKey::for_call(namespace, 1, &(42u64, "en")).expect("key");
        let stored: Profile = cache
            .get_or_compute(&key, Some(Duration::from_secs(3600)), || async {
                Profile {
                    id: 42,
                    name: "alice".to_owned(),
                    languages: vec!["en".to_owned(), "fr".to_owned()],
                }
            })
            .await;
        assert_eq!(stored.id, 42);
        let backend = cache.backend().clone();

        let (mut cached, mut bare) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for _ in 0..OPS_PER_ROUND {
                let key = CacheKey::for_call(namespace, 1, &(42u64, "en")).expect("key");
                let profile: Profile = cache
                    .get_or_compute(&key, None, || async { unreachable!("a hit") })
                    .await;
                std::hint::black_box(profile);
            }
            cached.push(started.elapsed().as_nanos() as f64 / f64::from(OPS_PER_ROUND));

            let started = Instant::now();
            for _ in 0..OPS_PER_ROUND {
                let bytes = backend.get(key.as_str()).await.expect("get");
                std::hint::black_box(bytes);
            }
            bare.push(started.elapsed().as_nanos() as f64 / f64::from(OPS_PER_ROUND));
        }
        let stats = cache.stats();
        assert_eq!(stats.misses, 1, "{stats:?}");
        let (cached, bare) = (median(cached), median(bare));
        println!(
            "hit path: cached call {cached:.0} ns/op (key hash + get + decode), bare backend get \
             {bare:.0} ns/op, ratio {:.2}",
            cached / bare
        );
    });
}
