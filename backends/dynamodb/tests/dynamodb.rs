//! DynamoDB-specific behaviour against DynamoDB Local, beyond the generic matrix: items
//! written behind the backend's back, reserved-word attribute names, the item size limit,
//! error kinds from a live service, table setup, and losing and regaining the server.
//!
//! One DynamoDB Local serves the whole binary (the output says how it was provided); the
//! outage test starts one of its own, so stopping it disturbs nobody.

use std::future::Future;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cachekit_backend_dynamodb::aws_sdk_dynamodb::config::Credentials;
use cachekit_backend_dynamodb::aws_sdk_dynamodb::primitives::Blob;
use cachekit_backend_dynamodb::aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use cachekit_backend_dynamodb::local::{DynamoDbLocal, LocalOptions};
use cachekit_backend_dynamodb::{
    AttributeNames, DynamoDbBackend, DynamoDbConfig, TtlDeletion, MAX_ITEM_BYTES, MAX_KEY_BYTES,
};
use cachekit_core::{Backend, Bytes, ErrorKind};
use libtest_mimic::{Arguments, Failed, Trial};

static ENDPOINT: OnceLock<String> = OnceLock::new();

type TestResult = Result<(), Failed>;

fn endpoint() -> &'static str {
    ENDPOINT.get().map_or("http://127.0.0.1:9", String::as_str)
}

/// A backend on a fresh table of its own.
async fn fresh_backend(test: &str, config: DynamoDbConfig) -> Result<DynamoDbBackend, Failed> {
    let table = format!("ck_{test}_{:08x}", rand_u32());
    let config = DynamoDbConfig { table, ..config }.with_endpoint(endpoint());
    let backend = DynamoDbBackend::connect(config)?;
    backend.ensure_table_with(TtlDeletion::Untouched).await?;
    Ok(backend)
}

fn rand_u32() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn check(condition: bool, message: impl Into<String>) -> TestResult {
    if condition {
        Ok(())
    } else {
        Err(Failed::from(message.into()))
    }
}

async fn expired_item_written_directly_is_absent() -> TestResult {
    let backend = fresh_backend("expired", DynamoDbConfig::new("")).await?;
    let table = backend.config().table.clone();
    // What DynamoDB holds for hours or days after expiry, until its sweeper runs.
    backend
        .client()
        .put_item()
        .table_name(&table)
        .item("key", AttributeValue::S("stale".to_owned()))
        .item("value", AttributeValue::B(Blob::new(b"old".to_vec())))
        .item("ttl", AttributeValue::N((epoch_now() - 60).to_string()))
        .send()
        .await?;
    check(
        backend.get("stale").await?.is_none(),
        "get returned an expired item",
    )?;
    check(
        !backend.exists("stale").await?,
        "exists reported an expired item",
    )?;
    check(
        !backend.delete("stale").await?,
        "delete reported an expired item as existing",
    )?;
    let raw = backend
        .client()
        .get_item()
        .table_name(&table)
        .key("key", AttributeValue::S("stale".to_owned()))
        .send()
        .await?;
    check(
        raw.item.is_none(),
        "delete of an expired item must still remove it",
    )
}

async fn reserved_word_attribute_names_work() -> TestResult {
    // `name`, `data` and `timestamp` are DynamoDB reserved words too.
    let names = AttributeNames {
        key: "name".to_owned(),
        value: "data".to_owned(),
        ttl: "timestamp".to_owned(),
    };
    let backend = fresh_backend("reserved", DynamoDbConfig::new("").with_attributes(names)).await?;
    backend
        .set("k", Bytes::from_static(b"v"), Some(Duration::from_secs(60)))
        .await?;
    check(
        backend.get("k").await? == Some(Bytes::from_static(b"v")),
        "get after set",
    )?;
    check(backend.exists("k").await?, "exists after set")?;
    let raw = backend
        .client()
        .get_item()
        .table_name(&backend.config().table)
        .key("name", AttributeValue::S("k".to_owned()))
        .send()
        .await?
        .item
        .unwrap_or_default();
    check(
        matches!(raw.get("data"), Some(AttributeValue::B(_)))
            && matches!(raw.get("timestamp"), Some(AttributeValue::N(_))),
        format!("the item must use the configured names, got {raw:?}"),
    )?;
    check(backend.delete("k").await?, "delete of a live item")?;
    check(!backend.exists("k").await?, "exists after delete")
}

async fn value_size_at_the_limit_works_one_over_fails() -> TestResult {
    let backend = fresh_backend("limit", DynamoDbConfig::new("")).await?;
    let limit = backend.max_value_bytes();
    // The longest key and a ttl: the largest item this backend ever writes.
    let key = "k".repeat(MAX_KEY_BYTES);
    let at_limit = Bytes::from(vec![0xA5; limit]);
    backend
        .set(&key, at_limit.clone(), Some(Duration::from_secs(3600)))
        .await?;
    check(
        backend.get(&key).await?.as_ref() == Some(&at_limit),
        "the value at the limit must come back whole",
    )?;
    let over = Bytes::from(vec![0x5A; limit + 1]);
    match backend.set(&key, over, None).await {
        Err(err) if err.kind() == ErrorKind::ValueTooLarge => {}
        other => {
            return Err(format!("one byte over: expected ValueTooLarge, got {other:?}").into())
        }
    }
    check(
        backend.get(&key).await?.as_ref() == Some(&at_limit),
        "a rejected set must leave the old value",
    )?;
    // DynamoDB itself draws the line at 400 KB: an item just over it is refused.
    // Attribute names, the 1-byte key "k" and the value add up to 400 KB + 1.
    let value_len = MAX_ITEM_BYTES + 1 - "key".len() - "k".len() - "value".len();
    let refused = backend
        .client()
        .put_item()
        .table_name(&backend.config().table)
        .item("key", AttributeValue::S("k".to_owned()))
        .item("value", AttributeValue::B(Blob::new(vec![0; value_len])))
        .send()
        .await;
    check(
        refused.is_err(),
        "DynamoDB Local accepted an item over 400 KB; the limit would be unfounded",
    )
}

async fn corrupt_items_are_protocol_errors() -> TestResult {
    let backend = fresh_backend("corrupt", DynamoDbConfig::new("")).await?;
    let table = backend.config().table.clone();
    let put = |key: &str, value: AttributeValue, ttl: Option<AttributeValue>| {
        let mut request = backend
            .client()
            .put_item()
            .table_name(&table)
            .item("key", AttributeValue::S(key.to_owned()))
            .item("value", value);
        if let Some(ttl) = ttl {
            request = request.item("ttl", ttl);
        }
        request.send()
    };
    put("string-value", AttributeValue::S("text".to_owned()), None).await?;
    put(
        "string-ttl",
        AttributeValue::B(Blob::new(b"v".to_vec())),
        Some(AttributeValue::S("tomorrow".to_owned())),
    )
    .await?;
    for key in ["string-value", "string-ttl"] {
        match backend.get(key).await {
            Err(err) if err.kind() == ErrorKind::Protocol => {}
            other => {
                return Err(
                    format!("get of corrupt item {key}: expected Protocol, got {other:?}").into(),
                )
            }
        }
    }
    Ok(())
}

async fn refused_credentials_are_auth() -> TestResult {
    // DynamoDB Local refuses access key ids that are not alphanumeric, as AWS refuses
    // unknown ones.
    let config = DynamoDbConfig::new("any")
        .with_endpoint(endpoint())
        .with_credentials(Credentials::new("not-a-key!", "secret", None, None, "test"));
    let backend = DynamoDbBackend::connect(config)?;
    match backend.get("k").await {
        Err(err) if err.kind() == ErrorKind::Auth && !err.is_retryable() => Ok(()),
        other => Err(format!("expected a non-retryable Auth error, got {other:?}").into()),
    }
}

async fn missing_table_error_says_how_to_fix() -> TestResult {
    let config = DynamoDbConfig::new("ck_no_such_table").with_endpoint(endpoint());
    let backend = DynamoDbBackend::connect(config)?;
    match backend.get("k").await {
        Err(err) if err.message().contains("ensure_table") => {}
        other => return Err(format!("expected a missing-table error, got {other:?}").into()),
    }
    let health = backend.health_check().await;
    check(
        !health.healthy
            && health
                .details
                .get("error")
                .is_some_and(|e| e.contains("ck_no_such_table")),
        format!("health of a missing table: {health:?}"),
    )
}

async fn silent_server_is_a_timeout() -> TestResult {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let config = DynamoDbConfig::new("t")
        .with_endpoint(format!("http://{address}"))
        .with_operation_timeout(Duration::from_millis(600))
        .with_health_timeout(Duration::from_millis(600))
        .with_max_attempts(2);
    let backend = DynamoDbBackend::connect(config)?;
    let started = Instant::now();
    let outcome = backend.get("k").await;
    let took = started.elapsed();
    drop(listener);
    match outcome {
        Err(err) if err.kind() == ErrorKind::Timeout && err.is_retryable() => {}
        other => return Err(format!("expected Timeout, got {other:?}").into()),
    }
    check(
        took < Duration::from_secs(5),
        format!("the operation timeout of 600ms was not honoured: {took:?}"),
    )
}

async fn ensure_table_is_idempotent_and_enables_ttl_deletion() -> TestResult {
    let config =
        DynamoDbConfig::new(format!("ck_ensure_{:08x}", rand_u32())).with_endpoint(endpoint());
    let backend = DynamoDbBackend::connect(config)?;
    backend.ensure_table().await?;
    backend.ensure_table().await?;
    let ttl = backend
        .client()
        .describe_time_to_live()
        .table_name(&backend.config().table)
        .send()
        .await?
        .time_to_live_description
        .unwrap_or_else(no_ttl_description);
    check(
        ttl.time_to_live_status == Some(TimeToLiveStatus::Enabled)
            && ttl.attribute_name.as_deref() == Some("ttl"),
        format!("TTL deletion after ensure_table: {ttl:?}"),
    )?;
    let health = backend.health_check().await;
    check(
        health.healthy && health.details.get("table") == Some(&backend.config().table),
        format!("health after ensure_table: {health:?}"),
    )
}

fn no_ttl_description() -> cachekit_backend_dynamodb::aws_sdk_dynamodb::types::TimeToLiveDescription
{
    cachekit_backend_dynamodb::aws_sdk_dynamodb::types::TimeToLiveDescription::builder().build()
}

/// Stops a DynamoDB Local of its own mid-test, then starts a new one on the same port.
fn server_loss_is_unavailable_and_unhealthy_then_recovers() -> TestResult {
    let mut local = DynamoDbLocal::start_with(LocalOptions {
        existing_endpoint: false,
        ..LocalOptions::default()
    })?;
    eprintln!(
        "outage test: its own {} at {}",
        local.mode(),
        local.endpoint()
    );
    let timeout = Duration::from_secs(2);
    let config = DynamoDbConfig::new("ck_outage")
        .with_endpoint(local.endpoint())
        .with_operation_timeout(timeout)
        .with_health_timeout(timeout)
        .with_max_attempts(2);
    let backend = DynamoDbBackend::connect(config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        backend.ensure_table_with(TtlDeletion::Untouched).await?;
        backend.set("k", Bytes::from_static(b"v"), None).await?;
        Ok::<_, Failed>(())
    })?;

    local.stop()?;
    runtime.block_on(async {
        let started = Instant::now();
        let outcome = backend.get("k").await;
        let took = started.elapsed();
        match outcome {
            Err(err) if matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => {}
            other => return Err(Failed::from(format!("get with the server gone: {other:?}"))),
        }
        check(
            took <= timeout + Duration::from_secs(1),
            format!("get took {took:?}, the operation timeout is {timeout:?}"),
        )?;
        let health = backend.health_check().await;
        check(
            !health.healthy && health.latency <= timeout + Duration::from_millis(500),
            format!("health with the server gone: {health:?}"),
        )
    })?;

    local.restart()?;
    runtime.block_on(async {
        // A new DynamoDB Local starts empty; the same backend value carries on.
        backend.ensure_table_with(TtlDeletion::Untouched).await?;
        backend.set("k", Bytes::from_static(b"again"), None).await?;
        check(
            backend.get("k").await? == Some(Bytes::from_static(b"again")),
            "get after recovery",
        )?;
        check(
            backend.health_check().await.healthy,
            "healthy after recovery",
        )
    })?;
    drop(runtime);
    drop(local);
    Ok(())
}

fn async_trial<F, Fut>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = TestResult>,
{
    Trial::test(name, move || {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(test())
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let local = if args.list {
        None
    } else {
        match DynamoDbLocal::start() {
            Ok(local) => {
                eprintln!("{local}");
                let _ = ENDPOINT.set(local.endpoint().to_owned());
                Some(local)
            }
            Err(why) => {
                eprintln!("the DynamoDB tests cannot run: {why}");
                return ExitCode::FAILURE;
            }
        }
    };
    let trials = vec![
        async_trial(
            "expired_item_written_directly_is_absent",
            expired_item_written_directly_is_absent,
        ),
        async_trial(
            "reserved_word_attribute_names_work",
            reserved_word_attribute_names_work,
        ),
        async_trial(
            "value_size_at_the_limit_works_one_over_fails",
            value_size_at_the_limit_works_one_over_fails,
        ),
        async_trial(
            "corrupt_items_are_protocol_errors",
            corrupt_items_are_protocol_errors,
        ),
        async_trial("refused_credentials_are_auth", refused_credentials_are_auth),
        async_trial(
            "missing_table_error_says_how_to_fix",
            missing_table_error_says_how_to_fix,
        ),
        async_trial("silent_server_is_a_timeout", silent_server_is_a_timeout),
        async_trial(
            "ensure_table_is_idempotent_and_enables_ttl_deletion",
            ensure_table_is_idempotent_and_enables_ttl_deletion,
        ),
        // Starts a server of its own even when an endpoint is given: it has to stop one.
        Trial::test(
            "server_loss_is_unavailable_and_unhealthy_then_recovers",
            server_loss_is_unavailable_and_unhealthy_then_recovers,
        ),
    ];
    let code = libtest_mimic::run(&args, trials).exit_code();
    drop(local);
    code
}
