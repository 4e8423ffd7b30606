//! Writes of one key, applied in the order they were called.
//!
//! A request on the wire cannot be recalled: if the caller drops a `set` future after the
//! `PutItem` left, DynamoDB may still apply it, and a later write of the same key sent on
//! another connection can overtake it and then be overwritten by it. So each write runs on
//! a task of its own, which finishes even when its caller stops waiting, and the next write
//! of that key through this backend (or a clone of it) waits for it first.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use cachekit_core::{BackendError, ErrorKind, Result};

type KeyLocks = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// Per-key order of the writes made through one backend and its clones.
#[derive(Clone, Default)]
pub(crate) struct WriteOrder {
    keys: Arc<Mutex<KeyLocks>>,
}

impl fmt::Debug for WriteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("WriteOrder")
            .field("keys_with_writes_in_flight", &keys.len())
            .finish()
    }
}

impl WriteOrder {
    /// Runs `write` of `key` once every earlier write of `key` has finished, on a task of
    /// its own: dropping the returned future does not stop a request already sent, and the
    /// next write of `key` waits for it.
    pub(crate) async fn run<T, F>(&self, key: &str, write: F) -> Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let lock = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone();
        // Waiting here sends nothing: a caller that gives up now leaves no write behind.
        let turn = lock.clone().lock_owned().await;
        let keys = self.keys.clone();
        let key = key.to_owned();
        let task = tokio::spawn(async move {
            let written = write.await;
            drop(turn);
            forget_if_idle(&keys, &key, &lock);
            written
        });
        task.await.map_err(|err| {
            BackendError::new(
                ErrorKind::Other,
                format!("the write of a key ended without an answer: {err}"),
            )
        })
    }
}

/// Drops `key`'s lock from the map when no other write holds or awaits it, so the map
/// holds only keys with writes in flight.
fn forget_if_idle(keys: &Mutex<KeyLocks>, key: &str, lock: &Arc<tokio::sync::Mutex<()>>) {
    let mut keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
    // Two owners: the map and this task. Any other writer cloned it under this same lock.
    let idle = keys
        .get(key)
        .is_some_and(|held| Arc::ptr_eq(held, lock) && Arc::strong_count(lock) == 2);
    if idle {
        keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_dropped_write_finishes_before_the_next_write_of_its_key() {
        let order = WriteOrder::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let first = {
            let log = log.clone();
            order.run("k", async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push("dropped");
            })
        };
        // Polled once (it starts), then dropped while its write sleeps.
        let mut first = Box::pin(first);
        let _ = poll_once(first.as_mut()).await;
        drop(first);
        let log_second = log.clone();
        order
            .run("k", async move {
                log_second
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push("later");
            })
            .await
            .expect("the later write");
        let seen = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(seen, vec!["dropped", "later"]);
    }

    #[tokio::test]
    async fn writes_of_other_keys_do_not_wait_and_idle_keys_are_forgotten() {
        let order = WriteOrder::default();
        let slow = order.run("slow", tokio::time::sleep(Duration::from_secs(60)));
        let mut slow = Box::pin(slow);
        let _ = poll_once(slow.as_mut()).await;
        let fast = tokio::time::timeout(Duration::from_secs(5), order.run("fast", async { 7 }))
            .await
            .expect("a write of another key does not wait")
            .expect("the write");
        assert_eq!(fast, 7);
        let keys = order.keys.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!keys.contains_key("fast"), "{:?}", keys.keys());
        assert!(keys.contains_key("slow"));
    }

    /// Polls `future` once, so that it starts (takes its turn and spawns its write).
    async fn poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
