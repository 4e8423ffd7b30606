//! The raw HTTP API family's own test: our server behind a layer that breaks one rule of
//! the wire contract at a time must be failed by the `http_api` cases that own that rule
//! and by no other, so that a failure names the broken rule; and the same server behind a
//! layer that changes nothing must pass every one of them.
//!
//! Each flaw imitates what a real server, framework or proxy in front of a store has done
//! (named in its doc comment). The layer sits outside the server's router, where a reverse
//! proxy or a hand-written front end would: the store and the server behind it are ours,
//! so every failure is the flaw's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::ServiceExt;
use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::{run_suite, Report, RunOptions, Suite};
use cachekit_core::Capabilities;
use cachekit_server::ServerConfig;
use futures::StreamExt;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rstest::rstest;
use tower::Layer;
use unicode_normalization::UnicodeNormalization;

const TOKEN: &str = "wire-flaw-token";
/// How many flawed servers are checked at once.
const FLAWS_AT_ONCE: usize = 4;
/// The server's body limit, declared to the suite: small, so the over-limit case is quick.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest ttl the API allows, in seconds (30 days).
const API_MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// Everything but the unreserved characters is escaped when a flaw rebuilds a key segment.
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireFlaw {
    /// Nothing changed: the layer only passes requests and answers through.
    Faithful,
    // ---- status codes ----
    /// A missing key answered `200` with an empty body (a handler that writes
    /// `store.get(key).unwrap_or_default()`).
    MissingKeyAnswers200,
    /// DELETE always `204`, whether or not there was an entry (idempotent-DELETE folklore).
    DeleteAlwaysAnswers204,
    /// No HEAD route: `405` (frameworks that do not derive HEAD from GET).
    NoHeadRoute,
    /// An oversized body answered `400` instead of `413` (a generic "bad request" for any
    /// body error).
    OversizeAnswers400,
    // ---- the key segment ----
    /// A wildcard route, `/cache/{*key}`: `/cache/a/b` is the key `a/b`.
    LiteralSlashJoinsTheKey,
    /// A proxy that decodes `%2F` before routing (Apache's `AllowEncodedSlashes NoDecode`
    /// left off, nginx `proxy_pass` with a URI part).
    DecodesEncodedSlash,
    /// A hand-written decoder that only knows upper-case hex: `%2f` is taken literally.
    UppercaseEscapesOnly,
    /// A proxy that normalises the path (`merge_slashes`, RFC 3986 dot-segment removal),
    /// `%2E%2E` included.
    ResolvesDotSegments,
    /// Form decoding applied to the path: `+` becomes a space.
    PlusDecodedAsSpace,
    /// Keys normalised to NFC on the way in (a framework that normalises all text input).
    NormalizesKeysToNfc,
    /// Two layers that each percent-decode: `%2541` becomes `A`.
    DecodesPercentTwice,
    /// The whole target decoded before it is split: `%3F` starts a query, `%23` a fragment.
    DecodesDelimitersBeforeSplitting,
    /// A static-file-style front end that serves `/cache/` as the directory's index.
    EmptyKeyIsAnIndex,
    // ---- ttl ----
    /// `ttl` read as a float and rounded up; anything unreadable ignored, not refused.
    LenientTtl,
    /// A ttl over 30 days clamped to 30 days instead of refused.
    ClampsTtlOverTheMaximum,
    /// The `ttl` parameter dropped by a proxy that strips unknown query parameters.
    IgnoresTtl,
    // ---- bodies ----
    /// The value written with `println!`/`fmt.Fprintln`: a newline after every body.
    AppendsNewlineToValues,
    /// The body read as text (Express `bodyParser.text()`): invalid UTF-8 becomes U+FFFD.
    ReadsBodiesAsText,
    /// Whatever arrived before the client stopped is stored, short or not.
    StoresBodiesCutShort,
    /// A front end that demands `Content-Length` (`411`) and refuses chunked bodies.
    RefusesChunkedBodies,
    /// An empty PUT treated as a delete ("nothing to store").
    EmptyBodyDeletes,
    /// A body over the limit cut to the limit and stored (a proxy's body buffer).
    TruncatesOversizeBodies,
    // ---- methods ----
    /// POST and PATCH routed to the PUT handler (`app.all('/cache/:key', ...)`).
    PostStoresLikePut,
    // ---- health ----
    /// `/health` answers `OK` as text, not JSON.
    HealthAnswersPlainText,
    /// `latency_ms` filled from whole seconds times 1000 (`ceil(secs) * 1000`).
    HealthLatencyInWholeSeconds,
    // ---- the token ----
    /// Any token that starts with the real one (`startsWith`).
    TokenComparedByPrefix,
    /// Any non-empty prefix of the real token (`strncmp(given, expected, strlen(given))`).
    TruncatedTokenAccepted,
    /// Tokens compared without case (`equalsIgnoreCase`).
    TokenComparedIgnoringCase,
    /// Auth applied to GET and PUT only: a DELETE needs no token.
    DeleteNeedsNoToken,
    /// Auth on the GET route only, HEAD answered by a route without it.
    HeadNeedsNoToken,
    /// Only `Bearer` with a capital B is recognised (RFC 9110 makes the scheme
    /// case-insensitive).
    BearerSchemeCaseSensitive,
    // ---- probe five: wire flaws the kit had not seen ----
    /// Spring MVC's trailing-slash match (`setUseTrailingSlashMatch`, on by default before
    /// 6.0), Express without `strict routing`: `/cache/k/` is served as `/cache/k`.
    StripsTrailingSlash,
    /// nginx `merge_slashes on` (the default) in front: `/cache//k` reaches `/cache/k`.
    MergesSlashes,
    /// A front end that lower-cases the whole path (case-insensitive URL rules, an F5 iRule
    /// `string tolower [HTTP::uri]`, IIS-style routing).
    LowercasesPath,
    /// The key decoded with `decode_utf8_lossy` / `new String(bytes, UTF_8)`: `%FF` becomes
    /// U+FFFD instead of being refused.
    LossyDecodesInvalidUtf8,
    /// A C front end that keeps the decoded key in a NUL-terminated string: `%00` ends it.
    TruncatesKeyAtEncodedNul,
    /// `ttl` read with Go's `time.ParseDuration` when it is not a plain number: `ttl=1m` is
    /// sixty seconds.
    TtlAcceptsGoDurations,
    /// `ttl` parsed as a 64-bit number and narrowed to 32 bits before the range check:
    /// `4294967297` becomes 1.
    TtlWrapsAtU32,
    /// `ttl` parsed with Rust's `u64::from_str` (or Python's `int`), which takes a leading
    /// `+`: `ttl=+1` is accepted.
    TtlParsedWithFromStr,
    /// Express `bodyParser.json()` on the PUT route: a body sent as `application/json` is
    /// parsed and stored re-serialised.
    ReparsesJsonBodies,
    /// A proxy that adds the token to `/health` so load-balancer probes pass: the full report
    /// goes to anyone who asks without a token.
    HealthProxyAddsTheToken,
    /// An empty value answered `204 No Content` (frameworks that turn an empty body into 204).
    EmptyValueAnswers204,
    // ---- probe six: flaws the kit had not seen ----
    /// nginx microcaching in front (`proxy_cache_valid 200 1s`, keyed by the request target,
    /// `Authorization` ignored, nothing purged by PUT or DELETE): a GET within a second of
    /// another is answered from the cache.
    MicrocachesGetsForASecond,
    /// A shared cache that follows RFC 9111 §4.4 to the letter: a successful PUT or DELETE
    /// invalidates exactly its own target URI (query included), while other spellings of
    /// the same key (`%2f` for `%2F`, `/cache/k` for `/cache/k?ttl=60`) stay cached for 1 s.
    InvalidatesOnlyTheExactTarget,
    /// Varnish's built-in VCL caches `404` answers (default_ttl 120 s; 10 s here): a GET of a
    /// key that was missing keeps answering 404 after the key is written.
    CachesNotFoundAnswers,
    /// A front end with a Varnish-style `PURGE` method that it forwards as a DELETE.
    PurgeMethodDeletes,
    /// Method-override middleware (Express `method-override`, Rack::MethodOverride,
    /// ASP.NET's `X-HTTP-Method-Override`): a POST with the header runs as PUT or DELETE.
    HonoursMethodOverrideHeader,
    /// Spring's `FormContentFilter` on the PUT route: a body sent as
    /// `application/x-www-form-urlencoded` (curl's default for `-d`) is consumed as form
    /// parameters and the handler stores an empty value.
    FormBodiesConsumedByTheFramework,
    /// An API gateway that normalises error answers from a template: every 4xx leaves with
    /// `cachekit-error-kind: invalid_argument`, whatever the service said.
    NormalisesTheErrorKindHeader,
    /// HEAD answered from a GET through `exists = bool(value)`: an empty value is `404`.
    HeadOfAnEmptyValueIs404,
    // ---- probe seven: wire flaws the kit had not seen ----
    /// The query stripped with a regex that needs at least one character after the `?`
    /// (`re.sub(r"\?.+$", "", target)`): `/cache/k?` is the key `k?`.
    EmptyQueryKeptInTheKey,
    /// A hand-written router that splits the target on `?ttl=`: any other query stays in
    /// the key (`/cache/k?v=2` is the key `k?v=2`).
    QueryOtherThanTtlKeptInTheKey,
    /// `ttl` read with `query.strip_prefix("ttl=")`: a ttl that is not the first parameter
    /// (`?v=2&ttl=1`) is ignored and the value stored without it.
    TtlReadOnlyAsTheFirstParameter,
    /// nginx `proxy_cache` microcaching applied to HEAD (`proxy_cache_methods GET HEAD`,
    /// 200 and 404 kept for a second, writes purge nothing).
    MicrocachesHeadAnswers,
    /// Not a flaw, a front end the kit must pass: lighttpd before 1.4.21 (and Squid 2.x)
    /// answer any `Expect: 100-continue` with `417 Expectation Failed`, which RFC 9110
    /// allows; a client sends the request again without the expectation.
    RefusesExpectations,
    /// Python's `parse_qsl` before 3.9.2 (CVE-2021-23336) split the query on `;` as well as
    /// `&`: `ttl=1;2` is `ttl=1` and an unknown `2`, accepted.
    SemicolonSplitsQueryParameters,
    /// A hand-written front end that routes on the raw request target
    /// (`target.strip_prefix("/cache/")`): a target in absolute form (`GET
    /// http://host/cache/k`), which RFC 9112 requires a server to accept, matches no route.
    AbsoluteFormTargetNotRouted,
}

/// What the caching flaws hold: (flaw, request target) -> until when, the status and body.
type ProxyCache = std::sync::Mutex<
    std::collections::HashMap<(String, String), (std::time::Instant, StatusCode, Vec<u8>)>,
>;

fn proxy_cache() -> &'static ProxyCache {
    static CACHE: std::sync::OnceLock<ProxyCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// How long a caching flaw keeps an answer, and whether it keeps answers of `status`.
fn caches(flaw: WireFlaw, status: StatusCode) -> Option<std::time::Duration> {
    match flaw {
        MicrocachesGetsForASecond | InvalidatesOnlyTheExactTarget if status == StatusCode::OK => {
            Some(std::time::Duration::from_secs(1))
        }
        CachesNotFoundAnswers if status == StatusCode::NOT_FOUND => {
            Some(std::time::Duration::from_secs(10))
        }
        MicrocachesHeadAnswers if matches!(status, StatusCode::OK | StatusCode::NOT_FOUND) => {
            Some(std::time::Duration::from_secs(1))
        }
        _ => None,
    }
}

/// The caching flaws around the front end: answers GETs from the cache, keeps answers.
async fn caching_front_end(flaw: WireFlaw, request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map(|target| target.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().clone();
    let slot = (format!("{flaw:?}"), target);
    let cached_method = if flaw == MicrocachesHeadAnswers {
        Method::HEAD
    } else {
        Method::GET
    };
    if method == cached_method {
        let cached = proxy_cache()
            .lock()
            .expect("the proxy cache lock")
            .get(&slot)
            .cloned();
        if let Some((until, status, body)) = cached {
            if std::time::Instant::now() < until {
                return (status, body).into_response();
            }
        }
    }
    let response = front_end_inner(flaw, request, next).await;
    let status = response.status();
    if method == cached_method {
        if let Some(keep) = caches(flaw, status) {
            let (response, body) = response_bytes(response).await;
            proxy_cache().lock().expect("the proxy cache lock").insert(
                slot,
                (std::time::Instant::now() + keep, status, body.clone()),
            );
            return answer_with_body(response, body);
        }
    } else if flaw == InvalidatesOnlyTheExactTarget && status.is_success() {
        proxy_cache()
            .lock()
            .expect("the proxy cache lock")
            .remove(&slot);
    }
    response
}

use WireFlaw::*;

/// Each flaw with the cases that must fail it, and the only ones that may: the cases owning
/// the rules it breaks.
fn expectations() -> Vec<(WireFlaw, &'static [&'static str])> {
    vec![
        (
            MissingKeyAnswers200,
            &["http_api::get_of_a_missing_key_is_404"],
        ),
        (
            DeleteAlwaysAnswers204,
            &["http_api::delete_answers_whether_the_entry_existed"],
        ),
        (NoHeadRoute, &["http_api::head_answers_without_a_body"]),
        (
            OversizeAnswers400,
            &["http_api::a_value_over_the_declared_maximum_is_413"],
        ),
        (
            LiteralSlashJoinsTheKey,
            &["http_api::a_literal_slash_never_reaches_a_key"],
        ),
        (
            DecodesEncodedSlash,
            &["http_api::encoded_slash_is_part_of_one_key"],
        ),
        (
            UppercaseEscapesOnly,
            &["http_api::encoded_slash_is_part_of_one_key"],
        ),
        (
            ResolvesDotSegments,
            &["http_api::dot_segments_are_never_resolved"],
        ),
        (PlusDecodedAsSpace, &["http_api::plus_in_a_key_is_a_plus"]),
        (
            NormalizesKeysToNfc,
            &["http_api::percent_encoded_utf8_is_decoded_exactly"],
        ),
        (
            DecodesPercentTwice,
            &["http_api::escaped_delimiters_stay_in_the_key"],
        ),
        (
            DecodesDelimitersBeforeSplitting,
            &["http_api::escaped_delimiters_stay_in_the_key"],
        ),
        (EmptyKeyIsAnIndex, &["http_api::the_empty_key_is_refused"]),
        (LenientTtl, &["http_api::ttl_is_parsed_strictly"]),
        (
            ClampsTtlOverTheMaximum,
            &["http_api::ttl_is_parsed_strictly"],
        ),
        (IgnoresTtl, &["http_api::ttl_in_whole_seconds_expires"]),
        (
            AppendsNewlineToValues,
            &["http_api::put_then_get_returns_the_body_exactly"],
        ),
        (
            ReadsBodiesAsText,
            &["http_api::put_then_get_returns_the_body_exactly"],
        ),
        (
            StoresBodiesCutShort,
            &["http_api::a_body_cut_short_stores_nothing"],
        ),
        (
            RefusesChunkedBodies,
            &["http_api::a_chunked_body_is_stored_whole"],
        ),
        (
            EmptyBodyDeletes,
            &["http_api::an_empty_body_stores_an_empty_value"],
        ),
        (
            TruncatesOversizeBodies,
            &["http_api::a_value_over_the_declared_maximum_is_413"],
        ),
        (
            PostStoresLikePut,
            &["http_api::methods_outside_the_api_change_nothing"],
        ),
        (
            HealthAnswersPlainText,
            &["http_api::health_answers_json_with_healthy"],
        ),
        (
            HealthLatencyInWholeSeconds,
            &["http_api::health_latency_fits_in_the_round_trip"],
        ),
        (
            TokenComparedByPrefix,
            &["http_api::wrong_tokens_are_all_refused"],
        ),
        (
            TruncatedTokenAccepted,
            &["http_api::wrong_tokens_are_all_refused"],
        ),
        (
            TokenComparedIgnoringCase,
            &["http_api::wrong_tokens_are_all_refused"],
        ),
        (
            DeleteNeedsNoToken,
            &["http_api::every_method_needs_the_token"],
        ),
        (
            HeadNeedsNoToken,
            &["http_api::every_method_needs_the_token"],
        ),
        (
            BearerSchemeCaseSensitive,
            &["http_api::every_method_needs_the_token"],
        ),
        (
            StripsTrailingSlash,
            &["http_api::a_literal_slash_never_reaches_a_key"],
        ),
        (
            MergesSlashes,
            &["http_api::a_literal_slash_never_reaches_a_key"],
        ),
        (
            LowercasesPath,
            &["http_api::percent_encoded_utf8_is_decoded_exactly"],
        ),
        (
            LossyDecodesInvalidUtf8,
            &["http_api::percent_encoded_utf8_is_decoded_exactly"],
        ),
        (
            TruncatesKeyAtEncodedNul,
            &["http_api::escaped_delimiters_stay_in_the_key"],
        ),
        (TtlAcceptsGoDurations, &["http_api::ttl_is_parsed_strictly"]),
        (TtlWrapsAtU32, &["http_api::ttl_is_parsed_strictly"]),
        (TtlParsedWithFromStr, &["http_api::ttl_is_parsed_strictly"]),
        (
            ReparsesJsonBodies,
            &["http_api::put_then_get_returns_the_body_exactly"],
        ),
        (
            HealthProxyAddsTheToken,
            &["http_api::health_without_the_token_shows_only_whether_healthy"],
        ),
        (
            EmptyValueAnswers204,
            &["http_api::an_empty_body_stores_an_empty_value"],
        ),
        (
            MicrocachesGetsForASecond,
            &[
                "http_api::a_get_sees_the_last_write_at_once",
                "http_api::health_without_the_token_shows_only_whether_healthy",
            ],
        ),
        (
            InvalidatesOnlyTheExactTarget,
            &[
                "http_api::a_get_sees_the_last_write_at_once",
                "http_api::health_without_the_token_shows_only_whether_healthy",
            ],
        ),
        (
            CachesNotFoundAnswers,
            &["http_api::a_get_sees_the_last_write_at_once"],
        ),
        (
            PurgeMethodDeletes,
            &["http_api::methods_outside_the_api_change_nothing"],
        ),
        (
            HonoursMethodOverrideHeader,
            &["http_api::methods_outside_the_api_change_nothing"],
        ),
        (
            FormBodiesConsumedByTheFramework,
            &["http_api::put_then_get_returns_the_body_exactly"],
        ),
        (
            NormalisesTheErrorKindHeader,
            &["http_api::a_value_over_the_declared_maximum_is_413"],
        ),
        (
            HeadOfAnEmptyValueIs404,
            &["http_api::an_empty_body_stores_an_empty_value"],
        ),
        (
            EmptyQueryKeptInTheKey,
            &["http_api::a_get_sees_the_last_write_at_once"],
        ),
        (
            QueryOtherThanTtlKeptInTheKey,
            &["http_api::a_get_sees_the_last_write_at_once"],
        ),
        (
            TtlReadOnlyAsTheFirstParameter,
            &["http_api::ttl_in_whole_seconds_expires"],
        ),
        (
            MicrocachesHeadAnswers,
            &["http_api::a_get_sees_the_last_write_at_once"],
        ),
        (
            SemicolonSplitsQueryParameters,
            &["http_api::ttl_is_parsed_strictly"],
        ),
        (
            AbsoluteFormTargetNotRouted,
            &["http_api::an_absolute_form_target_names_the_same_key"],
        ),
    ]
}

/// `target` split into its path and its query (with the `?`, or empty).
fn split_target(uri: &Uri) -> (String, String) {
    let path = uri.path().to_owned();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    (path, query)
}

/// The request sent on to `target` instead, or a 400 if that is no URI at all (as a
/// front end that built a broken target would answer).
fn retarget(mut request: Request, target: &str) -> Result<Request, EarlyAnswer> {
    match target.parse::<Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            Ok(request)
        }
        Err(_) => Err((StatusCode::BAD_REQUEST, "")),
    }
}

/// The key segment of `/cache/{key}` when the path has exactly one.
fn key_segment(path: &str) -> Option<&str> {
    path.strip_prefix("/cache/")
        .filter(|key| !key.is_empty() && !key.contains('/'))
}

/// `path` with upper-case-only escapes: an escape written in lower-case hex is taken as
/// the literal characters `%`, `x`, `y`.
fn uppercase_escapes_only(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    for (i, c) in path.char_indices() {
        let lowercase_escape = c == '%'
            && bytes.get(i + 1..i + 3).is_some_and(|hex| {
                hex.iter().all(u8::is_ascii_hexdigit) && hex.iter().any(u8::is_ascii_lowercase)
            });
        if lowercase_escape {
            out.push_str("%25");
        } else {
            out.push(c);
        }
    }
    out
}

/// `path` with `.` and `..` segments removed (RFC 3986 §5.2.4), `%2E` read as a dot.
fn without_dot_segments(path: &str) -> String {
    let path = path.replace("%2E", ".").replace("%2e", ".");
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "." => {}
            ".." => {
                if kept.len() > 1 {
                    kept.pop();
                }
            }
            other => kept.push(other),
        }
    }
    kept.join("/")
}

/// The key segment decoded, changed by `change`, and escaped again.
fn rewrite_key(path: &str, change: impl Fn(String) -> String) -> Option<String> {
    let key = percent_decode_str(key_segment(path)?)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some(format!(
        "/cache/{}",
        utf8_percent_encode(&change(key), KEY_SEGMENT)
    ))
}

/// The key segment decoded once and sent on with its remaining escapes intact, for the
/// server to decode again.
fn decoded_once(path: &str) -> Option<String> {
    let once = percent_decode_str(key_segment(path)?)
        .decode_utf8()
        .ok()?
        .into_owned();
    let mut out = String::from("/cache/");
    for c in once.chars() {
        if c == '%' || c.is_ascii_alphanumeric() || "-_.~".contains(c) {
            out.push(c);
        } else {
            out.push_str(&utf8_percent_encode(&c.to_string(), KEY_SEGMENT).to_string());
        }
    }
    Some(out)
}

/// The query with `ttl` changed by `change` (`None` drops it).
fn rewrite_ttl(query: &str, change: impl Fn(&str) -> Option<String>) -> String {
    let kept: Vec<String> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| match pair.strip_prefix("ttl=") {
            Some(value) => change(value).map(|value| format!("ttl={value}")),
            None => Some(pair.to_owned()),
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// The seconds Go's `time.ParseDuration` reads in `value` when it is a whole number with
/// a unit (`90s`, `1m`, `2h`).
fn go_duration_seconds(value: &str) -> Option<u64> {
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
}

/// The token a request presents, if it uses the bearer scheme in any case.
fn presented_token(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn authorize(request: &mut Request) {
    let bearer = HeaderValue::from_str(&format!("Bearer {TOKEN}"))
        .expect("the test token is a valid header value");
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
}

/// The body's bytes up to the first error: what a front end that ignores a cut-short
/// body would have.
async fn bytes_until_error(body: Body) -> Vec<u8> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// `request` with `body` in place of its own, its `Content-Length` made to match.
fn with_body(request: Request, body: Vec<u8>) -> Request {
    let (mut parts, _) = request.into_parts();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Request::from_parts(parts, Body::from(body))
}

/// `response` with `body` in place of its own.
fn answer_with_body(response: Response, body: Vec<u8>) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

async fn response_bytes(response: Response) -> (Response, Vec<u8>) {
    let (parts, body) = response.into_parts();
    let bytes = bytes_until_error(body).await;
    (Response::from_parts(parts, Body::empty()), bytes)
}

/// The flawed front end: changes the request on its way in, or the answer on its way out.
async fn front_end(State(flaw): State<WireFlaw>, request: Request, next: Next) -> Response {
    if matches!(
        flaw,
        MicrocachesGetsForASecond
            | InvalidatesOnlyTheExactTarget
            | CachesNotFoundAnswers
            | MicrocachesHeadAnswers
    ) {
        return caching_front_end(flaw, request, next).await;
    }
    front_end_inner(flaw, request, next).await
}

async fn front_end_inner(flaw: WireFlaw, request: Request, next: Next) -> Response {
    match rewrite_request(flaw, request).await {
        Ok(request) => rewrite_response(flaw, &request_facts(&request), next.run(request)).await,
        Err(answer) => answer.into_response(),
    }
}

/// What the answer's flaws need to know of the request.
struct RequestFacts {
    method: Method,
    path: String,
    /// An empty PUT the front end turned into a DELETE.
    empty_put_as_delete: bool,
    /// A HEAD the front end sent on as a GET.
    head_as_get: bool,
}

/// Marks a HEAD the front end sent on as a GET.
#[derive(Clone, Copy)]
struct HeadAsGet;

/// Marks a request whose empty PUT the front end sent on as a DELETE.
#[derive(Clone, Copy)]
struct EmptyPutAsDelete;

fn request_facts(request: &Request) -> RequestFacts {
    RequestFacts {
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        empty_put_as_delete: request.extensions().get::<EmptyPutAsDelete>().is_some(),
        head_as_get: request.extensions().get::<HeadAsGet>().is_some(),
    }
}

/// An answer the front end gives without asking the server: a status and a text body.
type EarlyAnswer = (StatusCode, &'static str);

async fn rewrite_request(flaw: WireFlaw, mut request: Request) -> Result<Request, EarlyAnswer> {
    if flaw == RefusesExpectations && request.headers().contains_key(header::EXPECT) {
        return Err((StatusCode::EXPECTATION_FAILED, ""));
    }
    if flaw == AbsoluteFormTargetNotRouted && request.uri().scheme().is_some() {
        return Err((StatusCode::NOT_FOUND, ""));
    }
    let raw_query = request.uri().query().map(str::to_owned);
    let in_key = match (flaw, raw_query.as_deref()) {
        (EmptyQueryKeptInTheKey, Some("")) => Some(String::new()),
        (QueryOtherThanTtlKeptInTheKey, Some(q)) if !q.is_empty() && !q.starts_with("ttl=") => {
            Some(q.to_owned())
        }
        _ => None,
    };
    if let Some(kept) = in_key {
        let path = request.uri().path().to_owned();
        if key_segment(&path).is_some() {
            let escaped = utf8_percent_encode(&format!("?{kept}"), KEY_SEGMENT).to_string();
            request = retarget(request, &format!("{path}{escaped}"))?;
        }
    }
    let (path, query) = split_target(request.uri());
    let method = request.method().clone();
    let changed_path = match flaw {
        LiteralSlashJoinsTheKey => path
            .strip_prefix("/cache/")
            .filter(|key| key.contains('/'))
            .map(|key| format!("/cache/{}", key.replace('/', "%2F"))),
        DecodesEncodedSlash => Some(path.replace("%2F", "/").replace("%2f", "/")),
        UppercaseEscapesOnly => Some(uppercase_escapes_only(&path)),
        ResolvesDotSegments => Some(without_dot_segments(&path)),
        PlusDecodedAsSpace => Some(path.replace('+', "%20")),
        NormalizesKeysToNfc => rewrite_key(&path, |key| key.nfc().collect()),
        DecodesPercentTwice => decoded_once(&path),
        DecodesDelimitersBeforeSplitting => Some(
            path.replace("%3F", "?")
                .replace("%3f", "?")
                .replace("%23", "#"),
        ),
        EmptyKeyIsAnIndex if path == "/cache/" => Some("/cache/index".to_owned()),
        StripsTrailingSlash => path
            .strip_prefix("/cache/")
            .filter(|rest| rest.len() > 1 && rest.ends_with('/'))
            .map(|rest| format!("/cache/{}", rest.trim_end_matches('/'))),
        MergesSlashes => {
            let mut merged = path.clone();
            while merged.contains("//") {
                merged = merged.replace("//", "/");
            }
            Some(merged)
        }
        LowercasesPath => Some(path.to_lowercase()),
        LossyDecodesInvalidUtf8 => key_segment(&path).map(|segment| {
            let key = percent_decode_str(segment).decode_utf8_lossy().into_owned();
            format!("/cache/{}", utf8_percent_encode(&key, KEY_SEGMENT))
        }),
        TruncatesKeyAtEncodedNul => rewrite_key(&path, |key| {
            key.split('\0').next().unwrap_or_default().to_owned()
        }),
        _ => None,
    };
    if let Some(changed) = changed_path {
        request = retarget(request, &format!("{changed}{query}"))?;
    }
    let changed_query = match flaw {
        LenientTtl => Some(rewrite_ttl(&query, |value| {
            let seconds = value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)?;
            Some((seconds.ceil() as u64).to_string())
        })),
        ClampsTtlOverTheMaximum => Some(rewrite_ttl(&query, |value| {
            Some(match value.parse::<u64>() {
                Ok(seconds) => seconds.min(API_MAX_TTL_SECONDS).to_string(),
                Err(_) => value.to_owned(),
            })
        })),
        IgnoresTtl => Some(rewrite_ttl(&query, |_| None)),
        TtlReadOnlyAsTheFirstParameter if !query.starts_with("?ttl=") => {
            Some(rewrite_ttl(&query, |_| None))
        }
        SemicolonSplitsQueryParameters => Some(query.replace(';', "&")),
        TtlAcceptsGoDurations => Some(rewrite_ttl(&query, |value| {
            Some(go_duration_seconds(value).map_or_else(|| value.to_owned(), |s| s.to_string()))
        })),
        TtlWrapsAtU32 => Some(rewrite_ttl(&query, |value| {
            Some(match value.parse::<u64>() {
                Ok(seconds) if value.bytes().all(|byte| byte.is_ascii_digit()) => {
                    (seconds as u32).to_string()
                }
                _ => value.to_owned(),
            })
        })),
        TtlParsedWithFromStr => Some(rewrite_ttl(&query, |value| {
            Some(match value.parse::<u64>() {
                Ok(seconds) => seconds.to_string(),
                Err(_) => value.to_owned(),
            })
        })),
        _ => None,
    };
    if let Some(query) = changed_query {
        let path = request.uri().path().to_owned();
        request = retarget(request, &format!("{path}{query}"))?;
    }
    match flaw {
        NoHeadRoute if method == Method::HEAD => return Err((StatusCode::METHOD_NOT_ALLOWED, "")),
        RefusesChunkedBodies if request.headers().contains_key(header::TRANSFER_ENCODING) => {
            return Err((StatusCode::LENGTH_REQUIRED, ""))
        }
        PostStoresLikePut if matches!(method, Method::POST | Method::PATCH) => {
            *request.method_mut() = Method::PUT;
        }
        EmptyBodyDeletes
            if method == Method::PUT
                && request.headers().get(header::CONTENT_LENGTH)
                    == Some(&HeaderValue::from_static("0")) =>
        {
            *request.method_mut() = Method::DELETE;
            request.extensions_mut().insert(EmptyPutAsDelete);
        }
        HealthAnswersPlainText if request.uri().path() == "/health" => {
            return Err((StatusCode::OK, "OK"))
        }
        ReadsBodiesAsText if method == Method::PUT => {
            let (parts, body) = request.into_parts();
            let text = String::from_utf8_lossy(&bytes_until_error(body).await).into_owned();
            request = with_body(Request::from_parts(parts, Body::empty()), text.into_bytes());
        }
        StoresBodiesCutShort if method == Method::PUT => {
            let (parts, body) = request.into_parts();
            let bytes = bytes_until_error(body).await;
            request = with_body(Request::from_parts(parts, Body::empty()), bytes);
        }
        TruncatesOversizeBodies if method == Method::PUT => {
            let (parts, body) = request.into_parts();
            let mut bytes = bytes_until_error(body).await;
            bytes.truncate(MAX_BODY_BYTES);
            request = with_body(Request::from_parts(parts, Body::empty()), bytes);
        }
        TokenComparedByPrefix
            if presented_token(&request).is_some_and(|token| token.starts_with(TOKEN)) =>
        {
            authorize(&mut request);
        }
        TruncatedTokenAccepted
            if presented_token(&request)
                .is_some_and(|token| !token.is_empty() && TOKEN.starts_with(&token)) =>
        {
            authorize(&mut request);
        }
        TokenComparedIgnoringCase
            if presented_token(&request).is_some_and(|token| token.eq_ignore_ascii_case(TOKEN)) =>
        {
            authorize(&mut request);
        }
        HealthProxyAddsTheToken
            if request.uri().path() == "/health"
                && !request.headers().contains_key(header::AUTHORIZATION) =>
        {
            authorize(&mut request)
        }
        ReparsesJsonBodies
            if method == Method::PUT
                && request
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|value| value.as_bytes().starts_with(b"application/json")) =>
        {
            let (parts, body) = request.into_parts();
            let bytes = bytes_until_error(body).await;
            let body = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_or(bytes, |json| json.to_string().into_bytes());
            request = with_body(Request::from_parts(parts, Body::empty()), body);
        }
        PurgeMethodDeletes if method.as_str() == "PURGE" => {
            *request.method_mut() = Method::DELETE;
        }
        HonoursMethodOverrideHeader if method == Method::POST => {
            let overridden = request
                .headers()
                .get("x-http-method-override")
                .and_then(|value| Method::from_bytes(value.as_bytes()).ok());
            if let Some(overridden) = overridden {
                *request.method_mut() = overridden;
            }
        }
        FormBodiesConsumedByTheFramework
            if method == Method::PUT
                && request
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|value| {
                        value
                            .as_bytes()
                            .starts_with(b"application/x-www-form-urlencoded")
                    }) =>
        {
            let (parts, body) = request.into_parts();
            let _form = bytes_until_error(body).await;
            request = with_body(Request::from_parts(parts, Body::empty()), Vec::new());
        }
        HeadOfAnEmptyValueIs404 if method == Method::HEAD => {
            *request.method_mut() = Method::GET;
            request.extensions_mut().insert(HeadAsGet);
        }
        DeleteNeedsNoToken if method == Method::DELETE => authorize(&mut request),
        HeadNeedsNoToken if method == Method::HEAD => authorize(&mut request),
        BearerSchemeCaseSensitive => {
            let capitalised = request
                .headers()
                .get(header::AUTHORIZATION)
                .is_some_and(|value| value.as_bytes().starts_with(b"Bearer "));
            if !capitalised {
                request.headers_mut().remove(header::AUTHORIZATION);
            }
        }
        _ => {}
    }
    Ok(request)
}

async fn rewrite_response(
    flaw: WireFlaw,
    request: &RequestFacts,
    response: impl std::future::Future<Output = Response>,
) -> Response {
    let mut response = response.await;
    let status = response.status();
    if flaw == NormalisesTheErrorKindHeader && status.is_client_error() {
        response.headers_mut().insert(
            cachekit_core::ERROR_KIND_HEADER,
            HeaderValue::from_static("invalid_argument"),
        );
    }
    if request.head_as_get {
        let (response, body) = response_bytes(response).await;
        if response.status() == StatusCode::OK && body.is_empty() {
            return StatusCode::NOT_FOUND.into_response();
        }
        return answer_with_body(response, Vec::new());
    }
    match flaw {
        MissingKeyAnswers200
            if request.method == Method::GET && status == StatusCode::NOT_FOUND =>
        {
            StatusCode::OK.into_response()
        }
        DeleteAlwaysAnswers204
            if request.method == Method::DELETE && status == StatusCode::NOT_FOUND =>
        {
            StatusCode::NO_CONTENT.into_response()
        }
        EmptyBodyDeletes if request.empty_put_as_delete => StatusCode::NO_CONTENT.into_response(),
        OversizeAnswers400 if status == StatusCode::PAYLOAD_TOO_LARGE => {
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        AppendsNewlineToValues if request.method == Method::GET && status == StatusCode::OK => {
            let (response, mut body) = response_bytes(response).await;
            body.push(b'\n');
            answer_with_body(response, body)
        }
        EmptyValueAnswers204 if request.method == Method::GET && status == StatusCode::OK => {
            let (response, body) = response_bytes(response).await;
            if body.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                answer_with_body(response, body)
            }
        }
        HealthLatencyInWholeSeconds if request.path == "/health" => {
            let (response, body) = response_bytes(response).await;
            let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return answer_with_body(response, body);
            };
            if let Some(latency) = json.get_mut("latency_ms") {
                let ms = latency.as_f64().unwrap_or_default();
                *latency = serde_json::json!((ms / 1000.0).ceil() * 1000.0);
            }
            answer_with_body(response, json.to_string().into_bytes())
        }
        _ => response,
    }
}

/// The cases a flaw also fails although their rules are not the one it breaks: they observe
/// their own rule through the behaviour the flaw broke (a key rule reads its value back, a
/// rule about absence expects `404`), so they cannot pass. Every other case must.
fn observed_through_the_flaw(flaw: WireFlaw) -> &'static [&'static str] {
    match flaw {
        // Absence is seen as `404` by every rule that checks a key was not stored.
        MissingKeyAnswers200 => &[
            "http_api::delete_answers_whether_the_entry_existed",
            "http_api::a_literal_slash_never_reaches_a_key",
            "http_api::encoded_slash_is_part_of_one_key",
            "http_api::dot_segments_are_never_resolved",
            "http_api::plus_in_a_key_is_a_plus",
            "http_api::percent_encoded_utf8_is_decoded_exactly",
            "http_api::escaped_delimiters_stay_in_the_key",
            "http_api::ttl_is_parsed_strictly",
            "http_api::ttl_in_whole_seconds_expires",
            "http_api::a_body_cut_short_stores_nothing",
            "http_api::a_value_over_the_declared_maximum_is_413",
            "http_api::a_kept_alive_connection_serves_the_next_request",
            "http_api::methods_outside_the_api_change_nothing",
            "http_api::a_get_sees_the_last_write_at_once",
            "http_api::an_absolute_form_target_names_the_same_key",
        ],
        // These rules read the value they stored back, byte for byte.
        AppendsNewlineToValues => &[
            "http_api::encoded_slash_is_part_of_one_key",
            "http_api::plus_in_a_key_is_a_plus",
            "http_api::percent_encoded_utf8_is_decoded_exactly",
            "http_api::escaped_delimiters_stay_in_the_key",
            "http_api::a_chunked_body_is_stored_whole",
            "http_api::an_empty_body_stores_an_empty_value",
            "http_api::a_kept_alive_connection_serves_the_next_request",
            "http_api::a_request_sent_in_pieces_is_answered",
            "http_api::every_method_needs_the_token",
            "http_api::a_get_sees_the_last_write_at_once",
            "http_api::methods_outside_the_api_change_nothing",
            "http_api::an_absolute_form_target_names_the_same_key",
        ],
        // A body the service rewrote or cut is not refused, so these see it stored.
        ReadsBodiesAsText => &[
            "http_api::a_body_cut_short_stores_nothing",
            "http_api::a_value_over_the_declared_maximum_is_413",
        ],
        TruncatesOversizeBodies => &["http_api::a_body_cut_short_stores_nothing"],
        // A GET right after a DELETE, well within the cache's second.
        MicrocachesGetsForASecond => &[
            "http_api::a_kept_alive_connection_serves_the_next_request",
            "http_api::an_absolute_form_target_names_the_same_key",
        ],
        // The cached 404 of the key's first GET hides the value stored next.
        CachesNotFoundAnswers => &["http_api::methods_outside_the_api_change_nothing"],
        // The same key spelled with `%2F` and `%2f`, read right after a write.
        DecodesEncodedSlash | UppercaseEscapesOnly => {
            &["http_api::a_get_sees_the_last_write_at_once"]
        }
        // These send HEAD among their requests.
        NoHeadRoute => &[
            "http_api::an_empty_body_stores_an_empty_value",
            "http_api::a_get_sees_the_last_write_at_once",
            "http_api::a_kept_alive_connection_serves_the_next_request",
            "http_api::every_method_needs_the_token",
            "http_api::an_absolute_form_target_names_the_same_key",
        ],
        // A ttl that never takes effect is also one that was never parsed.
        IgnoresTtl => &["http_api::ttl_is_parsed_strictly"],
        // They read the JSON answer (its latency, its fields), which plain text is not.
        HealthAnswersPlainText => &[
            "http_api::health_latency_fits_in_the_round_trip",
            "http_api::health_without_the_token_shows_only_whether_healthy",
        ],
        _ => &[],
    }
}

/// Our server, behind the front end with `flaw`, on its own runtime; the base URL.
fn serve(flaw: WireFlaw) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let config = ServerConfig {
        token: Some(TOKEN.to_owned()),
        max_body_bytes: MAX_BODY_BYTES,
        ..ServerConfig::default()
    };
    let api = cachekit_server::router(Arc::new(MemoryBackend::new()), &config)
        .expect("a valid configuration");
    // Around the whole router, not inside it (`Router::layer`), so that a rewritten path
    // or method is routed anew, as behind a proxy.
    let app = middleware::from_fn_with_state(flaw, front_end).layer(api);
    runtime.spawn(async move {
        axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
    });
    (runtime, format!("http://{address}"))
}

fn run(flaw: WireFlaw) -> Report {
    let (_runtime, base_url) = serve(flaw);
    let declared = Capabilities::new("http-api").with_max_value_bytes(MAX_BODY_BYTES);
    let suite = Suite::http_api_declaring(
        format!("{flaw:?}"),
        &base_url,
        Some(TOKEN.to_owned()),
        declared,
    );
    run_suite(&suite, &RunOptions::default())
}

/// RFC 9110 lets a service refuse every expectation with `417`: the kit sends such a PUT
/// again without one, so a front end that does is judged on the rest alone.
#[test]
fn a_front_end_that_refuses_expectations_passes_every_api_case() {
    let report = run(RefusesExpectations);
    assert!(report.passed(), "{report}");
}

#[test]
fn the_faithful_front_end_passes_every_api_case() {
    let report = run(Faithful);
    assert!(report.passed(), "{report}");
    let (passed, _, _) = report.counts(None);
    // Every http_api case but the five connection-timeout ones, which need declared
    // timeouts: update with the family.
    assert_eq!(passed, 27, "{report}");
}

#[test]
fn every_wire_flaw_is_failed_by_the_cases_that_own_its_rule() {
    let expectations = expectations();
    assert!(
        expectations.len() >= 30,
        "{} wire flaws",
        expectations.len()
    );
    // A few flaws run side by side: each has its own server and its own keys.
    let mut outcomes = Vec::new();
    for batch in expectations.chunks(FLAWS_AT_ONCE) {
        std::thread::scope(|scope| {
            let running: Vec<_> = batch
                .iter()
                .map(|&(flaw, owners)| {
                    scope.spawn(move || {
                        let report = run(flaw);
                        let failed: Vec<String> = report.failures().map(|c| c.case.id()).collect();
                        (flaw, owners, failed, report.to_string())
                    })
                })
                .collect();
            outcomes.extend(
                running
                    .into_iter()
                    .map(|handle| handle.join().expect("a flaw's run panicked")),
            );
        });
    }
    let mut wrong = Vec::new();
    for (flaw, owners, failed, report) in &outcomes {
        let passed_owners: Vec<&&str> = owners
            .iter()
            .filter(|owner| !failed.iter().any(|id| id == *owner))
            .collect();
        if !passed_owners.is_empty() {
            wrong.push(format!("{flaw:?} passed {passed_owners:?}\n{report}"));
        }
        // A front end that broke everything would fail its owners too, and a case failed
        // by a flaw outside its rule would name the wrong rule to the server's author.
        let observers = observed_through_the_flaw(*flaw);
        let failed_others: Vec<&String> = failed
            .iter()
            .filter(|id| !owners.contains(&id.as_str()) && !observers.contains(&id.as_str()))
            .collect();
        let stale: Vec<&&str> = observers
            .iter()
            .filter(|observer| !failed.iter().any(|id| id == *observer))
            .collect();
        if !stale.is_empty() {
            wrong.push(format!(
                "{flaw:?} no longer fails {stale:?}: take them out of observed_through_the_flaw"
            ));
        }
        if !failed_others.is_empty() {
            wrong.push(format!(
                "{flaw:?} also failed {failed_others:?}, whose rules it keeps\n{report}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[rstest]
#[case::lowercase_escape_taken_literally(
    uppercase_escapes_only("/cache/a%2fb%2Fc"),
    "/cache/a%252fb%2Fc"
)]
#[case::parent_segment(without_dot_segments("/cache/x/../k"), "/cache/k")]
#[case::escaped_parent_segment(without_dot_segments("/cache/x/%2E%2E/k"), "/cache/k")]
#[case::current_segment(without_dot_segments("/cache/./k"), "/cache/k")]
#[case::percent_decoded_once(decoded_once("/cache/e%2541").unwrap_or_default(), "/cache/e%41")]
#[case::nfc(rewrite_key("/cache/e%CC%81", |key| key.nfc().collect()).unwrap_or_default(), "/cache/%C3%A9")]
#[case::ttl_kept(rewrite_ttl("?ttl=1.5", |v| Some(v.to_owned())), "?ttl=1.5")]
#[case::ttl_dropped(rewrite_ttl("?ttl=1&x=2", |_| None), "?x=2")]
fn a_flaw_rewrites_targets_as_described(#[case] rewritten: String, #[case] expected: &str) {
    assert_eq!(rewritten, expected);
}
