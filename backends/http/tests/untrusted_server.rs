//! The client against hand-written HTTP answers from a raw loopback TCP server: what a
//! server controls (error bodies, error text, health fields, `Retry-After`) must never make
//! the client hang, allocate without bound, or write unfiltered text into errors and logs;
//! and what the client sends must be framed so that strict servers accept it.
//!
//! Every server here binds `127.0.0.1:0`, answers from a script, and stops by itself: its
//! endless bodies end after [`WRITER_LIFETIME`] at the latest, and it is aborted on drop.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cachekit_backend_http::{
    HttpBackend, HttpConfig, RetryPolicy, ELISION_MARKER, MAX_ERROR_BODY_BYTES,
    MAX_HEALTH_BODY_BYTES, MAX_HEALTH_DETAILS, MAX_RETRY_AFTER, MAX_SERVER_TEXT_CHARS,
};
use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};
use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest an endless body is written, so that a client that keeps reading cannot keep a
/// test server busy past the test.
const WRITER_LIFETIME: Duration = Duration::from_secs(10);
/// Longest request head or body the test server reads.
const MAX_RECEIVED_BYTES: usize = 16 * 1024 * 1024;
/// How long a misbehaving answer may take before the client must have given up on it;
/// far below the 30 s client timeout, so only a cap, not the timeout, can meet it.
const PROMPTLY: Duration = Duration::from_secs(5);

/// One request as the test server received it.
#[derive(Debug, Clone)]
struct ReceivedRequest {
    method: String,
    target: String,
    /// Names lowercased, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ReceivedRequest {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// A loopback server that hands each request and its socket to a script.
struct RawHttpServer {
    base_url: String,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    accept_loop: JoinHandle<()>,
}

impl RawHttpServer {
    async fn start<Script, Answer>(script: Script) -> Self
    where
        Script: Fn(ReceivedRequest, TcpStream) -> Answer + Send + Sync + 'static,
        Answer: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("read the bound port");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let accept_loop = tokio::spawn(async move {
            // Dropped with the accept loop, which aborts every connection still running.
            let mut connections = JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some(request) = read_request(&mut socket).await else {
                    continue;
                };
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request.clone());
                connections.spawn(script(request, socket));
            }
        });
        RawHttpServer {
            base_url: format!("http://{address}"),
            received,
            accept_loop,
        }
    }

    /// Answers every request with the same bytes, then closes the connection.
    async fn answering(answer: impl Into<Vec<u8>>) -> Self {
        let answer: Arc<[u8]> = answer.into().into();
        Self::start(move |_, mut socket| {
            let answer = answer.clone();
            async move {
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            }
        })
        .await
    }

    fn received(&self) -> Vec<ReceivedRequest> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RawHttpServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Reads one request head and its `Content-Length` body; `None` if the client went away.
async fn read_request(socket: &mut TcpStream) -> Option<ReceivedRequest> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = socket.read(&mut buffer).await.ok().filter(|&n| n > 0)?;
        bytes.extend_from_slice(&buffer[..read]);
        if bytes.len() > MAX_RECEIVED_BYTES {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let declared = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_RECEIVED_BYTES);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < declared {
        let read = socket.read(&mut buffer).await.ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&buffer[..read]);
    }
    Some(ReceivedRequest {
        method,
        target,
        headers,
        body,
    })
}

/// A client with a long timeout, so that only the client's own caps can end a call early.
fn patient_client(base_url: &str, max_retries: u32) -> HttpBackend {
    let mut config = HttpConfig::new(base_url);
    config.timeout = Duration::from_secs(30);
    config.retry = RetryPolicy {
        max_retries,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    HttpBackend::new(config).expect("valid config")
}

fn error_of<T: std::fmt::Debug>(outcome: cachekit_core::Result<T>) -> BackendError {
    match outcome {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

/// Longest message that server text may make: our own prefix (method, status) plus the
/// capped, escaped text and the elision marker.
fn message_bound() -> usize {
    100 + MAX_SERVER_TEXT_CHARS + ELISION_MARKER.chars().count()
}

fn assert_no_control_characters(text: &str) {
    let found: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .collect();
    assert!(found.is_empty(), "control characters {found:?} in {text:?}");
}

// ---------------------------------------------------------------------------------------
// Item 1: an error body is read up to a cap and a deadline, never whole.
// ---------------------------------------------------------------------------------------

/// How an endless error body is framed and paced.
#[derive(Debug, Clone, Copy)]
enum EndlessBody {
    /// `Transfer-Encoding: chunked`, 16 KiB chunks as fast as a paced loop writes them.
    Chunked,
    /// No length at all: the body runs until the connection closes.
    CloseDelimited,
    /// A `Content-Length` of a terabyte, then bytes as fast as the loop writes them.
    HugeContentLength,
    /// Chunked, one byte every 50 ms: a cap on bytes alone never ends it.
    Trickle,
}

/// Writes `status` with an endless body until the client hangs up or [`WRITER_LIFETIME`]
/// passes; records when the client hung up.
async fn write_endless(
    mut socket: TcpStream,
    status: u16,
    framing: EndlessBody,
    hung_up_at: Arc<Mutex<Option<Instant>>>,
) {
    let framing_header = match framing {
        EndlessBody::Chunked | EndlessBody::Trickle => "Transfer-Encoding: chunked\r\n",
        EndlessBody::CloseDelimited => "Connection: close\r\n",
        EndlessBody::HugeContentLength => "Content-Length: 1000000000000\r\n",
    };
    let head = format!("HTTP/1.1 {status} Whatever\r\n{framing_header}\r\n");
    let (piece, pause) = match framing {
        EndlessBody::Trickle => (vec![b'x'; 1], Duration::from_millis(50)),
        // Paced so that a client that buffers everything takes a while to hurt the machine.
        _ => (vec![b'x'; 16 * 1024], Duration::from_millis(1)),
    };
    let frame = match framing {
        EndlessBody::Chunked | EndlessBody::Trickle => {
            let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
            frame.extend_from_slice(&piece);
            frame.extend_from_slice(b"\r\n");
            frame
        }
        _ => piece,
    };
    let started = Instant::now();
    let mut outcome = socket.write_all(head.as_bytes()).await;
    while outcome.is_ok() && started.elapsed() < WRITER_LIFETIME {
        outcome = socket.write_all(&frame).await;
        tokio::time::sleep(pause).await;
    }
    if outcome.is_err() {
        *hung_up_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

/// Item 1: an endless error body ends in an error of the status's kind, promptly, and the
/// client hangs up instead of reading on.
#[rstest]
#[case::chunked_500_is_unavailable(EndlessBody::Chunked, 500, ErrorKind::Unavailable)]
#[case::close_delimited_429_is_throttled(EndlessBody::CloseDelimited, 429, ErrorKind::Throttled)]
#[case::huge_content_length_401_is_auth(EndlessBody::HugeContentLength, 401, ErrorKind::Auth)]
#[case::chunked_400_is_invalid_argument(EndlessBody::Chunked, 400, ErrorKind::InvalidArgument)]
#[case::chunked_418_is_protocol(EndlessBody::Chunked, 418, ErrorKind::Protocol)]
#[case::trickle_503_is_unavailable(EndlessBody::Trickle, 503, ErrorKind::Unavailable)]
#[tokio::test]
async fn endless_error_body_is_capped_and_classified_by_status(
    #[case] framing: EndlessBody,
    #[case] status: u16,
    #[case] kind: ErrorKind,
) {
    let hung_up_at = Arc::new(Mutex::new(None));
    let hang_up = hung_up_at.clone();
    let server = RawHttpServer::start(move |_, socket| {
        write_endless(socket, status, framing, hang_up.clone())
    })
    .await;
    let backend = patient_client(&server.base_url, 0);
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROMPTLY, backend.get("k"))
        .await
        .unwrap_or_else(|_| {
            panic!("get still reading an endless {status} body after {PROMPTLY:?}")
        });
    let err = error_of(outcome);
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        err.message().contains(ELISION_MARKER),
        "a cut error body must say so: {err}"
    );
    assert!(
        err.message().chars().count() <= message_bound(),
        "message of {} chars: {err}",
        err.message().chars().count()
    );
    drop(backend);
    // The client hung up rather than reading on in the background.
    while hung_up_at
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_none()
    {
        assert!(
            started.elapsed() < PROMPTLY * 2,
            "the client kept the endless body's connection open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Item 1: a complete short error body is kept whole, without an elision marker.
#[tokio::test]
async fn short_error_body_is_kept_without_elision_marker() {
    let body = r#"{"kind":"invalid_key","error":"key too long"}"#;
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let err = error_of(patient_client(&server.base_url, 0).get("k").await);
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert_eq!(
        err.message(),
        "GET: server answered 400 Bad Request: key too long"
    );
}

// ---------------------------------------------------------------------------------------
// Item 2: base URLs that would put every key on one path, or show a password, are refused.
// ---------------------------------------------------------------------------------------

const PASSWORD: &str = "hunter2";

/// Item 2: accepted base URLs put each key in its own path segment under `/cache/`.
#[rstest]
#[case::plain_host("http://127.0.0.1:8080", "http://127.0.0.1:8080/cache/a%2Fb")]
#[case::trailing_slash("http://127.0.0.1:8080/", "http://127.0.0.1:8080/cache/a%2Fb")]
#[case::path_prefix("http://cache.internal/api", "http://cache.internal/api/cache/a%2Fb")]
#[case::path_prefix_with_trailing_slash(
    "https://cache.internal/api/v1/",
    "https://cache.internal/api/v1/cache/a%2Fb"
)]
#[case::ipv6_literal("http://[::1]:8080", "http://[::1]:8080/cache/a%2Fb")]
#[case::default_port_dropped(
    "https://cache.internal:443/x",
    "https://cache.internal/x/cache/a%2Fb"
)]
#[case::uppercase_scheme_and_host("HTTP://Cache.Internal", "http://cache.internal/cache/a%2Fb")]
fn base_url_is_accepted(#[case] base_url: &str, #[case] key_url: &str) {
    let backend = HttpBackend::new(HttpConfig::new(base_url)).expect("accepted base URL");
    let url = backend.key_url("a/b").expect("valid key");
    assert_eq!(url.as_str(), key_url);
}

/// Item 2: refused base URLs fail at construction with InvalidArgument, naming the problem
/// and never echoing the password, the query or the fragment.
#[rstest]
#[case::query("http://cache.internal/api?tenant=t1", "must not have a query")]
#[case::empty_query("http://cache.internal/api?", "must not have a query")]
#[case::query_with_secret("http://cache.internal/?api_key=hunter2", "must not have a query")]
#[case::fragment("http://cache.internal/api#section", "must not have a fragment")]
#[case::empty_fragment("http://cache.internal/api#", "must not have a fragment")]
#[case::user_and_password("http://alice:hunter2@cache.internal", "must not carry user-info")]
#[case::user_only("http://alice@cache.internal", "must not carry user-info")]
#[case::password_only("http://:hunter2@cache.internal", "must not carry user-info")]
#[case::password_and_query("https://alice:hunter2@cache.internal/?q", "must not carry user-info")]
#[case::unparsable_with_password("http://alice:hunter2@cache.internal:99999", "invalid base URL")]
#[case::ftp_scheme("ftp://cache.internal", "must be an http(s) URL")]
#[case::not_a_base("mailto:alice@cache.internal", "must be an http(s) URL")]
#[case::relative("/cache", "invalid base URL")]
#[case::empty("", "invalid base URL")]
fn base_url_is_refused(#[case] base_url: &str, #[case] names_the_problem: &str) {
    let config = HttpConfig::new(base_url);
    let err = HttpBackend::new(config.clone()).expect_err("refused base URL");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(names_the_problem),
        "{message:?} should contain {names_the_problem:?}"
    );
    for secret in [PASSWORD, "tenant=t1", "section"] {
        assert!(!message.contains(secret), "{message:?} echoes {secret:?}");
    }
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(PASSWORD),
        "Debug shows the password: {debug}"
    );
}

// ---------------------------------------------------------------------------------------
// Item 3: server text is escaped and capped before it reaches errors, logs and health.
// ---------------------------------------------------------------------------------------

/// Item 3: the `error` text of a JSON error body is escaped and capped.
#[rstest]
#[case::ansi_in_json_error(
    r#"{"kind":"invalid_argument","error":"\u001b[2J\u001b[31mred alert\u001b[0m"}"#,
    "\\u{1b}[31mred alert"
)]
#[case::crlf_forged_log_line_in_json_error(
    r#"{"kind":"invalid_argument","error":"bad ttl\r\n2025-01-01 INFO admin logged in"}"#,
    "bad ttl\\r\\n2025-01-01 INFO admin logged in"
)]
#[case::bidi_override_in_json_error(
    r#"{"kind":"invalid_argument","error":"file \u202etxt.exe"}"#,
    "file \\u{202e}txt.exe"
)]
#[case::raw_text_with_escape("\u{1b}]0;owned\u{7}plain text", "\\u{1b}]0;owned\\u{7}plain text")]
#[tokio::test]
async fn error_text_from_the_server_is_escaped(#[case] body: &str, #[case] shown_as: &str) {
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let err = error_of(patient_client(&server.base_url, 0).get("k").await);
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_no_control_characters(&err.to_string());
    assert!(
        err.message().contains(shown_as),
        "{:?} should contain {shown_as:?}",
        err.message()
    );
}

/// Item 3: a long `error` text is capped with a visible elision marker.
#[tokio::test]
async fn long_error_text_is_capped_with_an_elision_marker() {
    let long = "e".repeat(3000);
    let body = format!(r#"{{"kind":"invalid_argument","error":"{long}"}}"#);
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let err = error_of(patient_client(&server.base_url, 0).get("k").await);
    let expected_text = format!("{}{ELISION_MARKER}", "e".repeat(MAX_SERVER_TEXT_CHARS));
    assert_eq!(
        err.message(),
        format!("GET: server answered 400 Bad Request: {expected_text}")
    );
}

/// Item 3: health fields from the server are escaped, capped in length and in number; the
/// API's own fields are kept whatever else arrives, and the number dropped is reported.
#[tokio::test]
async fn health_details_from_the_server_are_escaped_and_capped() {
    let mut fields = vec![
        r#""healthy":true"#.to_owned(),
        format!(
            r#""backend_type":"memory\r\nFORGED\u001b[0m{}""#,
            "v".repeat(2000)
        ),
        format!(r#""a\u001b[31m{}":"x""#, "k".repeat(2000)),
    ];
    fields.extend((0..500).map(|n| format!(r#""field{n:03}":{n}"#)));
    let body = format!("{{{}}}", fields.join(","));
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let report = patient_client(&server.base_url, 0).health_check().await;
    assert!(report.healthy, "{:?}", report.details);
    // The server's fields, then the client's own `status`, `url` and `fields_elided`.
    assert_eq!(
        report.details.len(),
        MAX_HEALTH_DETAILS + 3,
        "{:?}",
        report.details.keys()
    );
    assert_eq!(
        report.details.get("fields_elided").map(String::as_str),
        Some("471")
    );
    assert_eq!(
        report.details.get("healthy").map(String::as_str),
        Some("true")
    );
    let bound = MAX_SERVER_TEXT_CHARS + ELISION_MARKER.chars().count();
    for (name, value) in &report.details {
        assert_no_control_characters(name);
        assert_no_control_characters(value);
        assert!(name.chars().count() <= bound, "{name}");
        assert!(value.chars().count() <= bound, "{value}");
    }
    let backend_type = report.details.get("backend_type").expect("kept");
    assert!(
        backend_type.starts_with("memory\\r\\nFORGED\\u{1b}[0m"),
        "{backend_type}"
    );
    assert!(backend_type.ends_with(ELISION_MARKER), "{backend_type}");
    assert!(
        report
            .details
            .keys()
            .any(|name| name.starts_with("a\\u{1b}[31mkkk")),
        "{:?}",
        report.details.keys()
    );
}

/// Item 3: an unhealthy answer's error carries escaped fields only.
#[tokio::test]
async fn unhealthy_answer_is_reported_with_escaped_text() {
    let body = r#"{"healthy":false,"reason":"disk\r\nfull\u001b[0m"}"#;
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let report = patient_client(&server.base_url, 0).health_check().await;
    assert!(!report.healthy);
    let error = report.details.get("error").expect("an error detail");
    // Debug of the details escapes once more; no raw control character survives either way.
    assert_no_control_characters(error);
    assert!(error.contains("disk"), "{error}");
}

// ---------------------------------------------------------------------------------------
// Security finding 3: a health answer is read up to a small cap and parsed shallowly; the
// health check carries the token.
// ---------------------------------------------------------------------------------------

/// A `200` health answer whose JSON body is `len` bytes (an array of zeros, or an object
/// with `healthy` and one long array field), framed by `Content-Length` or chunked.
fn big_health_answer(len: usize, object: bool, chunked: bool) -> Vec<u8> {
    let body = if object {
        let prefix = r#"{"healthy":true,"list":["#;
        let zeros = "0,".repeat((len - prefix.len() - 3) / 2);
        format!("{prefix}{zeros}0]}}")
    } else {
        format!("[{}0]", "0,".repeat((len - 3) / 2))
    };
    json_200(&body, chunked)
}

/// A `200` answer carrying the JSON `body`, framed by Content-Length or in 4 KiB chunks.
fn json_200(body: &str, chunked: bool) -> Vec<u8> {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let mut answer =
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    if chunked {
        for piece in body.as_bytes().chunks(4096) {
            answer.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            answer.extend_from_slice(piece);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
    } else {
        answer.extend_from_slice(body.as_bytes());
    }
    answer
}

/// Security finding 3: a `200` health body over [`MAX_HEALTH_BODY_BYTES`] is not read, let
/// alone parsed, whole: the check is unhealthy and says why. Before the fix any body up to
/// `max_response_bytes` (8 MiB) was read and parsed into a `serde_json::Value` (one per
/// array element), and this answer was reported healthy.
#[rstest]
#[case::array_with_content_length(false, false)]
#[case::array_chunked(false, true)]
#[case::object_with_content_length(true, false)]
#[case::object_chunked(true, true)]
#[tokio::test]
async fn a_health_body_over_the_cap_is_unhealthy_and_not_read_whole(
    #[case] object: bool,
    #[case] chunked: bool,
) {
    let server =
        RawHttpServer::answering(big_health_answer(2 * 1024 * 1024, object, chunked)).await;
    let report = tokio::time::timeout(PROMPTLY, patient_client(&server.base_url, 0).health_check())
        .await
        .expect("the health check ends promptly");
    assert!(!report.healthy, "{:?}", report.details);
    let error = report.details.get("error").expect("an error detail");
    assert!(
        error.contains(&MAX_HEALTH_BODY_BYTES.to_string()),
        "the error names the cap: {error}"
    );
}

/// Security finding 3: a health body within the cap is parsed at its top level only; nested
/// values are kept as their (escaped, capped) JSON text.
#[tokio::test]
async fn a_health_body_within_the_cap_keeps_nested_values_as_capped_text() {
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let zeros = "0,".repeat(20_000);
    let body = format!(
        r#"{{"healthy":true,"backend_type":"memory","deep":{nested},"list":[{zeros}0],"details":{{"entries":"3"}}}}"#
    );
    assert!(body.len() < MAX_HEALTH_BODY_BYTES);
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let report = patient_client(&server.base_url, 0).health_check().await;
    assert!(report.healthy, "{:?}", report.details);
    let detail = |name: &str| report.details.get(name).map(String::as_str);
    assert_eq!(detail("backend_type"), Some("memory"));
    assert_eq!(detail("details"), Some(r#"{"entries":"3"}"#));
    let list = detail("list").expect("kept");
    assert!(
        list.starts_with("[0,0,") && list.ends_with(ELISION_MARKER),
        "{list}"
    );
    let deep = detail("deep").expect("kept");
    assert!(deep.starts_with("[[[["), "{deep}");
}

/// Security finding 3: an unhealthy status with a trickling body is reported promptly,
/// its body read like an error body (capped, within `ERROR_BODY_READ_TIMEOUT`). Before
/// the fix the body was read until the client's own timeout (30 s here).
#[tokio::test]
async fn an_unhealthy_status_with_a_trickling_body_is_reported_promptly() {
    let hung_up_at = Arc::new(Mutex::new(None));
    let hang_up = hung_up_at.clone();
    let server = RawHttpServer::start(move |_, socket| {
        write_endless(socket, 503, EndlessBody::Trickle, hang_up.clone())
    })
    .await;
    let report = tokio::time::timeout(PROMPTLY, patient_client(&server.base_url, 0).health_check())
        .await
        .expect("the health check ends promptly");
    assert!(!report.healthy);
    let error = report.details.get("error").expect("an error detail");
    assert!(error.contains("503"), "{error}");
    assert!(
        error.contains(ELISION_MARKER),
        "a cut body must say so: {error}"
    );
}

/// Security finding 3: an endless `200` health body is cut at the cap, promptly.
#[tokio::test]
async fn an_endless_health_body_is_cut_at_the_cap() {
    let hung_up_at = Arc::new(Mutex::new(None));
    let hang_up = hung_up_at.clone();
    let server = RawHttpServer::start(move |_, socket| {
        write_endless(socket, 200, EndlessBody::Chunked, hang_up.clone())
    })
    .await;
    let report = tokio::time::timeout(PROMPTLY, patient_client(&server.base_url, 0).health_check())
        .await
        .expect("the health check ends promptly");
    assert!(!report.healthy, "{:?}", report.details);
}

/// Security finding 3: the health check sends the configured bearer token, so that a
/// server that shows details only to its token holders shows them. Before the fix it was
/// sent without `Authorization`.
#[tokio::test]
async fn the_health_check_carries_the_token() {
    let body = r#"{"healthy":true}"#;
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let mut config = HttpConfig::new(&server.base_url).with_token("s3cret");
    config.retry.max_retries = 0;
    let report = HttpBackend::new(config)
        .expect("valid config")
        .health_check()
        .await;
    assert!(report.healthy, "{:?}", report.details);
    let received = server.received();
    let [health] = received.as_slice() else {
        panic!("expected one request, got {received:?}");
    };
    assert_eq!(health.target, "/health");
    assert_eq!(health.header_values("authorization"), ["Bearer s3cret"]);
}

/// Security finding 3, end to end: against a token-protected `cachekit-server`, a client
/// with the token sees the backend's details; one without sees only `healthy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_server_shows_health_details_to_the_client_with_the_token() {
    let server = cachekit_server::BackgroundServer::spawn(
        cachekit_backend_memory::MemoryBackend::new,
        cachekit_server::ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            token: Some("s3cret".to_owned()),
            ..cachekit_server::ServerConfig::default()
        },
    )
    .expect("start cachekit-server");
    let with_token = HttpBackend::new(HttpConfig::new(server.base_url()).with_token("s3cret"))
        .expect("valid config")
        .health_check()
        .await;
    assert!(with_token.healthy, "{:?}", with_token.details);
    assert_eq!(
        with_token.details.get("backend_type").map(String::as_str),
        Some("memory"),
        "{:?}",
        with_token.details
    );
    let anonymous = HttpBackend::new(HttpConfig::new(server.base_url()))
        .expect("valid config")
        .health_check()
        .await;
    assert!(anonymous.healthy, "{:?}", anonymous.details);
    assert_eq!(anonymous.details.get("backend_type"), None);
}

// ---------------------------------------------------------------------------------------
// Item 4: every PUT, the empty value included, carries its Content-Length.
// ---------------------------------------------------------------------------------------

/// Item 4: a PUT carries exactly one `Content-Length` equal to the value's length, and no
/// chunked framing, so that servers that refuse a PUT without a length (nginx WebDAV)
/// store every value, the empty one included.
#[rstest]
#[case::empty_value(0)]
#[case::one_byte(1)]
#[case::one_kib(1024)]
#[case::one_mib(1024 * 1024)]
#[tokio::test]
async fn put_carries_its_content_length(#[case] value_len: usize) {
    let server = RawHttpServer::answering(
        "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let backend = patient_client(&server.base_url, 0);
    let value = Bytes::from(vec![b'v'; value_len]);
    backend
        .set("k", value, Some(Duration::from_secs(60)))
        .await
        .expect("set accepted");
    let received = server.received();
    let [put] = received.as_slice() else {
        panic!("expected one request, got {received:?}");
    };
    assert_eq!(put.method, "PUT");
    assert_eq!(put.target, "/cache/k?ttl=60");
    let expected = value_len.to_string();
    assert_eq!(
        put.header_values("content-length"),
        [expected.as_str()],
        "headers: {:?}",
        put.headers
    );
    assert!(
        put.header_values("transfer-encoding").is_empty(),
        "headers: {:?}",
        put.headers
    );
    assert_eq!(put.body.len(), value_len);
}

// ---------------------------------------------------------------------------------------
// Also: Retry-After is a number the server controls.
// ---------------------------------------------------------------------------------------

/// A Retry-After too large for any clock is clamped to [`MAX_RETRY_AFTER`]: the call is
/// not retried at once as if the server had said nothing, and the caller is never handed a
/// wait that overflows `Instant + Duration`.
#[rstest]
#[case::beyond_u64("99999999999999999999999")]
#[case::u64_max("18446744073709551615")]
#[case::ten_years("315360000")]
#[tokio::test]
async fn huge_retry_after_is_clamped_and_not_retried(#[case] retry_after: &str) {
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ))
    .await;
    let backend = patient_client(&server.base_url, 2);
    let err = error_of(backend.get("k").await);
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
    assert_eq!(
        server.received().len(),
        1,
        "a long Retry-After is not waited for"
    );
}

// ---------------------------------------------------------------------------------------
// Bounds are inclusive, and redaction covers every form of user-info (from the mutation
// run: these boundaries and forms were not pinned by any test).
// ---------------------------------------------------------------------------------------

/// `{"healthy":true,"pad":"xx…"}` exactly `len` bytes long, framed by Content-Length or
/// chunked.
fn health_answer_of_exactly(len: usize, chunked: bool) -> Vec<u8> {
    let shell = r#"{"healthy":true,"pad":""}"#;
    let body = format!(
        r#"{{"healthy":true,"pad":"{}"}}"#,
        "x".repeat(len - shell.len())
    );
    assert_eq!(body.len(), len);
    json_200(&body, chunked)
}

#[rstest]
#[case::declared_by_content_length(false)]
#[case::chunked(true)]
#[tokio::test]
async fn a_health_body_of_exactly_the_cap_is_read_whole(#[case] chunked: bool) {
    let server =
        RawHttpServer::answering(health_answer_of_exactly(MAX_HEALTH_BODY_BYTES, chunked)).await;
    let report = patient_client(&server.base_url, 0).health_check().await;
    assert!(report.healthy, "{:?}", report.details);
    assert!(
        !report.details.contains_key("fields_elided"),
        "nothing was elided: {:?}",
        report.details.keys()
    );
}

/// An error body of exactly [`MAX_ERROR_BODY_BYTES`] is read whole, so the kind it names
/// is kept.
#[tokio::test]
async fn an_error_body_of_exactly_the_cap_keeps_its_kind() {
    let shell = r#"{"kind":"invalid_key","error":""}"#;
    let body = format!(
        r#"{{"kind":"invalid_key","error":"{}"}}"#,
        "e".repeat(MAX_ERROR_BODY_BYTES - shell.len())
    );
    assert_eq!(body.len(), MAX_ERROR_BODY_BYTES);
    let server = RawHttpServer::answering(format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let err = error_of(patient_client(&server.base_url, 0).get("k").await);
    assert_eq!(err.kind(), ErrorKind::InvalidKey, "{err}");
}

/// A `Retry-After` of exactly the longest wait the client takes is waited for, not given
/// up on.
#[tokio::test]
async fn a_retry_after_of_exactly_the_longest_wait_is_honoured() {
    let server = RawHttpServer::answering(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut config = HttpConfig::new(&server.base_url);
    config.retry = RetryPolicy {
        max_retries: 1,
        max_retry_after: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let backend = HttpBackend::new(config).expect("valid config");
    let err = error_of(backend.get("k").await);
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(server.received().len(), 2, "waited once, then retried");
}

#[rstest]
#[case::user_only("http://alice@cache.internal")]
#[case::user_and_password("http://alice:hunter2@cache.internal")]
#[case::password_only("http://:hunter2@cache.internal")]
fn debug_redacts_every_form_of_user_info(#[case] base_url: &str) {
    let debug = format!("{:?}", HttpConfig::new(base_url).with_token("t0k3n"));
    assert!(debug.contains("<redacted>@cache.internal"), "{debug}");
    assert!(
        debug.contains("BearerToken(<redacted>)"),
        "the token field says it is hidden: {debug}"
    );
    for secret in ["alice", PASSWORD, "t0k3n"] {
        assert!(!debug.contains(secret), "{debug} shows {secret:?}");
    }
}
