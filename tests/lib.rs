//! Workspace-level integration tests; the tests themselves are the `[[test]]` targets
//! beside this file. This library holds what several of them share.

use std::time::Duration;

use cachekit_core::{Backend, Bytes, Result};

/// The test harness from the Python cachekit "Custom Backends" page, ported step by step:
/// set/get, delete, exists, and a 1 s ttl checked after 1.5 s.
///
/// Returns the first step that went wrong, named as in the original.
pub async fn python_reference_harness(backend: &dyn Backend) -> Result<(), String> {
    let step = |name: &str, ok: bool| if ok { Ok(()) } else { Err(name.to_owned()) };
    let failed = |name: &str| {
        let name = name.to_owned();
        move |err| format!("{name}: {err}")
    };

    backend
        .set("key", Bytes::from_static(b"value"), None)
        .await
        .map_err(failed("set"))?;
    let got = backend.get("key").await.map_err(failed("get"))?;
    step(
        "get returns the value set",
        got.as_deref() == Some(b"value"),
    )?;

    let deleted = backend.delete("key").await.map_err(failed("delete"))?;
    step("delete returns true", deleted)?;
    let got = backend.get("key").await.map_err(failed("get"))?;
    step("get after delete is None", got.is_none())?;

    backend
        .set("key2", Bytes::from_static(b"value2"), None)
        .await
        .map_err(failed("set"))?;
    let exists = backend.exists("key2").await.map_err(failed("exists"))?;
    step("exists after set", exists)?;

    let ttl = Some(Duration::from_secs(1));
    backend
        .set("ttl_key", Bytes::from_static(b"value"), ttl)
        .await
        .map_err(failed("set with ttl"))?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = backend.get("ttl_key").await.map_err(failed("get"))?;
    step("get 1.5 s after a 1 s ttl is None (expired)", got.is_none())
}

/// The README's code blocks, compiled and run as doctests so the quick start stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
