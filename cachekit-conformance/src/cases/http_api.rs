//! The cachekit HTTP API as a wire contract: raw requests, written byte for byte, to a
//! service that claims to speak it — not through [`HttpBackend`] or any other client — so
//! a server is judged on the API itself, whichever client its users have.
//!
//! The suite is [`Suite::http_api`]: a base URL (plain `http://`, any path prefix) and the
//! token the service expects, if any. Every key a case uses starts with the case's private
//! prefix, so a shared service is safe to check.
//!
//! [`HttpBackend`]: https://docs.rs/cachekit-backend-http

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cachekit_core::Capabilities;

use crate::case::{Case, CaseFn, Family, Need, Timing};
use crate::failure::{Answer, Operation};
use crate::runner::SuiteFactory;
use crate::{CaseResult, Failure, Suite};

/// Longest a raw exchange may take before the case fails.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response a raw exchange reads.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A service under test: where it listens and what it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path prefix before `/cache/…` and `/health`, without a trailing slash.
    pub path_prefix: String,
    /// The bearer token the service requires, if any.
    pub token: Option<String>,
}

impl ApiTarget {
    /// Parses a plain-HTTP base URL such as `http://127.0.0.1:8080` or
    /// `http://host/prefix`; `https` cannot be spoken raw and is refused.
    pub fn parse(base_url: &str, token: Option<String>) -> Result<ApiTarget, String> {
        let rest = base_url.strip_prefix("http://").ok_or_else(|| {
            format!("raw API cases need a plain http:// base URL, got {base_url:?}")
        })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("no usable host in {base_url:?}"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("a base URL with a query or fragment: {base_url:?}"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path_prefix = match path.trim_end_matches('/') {
            "" => String::new(),
            path => format!("/{path}"),
        };
        Ok(ApiTarget {
            authority,
            path_prefix,
            token,
        })
    }
}

impl Suite {
    /// A suite of raw HTTP API cases against the service at `base_url`, which claims the
    /// whole API (whole-second ttls up to the protocol's maximum). A base URL the cases
    /// cannot speak to (`https`, user-info) fails every case with the reason.
    pub fn http_api(name: impl Into<String>, base_url: &str, token: Option<String>) -> Self {
        Self::http_api_declaring(name, base_url, token, Capabilities::new("http-api"))
    }

    /// [`Suite::http_api`] for a service that declares less (no ttl, say): cases that
    /// need what it does not claim are skipped, as in a backend suite.
    pub fn http_api_declaring(
        name: impl Into<String>,
        base_url: &str,
        token: Option<String>,
        declared: Capabilities,
    ) -> Self {
        let target = ApiTarget::parse(base_url, token);
        Suite::from_factory(name, SuiteFactory::HttpApi(target.map(|t| (t, declared))))
    }
}

/// One raw HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Everything after the head, de-chunked if the response was chunked.
    pub body: Vec<u8>,
}

/// What an API case gets: the target, its private key prefix, and a raw client.
pub struct ApiCtx {
    target: ApiTarget,
    prefix: String,
}

impl ApiCtx {
    pub(crate) fn new(target: ApiTarget, prefix: String) -> Self {
        ApiCtx { target, prefix }
    }

    /// A key private to this case, safe to put in a path unencoded (letters, digits, `-`, `_`).
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.target.path_prefix)
    }

    fn auth_header(&self) -> String {
        self.target
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default()
    }

    /// Sends `head` (request line and extra headers, each ending in CRLF) plus `body`,
    /// with `Host`, `Connection: close` and the token added, and reads the whole answer.
    async fn send(
        &self,
        method: &str,
        target: &str,
        extra: &str,
        body: &[u8],
    ) -> Result<RawResponse, Failure> {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}{extra}\r\n",
            self.target.authority,
            self.auth_header()
        );
        self.exchange(method, target, head.as_bytes(), body, false)
            .await
    }

    /// Sends exactly `bytes` and reads the answer; with `half_close`, shuts the write side
    /// right after (a client that stopped sending).
    async fn exchange(
        &self,
        method: &str,
        target: &str,
        head: &[u8],
        body: &[u8],
        half_close: bool,
    ) -> Result<RawResponse, Failure> {
        let what = format!("{method} {target}");
        let fail = |why: String| {
            Failure::new(format!("exchange {what} with the service"))
                .expected("a complete HTTP response")
                .got(why)
        };
        let exchange = async {
            let mut stream = TcpStream::connect(&self.target.authority)
                .await
                .map_err(|err| fail(format!("cannot connect: {err}")))?;
            stream
                .write_all(head)
                .await
                .map_err(|err| fail(format!("write: {err}")))?;
            stream
                .write_all(body)
                .await
                .map_err(|err| fail(format!("write: {err}")))?;
            if half_close {
                stream
                    .shutdown()
                    .await
                    .map_err(|err| fail(format!("shutdown: {err}")))?;
            }
            let mut raw = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                let read = match stream.read(&mut chunk).await {
                    Ok(read) => read,
                    // A reset after a complete answer is an answer.
                    Err(_) if !raw.is_empty() => 0,
                    Err(err) => return Err(fail(format!("read: {err}"))),
                };
                if read == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..read]);
                if raw.len() > MAX_RESPONSE_BYTES {
                    return Err(fail(format!("more than {MAX_RESPONSE_BYTES} bytes")));
                }
            }
            parse_response(&raw, method == "HEAD").map_err(fail)
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(fail(format!(
                "no complete answer within {EXCHANGE_TIMEOUT:?}"
            ))),
        }
    }

    async fn put(&self, raw_key: &str, query: &str, body: &[u8]) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}{query}"));
        let length = format!("Content-Length: {}\r\n", body.len());
        self.send("PUT", &target, &length, body).await
    }

    async fn get(&self, raw_key: &str) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        self.send("GET", &target, "", b"").await
    }

    async fn delete(&self, raw_key: &str) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        self.send("DELETE", &target, "", b"").await
    }

    /// `GET` must answer 200 with exactly `body`.
    async fn expect_value(&self, check: &str, raw_key: &str, body: &[u8]) -> CaseResult {
        let response = self.get(raw_key).await?;
        if response.status == 200 && response.body == body {
            return Ok(());
        }
        Err(Failure::new(check)
            .key(raw_key)
            .expected(format!("GET -> 200 with {}", preview(body)))
            .got(describe(&response)))
    }

    /// `GET` must answer 404.
    async fn expect_missing(&self, check: &str, raw_key: &str) -> CaseResult {
        let response = self.get(raw_key).await?;
        expect_status(check, raw_key, "GET", &response, &[404])
    }
}

fn preview(body: &[u8]) -> String {
    crate::failure::preview_bytes(body)
}

fn describe(response: &RawResponse) -> Answer {
    Answer::Described(format!(
        "{} with {}",
        response.status,
        preview(&response.body)
    ))
}

fn expect_status(
    check: &str,
    key: &str,
    method: &str,
    response: &RawResponse,
    allowed: &[u16],
) -> CaseResult {
    if allowed.contains(&response.status) {
        return Ok(());
    }
    let allowed: Vec<String> = allowed.iter().map(u16::to_string).collect();
    Err(Failure::new(check)
        .key(key)
        .expected(format!("{method} -> {}", allowed.join(" or ")))
        .got(describe(response)))
}

fn expect_client_error(check: &str, key: &str, method: &str, response: &RawResponse) -> CaseResult {
    if (400..500).contains(&response.status) {
        return Ok(());
    }
    Err(Failure::new(check)
        .key(key)
        .expected(format!("{method} -> a 4xx refusal"))
        .got(describe(response)))
}

fn parse_response(raw: &[u8], head_request: bool) -> Result<RawResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {} bytes", raw.len()))?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| "a head that is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("a bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_request || !chunked {
        rest.to_vec()
    } else {
        dechunk(rest)?
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line without CRLF")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "a bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("a chunk cut short".to_owned());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// PUT then GET returns the body exactly, binary bytes included.
pub async fn put_then_get_returns_the_body_exactly(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n\0end").collect();
    let put = ctx.put(&key, "", &body).await?;
    expect_status("PUT of a new key", &key, "PUT", &put, &[200, 201, 204])?;
    ctx.expect_value("GET after PUT", &key, &body).await
}

/// GET of a missing key is 404.
pub async fn get_of_a_missing_key_is_404(ctx: ApiCtx) -> CaseResult {
    ctx.expect_missing("GET of a key never stored", &ctx.key("never"))
        .await
}

/// DELETE answers 200/204 for a live entry and 404 once it is gone.
pub async fn delete_answers_whether_the_entry_existed(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    ctx.put(&key, "", b"v").await?;
    let first = ctx.delete(&key).await?;
    expect_status(
        "DELETE of a stored key",
        &key,
        "DELETE",
        &first,
        &[200, 204],
    )?;
    let second = ctx.delete(&key).await?;
    expect_status("DELETE of a deleted key", &key, "DELETE", &second, &[404])?;
    ctx.expect_missing("GET after DELETE", &key).await
}

/// HEAD answers 200 or 404 and never sends a body.
pub async fn head_answers_without_a_body(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    ctx.put(&key, "", b"some value").await?;
    for (raw_key, status) in [(key.clone(), 200), (ctx.key("missing"), 404)] {
        let target = ctx.path(&format!("/cache/{raw_key}"));
        let head = ctx.send("HEAD", &target, "", b"").await?;
        expect_status("HEAD", &raw_key, "HEAD", &head, &[status])?;
        if !head.body.is_empty() {
            return Err(Failure::new("HEAD must not send a body")
                .key(&raw_key)
                .expected("no bytes after the head")
                .got(format!("{} bytes", head.body.len())));
        }
    }
    Ok(())
}

/// A literal `/` in the key segment never reaches a key: the request is refused.
pub async fn a_literal_slash_never_reaches_a_key(ctx: ApiCtx) -> CaseResult {
    let base = ctx.key("dir");
    let nested = format!("{base}/file");
    let put = ctx.put(&nested, "", b"v").await?;
    expect_client_error(
        "PUT with a literal / inside the key segment",
        &nested,
        "PUT",
        &put,
    )?;
    let encoded = format!("{base}%2Ffile");
    ctx.expect_missing(
        "the key `dir/file` after a refused PUT of /cache/dir/file",
        &encoded,
    )
    .await?;
    ctx.expect_missing(
        "the key `dir` after a refused PUT of /cache/dir/file",
        &base,
    )
    .await
}

/// `%2F` is a slash inside one key, and `%2f` names the same key.
pub async fn encoded_slash_is_part_of_one_key(ctx: ApiCtx) -> CaseResult {
    let base = ctx.key("dir");
    let encoded = format!("{base}%2Ffile");
    let put = ctx.put(&encoded, "", b"inside").await?;
    expect_status(
        "PUT of a key with %2F",
        &encoded,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    ctx.expect_value("GET of the same key", &encoded, b"inside")
        .await?;
    let lowercase = format!("{base}%2ffile");
    ctx.expect_value(
        "GET with the escape in lowercase hex",
        &lowercase,
        b"inside",
    )
    .await?;
    ctx.expect_missing("GET of the part before the slash", &base)
        .await
}

/// Dot segments are never resolved into another key.
pub async fn dot_segments_are_never_resolved(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("target");
    for raw in [
        format!("x/../{key}"),
        format!("./{key}"),
        format!("x/%2E%2E/{key}"),
    ] {
        let put = ctx.put(&raw, "", b"v").await?;
        if (200..300).contains(&put.status) {
            ctx.expect_missing(
                &format!("the key `{key}` after a PUT of /cache/{raw}"),
                &key,
            )
            .await?;
        }
    }
    ctx.expect_missing("a key only ever addressed through dot segments", &key)
        .await
}

/// `+` in a key is a plus, not a space.
pub async fn plus_in_a_key_is_a_plus(ctx: ApiCtx) -> CaseResult {
    let base = ctx.key("a");
    ctx.put(&format!("{base}+b"), "", b"plus").await?;
    ctx.expect_value(
        "GET with the plus percent-encoded",
        &format!("{base}%2Bb"),
        b"plus",
    )
    .await?;
    ctx.expect_missing("GET of the same key with a space", &format!("{base}%20b"))
        .await
}

/// Percent-encoded UTF-8 is decoded to the exact characters, never normalised.
pub async fn percent_encoded_utf8_is_decoded_exactly(ctx: ApiCtx) -> CaseResult {
    let base = ctx.key("u");
    ctx.put(&format!("{base}%C3%A9"), "", b"nfc").await?;
    ctx.expect_value("GET of the same escapes", &format!("{base}%C3%A9"), b"nfc")
        .await?;
    ctx.expect_missing("GET of the NFD spelling", &format!("{base}e%CC%81"))
        .await
}

/// `ttl` accepts whole seconds only; anything else is 400 and stores nothing.
pub async fn ttl_is_parsed_strictly(ctx: ApiCtx) -> CaseResult {
    let bad = [
        "abc",
        "-1",
        "0",
        "1.5",
        "%2B1",
        "1e3",
        "",
        "%201",
        "0x10",
        "99999999999999999999",
        "1&ttl=2",
    ];
    for (i, value) in bad.iter().enumerate() {
        let key = ctx.key(&format!("bad{i}"));
        let put = ctx.put(&key, &format!("?ttl={value}"), b"v").await?;
        expect_status(&format!("PUT with ttl={value}"), &key, "PUT", &put, &[400])?;
        ctx.expect_missing(&format!("a key whose only PUT had ttl={value}"), &key)
            .await?;
    }
    let above = format!("?ttl={}", 30 * 24 * 3600 + 1);
    let key = ctx.key("above-max");
    let put = ctx.put(&key, &above, b"v").await?;
    expect_status("PUT with a ttl over 30 days", &key, "PUT", &put, &[400])
}

/// A whole-second `ttl` is kept: present at once, gone once it has passed.
pub async fn ttl_in_whole_seconds_expires(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let started = tokio::time::Instant::now();
    let put = ctx.put(&key, "?ttl=1", b"v").await?;
    expect_status("PUT with ttl=1", &key, "PUT", &put, &[200, 201, 204])?;
    let response = ctx.get(&key).await?;
    if started.elapsed() < Duration::from_secs(1) {
        expect_status(
            "GET right after PUT with ttl=1",
            &key,
            "GET",
            &response,
            &[200],
        )?;
    }
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(2500)).await;
    ctx.expect_missing("GET 2.5 s after PUT with ttl=1", &key)
        .await
}

/// A body shorter than its Content-Length stores nothing.
pub async fn a_body_cut_short_stores_nothing(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}Content-Length: 10\r\n\r\n",
        ctx.target.authority,
        ctx.auth_header()
    );
    // The answer may be a 400, or just a closed connection: either is fine.
    let _ = ctx
        .exchange("PUT", &target, head.as_bytes(), b"1234", true)
        .await;
    ctx.expect_missing("a key whose PUT body was cut short", &key)
        .await
}

/// A chunked body is stored whole.
pub async fn a_chunked_body_is_stored_whole(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let body = b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n";
    let put = ctx
        .send("PUT", &target, "Transfer-Encoding: chunked\r\n", body)
        .await?;
    expect_status(
        "PUT with a chunked body",
        &key,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    ctx.expect_value("GET after a chunked PUT", &key, b"hello world")
        .await
}

/// An empty body with `Content-Length: 0` stores an empty value, not nothing.
pub async fn an_empty_body_stores_an_empty_value(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let put = ctx.put(&key, "", b"").await?;
    expect_status("PUT of an empty body", &key, "PUT", &put, &[200, 201, 204])?;
    ctx.expect_value("GET of an empty value", &key, b"").await
}

/// A method outside the API changes nothing.
pub async fn methods_outside_the_api_change_nothing(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    for method in ["POST", "PATCH"] {
        let target = ctx.path(&format!("/cache/{key}"));
        let answer = ctx
            .send(method, &target, "Content-Length: 1\r\n", b"v")
            .await?;
        if (200..300).contains(&answer.status) {
            return Err(Failure::new(format!("{method} on a key"))
                .key(&key)
                .expected(format!("{method} -> 405, 404 or another refusal"))
                .got(describe(&answer)));
        }
    }
    ctx.expect_missing("a key only ever POSTed and PATCHed", &key)
        .await
}

/// The empty key is not a key.
pub async fn the_empty_key_is_refused(ctx: ApiCtx) -> CaseResult {
    let put = ctx.put("", "", b"v").await?;
    expect_client_error("PUT /cache/", "", "PUT", &put)?;
    let get = ctx.get("").await?;
    if get.status == 200 {
        return Err(Failure::new("GET /cache/")
            .expected("GET -> a 4xx")
            .got(describe(&get)));
    }
    Ok(())
}

/// `/health` answers JSON with a boolean `healthy`.
pub async fn health_answers_json_with_healthy(ctx: ApiCtx) -> CaseResult {
    let target = ctx.path("/health");
    let response = ctx.send("GET", &target, "", b"").await?;
    let healthy = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|json| json.get("healthy").and_then(serde_json::Value::as_bool));
    if response.status == 200 && healthy == Some(true) {
        return Ok(());
    }
    Err(Failure::new("GET /health of a reachable service")
        .expected("200 with JSON {\"healthy\": true, ...}")
        .got(describe(&response)))
}

/// Without the token, every method is 401; the `Bearer` scheme is case-insensitive.
pub async fn every_method_needs_the_token(ctx: ApiCtx) -> CaseResult {
    let Some(token) = ctx.target.token.clone() else {
        return Err(Failure::new("run against a target with a token")
            .operation(Operation::Setup)
            .got("no token configured (the suite should have skipped this case)"));
    };
    let key = ctx.key("k");
    ctx.put(&key, "", b"v").await?;
    let target = ctx.path(&format!("/cache/{key}"));
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        let body: &[u8] = if method == "PUT" { b"x" } else { b"" };
        for credentials in [
            "",
            "Authorization: Bearer wrong-token\r\n",
            "Authorization: Basic Zm9vOmJhcg==\r\n",
        ] {
            let head = format!(
                "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{credentials}Content-Length: {}\r\n\r\n",
                ctx.target.authority,
                body.len()
            );
            let answer = ctx
                .exchange(method, &target, head.as_bytes(), body, false)
                .await?;
            let check = format!("{method} with {:?}", credentials.trim_end());
            expect_status(&check, &key, method, &answer, &[401, 403])?;
        }
    }
    ctx.expect_value("the key after refused requests", &key, b"v")
        .await?;
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: bearer {token}\r\n\r\n",
        ctx.target.authority
    );
    let answer = ctx
        .exchange("GET", &target, head.as_bytes(), b"", false)
        .await?;
    expect_status(
        "GET with the scheme spelled `bearer`",
        &key,
        "GET",
        &answer,
        &[200],
    )
}

macro_rules! api_case {
    ($name:ident, $rule:expr $(, needs: [$($need:expr),*])? $(, timing: $timing:ident)?) => {
        Case {
            family: Family::HttpApi,
            name: stringify!($name),
            rule: $rule,
            needs: &[$($($need),*)?],
            timing: api_timing(&[$(Timing::$timing)?]),
            run: CaseFn::HttpApi(|ctx| Box::pin($name(ctx))),
        }
    };
}

const fn api_timing(given: &[Timing]) -> Timing {
    match given {
        [timing] => *timing,
        _ => Timing::Instant,
    }
}

/// The API cases, registered after the backend cases.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        api_case!(
            put_then_get_returns_the_body_exactly,
            "PUT then GET returns the body byte for byte"
        ),
        api_case!(
            get_of_a_missing_key_is_404,
            "GET of a key never stored is 404"
        ),
        api_case!(
            delete_answers_whether_the_entry_existed,
            "DELETE is 200/204 for a live entry and 404 for a missing one"
        ),
        api_case!(
            head_answers_without_a_body,
            "HEAD is 200 or 404 and never sends a body"
        ),
        api_case!(
            a_literal_slash_never_reaches_a_key,
            "a literal `/` inside the key segment is refused, never part of a key"
        ),
        api_case!(
            encoded_slash_is_part_of_one_key,
            "`%2F` is a slash inside one key, and `%2f` names the same key"
        ),
        api_case!(
            dot_segments_are_never_resolved,
            "dot segments in the path are never resolved into another key"
        ),
        api_case!(
            plus_in_a_key_is_a_plus,
            "`+` in a key is a plus, never a space"
        ),
        api_case!(
            percent_encoded_utf8_is_decoded_exactly,
            "percent-encoded UTF-8 is decoded exactly, never normalised"
        ),
        api_case!(ttl_is_parsed_strictly, "`ttl` is whole seconds in 1..=30 days; anything else is 400 and stores nothing", needs: [Need::Ttl]),
        api_case!(ttl_in_whole_seconds_expires, "a PUT with `ttl=1` is present at once and gone 2.5 s later", needs: [Need::Ttl], timing: WaitsForExpiry),
        api_case!(
            a_body_cut_short_stores_nothing,
            "a PUT body shorter than its Content-Length stores nothing"
        ),
        api_case!(
            a_chunked_body_is_stored_whole,
            "a chunked PUT body is stored whole"
        ),
        api_case!(
            an_empty_body_stores_an_empty_value,
            "a PUT with an empty body stores an empty value, not nothing"
        ),
        api_case!(
            methods_outside_the_api_change_nothing,
            "POST and PATCH are refused and change nothing"
        ),
        api_case!(the_empty_key_is_refused, "`/cache/` with no key is refused"),
        api_case!(
            health_answers_json_with_healthy,
            "GET /health is 200 with JSON `healthy: true` on a reachable service"
        ),
        api_case!(every_method_needs_the_token, "with a token configured, every method without it is 401/403, and `bearer` works in any case", needs: [Need::AuthToken]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_into_authority_and_prefix() {
        let target = ApiTarget::parse("http://127.0.0.1:8080", None).map_err(|e| e.to_string());
        assert_eq!(
            target.map(|t| (t.authority, t.path_prefix)),
            Ok(("127.0.0.1:8080".to_owned(), String::new()))
        );
        let target = ApiTarget::parse("http://cache.local/api/", None).map_err(|e| e.to_string());
        assert_eq!(
            target.map(|t| (t.authority, t.path_prefix)),
            Ok(("cache.local:80".to_owned(), "/api".to_owned()))
        );
        assert!(ApiTarget::parse("https://x", None).is_err());
        assert!(ApiTarget::parse("http://u:p@x", None).is_err());
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n"), Ok(b"abc".to_vec()));
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
