//! Cache keys for function calls.
//!
//! The scheme (key scheme 3), stable across runs, processes and platforms:
//!
//! ```text
//! {namespace}:v{version}:k3:{hex(sha256(canonical_msgpack([scope, generics, args])))[..32]}
//! ```
//!
//! - `namespace` defaults to the function's `module_path!()::name`;
//! - `version` is bumped by hand when the function's meaning or its return type changes,
//!   so old entries are simply never read again;
//! - `k3` is the key scheme: it changes whenever what goes into the digest changes, so keys
//!   of one scheme never meet values written under another (scheme 2 wrote `Some(x)` as
//!   `x`, so `None` and `Some(None)` shared a key, and sorted every map, whatever its
//!   order meant);
//! - `scope` is `""` for a function at module level (its path is unique there) and for an
//!   explicit namespace; for a function nested in a block, which its module path does not
//!   identify, it is the path of the enclosing item and the function's line and column,
//!   `"app::outer@12:5"` (see `#[cachekit::cache]`);
//! - `generics` is an array: for each type parameter of the function, in declaration
//!   order, `std::any::type_name` of its concrete type, and for each const parameter its
//!   value; then the `type_name` of the concrete type of each keyed `impl Trait` argument.
//!   Empty for a function without any;
//! - `args` is the array of the function's (non-skipped) arguments;
//! - the three are encoded as one MessagePack array by the canonical encoding: rmp-serde's
//!   defaults (a struct is an array of its fields, a string a str, an integer its smallest
//!   encoding), except that `Some(x)` is the array `[x]` (`None` is nil), and that the
//!   entries of unordered maps and the elements of unordered sets are sorted by their
//!   encoded bytes, so that a `HashMap` or `HashSet` argument has one key per content,
//!   whatever its iteration order (detailed below);
//! - the digest is SHA-256, truncated to 128 bits and written as 32 lowercase hex digits.
//!
//! The digest keeps keys short and free of characters some backends reject, whatever the
//! arguments are; 128 bits make a collision between two live entries negligible.
//!
//! `type_name` is per type *name*: its text is not guaranteed across compiler versions,
//! so a toolchain upgrade can change a generic function's keys (a cold cache, never a
//! wrong value); and two types of one name (two versions of a crate in one build) share
//! keys. A function whose key other languages must compute should not be generic.
//!
//! Canonical MessagePack, in detail: `Some(x)` is `[x]`; maps and sets whose order is not
//! part of their value are recognised by the type name of the collection serde hands to
//! `collect_map` / `collect_seq` (`HashMap`, `HashSet`, std's or hashbrown's, their aliases
//! such as `FxHashMap`, and `BTreeMap`, `BTreeSet`) and sorted by entry or element; every
//! other map (`IndexMap`, a `preserve_order` `serde_json::Map`, a hand-written impl) and
//! sequence, tuple and struct keeps its order.

use std::fmt::{self, Write as _};

use cachekit_core::BackendError;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::canonical;

/// The key scheme this build writes, as it appears in keys (`k3`).
pub const KEY_SCHEME: u32 = 3;

/// The `generics` of a function without type or const parameters: an empty array.
pub const NO_GENERICS: [&str; 0] = [];

/// The key one function call is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a call with `args` to the non-generic, module-level function `namespace`
    /// at `version`: [`for_generic_call`](Self::for_generic_call) with no scope and no
    /// generics.
    ///
    /// Fails with an `InvalidArgument`-kind error only if `args`' `Serialize` impl fails.
    pub fn for_call<A: Serialize + ?Sized>(
        namespace: &str,
        version: u32,
        args: &A,
    ) -> Result<CacheKey, BackendError> {
        Self::for_generic_call(namespace, version, "", &NO_GENERICS, args)
    }

    /// The key of a call with `args` to one instantiation of the function `namespace` at
    /// `version`, in the scheme above: `scope` tells apart functions of one path (`""` at
    /// module level), `generics` is the array of the concrete type names and const values
    /// the call instantiates ([`NO_GENERICS`] for none; a tuple such as
    /// `(std::any::type_name::<T>(),)` otherwise).
    ///
    /// Fails with an `InvalidArgument`-kind error only if a `Serialize` impl fails.
    pub fn for_generic_call<G, A>(
        namespace: &str,
        version: u32,
        scope: &str,
        generics: &G,
        args: &A,
    ) -> Result<CacheKey, BackendError>
    where
        G: Serialize + ?Sized,
        A: Serialize + ?Sized,
    {
        let encoded = canonical::to_vec(&(scope, generics, args)).map_err(|err| {
            BackendError::invalid_argument(format!(
                "cannot serialise the arguments of {namespace} into a cache key: {err}"
            ))
        })?;
        let digest = Sha256::digest(&encoded);
        let mut key = String::with_capacity(namespace.len() + 52);
        key.push_str(namespace);
        let _ = write!(key, ":v{version}:k{KEY_SCHEME}:");
        for byte in &digest[..16] {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Ok(CacheKey(key))
    }

    /// A key chosen by the caller, used as is.
    pub fn raw(key: impl Into<String>) -> CacheKey {
        CacheKey(key.into())
    }

    /// The key text handed to the backend.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use rstest::rstest;

    use super::*;

    fn user_profile() -> CacheKey {
        CacheKey::for_call("app::user_profile", 1, &(42u64, "en")).expect("key")
    }

    fn generic_load() -> CacheKey {
        CacheKey::for_generic_call("app::load", 1, "", &("app::User",), &(1u64,)).expect("key")
    }

    fn const_generic_top() -> CacheKey {
        CacheKey::for_generic_call("app::top", 1, "", &("app::User", 3usize), &(10u64,))
            .expect("key")
    }

    fn nested_helper() -> CacheKey {
        CacheKey::for_generic_call("app::helper", 1, "app::outer@12:5", &NO_GENERICS, &(1u64,))
            .expect("key")
    }

    fn map_total() -> CacheKey {
        let weights: HashMap<&str, u8> = [("b", 2), ("a", 1)].into();
        CacheKey::for_call("app::total", 1, &(weights,)).expect("key")
    }

    fn set_tags() -> CacheKey {
        let tags: HashSet<u32> = [300, 5].into();
        CacheKey::for_call("app::tags", 1, &(tags,)).expect("key")
    }

    fn options_find() -> CacheKey {
        let args = (None::<Option<u8>>, Some(None::<u8>), Some(Some(5u8)));
        CacheKey::for_call("app::find", 1, &args).expect("key")
    }

    fn ordered_first() -> CacheKey {
        let entries = InsertionOrdered(vec![("b", 2), ("a", 1)]);
        CacheKey::for_call("app::first", 1, &(entries,)).expect("key")
    }

    /// Any process, on any platform, that follows the documented scheme computes these
    /// keys. Each digest was derived apart from this code: the canonical MessagePack of
    /// `[scope, generics, args]` written out by hand from the MessagePack spec (in the
    /// comment; a string is `a0 + len` then its UTF-8), then Python's
    /// `hashlib.sha256(bytes.fromhex(HEX)).hexdigest()[:32]`. Scheme 3 writes the first six
    /// with the same bytes as scheme 2 did (only the `k3` differs); the last two are what
    /// changed.
    #[rstest]
    // ["", [], [42, "en"]] = 93 a0 90 92 2a a2 65 6e
    #[case::plain(
        user_profile(),
        "app::user_profile:v1:k3:a61234235ae6976163f144b12969bac9"
    )]
    // ["", ["app::User"], [1]] = 93 a0 91 a9 "app::User" 91 01
    #[case::generic(generic_load(), "app::load:v1:k3:70781fe1e0cd7341fa1769eb4a31a82b")]
    // ["", ["app::User", 3], [10]] = 93 a0 92 a9 "app::User" 03 91 0a
    #[case::const_generic(const_generic_top(), "app::top:v1:k3:358c1d9a61eeb72adfa55be5637c017b")]
    // ["app::outer@12:5", [], [1]] = 93 af "app::outer@12:5" 90 91 01
    #[case::nested(nested_helper(), "app::helper:v1:k3:7abcf1ddf7bf041c935572848e134ebc")]
    // ["", [], [{"a": 1, "b": 2}]] = 93 a0 90 91 82 a1 61 01 a1 62 02: a HashMap, sorted
    #[case::map(map_total(), "app::total:v1:k3:756030f37b374f29a7dda8215f9b25bc")]
    // ["", [], [[5, 300]]] = 93 a0 90 91 92 05 cd 01 2c: elements sorted by their bytes
    #[case::set(set_tags(), "app::tags:v1:k3:99c28f3983a8170bc64659d0e9ac5a8f")]
    // ["", [], [None, Some(None), Some(Some(5))]] = 93 a0 90 93 c0 91 c0 91 91 05
    #[case::options(options_find(), "app::find:v1:k3:a51180053dba30fea30ac8e14bfd5738")]
    // ["", [], [{"b": 2, "a": 1}]] = 93 a0 90 91 82 a1 62 02 a1 61 01: an ordered map, kept
    #[case::ordered_map(ordered_first(), "app::first:v1:k3:e8065656c2102fe8225ce5164435636f")]
    fn the_key_scheme_is_pinned_by_fixed_vectors(#[case] key: CacheKey, #[case] expected: &str) {
        assert_eq!(key.as_str(), expected);
    }

    fn base() -> CacheKey {
        CacheKey::for_call("ns", 1, &(1u64, "a")).expect("key")
    }

    #[rstest]
    #[case::another_argument(CacheKey::for_call("ns", 1, &(2u64, "a")))]
    #[case::another_second_argument(CacheKey::for_call("ns", 1, &(1u64, "b")))]
    #[case::another_version(CacheKey::for_call("ns", 2, &(1u64, "a")))]
    #[case::another_namespace(CacheKey::for_call("ns2", 1, &(1u64, "a")))]
    #[case::another_scope(CacheKey::for_generic_call("ns", 1, "ns::f@1:1", &NO_GENERICS, &(1u64, "a")))]
    #[case::a_type_parameter(CacheKey::for_generic_call("ns", 1, "", &("u8",), &(1u64, "a")))]
    #[case::another_type_parameter(CacheKey::for_generic_call("ns", 1, "", &("u16",), &(1u64, "a")))]
    fn everything_in_the_scheme_changes_the_key(#[case] other: Result<CacheKey, BackendError>) {
        assert_ne!(base(), other.expect("key"));
    }

    #[test]
    fn a_plain_call_is_a_generic_call_without_scope_or_generics() {
        let generic = CacheKey::for_generic_call("ns", 1, "", &NO_GENERICS, &(1u64, "a"));
        assert_eq!(base(), generic.expect("key"));
        // References serialise as what they point to: a call with borrowed args hits.
        let borrowed = CacheKey::for_call("ns", 1, &(&1u64, &"a")).expect("key");
        assert_eq!(base(), borrowed);
    }

    /// Builds one call's arguments from the same content, with `state` as the hasher (its
    /// random seed fixes the iteration order), `capacity` and, when `reverse`, insertion in
    /// the other order.
    type Arguments = fn(&dyn Fn() -> RandomState, usize, bool) -> CacheKey;

    fn entries(reverse: bool) -> Vec<(String, u32)> {
        let mut entries: Vec<(String, u32)> = (0..40).map(|i| (format!("k{i}"), i)).collect();
        if reverse {
            entries.reverse();
        }
        entries
    }

    fn map(
        state: &dyn Fn() -> RandomState,
        capacity: usize,
        reverse: bool,
    ) -> HashMap<String, u32> {
        let mut map = HashMap::with_capacity_and_hasher(capacity, state());
        map.extend(entries(reverse));
        map
    }

    fn set(state: &dyn Fn() -> RandomState, capacity: usize, reverse: bool) -> HashSet<String> {
        let mut set = HashSet::with_capacity_and_hasher(capacity, state());
        set.extend(entries(reverse).into_iter().map(|(name, _)| name));
        set
    }

    fn key_of<A: Serialize>(args: &A) -> CacheKey {
        CacheKey::for_call("ns", 1, args).expect("key")
    }

    #[derive(Serialize)]
    struct Query {
        id: u64,
        tags: HashSet<String>,
        weights: Option<Vec<HashMap<String, u32>>>,
    }

    #[rstest]
    #[case::hash_map((|s, c, r| key_of(&(map(s, c, r),))) as Arguments)]
    #[case::hash_set((|s, c, r| key_of(&(set(s, c, r),))) as Arguments)]
    #[case::maps_nested_in_a_map((|s, c, r| {
        let mut outer = HashMap::with_capacity_and_hasher(c, s());
        for i in 0..8u32 {
            outer.insert(i, map(s, c, r));
        }
        key_of(&(outer,))
    }) as Arguments)]
    #[case::sets_and_maps_inside_a_struct((|s, c, r| key_of(&(Query {
        id: 7,
        tags: set(s, c, r),
        weights: Some(vec![map(s, c, r), map(s, c, !r)]),
    },))) as Arguments)]
    #[case::sets_in_a_set_of_maps((|s, c, r| {
        let inner: BTreeSet<String> = set(s, c, r).into_iter().collect();
        let mut outer = HashMap::with_capacity_and_hasher(c, s());
        outer.insert("inner".to_owned(), set(s, c, r));
        key_of(&(inner, outer))
    }) as Arguments)]
    fn unordered_collections_key_by_content(#[case] arguments: Arguments) {
        // Each map and set gets its own random hasher seed, so iteration orders differ.
        let first = arguments(&RandomState::new, 0, false);
        for capacity in [0, 1000] {
            for reverse in [false, true] {
                assert_eq!(first, arguments(&RandomState::new, capacity, reverse));
            }
        }
    }

    #[test]
    fn some_is_told_apart_from_none_at_every_depth() {
        assert_ne!(key_of(&(None::<Option<u8>>,)), key_of(&(Some(None::<u8>),)));
        assert_ne!(key_of(&(None::<()>,)), key_of(&(Some(()),)));
        assert_ne!(
            key_of(&(Some(None::<Option<u8>>),)),
            key_of(&(Some(Some(None::<u8>)),))
        );
        assert_ne!(key_of(&(Some(None::<u8>),)), key_of(&(None::<Option<u8>>,)));
    }

    /// A map that keeps its insertion order, like `IndexMap` or a `preserve_order`
    /// `serde_json::Map`: serialised through `collect_map`, under a type name that is not
    /// a known unordered map's.
    struct InsertionOrdered(Vec<(&'static str, u32)>);

    impl Serialize for InsertionOrdered {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
        }
    }

    #[test]
    fn an_ordered_map_is_keyed_in_its_order() {
        let ab = InsertionOrdered(vec![("a", 1), ("b", 2)]);
        let ba = InsertionOrdered(vec![("b", 2), ("a", 1)]);
        assert_ne!(key_of(&(ab,)), key_of(&(ba,)));
    }

    #[test]
    fn order_still_matters_where_it_is_part_of_the_value() {
        assert_ne!(key_of(&(vec![1u8, 2],)), key_of(&(vec![2u8, 1],)));
        assert_ne!(key_of(&((1u8, 2u8),)), key_of(&((2u8, 1u8),)));
        // A HashMap and a BTreeMap of the same entries, both unordered, are one argument.
        let btree: BTreeMap<String, u32> = entries(false).into_iter().collect();
        assert_eq!(
            key_of(&(btree,)),
            key_of(&(map(&RandomState::new, 0, true),))
        );
    }
}
