//! How many requests a call makes to a DynamoDB endpoint that reads each request and then
//! resets the connection (the answer is lost, the request may have been performed): reads
//! are retried up to `max_attempts`, writes are sent once (a retried write can land out of
//! order, a retried delete misreports; see `DynamoDbConfig::max_attempts`). And one that
//! never answers: every call is one attempt that times out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig};
use cachekit_core::{Backend, Bytes, ErrorKind};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A loopback endpoint that counts connections; each is held open silently, or (`reset`)
/// read from until the request has arrived and then reset.
async fn endpoint(reset: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            if !reset {
                held.push(stream);
                continue;
            }
            tokio::spawn(async move {
                // Every DynamoDB request body is JSON ending in `}`.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stream.read(&mut buffer).await {
                    request.extend_from_slice(&buffer[..read]);
                    if read == 0 || request.ends_with(b"}") {
                        break;
                    }
                }
                let _ = stream.set_zero_linger();
            });
        }
    });
    (url, accepted)
}

/// Three attempts for reads, within `deadline` (long enough for the SDK's backoff
/// between them when attempts fail fast).
async fn backend(endpoint: &str, deadline: Duration) -> DynamoDbBackend {
    let config = DynamoDbConfig::new("silent")
        .with_endpoint(endpoint)
        .with_operation_timeout(deadline)
        .with_max_attempts(3);
    DynamoDbBackend::connect(config).expect("a client")
}

#[tokio::test]
async fn a_read_whose_answer_is_lost_is_retried_up_to_max_attempts() {
    let (endpoint, accepted) = endpoint(true).await;
    let err = backend(&endpoint, Duration::from_secs(20))
        .await
        .get("k")
        .await
        .expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_set_whose_answer_is_lost_is_sent_once() {
    let (endpoint, accepted) = endpoint(true).await;
    let err = backend(&endpoint, Duration::from_secs(20))
        .await
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_delete_whose_answer_is_lost_is_sent_once() {
    let (endpoint, accepted) = endpoint(true).await;
    let err = backend(&endpoint, Duration::from_secs(20))
        .await
        .delete("k")
        .await
        .expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_call_that_times_out_is_one_attempt() {
    let (endpoint, accepted) = endpoint(false).await;
    let backend = backend(&endpoint, Duration::from_millis(600)).await;
    let err = backend.delete("k").await.expect_err("no answer");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
