//! The HTTP backend's own rule, run beside the kit's (family `extra`): an error the
//! server's store reports crosses the wire with a status that keeps its kind, and the
//! client turns that status back into the kind a caller can act on. The server under test
//! serves a [`FailsOnDemand`] store, which fails every operation on a key named after an
//! error kind and serves every other key from the store it wraps.

use std::time::Duration;

use cachekit_backend_http::{HttpBackend, HttpConfig, RetryPolicy};
use cachekit_conformance::{Answer, CaseResult, Ctx, Failure, Operation};
use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, ErrorKind, HealthReport, Result,
};

/// Keys starting with this, then an error kind's wire name and `-`, make the store fail.
pub const FAIL_PREFIX: &str = "cachekit-store-fails-";

/// Words every injected error's message carries, which must reach the client's error.
const STORE_WORDS: &str = "on purpose";

/// The wait a failing store asks for with [`ErrorKind::Throttled`]: the server must round
/// it up to whole seconds in `Retry-After`.
const THROTTLED_WAIT: Duration = Duration::from_millis(1500);

/// A store that fails on request: the keys under [`FAIL_PREFIX`] fail with the kind they
/// name; every other key is served by the wrapped store.
pub struct FailsOnDemand<B>(pub B);

fn injected_failure(key: &str) -> Result<()> {
    let Some(kind) = key
        .strip_prefix(FAIL_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(ErrorKind::from_wire_name)
    else {
        return Ok(());
    };
    let error = BackendError::new(kind, format!("the store fails {key:?} {STORE_WORDS}"));
    Err(match kind {
        ErrorKind::Throttled => error.with_retry_after(THROTTLED_WAIT),
        _ => error,
    })
}

#[async_trait]
impl<B: Backend> Backend for FailsOnDemand<B> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        injected_failure(key)?;
        self.0.get(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        injected_failure(key)?;
        self.0.set(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        injected_failure(key)?;
        self.0.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        injected_failure(key)?;
        self.0.exists(key).await
    }

    async fn health_check(&self) -> HealthReport {
        self.0.health_check().await
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// Each kind a store may report, the status the server must answer with, and the kind the
/// client must report for that status. A store that rejects the server (auth, protocol) is
/// the server's failure, not the caller's credentials: a bad gateway, so `Unavailable`.
const CROSSINGS: [(ErrorKind, u16, ErrorKind); 9] = [
    (ErrorKind::InvalidKey, 400, ErrorKind::InvalidKey),
    (ErrorKind::InvalidArgument, 400, ErrorKind::InvalidArgument),
    (ErrorKind::ValueTooLarge, 413, ErrorKind::ValueTooLarge),
    (ErrorKind::Throttled, 429, ErrorKind::Throttled),
    (ErrorKind::Unavailable, 503, ErrorKind::Unavailable),
    (ErrorKind::Timeout, 504, ErrorKind::Timeout),
    (ErrorKind::Auth, 502, ErrorKind::Unavailable),
    (ErrorKind::Protocol, 502, ErrorKind::Unavailable),
    (ErrorKind::Other, 500, ErrorKind::Unavailable),
];

/// Every error kind of the store reaches the wire as its status (`429` with the store's
/// wait rounded up in `Retry-After`) and the client as the kind that status stands for,
/// on every operation; where the answer has a body (all but HEAD), the client's message
/// keeps the store's own words. Reports every crossing that went wrong, not only the first.
pub async fn store_errors_keep_their_kind_across_the_server(_ctx: Ctx) -> CaseResult {
    let base_url = super::server_url();
    let mut config = HttpConfig::new(base_url.clone());
    // One request per call: the kinds are the point here, retries have their own rules.
    config.retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let client = HttpBackend::new(config).map_err(|err| {
        Failure::new("build a client for the server")
            .operation(Operation::Setup)
            .got(Answer::Error {
                kind: err.kind(),
                message: err.message().to_owned(),
            })
    })?;
    let raw = reqwest::Client::new();
    let mut wrong: Vec<Failure> = Vec::new();
    for (store_kind, status, client_kind) in CROSSINGS {
        let key = format!("{FAIL_PREFIX}{}-probe", store_kind.wire_name());
        let answer = raw.get(format!("{base_url}/cache/{key}")).send().await;
        let (got_status, retry_after) = match &answer {
            Ok(response) => (
                Some(response.status().as_u16()),
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            ),
            Err(_) => (None, None),
        };
        let want_retry_after = (store_kind == ErrorKind::Throttled).then(|| "2".to_owned());
        if got_status != Some(status) || retry_after != want_retry_after {
            wrong.push(
                Failure::new(format!("the status of a store's {store_kind:?} error"))
                    .operation(Operation::Get)
                    .key(&key)
                    .expected(Answer::Described(format!(
                        "{status}{}",
                        want_retry_after
                            .map(|wait| format!(" with Retry-After: {wait}"))
                            .unwrap_or_default()
                    )))
                    .got(Answer::Described(match (got_status, retry_after) {
                        (Some(status), Some(wait)) => format!("{status} with Retry-After: {wait}"),
                        (Some(status), None) => format!("{status} without Retry-After"),
                        (None, _) => format!(
                            "no answer: {}",
                            answer.err().map(|e| e.to_string()).unwrap_or_default()
                        ),
                    })),
            );
        }
        let outcomes = [
            (Operation::Get, client.get(&key).await.map(|_| ())),
            (
                Operation::Set,
                client.set(&key, Bytes::from_static(b"v"), None).await,
            ),
            (Operation::Delete, client.delete(&key).await.map(|_| ())),
            (Operation::Exists, client.exists(&key).await.map(|_| ())),
        ];
        for (operation, outcome) in outcomes {
            let got = match outcome {
                Err(err) if err.kind() == client_kind => {
                    let has_body = operation != Operation::Exists;
                    if has_body && !err.message().contains(STORE_WORDS) {
                        wrong.push(
                            Failure::new(format!(
                                "the client's message for a store's {store_kind:?} error keeps \
                                 the store's words"
                            ))
                            .operation(operation)
                            .key(&key)
                            .expected(Answer::Described(format!(
                                "a message containing {STORE_WORDS:?}"
                            )))
                            .got(Answer::Error {
                                kind: err.kind(),
                                message: err.message().to_owned(),
                            }),
                        );
                    }
                    continue;
                }
                Err(err) => Answer::Error {
                    kind: err.kind(),
                    message: err.message().to_owned(),
                },
                Ok(()) => Answer::unit(),
            };
            wrong.push(
                Failure::new(format!(
                    "the client's kind for a store's {store_kind:?} error"
                ))
                .operation(operation)
                .key(&key)
                .expected(Answer::ErrorOfKind(client_kind))
                .got(got),
            );
        }
    }
    let mut wrong = wrong.into_iter();
    let Some(first) = wrong.next() else {
        return Ok(());
    };
    Err(wrong.fold(first, |failure, other| failure.note(other.to_string())))
}
