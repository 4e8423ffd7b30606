//! `cargo xtask conformance --http URL` against a `cachekit-server` started separately
//! (here: on its own thread, on a loopback port), and against deliberately broken ones:
//! the exit code, the rule names it prints, and the JSON and JUnit files it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cachekit_backend_memory::MemoryBackend;
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

fn xtask(args: &[&str], dir: &Path) -> (Output, Value, roxmltree_owned::Doc) {
    let json = dir.join("report.json");
    let junit = dir.join("report.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("conformance")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("run xtask");
    let json_text = std::fs::read_to_string(&json).expect("the JSON report is written");
    let json: Value = serde_json::from_str(&json_text).expect("the JSON report parses");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report is written");
    (output, json, roxmltree_owned::Doc::parse(xml))
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

/// The report of the suite called `name`: `--http` runs `http` (through the client) and
/// `http_api` (raw requests).
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
    let (output, json, junit) = xtask(&["--http", server.base_url()], &dir);
    let text = stdout(&output);
    assert!(output.status.success(), "exit {:?}\n{text}", output.status);
    assert!(text.contains("conformance passed"), "{text}");

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
    let (output, json, junit) = xtask(&["--http", server.base_url()], &dir);
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
    let (output, json, _) = xtask(&["--http", server.base_url(), "--no-ttl"], &dir);
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
