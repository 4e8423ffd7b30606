//! [`Cache`]: typed get-or-compute over any backend, fail-open, single-flight.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cachekit_core::{Backend, BackendError, Bytes};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::envelope::{self, Unusable};
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
    /// Stored values that did not decode (corrupt, or of an incompatible envelope format);
    /// each was treated as a miss and overwritten.
    pub corrupt: u64,
    /// Stored values written for another result type (see [`crate::envelope`]): a
    /// same-shaped value of another type is never returned; each was treated as a miss and
    /// overwritten.
    pub type_mismatch: u64,
    /// Stored values over the cache's size limit (never decoded; treated as a miss), and
    /// results over it (returned, not stored). See [`Cache::with_max_value_bytes`].
    pub oversized: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    type_mismatch: AtomicU64,
    oversized: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state of one in-flight computation, as its waiters see it.
#[derive(Clone)]
enum FlightState {
    Running,
    /// The encoded result: waiters decode their own copy, so `T` need not be `Clone`.
    Done(Bytes),
    /// No result for the waiters: the leader failed, was cancelled or panicked, or the key
    /// was invalidated while it computed. They start over.
    Abandoned,
}

/// One in-flight computation of a key: its leader's, joined by concurrent callers.
struct Flight {
    state: watch::Sender<FlightState>,
    /// Set by an invalidate of the key while the computation runs. The computation may
    /// have read the data the invalidate is about, so its result is stored for nobody and
    /// handed to nobody but its own caller.
    invalidated: AtomicBool,
    /// Held by the flight's [`Write`] from before it checks `invalidated` until its backend
    /// `set` has ended, even when the caller stopped waiting for it; taken by an invalidate
    /// before it deletes: an invalidate that arrives during the store waits for it, then
    /// deletes what it wrote.
    storing: tokio::sync::Mutex<()>,
    /// Set by an invalidate that stopped waiting for this flight's write (and failed): the
    /// write deletes the key once its `set` has ended.
    delete_after_write: AtomicBool,
}

type InFlight = Mutex<HashMap<String, Arc<Flight>>>;

/// The flights whose [`Write`] has begun and not ended, by key: what an invalidate waits
/// for. A flight is entered here before it can leave [`InFlight`], so an invalidate finds
/// every write begun before it in one map or the other.
type Writes = Mutex<HashMap<String, Vec<Arc<Flight>>>>;

/// Writes that run on after their caller stopped waiting (see [`Write`]) beyond which new
/// results are not stored: a backend whose `set`s neither finish nor fail would otherwise
/// pile up tasks, each holding its value. The values are returned all the same.
const MAX_DETACHED_WRITES: usize = 32;

/// The default of [`Cache::with_max_value_bytes`]: 8 MiB, the value limit of the memory
/// and HTTP backends' defaults and of `cachekit-server`'s request bodies.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

/// Function-result caching over a [`Backend`].
///
/// Values are stored as a versioned MessagePack envelope (see [`crate::envelope`]).
/// Backend failures *fail open* by default: the function runs, its result is returned, and
/// the error is logged with `tracing` and counted; [`Cache::strict`] surfaces them instead.
/// Concurrent misses of one key in this process run the function once; the other callers
/// wait for that result. `Err` results are never stored. Stored values over
/// [`max_value_bytes`](Cache::with_max_value_bytes) are misses, never decoded. Cloning is
/// cheap and shares state.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    settings: Settings,
    in_flight: InFlight,
    writes: Writes,
    /// How many writes run on in tasks of their own, their callers gone.
    detached_writes: AtomicUsize,
    counters: Counters,
}

impl Inner {
    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        match self.settings.backend_timeout {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(BackendError::timeout(format!(
                    "backend {operation} took longer than the cache's limit of {limit:?}"
                )))
            }),
        }
    }
}

/// What the builder methods set.
#[derive(Debug, Clone, Copy)]
struct Settings {
    backend_timeout: Option<Duration>,
    max_value_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend_timeout: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
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
        Self::build(backend, Settings::default())
    }

    fn build(backend: Arc<dyn Backend>, settings: Settings) -> Self {
        Cache {
            inner: Arc::new(Inner {
                backend,
                settings,
                in_flight: Mutex::new(HashMap::new()),
                writes: Mutex::new(HashMap::new()),
                detached_writes: AtomicUsize::new(0),
                counters: Counters::default(),
            }),
        }
    }

    /// Bounds every backend operation by `timeout`: one that takes longer counts as a
    /// `Timeout` error (swallowed when failing open), so a hanging backend delays a call
    /// by at most `timeout` per operation. Without it, the backend's own timeouts apply.
    /// Call it before sharing the cache: clones made earlier keep their setting.
    ///
    /// A `set` is not cut short, though: a request on the wire could still land after the
    /// cache had given up on it, and after an [`invalidate`](Self::invalidate) meant to
    /// remove it. The call stops waiting for it; the `set` itself runs on in a task of its
    /// own until it ends (within the backend's own timeouts), and an invalidate of its key
    /// waits for it, for at most `timeout` too.
    pub fn with_backend_timeout(self, timeout: Duration) -> Self {
        let settings = Settings {
            backend_timeout: Some(timeout),
            ..self.inner.settings
        };
        Self::build(self.inner.backend.clone(), settings)
    }

    /// The largest stored value, envelope included, this cache decodes: bytes a backend
    /// returns beyond it are a miss (counted as `oversized`, recomputed and overwritten)
    /// without being decoded, and a result that encodes beyond it is returned but not
    /// stored (counted too). Default: [`DEFAULT_MAX_VALUE_BYTES`] (8 MiB).
    ///
    /// Values within the limit are decoded with their length prefixes checked against
    /// their bytes first (see [`crate::envelope`]), so decoding allocates in proportion to
    /// the bytes stored, never to what they claim. The limit does not bound what the
    /// backend reads off the wire: that is the backend's own response cap (the HTTP
    /// backend has one). Call it before sharing the cache: clones made earlier keep their
    /// setting.
    pub fn with_max_value_bytes(self, max_value_bytes: usize) -> Self {
        let settings = Settings {
            max_value_bytes,
            ..self.inner.settings
        };
        Self::build(self.inner.backend.clone(), settings)
    }

    /// The limit set by [`with_max_value_bytes`](Self::with_max_value_bytes).
    pub fn max_value_bytes(&self) -> usize {
        self.inner.settings.max_value_bytes
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.inner.bounded(operation, call).await
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
            type_mismatch: c.type_mismatch.load(Ordering::Relaxed),
            oversized: c.oversized.load(Ordering::Relaxed),
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
    ///
    /// Once it returns `Ok`, no call through this cache is answered by a computation of
    /// `key` that started before it: a computation still running is detached (later
    /// callers start a new one instead of joining it; callers waiting for it start over)
    /// and its result is not stored; a store under way is waited for until its backend
    /// `set` has ended, even one its caller stopped waiting for (the cache's timeout, or
    /// the call dropped), and what it stored is deleted. The detached computation's own
    /// caller still gets its result: that call began before the invalidate, as if it had
    /// finished first.
    ///
    /// With [`with_backend_timeout`](Self::with_backend_timeout), the wait for a store is
    /// bounded too: if a `set` of `key` is still under way when it is up, the key is
    /// deleted anyway but the invalidate returns a `Timeout` error, as it promises nothing,
    /// and that `set` deletes the key again when it ends.
    ///
    /// The limits of the guarantee: it is this process's (a computation in another process
    /// may still store an older value), and it counts on a backend `set` having no effect
    /// after it has returned: a store that applies a request after answering it, or after
    /// the client gave up on it and returned an error (a timeout, or an earlier attempt
    /// overtaken by a client retry that failed or succeeded), can still bring an older
    /// value back. A `set` cut short by the tokio runtime shutting down is not waited for.
    pub async fn invalidate(&self, key: &CacheKey) -> Result<bool, BackendError> {
        // The flights whose results must not outlive this call: the one computing now...
        let mut earlier: Vec<Arc<Flight>> = Vec::new();
        if let Some(flight) = self.inner.in_flight.lock().remove(key.as_str()) {
            // Set before waiting, so that a leader that has not begun storing never will
            // (and a cancelled invalidate still leaves the flight detached).
            flight.invalidated.store(true, Ordering::SeqCst);
            flight.state.send_replace(FlightState::Abandoned);
            earlier.push(flight);
        }
        // ...and every one whose write has begun, its caller gone or not. Looked up second:
        // a flight enters `writes` before it leaves `in_flight`.
        if let Some(writing) = self.inner.writes.lock().get(key.as_str()) {
            for flight in writing {
                flight.invalidated.store(true, Ordering::SeqCst);
                if !earlier.iter().any(|seen| Arc::ptr_eq(seen, flight)) {
                    earlier.push(flight.clone());
                }
            }
        }
        let settle = async {
            for flight in &earlier {
                drop(flight.storing.lock().await);
            }
        };
        let settled = match self.inner.settings.backend_timeout {
            None => {
                settle.await;
                true
            }
            Some(limit) => tokio::time::timeout(limit, settle).await.is_ok(),
        };
        if !settled {
            // Checked by each write after its `set` ends: one that ends from now on deletes
            // the key itself; one that already ended is removed by the delete below.
            for flight in &earlier {
                flight.delete_after_write.store(true, Ordering::SeqCst);
            }
        }
        let deleted = self
            .bounded("delete", self.inner.backend.delete(key.as_str()))
            .await
            .inspect_err(|err| {
                bump(&self.inner.counters.errors);
                tracing::warn!(key = %key, error = %err, "cachekit: invalidation failed");
            })?;
        if !settled {
            bump(&self.inner.counters.errors);
            let err = BackendError::timeout(format!(
                "a store of {key} begun before the invalidate was still under way when the \
                 cache's backend timeout was up: it may land after this call; the key is \
                 deleted again when it ends"
            ));
            tracing::warn!(key = %key, error = %err, "cachekit: invalidation not confirmed");
            return Err(err);
        }
        Ok(deleted)
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
            Ok(Some(bytes)) => {
                match envelope::decode(&bytes, self.inner.settings.max_value_bytes) {
                    Ok(value) => {
                        bump(&self.inner.counters.hits);
                        Ok(Some(value))
                    }
                    Err(_) if recheck => Ok(None),
                    Err(unusable) => {
                        let counters = &self.inner.counters;
                        bump(match unusable {
                            Unusable::Oversized { .. } => &counters.oversized,
                            Unusable::OtherType => &counters.type_mismatch,
                            Unusable::NoMagic
                            | Unusable::Version(_)
                            | Unusable::Malformed(_)
                            | Unusable::Payload(_) => &counters.corrupt,
                        });
                        tracing::warn!(key = %key, reason = %unusable, "cachekit: stored value is unusable; recomputing");
                        Ok(None)
                    }
                }
            }
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
                    // Ends when the leader publishes, or gives up (it failed, was cancelled or
                    // panicked, or the key was invalidated): then this caller starts over.
                    let published = match flight
                        .wait_for(|state| !matches!(state, FlightState::Running))
                        .await
                        .as_deref()
                    {
                        Ok(FlightState::Done(bytes)) => Some(bytes.clone()),
                        _ => None,
                    };
                    // This process encoded these bytes: no size limit applies to them.
                    if let Some(value) =
                        published.and_then(|bytes| envelope::decode(&bytes, usize::MAX).ok())
                    {
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
                    self.store::<M>(&leader, key, bytes, ttl)
                        .await
                        .map_err(Failure::Backend)?;
                    return Ok(value);
                }
            }
        }
    }

    /// The leader's last step: stores `bytes` and hands them to its waiters, unless the key
    /// was invalidated since the computation began.
    async fn store<M: Mode>(
        &self,
        leader: &Leader<'_>,
        key: &CacheKey,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), M::Error> {
        let flight = &leader.flight;
        if flight.invalidated.load(Ordering::SeqCst) {
            tracing::debug!(key = %key, "cachekit: invalidated while computing; not stored");
            return Ok(());
        }
        let limit = self.inner.settings.max_value_bytes;
        if bytes.len() > limit {
            bump(&self.inner.counters.oversized);
            tracing::warn!(
                key = %key,
                len = bytes.len(),
                limit,
                "cachekit: result is over the cache's max_value_bytes; not stored"
            );
        } else if self.inner.detached_writes.load(Ordering::SeqCst) >= MAX_DETACHED_WRITES {
            bump(&self.inner.counters.errors);
            tracing::warn!(
                key = %key,
                "cachekit: {MAX_DETACHED_WRITES} earlier backend sets are still under way; \
                 not stored"
            );
        } else {
            let write = Write::begin(&self.inner, flight, key.as_str(), bytes.clone(), ttl);
            if let Err(err) = self.bounded("set", write).await {
                M::on_error(self, "set", key.as_str(), err)?;
            }
        }
        // Only to waiters still waiting: an invalidate that came first has sent them away
        // (and one that comes after will, so none is answered after it returns).
        flight.state.send_if_modified(|state| {
            let publish =
                matches!(state, FlightState::Running) && !flight.invalidated.load(Ordering::SeqCst);
            if publish {
                *state = FlightState::Done(bytes);
            }
            publish
        });
        Ok(())
    }

    fn join_or_lead(&self, key: &CacheKey) -> Role<'_> {
        let mut in_flight = self.inner.in_flight.lock();
        if let Some(flight) = in_flight.get(key.as_str()) {
            return Role::Follow(flight.state.subscribe());
        }
        let flight = Arc::new(Flight {
            state: watch::Sender::new(FlightState::Running),
            invalidated: AtomicBool::new(false),
            storing: tokio::sync::Mutex::new(()),
            delete_after_write: AtomicBool::new(false),
        });
        in_flight.insert(key.as_str().to_owned(), flight.clone());
        Role::Lead(Leader {
            in_flight: &self.inner.in_flight,
            key: key.as_str().to_owned(),
            flight,
        })
    }
}

enum Role<'a> {
    Follow(watch::Receiver<FlightState>),
    Lead(Leader<'a>),
}

type BoxedWrite = Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>;

/// A leader's backend `set`, which once begun is never cut short: dropped before it ends
/// (the cache's timeout, or the call itself dropped), it runs on in a task of its own.
/// Dropping a `set` does not unsend it (an HTTP request may be on the wire and still be
/// applied), so one cut short could land after an invalidate that had already deleted the
/// key; an invalidate waits for this instead (see [`Cache::invalidate`]).
struct Write {
    inner: Arc<Inner>,
    future: Option<BoxedWrite>,
}

impl Write {
    /// Registers the write in [`Inner::writes`] at once (its flight still in
    /// [`Inner::in_flight`]), then, when polled: takes the flight's `storing` lock, checks
    /// that no invalidate came first, sets, and deletes again if an invalidate gave up
    /// waiting for it meanwhile.
    fn begin(
        inner: &Arc<Inner>,
        flight: &Arc<Flight>,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Write {
        let registered = Registered::new(inner, flight, key);
        let future = async move {
            let registered = registered;
            let (inner, flight, key) = (&registered.inner, &registered.flight, &registered.key);
            let _storing = flight.storing.lock().await;
            if flight.invalidated.load(Ordering::SeqCst) {
                tracing::debug!(key, "cachekit: invalidated while computing; not stored");
                return Ok(());
            }
            let stored = inner.backend.set(key, bytes, ttl).await;
            if flight.delete_after_write.load(Ordering::SeqCst) {
                let deleted = inner.bounded("delete", inner.backend.delete(key)).await;
                if let Err(err) = deleted {
                    bump(&inner.counters.errors);
                    tracing::warn!(
                        key,
                        error = %err,
                        "cachekit: could not delete a value stored after an invalidation"
                    );
                }
            }
            stored
        };
        Write {
            inner: inner.clone(),
            future: Some(Box::pin(future)),
        }
    }
}

impl Future for Write {
    type Output = Result<(), BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let outcome = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(outcome)
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "cachekit: a backend set was cut short outside a tokio runtime; it may \
                 still land after an invalidation"
            );
            return;
        };
        let detached = Detached::new(&self.inner);
        runtime.spawn(async move {
            let _detached = detached;
            if let Err(err) = future.await {
                tracing::debug!(error = %err, "cachekit: a set its caller stopped waiting for failed");
            }
        });
    }
}

/// A write's entry in [`Inner::writes`], removed when the write ends, however it ends.
struct Registered {
    inner: Arc<Inner>,
    flight: Arc<Flight>,
    key: String,
}

impl Registered {
    fn new(inner: &Arc<Inner>, flight: &Arc<Flight>, key: &str) -> Self {
        inner
            .writes
            .lock()
            .entry(key.to_owned())
            .or_default()
            .push(flight.clone());
        Registered {
            inner: inner.clone(),
            flight: flight.clone(),
            key: key.to_owned(),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut writes = self.inner.writes.lock();
        if let Some(flights) = writes.get_mut(&self.key) {
            flights.retain(|flight| !Arc::ptr_eq(flight, &self.flight));
            if flights.is_empty() {
                writes.remove(&self.key);
            }
        }
    }
}

/// Counts one write in [`Inner::detached_writes`] while it runs on.
struct Detached(Arc<Inner>);

impl Detached {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.detached_writes.fetch_add(1, Ordering::SeqCst);
        Detached(inner.clone())
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.detached_writes.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The one caller computing a key; removes its flight when done, however it ends.
struct Leader<'a> {
    in_flight: &'a InFlight,
    key: String,
    flight: Arc<Flight>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock();
        // An invalidate may have detached this flight, and another begun since.
        if in_flight
            .get(&self.key)
            .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
        {
            in_flight.remove(&self.key);
        }
        drop(in_flight);
        // Waiters of a flight that ends without a result start over.
        self.flight.state.send_if_modified(|state| {
            let running = matches!(state, FlightState::Running);
            if running {
                *state = FlightState::Abandoned;
            }
            running
        });
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

#[cfg(test)]
mod tests {
    use cachekit_backend_memory::MemoryBackend;
    use cachekit_core::{async_trait, Capabilities, HealthReport};
    use serde::Deserialize;
    use tokio::sync::Notify;

    use super::*;

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

    fn key(name: &str) -> CacheKey {
        CacheKey::for_call(name, 1, &(1u64,)).expect("a u64 serialises")
    }

    #[tokio::test]
    async fn a_stored_value_of_another_type_is_a_miss_not_a_wrong_value() {
        let cache = Cache::new(MemoryBackend::new());
        let key = key("shared");
        let user = User {
            id: 1,
            name: "ada".to_owned(),
        };
        let stored: User = cache
            .get_or_compute(&key, None, || async { user.clone() })
            .await;
        assert_eq!(stored, user);

        let team = Team {
            id: 1,
            name: "core".to_owned(),
        };
        let got: Team = cache
            .get_or_compute(&key, None, || async { team.clone() })
            .await;
        assert_eq!(got, team, "a User's bytes were returned as a Team");
        // The Team overwrote the entry: the next Team call hits it.
        let again: Team = cache
            .get_or_compute(&key, None, || async { unreachable!("a hit") })
            .await;
        assert_eq!(again, team);
        let stats = cache.stats();
        assert_eq!(
            (stats.type_mismatch, stats.corrupt, stats.hits, stats.misses),
            (1, 0, 1, 2),
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn values_over_the_size_limit_are_neither_decoded_nor_stored() {
        let cache = Cache::new(MemoryBackend::new())
            .with_max_value_bytes(64)
            .with_backend_timeout(Duration::from_secs(5));
        assert_eq!(cache.max_value_bytes(), 64, "one setting kept the other");
        let roomy = Cache::from_arc(cache.backend().clone());
        assert_eq!(roomy.max_value_bytes(), DEFAULT_MAX_VALUE_BYTES);
        let big = "x".repeat(100);

        // Stored by a cache with a larger limit: a miss here, recomputed and overwritten.
        let stored_big = key("stored-big");
        let _: String = roomy
            .get_or_compute(&stored_big, None, || async { big.clone() })
            .await;
        let got: String = cache
            .get_or_compute(&stored_big, None, || async { "small".to_owned() })
            .await;
        assert_eq!(got, "small");
        let again: String = cache
            .get_or_compute(&stored_big, None, || async { unreachable!("a hit") })
            .await;
        assert_eq!(again, "small");

        // Computed here over the limit: returned, and not stored.
        let computed_big = key("computed-big");
        let got: String = cache
            .get_or_compute(&computed_big, None, || async { big.clone() })
            .await;
        assert_eq!(got, big);
        let stored = cache.backend().exists(computed_big.as_str()).await;
        assert!(!stored.expect("exists"));

        let stats = cache.stats();
        assert_eq!(
            (stats.oversized, stats.corrupt, stats.hits),
            (2, 0, 1),
            "{stats:?}"
        );
    }

    /// Lets a test hold a computation at a point of its choosing.
    #[derive(Default)]
    struct Gate {
        entered: Notify,
        released: Notify,
    }

    impl Gate {
        async fn pass(&self) {
            self.entered.notify_one();
            self.released.notified().await;
        }
    }

    /// Lets every runnable task run until it waits on something.
    async fn let_others_run() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn after_an_invalidate_no_call_is_answered_by_an_older_computation() {
        let cache = Cache::new(MemoryBackend::new());
        let key = key("invalidated-while-computing");
        let gate = Arc::new(Gate::default());

        let leader = tokio::spawn({
            let (cache, key, gate) = (cache.clone(), key.clone(), gate.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async {
                        gate.pass().await;
                        "computed before the invalidate".to_owned()
                    })
                    .await
            }
        });
        gate.entered.notified().await;
        // A caller that joined the flight before the invalidate.
        let follower = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async { "follower's own".to_owned() })
                    .await
            }
        });
        let_others_run().await;

        assert!(!cache.invalidate(&key).await.expect("invalidate"));

        // A call after the invalidate does not wait for the older computation: it computes.
        let after = tokio::time::timeout(
            Duration::from_secs(2),
            cache.get_or_compute(&key, None, || async {
                "computed after the invalidate".to_owned()
            }),
        )
        .await
        .expect("a call after the invalidate joined the older computation");
        assert_eq!(after, "computed after the invalidate");

        gate.released.notify_one();
        // The older computation's own caller gets its own result: its call began first.
        assert_eq!(
            leader.await.expect("leader"),
            "computed before the invalidate"
        );
        // Its waiters were not handed the older result either.
        assert_ne!(
            follower.await.expect("follower"),
            "computed before the invalidate"
        );
        // And the older result was not stored over the newer one.
        let later: String = cache
            .get_or_compute(&key, None, || async { "recomputed".to_owned() })
            .await;
        assert_eq!(later, "computed after the invalidate");
    }

    #[tokio::test]
    async fn waiters_of_a_cancelled_computation_start_over() {
        let cache = Cache::new(MemoryBackend::new());
        let key = key("cancelled");
        let gate = Arc::new(Gate::default());
        let leader = tokio::spawn({
            let (cache, key, gate) = (cache.clone(), key.clone(), gate.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async {
                        gate.pass().await;
                        "never".to_owned()
                    })
                    .await
            }
        });
        gate.entered.notified().await;
        let follower = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async { "follower's own".to_owned() })
                    .await
            }
        });
        let_others_run().await;
        leader.abort();
        let answer = tokio::time::timeout(Duration::from_secs(2), follower)
            .await
            .expect("the follower waited for a cancelled leader")
            .expect("follower");
        assert_eq!(answer, "follower's own");
    }

    /// A memory backend whose next `set` waits at a gate.
    struct SlowSets {
        store: MemoryBackend,
        gate: Arc<Gate>,
        hold_next_set: AtomicBool,
    }

    #[async_trait]
    impl Backend for SlowSets {
        async fn get(&self, key: &str) -> cachekit_core::Result<Option<Bytes>> {
            self.store.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Bytes,
            ttl: Option<Duration>,
        ) -> cachekit_core::Result<()> {
            if self.hold_next_set.swap(false, Ordering::SeqCst) {
                self.gate.pass().await;
            }
            self.store.set(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.delete(key).await
        }
        async fn exists(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.exists(key).await
        }
        async fn health_check(&self) -> HealthReport {
            self.store.health_check().await
        }
        fn capabilities(&self) -> Capabilities {
            self.store.capabilities()
        }
    }

    #[tokio::test]
    async fn an_invalidate_during_the_store_removes_what_was_stored() {
        let gate = Arc::new(Gate::default());
        let cache = Cache::new(SlowSets {
            store: MemoryBackend::new(),
            gate: gate.clone(),
            hold_next_set: AtomicBool::new(true),
        });
        let key = key("invalidated-while-storing");
        let leader = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async { "old".to_owned() })
                    .await
            }
        });
        gate.entered.notified().await;
        // The leader's `set` is under way; the invalidate must not be overtaken by it.
        let invalidate = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move { cache.invalidate(&key).await }
        });
        let_others_run().await;
        gate.released.notify_one();
        assert_eq!(leader.await.expect("leader"), "old");
        invalidate.await.expect("task").expect("invalidate");

        let after: String = cache
            .get_or_compute(&key, None, || async { "new".to_owned() })
            .await;
        assert_eq!(
            after, "new",
            "the value stored during the invalidate survived it"
        );
    }

    /// A memory backend whose next `set` lands only when the gate opens, whether or not
    /// its caller is still waiting: like an HTTP `PUT` already on the wire, which the
    /// server applies after the client gave up on it.
    struct LateSets {
        store: Arc<MemoryBackend>,
        gate: Arc<Gate>,
        hold_next_set: AtomicBool,
    }

    impl LateSets {
        fn new(gate: &Arc<Gate>) -> Self {
            LateSets {
                store: Arc::new(MemoryBackend::new()),
                gate: gate.clone(),
                hold_next_set: AtomicBool::new(true),
            }
        }
    }

    #[async_trait]
    impl Backend for LateSets {
        async fn get(&self, key: &str) -> cachekit_core::Result<Option<Bytes>> {
            self.store.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: Bytes,
            ttl: Option<Duration>,
        ) -> cachekit_core::Result<()> {
            if !self.hold_next_set.swap(false, Ordering::SeqCst) {
                return self.store.set(key, value, ttl).await;
            }
            let (store, gate, key) = (self.store.clone(), self.gate.clone(), key.to_owned());
            // Dropping this call's future does not stop the write.
            let write = tokio::spawn(async move {
                gate.pass().await;
                store.set(&key, value, ttl).await
            });
            write
                .await
                .map_err(|err| BackendError::unavailable(err.to_string()))?
        }
        async fn delete(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.delete(key).await
        }
        async fn exists(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.exists(key).await
        }
        async fn health_check(&self) -> HealthReport {
            self.store.health_check().await
        }
        fn capabilities(&self) -> Capabilities {
            self.store.capabilities()
        }
    }

    /// Backend operations time out after this long.
    const TIMEOUT: Duration = Duration::from_millis(50);

    /// A call on `cache` whose `set` outlives `TIMEOUT`: it returns "old" without waiting
    /// for the set, which is held at `gate`.
    async fn call_whose_set_times_out(cache: &Cache, key: &CacheKey) {
        let old: String = cache
            .get_or_compute(key, None, || async { "old".to_owned() })
            .await;
        assert_eq!(old, "old");
        assert_eq!(cache.stats().errors, 1, "the set timed out");
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_that_lands_after_its_timeout_does_not_outlive_an_invalidate() {
        let gate = Arc::new(Gate::default());
        let cache = Cache::new(LateSets::new(&gate)).with_backend_timeout(TIMEOUT);
        let key = key("late-set");
        call_whose_set_times_out(&cache, &key).await;

        let invalidate = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move { cache.invalidate(&key).await }
        });
        let_others_run().await;
        // The set lands while the invalidate is under way.
        gate.released.notify_one();
        invalidate.await.expect("task").expect("invalidate");
        // Whatever is still to land has landed.
        let_others_run().await;

        let after: String = cache
            .get_or_compute(&key, None, || async { "new".to_owned() })
            .await;
        assert_eq!(
            after, "new",
            "a set begun before the invalidate landed after it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalidate_that_cannot_wait_for_a_late_set_fails_and_the_set_is_removed() {
        let gate = Arc::new(Gate::default());
        let cache = Cache::new(LateSets::new(&gate)).with_backend_timeout(TIMEOUT);
        let key = key("late-set-outlasting-the-invalidate");
        call_whose_set_times_out(&cache, &key).await;

        // The set is still held when the invalidate's own time is up: it cannot promise
        // anything, and says so.
        let err = cache
            .invalidate(&key)
            .await
            .expect_err("an invalidate that did not see the set end");
        assert_eq!(err.kind(), cachekit_core::ErrorKind::Timeout, "{err}");

        // When the set does land, what it wrote is removed.
        gate.released.notify_one();
        let mut settled = false;
        for _ in 0..100 {
            let_others_run().await;
            if !cache.backend().exists(key.as_str()).await.expect("exists") {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(settled, "the late set's value survived the invalidate");
        let after: String = cache
            .get_or_compute(&key, None, || async { "new".to_owned() })
            .await;
        assert_eq!(after, "new");
    }

    #[tokio::test]
    async fn a_call_cancelled_during_its_set_does_not_outlive_an_invalidate() {
        let gate = Arc::new(Gate::default());
        let cache = Cache::new(LateSets::new(&gate));
        let key = key("cancelled-while-storing");
        let leader = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                cache
                    .get_or_compute(&key, None, || async { "old".to_owned() })
                    .await
            }
        });
        gate.entered.notified().await;
        // The caller goes away while its set is on the wire.
        leader.abort();
        assert!(leader.await.expect_err("aborted").is_cancelled());

        let invalidate = tokio::spawn({
            let (cache, key) = (cache.clone(), key.clone());
            async move { cache.invalidate(&key).await }
        });
        let_others_run().await;
        gate.released.notify_one();
        invalidate.await.expect("task").expect("invalidate");
        // Whatever is still to land has landed.
        let_others_run().await;

        let after: String = cache
            .get_or_compute(&key, None, || async { "new".to_owned() })
            .await;
        assert_eq!(
            after, "new",
            "a set begun before the invalidate landed after it"
        );
    }

    /// A memory backend whose `set`s never end, counted.
    #[derive(Default)]
    struct HangingSets {
        store: MemoryBackend,
        sets: AtomicUsize,
    }

    #[async_trait]
    impl Backend for HangingSets {
        async fn get(&self, key: &str) -> cachekit_core::Result<Option<Bytes>> {
            self.store.get(key).await
        }
        async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> cachekit_core::Result<()> {
            self.sets.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        }
        async fn delete(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.delete(key).await
        }
        async fn exists(&self, key: &str) -> cachekit_core::Result<bool> {
            self.store.exists(key).await
        }
        async fn health_check(&self) -> HealthReport {
            self.store.health_check().await
        }
        fn capabilities(&self) -> Capabilities {
            self.store.capabilities()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sets_that_never_end_do_not_pile_up() {
        let backend = Arc::new(HangingSets::default());
        let cache = Cache::from_arc(backend.clone()).with_backend_timeout(TIMEOUT);
        for i in 0..MAX_DETACHED_WRITES + 8 {
            let got = cache
                .get_or_compute(&key(&format!("hanging-{i}")), None, || async { i })
                .await;
            assert_eq!(got, i, "the value is returned, stored or not");
        }
        assert_eq!(backend.sets.load(Ordering::SeqCst), MAX_DETACHED_WRITES);
        assert_eq!(
            cache.inner.detached_writes.load(Ordering::SeqCst),
            MAX_DETACHED_WRITES
        );
    }
}
