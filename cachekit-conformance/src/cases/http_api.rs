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
use tokio::time::Instant;

use crate::ctx::api::{
    describe, expect_body, expect_client_error, expect_status, preview, trickle_until_closed,
    wait_for_close, ApiCtx, KeptAlive, RawResponse, EXCHANGE_TIMEOUT,
};
use crate::ctx::wait_out_staleness;
use crate::failure::{CaseResult, Failure, Operation};
use cachekit_core::{ErrorKind, ERROR_KIND_HEADER};

/// PUT then GET returns the body exactly, binary bytes included.
pub async fn put_then_get_returns_the_body_exactly(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n\0end").collect();
    let put = ctx.put(&key, "", &body).await?;
    expect_status("PUT of a new key", &key, "PUT", &put, &[200, 201, 204])?;
    ctx.expect_value("GET after PUT", &key, &body).await?;
    // The body is bytes whatever its Content-Type says: a front end that parses JSON bodies
    // stores them re-serialised, and a framework that reads form bodies as parameters
    // leaves an empty value.
    let typed: [(&str, &str, &[u8]); 4] = [
        ("json", "application/json", br#"{"a": 1,  "b": [1, 2.50]}"#),
        ("form", "application/x-www-form-urlencoded", b"a=1&b=2+c%20"),
        (
            "multipart",
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n",
        ),
        (
            "text",
            "text/plain; charset=utf-8",
            "caf\u{e9}  ".as_bytes(),
        ),
    ];
    for (name, content_type, body) in typed {
        let typed_key = ctx.key(name);
        let headers = format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        let target = ctx.path(&format!("/cache/{typed_key}"));
        let put = ctx.send("PUT", &target, &headers, body).await?;
        let check = format!("PUT of a body sent as {content_type}");
        expect_status(&check, &typed_key, "PUT", &put, &[200, 201, 204])?;
        ctx.expect_value(&format!("GET after a {check}"), &typed_key, body)
            .await?;
    }
    Ok(())
}

/// A GET answers from what the store holds now: after a PUT or a DELETE, a GET of the
/// key, however it is spelled, sees it at once (a front end that caches answers — `404`s
/// included, or only under the exact target that was written — serves the old one).
///
/// A service that declares eventual consistency is read once its declared staleness has
/// passed after each write.
pub async fn a_get_sees_the_last_write_at_once(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let head = |check: &'static str, status: u16| {
        let (ctx, key) = (&ctx, &key);
        async move { expect_status(check, key, "HEAD", &ctx.head(key).await?, &[status]) }
    };
    ctx.expect_missing("GET of a key never stored", &key)
        .await?;
    head("HEAD of a key never stored", 404).await?;
    ctx.put(&key, "", b"one").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    head(
        "HEAD right after the first PUT (the HEAD before it was 404)",
        200,
    )
    .await?;
    ctx.expect_value(
        "GET right after the first PUT (the GET before it was 404)",
        &key,
        b"one",
    )
    .await?;
    ctx.put(&key, "", b"two").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value("GET right after an overwrite", &key, b"two")
        .await?;
    ctx.delete(&key).await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_missing("GET right after DELETE", &key).await?;
    head("HEAD right after DELETE (the HEAD before it was 200)", 404).await?;
    // An empty query, or a parameter other than `ttl`, is not part of the key either: the
    // service stores under the key itself, or refuses the request.
    for (i, query) in ["?", "?v=2"].iter().enumerate() {
        let value = format!("query {i}");
        let put = ctx.put(&key, query, value.as_bytes()).await?;
        wait_out_staleness(ctx.declared.consistency).await;
        let check = format!("GET without the query right after a PUT with {query:?}");
        if (200..300).contains(&put.status) {
            ctx.expect_value(&check, &key, value.as_bytes()).await?;
        } else {
            expect_client_error(&format!("PUT with {query:?}"), &key, "PUT", &put)?;
        }
    }
    // One key spelled two ways: `%2F` and `%2f` are the same escape.
    let base = ctx.key("dir");
    let upper = format!("{base}%2Ffile");
    let lower = format!("{base}%2ffile");
    ctx.put(&upper, "", b"one").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value("GET of a key written as %2F, spelled %2f", &lower, b"one")
        .await?;
    ctx.put(&upper, "", b"two").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value(
        "GET spelled %2f right after an overwrite spelled %2F",
        &lower,
        b"two",
    )
    .await?;
    // A query is not part of the key.
    let Some(ttl) = ctx.declared.ttl else {
        return Ok(());
    };
    let query = format!("?ttl={}", ttl.max.as_secs().clamp(1, 3600));
    ctx.put(&key, &query, b"three").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value(
        &format!("GET of a key written with {query}, without the query"),
        &key,
        b"three",
    )
    .await?;
    ctx.put(&key, &query, b"four").await?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value(
        &format!("GET without the query right after an overwrite with {query}"),
        &key,
        b"four",
    )
    .await
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
        let head = ctx.head(&raw_key).await?;
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

/// A target in absolute form (`PUT http://host/cache/{key}`), which RFC 9112 requires a
/// server to accept, names the same entry as the usual origin form, for every method: a
/// front end that routes on the raw target string finds no route for it. (A service that
/// declares eventual consistency is read once its declared staleness has passed.)
pub async fn an_absolute_form_target_names_the_same_key(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("absolute");
    let absolute = format!(
        "http://{}{}",
        ctx.target.authority,
        ctx.path(&format!("/cache/{key}"))
    );
    let body = b"stored through an absolute-form target";
    let headers = format!("Content-Length: {}\r\n", body.len());
    let put = ctx.send("PUT", &absolute, &headers, body).await?;
    expect_status(
        "PUT to an absolute-form target",
        &key,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_value(
        "GET (origin form) after a PUT to an absolute-form target",
        &key,
        body,
    )
    .await?;
    let get = ctx.send("GET", &absolute, "", b"").await?;
    expect_body("GET of an absolute-form target", &key, &get, body)?;
    let head = ctx.send("HEAD", &absolute, "", b"").await?;
    expect_status(
        "HEAD of an absolute-form target",
        &key,
        "HEAD",
        &head,
        &[200],
    )?;
    let delete = ctx.send("DELETE", &absolute, "", b"").await?;
    expect_status(
        "DELETE of an absolute-form target",
        &key,
        "DELETE",
        &delete,
        &[200, 204],
    )?;
    wait_out_staleness(ctx.declared.consistency).await;
    ctx.expect_missing(
        "GET (origin form) after a DELETE of an absolute-form target",
        &key,
    )
    .await
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
    // A trailing slash and a doubled one are literal slashes too: a framework that matches
    // `/cache/k/` as `/cache/k`, or a proxy that merges `//`, must not store under `k`. A
    // redirect to the cleaned path stores nothing, so only a success is wrong.
    for raw in [format!("{base}/"), format!("/{base}")] {
        let put = ctx.put(&raw, "", b"v").await?;
        if (200..300).contains(&put.status) {
            return Err(Failure::new(format!("PUT of /cache/{raw}"))
                .key(&raw)
                .expected("a refusal or a redirect: a `/` is never part of a key")
                .got(describe(&put)));
        }
    }
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
        .await?;
    // Letters keep their case: a front end that lower-cases the path makes two keys one.
    let mixed = format!("{base}MiXeD");
    let put = ctx.put(&mixed, "", b"mixed").await?;
    expect_status(
        "PUT of a key in mixed case",
        &mixed,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    ctx.expect_value(
        "GET of the same letters in the same case",
        &format!("{base}MiXeD"),
        b"mixed",
    )
    .await?;
    ctx.expect_missing(
        "GET of the same letters in lower case",
        &format!("{base}mixed"),
    )
    .await?;
    // An escape that is not UTF-8 is never replaced by U+FFFD: whether the service refuses
    // it or keeps the byte, the key U+FFFD stays unwritten.
    ctx.put(&format!("{base}%FF"), "", b"invalid").await?;
    ctx.expect_missing(
        "GET of U+FFFD, which %FF must not become",
        &format!("{base}%EF%BF%BD"),
    )
    .await
}

/// An escaped `%`, `?`, `#` or NUL is a character of the key, decoded exactly once: `%2541` is
/// the key `%41`, never `A`, and `%3F`/`%23` never start a query or a fragment (a proxy or
/// framework that decodes twice, or decodes the whole target before splitting it, makes
/// them other keys).
pub async fn escaped_delimiters_stay_in_the_key(ctx: ApiCtx) -> CaseResult {
    let base = ctx.key("e");
    // (the key as sent, the key a second decoding or an early split would make of it)
    let spellings = [
        (format!("{base}%2541"), format!("{base}A")),
        (format!("{base}%3Fx%3Dy"), base.clone()),
        (format!("{base}%23x"), base.clone()),
        (format!("{base}%00x"), base.clone()),
    ];
    for (i, (escaped, misread)) in spellings.iter().enumerate() {
        let value = format!("escaped #{i}");
        let put = ctx.put(escaped, "", value.as_bytes()).await?;
        expect_status(
            &format!("PUT of the key {escaped}"),
            escaped,
            "PUT",
            &put,
            &[200, 201, 204],
        )?;
        ctx.expect_value("GET of the same escapes", escaped, value.as_bytes())
            .await?;
        ctx.expect_missing(
            &format!("GET of {misread}, which {escaped} must not become"),
            misread,
        )
        .await?;
    }
    Ok(())
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
        "+1",
        "1m",
        "10s",
        "4294967297",
        // A parser that also splits parameters on `;` (Python before 3.9.2) reads `1`.
        "1;2",
        "1%3B2",
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

/// A whole-second `ttl` is kept: present at once, gone once it has passed — also when it
/// is not the first query parameter, if the service accepts another one at all.
pub async fn ttl_in_whole_seconds_expires(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let second = ctx.key("second");
    let put = ctx.put(&second, "?v=2&ttl=1", b"v").await?;
    let second_stored = (200..300).contains(&put.status);
    if !second_stored {
        expect_client_error("PUT with ?v=2&ttl=1", &second, "PUT", &put)?;
    }
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
        .await?;
    if !second_stored {
        return Ok(());
    }
    ctx.expect_missing("GET 2.5 s after PUT with ?v=2&ttl=1", &second)
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
    ctx.expect_value("GET of an empty value", &key, b"").await?;
    // An empty value is a live entry, not a miss.
    let head = ctx.head(&key).await?;
    expect_status("HEAD of an empty value", &key, "HEAD", &head, &[200])
}

/// A value one byte over the declared maximum is 413 and stores nothing, whether the
/// service refuses it on its `Content-Length` or its store refuses it after reading; a
/// value at the maximum is stored.
pub async fn a_value_over_the_declared_maximum_is_413(ctx: ApiCtx) -> CaseResult {
    let Some(max) = ctx.declared.max_value_bytes else {
        return Err(
            Failure::new("run against a target with a declared maximum value size")
                .operation(Operation::Setup)
                .got("no maximum declared (the suite should have skipped this case)"),
        );
    };
    let over = ctx.key("over");
    let put = ctx
        .put_expecting_continue(&over, &vec![0x5a; max + 1])
        .await?;
    expect_status(
        "PUT of a value one byte over the declared maximum",
        &over,
        "PUT",
        &put,
        &[413],
    )?;
    // The status is what the contract requires (a proxy's own 413 has no kind header); a
    // kind header, when there is one, must name the same kind.
    let value_too_large = ErrorKind::ValueTooLarge.wire_name();
    if let Some(kind) = put
        .header(ERROR_KIND_HEADER)
        .filter(|kind| *kind != value_too_large)
    {
        return Err(Failure::new(format!(
            "the {ERROR_KIND_HEADER} header of the 413 for a value over the maximum"
        ))
        .key(&over)
        .operation(Operation::Set)
        .expected(format!(
            "no {ERROR_KIND_HEADER} header, or {value_too_large}"
        ))
        .got(kind.to_owned()));
    }
    ctx.expect_missing("a key whose only PUT was too large", &over)
        .await?;

    let at = ctx.key("at");
    let put = ctx.put_expecting_continue(&at, &vec![0xa5; max]).await?;
    expect_status(
        "PUT of a value at the declared maximum",
        &at,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    // Its DELETE answers whether it was stored, without reading the value back.
    let delete = ctx.delete(&at).await?;
    expect_status(
        "DELETE of the value stored at the maximum",
        &at,
        "DELETE",
        &delete,
        &[200, 204],
    )
}

/// A connection the service keeps open serves the next request: the answers on it are
/// the same as on fresh connections, and it is closed only after a response that says so.
/// (A service that closes kept-alive connections unannounced makes every pooling client
/// see resets.)
pub async fn a_kept_alive_connection_serves_the_next_request(ctx: ApiCtx) -> CaseResult {
    /// One request on the kept connection and the answer it must get.
    struct Step<'a> {
        method: &'a str,
        extra: &'a str,
        body: &'a [u8],
        allowed: &'a [u16],
        answer_body: Option<&'a [u8]>,
    }
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let value = b"kept alive";
    let length = format!("Content-Length: {}\r\n", value.len());
    let step = |method, extra, body, allowed, answer_body| Step {
        method,
        extra,
        body,
        allowed,
        answer_body,
    };
    let steps = [
        step("PUT", &length, value, &[200, 201, 204], None),
        step("GET", "", b"", &[200], Some(value)),
        step("HEAD", "", b"", &[200], Some(b"")),
        step("DELETE", "", b"", &[200, 204], None),
        step("GET", "", b"", &[404], None),
    ];
    let mut connection = ctx.keep_alive().await.map_err(|why| {
        Failure::new("open a connection to the service")
            .expected("a connection")
            .got(why)
    })?;
    for (n, step) in steps.iter().enumerate() {
        if n > 0 {
            // Long enough for the connection to sit idle between requests.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let check = format!("{} as request {} on one connection", step.method, n + 1);
        let framed = connection
            .request(&ctx, step.method, &target, step.extra, step.body)
            .await
            .map_err(|why| {
                Failure::new(&check)
                    .key(&key)
                    .expected("an answer: the previous response did not announce a close")
                    .got(why)
            })?;
        expect_status(&check, &key, step.method, &framed.response, step.allowed)?;
        if let Some(answer_body) = step.answer_body {
            if framed.response.body != answer_body {
                return Err(Failure::new(&check)
                    .key(&key)
                    .expected(format!(
                        "{} -> {} with {}",
                        step.method,
                        step.allowed[0],
                        preview(answer_body)
                    ))
                    .got(describe(&framed.response)));
            }
        }
        if framed.announces_close {
            // A service may decline to keep connections: it said so.
            return Ok(());
        }
    }
    Ok(())
}

/// A request whose head and body arrive in pieces, a few hundred milliseconds apart (a
/// client on a slow link, or TCP segments delayed), is answered like one sent at once.
pub async fn a_request_sent_in_pieces_is_answered(ctx: ApiCtx) -> CaseResult {
    const PAUSE: Duration = Duration::from_millis(300);
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}Content-Length: 6\r\n\r\n",
        ctx.target.authority,
        ctx.auth_header()
    );
    let (first, rest) = head.as_bytes().split_at(head.len() / 2);
    let put = ctx
        .send_in_pieces("PUT in pieces", &[first, rest, b"pie", b"ces"], PAUSE)
        .await?;
    expect_status(
        "PUT whose head and body came in pieces",
        &key,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    let get = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\r\n",
        ctx.target.authority,
        ctx.auth_header()
    );
    let (first, rest) = get.as_bytes().split_at(7);
    let got = ctx
        .send_in_pieces("GET in pieces", &[first, rest], PAUSE)
        .await?;
    if got.status == 200 && got.body == b"pieces" {
        return Ok(());
    }
    Err(Failure::new("GET whose head came in pieces")
        .key(&key)
        .expected(format!("GET -> 200 with {}", preview(b"pieces")))
        .got(describe(&got)))
}

/// How late after a declared connection timeout a close still counts as on time: a busy
/// service's timers and a loaded client both add delay.
pub const CLOSE_SLACK: Duration = Duration::from_millis(1500);
/// How early before a declared connection timeout a close still counts (timer granularity).
const EARLY_CLOSE_TOLERANCE: Duration = Duration::from_millis(50);

/// Waits for the service's close (`close`, which gives up [`CLOSE_SLACK`] after the
/// declared `timeout` has run out, counted from `what`) and judges it: not before
/// `timeout` has passed since `not_before.1`, whose instant `not_before.0` the client took
/// just before that event (the service cannot have started counting sooner).
async fn expect_closed_on_time(
    check: &str,
    close: impl std::future::Future<Output = Result<Option<Instant>, String>>,
    not_before: (Instant, &str),
    timeout: Duration,
    what: &str,
) -> CaseResult {
    let (earliest, earliest_what) = not_before;
    let expected = format!(
        "open for {} after {earliest_what}, then closed within {} after {what} \
         (the declared timeout, plus up to {CLOSE_SLACK:?})",
        format_ms(timeout),
        format_ms(timeout + CLOSE_SLACK)
    );
    let closed = close
        .await
        .map_err(|why| Failure::new(check).expected(expected.clone()).got(why))?;
    let got = match closed {
        None => format!(
            "still open {} after {what}",
            format_ms(timeout + CLOSE_SLACK)
        ),
        Some(at) if at + EARLY_CLOSE_TOLERANCE < earliest + timeout => format!(
            "closed {} after {earliest_what}, before the timeout ran out",
            format_ms(at.saturating_duration_since(earliest))
        ),
        Some(_) => return Ok(()),
    };
    Err(Failure::new(check).expected(expected).got(got))
}

fn format_ms(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

fn declared(timeout: Option<Duration>, which: &str) -> Result<Duration, Failure> {
    timeout.ok_or_else(|| {
        Failure::new(format!(
            "run against a target that declares its {which} timeout"
        ))
        .operation(Operation::Setup)
        .got("none declared (the suite should have skipped this case)")
    })
}

async fn connect(ctx: &ApiCtx) -> Result<TcpStream, Failure> {
    TcpStream::connect(&ctx.target.authority)
        .await
        .map_err(|err| {
            Failure::new("open a connection to the service")
                .expected("a connection")
                .got(format!("cannot connect: {err}"))
        })
}

/// The start of a GET head that a slowloris client never finishes: request line, `Host`,
/// and the name of a header whose value then arrives a byte at a time.
fn unfinished_head(ctx: &ApiCtx) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n{}X-Trickle: ",
        ctx.path(&format!("/cache/{}", ctx.key("k"))),
        ctx.target.authority,
        ctx.auth_header()
    )
}

/// A connection that never sends a byte is closed once the declared header timeout has
/// run out, not before: a silent socket cannot hold one of the service's connection slots
/// for longer (a slowloris client opens thousands).
pub async fn a_silent_connection_is_closed_after_the_header_timeout(ctx: ApiCtx) -> CaseResult {
    let timeout = declared(ctx.target.connection_timeouts.header, "header")?;
    let earliest = Instant::now();
    let mut stream = connect(&ctx).await?;
    let give_up = Instant::now() + timeout + CLOSE_SLACK;
    expect_closed_on_time(
        "a connection that sends nothing",
        wait_for_close(&mut stream, give_up),
        (earliest, "the connection opened"),
        timeout,
        "the connection opened",
    )
    .await
}

/// A request head trickled in a byte at a time and never finished (slowloris) is cut off
/// once the declared header timeout has run out since its first byte: bytes that keep
/// arriving do not restart the timer. Not before the timeout has passed since the
/// connection opened (a service may count from the accept or from the first byte).
pub async fn a_trickled_head_is_cut_off_after_the_header_timeout(ctx: ApiCtx) -> CaseResult {
    let timeout = declared(ctx.target.connection_timeouts.header, "header")?;
    let opened = Instant::now();
    let mut stream = connect(&ctx).await?;
    tokio::time::sleep(timeout / 4).await;
    let give_up = Instant::now() + timeout + CLOSE_SLACK;
    expect_closed_on_time(
        "a request head trickled a byte at a time",
        trickle_until_closed(
            &mut stream,
            unfinished_head(&ctx).as_bytes(),
            timeout / 4,
            give_up,
        ),
        (opened, "the connection opened"),
        timeout,
        "the head's first byte",
    )
    .await
}

/// A kept-alive connection whose last request was a GET of a missing key (404) and whose
/// answer did not announce a close, and the client's instant just before that GET.
async fn kept_alive_after_a_get(ctx: &ApiCtx) -> Result<(KeptAlive, Instant), Failure> {
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let check = "GET on a kept-alive connection";
    let mut connection = ctx.keep_alive().await.map_err(|why| {
        Failure::new("open a connection to the service")
            .expected("a connection")
            .got(why)
    })?;
    let sent = Instant::now();
    let framed = connection
        .request(ctx, "GET", &target, "", b"")
        .await
        .map_err(|why| Failure::new(check).key(&key).expected("an answer").got(why))?;
    expect_status(check, &key, "GET", &framed.response, &[404])?;
    if framed.announces_close {
        return Err(Failure::new(check)
            .key(&key)
            .expected("a connection kept open: the service declares its connection timeouts")
            .got("a response that closes the connection"));
    }
    Ok((connection, sent))
}

/// On a kept-alive connection, a request head trickled in and never finished is cut off
/// once the header timeout has run out since its first byte, not left to the (longer)
/// idle timeout; and not before the header timeout (a slow but honest client gets it
/// whole).
pub async fn a_trickled_head_on_a_kept_alive_connection_is_cut_off_after_the_header_timeout(
    ctx: ApiCtx,
) -> CaseResult {
    let timeout = declared(ctx.target.connection_timeouts.header, "header")?;
    let (mut connection, _) = kept_alive_after_a_get(&ctx).await?;
    // The next request begins a moment after the last answer, as a pooling client's does.
    tokio::time::sleep(Duration::from_millis(200).min(timeout / 4)).await;
    let first_byte = Instant::now();
    let give_up = first_byte + timeout + CLOSE_SLACK;
    expect_closed_on_time(
        "a request head trickled a byte at a time on a kept-alive connection",
        connection.trickle_until_closed(unfinished_head(&ctx).as_bytes(), timeout / 4, give_up),
        (first_byte, "the head's first byte"),
        timeout,
        "the head's first byte",
    )
    .await
}

/// A kept-alive connection whose response has been sent waits the declared idle timeout
/// for its next request, not less (a pooling client reuses it), and is closed once that
/// runs out (idle connections cannot pile up).
pub async fn an_idle_connection_is_closed_after_the_idle_timeout(ctx: ApiCtx) -> CaseResult {
    let timeout = declared(ctx.target.connection_timeouts.idle, "idle")?;
    let (mut connection, sent) = kept_alive_after_a_get(&ctx).await?;
    let give_up = Instant::now() + timeout + CLOSE_SLACK;
    expect_closed_on_time(
        "a kept-alive connection left idle",
        connection.wait_for_close(give_up),
        (sent, "the request before it"),
        timeout,
        "its response",
    )
    .await
}

/// What the answers a slow reader leaves unread add up to: far more than the socket buffers
/// between it and the service can hold (its own receive buffer is shrunk to
/// [`SLOW_READER_RECEIVE_BUFFER`]; a service's send buffer grows to a few MiB by default),
/// so a service that never cuts it off is seen still holding answers for it. A host whose
/// TCP buffers are tuned to hold this much never stalls the service's writes, and the rule
/// cannot be judged there.
const UNREAD_ANSWER_BYTES: usize = 96 * 1024 * 1024;
/// How much the service's answers must fill before its writes stall, as the wait counts it:
/// a slow service takes that many answers' time longer to be stuck.
const BYTES_BEFORE_THE_STALL: usize = 8 * 1024 * 1024;
/// The value a slow reader asks for: 1 MiB, or the declared maximum if smaller; halved on a
/// `413` from an undeclared body limit, down to 4 KiB.
const SLOW_READ_VALUE_BYTES: usize = 1024 * 1024;
const SMALLEST_SLOW_READ_VALUE_BYTES: usize = 4 * 1024;
/// The slow reader's socket receive buffer (the kernel may double it): small, so that the
/// answers pile up at the service, whose write timeout is what is judged.
const SLOW_READER_RECEIVE_BUFFER: u32 = 64 * 1024;

/// A connection to the service whose receive buffer is [`SLOW_READER_RECEIVE_BUFFER`].
async fn connect_with_a_small_receive_buffer(ctx: &ApiCtx) -> Result<TcpStream, Failure> {
    let fail = |why: String| {
        Failure::new("open a connection to the service")
            .expected("a connection")
            .got(why)
    };
    let address = tokio::net::lookup_host(&ctx.target.authority)
        .await
        .map_err(|err| fail(format!("cannot resolve {}: {err}", ctx.target.authority)))?
        .next()
        .ok_or_else(|| fail(format!("{} resolves to no address", ctx.target.authority)))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|err| fail(format!("cannot open a socket: {err}")))?;
    socket
        .set_recv_buffer_size(SLOW_READER_RECEIVE_BUFFER)
        .map_err(|err| fail(format!("cannot shrink the receive buffer: {err}")))?;
    socket
        .connect(address)
        .await
        .map_err(|err| fail(format!("cannot connect: {err}")))
}

/// A client that asks for large values and then stops reading (a slow-read attack) is cut
/// off once the declared write timeout has run out, at most [`CLOSE_SLACK`] later: the
/// answers queued for it cannot hold the connection, or the memory behind them, any longer.
/// Its GETs are pipelined on one connection and nothing is read until the timeout and the
/// slack have passed; the connection must by then be cut, so that fewer than all the
/// answers can still be read from it.
pub async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout(
    ctx: ApiCtx,
) -> CaseResult {
    let timeout = declared(ctx.target.connection_timeouts.write, "write")?;
    let key = ctx.key("unread");
    let mut value_len = ctx
        .declared
        .max_value_bytes
        .map_or(SLOW_READ_VALUE_BYTES, |max| max.min(SLOW_READ_VALUE_BYTES))
        .max(1);
    let put = loop {
        let put = ctx
            .put(&key, "", &super::values::pattern(value_len, 0x5e))
            .await?;
        if put.status != 413 || value_len <= SMALLEST_SLOW_READ_VALUE_BYTES {
            break put;
        }
        value_len /= 2;
    };
    expect_status(
        "PUT of the value a slow reader asks for",
        &key,
        "PUT",
        &put,
        &[200, 201, 204],
    )?;
    // A service that takes long to answer one GET takes as much longer to fill the buffers
    // and get stuck writing: its write timeout starts only then. Counted with a connection
    // per GET, this overestimates; it is bounded by 5 s.
    let asked = Instant::now();
    let answer = ctx.get(&key).await?;
    expect_status(
        "GET of the value a slow reader asks for",
        &key,
        "GET",
        &answer,
        &[200],
    )?;
    let one_answer = asked.elapsed();
    let until_stuck = (one_answer * BYTES_BEFORE_THE_STALL.div_ceil(value_len) as u32)
        .min(Duration::from_secs(5));
    let gets = UNREAD_ANSWER_BYTES.div_ceil(value_len);
    let target = ctx.path(&format!("/cache/{key}"));
    let head = |close: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\n{close}{}\r\n",
            ctx.target.authority,
            ctx.auth_header()
        )
    };
    let (get, last) = (head(""), head("Connection: close\r\n"));
    let (mut reader, mut writer) = connect_with_a_small_receive_buffer(&ctx)
        .await?
        .into_split();
    // The requests go from a task of their own: a service that stops reading them while
    // its answers are stuck blocks these writes too. The write half is handed back, never
    // dropped early: dropping it would half-close the connection, and a service may close
    // on that instead of on its timeout.
    let requests = tokio::spawn(async move {
        for n in 1..=gets {
            let request = if n == gets { &last } else { &get };
            if writer.write_all(request.as_bytes()).await.is_err() {
                break;
            }
        }
        writer
    });
    tokio::time::sleep(until_stuck + timeout + CLOSE_SLACK).await;
    let all_bodies = gets * value_len;
    let give_up = Instant::now() + EXCHANGE_TIMEOUT;
    let mut received = 0;
    let mut chunk = vec![0; 64 * 1024];
    let ending = loop {
        match tokio::time::timeout_at(give_up, reader.read(&mut chunk)).await {
            Ok(Ok(0)) => break None,
            Ok(Err(_)) => break None,
            Ok(Ok(read)) => received += read,
            Err(_) => break Some(format!("still open, {EXCHANGE_TIMEOUT:?} of reading later")),
        }
        if received >= all_bodies {
            break Some("every answer arrived".to_owned());
        }
    };
    requests.abort();
    let Some(ending) = ending else {
        return Ok(());
    };
    Err(Failure::new(format!(
        "{gets} pipelined GETs of a {value_len}-byte value, nothing read for {}",
        format_ms(until_stuck + timeout + CLOSE_SLACK)
    ))
    .operation(Operation::Get)
    .key(&key)
    .expected(format!(
        "the connection cut off within {} of its answers getting stuck (the declared write \
         timeout, plus up to \
         {CLOSE_SLACK:?}): fewer than the {all_bodies} bytes of the bodies readable",
        format_ms(timeout + CLOSE_SLACK)
    ))
    .got(format!(
        "{ending}: {received} bytes read once reading began"
    )))
}

/// A method outside the API changes nothing.
pub async fn methods_outside_the_api_change_nothing(ctx: ApiCtx) -> CaseResult {
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let refused = |check: String, answer: &RawResponse| -> CaseResult {
        if (200..300).contains(&answer.status) {
            return Err(Failure::new(check)
                .key(&key)
                .expected("405, 404 or another refusal")
                .got(describe(answer)));
        }
        Ok(())
    };
    for method in ["POST", "PATCH"] {
        let answer = ctx
            .send(method, &target, "Content-Length: 1\r\n", b"v")
            .await?;
        refused(format!("{method} on a key"), &answer)?;
    }
    // Method-override headers are not the API: a POST stays a POST.
    for header in OVERRIDE_HEADERS {
        let headers = format!("{header}: PUT\r\nContent-Length: 1\r\n");
        let answer = ctx.send("POST", &target, &headers, b"v").await?;
        refused(format!("POST on a key with {header}: PUT"), &answer)?;
    }
    ctx.expect_missing("a key only ever POSTed and PATCHed", &key)
        .await?;
    // Nor does any other method remove or change a stored value. Whatever the answer (a
    // cache in front may answer `200 Purged` for itself, or hang up), the value must stay.
    ctx.put(&key, "", b"kept").await?;
    for method in ["PURGE", "BAN", "FOO"] {
        let _answer = ctx.send(method, &target, "", b"").await;
    }
    for header in OVERRIDE_HEADERS {
        let headers = format!("{header}: DELETE\r\nContent-Length: 0\r\n");
        let answer = ctx.send("POST", &target, &headers, b"").await?;
        refused(
            format!("POST on a stored key with {header}: DELETE"),
            &answer,
        )?;
    }
    ctx.expect_value(
        "a stored key after PURGE, BAN, FOO and POSTs that ask to be a DELETE",
        &key,
        b"kept",
    )
    .await
}

/// The headers method-override middleware reads (Express, Rack, ASP.NET, Google's APIs).
const OVERRIDE_HEADERS: [&str; 3] = [
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];

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

/// With a token configured, `/health` without it tells only whether the service is healthy:
/// a proxy that adds the token for load-balancer probes hands the full report to anyone.
pub async fn health_without_the_token_shows_only_whether_healthy(ctx: ApiCtx) -> CaseResult {
    configured_token(&ctx)?;
    let target = ctx.path("/health");
    // Right after a full answer to a request with the token: a front end that caches
    // `/health` must not hand that answer on.
    ctx.send("GET", &target, "", b"").await?;
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        ctx.target.authority
    );
    let response = ctx
        .exchange("GET", &target, head.as_bytes(), b"", false)
        .await?;
    let fields = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|json| json.as_object().cloned());
    let only_healthy = fields.is_some_and(|fields| {
        fields.len() == 1
            && fields
                .get("healthy")
                .is_some_and(serde_json::Value::is_boolean)
    });
    if matches!(response.status, 200 | 503) && only_healthy {
        return Ok(());
    }
    Err(Failure::new("GET /health without a token")
        .expected("200 or 503 with JSON {\"healthy\": true|false} and no other field")
        .got(describe(&response)))
}

/// A `latency_ms` in a health answer, when present, is a number from zero to the request's
/// own round trip: a service cannot have spent longer checking its store than the client
/// waited for the answer (a unit slip, seconds shown as milliseconds, breaks it).
pub async fn health_latency_fits_in_the_round_trip(ctx: ApiCtx) -> CaseResult {
    let target = ctx.path("/health");
    let started = std::time::Instant::now();
    let response = ctx.send("GET", &target, "", b"").await?;
    let round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return Err(Failure::new("GET /health of a reachable service")
            .expected("a JSON body")
            .got(describe(&response)));
    };
    let Some(latency) = json.get("latency_ms") else {
        // Only shown to callers with the token, and optional in the API.
        return Ok(());
    };
    match latency.as_f64() {
        Some(ms) if (0.0..=round_trip_ms).contains(&ms) => Ok(()),
        _ => Err(Failure::new("latency_ms of GET /health")
            .expected(format!(
                "a number from 0 to the round trip, {round_trip_ms:.3} ms"
            ))
            .got(format!("latency_ms: {latency}"))),
    }
}

/// The token the suite was given; the `AuthToken` need skips a case without one.
fn configured_token(ctx: &ApiCtx) -> Result<String, Failure> {
    ctx.target.token.clone().ok_or_else(|| {
        Failure::new("run against a target with a token")
            .operation(Operation::Setup)
            .got("no token configured (the suite should have skipped this case)")
    })
}

/// How many wrong tokens [`wrong_tokens_are_all_refused`] tries.
const WRONG_TOKENS: usize = 2048;

/// No wrong token is accepted, however near the real one: each one-character change, a
/// prefix, an extension, another case, and [`WRONG_TOKENS`] more. A comparison that folds
/// digest bytes with `^` instead of `|` lets differences cancel and accepts about one
/// wrong token in 256; a prefix comparison accepts the truncated ones.
pub async fn wrong_tokens_are_all_refused(ctx: ApiCtx) -> CaseResult {
    use futures::stream::{self, StreamExt};

    let token = configured_token(&ctx)?;
    let key = ctx.key("k");
    let target = ctx.path(&format!("/cache/{key}"));
    let mut wrong: Vec<String> = Vec::new();
    for (position, original) in token.char_indices() {
        let replacement = if original == 'x' { 'y' } else { 'x' };
        let mut changed = token.clone();
        changed.replace_range(
            position..position + original.len_utf8(),
            &replacement.to_string(),
        );
        wrong.push(changed);
    }
    let shorter: String = token.chars().take(token.chars().count() - 1).collect();
    wrong.extend([
        shorter,
        format!("{token}x"),
        token.to_uppercase(),
        token.to_lowercase(),
    ]);
    wrong.extend((0..WRONG_TOKENS).map(|i| format!("{token}-{i}")));
    wrong.retain(|candidate| *candidate != token && !candidate.is_empty());
    let accepted = stream::iter(wrong)
        .map(|candidate| {
            let ctx = &ctx;
            let target = &target;
            async move {
                let head = format!(
                    "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                     Authorization: Bearer {candidate}\r\n\r\n",
                    ctx.target.authority
                );
                let answer = ctx
                    .exchange("GET", target, head.as_bytes(), b"", false)
                    .await?;
                Ok::<_, Failure>((candidate, answer))
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for result in accepted {
        let (candidate, answer) = result?;
        // 429: a service that throttles failed attempts still accepted none.
        if !matches!(answer.status, 401 | 403 | 429) {
            return Err(Failure::new("GET with a wrong bearer token")
                .key(&key)
                .expected(format!("GET with token {candidate:?} -> 401, 403 or 429"))
                .got(describe(&answer)));
        }
    }
    Ok(())
}

/// Without the token, every method is 401; the `Bearer` scheme is case-insensitive.
pub async fn every_method_needs_the_token(ctx: ApiCtx) -> CaseResult {
    let token = configured_token(&ctx)?;
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
