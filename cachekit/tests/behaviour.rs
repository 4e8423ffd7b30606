//! `Cache` semantics against real backends: the memory backend, the HTTP backend against
//! a `cachekit-server` on loopback, the DynamoDB backend against DynamoDB Local and the
//! Redis and memcached backends against `redis-server` and `memcached` (one of each per
//! binary; the output says how it was provided). Every test runs against each.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::{envelope, Backend, BackendError, Bytes, Cache, CacheKey, ErrorKind};
use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_backend_memory::MemoryBackend;
use cachekit_backend_redis::local::RedisServer;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_server::{BackgroundServer, ServerConfig};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::{Deserialize, Serialize};

type TestResult = Result<(), Failed>;

const DYNAMODB_TABLE: &str = "cachekit_function_cache";

static HTTP_URL: OnceLock<String> = OnceLock::new();
static DYNAMODB_ENDPOINT: OnceLock<String> = OnceLock::new();
static REDIS_URL: OnceLock<String> = OnceLock::new();
static MEMCACHED_ADDR: OnceLock<String> = OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Http,
    DynamoDb,
    Redis,
    Memcached,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Http => "http",
            Kind::DynamoDb => "dynamodb",
            Kind::Redis => "redis",
            Kind::Memcached => "memcached",
        }
    }

    /// A working backend of this kind (shared stores: tests keep apart by namespace).
    async fn backend(self) -> Result<Arc<dyn Backend>, Failed> {
        Ok(match self {
            Kind::Memory => Arc::new(MemoryBackend::new()),
            Kind::Http => Arc::new(HttpBackend::new(HttpConfig::new(
                HTTP_URL.get().ok_or("no server")?.clone(),
            ))?),
            Kind::DynamoDb => Arc::new(DynamoDbBackend::connect(
                DynamoDbConfig::new(DYNAMODB_TABLE)
                    .with_endpoint(DYNAMODB_ENDPOINT.get().ok_or("no DynamoDB Local")?.clone()),
            )?),
            Kind::Redis => Arc::new(
                RedisBackend::connect(RedisConfig::new(
                    REDIS_URL.get().ok_or("no redis-server")?.clone(),
                ))
                .await?,
            ),
            Kind::Memcached => Arc::new(
                MemcachedBackend::connect(MemcachedConfig::new(
                    MEMCACHED_ADDR.get().ok_or("no memcached")?.clone(),
                ))
                .await?,
            ),
        })
    }

    /// A backend of this kind whose service is down (a loopback port nobody listens on).
    async fn down_backend(self) -> Result<Option<Arc<dyn Backend>>, Failed> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        Ok(match self {
            Kind::Memory => None,
            Kind::Http => {
                let mut config = HttpConfig::new(url);
                config.timeout = Duration::from_millis(500);
                config.retry = RetryPolicy {
                    max_retries: 0,
                    ..RetryPolicy::default()
                };
                Some(Arc::new(HttpBackend::new(config)?))
            }
            Kind::DynamoDb => Some(Arc::new(DynamoDbBackend::connect(
                DynamoDbConfig::new(DYNAMODB_TABLE)
                    .with_endpoint(url)
                    .with_max_attempts(1)
                    .with_operation_timeout(Duration::from_millis(500)),
            )?)),
            // A connected backend whose server then dies: Redis connects eagerly.
            Kind::Redis => {
                let server = RedisServer::start_with(&[])?;
                let mut config = RedisConfig::new(server.url());
                config.operation_timeout = Duration::from_millis(500);
                let backend = RedisBackend::connect(config).await?;
                drop(server);
                Some(Arc::new(backend))
            }
            Kind::Memcached => {
                let server = MemcachedServer::start_with(&[])?;
                let config = MemcachedConfig::new(server.addr_string())
                    .with_operation_timeout(Duration::from_millis(500));
                let backend = MemcachedBackend::connect(config).await?;
                drop(server);
                Some(Arc::new(backend))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    lang: String,
    computed: usize,
}

/// A function that counts its runs.
#[derive(Clone, Default)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    async fn profile(&self, id: u64, lang: &str) -> Profile {
        let computed = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Profile {
            id,
            lang: lang.to_owned(),
            computed,
        }
    }

    fn runs(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn key(namespace: &str, id: u64, lang: &str) -> CacheKey {
    CacheKey::for_call(namespace, 1, &(id, lang)).expect("a u64 and a str serialise")
}

fn check(condition: bool, message: impl Into<String>) -> TestResult {
    if condition {
        Ok(())
    } else {
        Err(Failed::from(message.into()))
    }
}

const TTL: Option<Duration> = Some(Duration::from_secs(300));

async fn hit_after_miss(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let f = Counted::default();
    let k = key(&ns, 1, "en");
    let first = cache.get_or_compute(&k, TTL, || f.profile(1, "en")).await;
    let second = cache.get_or_compute(&k, TTL, || f.profile(1, "en")).await;
    check(first == second, format!("{first:?} != {second:?}"))?;
    check(f.runs() == 1, format!("ran {} times", f.runs()))?;
    let stats = cache.stats();
    check(
        stats.hits == 1 && stats.misses == 1 && stats.errors == 0,
        format!("{stats:?}"),
    )
}

async fn entries_expire_after_their_ttl(kind: Kind, ns: String) -> TestResult {
    let backend = kind.backend().await?;
    let support = backend
        .capabilities()
        .ttl
        .ok_or("the backend declares no ttl")?;
    let cache = Cache::from_arc(backend);
    let f = Counted::default();
    let k = key(&ns, 1, "en");
    let ttl = Duration::from_secs(1);
    cache
        .get_or_compute(&k, Some(ttl), || f.profile(1, "en"))
        .await;
    cache
        .get_or_compute(&k, Some(ttl), || f.profile(1, "en"))
        .await;
    check(f.runs() == 1, "a hit within the ttl")?;
    // Gone by the ttl rounded up to the declared precision, plus that precision and slack.
    let gone_by = support.round_up(ttl) + support.precision + Duration::from_millis(600);
    tokio::time::sleep(gone_by).await;
    let ttl = Some(ttl);
    let after = cache.get_or_compute(&k, ttl, || f.profile(1, "en")).await;
    check(
        f.runs() == 2 && after.computed == 2,
        format!("after the ttl: runs {}, {after:?}", f.runs()),
    )
}

async fn different_arguments_are_different_entries(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let f = Counted::default();
    let calls = [(1, "en"), (2, "en"), (1, "fr")];
    for (id, lang) in calls {
        let got = cache
            .get_or_compute(&key(&ns, id, lang), TTL, || f.profile(id, lang))
            .await;
        check(got.id == id && got.lang == lang, format!("{got:?}"))?;
    }
    check(
        f.runs() == 3,
        format!("ran {} times for 3 distinct calls", f.runs()),
    )?;
    for (id, lang) in calls {
        let got = cache
            .get_or_compute(&key(&ns, id, lang), TTL, || f.profile(id, lang))
            .await;
        check(got.id == id && got.lang == lang, format!("{got:?}"))?;
    }
    check(f.runs() == 3, "every repeated call is a hit")
}

async fn corrupt_bytes_are_recomputed_and_overwritten(kind: Kind, ns: String) -> TestResult {
    let backend = kind.backend().await?;
    let cache = Cache::from_arc(backend.clone());
    let f = Counted::default();
    // A current envelope of a `String`: well-formed, of another type than `Profile`.
    let mut other_type = b"CK".to_vec();
    other_type.push(envelope::FORMAT_VERSION);
    other_type.extend_from_slice(&envelope::type_fingerprint::<String>());
    other_type.extend_from_slice(b"\xa4text");
    let unusable: [&[u8]; 5] = [
        b"garbage",
        b"",
        b"CK\x09\x00",     // an envelope of a future format
        b"CK\x01\xa4text", // an envelope of format 1, which had no type fingerprint
        &other_type,
    ];
    for (round, bytes) in unusable.iter().enumerate() {
        let k = key(&ns, round as u64, "en");
        backend
            .set(k.as_str(), Bytes::copy_from_slice(bytes), None)
            .await?;
        let got = cache
            .get_or_compute(&k, TTL, || f.profile(round as u64, "en"))
            .await;
        check(got.id == round as u64, format!("{got:?}"))?;
        // Overwritten: the next call hits.
        cache
            .get_or_compute(&k, TTL, || f.profile(round as u64, "en"))
            .await;
    }
    let stats = cache.stats();
    check(
        f.runs() == unusable.len()
            && stats.corrupt == 4
            && stats.type_mismatch == 1
            && stats.hits == unusable.len() as u64,
        format!("runs {}, {stats:?}", f.runs()),
    )
}

async fn a_down_backend_fails_open_and_strict_mode_reports_it(
    kind: Kind,
    _ns: String,
) -> TestResult {
    let Some(down) = kind.down_backend().await? else {
        return Err("no down variant of this backend kind".into());
    };
    let cache = Cache::from_arc(down);
    let f = Counted::default();
    let k = key("down", 1, "en");
    let got = cache.get_or_compute(&k, TTL, || f.profile(1, "en")).await;
    check(got.id == 1, "fail-open still answers")?;
    let stats = cache.stats();
    check(
        stats.errors == 2 && stats.misses == 1,
        format!("the failed get and set are counted once each: {stats:?}"),
    )?;
    let strict: Result<Profile, BackendError> = cache
        .strict()
        .get_or_compute(&k, TTL, || f.profile(1, "en"))
        .await;
    match strict {
        Err(err) if matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => Ok(()),
        other => Err(format!("strict mode: expected Unavailable, got {other:?}").into()),
    }
}

async fn concurrent_misses_compute_once(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let runs = Arc::new(AtomicUsize::new(0));
    let k = key(&ns, 7, "en");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (cache, runs, k) = (cache.clone(), runs.clone(), k.clone());
        tasks.spawn(async move {
            cache
                .get_or_compute(&k, TTL, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Profile {
                        id: 7,
                        lang: "en".to_owned(),
                        computed: 1,
                    }
                })
                .await
        });
    }
    let mut answers = 0;
    while let Some(joined) = tasks.join_next().await {
        let profile = joined?;
        check(profile.id == 7, format!("{profile:?}"))?;
        answers += 1;
    }
    let stats = cache.stats();
    check(
        answers == 100 && runs.load(Ordering::SeqCst) == 1,
        format!(
            "100 callers, {} computations, {stats:?}",
            runs.load(Ordering::SeqCst)
        ),
    )?;
    check(
        stats.misses == 1 && stats.hits + stats.coalesced == 99,
        format!("{stats:?}"),
    )
}

async fn errors_are_not_cached(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let attempts = AtomicUsize::new(0);
    let k = key(&ns, 1, "en");
    let flaky = || async {
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            Err("upstream said no")
        } else {
            Ok(42u32)
        }
    };
    let first = cache.get_or_try_compute(&k, TTL, flaky).await;
    check(first == Err("upstream said no"), format!("{first:?}"))?;
    let second = cache.get_or_try_compute(&k, TTL, flaky).await;
    check(
        second == Ok(42),
        format!("the error was cached: {second:?}"),
    )?;
    let third = cache.get_or_try_compute(&k, TTL, flaky).await;
    check(
        third == Ok(42) && attempts.load(Ordering::SeqCst) == 2,
        "the Ok result is cached",
    )
}

async fn invalidation_forces_a_recompute(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let f = Counted::default();
    let k = key(&ns, 1, "en");
    cache.get_or_compute(&k, TTL, || f.profile(1, "en")).await;
    check(cache.invalidate(&k).await?, "invalidate of a cached call")?;
    check(!cache.invalidate(&k).await?, "second invalidate")?;
    let again = cache.get_or_compute(&k, TTL, || f.profile(1, "en")).await;
    check(again.computed == 2, format!("{again:?}"))
}

async fn an_invalidate_during_a_computation_is_not_lost(kind: Kind, ns: String) -> TestResult {
    let cache = Cache::from_arc(kind.backend().await?);
    let k = key(&ns, 1, "en");
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let older = tokio::spawn({
        let (cache, k, started, release) =
            (cache.clone(), k.clone(), started.clone(), release.clone());
        async move {
            cache
                .get_or_compute(&k, None, || async {
                    started.notify_one();
                    release.notified().await;
                    "older".to_owned()
                })
                .await
        }
    });
    started.notified().await;
    cache.invalidate(&k).await?;
    // Arrives after the invalidate: computes rather than waiting for the older computation.
    let newer = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_compute(&k, None, || async { "newer".to_owned() }),
    )
    .await
    .map_err(|_| "a call after the invalidate waited for the older computation")?;
    check(newer == "newer", format!("after the invalidate: {newer}"))?;
    release.notify_one();
    let own = older.await?;
    check(
        own == "older",
        format!("the older call's own answer: {own}"),
    )?;
    let later: String = cache
        .get_or_compute(&k, None, || async { "recomputed".to_owned() })
        .await;
    check(
        later == "newer",
        format!("the older result was stored over the newer one: {later}"),
    )
}

type TestFn = fn(Kind, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = TestResult>>>;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|kind, ns| Box::pin($name(kind, ns))) as TestFn)),*]
    };
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut server = None;
    let mut dynamodb = None;
    let mut redis = None;
    let mut memcached = None;
    if !args.list {
        match BackgroundServer::spawn(
            MemoryBackend::new,
            ServerConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                ..ServerConfig::default()
            },
        ) {
            Ok(running) => {
                let _ = HTTP_URL.set(running.base_url().to_owned());
                server = Some(running);
            }
            Err(err) => {
                eprintln!("cannot start cachekit-server: {err}");
                return ExitCode::FAILURE;
            }
        }
        match start_dynamodb() {
            Ok(local) => dynamodb = Some(local),
            Err(why) => {
                eprintln!("the DynamoDB variants cannot run: {why}");
                return ExitCode::FAILURE;
            }
        }
        match RedisServer::start() {
            Ok(running) => {
                eprintln!("{running}");
                let _ = REDIS_URL.set(running.url().to_owned());
                redis = Some(running);
            }
            Err(why) => {
                eprintln!("the Redis variants cannot run: {why}");
                return ExitCode::FAILURE;
            }
        }
        match MemcachedServer::start() {
            Ok(running) => {
                eprintln!("{running}");
                let _ = MEMCACHED_ADDR.set(running.addr_string());
                memcached = Some(running);
            }
            Err(why) => {
                eprintln!("the memcached variants cannot run: {why}");
                return ExitCode::FAILURE;
            }
        }
    }
    let tests = tests!(
        hit_after_miss,
        entries_expire_after_their_ttl,
        different_arguments_are_different_entries,
        corrupt_bytes_are_recomputed_and_overwritten,
        a_down_backend_fails_open_and_strict_mode_reports_it,
        concurrent_misses_compute_once,
        errors_are_not_cached,
        invalidation_forces_a_recompute,
        an_invalidate_during_a_computation_is_not_lost,
    );
    let run_id = std::process::id();
    let mut trials = Vec::new();
    for kind in [
        Kind::Memory,
        Kind::Http,
        Kind::DynamoDb,
        Kind::Redis,
        Kind::Memcached,
    ] {
        for (name, test) in tests {
            let namespace = format!("ck-{run_id}-{}-{name}", kind.name());
            // An in-process store has no service that could be down.
            if name.starts_with("a_down_backend") && kind == Kind::Memory {
                continue;
            }
            trials.push(Trial::test(format!("{}::{name}", kind.name()), move || {
                let runtime = tokio::runtime::Runtime::new()?;
                runtime.block_on(test(kind, namespace))
            }));
        }
    }
    let code = libtest_mimic::run(&args, trials).exit_code();
    drop(server);
    drop(dynamodb);
    drop(redis);
    drop(memcached);
    code
}

fn start_dynamodb() -> Result<DynamoDbLocal, String> {
    let local = DynamoDbLocal::start()?;
    eprintln!("{local}");
    let _ = DYNAMODB_ENDPOINT.set(local.endpoint().to_owned());
    let runtime = tokio::runtime::Runtime::new().map_err(|err| err.to_string())?;
    let created: Result<(), String> = runtime.block_on(async {
        let backend = DynamoDbBackend::connect(
            DynamoDbConfig::new(DYNAMODB_TABLE).with_endpoint(local.endpoint()),
        )
        .map_err(|err| err.to_string())?;
        backend
            .ensure_table_with(TtlDeletion::Untouched)
            .await
            .map_err(|err| err.to_string())
    });
    drop(runtime);
    created.map(|()| local)
}
