//! The installed `cachekit` binary as a backend author runs it: `cachekit check http URL`
//! against a `cachekit-server` started separately (here: on its own thread, on a loopback
//! port) and against deliberately broken ones, with and without a baseline; the exit
//! codes, the rule names it prints, and the JSON, JUnit and Markdown files it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cachekit_backend_dynamodb::local::DynamoDbLocal;
use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memory::MemoryBackend;
use cachekit_backend_redis::local::RedisServer;
use cachekit_core::{async_trait, Backend, Bytes, Capabilities, HealthReport, Result};
use cachekit_server::{BackgroundServer, ServerConfig};
use serde_json::Value;

/// A memory store with the Python examples' favourite bugs, switchable one by one.
struct Broken {
    inner: MemoryBackend,
    ignores_ttl: bool,
    delete_always_true: bool,
}

#[async_trait]
impl Backend for Broken {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let ttl = if self.ignores_ttl { None } else { ttl };
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let existed = self.inner.delete(key).await?;
        Ok(existed || self.delete_always_true)
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn health_check(&self) -> HealthReport {
        self.inner.health_check().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

fn serve<B: Backend + 'static>(make: impl FnOnce() -> B + Send + 'static) -> BackgroundServer {
    BackgroundServer::spawn(
        make,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server on loopback")
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The binary under test: the installed one when `cargo xtask test-all` installed it
/// (`CACHEKIT_CLI_BIN`), else this build's.
fn cachekit_binary() -> std::ffi::OsString {
    std::env::var_os("CACHEKIT_CLI_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_cachekit").into())
}

/// Runs `cachekit check http URL ARGS` with every report written into `dir`.
fn check_http(url: &str, args: &[&str], dir: &Path) -> (Output, Value, roxmltree_owned::Doc) {
    let json = dir.join("report.json");
    let junit = dir.join("report.xml");
    let output = Command::new(cachekit_binary())
        .args(["check", "http", url])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(dir.join("summary.md"))
        .env_remove("CACHEKIT_TOKEN")
        .output()
        .expect("run cachekit");
    let json_text = std::fs::read_to_string(&json).expect("the JSON report is written");
    let json: Value = serde_json::from_str(&json_text).expect("the JSON report parses");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report is written");
    (output, json, roxmltree_owned::Doc::parse(xml))
}

fn cachekit(args: &[&str]) -> Output {
    Command::new(cachekit_binary())
        .args(args)
        .env_remove("CACHEKIT_TOKEN")
        .output()
        .expect("run cachekit")
}

/// roxmltree borrows its text; this keeps text and checks together.
mod roxmltree_owned {
    pub struct Doc(String);

    impl Doc {
        pub fn parse(text: String) -> Self {
            roxmltree::Document::parse(&text).expect("the JUnit report is well-formed XML");
            Doc(text)
        }

        pub fn with<T>(&self, f: impl FnOnce(&roxmltree::Document) -> T) -> T {
            let doc = roxmltree::Document::parse(&self.0).expect("parsed before");
            f(&doc)
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The report of the suite called `name`: `check http` runs `http` (through the client)
/// and `http_api` (raw requests).
fn suite<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["suites"]
        .as_array()
        .and_then(|suites| suites.iter().find(|suite| suite["suite"] == name))
        .unwrap_or_else(|| panic!("no suite {name} in {json}"))
}

fn cases_with_outcome(json: &Value, outcome: &str) -> Vec<String> {
    suite(json, "http")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|case| case["outcome"] == outcome)
        .map(|case| case["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn a_conforming_server_passes_with_valid_json_and_junit() {
    let server = serve(MemoryBackend::new);
    let dir = scratch("conforming");
    let (output, json, junit) = check_http(server.base_url(), &[], &dir);
    let text = stdout(&output);
    assert!(output.status.success(), "exit {:?}\n{text}", output.status);
    assert!(text.contains("conformance passed"), "{text}");
    // Not a terminal: plain progress lines on stderr, the last one of each suite complete.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for suite in ["http", "http_api"] {
        let finished = stderr.lines().any(|line| {
            line.strip_prefix(&format!("[{suite}] "))
                .and_then(|rest| rest.split_once(" cases"))
                .and_then(|(counts, _)| counts.split_once('/'))
                .is_some_and(|(done, total)| done == total && done != "0")
        });
        assert!(finished, "no complete progress line for {suite}:\n{stderr}");
    }

    assert_eq!(json["passed"], true);
    let api = suite(&json, "http_api");
    assert_eq!(api["counts"]["failed"], 0, "{api}");
    let suite = suite(&json, "http");
    let passed = suite["counts"]["passed"].as_u64().expect("count");
    assert!(passed >= 50, "{suite}");
    assert_eq!(suite["counts"]["failed"], 0);
    let cases = suite["cases"].as_array().expect("cases");
    for case in cases {
        assert!(case["rule"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(case["duration_secs"].as_f64().is_some());
    }

    junit.with(|doc| {
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("failures"), Some("0"));
        let testcases: Vec<_> = root
            .descendants()
            .filter(|node| node.has_tag_name("testcase"))
            .collect();
        let api_cases = api["cases"].as_array().map_or(0, Vec::len);
        assert_eq!(testcases.len(), cases.len() + api_cases);
        assert!(testcases.iter().all(|case| case
            .attribute("classname")
            .is_some_and(|c| c.starts_with("cachekit.http."))
            || case
                .attribute("classname")
                .is_some_and(|c| c.starts_with("cachekit.http_api."))));
        assert_eq!(
            root.descendants()
                .filter(|n| n.has_tag_name("failure"))
                .count(),
            0
        );
        let skipped = root
            .descendants()
            .filter(|n| n.has_tag_name("skipped"))
            .count();
        let expected_skips = suite["counts"]["skipped"].as_u64().expect("count")
            + api["counts"]["skipped"].as_u64().expect("count");
        assert_eq!(skipped as u64, expected_skips);
    });
}

#[test]
fn a_broken_server_fails_and_the_rules_are_named() {
    let server = serve(|| Broken {
        inner: MemoryBackend::new(),
        ignores_ttl: true,
        delete_always_true: true,
    });
    let dir = scratch("broken");
    let (output, json, junit) = check_http(server.base_url(), &[], &dir);
    let text = stdout(&output);
    assert!(
        !output.status.success(),
        "a broken server must fail\n{text}"
    );
    assert!(text.contains("conformance FAILED"), "{text}");
    for rule in [
        "http::delete_exists::delete_of_missing_key_returns_false",
        "http::ttl::expired_entry_is_absent_from_get",
    ] {
        assert!(
            text.contains(&format!("  {rule}\n")),
            "{rule} not listed under `rules violated`\n{text}"
        );
    }
    assert!(text.contains("rule violated: [ttl] an expired entry is absent to get"));

    assert_eq!(json["passed"], false);
    let failed = cases_with_outcome(&json, "failed");
    assert!(failed.contains(&"delete_exists::delete_of_missing_key_returns_false".to_owned()));
    assert!(failed.contains(&"ttl::expired_entry_is_absent_from_get".to_owned()));
    // The failure's facts are fields, not only text.
    let delete_case = json["suites"][0]["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|case| case["id"] == "delete_exists::delete_of_missing_key_returns_false")
        .cloned()
        .expect("the delete case is in the report");
    let failure = &delete_case["failure"];
    assert_eq!(failure["operation"], "delete", "{failure}");
    assert_eq!(failure["expected"]["form"], "bool", "{failure}");
    assert_eq!(failure["expected"]["bool"], false, "{failure}");
    assert_eq!(failure["got"]["bool"], true, "{failure}");
    assert!(failure["key"]
        .as_str()
        .is_some_and(|key| key.starts_with("ck-")));

    junit.with(|doc| {
        let failures: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .filter_map(|n| {
                n.parent()
                    .and_then(|p| p.attribute("name"))
                    .map(str::to_owned)
            })
            .collect();
        // Both suites report: the client-level one and the raw API one.
        let all_failed: u64 = json["suites"]
            .as_array()
            .expect("suites")
            .iter()
            .map(|suite| suite["counts"]["failed"].as_u64().expect("count"))
            .sum();
        assert_eq!(failures.len() as u64, all_failed);
        assert!(failures.contains(&"expired_entry_is_absent_from_get".to_owned()));
        let root = doc.root_element();
        assert_eq!(
            root.attribute("failures"),
            Some(all_failed.to_string().as_str())
        );
    });
}

#[test]
fn a_service_without_ttl_is_reported_as_not_claimed_not_failed() {
    let server = serve(|| Broken {
        inner: MemoryBackend::new(),
        ignores_ttl: true,
        delete_always_true: false,
    });
    let dir = scratch("no_ttl");
    let (output, json, _) = check_http(server.base_url(), &["--no-ttl"], &dir);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let skipped: Vec<Value> = suite(&json, "http")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|case| case["family"] == "ttl")
        .cloned()
        .collect();
    assert!(!skipped.is_empty());
    for case in skipped {
        assert_eq!(case["outcome"], "skipped", "{case}");
        assert_eq!(case["message"], "ttl: not claimed", "{case}");
    }
    assert_eq!(suite(&json, "http")["capabilities"]["ttl"], Value::Null);
    // The raw API family honours the same declaration.
    let api_ttl: Vec<&Value> = suite(&json, "http_api")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|case| case["id"].as_str().is_some_and(|id| id.contains("ttl")))
        .collect();
    assert!(!api_ttl.is_empty());
    assert!(
        api_ttl.iter().all(|case| case["outcome"] == "skipped"),
        "{api_ttl:?}"
    );
}

fn exit_code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn case_ids_with_verdict(json: &Value, verdict: &str) -> Vec<String> {
    json["suites"]
        .as_array()
        .expect("suites")
        .iter()
        .flat_map(|suite| {
            let name = suite["suite"].as_str().expect("suite name").to_owned();
            suite["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .filter(move |case| case["verdict"] == verdict)
                .map(move |case| format!("{name}::{}", case["id"].as_str().expect("id")))
        })
        .collect()
}

fn broken_server() -> BackgroundServer {
    serve(|| Broken {
        inner: MemoryBackend::new(),
        ignores_ttl: true,
        delete_always_true: true,
    })
}

#[test]
fn a_recorded_baseline_turns_known_failures_into_expected_ones_and_exit_0() {
    // A store that ignores ttls fails the ttl rules it breaks on every run; the family is
    // selected so that no racing case (whose outcome against a broken store may vary)
    // takes part: the recorded failures must be the same the second time.
    let server = serve(|| Broken {
        inner: MemoryBackend::new(),
        ignores_ttl: true,
        delete_always_true: false,
    });
    let dir = scratch("baseline_recorded");
    let baseline = dir.join("conformance-baseline.toml");
    let baseline_arg = baseline.to_str().expect("utf-8 path");
    let (first, first_json, _) = check_http(
        server.base_url(),
        &["--filter", "ttl::", "--write-baseline", baseline_arg],
        &dir,
    );
    assert_eq!(exit_code(&first), Some(1), "{}", stdout(&first));
    let failing = case_ids_with_verdict(&first_json, "new_failure");
    assert!(!failing.is_empty());

    let (second, json, junit) = check_http(
        server.base_url(),
        &["--filter", "ttl::", "--baseline", baseline_arg],
        &dir,
    );
    assert_eq!(exit_code(&second), Some(0), "{}", stdout(&second));
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["passed"], true);
    assert_eq!(
        case_ids_with_verdict(&json, "new_failure"),
        Vec::<String>::new()
    );
    assert_eq!(case_ids_with_verdict(&json, "expected_failure"), failing);
    assert_eq!(
        json["counts"]["expected_failures"].as_u64(),
        Some(failing.len() as u64)
    );
    // An expected failure is never reported as a pass: JUnit shows it as skipped, with why.
    junit.with(|doc| {
        let root = doc.root_element();
        assert_eq!(root.attribute("failures"), Some("0"));
        let expected: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("skipped"))
            .filter(|n| {
                n.attribute("message")
                    .is_some_and(|m| m.starts_with("expected failure (baseline)"))
            })
            .collect();
        assert_eq!(expected.len(), failing.len());
    });
    let markdown = std::fs::read_to_string(dir.join("summary.md")).expect("summary written");
    assert!(
        markdown.starts_with("## cachekit conformance: passed"),
        "{markdown}"
    );
    for id in &failing {
        assert!(
            markdown.contains(&format!("`{id}`")),
            "{id} missing\n{markdown}"
        );
    }
}

#[test]
fn a_baseline_entry_that_now_passes_fails_the_run_as_an_unexpected_pass() {
    let server = serve(MemoryBackend::new);
    let dir = scratch("baseline_unexpected_pass");
    let baseline = dir.join("baseline.toml");
    std::fs::write(
        &baseline,
        "version = 1\n\n[[expected_failure]]\ncase = \"ttl::expired_entry_is_absent_from_get\"\n\
         suite = \"http\"\nreason = \"fixed since, but nobody updated the baseline\"\n",
    )
    .expect("write baseline");
    let (output, json, _) = check_http(
        server.base_url(),
        &["--baseline", baseline.to_str().expect("utf-8 path")],
        &dir,
    );
    assert_eq!(exit_code(&output), Some(1), "{}", stdout(&output));
    assert_eq!(json["passed"], false);
    assert_eq!(
        case_ids_with_verdict(&json, "unexpected_pass"),
        ["http::ttl::expired_entry_is_absent_from_get"]
    );
    assert_eq!(
        case_ids_with_verdict(&json, "new_failure"),
        Vec::<String>::new()
    );
}

#[test]
fn a_new_failure_beyond_the_baseline_fails_the_run() {
    let server = broken_server();
    let dir = scratch("baseline_new_failure");
    let baseline = dir.join("baseline.toml");
    // Expects only the ttl failures: the delete bug is new.
    std::fs::write(
        &baseline,
        "version = 1\n\n[[expected_failure]]\ncase = \"ttl::expired_entry_is_absent_from_get\"\n\
         reason = \"ttl is not implemented yet\"\n",
    )
    .expect("write baseline");
    let (output, json, _) = check_http(
        server.base_url(),
        &[
            "--seed",
            "7",
            "--baseline",
            baseline.to_str().expect("utf-8 path"),
        ],
        &dir,
    );
    assert_eq!(exit_code(&output), Some(1), "{}", stdout(&output));
    let new = case_ids_with_verdict(&json, "new_failure");
    assert!(new.contains(&"http::delete_exists::delete_of_missing_key_returns_false".to_owned()));
    assert_eq!(
        case_ids_with_verdict(&json, "expected_failure"),
        ["http::ttl::expired_entry_is_absent_from_get"]
    );
}

#[test]
fn a_baseline_naming_no_registered_case_is_refused_with_exit_2() {
    let server = serve(MemoryBackend::new);
    let dir = scratch("baseline_unknown_case");
    let baseline = dir.join("baseline.toml");
    std::fs::write(
        &baseline,
        "version = 1\n\n[[expected_failure]]\ncase = \"ttl::no_such_rule\"\nreason = \"typo\"\n",
    )
    .expect("write baseline");
    let output = cachekit(&[
        "check",
        "http",
        server.base_url(),
        "--baseline",
        baseline.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(exit_code(&output), Some(2));
}

#[test]
fn an_unreachable_service_is_exit_2_with_one_line_not_a_timeout_per_case() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let output = cachekit(&["check", "http", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stdout(&output).contains("==> http"), "no suite may start");
}

#[test]
fn a_selection_in_which_no_case_runs_is_exit_2_not_a_pass() {
    let server = serve(MemoryBackend::new);
    // Every ttl case is excluded by --no-ttl: nothing would be checked.
    let output = cachekit(&[
        "check",
        "http",
        server.base_url(),
        "--no-ttl",
        "--filter",
        "ttl::",
    ]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
    let output = cachekit(&[
        "check",
        "http",
        server.base_url(),
        "--filter",
        "no_such_rule",
    ]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
}

#[test]
fn the_embedded_defaults_pass_a_selection() {
    let output = cachekit(&["check", "memory", "--filter", "crud::"]);
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
}

#[test]
fn rules_lists_every_registered_rule_once() {
    let output = cachekit(&["rules", "--format", "json"]);
    assert_eq!(exit_code(&output), Some(0));
    let rules: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let rules = rules.as_array().expect("an array");
    let ids: std::collections::BTreeSet<&str> = rules
        .iter()
        .filter_map(|rule| rule["id"].as_str())
        .collect();
    assert_eq!(ids.len(), rules.len());
    assert_eq!(rules.len(), cachekit_conformance::cases::all().len());
    assert!(rules
        .iter()
        .all(|rule| rule["rule"].as_str().is_some_and(|s| !s.is_empty())));
}

#[test]
fn a_soak_of_the_embedded_defaults_is_linearizable() {
    let output = cachekit(&[
        "check",
        "memory",
        "--filter",
        "crud::set_then_get",
        "--histories",
        "1s",
    ]);
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
}

#[test]
fn a_soak_fails_the_run_on_a_service_whose_answers_no_order_explains() {
    // The one selected rule passes; the delete that says true for nothing does not.
    let server = broken_server();
    let output = cachekit(&[
        "check",
        "http",
        server.base_url(),
        "--filter",
        "crud::set_then_get_returns_the_value",
        "--histories",
        "1s",
    ]);
    assert_eq!(exit_code(&output), Some(1), "{}", stdout(&output));
}

#[test]
fn a_soak_through_the_fault_proxy_of_the_embedded_server_passes() {
    let output = cachekit(&[
        "check",
        "memory",
        "--filter",
        "crud::set_then_get",
        "--histories",
        "3s",
        "--faults",
    ]);
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
}

#[test]
fn faults_need_a_history() {
    let output = cachekit(&["check", "memory", "--faults"]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
}

#[test]
fn usage_errors_are_exit_2() {
    assert_eq!(
        exit_code(&cachekit(&["check", "memory", "--histories", "10"])),
        Some(2)
    );
    assert_eq!(exit_code(&cachekit(&["check"])), Some(2));
    assert_eq!(exit_code(&cachekit(&["check", "http"])), Some(2));
    assert_eq!(exit_code(&cachekit(&["no-such-command"])), Some(2));
}

/// Runs `cachekit check ARGS --json FILE` and returns the output and the report.
fn check_with_json(args: &[&str], dir: &Path) -> (Output, Value) {
    let json = dir.join("report.json");
    let output = Command::new(cachekit_binary())
        .args(["check"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .env_remove("CACHEKIT_REDIS_URL")
        .output()
        .expect("run cachekit");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|err| {
        panic!(
            "no JSON report ({err}); exit {:?}\n{}\n{}",
            output.status,
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output,
        serde_json::from_str(&text).expect("the JSON report parses"),
    )
}

#[test]
fn a_redis_server_passes_check_redis() {
    let server = RedisServer::start_with(&["--proto-max-bulk-len", "1mb"]).expect("redis-server");
    let (output, json) = check_with_json(&["redis", server.url()], &scratch("redis"));
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
    let redis = suite(&json, "redis");
    assert_eq!(redis["counts"]["failed"], 0, "{redis}");
    assert!(
        redis["counts"]["passed"]
            .as_u64()
            .is_some_and(|passed| passed >= 100),
        "{redis}"
    );
}

#[test]
fn check_redis_with_a_wrong_password_is_exit_2_and_never_prints_it() {
    let server = RedisServer::start_with(&["--requirepass", "right-horse"]).expect("redis-server");
    let url = format!("redis://:battery-staple@127.0.0.1:{}", server.port());
    let output = cachekit(&["check", "redis", &url]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("battery-staple") && !stdout(&output).contains("battery-staple"));
    assert!(stderr.contains("redis://:***@127.0.0.1"), "{stderr}");
}

#[test]
fn a_dynamodb_local_table_passes_check_dynamodb_and_is_created_on_request() {
    let local = DynamoDbLocal::start().expect("DynamoDB Local");
    eprintln!("{local}");
    let args = [
        "dynamodb",
        "--endpoint",
        local.endpoint(),
        "--table",
        "cachekit_cli_check",
        "--create-table",
        "--filter",
        "crud::",
    ];
    let (output, json) = check_with_json(&args, &scratch("dynamodb"));
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
    let dynamodb = suite(&json, "dynamodb");
    assert_eq!(dynamodb["counts"]["failed"], 0, "{dynamodb}");
    assert!(
        dynamodb["counts"]["passed"]
            .as_u64()
            .is_some_and(|passed| passed >= 5),
        "{dynamodb}"
    );

    // Without --create-table, a missing table is a target that cannot be used: exit 2.
    let missing = cachekit(&[
        "check",
        "dynamodb",
        "--endpoint",
        local.endpoint(),
        "--table",
        "no_such_table",
    ]);
    assert_eq!(exit_code(&missing), Some(2), "{}", stdout(&missing));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, not a failure per case: {stderr}"
    );
    assert!(
        !stdout(&missing).contains("==> dynamodb"),
        "no suite may start"
    );
}

#[test]
fn a_memcached_server_passes_check_memcached() {
    let server = MemcachedServer::start_with(&[]).expect("memcached");
    let addr = server.addr_string();
    let (output, json) = check_with_json(&["memcached", &addr], &scratch("memcached"));
    assert_eq!(exit_code(&output), Some(0), "{}", stdout(&output));
    let memcached = suite(&json, "memcached");
    assert_eq!(memcached["counts"]["failed"], 0, "{memcached}");
    assert!(
        memcached["counts"]["passed"]
            .as_u64()
            .is_some_and(|passed| passed >= 100),
        "{memcached}"
    );
}

#[test]
fn check_memcached_where_nothing_listens_is_exit_2_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let output = cachekit(&["check", "memcached", &format!("127.0.0.1:{port}")]);
    assert_eq!(exit_code(&output), Some(2), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// `--header-timeout-ms`, `--idle-timeout-ms` and `--write-timeout-ms` declare what the
/// service enforces, and the raw connection rules hold it to that: a server with a 1 s
/// header, 2 s idle and 1 s write timeout passes the header and write rules as declared,
/// and fails the idle rule when it is declared to wait 4 s. A declaration longer than a
/// case may wait is refused.
#[test]
fn declared_connection_timeouts_are_checked_on_the_wire() {
    let server = BackgroundServer::spawn(
        MemoryBackend::new,
        ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            header_read_timeout: Duration::from_millis(1000),
            idle_timeout: Duration::from_millis(2000),
            write_timeout: Duration::from_millis(1000),
            ..ServerConfig::default()
        },
    )
    .expect("start cachekit-server on loopback");
    let dir = scratch("connection-timeouts");
    let args = [
        "--filter",
        "timeout",
        "--header-timeout-ms",
        "1000",
        "--idle-timeout-ms",
        "4000",
        "--write-timeout-ms",
        "1000",
    ];
    let (output, json, _) = check_http(server.base_url(), &args, &dir);
    assert_eq!(exit_code(&output), Some(1), "{}", stdout(&output));
    let outcomes: Vec<(String, String)> = suite(&json, "http_api")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let id = case["id"].as_str().expect("id").to_owned();
            let outcome = case["outcome"].as_str().expect("outcome").to_owned();
            (id, outcome)
        })
        .collect();
    let expected = [
        (
            "http_api::a_silent_connection_is_closed_after_the_header_timeout",
            "passed",
        ),
        (
            "http_api::a_trickled_head_is_cut_off_after_the_header_timeout",
            "passed",
        ),
        (
            "http_api::a_trickled_head_on_a_kept_alive_connection_is_cut_off_after_the_header_timeout",
            "passed",
        ),
        (
            "http_api::a_client_that_stops_reading_is_cut_off_after_the_write_timeout",
            "passed",
        ),
        (
            "http_api::an_idle_connection_is_closed_after_the_idle_timeout",
            "failed",
        ),
    ]
    .map(|(id, outcome)| (id.to_owned(), outcome.to_owned()));
    assert_eq!(outcomes, expected, "{json}");

    let too_long = cachekit(&[
        "check",
        "http",
        server.base_url(),
        "--idle-timeout-ms",
        "100001",
    ]);
    assert_eq!(exit_code(&too_long), Some(2));
}
