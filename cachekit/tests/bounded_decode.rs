//! Decoding what a backend returns is bounded by the bytes actually there: a length prefix
//! inside the MessagePack cannot make the decoder allocate more, and a stored value over the
//! cache's limit is a counted miss that is never decoded.
//!
//! Its own test binary, whose tests take turns, because one measures the process's
//! allocations.

use std::alloc::System;
use std::sync::{Arc, Mutex, MutexGuard};

use cachekit::{Backend, Bytes, Cache, CacheKey};
use cachekit_backend_memory::{MemoryBackend, MemoryConfig};
use serde::{Deserialize, Serialize};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A recursive type: every level of nesting is a `Vec` serde preallocates for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    children: Vec<Tree>,
}

/// The envelope header this build writes before a `T`'s MessagePack: the stored bytes of
/// `value`, less its `payload_len` bytes of payload.
async fn envelope_header<T>(value: T, payload_len: usize) -> Vec<u8>
where
    T: Serialize + serde::de::DeserializeOwned + Clone,
{
    let cache = Cache::new(MemoryBackend::new());
    let key = CacheKey::for_call("header", 1, &()).expect("key");
    let _: T = cache
        .get_or_compute(&key, None, || async { value.clone() })
        .await;
    let stored = cache
        .backend()
        .get(key.as_str())
        .await
        .expect("get")
        .expect("stored");
    stored[..stored.len() - payload_len].to_vec()
}

fn big_store() -> Arc<MemoryBackend> {
    Arc::new(MemoryBackend::with_config(MemoryConfig {
        max_value_bytes: 64 * 1024 * 1024,
        ..MemoryConfig::default()
    }))
}

/// Allocation counts are process-wide: one test at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn length_prefixes_do_not_drive_allocation() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let store = big_store();
        let cache = Cache::from_arc(store.clone());

        // 300 levels of `[children: <array of 2^32 - 1 elements>]`: 1.8 KB that claims
        // more elements than memory holds, at every level.
        let mut hostile = envelope_header(Tree { children: vec![] }, 2).await;
        for _ in 0..300 {
            hostile.extend_from_slice(&[0x91, 0xdd, 0xff, 0xff, 0xff, 0xff]);
        }
        let key = CacheKey::for_call("bounded::tree", 1, &()).expect("key");
        store
            .set(key.as_str(), Bytes::from(hostile), None)
            .await
            .expect("set");
        let region = Region::new(GLOBAL);
        let tree: Tree = cache
            .get_or_compute(&key, None, || async { Tree { children: vec![] } })
            .await;
        let allocated = region.change().bytes_allocated;
        assert_eq!(tree, Tree { children: vec![] });
        assert_eq!(cache.stats().corrupt, 1, "{:?}", cache.stats());
        assert!(
            allocated < 1024 * 1024,
            "decoding 1.8 KB allocated {allocated} bytes"
        );
    });
}

#[test]
fn a_value_over_the_default_limit_is_a_miss() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let store = big_store();
        let cache = Cache::from_arc(store.clone());
        // A well-formed value over the default limit (8 MiB) is not decoded: a miss.
        let mut oversized = envelope_header(String::new(), 1).await;
        let text = "x".repeat(cachekit::DEFAULT_MAX_VALUE_BYTES);
        oversized.push(0xdb);
        oversized.extend_from_slice(&u32::try_from(text.len()).expect("fits").to_be_bytes());
        oversized.extend_from_slice(text.as_bytes());
        let key = CacheKey::for_call("bounded::text", 1, &()).expect("key");
        store
            .set(key.as_str(), Bytes::from(oversized), None)
            .await
            .expect("set");
        let got: String = cache
            .get_or_compute(&key, None, || async { "small".to_owned() })
            .await;
        assert!(
            got == "small",
            "a value over the limit was decoded: {} bytes",
            got.len()
        );
        assert_eq!(cache.stats().oversized, 1, "{:?}", cache.stats());
    });
}
