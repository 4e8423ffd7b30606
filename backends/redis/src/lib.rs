//! cachekit backend on Redis, or any server speaking its protocol (Valkey, KeyDB,
//! Dragonfly, a managed service, a proxy).
//!
//! One string per entry: `SET key value [PX ms]`, `GET`, `DEL`, `EXISTS`. Expiry is the
//! server's own, to the millisecond: ttls are rounded *up* to whole milliseconds, so an
//! entry never expires before its ttl. Redis checks expiry on every access, so an expired
//! key is absent to `get`, `exists` and `delete` even before it is reclaimed.
//!
//! One multiplexed connection per backend, re-established after the server drops it: a
//! call that finds the server gone fails with `Unavailable`, and later calls reconnect.
//! A failed connection attempt is not retried within a call (a wrong password would
//! otherwise be tried again and again). The connection is driven by a task on the tokio
//! runtime that connected: use a backend on that runtime (one made on a throwaway
//! runtime fails its first call there with `Unavailable`, then reconnects).
//!
//! ```no_run
//! use std::time::Duration;
//! use cachekit_backend_redis::{RedisBackend, RedisConfig};
//! use cachekit_core::{Backend, Bytes};
//!
//! # async fn demo() -> Result<(), cachekit_core::BackendError> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379/0").with_key_prefix("myapp:");
//! let cache = RedisBackend::connect(config).await?;
//! cache.set("user:1", Bytes::from_static(b"alice"), Some(Duration::from_secs(60))).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
#[cfg(feature = "local")]
pub mod local;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use cachekit_core::{
    async_trait, Backend, BackendError, Bytes, Capabilities, HealthReport, Result, TtlSupport,
    PROTOCOL_MAX_TTL,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue};

pub use crate::config::{
    RedisConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_TIMEOUT, DEFAULT_OPERATION_TIMEOUT,
    MAX_KEY_PREFIX_BYTES,
};

/// Redis' default `proto-max-bulk-len`: the longest string (key or value) it accepts,
/// assumed when the server does not let us read its configuration.
pub const DEFAULT_MAX_BULK_BYTES: usize = 512 * 1024 * 1024;

/// A [`Backend`] on one Redis database.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    config: RedisConfig,
    caps: Capabilities,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection manager: its Debug prints the client, password included.
        f.debug_struct("RedisBackend")
            .field("config", &self.config)
            .field("caps", &self.caps)
            .finish()
    }
}

/// What the server says about itself at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerLimits {
    max_bulk_bytes: usize,
    may_evict: bool,
}

impl RedisBackend {
    /// Connects (one attempt, bounded by the connect timeout), then reads the server's
    /// string limit and eviction policy to declare them.
    ///
    /// Fails with `InvalidArgument` for a bad URL, `Auth` for refused credentials,
    /// `Unavailable` or `Timeout` when the server cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let client = client_for(&config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.operation_timeout));
        let connecting = ConnectionManager::new_with_config(client, manager_config);
        let connection = bounded(&config, "connect", config.connect_timeout, connecting).await?;
        let mut backend = RedisBackend {
            connection,
            caps: Capabilities::new("redis"),
            config,
        };
        let limits = backend.server_limits().await?;
        backend.caps = capabilities(&backend.config, limits);
        Ok(backend)
    }

    /// The configuration (its `Debug` hides the password).
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The connection, for commands this backend does not wrap. Keys written through it
    /// do not get the key prefix.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    fn full_key(&self, key: &str) -> Result<String> {
        self.caps.check_key(key)?;
        Ok(format!("{}{key}", self.config.key_prefix))
    }

    async fn query<T: FromRedisValue>(&self, operation: &str, command: Cmd) -> Result<T> {
        let mut connection = self.connection.clone();
        let sent = async move { command.query_async::<T>(&mut connection).await };
        bounded(&self.config, operation, self.config.operation_timeout, sent).await
    }

    /// `CONFIG GET` for the string limit and the eviction policy; a server that refuses
    /// `CONFIG` (managed services often do) gets Redis' defaults for the limit and is
    /// assumed to evict, since nothing proves it does not.
    async fn server_limits(&self) -> Result<ServerLimits> {
        // One name per call: servers before Redis 7 take a single pattern.
        let mut settings = BTreeMap::new();
        for name in ["proto-max-bulk-len", "maxmemory", "maxmemory-policy"] {
            let mut connection = self.connection.clone();
            let command = redis::cmd("CONFIG").arg("GET").arg(name).clone();
            let asked = tokio::time::timeout(
                self.config.operation_timeout,
                command.query_async::<Vec<(String, String)>>(&mut connection),
            )
            .await;
            match asked {
                Ok(Ok(pairs)) => settings.extend(pairs),
                // Refused by an ACL, or renamed away: the server keeps its settings to itself.
                Ok(Err(err)) if matches!(err.code(), Some("NOPERM" | "ERR")) => break,
                Ok(Err(err)) => {
                    return Err(error::classify("CONFIG GET", &err, |text| {
                        self.config.redact(text)
                    }))
                }
                Err(_) => {
                    return Err(BackendError::timeout(format!(
                        "redis CONFIG GET took longer than {:?}",
                        self.config.operation_timeout
                    )))
                }
            }
        }
        Ok(limits_from(&settings))
    }
}

fn limits_from(settings: &BTreeMap<String, String>) -> ServerLimits {
    let max_bulk_bytes = settings
        .get("proto-max-bulk-len")
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAX_BULK_BYTES);
    let bounded_memory = settings.get("maxmemory").is_none_or(|limit| limit != "0");
    let evicting_policy = settings
        .get("maxmemory-policy")
        .is_none_or(|policy| policy != "noeviction");
    ServerLimits {
        max_bulk_bytes,
        may_evict: bounded_memory && evicting_policy,
    }
}

fn capabilities(config: &RedisConfig, limits: ServerLimits) -> Capabilities {
    Capabilities::new("redis")
        .with_ttl(TtlSupport {
            precision: Duration::from_millis(1),
            max: PROTOCOL_MAX_TTL,
        })
        .with_max_key_bytes(
            limits
                .max_bulk_bytes
                .saturating_sub(config.key_prefix.len()),
        )
        .with_max_value_bytes(limits.max_bulk_bytes)
        .with_shared_across_instances(true)
        .with_may_evict(limits.may_evict)
}

fn client_for(config: &RedisConfig) -> Result<Client> {
    let opened = match (&config.root_certificates_pem, config.uses_tls()) {
        (Some(pem), true) => {
            install_crypto_provider();
            Client::build_with_tls(
                config.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
        }
        (_, true) => {
            install_crypto_provider();
            Client::open(config.url.as_str())
        }
        (_, false) => Client::open(config.url.as_str()),
    };
    opened.map_err(|err| {
        BackendError::invalid_argument(
            config.redact(&format!("cannot use {}: {err}", config.redacted_url())),
        )
    })
}

fn install_crypto_provider() {
    // Fails only if a provider is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs `call` for at most `limit`, mapping its error and its deadline.
async fn bounded<T>(
    config: &RedisConfig,
    operation: &str,
    limit: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(error::classify(operation, &err, |text| config.redact(text))),
        Err(_) => Err(BackendError::timeout(format!(
            "redis {operation} took longer than {limit:?} ({})",
            config.redacted_url()
        ))),
    }
}

/// At most 64 characters of what a server said, for a message.
fn elided(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if shown.len() < text.len() {
        shown.push_str("…[elided]");
    }
    format!("{shown:?}")
}

/// `ttl` in whole milliseconds, rounded up so an entry never expires early.
fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

#[async_trait]
impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.full_key(key)?;
        self.query("GET", redis::cmd("GET").arg(key).clone()).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let key = self.full_key(key)?;
        self.caps.check_value(&value)?;
        let ttl = self.caps.check_ttl(ttl)?;
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value.as_ref());
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl_millis(ttl));
        }
        match self.query::<redis::Value>("SET", command).await? {
            redis::Value::Okay => Ok(()),
            other => Err(BackendError::protocol(format!(
                "redis SET answered {} instead of OK",
                elided(&format!("{other:?}"))
            ))),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = self.full_key(key)?;
        let removed: u64 = self
            .query("DEL", redis::cmd("DEL").arg(key).clone())
            .await?;
        Ok(removed > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let key = self.full_key(key)?;
        let count: u64 = self
            .query("EXISTS", redis::cmd("EXISTS").arg(key).clone())
            .await?;
        Ok(count > 0)
    }

    async fn health_check(&self) -> HealthReport {
        let endpoint = self.config.redacted_url();
        HealthReport::probe("redis", self.config.health_timeout, async {
            let answer: String = self.query("PING", redis::cmd("PING")).await?;
            if answer != "PONG" {
                return Err(BackendError::protocol(format!(
                    "PING answered {}",
                    elided(&answer)
                )));
            }
            Ok(BTreeMap::from([
                ("endpoint".to_owned(), endpoint),
                ("ping".to_owned(), answer),
            ]))
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::whole_millis(Duration::from_millis(1500), 1500)]
    #[case::sub_millisecond(Duration::from_nanos(1), 1)]
    #[case::just_over(Duration::from_micros(1001), 2)]
    #[case::thirty_days(PROTOCOL_MAX_TTL, 2_592_000_000)]
    #[case::thirty_days_less_a_nanosecond(PROTOCOL_MAX_TTL - Duration::from_nanos(1), 2_592_000_000)]
    fn ttls_round_up_to_whole_milliseconds(#[case] ttl: Duration, #[case] millis: u64) {
        assert_eq!(ttl_millis(ttl), millis);
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[rstest]
    #[case::defaults_unbounded(&[("proto-max-bulk-len", "536870912"), ("maxmemory", "0"), ("maxmemory-policy", "noeviction")], DEFAULT_MAX_BULK_BYTES, false)]
    #[case::bounded_lru(&[("proto-max-bulk-len", "1048576"), ("maxmemory", "100mb"), ("maxmemory-policy", "allkeys-lru")], 1_048_576, true)]
    #[case::bounded_noeviction(&[("maxmemory", "1000"), ("maxmemory-policy", "noeviction")], DEFAULT_MAX_BULK_BYTES, false)]
    #[case::unbounded_lru(&[("maxmemory", "0"), ("maxmemory-policy", "allkeys-lru")], DEFAULT_MAX_BULK_BYTES, false)]
    #[case::config_refused(&[], DEFAULT_MAX_BULK_BYTES, true)]
    fn limits_come_from_the_servers_configuration(
        #[case] pairs: &[(&str, &str)],
        #[case] max_bulk_bytes: usize,
        #[case] may_evict: bool,
    ) {
        assert_eq!(
            limits_from(&settings(pairs)),
            ServerLimits {
                max_bulk_bytes,
                may_evict
            }
        );
    }

    #[test]
    fn the_prefix_counts_against_the_key_limit() {
        let config = RedisConfig::new("redis://h").with_key_prefix("app:");
        let caps = capabilities(
            &config,
            ServerLimits {
                max_bulk_bytes: 1000,
                may_evict: false,
            },
        );
        assert_eq!(caps.max_key_bytes, Some(996));
        assert_eq!(caps.max_value_bytes, Some(1000));
    }
}
