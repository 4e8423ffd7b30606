//! `cachekit check`: the conformance rules, run through the kit's programmatic runner (the
//! very cases `cargo test` runs), against the embedded defaults, an HTTP service, a
//! DynamoDB table, a Redis or a memcached server, with terminal, JSON, JUnit and Markdown
//! reports, an optional expected-failure baseline, and an optional concurrent-history soak.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_backend_http::{HttpBackend, HttpConfig};
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_backend_memory::MemoryBackend;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_conformance::baseline::{Baseline, Verdict};
use cachekit_conformance::export::{self, Counts};
use cachekit_conformance::fault_proxy::FaultProxy;
use cachekit_conformance::history::render::save;
use cachekit_conformance::history::under_faults::scheduled_run;
use cachekit_conformance::history::Verdict as HistoryVerdict;
use cachekit_conformance::matrix::Matrix;
use cachekit_conformance::soak::{soak, SoakOutcome};
use cachekit_conformance::{
    run_suite, CaseReport, ConnectionTimeouts, Outcome, Progress, Report, RunOptions, Suite,
    SuiteKind, WithCapabilities,
};
use cachekit_core::{Backend, Capabilities, Consistency, ErrorKind, TtlSupport};
use cachekit_server::{BackgroundServer, ServerConfig};

use crate::exit;

/// The embedded server's connection timeouts for the raw API rules: short, so that
/// waiting them out costs a case a few seconds, and distinct, so that one counted in the
/// other's place is seen.
const EMBEDDED_HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const EMBEDDED_IDLE_TIMEOUT: Duration = Duration::from_millis(3000);
const EMBEDDED_WRITE_TIMEOUT: Duration = Duration::from_millis(2000);

/// The longest connection timeout `check http` accepts as a declaration: each rule waits
/// its timeout out plus 1.5 s, within the kit's 120 s per case.
const MAX_DECLARED_CONNECTION_TIMEOUT_MS: u64 = 100_000;

/// What to check.
#[derive(Debug, clap::Subcommand)]
pub enum Target {
    /// The embedded defaults: the memory backend, and cachekit-server (over memory) on a
    /// loopback port, checked through the HTTP client and with raw requests.
    Memory {
        /// Declarations, selection, baseline and reports.
        #[command(flatten)]
        options: CheckOptions,
    },
    /// A service speaking the cachekit HTTP API (`GET/PUT/DELETE/HEAD URL/cache/{key}`,
    /// `GET URL/health`): through the HTTP client, and on the wire with raw requests.
    Http {
        /// The service's base URL, e.g. http://127.0.0.1:8080.
        url: String,
        /// Bearer token the service requires.
        #[arg(long, env = "CACHEKIT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Per-request timeout, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout_ms: u64,
        /// Declare: the service closes a connection whose request head is not complete MS
        /// milliseconds after its first byte, or that sends nothing for MS after it opens
        /// (checked by raw requests, not before and at most 1.5 s after; up to 100000).
        #[arg(
            long,
            value_name = "MS",
            help_heading = "Declared capabilities",
            value_parser = clap::value_parser!(u64).range(1..=MAX_DECLARED_CONNECTION_TIMEOUT_MS)
        )]
        header_timeout_ms: Option<u64>,
        /// Declare: the service closes a kept-alive connection idle for MS milliseconds
        /// after a response (checked by raw requests, not before and at most 1.5 s after;
        /// up to 100000).
        #[arg(
            long,
            value_name = "MS",
            help_heading = "Declared capabilities",
            value_parser = clap::value_parser!(u64).range(1..=MAX_DECLARED_CONNECTION_TIMEOUT_MS)
        )]
        idle_timeout_ms: Option<u64>,
        /// Declare: the service cuts off a client that has not read a response MS
        /// milliseconds after it began (checked by raw requests: pipelined GETs of a large
        /// value left unread must be cut off at most 1.5 s after; up to 100000).
        #[arg(
            long,
            value_name = "MS",
            help_heading = "Declared capabilities",
            value_parser = clap::value_parser!(u64).range(1..=MAX_DECLARED_CONNECTION_TIMEOUT_MS)
        )]
        write_timeout_ms: Option<u64>,
        /// Declarations, selection, baseline and reports.
        #[command(flatten)]
        options: CheckOptions,
    },
    /// A DynamoDB table, or any DynamoDB-compatible endpoint (DynamoDB Local). Credentials
    /// come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or dummy ones for a local endpoint.
    Dynamodb {
        /// The endpoint URL, e.g. http://127.0.0.1:8000.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// The table.
        #[arg(long)]
        table: String,
        /// The region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Create the table if it is missing (TTL deletion left off).
        #[arg(long)]
        create_table: bool,
        /// Declarations, selection, baseline and reports.
        #[command(flatten)]
        options: CheckOptions,
    },
    /// A Redis server, or anything speaking its protocol (Valkey, KeyDB, Dragonfly, a
    /// managed service, a proxy). Limits and eviction are read from its CONFIG when allowed.
    Redis {
        /// redis://[user[:password]@]host[:port][/db], or rediss://… for TLS. The
        /// password is never printed.
        #[arg(env = "CACHEKIT_REDIS_URL", hide_env_values = true)]
        url: String,
        /// A prefix for every key the check writes (it adds a unique one of its own too).
        #[arg(long, value_name = "PREFIX", default_value = "")]
        key_prefix: String,
        /// Per-command timeout, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout_ms: u64,
        /// Root certificates (PEM) to trust for rediss://, e.g. a private CA.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Declarations, selection, baseline and reports.
        #[command(flatten)]
        options: CheckOptions,
    },
    /// A memcached server (1.6 or later: the meta protocol), or a service that speaks the
    /// meta commands and answers `stats settings` (the value limit is read from it) and
    /// `stats` (ttls near 30 days are sent as absolute times on the server's clock).
    Memcached {
        /// host:port, e.g. 127.0.0.1:11211.
        addr: String,
        /// A prefix for every key the check writes (it adds a unique one of its own too).
        #[arg(long, value_name = "PREFIX", default_value = "")]
        key_prefix: String,
        /// Per-command timeout, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        timeout_ms: u64,
        /// Declarations, selection, baseline and reports.
        #[command(flatten)]
        options: CheckOptions,
    },
}

/// Declarations, selection and reports, common to every target.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckOptions {
    /// Declare: the service has no ttl support (ttl rules are reported "not claimed").
    #[arg(long, help_heading = "Declared capabilities")]
    pub no_ttl: bool,
    /// Declare: ttl precision in milliseconds (default: the client's, 1000 for HTTP).
    #[arg(long, value_name = "MS", help_heading = "Declared capabilities")]
    pub ttl_precision_ms: Option<u64>,
    /// Declare: the longest ttl accepted, in seconds (default 30 days).
    #[arg(long, value_name = "SECS", help_heading = "Declared capabilities")]
    pub max_ttl_secs: Option<u64>,
    /// Declare: the longest key, in UTF-8 bytes.
    #[arg(long, value_name = "BYTES", help_heading = "Declared capabilities")]
    pub max_key_size: Option<usize>,
    /// Declare: the largest value, in bytes.
    #[arg(long, value_name = "BYTES", help_heading = "Declared capabilities")]
    pub max_value_size: Option<usize>,
    /// Declare: entries may be evicted before their ttl.
    #[arg(long, help_heading = "Declared capabilities")]
    pub may_evict: bool,
    /// Declare: a key the service cannot represent (repeatable).
    #[arg(
        long = "reject-key",
        value_name = "KEY",
        help_heading = "Declared capabilities"
    )]
    pub reject_keys: Vec<String>,
    /// Declare: reads may lag writes by up to MS milliseconds (eventual consistency); the
    /// histories are then checked against that bound instead of linearizability.
    #[arg(long, value_name = "MS", help_heading = "Declared capabilities")]
    pub eventual_staleness_ms: Option<u64>,

    /// Only cases whose `family::case` id contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Seed for the random cases (replays a failure).
    #[arg(long, env = "CACHEKIT_SEED")]
    pub seed: Option<u64>,
    /// Rules known to fail (TOML): only new failures and unexpected passes fail the run.
    #[arg(long, value_name = "FILE", help_heading = "Baseline")]
    pub baseline: Option<PathBuf>,
    /// Write the current failures as a baseline to FILE (then edit in the reasons).
    #[arg(long, value_name = "FILE", help_heading = "Baseline")]
    pub write_baseline: Option<PathBuf>,
    /// Write the report as JSON (schema in the README) to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    pub json: Option<PathBuf>,
    /// Write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary to FILE (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    pub markdown: Option<PathBuf>,
    /// Never draw the live progress line, even on a terminal.
    #[arg(long, help_heading = "Reports")]
    pub no_progress: bool,

    /// After the rules, record a concurrent history this long (e.g. 30s, 500ms, 2m) from
    /// four clients against each backend suite and check it for linearizability.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Soak")]
    pub histories: Option<Duration>,
    /// With --histories: also record one through a fault proxy in front of the service
    /// (jitter, resets, an uneven network, a blackhole, a partition, then healed), and
    /// require answers one order explains, only timeout/unavailable errors within the
    /// client's deadline, and service again within 5 s of the heal. Plain TCP only
    /// (http://, redis://, memcached, a DynamoDB http:// endpoint).
    #[arg(long, requires = "histories", help_heading = "Soak")]
    pub faults: bool,
}

/// Longest `--histories` soak: an hour. A history grows with its length, and checking it
/// must end in reasonable time.
pub const MAX_SOAK: Duration = Duration::from_secs(3600);

/// A duration as `--histories` takes it: a whole number and a unit (`ms`, `s`, `m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 30s, 500ms or 2m"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s or m"
            ))
        }
    };
    if duration.is_zero() || duration > MAX_SOAK {
        return Err(format!("{text:?} is outside 1ms ..= 1h"));
    }
    Ok(duration)
}

impl CheckOptions {
    fn declares_anything(&self) -> bool {
        self.no_ttl
            || self.ttl_precision_ms.is_some()
            || self.max_ttl_secs.is_some()
            || self.max_key_size.is_some()
            || self.max_value_size.is_some()
            || self.may_evict
            || !self.reject_keys.is_empty()
            || self.eventual_staleness_ms.is_some()
    }

    /// The backend's own declaration, narrowed or widened by the flags.
    pub fn declared(&self, mut caps: Capabilities) -> Capabilities {
        if self.no_ttl {
            caps.ttl = None;
        } else if self.ttl_precision_ms.is_some() || self.max_ttl_secs.is_some() {
            let base = caps.ttl.unwrap_or(TtlSupport::SECONDS);
            caps.ttl = Some(TtlSupport {
                precision: self
                    .ttl_precision_ms
                    .map_or(base.precision, Duration::from_millis),
                max: self.max_ttl_secs.map_or(base.max, Duration::from_secs),
            });
        }
        if let Some(max) = self.max_key_size {
            caps.max_key_bytes = Some(max);
        }
        if let Some(max) = self.max_value_size {
            caps.max_value_bytes = Some(max);
        }
        caps.may_evict |= self.may_evict;
        caps.rejected_keys.extend(self.reject_keys.iter().cloned());
        if let Some(consistency) = self.declared_consistency() {
            caps.consistency = consistency;
        }
        caps
    }

    /// The consistency the flags declare, if they declare one.
    fn declared_consistency(&self) -> Option<Consistency> {
        self.eventual_staleness_ms.map(|ms| Consistency::Eventual {
            staleness: Duration::from_millis(ms),
        })
    }

    /// A suite whose backends are made by an async `make` (one that connects), declaring
    /// `declared` (what a connected backend declared) as narrowed or widened by the flags.
    fn connecting_suite<F, Fut, B>(&self, name: &str, declared: Capabilities, make: F) -> Suite
    where
        F: Fn() -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = B> + Send + 'static,
        B: Backend + 'static,
    {
        let caps = self.declared(declared);
        Suite::new(name, move || {
            let make = make.clone();
            let caps = caps.clone();
            async move { WithCapabilities::new(make().await, caps) }
        })
    }

    fn suite<F, B>(&self, name: &str, make: F) -> Suite
    where
        F: Fn() -> B + Send + Sync + Clone + 'static,
        B: Backend + 'static,
    {
        let caps = self.declared(make().capabilities());
        Suite::new(name, move || {
            let backend = make();
            let caps = caps.clone();
            async move { WithCapabilities::new(backend, caps) }
        })
    }
}

/// Why a check could not judge anything: exit code 2.
#[derive(Debug)]
pub struct Unusable(pub String);

/// Runs `cachekit check`; the exit code follows [`exit`].
pub fn run(target: &Target) -> ExitCode {
    match check(target) {
        Ok(true) => ExitCode::from(exit::PASSED),
        Ok(false) => ExitCode::from(exit::RULES_VIOLATED),
        Err(Unusable(why)) => {
            eprintln!("cachekit check: {why}");
            ExitCode::from(exit::UNUSABLE)
        }
    }
}

/// The suites a target is checked with, and what must stay alive while they run.
struct Plan {
    suites: Vec<Suite>,
    /// How to reach the service through a fault proxy, for `--faults`.
    faultable: Result<Faultable, String>,
    _servers: Vec<BackgroundServer>,
}

/// A client of the service built to connect to a fault proxy instead.
type ProxiedClient = Box<dyn Fn(SocketAddr) -> ProxiedFuture>;
type ProxiedFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>, String>>>>;

/// How to put the fault proxy in front of a network target.
struct Faultable {
    /// The service's `host:port`.
    upstream: String,
    /// The clients' per-attempt timeout, and the longest one call may take.
    timeouts: (Duration, Duration),
    /// Builds a client that connects to the proxy at the given address.
    client: ProxiedClient,
}

/// `url` (`scheme://[user@]host[:port][/rest]`) split into the service's `host:port` and a
/// function that rewrites it to point at another address, keeping user and path.
pub fn swap_authority(
    url: &str,
    scheme: &str,
    default_port: u16,
) -> Result<(String, impl Fn(SocketAddr) -> String + Clone), String> {
    let prefix = format!("{scheme}://");
    let rest = url.strip_prefix(prefix.as_str()).ok_or_else(|| {
        format!(
            "--faults needs a plain {prefix}… address (TLS would not match the proxy's address)"
        )
    })?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    let (user, host_port) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    if host_port.is_empty() {
        return Err(format!("{prefix}… address without a host"));
    }
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        && !host_port.ends_with(']');
    let upstream = if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    let (user, path) = (user.to_owned(), path.to_owned());
    Ok((upstream, move |to: SocketAddr| {
        format!("{prefix}{user}{to}{path}")
    }))
}

fn plan(target: &Target) -> Result<Plan, Unusable> {
    match target {
        Target::Memory { options } => {
            let spawn = |config| {
                BackgroundServer::spawn(MemoryBackend::new, config).map_err(|err| {
                    Unusable(format!("cannot start cachekit-server on loopback: {err}"))
                })
            };
            let loopback = ServerConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                ..ServerConfig::default()
            };
            let server = spawn(loopback.clone())?;
            // The raw API rules get a server of their own whose connection timeouts are short
            // enough to wait out (the pooling client above keeps the default ones).
            let api_server = spawn(ServerConfig {
                header_read_timeout: EMBEDDED_HEADER_TIMEOUT,
                idle_timeout: EMBEDDED_IDLE_TIMEOUT,
                write_timeout: EMBEDDED_WRITE_TIMEOUT,
                ..loopback
            })?;
            let api_url = api_server.base_url().to_owned();
            let url = server.base_url().to_owned();
            println!("==> the embedded defaults: memory, and cachekit-server (memory) at {url}");
            println!(
                "    the raw http_api rules: a second cachekit-server at {api_url}, its header, \
                 idle and write timeouts {EMBEDDED_HEADER_TIMEOUT:?}, {EMBEDDED_IDLE_TIMEOUT:?} \
                 and {EMBEDDED_WRITE_TIMEOUT:?}, declared"
            );
            let config = HttpConfig::new(url.clone());
            let faultable = http_faultable(&url, config.clone());
            Ok(Plan {
                faultable,
                suites: vec![
                    options.suite("memory", MemoryBackend::new),
                    options.suite("http", move || {
                        HttpBackend::new(config.clone()).expect("a loopback URL is valid")
                    }),
                    Suite::http_api_declaring(
                        "http_api",
                        &api_url,
                        None,
                        options.declared(Capabilities::new("http-api")),
                    )
                    .declaring_connection_timeouts(
                        ConnectionTimeouts::new()
                            .with_header(EMBEDDED_HEADER_TIMEOUT)
                            .with_idle(EMBEDDED_IDLE_TIMEOUT)
                            .with_write(EMBEDDED_WRITE_TIMEOUT),
                    ),
                ],
                _servers: vec![server, api_server],
            })
        }
        Target::Http {
            url,
            token,
            timeout_ms,
            header_timeout_ms,
            idle_timeout_ms,
            write_timeout_ms,
            options,
        } => {
            let mut config = HttpConfig::new(url.clone());
            config.timeout = Duration::from_millis(*timeout_ms);
            if let Some(token) = token {
                config = config.with_token(token.clone());
            }
            let probe = HttpBackend::new(config.clone())
                .map_err(|err| Unusable(format!("{url}: {}", err.message())))?;
            reachable(&probe, url)?;
            say_what_is_declared(options);
            let faultable = http_faultable(url, config.clone());
            let mut suites = vec![options.suite("http", move || {
                HttpBackend::new(config.clone()).expect("validated above")
            })];
            // The API itself, byte for byte, whichever client the service's users have.
            if url.starts_with("http://") {
                suites.push(
                    Suite::http_api_declaring(
                        "http_api",
                        url,
                        token.clone(),
                        options.declared(Capabilities::new("http-api")),
                    )
                    .declaring_connection_timeouts({
                        let mut declared = ConnectionTimeouts::new();
                        declared.header = header_timeout_ms.map(Duration::from_millis);
                        declared.idle = idle_timeout_ms.map(Duration::from_millis);
                        declared.write = write_timeout_ms.map(Duration::from_millis);
                        declared
                    }),
                );
            } else {
                println!("    skipping the raw http_api family: it speaks plain http:// only");
            }
            Ok(Plan {
                suites,
                faultable,
                _servers: Vec::new(),
            })
        }
        Target::Dynamodb {
            endpoint,
            table,
            region,
            create_table,
            options,
        } => {
            let config = DynamoDbConfig::new(table.clone())
                .with_endpoint(endpoint.clone())
                .with_region(region.clone());
            let probe = DynamoDbBackend::connect(config.clone())
                .map_err(|err| Unusable(format!("{endpoint}: {}", err.message())))?;
            if *create_table {
                println!("==> creating table {table} if missing");
                block_on(probe.ensure_table_with(TtlDeletion::Untouched))?.map_err(|err| {
                    Unusable(format!("cannot create table {table}: {}", err.message()))
                })?;
            }
            reachable(&probe, endpoint)?;
            // A missing table fails every case with the same error: say so once instead.
            let health = block_on(probe.health_check())?;
            if !health.healthy {
                let why = health
                    .details
                    .get("error")
                    .map_or("unhealthy", String::as_str);
                return Err(Unusable(format!(
                    "table {table} at {endpoint} cannot be used: {why} (--create-table creates it)"
                )));
            }
            say_what_is_declared(options);
            let faultable = swap_authority(endpoint, "http", 80).map(|(upstream, to)| {
                let config = config.clone();
                let budget = config.operation_timeout;
                Faultable {
                    upstream,
                    timeouts: (budget / config.max_attempts.max(1), budget),
                    client: Box::new(move |proxy: SocketAddr| -> ProxiedFuture {
                        let config = config.clone().with_endpoint(to(proxy));
                        Box::pin(async move {
                            DynamoDbBackend::connect(config)
                                .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
                                .map_err(|err| err.message().to_owned())
                        })
                    }),
                }
            });
            // A client per case: its connection pool belongs to the case's runtime.
            Ok(Plan {
                suites: vec![options.suite("dynamodb", move || {
                    DynamoDbBackend::connect(config.clone()).expect("validated above")
                })],
                faultable,
                _servers: Vec::new(),
            })
        }
        Target::Redis {
            url,
            key_prefix,
            timeout_ms,
            ca_cert,
            options,
        } => {
            let mut config = RedisConfig::new(url.clone()).with_key_prefix(key_prefix.clone());
            config.operation_timeout = Duration::from_millis(*timeout_ms);
            config.health_timeout = config.operation_timeout;
            config.connect_timeout = REACHABILITY_TIMEOUT;
            if let Some(path) = ca_cert {
                let pem = std::fs::read(path).map_err(|err| {
                    Unusable(format!("cannot read --ca-cert {}: {err}", path.display()))
                })?;
                config = config.with_root_certificates_pem(pem);
            }
            let shown = config.redacted_url();
            let declared = connected_declaration(&shown, RedisBackend::connect(config.clone()))?;
            println!("==> redis at {shown}");
            say_what_is_declared(options);
            let faultable = swap_authority(url, "redis", 6379).map(|(upstream, to)| {
                let config = config.clone();
                let timeout = config.operation_timeout;
                Faultable {
                    upstream,
                    // A call may connect again first (a replaced connection).
                    timeouts: (timeout, timeout + config.connect_timeout),
                    client: Box::new(move |proxy: SocketAddr| -> ProxiedFuture {
                        let config = config.clone().with_url(to(proxy));
                        Box::pin(async move {
                            RedisBackend::connect(config)
                                .await
                                .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
                                .map_err(|err| err.message().to_owned())
                        })
                    }),
                }
            });
            Ok(Plan {
                suites: vec![options.connecting_suite("redis", declared, move || {
                    let config = config.clone();
                    async move { RedisBackend::connect(config).await.expect("reached above") }
                })],
                faultable,
                _servers: Vec::new(),
            })
        }
        Target::Memcached {
            addr,
            key_prefix,
            timeout_ms,
            options,
        } => {
            let timeout = Duration::from_millis(*timeout_ms);
            let config = MemcachedConfig::new(addr.clone())
                .with_key_prefix(key_prefix.clone())
                .with_connect_timeout(REACHABILITY_TIMEOUT)
                .with_operation_timeout(timeout)
                .with_health_timeout(timeout);
            let shown = format!("memcached at {addr}");
            let declared =
                connected_declaration(&shown, MemcachedBackend::connect(config.clone()))?;
            println!("==> memcached at {addr}");
            say_what_is_declared(options);
            let faultable = {
                let config = config.clone();
                Ok(Faultable {
                    upstream: addr.clone(),
                    // A call may find its pooled connection dead and repeat once.
                    timeouts: (timeout, timeout * 2 + REACHABILITY_TIMEOUT),
                    client: Box::new(move |proxy: SocketAddr| -> ProxiedFuture {
                        let mut config = config.clone();
                        config.addr = proxy.to_string();
                        Box::pin(async move {
                            MemcachedBackend::connect(config)
                                .await
                                .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
                                .map_err(|err| err.message().to_owned())
                        })
                    }),
                })
            };
            Ok(Plan {
                faultable,
                suites: vec![options.connecting_suite("memcached", declared, move || {
                    let config = config.clone();
                    async move {
                        MemcachedBackend::connect(config)
                            .await
                            .expect("reached above")
                    }
                })],
                _servers: Vec::new(),
            })
        }
    }
}

/// `--faults` for an HTTP service at `url`, with the clients configured as `config`.
fn http_faultable(url: &str, config: HttpConfig) -> Result<Faultable, String> {
    let (upstream, to) = swap_authority(url, "http", 80)?;
    let retry = config.retry;
    let budget = config.timeout * (retry.max_retries + 1) + retry.max_backoff * retry.max_retries;
    Ok(Faultable {
        upstream,
        timeouts: (config.timeout, budget),
        client: Box::new(move |proxy: SocketAddr| -> ProxiedFuture {
            let mut config = config.clone();
            config.base_url = to(proxy);
            Box::pin(async move {
                HttpBackend::new(config)
                    .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
                    .map_err(|err| err.message().to_owned())
            })
        }),
    })
}

/// Records a history of `duration` through a fault proxy in front of the service while the
/// standard schedule plays (seven phases), and reports what it found; true when nothing.
fn faulted_soak(
    faultable: &Faultable,
    duration: Duration,
    options: &CheckOptions,
) -> Result<bool, Unusable> {
    let seed = options
        .seed
        .unwrap_or_else(cachekit_conformance::seed_from_env);
    let consistency = options
        .declared_consistency()
        .unwrap_or(Consistency::Linearizable);
    println!(
        "\n==> a {duration:?} concurrent history through a fault proxy in front of {} (seed {seed})",
        faultable.upstream
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| Unusable(format!("cannot build a tokio runtime: {err}")))?;
    let run = runtime.block_on(async {
        let upstream = tokio::net::lookup_host(faultable.upstream.as_str())
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| Unusable(format!("cannot resolve {}", faultable.upstream)))?;
        let proxy = FaultProxy::start(upstream, seed)
            .await
            .map_err(|err| Unusable(format!("cannot start the fault proxy: {err}")))?;
        let mut clients = Vec::new();
        for _ in 0..4 {
            let client = (faultable.client)(proxy.local_addr())
                .await
                .map_err(|why| {
                    Unusable(format!("cannot connect through the fault proxy: {why}"))
                })?;
            clients.push(client);
        }
        let phase = duration / 7;
        Ok::<_, Unusable>(
            scheduled_run(
                &proxy,
                clients,
                "ck-faults",
                seed,
                faultable.timeouts,
                phase,
                consistency.into(),
            )
            .await,
        )
    })?;
    let ops = run.history.ops.len();
    let indeterminate = ops - run.history.determinate_count();
    println!("    {ops} operations, {indeterminate} indeterminate");
    if let HistoryVerdict::Linearizable(stats) = &run.verdict {
        let (p50, max) = stats.p50_and_max();
        println!("    linearizable; checked per key in {p50:?} (p50), {max:?} (max)");
    }
    if let Some(recovered) = run.recovered_after {
        println!("    served again {recovered:?} after the heal");
    }
    for problem in &run.problems {
        println!("    FAILED: {problem}");
    }
    if !run.problems.is_empty() {
        println!("    {}", save(&run.history, None, "faults"));
    }
    Ok(run.problems.is_empty())
}

fn say_what_is_declared(options: &CheckOptions) {
    if !options.declares_anything() {
        println!(
            "    declaring the client's defaults; describe the service with --max-value-size, \
             --max-key-size, --no-ttl, --ttl-precision-ms, --may-evict, --reject-key, \
             --eventual-staleness-ms"
        );
    }
}

/// How long the first request may take before the target counts as unreachable.
pub const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(5);

/// One request before the run: a target that refuses connections, never answers or refuses
/// the credentials fails in seconds with one line, not with a timeout per case.
fn reachable(backend: &(impl Backend + ?Sized), target: &str) -> Result<(), Unusable> {
    block_on(answers_in_time(backend, target))?
}

/// Connects with `connect` and probes the result, on one runtime (a connection lives on
/// the runtime that made it), and returns what the connected backend declares.
fn connected_declaration<B: Backend>(
    target: &str,
    connect: impl std::future::Future<Output = cachekit_core::Result<B>>,
) -> Result<Capabilities, Unusable> {
    block_on(async {
        let probe = connect
            .await
            .map_err(|err| Unusable(format!("{target} cannot be used: {}", err.message())))?;
        answers_in_time(&probe, target).await?;
        Ok(probe.capabilities())
    })?
}

async fn answers_in_time(backend: &(impl Backend + ?Sized), target: &str) -> Result<(), Unusable> {
    let probe = tokio::time::timeout(
        REACHABILITY_TIMEOUT,
        backend.exists("cachekit-check-reachability-probe"),
    )
    .await;
    match probe {
        Err(_) => Err(Unusable(format!(
            "{target} did not answer within {REACHABILITY_TIMEOUT:?}"
        ))),
        Ok(Err(err))
            if matches!(
                err.kind(),
                ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Auth
            ) =>
        {
            Err(Unusable(format!("{target} cannot be used: {err}")))
        }
        Ok(_) => Ok(()),
    }
}

fn options_of(target: &Target) -> &CheckOptions {
    match target {
        Target::Memory { options }
        | Target::Http { options, .. }
        | Target::Dynamodb { options, .. }
        | Target::Redis { options, .. }
        | Target::Memcached { options, .. } => options,
    }
}

/// `Ok(true)` when every claimed rule held (or failed as the baseline expects).
fn check(target: &Target) -> Result<bool, Unusable> {
    let options = options_of(target);
    let baseline = options
        .baseline
        .as_deref()
        .map(Baseline::load)
        .transpose()
        .map_err(Unusable)?;
    if let Some(filter) = &options.filter {
        let matches = cachekit_conformance::cases::all()
            .iter()
            .any(|case| case.id().contains(filter.as_str()));
        if !matches {
            return Err(Unusable(format!(
                "--filter {filter:?} selects no case (`cachekit rules` lists them)"
            )));
        }
    }
    let started = Instant::now();
    let plan = plan(target)?;
    if options.faults {
        // Refused before the rules run, not after.
        plan.faultable
            .as_ref()
            .map_err(|why| Unusable(why.clone()))?;
    }
    let progress = LiveProgress::new(!options.no_progress && std::io::stderr().is_terminal());
    let run_options = RunOptions {
        filter: options.filter.clone(),
        seed: options.seed,
        progress: Some(progress.clone()),
        ..RunOptions::default()
    };
    let mut reports: Vec<Report> = Vec::new();
    for suite in &plan.suites {
        println!("\n==> {}", suite.name());
        let report = run_suite(suite, &run_options);
        progress.finish();
        print!("{report}");
        println!();
        reports.push(report);
    }
    write_reports(options, &reports, baseline.as_ref())?;
    let mut soaked = match options.histories {
        Some(duration) => soak_every_backend(&plan.suites, duration, options.seed),
        None => true,
    };
    if let (Some(duration), true) = (options.histories, options.faults) {
        let faultable = plan
            .faultable
            .as_ref()
            .map_err(|why| Unusable(why.clone()))?;
        soaked &= faulted_soak(faultable, duration, options)?;
    }
    let mut matrix = Matrix::default();
    for report in &reports {
        matrix.record_report(report, baseline.as_ref());
    }
    println!("\n{matrix}");
    let counts = Counts::total(&reports, baseline.as_ref());
    print_verdicts(&reports, baseline.as_ref());
    if counts.ran() == 0 {
        return Err(Unusable(
            "no case ran: every selected rule is excluded by the declared capabilities, so \
             nothing was checked"
                .to_owned(),
        ));
    }
    let passed = counts.run_passes() && soaked;
    println!(
        "conformance {} in {:.1}s: {} passed, {} new failures, {} expected failures, {} unexpected passes, {} skipped",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        counts.passed,
        counts.new_failures,
        counts.expected_failures,
        counts.unexpected_passes,
        counts.skipped,
    );
    Ok(passed)
}

/// Soaks every backend suite for `duration`; true when every history was linearizable.
fn soak_every_backend(suites: &[Suite], duration: Duration, seed: Option<u64>) -> bool {
    let seed = seed.unwrap_or_else(cachekit_conformance::seed_from_env);
    let mut all_linearizable = true;
    for suite in suites
        .iter()
        .filter(|suite| suite.kind() == SuiteKind::Backend)
    {
        println!(
            "\n==> {}: a {duration:?} concurrent history (seed {seed})",
            suite.name()
        );
        let soak = match soak(suite, duration, seed, Duration::from_secs(60)) {
            Ok(soak) => soak,
            Err(why) => {
                println!("    not soaked: {why}");
                all_linearizable = false;
                continue;
            }
        };
        let ops = soak.history.ops.len();
        let indeterminate = ops - soak.history.determinate_count();
        match &soak.outcome {
            SoakOutcome::Linearizable(stats) => {
                let (p50, max) = stats.p50_and_max();
                println!(
                    "    linearizable: {ops} operations ({indeterminate} indeterminate) on {} keys; \
                     checked per key in {p50:?} (p50), {max:?} (max)",
                    soak.history.keys.len()
                );
            }
            SoakOutcome::NotLinearizable {
                violation,
                timeline,
            } => {
                all_linearizable = false;
                println!("    NOT linearizable ({ops} operations):\n{timeline}");
                println!("    {}", save(&soak.history, Some(violation), "soak"));
            }
            SoakOutcome::Unknown(reason) => {
                all_linearizable = false;
                println!("    undecided, not a pass: {reason}");
                println!("    {}", save(&soak.history, None, "soak"));
            }
        }
    }
    all_linearizable
}

fn write_reports(
    options: &CheckOptions,
    reports: &[Report],
    baseline: Option<&Baseline>,
) -> Result<(), Unusable> {
    let write = |path: &PathBuf, text: String, what: &str| {
        std::fs::write(path, text)
            .map(|()| println!("{what}: {}", path.display()))
            .map_err(|err| Unusable(format!("cannot write {}: {err}", path.display())))
    };
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&export::to_json(reports, baseline))
            .map_err(|err| Unusable(format!("cannot encode the JSON report: {err}")))?;
        write(path, text, "JSON report")?;
    }
    if let Some(path) = &options.junit {
        write(
            path,
            export::to_junit_xml(reports, baseline),
            "JUnit report",
        )?;
    }
    if let Some(path) = &options.markdown {
        write(
            path,
            export::to_markdown(reports, baseline),
            "Markdown summary",
        )?;
    }
    if let Some(path) = &options.write_baseline {
        write(
            path,
            Baseline::recording(reports).to_toml(),
            "baseline of the current failures",
        )?;
    }
    Ok(())
}

/// New failures, unexpected passes and expected failures, each by name, after the matrix.
fn print_verdicts(reports: &[Report], baseline: Option<&Baseline>) {
    let mut sections: [(&str, Vec<String>); 3] = [
        ("rules violated:", Vec::new()),
        (
            "unexpected passes (remove them from the baseline):",
            Vec::new(),
        ),
        ("expected failures (baseline):", Vec::new()),
    ];
    for report in reports {
        for entry in &report.cases {
            let id = format!("{}::{}", report.suite, entry.case.id());
            match export::judge(baseline, report, entry) {
                Verdict::NewFailure => sections[0].1.push(id),
                Verdict::UnexpectedPass(reason) => sections[1].1.push(format!("{id}  ({reason})")),
                Verdict::ExpectedFailure(reason) => sections[2].1.push(format!("{id}  ({reason})")),
                Verdict::Passed | Verdict::Skipped => {}
            }
        }
    }
    for (title, lines) in sections {
        if !lines.is_empty() {
            println!("\n{title}");
            for line in lines {
                println!("  {line}");
            }
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Unusable> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Unusable(format!("cannot build a tokio runtime: {err}")))?;
    Ok(runtime.block_on(future))
}

/// A live line on a terminal (cases done / total, failures so far, elapsed), or, when
/// stderr is not a terminal, a plain line per failure and one every [`PLAIN_EVERY`] cases.
#[derive(Debug)]
struct LiveProgress {
    live: bool,
    state: Mutex<ProgressState>,
}

#[derive(Debug)]
struct ProgressState {
    suite: String,
    total: usize,
    done: usize,
    failed: usize,
    started: Instant,
}

/// Cases between plain progress lines.
const PLAIN_EVERY: usize = 50;

impl LiveProgress {
    fn new(live: bool) -> Arc<LiveProgress> {
        Arc::new(LiveProgress {
            live,
            state: Mutex::new(ProgressState {
                suite: String::new(),
                total: 0,
                done: 0,
                failed: 0,
                started: Instant::now(),
            }),
        })
    }

    fn finish(&self) {
        if self.live {
            eprintln!();
        }
    }
}

impl ProgressState {
    fn line(&self) -> String {
        format!(
            "[{}] {}/{} cases, {} failed, {:.1}s",
            self.suite,
            self.done,
            self.total,
            self.failed,
            self.started.elapsed().as_secs_f64()
        )
    }
}

impl Progress for LiveProgress {
    fn started(&self, suite: &str, total: usize) {
        if let Ok(mut state) = self.state.lock() {
            *state = ProgressState {
                suite: suite.to_owned(),
                total,
                done: 0,
                failed: 0,
                started: Instant::now(),
            };
            if self.live {
                eprint!("\r\x1b[2K{}", state.line());
            }
        }
    }

    fn case_done(&self, suite: &str, report: &CaseReport) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.done += 1;
        let failed = matches!(report.outcome, Outcome::Failed(_));
        state.failed += usize::from(failed);
        if self.live {
            eprint!("\r\x1b[2K{}", state.line());
        } else {
            if failed {
                eprintln!("FAIL {suite}::{}", report.case.id());
            }
            if state.done % PLAIN_EVERY == 0 || state.done == state.total {
                eprintln!("{}", state.line());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cachekit_core::{Capabilities, Consistency};
    use clap::Parser;
    use rstest::rstest;

    use super::{parse_duration, swap_authority, CheckOptions};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        options: CheckOptions,
    }

    #[rstest]
    #[case::no_flag_keeps_the_backends_own(&[], Consistency::Linearizable)]
    #[case::a_staleness_bound_declares_eventual(
        &["--eventual-staleness-ms", "250"],
        Consistency::Eventual { staleness: Duration::from_millis(250) }
    )]
    fn the_declared_consistency_follows_the_flag(
        #[case] flags: &[&str],
        #[case] expected: Consistency,
    ) {
        let parsed = Flags::try_parse_from(std::iter::once("check").chain(flags.iter().copied()))
            .expect("valid flags");
        assert_eq!(
            parsed.options.declared(Capabilities::new("x")).consistency,
            expected
        );
    }

    #[rstest]
    #[case::http_with_port(
        "http://example.com:8080",
        "http",
        80,
        "example.com:8080",
        "http://127.0.0.1:9/"
    )]
    #[case::http_default_port(
        "http://example.com/base",
        "http",
        80,
        "example.com:80",
        "http://127.0.0.1:9/base"
    )]
    #[case::redis_with_user_and_db(
        "redis://user:secret@cache.local:6380/2",
        "redis",
        6379,
        "cache.local:6380",
        "redis://user:secret@127.0.0.1:9/2"
    )]
    #[case::redis_default_port(
        "redis://cache.local",
        "redis",
        6379,
        "cache.local:6379",
        "redis://127.0.0.1:9"
    )]
    #[case::ipv6("http://[::1]:8000", "http", 80, "[::1]:8000", "http://127.0.0.1:9")]
    fn an_address_is_pointed_at_the_proxy(
        #[case] url: &str,
        #[case] scheme: &str,
        #[case] default_port: u16,
        #[case] upstream: &str,
        #[case] proxied: &str,
    ) {
        let (found, to) = swap_authority(url, scheme, default_port).expect("a plain address");
        assert_eq!(found, upstream);
        let proxied_url = to(([127, 0, 0, 1], 9).into());
        assert_eq!(
            proxied_url.trim_end_matches('/'),
            proxied.trim_end_matches('/')
        );
    }

    #[rstest]
    #[case::tls("https://example.com", "http")]
    #[case::redis_tls("rediss://cache.local", "redis")]
    #[case::no_host("http://", "http")]
    fn an_address_the_proxy_cannot_stand_in_for_is_refused(
        #[case] url: &str,
        #[case] scheme: &str,
    ) {
        assert!(swap_authority(url, scheme, 80).is_err());
    }

    #[rstest]
    #[case::milliseconds("500ms", Duration::from_millis(500))]
    #[case::seconds("30s", Duration::from_secs(30))]
    #[case::minutes("2m", Duration::from_secs(120))]
    #[case::an_hour_exactly("60m", Duration::from_secs(3600))]
    #[case::surrounding_spaces(" 5s ", Duration::from_secs(5))]
    fn soak_durations_parse(#[case] text: &str, #[case] expected: Duration) {
        assert_eq!(parse_duration(text), Ok(expected));
    }

    #[rstest]
    #[case::no_unit("30")]
    #[case::unknown_unit("30h")]
    #[case::fraction("1.5s")]
    #[case::negative("-1s")]
    #[case::zero("0s")]
    #[case::over_an_hour("61m")]
    #[case::empty("")]
    #[case::overflowing("99999999999999999999s")]
    fn bad_soak_durations_are_refused(#[case] text: &str) {
        assert!(parse_duration(text).is_err(), "{text:?} was accepted");
    }
}
