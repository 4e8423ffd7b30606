//! The bearer token: what a configured token may be, how a presented one is parsed, and how
//! the two are compared without revealing either's content or length.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// Why a configured token is refused, or `None` if it can be used.
///
/// A token must be non-empty (an empty one would match `Authorization: Bearer ` and protect
/// nothing) and consist of visible ASCII only (`!` to `~`): anything else cannot travel
/// unchanged in an HTTP header, so no client could ever present it.
pub(crate) fn token_problem(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        Some("the token is empty; give a non-empty token, or none to serve without authentication")
    } else if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        Some("the token must be visible ASCII (`!` to `~`), without spaces or control characters")
    } else {
        None
    }
}

/// The configured token, kept only as its SHA-256 digest.
///
/// Presented tokens are hashed too and the two 32-byte digests compared in constant time:
/// the work done depends on neither the expected token's bytes nor its length (the server
/// does not even keep the length), so response timing reveals neither.
#[derive(Clone)]
pub(crate) struct ExpectedToken {
    digest: [u8; 32],
}

impl ExpectedToken {
    pub(crate) fn new(token: &str) -> Self {
        ExpectedToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the configured token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digests_equal(&presented, &self.digest)
    }

    /// Whether the request carries `Authorization: Bearer <the configured token>`.
    pub(crate) fn authorizes(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_credentials)
            .is_some_and(|token| self.matches(token))
    }
}

/// Compares every byte, with no early exit, so the time taken does not depend on where two
/// digests first differ.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The token of an `Authorization` value using the `Bearer` scheme, or `None`.
///
/// RFC 7235: `credentials = auth-scheme 1*SP token68`, and the scheme is case-insensitive,
/// so `bearer x` and `BEARER x` carry the token `x`. A value with no token, a different
/// scheme, or anything after the token is not a bearer credential.
pub(crate) fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    let is_one_token = !token.is_empty() && !token.bytes().any(|byte| byte == b' ');
    is_one_token.then_some(token)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// How long one check of `presented` against `expected` takes.
    fn time_check(expected: &ExpectedToken, presented: &str) -> Duration {
        let started = Instant::now();
        std::hint::black_box(expected.matches(std::hint::black_box(presented)));
        started.elapsed()
    }

    /// A long presented token is checked as fast against a 1-byte expected token as against
    /// one of its own length that differs only in the last byte: the time taken reveals
    /// neither the expected token's length nor how much of it matched. (Compared byte by
    /// byte with an early exit on length, the first check takes nanoseconds and the second
    /// a pass over 64 KiB: thousands of times longer, far outside the bounds below, which
    /// leave room for a loaded machine.)
    #[test]
    fn comparison_time_does_not_depend_on_the_expected_token() {
        const LENGTH: usize = 64 * 1024;
        let presented = "a".repeat(LENGTH);
        let same_length = format!("{}b", "a".repeat(LENGTH - 1));
        let short = ExpectedToken::new("a");
        let long = ExpectedToken::new(&same_length);
        // Interleaved, so that load on the machine affects both alike; the fastest run is
        // the least noisy estimate of the intrinsic cost.
        let mut against_short = Duration::MAX;
        let mut against_long = Duration::MAX;
        for _ in 0..30 {
            against_short = against_short.min(time_check(&short, &presented));
            against_long = against_long.min(time_check(&long, &presented));
        }
        let ratio = against_long.as_secs_f64() / against_short.as_secs_f64().max(1e-9);
        assert!(
            (0.1..10.0).contains(&ratio),
            "checking against a same-length token took {against_long:?}, against a 1-byte \
             token {against_short:?}: the timing reveals the expected token's length"
        );
        assert!(!short.matches(&presented) && !long.matches(&presented));
        assert!(long.matches(&same_length));
    }

    #[test]
    fn tokens_must_be_non_empty_visible_ascii() {
        assert!(token_problem("s3cret-._~+/=").is_none());
        for refused in ["", " ", "two words", "tab\there", "new\nline", "caf\u{e9}"] {
            assert!(token_problem(refused).is_some(), "{refused:?}");
        }
    }
}
