//! Cache keys for function calls.
//!
//! The scheme, stable across runs, processes, platforms and languages:
//!
//! ```text
//! {namespace}:v{version}:{hex(sha256(msgpack(args)))[..32]}
//! ```
//!
//! - `namespace` defaults to the function's `module_path!()::name`;
//! - `version` is bumped by hand when the function's meaning or its return type changes,
//!   so old entries are simply never read again;
//! - `args` is the tuple of the function's (non-skipped) arguments, serialised with
//!   rmp-serde's defaults (MessagePack; a tuple is an array, a struct an array of its
//!   fields in declaration order, a string a str, an integer its smallest encoding);
//! - the digest is SHA-256, truncated to 128 bits and written as 32 lowercase hex digits.
//!
//! The digest keeps keys short and free of characters some backends reject, whatever the
//! arguments are; 128 bits make a collision between two live entries negligible.

use std::fmt::{self, Write as _};

use cachekit_core::BackendError;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The key one function call is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a call to the function `namespace` (at `version`) with `args`.
    ///
    /// Fails with an `InvalidArgument`-kind error only if `args`' `Serialize` impl fails.
    pub fn for_call<A: Serialize + ?Sized>(
        namespace: &str,
        version: u32,
        args: &A,
    ) -> Result<CacheKey, BackendError> {
        let encoded = rmp_serde::to_vec(args).map_err(|err| {
            BackendError::invalid_argument(format!(
                "cannot serialise the arguments of {namespace} into a cache key: {err}"
            ))
        })?;
        let digest = Sha256::digest(&encoded);
        let mut key = String::with_capacity(namespace.len() + 48);
        key.push_str(namespace);
        let _ = write!(key, ":v{version}:");
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
    use super::*;

    #[test]
    fn the_key_scheme_is_pinned_by_a_fixed_vector() {
        // msgpack([42, "en"]) = 92 2a a2 65 6e, and Python's
        // hashlib.sha256(bytes([0x92, 0x2a, 0xa2, 0x65, 0x6e])).hexdigest()[:32] gives the digits below.
        // Any process, on any platform, in any language that follows the documented scheme
        // computes this same key.
        let key = CacheKey::for_call("app::user_profile", 1, &(42u64, "en")).expect("key");
        assert_eq!(
            key.as_str(),
            "app::user_profile:v1:601dfa61477464dfc842e1c9e716b745"
        );
    }

    #[test]
    fn arguments_version_and_namespace_all_change_the_key() {
        let base = CacheKey::for_call("ns", 1, &(1u64, "a")).expect("key");
        for other in [
            CacheKey::for_call("ns", 1, &(2u64, "a")),
            CacheKey::for_call("ns", 1, &(1u64, "b")),
            CacheKey::for_call("ns", 2, &(1u64, "a")),
            CacheKey::for_call("ns2", 1, &(1u64, "a")),
        ] {
            assert_ne!(base, other.expect("key"));
        }
        // References serialise as what they point to: a call with borrowed args hits.
        let borrowed = CacheKey::for_call("ns", 1, &(&1u64, &"a")).expect("key");
        assert_eq!(base, borrowed);
    }
}
