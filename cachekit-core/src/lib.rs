//! The cachekit backend protocol.
//!
//! A cache backend is anything that implements [`Backend`]: five async operations
//! (`get`, `set`, `delete`, `exists`, `health_check`) plus the [`Capabilities`] it
//! declares. Every storage failure is a [`BackendError`] whose [`ErrorKind`] tells
//! the caller what to do about it.
//!
//! This crate has no network dependencies; backends live in their own crates and the
//! `cachekit-conformance` crate proves that they follow the rules written on [`Backend`].

mod backend;
mod capabilities;
mod error;
mod health;
mod server_text;

pub use backend::Backend;
pub use capabilities::{Capabilities, Clock, Consistency, TtlSupport, PROTOCOL_MAX_TTL};
pub use error::{BackendError, ErrorKind, Result, ERROR_KIND_HEADER};
pub use health::{HealthReport, FIELDS_ELIDED_DETAIL};
pub use server_text::{
    sanitize_server_text, sanitize_server_text_part, ELISION_MARKER, MAX_SERVER_TEXT_CHARS,
};

/// Re-exported so backend crates name the same `Bytes` and `async_trait` as the trait.
pub use async_trait::async_trait;
pub use bytes::Bytes;
