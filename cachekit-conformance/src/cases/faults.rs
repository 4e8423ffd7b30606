//! Fault conformance for backends that speak the cachekit HTTP API.
//!
//! Each case starts its own fault-injecting server on 127.0.0.1 (wiremock, or a raw TCP
//! responder for answers wiremock cannot produce, like a body cut short), asks the suite's
//! factory for a backend pointed at it with the retry settings in [`FaultTarget`], and checks
//! the error kind, the number of requests (retries), and that no wrong value comes back.
//!
//! ```no_run
//! # struct MyHttpBackend;
//! # impl MyHttpBackend { fn new(_: &cachekit_conformance::FaultTarget) -> cachekit_backend_memory::MemoryBackend { todo!() } }
//! cachekit_conformance::conformance_tests!(
//!     my_http_faults => http_faults(|target| async move { MyHttpBackend::new(&target) }),
//! );
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ctx::faults::{FaultCtx, KEY, MAX_RETRY_AFTER, RESPONSE_CAP, RETRIES, TIMEOUT};
use crate::failure::{preview_option, Answer, CaseResult, Failure, Operation};

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

fn expect_requests(check: &str, expected: usize, got: usize) -> CaseResult {
    if expected == got {
        return Ok(());
    }
    Err(Failure::new(check)
        .expected(format!("{expected} request(s) reach the server"))
        .got(format!("{got} request(s)")))
}

fn expect_kind<T: std::fmt::Debug>(
    check: &str,
    operation: Operation,
    result: Result<T, BackendError>,
    kind: ErrorKind,
) -> CaseResult {
    crate::ctx::expect_error(check, operation, KEY, result, kind)
}

async fn server_answering(
    status: u16,
    template: impl FnOnce(ResponseTemplate) -> ResponseTemplate,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(template(ResponseTemplate::new(status)))
        .mount(&server)
        .await;
    server
}

/// PUT 200/201/204, DELETE 200/204 and HEAD 200 are successes.
pub async fn every_success_status_of_the_api_is_accepted(ctx: FaultCtx) -> CaseResult {
    for (put_status, delete_status) in [(200, 200), (201, 204), (204, 204)] {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(put_status))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(delete_status))
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let backend = ctx.backend_for(&server.uri()).await;
        if let Err(err) = backend.set(KEY, Bytes::from_static(b"v"), None).await {
            return Err(Failure::new(format!("set answered {put_status}"))
                .key(KEY)
                .expected("Ok")
                .got(err.to_string()));
        }
        match backend.delete(KEY).await {
            Ok(true) => {}
            other => {
                return Err(Failure::new(format!("delete answered {delete_status}"))
                    .key(KEY)
                    .expected("Ok(true): the entry existed")
                    .got(format!("{other:?}")))
            }
        }
        match backend.exists(KEY).await {
            Ok(true) => {}
            other => {
                return Err(Failure::new("exists answered HEAD 200")
                    .key(KEY)
                    .expected("Ok(true)")
                    .got(format!("{other:?}")))
            }
        }
    }
    Ok(())
}

/// A 503 followed by a 200 yields the value after one retry.
pub async fn transient_failure_is_retried_then_succeeds(ctx: FaultCtx) -> CaseResult {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"recovered".to_vec()))
        .mount(&server)
        .await;
    let backend = ctx.backend_for(&server.uri()).await;
    match backend.get(KEY).await {
        Ok(Some(value)) if value.as_ref() == b"recovered" => {}
        other => {
            return Err(Failure::new("get after one 503, then 200")
                .key(KEY)
                .expected("Ok(Some(\"recovered\"))")
                .got(format!("{:?}", other.map(|v| preview_option(v.as_deref())))))
        }
    }
    expect_requests("a 503 then a 200", 2, requests(&server).await)
}

/// A persistent 500 on GET is Unavailable after exactly 1 + max_retries requests.
pub async fn status_500_is_unavailable_after_bounded_retries(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(500, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    expect_kind(
        "get answered 500 every time",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Unavailable,
    )?;
    expect_requests(
        "get answered 500 every time",
        1 + RETRIES as usize,
        requests(&server).await,
    )
}

/// A persistent 503 on PUT is Unavailable after exactly 1 + max_retries requests.
pub async fn status_503_on_set_is_unavailable_after_bounded_retries(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(503, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    let result = backend.set(KEY, Bytes::from_static(b"v"), None).await;
    expect_kind(
        "set answered 503 every time",
        Operation::Set,
        result,
        ErrorKind::Unavailable,
    )?;
    expect_requests(
        "set answered 503 every time",
        1 + RETRIES as usize,
        requests(&server).await,
    )
}

/// 429 with Retry-After is Throttled, waits as told between retries, and reports the wait.
pub async fn status_429_is_throttled_and_honours_retry_after(ctx: FaultCtx) -> CaseResult {
    // Exactly the longest wait the backend is told to honour: the boundary is waited for.
    let server = server_answering(429, |t| {
        t.insert_header("Retry-After", MAX_RETRY_AFTER.as_secs().to_string())
    })
    .await;
    let backend = ctx.backend_for(&server.uri()).await;
    let started = tokio::time::Instant::now();
    let result = backend.get(KEY).await;
    let waited = started.elapsed();
    let check = "get answered 429 with Retry-After: 1 every time";
    expect_throttled_for(check, result, MAX_RETRY_AFTER)?;
    expect_requests(check, 1 + RETRIES as usize, requests(&server).await)?;
    // A lower bound only: waiting at least as long as told is the rule.
    let told = MAX_RETRY_AFTER * RETRIES;
    if waited < told {
        return Err(Failure::new(check)
            .expected(format!(
                "at least {told:?} spent waiting as Retry-After said"
            ))
            .got(format!("{waited:?}")));
    }
    Ok(())
}

/// A 429 asking for a wait longer than any call should block (2 h) is Throttled at once,
/// after one request, and reports the whole wait, so the caller can schedule its retry.
pub async fn a_retry_after_too_long_to_wait_is_reported_not_waited(ctx: FaultCtx) -> CaseResult {
    const TWO_HOURS: Duration = Duration::from_secs(2 * 60 * 60);
    let server = server_answering(429, |t| {
        t.insert_header("Retry-After", TWO_HOURS.as_secs().to_string())
    })
    .await;
    let backend = ctx.backend_for(&server.uri()).await;
    let check = "get answered 429 with Retry-After: 7200";
    expect_throttled_for(check, backend.get(KEY).await, TWO_HOURS)?;
    expect_requests(check, 1, requests(&server).await)
}

/// A get's `result` must be a Throttled error that reports `wait` as its `retry_after()`.
fn expect_throttled_for<T: std::fmt::Debug>(
    check: &str,
    result: Result<T, BackendError>,
    wait: Duration,
) -> CaseResult {
    if let Err(err) = &result {
        if err.kind() == ErrorKind::Throttled && err.retry_after() != Some(wait) {
            return Err(Failure::new(check)
                .operation(Operation::Get)
                .expected(format!(
                    "a Throttled error whose retry_after() is Some({wait:?})"
                ))
                .got(format!("retry_after() = {:?}", err.retry_after())));
        }
    }
    expect_kind(check, Operation::Get, result, ErrorKind::Throttled)
}

/// 401 is Auth after one request.
pub async fn status_401_is_auth_and_not_retried(ctx: FaultCtx) -> CaseResult {
    not_retried(ctx, 401, ErrorKind::Auth).await
}

/// 403 is Auth after one request.
pub async fn status_403_is_auth_and_not_retried(ctx: FaultCtx) -> CaseResult {
    not_retried(ctx, 403, ErrorKind::Auth).await
}

async fn not_retried(ctx: FaultCtx, status: u16, kind: ErrorKind) -> CaseResult {
    let server = server_answering(status, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    let check = format!("get answered {status}");
    expect_kind(&check, Operation::Get, backend.get(KEY).await, kind)?;
    expect_requests(&check, 1, requests(&server).await)
}

/// A 504 from a gateway is Timeout: the store may still answer, later.
pub async fn status_504_is_timeout(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(504, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    expect_kind(
        "get answered 504 every time",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Timeout,
    )
}

/// A 400 whose body names the key or the value as the problem keeps that kind; any other
/// 400 is InvalidArgument.
pub async fn status_400_keeps_the_kind_its_body_names(ctx: FaultCtx) -> CaseResult {
    // A server may explain itself at length: a message of 2 KiB still leaves the kind.
    let long_message = "refused: ".repeat(2 * 1024 / 9);
    for (named, kind, message) in [
        ("invalid_key", ErrorKind::InvalidKey, "refused"),
        ("value_too_large", ErrorKind::ValueTooLarge, "refused"),
        ("invalid_argument", ErrorKind::InvalidArgument, "refused"),
        ("unavailable", ErrorKind::InvalidArgument, "refused"),
        ("no_such_kind", ErrorKind::InvalidArgument, "refused"),
        ("invalid_key", ErrorKind::InvalidKey, long_message.as_str()),
    ] {
        let body = format!(r#"{{"error":"{message}","kind":"{named}"}}"#);
        let server = server_answering(400, |t| {
            t.set_body_raw(body.into_bytes(), "application/json")
        })
        .await;
        let backend = ctx.backend_for(&server.uri()).await;
        let check = format!(
            "get answered 400 with kind {named:?} and a {}-byte message",
            message.len()
        );
        expect_kind(&check, Operation::Get, backend.get(KEY).await, kind)?;
        expect_requests(&check, 1, requests(&server).await)?;
    }
    Ok(())
}

/// 413 on PUT is ValueTooLarge after one request.
pub async fn status_413_is_value_too_large_and_not_retried(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(413, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    let result = backend.set(KEY, Bytes::from_static(b"v"), None).await;
    expect_kind(
        "set answered 413",
        Operation::Set,
        result,
        ErrorKind::ValueTooLarge,
    )?;
    expect_requests("set answered 413", 1, requests(&server).await)
}

/// A 500 on DELETE is Unavailable after one request.
pub async fn delete_is_not_retried_after_a_server_error(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(500, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    expect_kind(
        "delete answered 500",
        Operation::Delete,
        backend.delete(KEY).await,
        ErrorKind::Unavailable,
    )?;
    expect_requests("delete answered 500", 1, requests(&server).await)
}

/// An answer slower than the timeout is Timeout, after bounded retries.
pub async fn slow_response_is_timeout(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(200, |t| {
        t.set_body_bytes(b"late".to_vec()).set_delay(TIMEOUT * 4)
    })
    .await;
    let backend = ctx.backend_for(&server.uri()).await;
    let check = format!(
        "get answered after {:?} with a {TIMEOUT:?} timeout",
        TIMEOUT * 4
    );
    expect_kind(
        &check,
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Timeout,
    )?;
    let got = requests(&server).await;
    if (1..=1 + RETRIES as usize).contains(&got) {
        return Ok(());
    }
    Err(Failure::new(check)
        .expected(format!("between 1 and {} requests", 1 + RETRIES))
        .got(format!("{got} requests")))
}

/// A status outside the API (418, 302) is Protocol, not a value and not a miss.
pub async fn unexpected_status_is_protocol(ctx: FaultCtx) -> CaseResult {
    for status in [418, 302] {
        let server = server_answering(status, |t| {
            t.insert_header("Location", "http://127.0.0.1:9/elsewhere")
                .set_body_bytes(b"odd".to_vec())
        })
        .await;
        let backend = ctx.backend_for(&server.uri()).await;
        let check = format!("get answered {status}");
        expect_kind(
            &check,
            Operation::Get,
            backend.get(KEY).await,
            ErrorKind::Protocol,
        )?;
        expect_requests(&check, 1, requests(&server).await)?;
    }
    Ok(())
}

/// An error status with a non-JSON, binary body is still classified by its status.
pub async fn error_status_with_garbage_body_is_still_classified(ctx: FaultCtx) -> CaseResult {
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(700).collect();
    for (status, kind) in [
        (400, ErrorKind::InvalidArgument),
        (401, ErrorKind::Auth),
        (413, ErrorKind::ValueTooLarge),
    ] {
        let server = server_answering(status, |t| t.set_body_bytes(garbage.clone())).await;
        let backend = ctx.backend_for(&server.uri()).await;
        let result = backend.set(KEY, Bytes::from_static(b"v"), None).await;
        expect_kind(
            &format!("set answered {status} with a binary body"),
            Operation::Set,
            result,
            kind,
        )?;
    }
    Ok(())
}

/// A body cut short of its Content-Length is Protocol, never a truncated value.
pub async fn body_shorter_than_content_length_is_protocol(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly-part-of-it",
    )
    .await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    expect_kind(
        "get of a body 15 of 100 declared bytes long",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Protocol,
    )
}

/// Bytes that are not HTTP are Protocol.
pub async fn garbage_instead_of_http_is_protocol(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::start(b"\x00\xffNOT HTTP AT ALL\r\n\r\n").await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    expect_kind(
        "get answered with non-HTTP bytes",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Protocol,
    )
}

/// A body over the response cap is Protocol, never truncated.
pub async fn response_over_the_cap_is_protocol(ctx: FaultCtx) -> CaseResult {
    // The cap is inclusive: a body of exactly the cap is a value.
    let at_cap: Vec<u8> = (0..RESPONSE_CAP).map(|n| (n % 251) as u8).collect();
    let server = server_answering(200, |t| t.set_body_bytes(at_cap.clone())).await;
    let backend = ctx.backend_for(&server.uri()).await;
    match backend.get(KEY).await {
        Ok(Some(value)) if value[..] == at_cap[..] => {}
        other => {
            return Err(Failure::new(format!(
                "get answered exactly {RESPONSE_CAP} bytes with a cap of {RESPONSE_CAP}"
            ))
            .operation(Operation::Get)
            .key(KEY)
            .expected(Answer::Value(Some(Bytes::from(at_cap))))
            .got(match other {
                Ok(value) => Answer::Value(value),
                Err(err) => Answer::Error {
                    kind: err.kind(),
                    message: err.to_string(),
                },
            }));
        }
    }
    let oversized = vec![b'x'; RESPONSE_CAP + 1];
    let server = server_answering(200, |t| t.set_body_bytes(oversized)).await;
    let backend = ctx.backend_for(&server.uri()).await;
    let check = format!(
        "get answered {} bytes with a cap of {RESPONSE_CAP}",
        RESPONSE_CAP + 1
    );
    expect_kind(
        &check,
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Protocol,
    )
}

/// Connection refused is Unavailable, and health_check says unhealthy.
pub async fn unreachable_service_is_unavailable_and_unhealthy(ctx: FaultCtx) -> CaseResult {
    let base_url = closed_port_url().await?;
    let backend = ctx.backend_for(&base_url).await;
    expect_kind(
        "get of a service that refuses connections",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Unavailable,
    )?;
    let report = backend.health_check().await;
    if report.healthy {
        return Err(
            Failure::new("health_check of a service that refuses connections")
                .expected("healthy: false")
                .got(format!("healthy: true, details: {:?}", report.details)),
        );
    }
    Ok(())
}

/// A health answer is healthy only with a success status and a body that does not say
/// otherwise.
pub async fn health_needs_a_success_status_and_a_body_that_agrees(ctx: FaultCtx) -> CaseResult {
    let chatty_health = format!(
        r#"{{"healthy":true,"details":{{"note":"{}"}}}}"#,
        "all good ".repeat(8 * 1024 / 9)
    );
    for (status, body, healthy) in [
        (200, r#"{"healthy":true}"#, true),
        (200, r#"{"healthy":false}"#, false),
        (200, r#"{"healthy":"false"}"#, false),
        (200, r#"{"healthy":"true"}"#, true),
        (503, r#"{"healthy":true}"#, false),
        (500, "", false),
        // A chatty but healthy service: 8 KiB of details is still an answer to read.
        (200, chatty_health.as_str(), true),
    ] {
        let server = server_answering(status, |t| {
            t.set_body_raw(body.as_bytes().to_vec(), "application/json")
        })
        .await;
        let backend = ctx.backend_for(&server.uri()).await;
        let report = backend.health_check().await;
        if report.healthy != healthy {
            return Err(Failure::new(format!(
                "health_check answered {status} with {}",
                crate::failure::preview_bytes(body.as_bytes())
            ))
            .operation(Operation::HealthCheck)
            .expected(format!("healthy: {healthy}"))
            .got(format!(
                "healthy: {}, details: {:?}",
                report.healthy, report.details
            )));
        }
    }
    Ok(())
}

/// A service that never answers is unhealthy within the timeout.
pub async fn hanging_service_is_unhealthy_within_the_timeout(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::start_silent().await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    // Generous upper bound: the rule is "bounded by the timeout", not a latency target.
    let bound = TIMEOUT * 2 + Duration::from_secs(1);
    let check =
        format!("health_check of a service that accepts but never answers ({TIMEOUT:?} timeout)");
    let Ok(report) = tokio::time::timeout(bound, backend.health_check()).await else {
        return Err(Failure::new(check)
            .expected(format!("an unhealthy report within {bound:?}"))
            .got("health_check still waiting"));
    };
    if !report.healthy && report.latency <= bound {
        return Ok(());
    }
    Err(Failure::new(check)
        .expected(format!("healthy: false, reported within {bound:?}"))
        .got(format!(
            "healthy: {}, latency {:?}",
            report.healthy, report.latency
        )))
}

/// A GET whose first attempt times out is retried, and the retry's answer is returned.
pub async fn a_get_that_times_out_once_is_retried_then_succeeds(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::scripted(&[
        Reply::Silent,
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nvalue"),
    ])
    .await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    let got = backend.get(KEY).await;
    match &got {
        Ok(Some(value)) if value.as_ref() == b"value" => {}
        _ => {
            return Err(Failure::new(format!(
                "get whose first attempt gets no answer within {TIMEOUT:?}"
            ))
            .operation(Operation::Get)
            .key(KEY)
            .expected(Some(Bytes::from_static(b"value")))
            .got(match got {
                Ok(value) => Answer::Value(value),
                Err(err) => Answer::Error {
                    kind: err.kind(),
                    message: err.message().to_owned(),
                },
            }));
        }
    }
    expect_requests("requests for a get retried once", 2, raw.accepted())
}

/// A DELETE that times out is Timeout after one request: it may have been applied, and a
/// retry would answer "did not exist" for an entry that did.
pub async fn a_delete_that_times_out_is_not_retried(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::start_silent().await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    expect_kind(
        "delete to a service that accepts but never answers",
        Operation::Delete,
        backend.delete(KEY).await,
        ErrorKind::Timeout,
    )?;
    expect_requests("requests for a delete that timed out", 1, raw.accepted())
}

/// A PUT that times out is Timeout after one request: the first attempt may still land,
/// after a newer write from another client, if a retry "succeeds" first.
pub async fn a_set_that_times_out_is_not_retried(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::start_silent().await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    expect_kind(
        "set to a service that accepts but never answers",
        Operation::Set,
        backend.set(KEY, Bytes::from_static(b"v"), None).await,
        ErrorKind::Timeout,
    )?;
    expect_requests("requests for a set that timed out", 1, raw.accepted())
}

/// A 500 on PUT is Unavailable after one request: the server may have stored the value
/// before it failed, and a retry racing other writers could reorder them.
pub async fn set_is_not_retried_after_a_server_error(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(500, |t| t).await;
    let backend = ctx.backend_for(&server.uri()).await;
    expect_kind(
        "set answered 500",
        Operation::Set,
        backend.set(KEY, Bytes::from_static(b"v"), None).await,
        ErrorKind::Unavailable,
    )?;
    expect_requests("set answered 500", 1, requests(&server).await)
}

/// A connection reset or closed after the request was sent, before any answer, is
/// Unavailable: the service went away. It is not Protocol (nothing malformed arrived) and,
/// for a PUT, not retried (the write may have happened).
pub async fn a_connection_lost_before_the_answer_is_unavailable(ctx: FaultCtx) -> CaseResult {
    for (how, reply) in [
        ("reset", Reply::ResetAfter(b"")),
        ("closed", Reply::Bytes(b"")),
    ] {
        let raw = RawServer::scripted(&[reply]).await?;
        let backend = ctx.backend_for(&raw.base_url).await;
        let check = format!("set whose connection was {how} before an answer");
        expect_kind(
            &check,
            Operation::Set,
            backend.set(KEY, Bytes::from_static(b"v"), None).await,
            ErrorKind::Unavailable,
        )?;
        expect_requests(&check, 1, raw.accepted())?;
    }
    Ok(())
}

/// A connection reset in the middle of a value's body is Unavailable: the service went
/// away mid-answer. Never the part that arrived as the value, and not Protocol (nothing
/// malformed arrived).
pub async fn a_reset_inside_a_body_is_unavailable(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::scripted(&[Reply::ResetAfter(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part-of-it",
    )])
    .await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    expect_kind(
        "get whose body was reset after 15 of 100 bytes",
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Unavailable,
    )
}

/// A `Retry-After` that is an HTTP-date in the past asks for no wait: the 429 is retried
/// (after the client's own backoff, or at once), never taken as "wait forever".
pub async fn a_retry_after_date_in_the_past_is_no_reason_to_give_up(ctx: FaultCtx) -> CaseResult {
    let server = server_answering(429, |t| {
        t.insert_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")
    })
    .await;
    let backend = ctx.backend_for(&server.uri()).await;
    let check = "get answered 429 with a Retry-After date in 2015";
    expect_kind(
        check,
        Operation::Get,
        backend.get(KEY).await,
        ErrorKind::Throttled,
    )?;
    expect_requests(check, 1 + RETRIES as usize, requests(&server).await)
}

async fn closed_port_url() -> Result<String, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|err| Failure::new("bind a loopback port").got(err.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|err| Failure::new("read the bound port").got(err.to_string()))?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

/// How long a silent connection is held: past every bound a case allows (at most
/// `TIMEOUT * 2 + 1 s`), so a client without a timeout is still seen to hang, but not so long
/// that it stalls a run.
const SILENCE: Duration = Duration::from_secs(5);

/// How a [`RawServer`] answers one connection.
#[derive(Clone, Copy)]
enum Reply {
    /// These bytes, then the connection closes.
    Bytes(&'static [u8]),
    /// Not a word, for [`SILENCE`].
    Silent,
    /// The request is read, these bytes are sent, then the connection is reset (RST).
    ResetAfter(&'static [u8]),
}

/// A loopback TCP server that answers each connection with a scripted [`Reply`]: the n-th
/// connection gets the n-th reply, and every later one the last.
struct RawServer {
    base_url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    async fn start(answer: &'static [u8]) -> Result<Self, Failure> {
        Self::scripted(&[Reply::Bytes(answer)]).await
    }

    async fn start_silent() -> Result<Self, Failure> {
        Self::scripted(&[Reply::Silent]).await
    }

    async fn scripted(replies: &[Reply]) -> Result<Self, Failure> {
        let replies = replies.to_vec();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|err| Failure::new("bind a loopback port").got(err.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|err| Failure::new("read the bound port").got(err.to_string()))?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let index = counter.fetch_add(1, Ordering::Relaxed);
                let reply = replies
                    .get(index)
                    .or(replies.last())
                    .copied()
                    .unwrap_or(Reply::Silent);
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    match reply {
                        Reply::Bytes(bytes) => {
                            let _ = socket.write_all(bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        // Hold the connection open without a word for longer than any
                        // bound a fault case allows, then let it go.
                        Reply::Silent => tokio::time::sleep(SILENCE).await,
                        Reply::ResetAfter(bytes) => {
                            let _ = socket.write_all(bytes).await;
                            // Let the bytes leave before the reset discards the send queue.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let _ = socket.set_zero_linger();
                            drop(socket);
                        }
                    }
                });
            }
        });
        Ok(RawServer {
            base_url: format!("http://{addr}"),
            accepted,
            task,
        })
    }

    /// Connections accepted so far: one per request the backend sent.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
