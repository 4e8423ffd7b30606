//! cachekit backend on memcached, over its meta text protocol (`mg`, `ms`, `md`).
//!
//! One memcached item per entry. Keys travel base64-encoded with the meta `b` flag, so
//! every key the cachekit protocol allows (spaces, newlines, control characters, any
//! Unicode) is stored as its exact bytes; values are sent as length-prefixed data blocks
//! and come back byte for byte. What the backend declares is read from the server it
//! connects to: the value limit follows the server's `-I` (`item_size_max`).
//!
//! ```no_run
//! use std::time::Duration;
//! use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
//! use cachekit_core::{Backend, Bytes};
//!
//! # async fn demo() -> Result<(), cachekit_core::BackendError> {
//! let cache = MemcachedBackend::connect(MemcachedConfig::new("127.0.0.1:11211")).await?;
//! cache.set("user:1", Bytes::from_static(b"alice"), Some(Duration::from_secs(60))).await?;
//! assert_eq!(cache.get("user:1").await?, Some(Bytes::from_static(b"alice")));
//! # Ok(()) }
//! ```
//!
//! # What it declares, and why
//! - **Keys** up to 186 bytes minus the configured prefix. Memcached limits the key
//!   *token* to 250 bytes, and with the `b` flag that token is the padded base64 text
//!   (1.6.18 refuses unpadded base64): 186 raw bytes are the most that encode into 250
//!   characters. A longer key fails with `InvalidKey` before anything is sent.
//! - **Values** up to `item_size_max` minus memcached's per-item cost (a 48-byte header,
//!   the key's NUL, the value's CRLF, 8 bytes of CAS unless `-C`) minus the longest key:
//!   1 048 331 bytes on a default server. Larger values fail with `ValueTooLarge` before
//!   they are sent; a server that still answers `SERVER_ERROR object too large` is
//!   reported the same way. A failed set never stores part of a value; note that
//!   memcached itself removes the previous value of a key whose set it refused for size
//!   or memory, so that a stale value does not outlive a failed write.
//! - **Ttl** with a precision of three seconds, up to 30 days; see
//!   [`protocol::TTL_PRECISION`] for why not one.
//! - **Shared** across instances (it is one server), and **may evict**: memcached drops
//!   least-recently-used items when its memory is full.
//!
//! # Why our own protocol code
//! The Rust memcached clients that are maintained speak the classic text or the binary
//! protocol (`get`/`set`/`delete`): their keys must be free of spaces and control
//! characters, so most of the keys the cachekit protocol allows could not be stored at
//! all, and none of them sends meta commands with base64 keys (the `b` flag), which is
//! how memcached stores arbitrary key bytes. The meta protocol also answers what the
//! backend contract needs in one round trip each: `md` says whether a live item was
//! deleted (`HD`/`NF`), and `mg` without the `v` flag checks existence without
//! transferring the value. The protocol subset used here is four commands and six reply
//! forms, so it is written out in this crate (`protocol.rs`, all of it table-tested),
//! with strict limits on what it reads from the server: capped reply lines, value sizes
//! checked before any allocation, and a connection discarded after anything unexpected.
//!
//! # Errors
//! Connection refused, reset or closed: `Unavailable`. A missed deadline: `Timeout`.
//! `SERVER_ERROR out of memory…`: `Unavailable`, with the server's words. `CLIENT_ERROR`,
//! `ERROR` and replies that do not follow the protocol: `Protocol`, quoting the server's
//! text escaped and shortened. Nothing the server sends can make this crate panic.

mod config;
mod conn;
#[cfg(feature = "local")]
pub mod local;
pub mod protocol;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{
    async_trait, sanitize_server_text, Backend, BackendError, Bytes, Capabilities, HealthReport,
    Result, TtlSupport, PROTOCOL_MAX_TTL,
};

pub use crate::config::{
    MemcachedConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_OPERATION_TIMEOUT,
};
use crate::conn::{Conn, ExchangeError, Pool};
use crate::protocol::{Expiry, Line, MAX_RAW_KEY_BYTES, MAX_STATS_LINES, TTL_PRECISION};

/// The `backend_type` this backend declares.
pub const BACKEND_TYPE: &str = "memcached";

/// What the server said about itself in `stats settings` at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// `item_size_max`: the largest item, header and key included (`-I`).
    pub item_size_max: usize,
    /// `cas_enabled`: whether every item carries an 8-byte CAS number (off with `-C`).
    pub cas_enabled: bool,
}

impl ServerLimits {
    /// The largest value stored under the longest key this backend sends.
    pub fn max_value_bytes(&self) -> usize {
        protocol::value_limit(self.item_size_max, self.cas_enabled, MAX_RAW_KEY_BYTES)
    }

    /// The largest value the server can hold under any key (the shortest one): the bound
    /// on a value this backend is willing to read, since other clients may store values
    /// under short keys that this backend could not have written.
    pub fn max_readable_bytes(&self) -> usize {
        protocol::value_limit(self.item_size_max, self.cas_enabled, 1)
    }
}

/// The smallest `item_size_max` memcached accepts (`-I 1k`).
pub const MIN_ITEM_SIZE_MAX: usize = 1024;
/// The largest `item_size_max` memcached accepts (`-I 1g`); a server claiming more is refused.
pub const MAX_ITEM_SIZE_MAX: usize = 1024 * 1024 * 1024;

/// A [`Backend`] on one memcached server. Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct MemcachedBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: MemcachedConfig,
    pool: Pool,
    limits: ServerLimits,
    caps: Capabilities,
}

impl fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("config", &self.inner.config)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// One request, with its key already encoded.
enum Request<'a> {
    Get(&'a str),
    Exists(&'a str),
    Set {
        key: &'a str,
        value: &'a [u8],
        expiry: Expiry,
    },
    Delete(&'a str),
    Version,
    Stats(&'static str),
}

impl Request<'_> {
    fn name(&self) -> &'static str {
        match self {
            Request::Get(_) => "get",
            Request::Exists(_) => "exists",
            Request::Set { .. } => "set",
            Request::Delete(_) => "delete",
            Request::Version => "version",
            Request::Stats(_) => "stats",
        }
    }

    /// Whether sending it twice does what sending it once does. A delete does not: the
    /// second one would report "nothing there" for an entry the first one removed.
    fn may_repeat(&self) -> bool {
        !matches!(self, Request::Delete(_))
    }
}

enum Reply {
    Value(Option<Bytes>),
    Found(bool),
    Stored,
    Version(String),
    Stats(BTreeMap<String, String>),
}

impl MemcachedBackend {
    /// Connects to the server, reads `stats settings` to learn its item size limit, and
    /// keeps that connection for later operations.
    ///
    /// Fails with `Unavailable` when nothing accepts the connection, `Timeout` when the
    /// connection or the answer misses its deadline, `InvalidArgument` for an unusable
    /// configuration, `Protocol` when the server does not answer like memcached.
    pub async fn connect(config: MemcachedConfig) -> Result<Self> {
        config.validate()?;
        let pool = Pool::new(
            config.addr.clone(),
            config.connect_timeout,
            config.max_connections,
        );
        // Until the real limit is known, read no more than any server could hold.
        let read_cap = protocol::value_limit(usize::MAX, false, 0);
        let settings = match run_request(
            &pool,
            &Request::Stats("settings"),
            read_cap,
            config.operation_timeout,
        )
        .await?
        {
            Reply::Stats(settings) => settings,
            _ => return Err(BackendError::protocol("stats settings: unexpected reply")),
        };
        let limits = limits_from_settings(&settings)?;
        let caps = Capabilities::new(BACKEND_TYPE)
            .with_ttl(TtlSupport {
                precision: TTL_PRECISION,
                max: PROTOCOL_MAX_TTL,
            })
            .with_max_key_bytes(config.max_key_bytes())
            .with_max_value_bytes(limits.max_value_bytes())
            .with_shared_across_instances(true)
            .with_may_evict(true);
        Ok(MemcachedBackend {
            inner: Arc::new(Inner {
                config,
                pool,
                limits,
                caps,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MemcachedConfig {
        &self.inner.config
    }

    /// The server's limits as read at connect time.
    pub fn server_limits(&self) -> &ServerLimits {
        &self.inner.limits
    }

    /// The key as sent: prefix and key, base64-encoded, after the key checks.
    fn wire_key(&self, key: &str) -> Result<String> {
        self.inner.caps.check_key(key)?;
        Ok(protocol::wire_key(&self.inner.config.key_prefix, key))
    }

    async fn run(&self, request: &Request<'_>) -> Result<Reply> {
        run_request(
            &self.inner.pool,
            request,
            self.inner.limits.max_readable_bytes(),
            self.inner.config.operation_timeout,
        )
        .await
    }
}

fn limits_from_settings(settings: &BTreeMap<String, String>) -> Result<ServerLimits> {
    let item_size_max = settings
        .get("item_size_max")
        .and_then(|text| text.parse::<usize>().ok())
        .ok_or_else(|| {
            BackendError::protocol(format!(
                "stats settings has no numeric item_size_max (got {:?}); is this memcached?",
                settings.get("item_size_max")
            ))
        })?;
    // memcached itself refuses `-I` outside these: a server claiming more is not one, and
    // the number bounds what a value read may allocate.
    if !(MIN_ITEM_SIZE_MAX..=MAX_ITEM_SIZE_MAX).contains(&item_size_max) {
        return Err(BackendError::protocol(format!(
            "stats settings says item_size_max {item_size_max}; memcached allows \
             {MIN_ITEM_SIZE_MAX}..={MAX_ITEM_SIZE_MAX}"
        )));
    }
    // Without the setting, assume the costlier layout: a limit a little low is honest.
    let cas_enabled = settings
        .get("cas_enabled")
        .is_none_or(|value| value != "no");
    Ok(ServerLimits {
        item_size_max,
        cas_enabled,
    })
}

/// Runs `request` within `deadline`: on a pooled connection, and once more on a new one
/// if a pooled connection turns out to be broken and the request may be repeated.
async fn run_request(
    pool: &Pool,
    request: &Request<'_>,
    read_cap: usize,
    deadline: Duration,
) -> Result<Reply> {
    let attempts = async {
        let mut fresh = false;
        loop {
            let mut lease = pool.lease(fresh).await?;
            match exchange(lease.conn(), request, read_cap).await {
                Ok(reply) => {
                    lease.release();
                    return Ok(reply);
                }
                // A pooled connection the server has closed since (a restart, an idle
                // timeout) fails on first use; that says nothing about the server now.
                Err(ExchangeError::Io(_)) if lease.reused() && request.may_repeat() => {
                    fresh = true;
                }
                Err(err) => return Err(describe(pool, request, err)),
            }
        }
    };
    match tokio::time::timeout(deadline, attempts).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::timeout(format!(
            "{} on memcached at {}: no answer within {deadline:?}",
            request.name(),
            pool.addr()
        ))),
    }
}

fn describe(pool: &Pool, request: &Request<'_>, err: ExchangeError) -> BackendError {
    match err {
        ExchangeError::Io(err) => {
            let message = format!("{} on memcached at {}: {err}", request.name(), pool.addr());
            let err_kind = err.kind();
            let error = if err_kind == std::io::ErrorKind::TimedOut {
                BackendError::timeout(message)
            } else {
                BackendError::unavailable(message)
            };
            error.with_source(err)
        }
        ExchangeError::Reply(err) => err,
    }
}

/// Sends one request and reads its whole reply.
async fn exchange(
    conn: &mut Conn,
    request: &Request<'_>,
    read_cap: usize,
) -> Result<Reply, ExchangeError> {
    let name = request.name();
    match request {
        Request::Get(key) => {
            send(conn, &protocol::get_command(key)).await?;
            let line = conn.read_line().await?;
            match protocol::parse_line(&line, read_cap)? {
                Line::En => Ok(Reply::Value(None)),
                Line::Va(len) => {
                    let data = conn.read_data(len).await?;
                    Ok(Reply::Value(Some(Bytes::from(data))))
                }
                _ => Err(protocol::error_for(name, &line).into()),
            }
        }
        Request::Exists(key) => {
            send(conn, &protocol::exists_command(key)).await?;
            found(conn, name, Line::Hd, Line::En, read_cap).await
        }
        Request::Delete(key) => {
            send(conn, &protocol::delete_command(key)).await?;
            found(conn, name, Line::Hd, Line::Nf, read_cap).await
        }
        Request::Set { key, value, expiry } => {
            let server_now = match expiry {
                Expiry::AfterServerNow(_) => server_time(conn).await?,
                _ => 0,
            };
            let header = protocol::set_header(key, value.len(), *expiry, server_now);
            conn.send(&header, value, b"\r\n")
                .await
                .map_err(ExchangeError::Io)?;
            let line = conn.read_line().await?;
            match protocol::parse_line(&line, read_cap)? {
                Line::Hd => Ok(Reply::Stored),
                _ => Err(protocol::error_for(name, &line).into()),
            }
        }
        Request::Version => {
            send(conn, b"version\r\n").await?;
            let line = conn.read_line().await?;
            match protocol::parse_line(&line, read_cap)? {
                Line::Version(version) => Ok(Reply::Version(version)),
                _ => Err(protocol::error_for(name, &line).into()),
            }
        }
        Request::Stats(group) => {
            send(conn, format!("stats {group}\r\n").as_bytes()).await?;
            read_stats(conn, read_cap).await.map(Reply::Stats)
        }
    }
}

async fn send(conn: &mut Conn, command: &[u8]) -> Result<(), ExchangeError> {
    conn.send(command, b"", b"")
        .await
        .map_err(ExchangeError::Io)
}

/// A reply that is one of two lines: `yes` → true, `no` → false.
async fn found(
    conn: &mut Conn,
    name: &str,
    yes: Line,
    no: Line,
    read_cap: usize,
) -> Result<Reply, ExchangeError> {
    let line = conn.read_line().await?;
    let parsed = protocol::parse_line(&line, read_cap)?;
    if parsed == yes {
        Ok(Reply::Found(true))
    } else if parsed == no {
        Ok(Reply::Found(false))
    } else {
        Err(protocol::error_for(name, &line).into())
    }
}

async fn read_stats(
    conn: &mut Conn,
    read_cap: usize,
) -> Result<BTreeMap<String, String>, ExchangeError> {
    let mut stats = BTreeMap::new();
    for _ in 0..=MAX_STATS_LINES {
        let line = conn.read_line().await?;
        match protocol::parse_line(&line, read_cap)? {
            Line::Stat(name, value) => {
                stats.insert(name, value);
            }
            Line::End => return Ok(stats),
            _ => return Err(protocol::error_for("stats", &line).into()),
        }
    }
    Err(BackendError::protocol(format!(
        "a stats reply of more than {MAX_STATS_LINES} lines"
    ))
    .into())
}

/// The server's clock (`stats` → `time`), which memcached measures absolute exptimes on.
async fn server_time(conn: &mut Conn) -> Result<u64, ExchangeError> {
    send(conn, b"stats\r\n").await?;
    let stats = read_stats(conn, 0).await?;
    stats
        .get("time")
        .and_then(|time| time.parse::<u64>().ok())
        .ok_or_else(|| {
            BackendError::protocol(format!(
                "stats has no numeric `time` (got {:?})",
                stats.get("time")
            ))
            .into()
        })
}

#[async_trait]
impl Backend for MemcachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.wire_key(key)?;
        match self.run(&Request::Get(&key)).await? {
            Reply::Value(value) => Ok(value),
            _ => Err(BackendError::protocol("get: unexpected reply")),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let key = self.wire_key(key)?;
        self.inner.caps.check_value(&value)?;
        // Validated only: the expiry is computed from the ttl as given, since rounding it
        // to the precision first and then to whole seconds would round twice.
        self.inner.caps.check_ttl(ttl)?;
        let request = Request::Set {
            key: &key,
            value: &value,
            expiry: protocol::expiry_for(ttl),
        };
        match self.run(&request).await? {
            Reply::Stored => Ok(()),
            _ => Err(BackendError::protocol("set: unexpected reply")),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = self.wire_key(key)?;
        match self.run(&Request::Delete(&key)).await? {
            Reply::Found(found) => Ok(found),
            _ => Err(BackendError::protocol("delete: unexpected reply")),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let key = self.wire_key(key)?;
        match self.run(&Request::Exists(&key)).await? {
            Reply::Found(found) => Ok(found),
            _ => Err(BackendError::protocol("exists: unexpected reply")),
        }
    }

    async fn health_check(&self) -> HealthReport {
        let timeout = self.inner.config.health_timeout;
        HealthReport::probe(BACKEND_TYPE, timeout, async {
            let reply = run_request(
                &self.inner.pool,
                &Request::Version,
                self.inner.limits.max_readable_bytes(),
                timeout,
            )
            .await?;
            let Reply::Version(version) = reply else {
                return Err(BackendError::protocol("version: unexpected reply"));
            };
            Ok(BTreeMap::from([
                ("version".to_owned(), sanitize_server_text(&version)),
                ("address".to_owned(), self.inner.config.addr.clone()),
                (
                    "item_size_max".to_owned(),
                    self.inner.limits.item_size_max.to_string(),
                ),
            ]))
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use cachekit_core::ErrorKind;
    use rstest::rstest;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[rstest]
    #[case::default_server(&[("item_size_max", "1048576"), ("cas_enabled", "yes")], 1_048_331)]
    #[case::without_cas(&[("item_size_max", "1048576"), ("cas_enabled", "no")], 1_048_339)]
    #[case::cas_unknown(&[("item_size_max", "1048576")], 1_048_331)]
    #[case::small_items(&[("item_size_max", "1024"), ("cas_enabled", "yes")], 779)]
    fn the_value_limit_follows_stats_settings(
        #[case] pairs: &[(&str, &str)],
        #[case] max_value: usize,
    ) {
        let limits = limits_from_settings(&settings(pairs)).expect("limits");
        assert_eq!(limits.max_value_bytes(), max_value);
        assert_eq!(
            limits.max_readable_bytes(),
            max_value + MAX_RAW_KEY_BYTES - 1
        );
    }

    #[rstest]
    #[case::missing(&[("cas_enabled", "yes")])]
    #[case::not_a_number(&[("item_size_max", "1m")])]
    fn settings_without_an_item_size_are_protocol_errors(#[case] pairs: &[(&str, &str)]) {
        let err = limits_from_settings(&settings(pairs)).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }

    #[test]
    fn only_delete_is_never_repeated() {
        assert!(!Request::Delete("a").may_repeat());
        assert!(Request::Get("a").may_repeat());
        assert!(Request::Set {
            key: "a",
            value: b"",
            expiry: Expiry::Never
        }
        .may_repeat());
    }
}
