//! `#[cachekit::cache]` as a user writes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachekit::{BackendError, CacheKey, ErrorKind};
use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_backend_memory::MemoryBackend;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    greeting: String,
    run: usize,
}

#[derive(Debug, PartialEq)]
enum MyError {
    NotFound,
    Cache(ErrorKind),
}

impl From<BackendError> for MyError {
    fn from(err: BackendError) -> Self {
        MyError::Cache(err.kind())
    }
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cachekit::cache(backend = MemoryBackend::new(), ttl = 300)]
async fn user_profile(id: u64, lang: &str) -> Result<Profile, MyError> {
    let run = PROFILE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if id == 0 {
        return Err(MyError::NotFound);
    }
    Ok(Profile {
        id,
        greeting: format!("hello/{lang}"),
        run,
    })
}

#[tokio::test]
async fn the_attribute_caches_ok_results_per_arguments() {
    let first = user_profile(7, "en").await.expect("ok");
    let again = user_profile(7, "en").await.expect("ok");
    assert_eq!(first, again, "the second call is answered from the cache");
    let other = user_profile(7, "fr").await.expect("ok");
    assert_ne!(other.run, first.run, "other arguments, other entry");

    // `return Err(..)` inside the body returns from the function, and is not cached.
    assert_eq!(user_profile(0, "en").await, Err(MyError::NotFound));
    let before = PROFILE_RUNS.load(Ordering::SeqCst);
    assert_eq!(user_profile(0, "en").await, Err(MyError::NotFound));
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), before + 1);

    let stats = user_profile_cache().stats();
    assert_eq!(stats.hits, 1, "{stats:?}");

    // The default namespace is the function's module path and name, version 1.
    let key = CacheKey::for_call(concat!(module_path!(), "::user_profile"), 1, &(7u64, "en"))
        .expect("key");
    assert!(user_profile_cache()
        .backend()
        .exists(key.as_str())
        .await
        .expect("exists"));

    assert!(user_profile_invalidate(7, "en").await.expect("invalidate"));
    let recomputed = user_profile(7, "en").await.expect("ok");
    assert_ne!(recomputed.run, first.run, "invalidated: computed again");
}

static GREETING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A plain return type, a skipped argument, an explicit namespace and version.
#[cachekit::cache(
    backend = MemoryBackend::new(),
    namespace = "greetings",
    version = 3,
    skip(request_id)
)]
async fn greeting(name: String, request_id: u64) -> String {
    GREETING_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = request_id;
    format!("hello {name}")
}

#[tokio::test]
async fn skipped_arguments_do_not_split_entries() {
    assert_eq!(greeting("ada".to_owned(), 1).await, "hello ada");
    assert_eq!(greeting("ada".to_owned(), 2).await, "hello ada");
    assert_eq!(GREETING_RUNS.load(Ordering::SeqCst), 1);
    let key = CacheKey::for_call("greetings", 3, &("ada",)).expect("key");
    assert!(greeting_cache()
        .backend()
        .exists(key.as_str())
        .await
        .expect("exists"));
    assert!(greeting_invalidate("ada".to_owned())
        .await
        .expect("invalidate"));
}

fn unreachable_http_backend() -> HttpBackend {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port");
    let mut config = HttpConfig::new(format!("http://127.0.0.1:{port}"));
    config.timeout = Duration::from_millis(300);
    config.retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    HttpBackend::new(config).expect("config")
}

#[cachekit::cache(backend = unreachable_http_backend(), ttl = 60)]
async fn fail_open_lookup(id: u64) -> Result<u64, MyError> {
    Ok(id * 2)
}

#[cachekit::cache(backend = unreachable_http_backend(), ttl = 60, strict)]
async fn strict_lookup(id: u64) -> Result<u64, MyError> {
    Ok(id * 2)
}

#[tokio::test]
async fn a_down_backend_fails_open_unless_strict() {
    assert_eq!(fail_open_lookup(21).await, Ok(42));
    assert!(fail_open_lookup_cache().stats().errors >= 1);
    assert_eq!(
        strict_lookup(21).await,
        Err(MyError::Cache(ErrorKind::Unavailable))
    );
}

/// A service that accepts connections and never answers, kept open for the whole binary.
fn silent_http_backend() -> HttpBackend {
    static SILENT: std::sync::OnceLock<std::net::TcpListener> = std::sync::OnceLock::new();
    let listener = SILENT
        .get_or_init(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"));
    let address = listener.local_addr().expect("address");
    let mut config = HttpConfig::new(format!("http://{address}"));
    // The backend alone would wait half a minute per operation.
    config.timeout = Duration::from_secs(30);
    config.retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    HttpBackend::new(config).expect("config")
}

#[cachekit::cache(backend = silent_http_backend(), ttl = 60, timeout_ms = 200)]
async fn bounded_lookup(id: u64) -> u64 {
    id + 1
}

#[tokio::test]
async fn a_hanging_backend_is_bounded_by_the_cache_timeout() {
    let started = std::time::Instant::now();
    assert_eq!(bounded_lookup(41).await, 42);
    let took = started.elapsed();
    let stats = bounded_lookup_cache().stats();
    assert_eq!(stats.errors, 2, "the get and the set timed out: {stats:?}");
    // Two bounded operations of 200 ms, against 30 s each without the bound.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
