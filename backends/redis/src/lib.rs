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

use std::sync::Arc;

use cachekit_core::{
    async_trait, sanitize_server_text, Backend, BackendError, Bytes, Capabilities, HealthReport,
    Result, TtlSupport, PROTOCOL_MAX_TTL,
};
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{Client, Cmd, FromRedisValue, IntoConnectionInfo, RedisError};

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
    client: Client,
    connection: Arc<Mutex<Connection>>,
    config: RedisConfig,
    caps: Capabilities,
}

/// The connection in use, and how many times it was replaced: a failure replaces only the
/// connection it happened on, so a burst of failures costs one new connection, not one each.
struct Connection {
    generation: u64,
    manager: ConnectionManager,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection's internals say nothing a user needs; the config says where.
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
    /// Fails with `InvalidArgument` for a bad URL or a database the server refuses, `Auth`
    /// for refused credentials, `Unavailable` or `Timeout` when the server cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let client = client_for(&config)?;
        let connecting =
            ConnectionManager::new_with_config(client.clone(), manager_config(&config));
        let manager = match timed(config.connect_timeout, connecting).await {
            Some(Ok(manager)) => manager,
            // `SELECT` of a database the server does not have.
            Some(Err(err)) if err.code() == Some("ERR") => {
                return Err(BackendError::invalid_argument(config.redact(&format!(
                    "redis connect to {}: {}",
                    config.redacted_url(),
                    sanitize_server_text(&err.to_string())
                ))))
            }
            Some(Err(err)) => {
                return Err(failure(
                    &config,
                    "connect",
                    config.connect_timeout,
                    Some(err),
                ))
            }
            None => return Err(failure(&config, "connect", config.connect_timeout, None)),
        };
        let mut backend = RedisBackend {
            client,
            connection: Arc::new(Mutex::new(Connection {
                generation: 0,
                manager,
            })),
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

    /// The connection in use, for commands this backend does not wrap. Keys written through
    /// it do not get the key prefix.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.lock().manager.clone()
    }

    fn full_key(&self, key: &str) -> Result<String> {
        self.caps.check_key(key)?;
        Ok(format!("{}{key}", self.config.key_prefix))
    }

    /// Sends `command` on the current connection, bounded by the operation timeout; a
    /// failure the connection cannot recover from on its own replaces it (see
    /// [`needs_new_connection`]).
    async fn send<T: FromRedisValue>(&self, command: Cmd) -> Option<redis::RedisResult<T>> {
        let (generation, mut manager) = {
            let current = self.connection.lock();
            (current.generation, current.manager.clone())
        };
        let outcome = timed(self.config.operation_timeout, async move {
            command.query_async::<T>(&mut manager).await
        })
        .await;
        let broken = match &outcome {
            None => true,
            Some(Err(err)) => needs_new_connection(err),
            Some(Ok(_)) => false,
        };
        if broken {
            self.replace_connection(generation);
        }
        outcome
    }

    /// Swaps in a new connection (made lazily, on the next call) unless another call
    /// already replaced the one that failed.
    fn replace_connection(&self, failed_generation: u64) {
        let mut current = self.connection.lock();
        if current.generation != failed_generation {
            return;
        }
        // Fails only for configurations `connect` already accepted.
        if let Ok(manager) = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            manager_config(&self.config),
        ) {
            current.manager = manager;
            current.generation += 1;
        }
    }

    async fn query<T: FromRedisValue>(&self, operation: &str, command: Cmd) -> Result<T> {
        let limit = self.config.operation_timeout;
        match self.send(command).await {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(err)) => Err(failure(&self.config, operation, limit, Some(err))),
            None => Err(failure(&self.config, operation, limit, None)),
        }
    }

    /// `CONFIG GET` for the string limit and the eviction policy; a server that refuses
    /// `CONFIG` (managed services and proxies often do, each in its own words) gets Redis'
    /// defaults for the limit and is assumed to evict, since nothing proves it does not.
    async fn server_limits(&self) -> Result<ServerLimits> {
        // One name per call: servers before Redis 7 take a single pattern.
        let mut settings = BTreeMap::new();
        for name in ["proto-max-bulk-len", "maxmemory", "maxmemory-policy"] {
            let command = redis::cmd("CONFIG").arg("GET").arg(name).clone();
            match self.send::<Vec<(String, String)>>(command).await {
                Some(Ok(pairs)) => settings.extend(pairs),
                // Any refusal but of our credentials: the server keeps its settings to itself.
                Some(Err(err))
                    if err
                        .code()
                        .is_some_and(|code| !matches!(code, "NOAUTH" | "WRONGPASS")) =>
                {
                    break
                }
                outcome => {
                    let limit = self.config.operation_timeout;
                    return Err(failure(
                        &self.config,
                        "CONFIG GET",
                        limit,
                        outcome.and_then(Result::err),
                    ));
                }
            }
        }
        Ok(limits_from(&settings))
    }
}

/// Whether `err` leaves the connection unusable in a way the `redis` crate does not repair
/// by itself: it reconnects after I/O errors only, so a reconnect refused by the server
/// (`AUTH`, `SELECT`), a replica that used to be the primary (`READONLY`, after a DNS
/// failover), an unparseable answer, or an I/O deadline (a dead link the kernel has not
/// noticed) would otherwise fail every later call.
fn needs_new_connection(err: &RedisError) -> bool {
    err.is_io_error()
        || matches!(
            err.kind(),
            redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::Parse
        )
        || matches!(
            err.code(),
            Some("NOAUTH" | "WRONGPASS" | "READONLY" | "ERR")
        )
}

/// Runs `call` for at most `limit`; `None` when the limit passed first.
async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Option<redis::RedisResult<T>> {
    tokio::time::timeout(limit, call).await.ok()
}

/// The error for a call to `operation` that failed with `err`, or ran out of `limit`
/// (`None`).
fn failure(
    config: &RedisConfig,
    operation: &str,
    limit: Duration,
    err: Option<RedisError>,
) -> BackendError {
    match err {
        Some(err) => error::classify(operation, &err, |text| config.redact(text)),
        None => BackendError::timeout(format!(
            "redis {operation} took longer than {limit:?} ({})",
            config.redacted_url()
        )),
    }
}

fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.operation_timeout))
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

/// How long the kernel keeps unacknowledged data, and an idle connection unprobed, before
/// it declares the link dead: a silent partition then fails calls within seconds, not the
/// kernel's default quarter of an hour.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

fn client_for(config: &RedisConfig) -> Result<Client> {
    let invalid = |err: RedisError| {
        BackendError::invalid_argument(config.redact(&format!(
            "cannot use {}: {}",
            config.redacted_url(),
            sanitize_server_text(&err.to_string())
        )))
    };
    let tcp = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(
            TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL),
        )
        .set_user_timeout(config.operation_timeout.max(KEEPALIVE_IDLE));
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(invalid)?
        .set_tcp_settings(tcp);
    if !config.uses_tls() {
        return Client::open(info).map_err(invalid);
    }
    install_crypto_provider();
    match &config.root_certificates_pem {
        Some(pem) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => Client::open(info),
    }
    .map_err(invalid)
}

fn install_crypto_provider() {
    // Fails only if a provider is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
                sanitize_server_text(&format!("{other:?}"))
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
                    sanitize_server_text(&answer)
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

    #[rstest]
    #[case::connection_reset(
        RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        true
    )]
    #[case::io_deadline(
        RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        true
    )]
    #[case::password_rotated(redis::make_extension_error("WRONGPASS".into(), None), true)]
    #[case::restarted_with_a_password(redis::make_extension_error("NOAUTH".into(), None), true)]
    #[case::demoted_to_replica(redis::make_extension_error("READONLY".into(), None), true)]
    #[case::select_refused(redis::make_extension_error("ERR".into(), Some("DB index is out of range".into())), true)]
    #[case::memory_full(redis::make_extension_error("OOM".into(), None), false)]
    #[case::foreign_data(redis::make_extension_error("WRONGTYPE".into(), None), false)]
    #[case::acl_refuses_a_key(redis::make_extension_error("NOPERM".into(), None), false)]
    #[case::loading(redis::make_extension_error("LOADING".into(), None), false)]
    fn connections_are_replaced_only_when_the_crate_would_not_recover(
        #[case] err: RedisError,
        #[case] replaced: bool,
    ) {
        assert_eq!(needs_new_connection(&err), replaced);
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
