//! Function-result caching over any cachekit [`Backend`]: the Rust form of the Python
//! page's `@cache(backend=backend)`.
//!
//! With the attribute:
//!
//! ```
//! use cachekit_backend_memory::MemoryBackend;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Profile { id: u64, greeting: String }
//!
//! #[derive(Debug)]
//! struct NotFound;
//!
//! #[cachekit::cache(backend = MemoryBackend::new(), ttl = 300)]
//! async fn user_profile(id: u64, lang: &str) -> Result<Profile, NotFound> {
//!     if id == 0 { return Err(NotFound) }
//!     Ok(Profile { id, greeting: format!("hello in {lang}") })
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let first = user_profile(7, "en").await.unwrap();   // runs the body, stores the result
//! let again = user_profile(7, "en").await.unwrap();   // answered from the backend
//! assert_eq!(first.greeting, again.greeting);
//! assert_eq!(user_profile_cache().stats().hits, 1);
//! user_profile_invalidate(7, "en").await.unwrap();    // the next call recomputes
//! # });
//! ```
//!
//! `backend = EXPR` is evaluated once, on the first call; options: `ttl = SECS`,
//! `namespace = "..."` (default: the function's module path and name), `version = N`
//! (bump it when the result's meaning or type changes), `timeout_ms = N` (bounds each
//! backend operation, see [`Cache::with_backend_timeout`]), `skip(arg, ...)` (arguments left
//! out of the key: a client, a connection), and `strict` (backend errors are returned
//! through the function's error type, which must implement `From<BackendError>`). Every
//! other argument must implement `serde::Serialize`; the result type must implement
//! `Serialize` and `DeserializeOwned`. Beside the function the attribute generates
//! `NAME_cache()` (the [`Cache`], for its stats) and `NAME_invalidate(args)`.
//!
//! Without the attribute, [`Cache::get_or_compute`] and [`Cache::get_or_try_compute`] take
//! a [`CacheKey`] (built by [`CacheKey::for_call`], see [`key`] for the scheme), a ttl and a
//! closure.
//!
//! Semantics: `Err` results are never stored; bytes that do not decode are a miss that is
//! recomputed, overwritten and counted (never a panic or a wrong value, see [`envelope`]);
//! backend errors fail open (logged with `tracing`, counted) unless in strict mode;
//! concurrent misses of one key compute once in a process (single-flight).

mod cache;
pub mod envelope;
pub mod key;

pub use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};
pub use cachekit_macros::cache;

pub use crate::cache::{Cache, CacheStats, StrictCache};
pub use crate::key::CacheKey;

/// Used by the code `#[cachekit::cache]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde::Serialize;

    /// Makes a non-serialisable argument fail to compile at that argument, with the
    /// missing `Serialize` bound in the message.
    pub fn assert_key_argument<T: Serialize + ?Sized>(_: &T) {}
}
