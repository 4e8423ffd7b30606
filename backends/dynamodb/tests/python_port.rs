//! The Python cachekit page's `DynamoDBBackend` example, ported literally, as a regression
//! test of the kit's strength: run against DynamoDB Local, the kit must catch each of its
//! bugs by the rules that own it, and every failure must be one of those bugs.
//!
//! Its bugs, line by line: `exists` projects `"key"`, a DynamoDB reserved word, without
//! `ExpressionAttributeNames`, so every `exists` is a ValidationException; `delete` does not
//! ask for `ReturnValues=ALL_OLD`, so `Attributes` is never there and it always says "did
//! not exist"; `get` returns expired items (DynamoDB deletes them lazily, days late, and the
//! table here has TTL deletion off to show exactly that); `if ttl` stores a zero ttl as
//! "forever"; and every error is one undifferentiated kind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachekit_backend_dynamodb::aws_sdk_dynamodb::primitives::Blob;
use cachekit_backend_dynamodb::aws_sdk_dynamodb::types::AttributeValue;
use cachekit_backend_dynamodb::aws_sdk_dynamodb::Client;
use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_conformance::{run_suite, Answer, Failure, Operation, RunOptions, Suite};
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, ErrorKind, HealthReport, Result,
};

const TABLE: &str = "cachekit_python_port";

struct PythonDynamoDbBackend {
    client: Client,
    table_name: String,
}

/// boto3 raises; the page's protocol says to wrap failures in `BackendError`.
fn raised(err: impl std::fmt::Display) -> BackendError {
    BackendError::new(ErrorKind::Other, err.to_string())
}

#[async_trait]
impl Backend for PythonDynamoDbBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let response = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key("key", AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(raised)?;
        let Some(item) = response.item else {
            return Ok(None);
        };
        match item.get("value") {
            Some(AttributeValue::B(value)) => Ok(Some(Bytes::from(value.clone().into_inner()))),
            _ => Err(raised("KeyError: 'value'")),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .item("key", AttributeValue::S(key.to_owned()))
            .item("value", AttributeValue::B(Blob::new(value.to_vec())));
        // `if ttl:` on an int of seconds; `int(time.time()) + ttl`.
        if let Some(ttl) = ttl.map(|ttl| ttl.as_secs()).filter(|ttl| *ttl != 0) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(raised)?
                .as_secs();
            request = request.item("ttl", AttributeValue::N((now + ttl).to_string()));
        }
        request.send().await.map_err(raised)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let response = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .key("key", AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(raised)?;
        Ok(response.attributes.is_some())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let response = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key("key", AttributeValue::S(key.to_owned()))
            .projection_expression("key")
            .send()
            .await
            .map_err(|err| {
                raised(cachekit_backend_dynamodb::aws_sdk_dynamodb::error::DisplayErrorContext(err))
            })?;
        Ok(response.item.is_some())
    }

    async fn health_check(&self) -> HealthReport {
        let started = std::time::Instant::now();
        let healthy = self
            .client
            .describe_table()
            .table_name(&self.table_name)
            .send()
            .await
            .is_ok();
        HealthReport {
            healthy,
            backend_type: "dynamodb".to_owned(),
            latency: started.elapsed(),
            details: BTreeMap::new(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        // What DynamoDB itself allows; the port checks none of it, DynamoDB does.
        Capabilities::new("dynamodb")
            .with_max_key_bytes(2048)
            .with_max_value_bytes(400 * 1024 - 2048 - 11 - 21)
            .with_shared_across_instances(true)
    }
}

/// The port's bugs, each with the rules that must catch it and the failures it explains.
struct Bug {
    what: &'static str,
    caught_by: &'static [&'static str],
    /// Whether a failure is this bug's doing, judged by the failure's fields (operation,
    /// expected, got), never by its rendered text.
    explains: fn(&Failure) -> bool,
}

fn answers(failure: &Failure) -> (Option<Operation>, Option<&Answer>, Option<&Answer>) {
    (
        failure.operation_checked(),
        failure.expected_answer(),
        failure.got_answer(),
    )
}

const BUGS: &[Bug] = &[
    Bug {
        what: "exists() projects \"key\", a reserved word, without ExpressionAttributeNames",
        caught_by: &[
            "delete_exists::exists_is_true_after_set",
            "delete_exists::exists_is_false_for_missing_key",
        ],
        // Every exists is a ValidationException, which the port wraps as `Other`.
        explains: |failure| {
            matches!(
                answers(failure),
                (
                    Some(Operation::Exists),
                    _,
                    Some(Answer::Error {
                        kind: ErrorKind::Other,
                        ..
                    })
                )
            )
        },
    },
    Bug {
        what: "delete() does not ask for ReturnValues=ALL_OLD, so it never reports true",
        caught_by: &[
            "delete_exists::delete_of_existing_key_returns_true",
            "concurrency::concurrent_deletes_report_one_existed",
        ],
        explains: |failure| {
            matches!(
                answers(failure),
                (
                    Some(Operation::Delete),
                    Some(Answer::Bool(true)),
                    Some(Answer::Bool(false))
                ) | (
                    Some(Operation::Delete),
                    Some(Answer::Count(1)),
                    Some(Answer::Count(0))
                )
            )
        },
    },
    Bug {
        what: "get() returns expired items (no read-side expiry filter)",
        caught_by: &[
            "ttl::expired_entry_is_absent_from_get",
            "ttl::later_set_shortens_the_ttl",
        ],
        explains: |failure| {
            matches!(
                answers(failure),
                (
                    Some(Operation::Get),
                    Some(Answer::Value(None)),
                    Some(Answer::Value(Some(_)))
                )
            )
        },
    },
    Bug {
        what: "`if ttl` stores a zero ttl as forever, and no ttl is validated",
        caught_by: &[
            "ttl::zero_ttl_is_invalid_argument",
            "ttl::ttl_above_maximum_is_invalid_argument",
        ],
        explains: |failure| {
            matches!(
                answers(failure),
                (
                    Some(Operation::Set),
                    Some(Answer::ErrorOfKind(ErrorKind::InvalidArgument)),
                    Some(Answer::Succeeded(_))
                )
            )
        },
    },
    Bug {
        what: "every failure is one undifferentiated error, and declared limits are not checked",
        caught_by: &[
            "keys::key_over_max_length_is_invalid_key",
            "values::value_over_max_size_is_value_too_large",
        ],
        // The port turns every error into `Other`, a timeout under load included.
        explains: |failure| match answers(failure) {
            (_, _, Some(Answer::Error { kind, .. })) => *kind == ErrorKind::Other,
            (
                Some(Operation::Set),
                Some(Answer::ErrorOfKind(ErrorKind::InvalidKey | ErrorKind::ValueTooLarge)),
                Some(Answer::Succeeded(_)),
            ) => true,
            _ => false,
        },
    },
];

/// Pinned so the run is the same on every machine; the classification above does not
/// depend on it (the random model case reports its divergence in the same fields).
const SEED: u64 = 20_251_125;

#[test]
fn the_kit_catches_each_bug_of_the_python_dynamodb_backend() {
    let local = DynamoDbLocal::start().unwrap_or_else(|why| panic!("{why}"));
    eprintln!("{local}");
    let endpoint = local.endpoint().to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let config = DynamoDbConfig::new(TABLE).with_endpoint(&endpoint);
    runtime.block_on(async {
        let backend = DynamoDbBackend::connect(config.clone()).expect("local endpoint");
        backend
            .ensure_table_with(TtlDeletion::Untouched)
            .await
            .expect("create the table");
    });
    // A client per case: its connection pool lives on the case's own runtime.
    let suite = Suite::new("python_dynamodb", move || {
        let client = config.client().expect("local endpoint");
        async move {
            PythonDynamoDbBackend {
                client,
                table_name: TABLE.to_owned(),
            }
        }
    });
    let report = run_suite(
        &suite,
        &RunOptions {
            seed: Some(SEED),
            ..RunOptions::default()
        },
    );
    drop(runtime);
    drop(local);

    let failed: BTreeSet<String> = report.failures().map(|case| case.case.id()).collect();
    // Each bug is caught by the rules that own it ...
    for bug in BUGS {
        let missed: Vec<_> = bug
            .caught_by
            .iter()
            .filter(|rule| !failed.contains(**rule))
            .collect();
        assert!(
            missed.is_empty(),
            "bug `{}` not caught by {missed:?}\n{report}",
            bug.what
        );
    }
    // ... and every failure is explained by one of the bugs: nothing is blamed wrongly.
    for case in report.failures() {
        let Some(failure) = case.outcome.failure() else {
            continue;
        };
        assert!(
            BUGS.iter().any(|bug| (bug.explains)(failure)),
            "{} failed for a reason the port's bugs do not explain:\n{}",
            case.case.id(),
            case.message().unwrap_or_default()
        );
    }
    // What it gets right stays green.
    for rule in [
        "crud::set_then_get_returns_the_value",
        "crud::overwrite_replaces_the_value",
        "health::health_check_reports_healthy",
    ] {
        assert!(!failed.contains(rule), "{rule} should pass\n{report}");
    }
}
