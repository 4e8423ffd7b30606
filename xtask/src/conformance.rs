//! `cargo xtask conformance`: the kit's registry, run through its programmatic runner
//! (the very cases `cargo test` runs), against the embedded defaults or a third-party
//! service, with terminal, JSON and JUnit reports.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cachekit_backend_dynamodb::{DynamoDbBackend, DynamoDbConfig, TtlDeletion};
use cachekit_backend_http::{HttpBackend, HttpConfig};
use cachekit_backend_memory::MemoryBackend;
use cachekit_conformance::{export, run_suite, Report, RunOptions, Suite, WithCapabilities};
use cachekit_core::{Backend, Capabilities, TtlSupport};
use cachekit_server::{BackgroundServer, ServerConfig};

use crate::matrix::Matrix;

/// What to validate and how to report it.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// Base URL of a service speaking the cachekit HTTP API (`GET/PUT/DELETE/HEAD
    /// {URL}/cache/{key}`, `GET {URL}/health`).
    #[arg(long, value_name = "URL")]
    http: Option<String>,
    /// Bearer token for the HTTP service.
    #[arg(
        long,
        env = "CACHEKIT_TOKEN",
        hide_env_values = true,
        requires = "http"
    )]
    token: Option<String>,
    /// Per-request timeout for the HTTP service, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    http_timeout_ms: u64,
    /// A DynamoDB-compatible endpoint (needs --table). Credentials come from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or dummy ones for a local endpoint.
    #[arg(long, value_name = "URL", requires = "table")]
    dynamodb_endpoint: Option<String>,
    /// The DynamoDB table.
    #[arg(long, requires = "dynamodb_endpoint")]
    table: Option<String>,
    /// The DynamoDB region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Create the DynamoDB table if it is missing (TTL deletion left off).
    #[arg(long, requires = "dynamodb_endpoint")]
    create_table: bool,

    /// Declare: the service has no ttl support (ttl rules are reported "not claimed").
    #[arg(long)]
    no_ttl: bool,
    /// Declare: ttl precision in milliseconds (default 1000).
    #[arg(long, value_name = "MS")]
    ttl_precision_ms: Option<u64>,
    /// Declare: the longest ttl accepted, in seconds (default 30 days).
    #[arg(long, value_name = "SECS")]
    max_ttl_secs: Option<u64>,
    /// Declare: the longest key, in UTF-8 bytes.
    #[arg(long, value_name = "BYTES")]
    max_key_size: Option<usize>,
    /// Declare: the largest value, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_value_size: Option<usize>,
    /// Declare: entries may be evicted before their ttl.
    #[arg(long)]
    may_evict: bool,
    /// Declare: a key the service cannot represent (repeatable).
    #[arg(long = "reject-key", value_name = "KEY")]
    reject_keys: Vec<String>,

    /// Only cases whose `family::case` id contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Seed for the random cases (replays a failure).
    #[arg(long, env = "CACHEKIT_SEED")]
    seed: Option<u64>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

impl ConformanceArgs {
    fn declares_anything(&self) -> bool {
        self.no_ttl
            || self.ttl_precision_ms.is_some()
            || self.max_ttl_secs.is_some()
            || self.max_key_size.is_some()
            || self.max_value_size.is_some()
            || self.may_evict
            || !self.reject_keys.is_empty()
    }

    /// The backend's own declaration, narrowed or widened by the flags.
    fn declared(&self, mut caps: Capabilities) -> Capabilities {
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
        caps
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

/// Runs the command; `Ok(true)` when every case passed.
pub fn run(args: &ConformanceArgs) -> Result<bool, String> {
    let started = Instant::now();
    let mut suites = Vec::new();
    // Keeps the embedded server alive for the run.
    let mut _server = None;
    if let Some(url) = &args.http {
        let mut config = HttpConfig::new(url.clone());
        config.timeout = Duration::from_millis(args.http_timeout_ms);
        if let Some(token) = &args.token {
            config = config.with_token(token.clone());
        }
        HttpBackend::new(config.clone()).map_err(|err| err.to_string())?;
        suites.push(args.suite("http", move || {
            HttpBackend::new(config.clone()).expect("validated above")
        }));
        // The API itself, byte for byte, whichever client the service's users have.
        if url.starts_with("http://") {
            let declared = args.declared(Capabilities::new("http-api"));
            suites.push(Suite::http_api_declaring(
                "http_api",
                url,
                args.token.clone(),
                declared,
            ));
        } else {
            println!("    skipping the raw http_api family: it speaks plain http:// only");
        }
    }
    if let (Some(endpoint), Some(table)) = (&args.dynamodb_endpoint, &args.table) {
        let config = DynamoDbConfig::new(table.clone())
            .with_endpoint(endpoint.clone())
            .with_region(args.region.clone());
        let probe = DynamoDbBackend::connect(config.clone()).map_err(|err| err.to_string())?;
        if args.create_table {
            println!("==> creating table {table} if missing");
            block_on(probe.ensure_table_with(TtlDeletion::Untouched))?
                .map_err(|err| err.to_string())?;
        }
        // A client per case: its connection pool belongs to the case's runtime.
        suites.push(args.suite("dynamodb", move || {
            DynamoDbBackend::connect(config.clone()).expect("validated above")
        }));
    }
    if suites.is_empty() {
        println!("==> no --http or --dynamodb-endpoint: validating the embedded defaults");
        let server = BackgroundServer::spawn(
            MemoryBackend::new,
            ServerConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                ..ServerConfig::default()
            },
        )
        .map_err(|err| format!("cannot start cachekit-server on loopback: {err}"))?;
        let url = server.base_url().to_owned();
        println!("    cachekit-server (memory backend) at {url}");
        _server = Some(server);
        suites.push(args.suite("memory", MemoryBackend::new));
        suites.push(Suite::http_api("http_api", &url, None));
        let config = HttpConfig::new(url);
        suites.push(args.suite("http", move || {
            HttpBackend::new(config.clone()).expect("a loopback URL is valid")
        }));
    } else if !args.declares_anything() {
        println!(
            "    declaring the client's defaults; describe the service with --max-value-size, \
             --max-key-size, --no-ttl, --ttl-precision-ms, --may-evict, --reject-key"
        );
    }

    let options = RunOptions {
        filter: args.filter.clone(),
        seed: args.seed,
        ..RunOptions::default()
    };
    let mut reports: Vec<Report> = Vec::new();
    for suite in &suites {
        println!("\n==> {}", suite.name());
        let report = run_suite(suite, &options);
        print!("{report}");
        println!();
        reports.push(report);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&export::to_json(&reports))
            .map_err(|err| format!("cannot encode the JSON report: {err}"))?;
        std::fs::write(path, text)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, export::to_junit_xml(&reports))
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("JUnit report: {}", path.display());
    }
    let mut matrix = Matrix::default();
    for report in &reports {
        matrix.record_report(report);
    }
    println!("\n{matrix}");
    let passed = reports.iter().all(Report::passed);
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|report| {
            report
                .failures()
                .map(move |case| format!("{}::{}", report.suite, case.case.id()))
        })
        .collect();
    if !failed.is_empty() {
        println!("\nrules violated:");
        for id in &failed {
            println!("  {id}");
        }
    }
    println!(
        "conformance {} in {:.1}s",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(passed)
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot build a tokio runtime: {err}"))?;
    Ok(runtime.block_on(future))
}
