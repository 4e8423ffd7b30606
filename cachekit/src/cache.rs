//! [`Cache`]: typed get-or-compute over any backend, fail-open, single-flight.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, BackendError, Bytes};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::envelope;
use crate::key::CacheKey;

/// What a [`Cache`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls answered from a stored value.
    pub hits: u64,
    /// Calls that ran the function (nothing usable was stored).
    pub misses: u64,
    /// Calls that waited for a concurrent caller's computation of the same key instead
    /// of running the function themselves.
    pub coalesced: u64,
    /// Backend operations that failed (swallowed and logged when failing open).
    pub errors: u64,
    /// Stored values that did not decode (corrupt, or of an incompatible version); each
    /// was treated as a miss and overwritten.
    pub corrupt: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state of one in-flight computation, as its waiters see it.
#[derive(Clone)]
enum Flight {
    Running,
    /// The encoded result: waiters decode their own copy, so `T` need not be `Clone`.
    Done(Bytes),
}

type InFlight = Mutex<HashMap<String, watch::Receiver<Flight>>>;

/// Function-result caching over a [`Backend`].
///
/// Values are stored as a versioned MessagePack envelope (see [`crate::envelope`]).
/// Backend failures *fail open* by default: the function runs, its result is returned, and
/// the error is logged with `tracing` and counted; [`Cache::strict`] surfaces them instead.
/// Concurrent misses of one key in this process run the function once; the other callers
/// wait for that result. `Err` results are never stored. Cloning is cheap and shares
/// state.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    backend_timeout: Option<Duration>,
    in_flight: InFlight,
    counters: Counters,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend.capabilities().backend_type)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a cached call did not produce a value.
enum Failure<E, B> {
    Compute(E),
    Backend(B),
}

/// What a backend failure does: fail open (log, count, carry on; it cannot escape, as
/// `Infallible` says) or strict (count, return it).
trait Mode {
    type Error;
    /// Whether backend errors are swallowed (fail open).
    const SWALLOWS: bool;
    fn on_error(
        cache: &Cache,
        operation: &str,
        key: &str,
        err: BackendError,
    ) -> Result<(), Self::Error>;
}

struct FailOpen;

impl Mode for FailOpen {
    type Error = Infallible;
    const SWALLOWS: bool = true;
    fn on_error(
        cache: &Cache,
        operation: &str,
        key: &str,
        err: BackendError,
    ) -> Result<(), Infallible> {
        cache.backend_error(operation, key, &err);
        Ok(())
    }
}

struct Strict;

impl Mode for Strict {
    type Error = BackendError;
    const SWALLOWS: bool = false;
    fn on_error(
        cache: &Cache,
        operation: &str,
        key: &str,
        err: BackendError,
    ) -> Result<(), BackendError> {
        bump(&cache.inner.counters.errors);
        tracing::debug!(key, operation, error = %err, "cachekit: backend failed (strict mode)");
        Err(err)
    }
}

impl Cache {
    /// A cache over `backend`.
    pub fn new<B: Backend + 'static>(backend: B) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// A cache over a shared backend.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        Self::build(backend, None)
    }

    fn build(backend: Arc<dyn Backend>, backend_timeout: Option<Duration>) -> Self {
        Cache {
            inner: Arc::new(Inner {
                backend,
                backend_timeout,
                in_flight: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// Bounds every backend operation by `timeout`: one that takes longer counts as a
    /// `Timeout` error (swallowed when failing open), so a hanging backend delays a call
    /// by at most `timeout` per operation. Without it, the backend's own timeouts apply.
    /// Call it before sharing the cache: clones made earlier keep their setting.
    pub fn with_backend_timeout(self, timeout: Duration) -> Self {
        Self::build(self.inner.backend.clone(), Some(timeout))
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        match self.inner.backend_timeout {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(BackendError::timeout(format!(
                    "backend {operation} took longer than the cache's limit of {limit:?}"
                )))
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
        }
    }

    /// The stored value of `key`, or `compute()`'s, which is then stored for `ttl`
    /// (`None`: until overwritten or evicted). Never fails: backend errors are logged,
    /// counted, and the function's value is returned.
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Option<Duration>,
        compute: F,
    ) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .run::<FailOpen, _, _, _, _>(key, ttl, || async {
                Ok::<T, Infallible>(compute().await)
            })
            .await
        {
            Ok(value) => value,
            Err(Failure::Compute(never) | Failure::Backend(never)) => match never {},
        }
    }

    /// Like [`get_or_compute`](Self::get_or_compute) for a fallible function: `Ok`
    /// values are stored, an `Err` is returned as is and never stored.
    pub async fn get_or_try_compute<T, E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.run::<FailOpen, _, _, _, _>(key, ttl, compute).await {
            Ok(value) => Ok(value),
            Err(Failure::Compute(err)) => Err(err),
            Err(Failure::Backend(never)) => match never {},
        }
    }

    /// The body of `#[cachekit::cache]`: caches `compute` under `key`, or, if the
    /// arguments could not be serialised into a key, logs and counts that and runs
    /// `compute` uncached.
    pub async fn memoize<T, E, F, Fut>(
        &self,
        key: Result<CacheKey, BackendError>,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match key {
            Ok(key) => self.get_or_try_compute(&key, ttl, compute).await,
            Err(err) => {
                self.backend_error("key", "<unserialisable arguments>", &err);
                compute().await
            }
        }
    }

    /// Removes the stored value of `key`; `true` if one was there.
    pub async fn invalidate(&self, key: &CacheKey) -> Result<bool, BackendError> {
        self.bounded("delete", self.inner.backend.delete(key.as_str()))
            .await
            .inspect_err(|err| {
                bump(&self.inner.counters.errors);
                tracing::warn!(key = %key, error = %err, "cachekit: invalidation failed");
            })
    }

    /// This cache in strict mode: backend errors are returned instead of swallowed.
    pub fn strict(&self) -> StrictCache<'_> {
        StrictCache { cache: self }
    }

    fn backend_error(&self, operation: &str, key: &str, err: &BackendError) {
        bump(&self.inner.counters.errors);
        tracing::warn!(
            key,
            operation,
            error = %err,
            "cachekit: backend failed; answering without the cache"
        );
    }

    /// The stored value of `key`, if there is a usable one.
    ///
    /// A `recheck` (the leader's second look) counts only hits: the call's corrupt value
    /// or failed read was already counted by its first look.
    async fn read<M: Mode, T: DeserializeOwned>(
        &self,
        key: &CacheKey,
        recheck: bool,
    ) -> Result<Option<T>, M::Error> {
        match self
            .bounded("get", self.inner.backend.get(key.as_str()))
            .await
        {
            Ok(Some(bytes)) => match envelope::decode(&bytes) {
                Ok(value) => {
                    bump(&self.inner.counters.hits);
                    Ok(Some(value))
                }
                Err(_) if recheck => Ok(None),
                Err(corrupt) => {
                    bump(&self.inner.counters.corrupt);
                    tracing::warn!(key = %key, reason = %corrupt, "cachekit: stored value is unusable; recomputing");
                    Ok(None)
                }
            },
            Ok(None) => Ok(None),
            Err(_) if recheck && M::SWALLOWS => Ok(None),
            Err(err) => M::on_error(self, "get", key.as_str(), err).map(|()| None),
        }
    }

    async fn run<M: Mode, T, E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, Failure<E, M::Error>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut compute = Some(compute);
        loop {
            if let Some(value) = self
                .read::<M, T>(key, false)
                .await
                .map_err(Failure::Backend)?
            {
                return Ok(value);
            }
            match self.join_or_lead(key) {
                Role::Follow(mut flight) => {
                    // Ends when the leader publishes, or drops its sender (it failed, was
                    // cancelled or panicked): then this caller starts over.
                    let published = match flight
                        .wait_for(|state| matches!(state, Flight::Done(_)))
                        .await
                        .as_deref()
                    {
                        Ok(Flight::Done(bytes)) => Some(bytes.clone()),
                        _ => None,
                    };
                    if let Some(value) = published.and_then(|bytes| envelope::decode(&bytes).ok()) {
                        bump(&self.inner.counters.coalesced);
                        return Ok(value);
                    }
                }
                Role::Lead(leader) => {
                    // Another leader may have stored the value between our read and now.
                    if let Some(value) = self
                        .read::<M, T>(key, true)
                        .await
                        .map_err(Failure::Backend)?
                    {
                        return Ok(value);
                    }
                    let Some(compute) = compute.take() else {
                        // A caller leads at most once: it starts over only as a follower
                        // after its own read, so this cannot be reached twice.
                        continue;
                    };
                    bump(&self.inner.counters.misses);
                    let value = compute().await.map_err(Failure::Compute)?;
                    let bytes = match envelope::encode(&value) {
                        Ok(bytes) => bytes,
                        Err(err) => {
                            M::on_error(self, "encode", key.as_str(), err)
                                .map_err(Failure::Backend)?;
                            return Ok(value);
                        }
                    };
                    let stored = self.inner.backend.set(key.as_str(), bytes.clone(), ttl);
                    if let Err(err) = self.bounded("set", stored).await {
                        M::on_error(self, "set", key.as_str(), err).map_err(Failure::Backend)?;
                    }
                    leader.publish(bytes);
                    return Ok(value);
                }
            }
        }
    }

    fn join_or_lead(&self, key: &CacheKey) -> Role<'_> {
        let mut in_flight = self.inner.in_flight.lock();
        if let Some(flight) = in_flight.get(key.as_str()) {
            return Role::Follow(flight.clone());
        }
        let (sender, receiver) = watch::channel(Flight::Running);
        in_flight.insert(key.as_str().to_owned(), receiver.clone());
        Role::Lead(Leader {
            in_flight: &self.inner.in_flight,
            key: key.as_str().to_owned(),
            sender,
            receiver,
        })
    }
}

enum Role<'a> {
    Follow(watch::Receiver<Flight>),
    Lead(Leader<'a>),
}

/// The one caller computing a key; removes its flight when done, however it ends.
struct Leader<'a> {
    in_flight: &'a InFlight,
    key: String,
    sender: watch::Sender<Flight>,
    receiver: watch::Receiver<Flight>,
}

impl Leader<'_> {
    fn publish(&self, bytes: Bytes) {
        let _ = self.sender.send(Flight::Done(bytes));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock();
        if in_flight
            .get(&self.key)
            .is_some_and(|flight| flight.same_channel(&self.receiver))
        {
            in_flight.remove(&self.key);
        }
        // Dropping the sender then wakes waiters of an unpublished flight to start over.
    }
}

/// A [`Cache`] in strict mode, from [`Cache::strict`]: backend errors are returned.
#[derive(Debug, Clone, Copy)]
pub struct StrictCache<'a> {
    cache: &'a Cache,
}

impl StrictCache<'_> {
    /// Like [`Cache::get_or_compute`], but a backend error is returned (and counted).
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, BackendError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .cache
            .run::<Strict, _, _, _, _>(key, ttl, || async { Ok::<T, Infallible>(compute().await) })
            .await
        {
            Ok(value) => Ok(value),
            Err(Failure::Compute(never)) => match never {},
            Err(Failure::Backend(err)) => Err(err),
        }
    }

    /// Like [`Cache::get_or_try_compute`], but a backend error is returned as `E`.
    pub async fn get_or_try_compute<T, E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<BackendError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self
            .cache
            .run::<Strict, _, _, _, _>(key, ttl, compute)
            .await
        {
            Ok(value) => Ok(value),
            Err(Failure::Compute(err)) => Err(err),
            Err(Failure::Backend(err)) => Err(E::from(err)),
        }
    }

    /// Like [`Cache::memoize`], but a key or backend error is returned as `E`.
    pub async fn memoize<T, E, F, Fut>(
        &self,
        key: Result<CacheKey, BackendError>,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<BackendError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_try_compute(&key?, ttl, compute).await
    }
}
