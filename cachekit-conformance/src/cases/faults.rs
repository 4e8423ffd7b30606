//! Fault conformance for backends that speak the cachekit HTTP API.
//!
//! Each case starts its own fault-injecting server on 127.0.0.1 (wiremock, or a raw TCP
//! responder for answers wiremock cannot produce, like a body cut short), asks the suite's
//! factory for a backend pointed at it with the retry settings and body and detail caps in
//! [`FaultTarget`], and checks the error kind, the number of requests (retries), that every
//! cap holds at both sides of its boundary, and that no wrong value comes back.
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

use cachekit_core::{Backend, BackendError, Bytes, ErrorKind, HealthReport, FIELDS_ELIDED_DETAIL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ctx::faults::{
    FaultCtx, ERROR_BODY_CAP, HEALTH_BODY_CAP, HEALTH_DETAILS_CAP, KEY, MAX_RETRY_AFTER,
    RESPONSE_CAP, RETRIES, TIMEOUT,
};
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
        let report = health_answered(&ctx, status, body, "application/json").await;
        if report.healthy != healthy {
            return Err(health_failure(
                status,
                body,
                format!("healthy: {healthy}"),
                &report,
            ));
        }
    }
    Ok(())
}

/// The report of a backend whose `/health` (like every path) answers `status` with `body`.
async fn health_answered(
    ctx: &FaultCtx,
    status: u16,
    body: &str,
    content_type: &str,
) -> HealthReport {
    let server = server_answering(status, |t| {
        t.set_body_raw(body.as_bytes().to_vec(), content_type)
    })
    .await;
    let backend = ctx.backend_for(&server.uri()).await;
    backend.health_check().await
}

fn health_failure(status: u16, body: &str, expected: String, report: &HealthReport) -> Failure {
    Failure::new(format!(
        "health_check answered {status} with {}",
        crate::failure::preview_bytes(body.as_bytes())
    ))
    .operation(Operation::HealthCheck)
    .expected(expected)
    .got(format!(
        "healthy: {}, details: {:?}",
        report.healthy, report.details
    ))
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

/// An unhealthy answer's reason, plain text or a JSON field, reaches the report's details:
/// whoever reads the report learns why, not only that.
pub async fn an_unhealthy_answer_keeps_its_reason(ctx: FaultCtx) -> CaseResult {
    const REASON: &str = "down for maintenance";
    for (status, body, content_type) in [
        (503, REASON.to_owned(), "text/plain"),
        (
            200,
            format!(r#"{{"healthy":false,"error":"{REASON}"}}"#),
            "application/json",
        ),
    ] {
        let report = health_answered(&ctx, status, &body, content_type).await;
        let told = report.details.values().any(|value| value.contains(REASON));
        if report.healthy || !told {
            return Err(health_failure(
                status,
                &body,
                format!("healthy: false, with {REASON:?} in a detail"),
                &report,
            ));
        }
    }
    Ok(())
}

/// An error body of exactly the cap, arriving in pieces, is read whole, so the kind it names
/// counts.
pub async fn an_error_body_of_exactly_the_cap_keeps_its_kind(ctx: FaultCtx) -> CaseResult {
    for framing in [Framing::ContentLength, Framing::Chunked] {
        // One byte over, the body is cut and no longer JSON: the status alone decides, which
        // is also how a backend that ignores the cap it was given is seen.
        for (len, kind) in [
            (ERROR_BODY_CAP, ErrorKind::InvalidKey),
            (ERROR_BODY_CAP + 1, ErrorKind::InvalidArgument),
        ] {
            let body = padded_json(r#"{"kind":"invalid_key","error":""#, r#""}"#, len);
            let raw =
                RawServer::scripted(&[answer_in_pieces("400 Bad Request", &body, framing)]).await?;
            let backend = ctx.backend_for(&raw.base_url).await;
            let check = format!(
                "get answered 400 with a {len}-byte body naming invalid_key, {framing}, with an \
                 error-body cap of {ERROR_BODY_CAP}"
            );
            expect_kind(&check, Operation::Get, backend.get(KEY).await, kind)?;
        }
    }
    Ok(())
}

/// An error answer whose body never ends is classified by its status, promptly: the body is
/// cut at the cap, not read to its end.
pub async fn an_endless_error_body_is_cut_and_the_status_decides(ctx: FaultCtx) -> CaseResult {
    let raw = RawServer::scripted(&[Reply::Endless(
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    )])
    .await?;
    let backend = ctx.backend_for(&raw.base_url).await;
    let check = format!(
        "get answered 400 with a body that never ends: it must be cut at the {ERROR_BODY_CAP}-byte \
         error-body cap, not read to its end"
    );
    let bound = TIMEOUT * 2 + Duration::from_secs(1);
    let Ok(result) = tokio::time::timeout(bound, backend.get(KEY)).await else {
        return Err(Failure::new(check)
            .operation(Operation::Get)
            .key(KEY)
            .expected(format!("an answer within {bound:?}"))
            .got("get still waiting"));
    };
    // A client that reads the body to its end runs into its timeout instead: Timeout.
    expect_kind(&check, Operation::Get, result, ErrorKind::InvalidArgument)
}

/// A health answer of exactly the cap, arriving in pieces, is read whole; one byte over,
/// it is not read whole, so it is not healthy.
pub async fn a_health_answer_of_exactly_the_cap_is_read_whole(ctx: FaultCtx) -> CaseResult {
    for framing in [Framing::ContentLength, Framing::Chunked] {
        for (len, healthy) in [(HEALTH_BODY_CAP, true), (HEALTH_BODY_CAP + 1, false)] {
            let body = padded_json(r#"{"healthy":true,"pad":""#, r#""}"#, len);
            let raw = RawServer::scripted(&[answer_in_pieces("200 OK", &body, framing)]).await?;
            let backend = ctx.backend_for(&raw.base_url).await;
            let report = backend.health_check().await;
            if report.healthy != healthy {
                return Err(Failure::new(format!(
                    "health_check answered 200 with {{\"healthy\":true}} in {len} bytes, \
                     {framing}, with a health-body cap of {HEALTH_BODY_CAP}"
                ))
                .operation(Operation::HealthCheck)
                .expected(format!("healthy: {healthy}"))
                .got(format!(
                    "healthy: {}, details: {:?}",
                    report.healthy, report.details
                )));
            }
        }
    }
    Ok(())
}

/// A health answer with more fields than the report keeps is cut to the cap and the number
/// left out is counted; one with no more than the cap keeps every field and counts nothing.
pub async fn health_details_are_capped_and_the_cut_is_counted(ctx: FaultCtx) -> CaseResult {
    // `healthy` counts among the answer's fields; a backend may keep it in the report's
    // `healthy` alone, so only the other fields are looked for in the details.
    for fields in [
        HEALTH_DETAILS_CAP,
        HEALTH_DETAILS_CAP + 1,
        5 * HEALTH_DETAILS_CAP,
    ] {
        let names: Vec<String> = (1..fields).map(|n| format!("field{n:03}")).collect();
        let body = format!(
            r#"{{"healthy":true,{}}}"#,
            names
                .iter()
                .map(|name| format!(r#""{name}":1"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let raw = RawServer::scripted(&[answer_in_pieces(
            "200 OK",
            body.as_bytes(),
            Framing::ContentLength,
        )])
        .await?;
        let backend = ctx.backend_for(&raw.base_url).await;
        let report = backend.health_check().await;
        let kept = names
            .iter()
            .filter(|name| report.details.contains_key(name.as_str()))
            .count();
        let counted = report.details.get(FIELDS_ELIDED_DETAIL);
        let elided = counted.and_then(|count| count.parse::<usize>().ok());
        let consistent = match counted {
            // Counted only when something was left out, and then exactly.
            None => kept == names.len(),
            Some(_) => elided.is_some_and(|elided| elided > 0 && kept + elided == names.len()),
        };
        let within_cap = kept <= HEALTH_DETAILS_CAP;
        let all_kept_when_they_fit = fields > HEALTH_DETAILS_CAP || kept == names.len();
        if !report.healthy || !consistent || !within_cap || !all_kept_when_they_fit {
            return Err(Failure::new(format!(
                "health_check answered 200 with `healthy` and {} other fields, with a cap of \
                 {HEALTH_DETAILS_CAP} details",
                names.len()
            ))
            .operation(Operation::HealthCheck)
            .expected(format!(
                "healthy; {} of the other fields kept under their names; {FIELDS_ELIDED_DETAIL:?} \
                 absent when all are kept, else the exact number left out",
                if fields > HEALTH_DETAILS_CAP {
                    format!("at most {HEALTH_DETAILS_CAP}")
                } else {
                    "all".to_owned()
                }
            ))
            .got(format!(
                "healthy: {}, {kept} kept, {FIELDS_ELIDED_DETAIL:?}: {counted:?}, details: {:?}",
                report.healthy,
                report.details.keys().collect::<Vec<_>>()
            )));
        }
    }
    Ok(())
}

/// How a raw answer frames its body.
#[derive(Debug, Clone, Copy)]
enum Framing {
    ContentLength,
    Chunked,
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Framing::ContentLength => "framed by Content-Length",
            Framing::Chunked => "chunked",
        })
    }
}

/// `{prefix}xxx…{suffix}`, exactly `len` bytes long.
fn padded_json(prefix: &str, suffix: &str, len: usize) -> Vec<u8> {
    assert!(
        len >= prefix.len() + suffix.len(),
        "{len} bytes cannot hold the JSON shell"
    );
    let padding = len - prefix.len() - suffix.len();
    format!("{prefix}{}{suffix}", "x".repeat(padding)).into_bytes()
}

fn chunk_frame(bytes: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat()
}

/// A JSON answer sent in three pieces: the head, the body's first byte, and the rest; a
/// client that counts against its cap per piece, or only per read, is seen at the boundary.
fn answer_in_pieces(status_line: &str, body: &[u8], framing: Framing) -> Reply {
    assert!(body.len() >= 2, "a body in pieces needs two bytes at least");
    let (first, rest) = body.split_at(1);
    let pieces = match framing {
        Framing::ContentLength => vec![
            format!(
                "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            first.to_vec(),
            rest.to_vec(),
        ],
        Framing::Chunked => vec![
            format!(
                "HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            chunk_frame(first),
            [chunk_frame(rest), b"0\r\n\r\n".to_vec()].concat(),
        ],
    };
    Reply::Pieces(pieces.into())
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

/// Most body bytes an endless answer sends before it falls silent: far past every cap a
/// case sets, yet a bound, so a client that reads on cannot keep the server writing.
const ENDLESS_BYTES: usize = 64 * 1024 * 1024;

/// The pause between the pieces of a [`Reply::Pieces`]: long enough for each to arrive in
/// its own read.
const PIECE_PAUSE: Duration = Duration::from_millis(20);

/// How a [`RawServer`] answers one connection.
#[derive(Clone)]
enum Reply {
    /// These bytes, then the connection closes.
    Bytes(&'static [u8]),
    /// These pieces, each written after a pause, then the connection closes.
    Pieces(Arc<[Vec<u8>]>),
    /// This head of a chunked response, then chunks of `e` without end (up to
    /// [`ENDLESS_BYTES`]), for as long as the client reads them.
    Endless(&'static [u8]),
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
                    .cloned()
                    .unwrap_or(Reply::Silent);
                tokio::spawn(async move {
                    read_request(&mut socket).await;
                    match reply {
                        Reply::Bytes(bytes) => {
                            let _ = socket.write_all(bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        Reply::Pieces(pieces) => {
                            for piece in pieces.iter() {
                                tokio::time::sleep(PIECE_PAUSE).await;
                                if socket.write_all(piece).await.is_err() {
                                    return;
                                }
                            }
                            let _ = socket.shutdown().await;
                        }
                        Reply::Endless(head) => {
                            let frame = chunk_frame(&[b'e'; 8 * 1024]);
                            if socket.write_all(head).await.is_err() {
                                return;
                            }
                            // Bounded in bytes and in time, for a client that stops
                            // reading without closing.
                            let _ = tokio::time::timeout(SILENCE, async {
                                let mut sent = 0;
                                while sent < ENDLESS_BYTES {
                                    // A client that stopped reading closes its end, and
                                    // the write fails.
                                    if socket.write_all(&frame).await.is_err() {
                                        return;
                                    }
                                    sent += frame.len();
                                }
                                tokio::time::sleep(SILENCE).await;
                            })
                            .await;
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

/// Most bytes of a request a [`RawServer`] reads: far more than any backend sends here.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Reads one request, head and `Content-Length` body, so that closing the connection later
/// does not reset it over unread bytes (a reset can discard the answer's tail in flight).
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut needed = None;
    while request.len() < MAX_REQUEST_BYTES && needed.is_none_or(|needed| request.len() < needed) {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
        if needed.is_none() {
            if let Some(head_end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let body = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|len| len.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                needed = Some(head_end + 4 + body);
            }
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
