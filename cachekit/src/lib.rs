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
//! backend operation, see [`Cache::with_backend_timeout`]), `max_value_bytes = N` (the
//! largest stored value decoded, default 8 MiB, see [`Cache::with_max_value_bytes`]),
//! `skip(arg, ...)` (arguments left out of the key: a client, a connection), and `strict`
//! (backend errors are returned through the function's error type, which must implement
//! `From<BackendError>`). Every other argument must implement `serde::Serialize`; the
//! result type must implement `Serialize` and `DeserializeOwned`. Beside the function the
//! attribute generates `NAME_cache()` (the [`Cache`], for its stats) and
//! `NAME_invalidate(args)`, generic like the function (`load_invalidate::<User>(1)`).
//!
//! What keys a call (see [`key`]): the namespace and version, the concrete types of the
//! function's type parameters and of its keyed `impl Trait` arguments (`load::<User>(1)`
//! and `load::<Team>(1)` are two entries), the values of its const parameters, and, for a
//! function nested in a block (two blocks may each define a `helper`), where it is: the
//! enclosing item's path and the function's line and column, so its keys change when
//! lines above it in its file do (a cold cache, never a wrong value). A module-level
//! function's keys depend on none of that. `None` and `Some(None)` are different keys.
//! Unordered map and set arguments (`HashMap`, `HashSet`, and `BTreeMap`, `BTreeSet`) are
//! keyed by content, not by iteration order; ordered ones (`IndexMap`, `IndexSet`, a
//! `Vec` of pairs) by content and order.
//!
//! Without the attribute, [`Cache::get_or_compute`] and [`Cache::get_or_try_compute`] take
//! a [`CacheKey`] (built by [`CacheKey::for_call`] or [`CacheKey::for_generic_call`]), a
//! ttl and a closure.
//!
//! Semantics: `Err` results are never stored; stored bytes that do not decode, were
//! written for another result type, or are over the size limit are a miss that is
//! recomputed, overwritten and counted (never a panic, a large allocation or a wrong
//! value, see [`envelope`]); backend errors fail open (logged with `tracing`, counted)
//! unless in strict mode; concurrent misses of one key compute once in a process
//! (single-flight); and once [`Cache::invalidate`] returns `Ok`, no call is answered by a
//! computation that began before it (in this process, and as long as a backend `set` has
//! no effect after it has returned; see [`Cache::invalidate`]).

mod cache;
mod canonical;
pub mod envelope;
pub mod key;

pub use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};
pub use cachekit_macros::cache;

pub use crate::cache::{Cache, CacheStats, StrictCache, DEFAULT_MAX_VALUE_BYTES};
pub use crate::key::CacheKey;

/// Used by the code `#[cachekit::cache]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde::Serialize;

    /// The `generics` or `args` of a function without any: an empty array.
    pub const EMPTY: [(); 0] = [];

    /// Makes a non-serialisable argument fail to compile at that argument, with the
    /// missing `Serialize` bound in the message.
    pub fn assert_key_argument<T: Serialize + ?Sized>(_: &T) {}

    /// The key scope of a cached function (see [`crate::key`]), from the path of an item
    /// generated beside it (`marker_path`, from `type_name_of_val`, whose last segment is
    /// `marker_name`). At module level that path is `module_path::marker_name`, unique
    /// there, and the scope is empty, so keys survive edits elsewhere in the file. Nested
    /// in a block, the path names the enclosing item but not which of its blocks (two
    /// blocks of one function can each define a `helper`), so the scope adds the line
    /// and column: the key of a nested function changes when lines above it in its file
    /// do, a cold cache, never a wrong value.
    pub fn scope(
        module_path: &str,
        marker_path: &str,
        marker_name: &str,
        line: u32,
        column: u32,
    ) -> String {
        let enclosing = marker_path
            .strip_suffix(marker_name)
            .and_then(|path| path.strip_suffix("::"))
            .unwrap_or(marker_path);
        if enclosing == module_path {
            String::new()
        } else {
            format!("{enclosing}@{line}:{column}")
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::__private::scope;

    #[rstest]
    #[case::module_level("app::api", "app::api::load_cache", "")]
    #[case::crate_root("app", "app::load_cache", "")]
    #[case::nested_in_a_function("app::api", "app::api::outer::load_cache", "app::api::outer@12:5")]
    #[case::nested_in_a_closure(
        "app",
        "app::outer::{{closure}}::load_cache",
        "app::outer::{{closure}}@12:5"
    )]
    #[case::nested_in_a_method("app", "app::Repo::get::load_cache", "app::Repo::get@12:5")]
    fn functions_nested_in_blocks_are_scoped_by_place(
        #[case] module_path: &str,
        #[case] marker_path: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            scope(module_path, marker_path, "load_cache", 12, 5),
            expected
        );
    }
}
