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

/// Says which argument it was called with: a call answered with another call's value
/// shows.
#[cachekit::cache(backend = MemoryBackend::new())]
async fn describe(filter: Option<Option<u8>>) -> String {
    format!("{filter:?}")
}

#[tokio::test]
async fn none_and_some_none_are_two_calls() {
    assert_eq!(describe(None).await, "None");
    assert_eq!(describe(Some(None)).await, "Some(None)");
    assert_eq!(describe(Some(Some(0))).await, "Some(Some(0))");
    assert_eq!(describe(None).await, "None");
}

/// A map that keeps its insertion order (like `IndexMap`), serialised through
/// `collect_map`.
struct Ordered(Vec<(String, u32)>);

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

/// A result that depends on the map's order.
#[cachekit::cache(backend = MemoryBackend::new())]
async fn first_entry(entries: Ordered) -> Option<String> {
    entries.0.first().map(|(key, _)| key.clone())
}

#[tokio::test]
async fn an_ordered_map_argument_keeps_its_order_in_the_key() {
    let pairs = |keys: [&str; 2]| Ordered(keys.iter().map(|key| (key.to_string(), 1)).collect());
    assert_eq!(first_entry(pairs(["a", "b"])).await.as_deref(), Some("a"));
    assert_eq!(first_entry(pairs(["b", "a"])).await.as_deref(), Some("b"));
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

/// One store shared by several cached functions, as in production: what keeps their
/// entries apart is the key alone.
fn shared_store() -> std::sync::Arc<MemoryBackend> {
    static STORE: std::sync::OnceLock<std::sync::Arc<MemoryBackend>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| std::sync::Arc::new(MemoryBackend::new()))
        .clone()
}

/// Two types of the same shape: MessagePack writes both as `[id, name]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Team {
    id: u64,
    name: String,
}

trait Loadable: Serialize + serde::de::DeserializeOwned {
    fn load(id: u64) -> Self;
}

impl Loadable for User {
    fn load(id: u64) -> Self {
        User {
            id,
            name: format!("user {id}"),
        }
    }
}

impl Loadable for Team {
    fn load(id: u64) -> Self {
        Team {
            id,
            name: format!("team {id}"),
        }
    }
}

#[cachekit::cache(backend = shared_store())]
async fn load<T: Loadable>(id: u64) -> T {
    T::load(id)
}

#[tokio::test]
async fn generic_instantiations_have_their_own_entries() {
    let user: User = load::<User>(1).await;
    let team: Team = load::<Team>(1).await;
    assert_eq!(user.name, "user 1");
    assert_eq!(
        team.name, "team 1",
        "load::<Team> answered with load::<User>'s entry"
    );
    // Each instantiation hits its own entry.
    assert_eq!(load::<User>(1).await, user);
    assert_eq!(load::<Team>(1).await, team);
    assert_eq!(load_cache().stats().hits, 2, "{:?}", load_cache().stats());
    // Invalidation names the instantiation too, and leaves the others alone.
    assert!(load_invalidate::<User>(1).await.expect("invalidate"));
    assert!(!load_invalidate::<User>(1).await.expect("invalidate"));
    assert_eq!(load::<Team>(1).await, team);
    assert_eq!(load_cache().stats().hits, 3, "{:?}", load_cache().stats());
}

static FIRST_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cachekit::cache(backend = shared_store())]
async fn first<const N: usize>(items: Vec<u32>) -> Vec<u32> {
    FIRST_RUNS.fetch_add(1, Ordering::SeqCst);
    items.into_iter().take(N).collect()
}

#[tokio::test]
async fn const_generic_values_are_part_of_the_key() {
    let items = vec![1, 2, 3, 4];
    assert_eq!(first::<2>(items.clone()).await, [1, 2]);
    assert_eq!(first::<3>(items.clone()).await, [1, 2, 3]);
    assert_eq!(first::<2>(items.clone()).await, [1, 2]);
    assert_eq!(FIRST_RUNS.load(Ordering::SeqCst), 2);
    assert!(first_invalidate::<3>(items).await.expect("invalidate"));
}

#[cachekit::cache(backend = shared_store())]
async fn type_of(value: impl Serialize + Send) -> String {
    std::any::type_name_of_val(&value).to_owned()
}

#[tokio::test]
async fn impl_trait_arguments_key_on_their_concrete_type() {
    // 1u8 and 1u64 are the same MessagePack byte; the functions they instantiate differ.
    assert_eq!(type_of(1u8).await, "u8");
    assert_eq!(type_of(1u64).await, "u64");
    assert_eq!(type_of(1u8).await, "u8");
    assert_eq!(type_of_cache().stats().hits, 1);
    assert!(type_of_invalidate(1u64).await.expect("invalidate"));
    assert!(type_of_invalidate(1u8).await.expect("invalidate"));
}

#[tokio::test]
async fn same_named_nested_functions_have_their_own_entries() {
    let plus_one = {
        #[cachekit::cache(backend = shared_store())]
        async fn helper(x: u64) -> u64 {
            x + 1
        }
        (
            helper(10).await,
            helper(10).await,
            helper_cache().stats().hits,
        )
    };
    let times_ten = {
        #[cachekit::cache(backend = shared_store())]
        async fn helper(x: u64) -> u64 {
            x * 10
        }
        (
            helper(10).await,
            helper(10).await,
            helper_cache().stats().hits,
        )
    };
    assert_eq!(plus_one, (11, 11, 1));
    assert_eq!(
        times_ten,
        (100, 100, 1),
        "the second `helper` answered with the first's entry"
    );
}

static LARGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cachekit::cache(backend = MemoryBackend::new(), max_value_bytes = 1024)]
async fn large(len: usize) -> String {
    LARGE_RUNS.fetch_add(1, Ordering::SeqCst);
    "x".repeat(len)
}

#[tokio::test]
async fn max_value_bytes_bounds_what_is_stored() {
    assert_eq!(large_cache().max_value_bytes(), 1024);
    assert_eq!(large(2000).await.len(), 2000);
    assert_eq!(large(2000).await.len(), 2000);
    assert_eq!(
        LARGE_RUNS.load(Ordering::SeqCst),
        2,
        "over the limit: not stored"
    );
    assert_eq!(large(10).await.len(), 10);
    assert_eq!(large(10).await.len(), 10);
    assert_eq!(LARGE_RUNS.load(Ordering::SeqCst), 3);
    let stats = large_cache().stats();
    assert_eq!((stats.oversized, stats.hits), (2, 1), "{stats:?}");
}

static TOTAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cachekit::cache(backend = MemoryBackend::new())]
async fn total(weights: std::collections::HashMap<String, u64>) -> u64 {
    TOTAL_RUNS.fetch_add(1, Ordering::SeqCst);
    weights.values().sum()
}

#[tokio::test]
async fn hash_map_arguments_hit_whatever_their_iteration_order() {
    let entries: Vec<(String, u64)> = (0..40).map(|i| (format!("w{i}"), i)).collect();
    let first: std::collections::HashMap<String, u64> = entries.iter().cloned().collect();
    // Same content; another hasher seed, capacity and insertion order.
    let mut second = std::collections::HashMap::with_capacity(1000);
    second.extend(entries.iter().rev().cloned());
    assert_eq!(first, second);
    assert_eq!(total(first).await, 780);
    assert_eq!(total(second).await, 780);
    assert_eq!(
        TOTAL_RUNS.load(Ordering::SeqCst),
        1,
        "an equal map in another order missed: {:?}",
        total_cache().stats()
    );
}
