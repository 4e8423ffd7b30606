//! The context of the HTTP API cases: a service's address and token ([`ApiTarget`]) and a
//! raw HTTP/1.1 client ([`ApiCtx`]) that writes requests byte for byte and reads responses
//! without any HTTP library's normalisation.

use std::time::Duration;

use cachekit_core::Capabilities;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::failure::{Answer, CaseResult, Failure};

/// Longest a raw exchange may take before the case fails.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response a raw exchange reads.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// How long a PUT with `Expect: 100-continue` waits for `100 Continue` before it sends
/// its body anyway.
pub const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// A service under test: where it listens and what it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path prefix before `/cache/…` and `/health`, without a trailing slash.
    pub path_prefix: String,
    /// The bearer token the service requires, if any.
    pub token: Option<String>,
    /// The connection timeouts the service claims to enforce on slow clients.
    pub connection_timeouts: ConnectionTimeouts,
}

/// How long a service lets a connection sit before closing it, as its operator declares:
/// the defences against clients that hold connections open without finishing requests
/// (slowloris). The `http_api` rules hold a service to what is declared here, in both
/// directions: not closed before the timeout (slow but honest clients keep working), and
/// closed soon after it (idle sockets and trickled heads cannot pile up). `None` skips
/// the rules that need it. Each rule waits out its timeout, so a case takes that long
/// plus up to 1.5 s, within the case timeout (120 s unless `CACHEKIT_CASE_TIMEOUT_SECS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionTimeouts {
    /// Longest a request head may take from its first byte; also the longest a new
    /// connection may stay silent before its first request begins.
    pub header: Option<Duration>,
    /// Longest a kept-alive connection may wait for its next request once a response on
    /// it has been sent.
    pub idle: Option<Duration>,
    /// Longest writing one response may take: a client that stops reading is cut off once
    /// this has run out.
    pub write: Option<Duration>,
}

impl ConnectionTimeouts {
    /// Nothing declared: the connection rules are skipped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the header timeout.
    pub fn with_header(mut self, timeout: Duration) -> Self {
        self.header = Some(timeout);
        self
    }

    /// Declares the keep-alive idle timeout.
    pub fn with_idle(mut self, timeout: Duration) -> Self {
        self.idle = Some(timeout);
        self
    }

    /// Declares the response write timeout.
    pub fn with_write(mut self, timeout: Duration) -> Self {
        self.write = Some(timeout);
        self
    }
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
        // The port follows the last `:` outside an IPv6 literal's brackets.
        let host_end = authority.rfind(']').map_or(0, |bracket| bracket + 1);
        let authority = if authority[host_end..].contains(':') {
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
            connection_timeouts: ConnectionTimeouts::default(),
        })
    }
}

/// One raw HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Everything after the head, de-chunked if the response was chunked.
    pub body: Vec<u8>,
    /// The header fields, names lower-cased, values trimmed, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl RawResponse {
    /// The value of the first header field called `name` (any case), if there is one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What an API case gets: the target, its private key prefix, and a raw client.
pub struct ApiCtx {
    pub(crate) target: ApiTarget,
    /// What the service claims (limits, ttl support), as the suite declared it.
    pub(crate) declared: Capabilities,
    prefix: String,
}

impl ApiCtx {
    pub(crate) fn new(target: ApiTarget, declared: Capabilities, prefix: String) -> Self {
        ApiCtx {
            target,
            declared,
            prefix,
        }
    }

    /// A key private to this case, safe to put in a path unencoded (letters, digits, `-`, `_`).
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.target.path_prefix)
    }

    pub(crate) fn auth_header(&self) -> String {
        self.target
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default()
    }

    /// Sends `head` (request line and extra headers, each ending in CRLF) plus `body`,
    /// with `Host`, `Connection: close` and the token added, and reads the whole answer.
    pub(crate) async fn send(
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

    /// Sends exactly `head` and `body` and reads the answer; with `half_close`, shuts the
    /// write side right after (a client that stopped sending).
    pub(crate) async fn exchange(
        &self,
        method: &str,
        target: &str,
        head: &[u8],
        body: &[u8],
        half_close: bool,
    ) -> Result<RawResponse, Failure> {
        let what = format!("{method} {target}");
        let pieces = [head, body];
        self.exchange_pieces(&what, &pieces, Duration::ZERO, half_close, method == "HEAD")
            .await
    }

    /// Sends `pieces` (a whole request, `Connection: close` included) one write at a time,
    /// `pause` apart, as a client on a slow link does, and reads the whole answer.
    pub(crate) async fn send_in_pieces(
        &self,
        what: &str,
        pieces: &[&[u8]],
        pause: Duration,
    ) -> Result<RawResponse, Failure> {
        self.exchange_pieces(what, pieces, pause, false, false)
            .await
    }

    /// Writes `pieces`, `pause` apart, shuts the write side with `half_close`, then reads
    /// until the service closes, within [`EXCHANGE_TIMEOUT`].
    async fn exchange_pieces(
        &self,
        what: &str,
        pieces: &[&[u8]],
        pause: Duration,
        half_close: bool,
        head_request: bool,
    ) -> Result<RawResponse, Failure> {
        let fail = |why: String| {
            Failure::new(format!("exchange {what} with the service"))
                .expected("a complete HTTP response")
                .got(why)
        };
        let exchange = async {
            let mut stream = TcpStream::connect(&self.target.authority)
                .await
                .map_err(|err| fail(format!("cannot connect: {err}")))?;
            for (n, piece) in pieces.iter().enumerate() {
                if n > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                stream
                    .write_all(piece)
                    .await
                    .map_err(|err| fail(format!("write of piece {}: {err}", n + 1)))?;
            }
            if half_close {
                stream
                    .shutdown()
                    .await
                    .map_err(|err| fail(format!("shutdown: {err}")))?;
            }
            let mut raw = Vec::new();
            read_until_closed(&mut stream, &mut raw)
                .await
                .map_err(fail)?;
            parse_response(&raw, head_request).map_err(fail)
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(fail(format!(
                "no complete answer within {EXCHANGE_TIMEOUT:?}"
            ))),
        }
    }

    pub(crate) async fn put(
        &self,
        raw_key: &str,
        query: &str,
        body: &[u8],
    ) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}{query}"));
        let length = format!("Content-Length: {}\r\n", body.len());
        self.send("PUT", &target, &length, body).await
    }

    /// A PUT with `Expect: 100-continue`: the body goes only after `100 Continue`, or
    /// after [`CONTINUE_WAIT`] of silence (a client may stop waiting). A service that
    /// refuses on the head alone then answers with no body in flight, which its close
    /// could otherwise turn into a reset that loses the answer.
    pub(crate) async fn put_expecting_continue(
        &self,
        raw_key: &str,
        body: &[u8],
    ) -> Result<RawResponse, Failure> {
        let answer = self.put_heard_out(raw_key, body, true).await?;
        // 417: the service meets no expectations (RFC 9110 §10.1.1); a client sends the
        // request again without one, still listening for an answer before the body.
        if answer.status == 417 {
            return self.put_heard_out(raw_key, body, false).await;
        }
        Ok(answer)
    }

    /// A PUT whose body goes only after `100 Continue` or [`CONTINUE_WAIT`] of silence, so
    /// that an answer the service gives on the head alone is read before any body is sent;
    /// with `expect`, the head asks for `100 Continue`.
    async fn put_heard_out(
        &self,
        raw_key: &str,
        body: &[u8],
        expect: bool,
    ) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        let (expectation, what) = if expect {
            (
                "Expect: 100-continue\r\n",
                format!("PUT {target} (Expect: 100-continue)"),
            )
        } else {
            (
                "",
                format!("PUT {target} (body held back {CONTINUE_WAIT:?})"),
            )
        };
        let fail = |why: String| {
            Failure::new(format!("exchange {what} with the service"))
                .expected("a complete HTTP response")
                .got(why)
        };
        let head = format!(
            "PUT {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\
             Content-Length: {}\r\n{expectation}\r\n",
            self.target.authority,
            self.auth_header(),
            body.len()
        );
        let exchange = async {
            let mut stream = TcpStream::connect(&self.target.authority)
                .await
                .map_err(|err| fail(format!("cannot connect: {err}")))?;
            stream
                .write_all(head.as_bytes())
                .await
                .map_err(|err| fail(format!("write: {err}")))?;
            let mut raw = Vec::new();
            let first_head =
                tokio::time::timeout(CONTINUE_WAIT, read_head(&mut stream, &mut raw)).await;
            let send_body = match first_head {
                // Silence: send the body anyway.
                Err(_) => true,
                Ok(Err(why)) => return Err(fail(why)),
                Ok(Ok(head_end)) => {
                    let interim =
                        raw.starts_with(b"HTTP/1.1 100") || raw.starts_with(b"HTTP/1.0 100");
                    if interim {
                        raw.drain(..head_end);
                    }
                    interim
                }
            };
            if send_body {
                stream
                    .write_all(body)
                    .await
                    .map_err(|err| fail(format!("write: {err}")))?;
            }
            read_until_closed(&mut stream, &mut raw)
                .await
                .map_err(fail)?;
            parse_response(&raw, false).map_err(fail)
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(fail(format!(
                "no complete answer within {EXCHANGE_TIMEOUT:?}"
            ))),
        }
    }

    /// A connection for several requests in a row (see [`KeptAlive::request`]).
    pub(crate) async fn keep_alive(&self) -> Result<KeptAlive, String> {
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        Ok(KeptAlive {
            stream,
            buffered: Vec::new(),
        })
    }

    pub(crate) async fn get(&self, raw_key: &str) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        self.send("GET", &target, "", b"").await
    }

    pub(crate) async fn head(&self, raw_key: &str) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        self.send("HEAD", &target, "", b"").await
    }

    pub(crate) async fn delete(&self, raw_key: &str) -> Result<RawResponse, Failure> {
        let target = self.path(&format!("/cache/{raw_key}"));
        self.send("DELETE", &target, "", b"").await
    }

    /// `GET` must answer 200 with exactly `body`.
    pub(crate) async fn expect_value(&self, check: &str, raw_key: &str, body: &[u8]) -> CaseResult {
        expect_body(check, raw_key, &self.get(raw_key).await?, body)
    }

    /// `GET` must answer 404.
    pub(crate) async fn expect_missing(&self, check: &str, raw_key: &str) -> CaseResult {
        let response = self.get(raw_key).await?;
        expect_status(check, raw_key, "GET", &response, &[404])
    }
}

/// Reads into `raw` until the end of the first head; returns where it ends (after its
/// blank line). What follows the head, if anything, stays in `raw`.
async fn read_head(stream: &mut TcpStream, raw: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 4 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(end + 4);
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|err| format!("read: {err}"))?;
        if read == 0 {
            return Err(format!(
                "closed after {} bytes, before a whole head",
                raw.len()
            ));
        }
        raw.extend_from_slice(&chunk[..read]);
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(format!("more than {MAX_RESPONSE_BYTES} bytes"));
        }
    }
}

/// Reads into `raw` until the service closes the connection (a reset after some bytes
/// counts as the close), at most [`MAX_RESPONSE_BYTES`].
async fn read_until_closed(stream: &mut TcpStream, raw: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(read) => read,
            // A reset after a complete answer is an answer.
            Err(_) if !raw.is_empty() => 0,
            Err(err) => return Err(format!("read: {err}")),
        };
        if read == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&chunk[..read]);
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(format!("more than {MAX_RESPONSE_BYTES} bytes"));
        }
    }
}

/// Reads and discards what the service sends (a `408`, say) until it closes the connection
/// (end of stream or a reset): returns the instant the close was seen, or `None` if the
/// connection was still open at `give_up`.
pub(crate) async fn wait_for_close(
    stream: &mut TcpStream,
    give_up: tokio::time::Instant,
) -> Result<Option<tokio::time::Instant>, String> {
    let mut chunk = [0u8; 16 * 1024];
    let mut discarded = 0usize;
    loop {
        match tokio::time::timeout_at(give_up, stream.read(&mut chunk)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0) | Err(_)) => return Ok(Some(tokio::time::Instant::now())),
            Ok(Ok(read)) => {
                discarded += read;
                if discarded > MAX_RESPONSE_BYTES {
                    return Err(format!(
                        "more than {MAX_RESPONSE_BYTES} bytes sent unasked on an idle connection"
                    ));
                }
            }
        }
    }
}

/// Plays a slowloris client: sends `head_start` (a request line and headers, not ended by
/// the blank line), then one more byte of an endless header every `interval`, so that the
/// head never completes but bytes keep arriving. Returns the instant the service closed
/// the connection (end of stream, a reset, or a write it refused), or `None` if it was
/// still open at `give_up`.
pub(crate) async fn trickle_until_closed(
    stream: &mut TcpStream,
    head_start: &[u8],
    interval: Duration,
    give_up: tokio::time::Instant,
) -> Result<Option<tokio::time::Instant>, String> {
    let mut pending: &[u8] = head_start;
    let mut chunk = [0u8; 16 * 1024];
    let mut discarded = 0usize;
    loop {
        if stream.write_all(pending).await.is_err() {
            return Ok(Some(tokio::time::Instant::now()));
        }
        pending = b"a";
        let next_byte = (tokio::time::Instant::now() + interval).min(give_up);
        loop {
            match tokio::time::timeout_at(next_byte, stream.read(&mut chunk)).await {
                Err(_) if next_byte >= give_up => return Ok(None),
                Err(_) => break,
                Ok(Ok(0) | Err(_)) => return Ok(Some(tokio::time::Instant::now())),
                Ok(Ok(read)) => {
                    discarded += read;
                    if discarded > MAX_RESPONSE_BYTES {
                        return Err(format!(
                            "more than {MAX_RESPONSE_BYTES} bytes sent before a head was complete"
                        ));
                    }
                }
            }
        }
    }
}

pub(crate) fn preview(body: &[u8]) -> String {
    crate::failure::preview_bytes(body)
}

pub(crate) fn describe(response: &RawResponse) -> Answer {
    Answer::Described(format!(
        "{} with {}",
        response.status,
        preview(&response.body)
    ))
}

/// A GET's `response` must be 200 with exactly `body`.
pub(crate) fn expect_body(
    check: &str,
    key: &str,
    response: &RawResponse,
    body: &[u8],
) -> CaseResult {
    if response.status == 200 && response.body == body {
        return Ok(());
    }
    Err(Failure::new(check)
        .key(key)
        .expected(format!("GET -> 200 with {}", preview(body)))
        .got(describe(response)))
}

pub(crate) fn expect_status(
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

pub(crate) fn expect_client_error(
    check: &str,
    key: &str,
    method: &str,
    response: &RawResponse,
) -> CaseResult {
    if (400..500).contains(&response.status) {
        return Ok(());
    }
    Err(Failure::new(check)
        .key(key)
        .expected(format!("{method} -> a 4xx refusal"))
        .got(describe(response)))
}

/// A response head: its status and its header fields (names lower-cased).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    /// Parses the head in `raw[..end]` (`end` is where its blank line begins).
    fn parse(raw: &[u8], end: usize) -> Result<Head, String> {
        let head =
            std::str::from_utf8(&raw[..end]).map_err(|_| "a head that is not UTF-8".to_owned())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("a bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Head { status, headers })
    }

    fn has(&self, name: &str, token: &str) -> bool {
        self.headers.iter().any(|(n, v)| {
            n == name
                && v.split(',')
                    .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    }

    fn is_chunked(&self) -> bool {
        self.has("transfer-encoding", "chunked")
    }

    fn content_length(&self) -> Result<Option<usize>, String> {
        match self.headers.iter().find(|(n, _)| n == "content-length") {
            None => Ok(None),
            Some((_, value)) => value
                .parse()
                .map(Some)
                .map_err(|_| format!("a bad Content-Length {value:?}")),
        }
    }
}

pub(crate) fn parse_response(raw: &[u8], head_request: bool) -> Result<RawResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {} bytes", raw.len()))?;
    let head = Head::parse(raw, end)?;
    let rest = &raw[end + 4..];
    let body = if head_request || !head.is_chunked() {
        rest.to_vec()
    } else {
        dechunk(rest)?
    };
    Ok(RawResponse {
        status: head.status,
        body,
        headers: head.headers,
    })
}

/// Where a complete chunked body in `rest` ends (after its last chunk and trailers), or
/// `None` if more bytes are needed.
fn chunked_end(rest: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line_end) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text =
            std::str::from_utf8(&rest[at..at + line_end]).map_err(|_| "a bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
        at += line_end + 2;
        if size == 0 {
            // Trailer fields, if any, then the blank line.
            loop {
                let Some(line_end) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += line_end + 2;
                if line_end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if rest.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

/// One connection kept open across requests, for the persistent-connection rule.
pub(crate) struct KeptAlive {
    stream: TcpStream,
    /// Bytes read past the end of the last response.
    buffered: Vec<u8>,
}

/// A response read off a kept-alive connection, by its own framing.
pub(crate) struct FramedResponse {
    pub response: RawResponse,
    /// The service said it closes the connection after this response (`Connection:
    /// close`, or a body framed by the close itself).
    pub announces_close: bool,
}

impl KeptAlive {
    /// Sends one request with no `Connection: close` and reads exactly its response.
    pub(crate) async fn request(
        &mut self,
        ctx: &ApiCtx,
        method: &str,
        target: &str,
        extra: &str,
        body: &[u8],
    ) -> Result<FramedResponse, String> {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\n{}{extra}\r\n",
            ctx.target.authority,
            ctx.auth_header()
        );
        let exchange = async {
            self.stream
                .write_all(head.as_bytes())
                .await
                .map_err(|err| format!("write: {err}"))?;
            self.stream
                .write_all(body)
                .await
                .map_err(|err| format!("write: {err}"))?;
            self.read_response(method == "HEAD").await
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no complete answer within {EXCHANGE_TIMEOUT:?}")))
    }

    async fn read_response(&mut self, head_request: bool) -> Result<FramedResponse, String> {
        let head_end = read_head(&mut self.stream, &mut self.buffered).await?;
        let head = Head::parse(&self.buffered, head_end - 4)?;
        let mut announces_close = head.has("connection", "close");
        let bodyless = head_request || head.status == 204 || head.status == 304;
        let body_end = if bodyless {
            head_end
        } else if head.is_chunked() {
            loop {
                if let Some(end) = chunked_end(&self.buffered[head_end..])? {
                    break head_end + end;
                }
                self.read_more().await?;
            }
        } else if let Some(length) = head.content_length()? {
            while self.buffered.len() < head_end + length {
                self.read_more().await?;
            }
            head_end + length
        } else {
            // Framed by the close: the service ends the connection after this body.
            announces_close = true;
            read_until_closed(&mut self.stream, &mut self.buffered).await?;
            self.buffered.len()
        };
        let raw: Vec<u8> = self.buffered.drain(..body_end).collect();
        let response = parse_response(&raw, bodyless)?;
        Ok(FramedResponse {
            response,
            announces_close,
        })
    }

    /// Trickles a request head that never completes on this connection: see
    /// [`trickle_until_closed`].
    pub(crate) async fn trickle_until_closed(
        &mut self,
        head_start: &[u8],
        interval: Duration,
        give_up: tokio::time::Instant,
    ) -> Result<Option<tokio::time::Instant>, String> {
        trickle_until_closed(&mut self.stream, head_start, interval, give_up).await
    }

    /// Waits until the service closes this connection: see [`wait_for_close`].
    pub(crate) async fn wait_for_close(
        &mut self,
        give_up: tokio::time::Instant,
    ) -> Result<Option<tokio::time::Instant>, String> {
        wait_for_close(&mut self.stream, give_up).await
    }

    async fn read_more(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|err| format!("read: {err}"))?;
        if read == 0 {
            return Err(format!(
                "closed after {} bytes, inside a response body",
                self.buffered.len()
            ));
        }
        self.buffered.extend_from_slice(&chunk[..read]);
        if self.buffered.len() > MAX_RESPONSE_BYTES {
            return Err(format!("more than {MAX_RESPONSE_BYTES} bytes"));
        }
        Ok(())
    }
}

pub(crate) fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::host_and_port("http://127.0.0.1:8080", Ok(("127.0.0.1:8080", "")))]
    #[case::path_prefix_without_port("http://cache.local/api/", Ok(("cache.local:80", "/api")))]
    #[case::ipv6_with_port("http://[::1]:8080/", Ok(("[::1]:8080", "")))]
    #[case::ipv6_without_port("http://[::1]/api", Ok(("[::1]:80", "/api")))]
    #[case::https_cannot_be_spoken_raw("https://x", Err(()))]
    #[case::user_info("http://u:p@x", Err(()))]
    fn base_urls_parse_into_authority_and_prefix(
        #[case] base_url: &str,
        #[case] expected: Result<(&str, &str), ()>,
    ) {
        let parsed = ApiTarget::parse(base_url, None)
            .map(|target| (target.authority, target.path_prefix))
            .map_err(|_| ());
        let expected =
            expected.map(|(authority, prefix)| (authority.to_owned(), prefix.to_owned()));
        assert_eq!(parsed, expected);
    }

    #[rstest::rstest]
    #[case::complete(b"3\r\nabc\r\n0\r\n\r\nNEXT", Ok(Some(13)))]
    #[case::with_a_trailer(b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", Ok(Some(21)))]
    #[case::cut_inside_a_chunk(b"3\r\nab", Ok(None))]
    #[case::cut_before_the_blank_line(b"3\r\nabc\r\n0\r\n", Ok(None))]
    #[case::bad_size(b"zz\r\n", Err(()))]
    fn chunked_bodies_end_where_their_last_chunk_does(
        #[case] rest: &[u8],
        #[case] end: Result<Option<usize>, ()>,
    ) {
        assert_eq!(chunked_end(rest).map_err(|_| ()), end);
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n"), Ok(b"abc".to_vec()));
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
