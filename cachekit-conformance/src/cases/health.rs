//! `health_check` of a reachable backend.

use std::time::Duration;

use cachekit_core::Bytes;

use crate::failure::{Answer, Operation};
use crate::{CaseResult, Ctx, Failure};

/// A reachable backend reports healthy.
pub async fn health_check_reports_healthy(ctx: Ctx) -> CaseResult {
    let report = ctx.backend.health_check().await;
    if report.healthy {
        return Ok(());
    }
    Err(Failure::new("health_check of a reachable backend")
        .operation(Operation::HealthCheck)
        .expected("healthy: true")
        .got(format!("healthy: false, details: {:?}", report.details)))
}

/// A caller's mistakes are not the store's failures: after a refused key and a refused
/// value, a health check still reports healthy (a health indicator that shows the client's
/// last error reports every bad request as an outage).
pub async fn caller_errors_leave_the_store_healthy(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    // Refusals only: what the error says is the business of the cases that own those rules.
    let _ = ctx.backend.set("", Bytes::from_static(b"v"), None).await;
    if let Some(over) = ctx.caps.max_value_bytes.and_then(|max| max.checked_add(1)) {
        // Zeros: a client that refuses the size before sending never touches the pages.
        let _ = ctx
            .backend
            .set(&key, Bytes::from(vec![0u8; over]), None)
            .await;
    }
    let _ = ctx.backend.get("").await;
    let report = ctx.backend.health_check().await;
    if report.healthy {
        return Ok(());
    }
    Err(
        Failure::new("health_check right after an empty key and a value over the maximum")
            .operation(Operation::HealthCheck)
            .expected("healthy: true")
            .got(format!("healthy: false, details: {:?}", report.details)),
    )
}

/// The health report names the declared backend type.
pub async fn health_check_names_the_backend_type(ctx: Ctx) -> CaseResult {
    let report = ctx.backend.health_check().await;
    if !report.backend_type.is_empty() && report.backend_type == ctx.caps.backend_type {
        return Ok(());
    }
    Err(Failure::new("backend_type of the health report")
        .operation(Operation::HealthCheck)
        .expected(format!(
            "{:?}, as declared in capabilities",
            ctx.caps.backend_type
        ))
        .got(format!("{:?}", report.backend_type)))
}

/// A health report's details carry no credentials: no URL with a password or a secret
/// query parameter in it, no `Authorization`-style header value, and no detail named like
/// a secret that shows one.
pub async fn health_details_carry_no_credentials(ctx: Ctx) -> CaseResult {
    let report = ctx.backend.health_check().await;
    for (name, value) in &report.details {
        if shows_a_credential(name, value) {
            return Err(Failure::new("details of the health report")
                .operation(Operation::HealthCheck)
                .expected("no credentials: passwords, tokens and keys redacted")
                .got(format!("detail {name:?} = {}", shown_redacted(value))));
        }
    }
    Ok(())
}

const MINUTE: Duration = Duration::from_secs(60);

/// Whether the detail `name = value` shows a credential.
fn shows_a_credential(name: &str, value: &str) -> bool {
    url_with_password(value)
        || secret_assignment(value)
        || authorization_value(value)
        || (secret_named(name) && !shows_no_secret(value))
}

/// Last words that make a name a secret's (`auth_token`, `redis_password`,
/// `X-Amz-Signature`, `client_secret`, `Proxy-Authorization`); `max_tokens`,
/// `token_ttl_secs` or `signature_version` only mention one.
const SECRET_LAST_WORDS: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    "credentials",
    "token",
    "apikey",
    "signature",
    "authorization",
];

/// Last two words that make a name a secret's (`X-Api-Key`, `aws_secret_access_key`).
const SECRET_LAST_PAIRS: [[&str; 2]; 4] = [
    ["api", "key"],
    ["access", "key"],
    ["private", "key"],
    ["secret", "key"],
];

/// Whether `name` (a detail's, or a setting's inside a value) names a secret, by its
/// last word or two.
fn secret_named(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    match words.as_slice() {
        [.., last_but_one, last] => {
            SECRET_LAST_WORDS.contains(last) || SECRET_LAST_PAIRS.contains(&[*last_but_one, *last])
        }
        [last] => SECRET_LAST_WORDS.contains(last),
        [] => false,
    }
}

/// A value that shows nothing of a secret: empty, masked, a placeholder (`<not set>`), a
/// number, or a word saying whether one is set.
fn shows_no_secret(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower.is_empty()
        || lower.contains('*')
        || lower.contains("redact")
        || lower.starts_with('<')
        || lower.parse::<f64>().is_ok()
        || matches!(
            lower.as_str(),
            "true"
                | "false"
                | "yes"
                | "no"
                | "set"
                | "unset"
                | "none"
                | "null"
                | "n/a"
                | "missing"
                | "present"
                | "configured"
                | "enabled"
                | "disabled"
                | "required"
        )
}

/// Whether `text` holds `scheme://user:password@` with a non-empty password.
fn url_with_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, _)| {
        let rest = &text[at + 3..];
        let authority = rest.split(['/', '?', '#', ' ']).next().unwrap_or_default();
        authority.rsplit_once('@').is_some_and(|(user_info, _)| {
            user_info
                .split_once(':')
                .is_some_and(|(_, password)| !password.is_empty() && !password.contains('*'))
        })
    })
}

/// Whether `text` assigns a secret-named setting a value anywhere: a URL's query
/// (`?access_token=…`, a presigned `X-Amz-Signature=…`), a libpq conninfo
/// (`host=db password=…`), an ADO.NET connection string (`Server=…;Pwd=…`).
fn secret_assignment(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '?' | ',' | '#'))
        .any(|pair| {
            pair.split_once('=').is_some_and(|(name, value)| {
                secret_named(name) && !shows_no_secret(value.trim_matches(['\'', '"']))
            })
        })
}

/// Whether `text` is an HTTP `Authorization` value with its credentials in it: the
/// scheme, then one base64-like word of at least 8 characters (`Basic auth` or
/// `bearer token` only talk about one; `Basic realm="…"` is a challenge).
fn authorization_value(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [scheme, credentials] = words.as_slice() else {
        return false;
    };
    let base64_like = credentials.len() >= 8
        && credentials
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_' | '.'));
    matches!(scheme.to_ascii_lowercase().as_str(), "bearer" | "basic")
        && base64_like
        && !shows_no_secret(credentials)
}

/// A leaked secret is not repeated in the failure: only its length shows.
fn shown_redacted(value: &str) -> String {
    format!("<{} characters, not shown>", value.chars().count())
}

/// The health report carries a measured latency.
pub async fn health_check_measures_latency(ctx: Ctx) -> CaseResult {
    let started = tokio::time::Instant::now();
    let report = ctx.backend.health_check().await;
    let outer = started.elapsed();
    // The probe happens inside the call, so its latency cannot exceed the call's duration.
    if report.latency > Duration::ZERO && report.latency <= outer {
        return Ok(());
    }
    Err(Failure::new("latency of the health report")
        .operation(Operation::HealthCheck)
        .expected(format!(
            "a measured latency in (0, {outer:?}], the call's own duration"
        ))
        .got(format!("{:?}", report.latency)))
}

/// How long a health check may take on a reachable backend.
pub const HEALTH_CHECK_BOUND: Duration = Duration::from_secs(5);

/// Entries stored before the health check is timed: a check that scans the data slows
/// down with it.
pub const ENTRIES_BEFORE_HEALTH_CHECK: usize = 300;

/// A health check of a reachable backend holding data answers within [`HEALTH_CHECK_BOUND`].
pub async fn health_check_answers_within_the_bound(ctx: Ctx) -> CaseResult {
    let keys: Vec<String> = (0..ENTRIES_BEFORE_HEALTH_CHECK)
        .map(|i| ctx.key(&format!("data/{i}")))
        .collect();
    super::scale::set_all(&ctx, &keys).await?;
    // The wall clock: on a paused tokio clock a slow check would take no time at all.
    let started = std::time::Instant::now();
    let report = ctx.backend.health_check().await;
    let took = started.elapsed();
    if took <= HEALTH_CHECK_BOUND && report.latency <= HEALTH_CHECK_BOUND {
        return Ok(());
    }
    Err(
        Failure::new("duration of a health check of a reachable backend")
            .operation(Operation::HealthCheck)
            .expected(format!("at most {HEALTH_CHECK_BOUND:?}"))
            .got(format!(
                "the call took {took:?}, the report says {:?}",
                report.latency
            )),
    )
}

/// Health checks leave every entry's ttl running: a check that snapshots and reloads the
/// data set (`DUMP`/`RESTORE` with no ttl, a reload from a format without ttls) makes
/// expiring entries persistent.
pub async fn health_checks_leave_ttls_running(ctx: Ctx) -> CaseResult {
    let window = ctx.ttl_window();
    let key = ctx.key("expiring");
    ctx.set(&key, b"v", Some(window.ttl)).await?;
    let acknowledged = tokio::time::Instant::now();
    for _ in 0..3 {
        ctx.backend.health_check().await;
    }
    ctx.sleep_until(acknowledged, window.absent_by).await;
    let check = format!(
        "get/exists {:?} after a set with ttl {:?} and three health checks",
        window.absent_by, window.ttl
    );
    ctx.expect_absent(&check, &key).await
}

/// Repeated health checks all report healthy and leave the data alone.
pub async fn repeated_health_checks_stay_healthy_and_change_nothing(ctx: Ctx) -> CaseResult {
    let key = ctx.key("k");
    ctx.set(&key, b"v", None).await?;
    // An entry that expires in a minute: a check that also sweeps "soon to expire"
    // entries takes it early.
    let expiring = ctx.key("expiring");
    // Only where a minute is allowed: a shorter ttl could run out during the checks.
    let expiring_ttl = ctx
        .caps
        .ttl
        .filter(|support| support.max >= MINUTE)
        .map(|_| MINUTE);
    if let Some(ttl) = expiring_ttl {
        ctx.set(&expiring, b"for a minute", Some(ttl)).await?;
    }
    // A probe that writes a fixed key writes it in the user's key space: these names are
    // whole keys, unprefixed. Another run sharing the store may write them too, so any
    // kit-written probe value counts as intact; where ttls exist the keys expire on their
    // own, so no run deletes what another is still checking.
    let probe_names: Vec<(usize, &str)> = PROBE_LIKE_KEYS
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, name)| ctx.caps.check_key(name).is_ok())
        .collect();
    let probe_ttl = ctx.valid_ttl();
    for (i, name) in &probe_names {
        let value = format!("{}{PROBE_VALUE_MARK}{i}", ctx.prefix());
        ctx.set(name, value.as_bytes(), probe_ttl).await?;
    }
    for round in 1..=3 {
        let report = ctx.backend.health_check().await;
        if report.backend_type != ctx.caps.backend_type {
            return Err(Failure::new(format!(
                "backend_type of health check #{round} of 3 in a row"
            ))
            .operation(Operation::HealthCheck)
            .expected(format!("{:?}, on every call", ctx.caps.backend_type))
            .got(format!("{:?}", report.backend_type)));
        }
        if !report.healthy {
            return Err(Failure::new(format!("health check #{round} of 3 in a row"))
                .operation(Operation::HealthCheck)
                .expected("healthy: true")
                .got(format!("healthy: false, details: {:?}", report.details)));
        }
    }
    ctx.expect_present("a key after three health checks", &key, b"v")
        .await?;
    if expiring_ttl.is_some() {
        ctx.expect_present(
            "a key with a minute-long ttl after three health checks",
            &expiring,
            b"for a minute",
        )
        .await?;
    }
    for (i, name) in &probe_names {
        let got = ctx.get(name).await?;
        let written_by_a_run = got.as_deref().is_some_and(|value| {
            value.starts_with(b"ck-")
                && value.ends_with(format!("{PROBE_VALUE_MARK}{i}").as_bytes())
        });
        if !written_by_a_run {
            return Err(Failure::new(
                "a key named like a health probe's, after three health checks",
            )
            .operation(Operation::Get)
            .key(name)
            .expected(format!(
                "the value the kit wrote before the checks, \"{}{PROBE_VALUE_MARK}{i}\" (or another run's)",
                ctx.prefix()
            ))
            .got(Answer::Value(got)));
        }
        if probe_ttl.is_none() {
            ctx.delete(name).await?;
        }
    }
    Ok(())
}

/// Ends every probe-named key's value, before the key's index: `ck-…-#probe-3`.
const PROBE_VALUE_MARK: &str = "#probe-";

/// Keys a health probe that writes is likely to write (`SET healthcheck ok`).
const PROBE_LIKE_KEYS: [&str; 7] = [
    "healthcheck",
    "health_check",
    "health-check",
    "__health__",
    "__healthcheck__",
    "_health_check_",
    "cachekit:health",
];

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::shows_a_credential;

    #[rstest]
    #[case::url_password("url", "redis://default:hunter2@cache:6379/0", true)]
    #[case::url_masked_password("url", "redis://default:****@cache:6379/0", false)]
    #[case::url_user_only("url", "redis://default@cache:6379/0", false)]
    #[case::plain_url("url", "http://127.0.0.1:8080/health", false)]
    #[case::redacted_query("url", "http://cache/health?<redacted>", false)]
    #[case::harmless_query("url", "http://cache/health?verbose=1", false)]
    #[case::token_in_query("endpoint", "https://cache/health?access_token=abc", true)]
    #[case::presigned_signature("probe", "https://b.s3/x?X-Amz-Signature=9f2c", true)]
    #[case::password_in_query("dsn", "rediss://cache:6380/0?password=p4ss", true)]
    #[case::bearer_header("last_request", "Bearer eyJhbGciOi", true)]
    #[case::basic_header("header", "Basic dXNlcjpwYXNz", true)]
    #[case::basic_challenge("auth", "Basic realm=\"cache\"", false)]
    #[case::redacted_bearer("header", "Bearer <redacted>", false)]
    #[case::token_named("auth_token", "sk_live_51HxQ9", true)]
    #[case::api_key_named("X-Api-Key", "abc123", true)]
    #[case::secret_named_masked("client_secret", "********", false)]
    #[case::token_flag("token_configured", "true", false)]
    #[case::password_unset("password", "", false)]
    #[case::libpq_conninfo("conninfo", "host=db user=cachekit password=hunter2", true)]
    #[case::ado_connection_string("db", "Server=db;User Id=ck;Pwd=hunter2;", true)]
    #[case::harmless_settings("conninfo", "host=db user=cachekit sslmode=require", false)]
    #[case::tokens_per_second("tokens_per_second", "100", false)]
    #[case::max_tokens("max_tokens", "5", false)]
    #[case::token_lifetime("token_ttl_secs", "3600", false)]
    #[case::token_expiry("token_expires_at", "2026-11-27T10:00:00Z", false)]
    #[case::signature_version("signature_version", "v4", false)]
    #[case::access_key_id("access_key_id", "AKIAIOSFODNN7EXAMPLE", false)]
    #[case::authorization_required("authorization", "required", false)]
    #[case::token_null("token", "null", false)]
    #[case::password_not_set("password", "<not set>", false)]
    #[case::password_not_set_inline("dsn", "host=db password=<not set>", false)]
    #[case::basic_auth_words("auth", "Basic auth", false)]
    #[case::bearer_token_words("auth", "bearer token", false)]
    #[case::harmless_token_query("url", "http://cache/health?token_ttl=60", false)]
    #[case::proxy_authorization("Proxy-Authorization", "Basic dXNlcjpwYXNz", true)]
    #[case::secret_access_key("aws_secret_access_key", "wJalrXUtnFEMI", true)]
    #[case::status("status", "200", false)]
    #[case::byte_budget("max_bytes", "1048576", false)]
    fn credentials_in_health_details(#[case] name: &str, #[case] value: &str, #[case] shows: bool) {
        assert_eq!(shows_a_credential(name, value), shows, "{name} = {value}");
    }
}
