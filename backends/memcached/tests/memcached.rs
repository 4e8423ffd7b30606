//! Memcached-specific behaviour beyond the generic matrix, against real memcached
//! processes and against a scripted fake server: losing and regaining the server, the
//! value limit at the byte, the 30-day exptime boundary as the server records it, keys
//! the classic protocol cannot carry, and replies no memcached should send.
//!
//! Tests that stop or reconfigure a server start one of their own; the rest share one
//! default server (or `CACHEKIT_MEMCACHED_ADDR`).

use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memcached::protocol::{wire_key, EXPTIME_MARGIN_SECS, MAX_RAW_KEY_BYTES};
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};
use rstest::rstest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const DAY: u64 = 24 * 3600;

fn shared_server() -> String {
    static SERVER: OnceLock<MemcachedServer> = OnceLock::new();
    SERVER
        .get_or_init(|| MemcachedServer::start().unwrap_or_else(|why| panic!("{why}")))
        .addr_string()
}

async fn connect(config: MemcachedConfig) -> MemcachedBackend {
    MemcachedBackend::connect(config)
        .await
        .unwrap_or_else(|err| panic!("connect: {err}"))
}

/// A key no other test uses.
fn unique(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `base` padded to exactly `len` bytes, with two-byte `é` so that bytes, not characters,
/// are what is counted.
fn key_of_exact_length(base: &str, len: usize) -> String {
    let mut key = base.to_owned();
    while key.len() + 'é'.len_utf8() <= len {
        key.push('é');
    }
    while key.len() < len {
        key.push('x');
    }
    assert_eq!(key.len(), len);
    key
}

fn kind_of<T: std::fmt::Debug>(result: Result<T, BackendError>) -> ErrorKind {
    match result {
        Err(err) => err.kind(),
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
    }
}

/// One raw meta-protocol connection, to look at what the server itself holds.
struct Raw(BufReader<TcpStream>);

impl Raw {
    async fn connect(addr: &str) -> Raw {
        Raw(BufReader::new(
            TcpStream::connect(addr).await.expect("raw connect"),
        ))
    }

    async fn command(&mut self, command: &[u8]) -> String {
        self.0
            .get_mut()
            .write_all(command)
            .await
            .expect("raw write");
        let mut line = String::new();
        self.0.read_line(&mut line).await.expect("raw read");
        line.trim_end().to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Losing the server

#[tokio::test]
async fn a_restarted_server_is_unavailable_while_down_then_the_same_backend_recovers() {
    let mut server = MemcachedServer::start_with(&[]).expect("own server");
    let backend = connect(
        MemcachedConfig::new(server.addr_string()).with_health_timeout(Duration::from_secs(1)),
    )
    .await;
    // Several pooled connections, all of which the stop will break.
    let keys: Vec<String> = (0..4).map(|i| unique(&format!("before-{i}"))).collect();
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (backend, key) = (backend.clone(), key.clone());
            tokio::spawn(async move { backend.set(&key, Bytes::from_static(b"v"), None).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("set before the stop");
    }

    server.stop().expect("stop");
    let key = &keys[0];
    let started = Instant::now();
    assert_eq!(kind_of(backend.get(key).await), ErrorKind::Unavailable);
    assert_eq!(
        kind_of(backend.set(key, Bytes::from_static(b"x"), None).await),
        ErrorKind::Unavailable
    );
    assert_eq!(kind_of(backend.exists(key).await), ErrorKind::Unavailable);
    assert_eq!(kind_of(backend.delete(key).await), ErrorKind::Unavailable);
    let report = backend.health_check().await;
    assert!(
        !report.healthy,
        "healthy while the server is down: {report:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection must fail at once, took {:?}",
        started.elapsed()
    );

    server.restart().expect("restart");
    // A new server is empty; the backend value is the same one as before.
    assert_eq!(backend.get(key).await.expect("get after restart"), None);
    backend
        .set(key, Bytes::from_static(b"again"), None)
        .await
        .expect("set after restart");
    assert_eq!(
        backend.get(key).await.expect("get"),
        Some(Bytes::from_static(b"again"))
    );
    assert!(backend.health_check().await.healthy);
}

#[tokio::test]
async fn pooled_connections_broken_by_a_restart_do_not_fail_the_next_operations() {
    let mut server = MemcachedServer::start_with(&[]).expect("own server");
    let backend = connect(MemcachedConfig::new(server.addr_string())).await;
    let key = unique("k");
    backend
        .set(&key, Bytes::from_static(b"v"), None)
        .await
        .expect("set");
    // Stopped and started again between two operations: the pool holds a connection to
    // the old process, which the new one knows nothing about.
    server.restart().expect("restart");
    assert_eq!(backend.get(&key).await.expect("get"), None);
    backend
        .set(&key, Bytes::from_static(b"w"), None)
        .await
        .expect("set");
    server.restart().expect("restart");
    assert!(!backend.exists(&key).await.expect("exists"));
    server.restart().expect("restart");
    assert!(!backend.delete(&key).await.expect("delete"));
}

#[tokio::test]
async fn connecting_where_nothing_listens_is_unavailable_within_the_connect_timeout() {
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let result = MemcachedBackend::connect(
        MemcachedConfig::new(format!("127.0.0.1:{port}")).with_connect_timeout(timeout),
    )
    .await;
    assert_eq!(kind_of(result), ErrorKind::Unavailable);
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_within_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            keep.lock().expect("lock").push(stream);
        }
    });
    let deadline = Duration::from_millis(400);
    let started = Instant::now();
    let result =
        MemcachedBackend::connect(MemcachedConfig::new(addr).with_operation_timeout(deadline))
            .await;
    assert_eq!(kind_of(result), ErrorKind::Timeout);
    assert!(
        started.elapsed() < deadline * 3,
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// The value limit

#[rstest]
#[case::smallest_items(&["-I", "1k", "-o", "slab_chunk_max=1024"], 779)]
#[case::four_kilobyte_items(&["-I", "4k", "-o", "slab_chunk_max=2048"], 3851)]
#[case::without_cas(&["-I", "4k", "-o", "slab_chunk_max=2048", "-C"], 3859)]
#[tokio::test]
async fn the_declared_value_limit_is_exactly_what_the_server_stores(
    #[case] args: &[&str],
    #[case] expected_max: usize,
) {
    let server = MemcachedServer::start_with(args).expect("own server");
    let backend = connect(MemcachedConfig::new(server.addr_string())).await;
    let max = backend
        .capabilities()
        .max_value_bytes
        .expect("a declared value limit");
    assert_eq!(max, expected_max);
    // The longest key: the value limit must hold whatever the key.
    let key = "k".repeat(MAX_RAW_KEY_BYTES);
    let at_max = Bytes::from(vec![0xA5; max]);
    backend
        .set(&key, at_max.clone(), Some(Duration::from_secs(60)))
        .await
        .expect("a value at the declared maximum stores");
    assert_eq!(backend.get(&key).await.expect("get"), Some(at_max.clone()));

    let over = Bytes::from(vec![0x5A; max + 1]);
    assert_eq!(
        kind_of(backend.set(&key, over, None).await),
        ErrorKind::ValueTooLarge
    );
    assert_eq!(
        backend.get(&key).await.expect("get"),
        Some(at_max),
        "a refused set leaves the old value"
    );

    // The limit is the server's, not a guess: one byte more under the same key is what
    // memcached itself refuses.
    let mut raw = Raw::connect(&server.addr_string()).await;
    let wire = wire_key("", &key);
    let mut command = format!("ms {wire} {} b\r\n", max + 1).into_bytes();
    command.extend(std::iter::repeat_n(b'x', max + 1));
    command.extend_from_slice(b"\r\n");
    assert_eq!(
        raw.command(&command).await,
        "SERVER_ERROR object too large for cache"
    );
}

#[tokio::test]
async fn the_default_server_stores_its_declared_maximum_under_the_longest_key() {
    let backend = connect(MemcachedConfig::new(shared_server())).await;
    let max = backend.capabilities().max_value_bytes.expect("declared");
    if backend.server_limits().item_size_max == 1 << 20 {
        assert_eq!(max, 1_048_331);
    }
    let key = key_of_exact_length(&unique("max"), MAX_RAW_KEY_BYTES);
    let key = key.as_str();
    let value = Bytes::from((0..max).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    backend.set(key, value.clone(), None).await.expect("set");
    assert_eq!(backend.get(key).await.expect("get"), Some(value));
}

// ---------------------------------------------------------------------------------------
// Ttl at the 30-day boundary

#[rstest]
#[case::thirty_days_minus_three_seconds(Duration::from_secs(30 * DAY - 3))]
#[case::thirty_days_minus_two_seconds(Duration::from_secs(30 * DAY - 2))]
#[case::thirty_days_minus_one_second(Duration::from_secs(30 * DAY - 1))]
#[case::thirty_days_minus_a_fraction(Duration::from_secs(30 * DAY) - Duration::from_millis(700))]
#[case::thirty_days_minus_one_second_and_a_fraction(Duration::from_secs(30 * DAY - 2) + Duration::from_millis(300))]
#[case::exactly_thirty_days(Duration::from_secs(30 * DAY))]
#[tokio::test]
async fn ttls_around_thirty_days_are_what_the_server_records(#[case] ttl: Duration) {
    let addr = shared_server();
    let backend = connect(MemcachedConfig::new(addr.clone())).await;
    let mut raw = Raw::connect(&addr).await;
    let sent = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0) + EXPTIME_MARGIN_SECS;
    let mut seen = Vec::new();
    // A clock tick between the set and the look takes a second off; three tries make
    // sure at least one sees the exptime as set.
    for _ in 0..3 {
        let key = unique("thirty-days");
        backend
            .set(&key, Bytes::from_static(b"v"), Some(ttl))
            .await
            .expect("set");
        let reply = raw
            .command(format!("mg {} b t\r\n", wire_key("", &key)).as_bytes())
            .await;
        let remaining: u64 = reply
            .strip_prefix("HD t")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| {
                panic!("ttl {ttl:?}: expected `HD t<seconds>`, got {reply:?} (read as a 1970 timestamp?)")
            });
        assert_eq!(
            backend.get(&key).await.expect("get"),
            Some(Bytes::from_static(b"v")),
            "an entry set with ttl {ttl:?} must be there right after"
        );
        assert!(backend.exists(&key).await.expect("exists"));
        seen.push(remaining);
    }
    // The exptime sent is ceil(ttl) + the margin; a tick since takes one off. Anything
    // less, and the entry could end early.
    assert!(
        seen.iter()
            .all(|remaining| (sent - 1..=sent).contains(remaining)),
        "ttl {ttl:?}: the server holds {seen:?} s, expected {} or {sent}",
        sent - 1
    );
    assert!(
        seen.contains(&sent),
        "ttl {ttl:?}: the server holds {seen:?} s, never the {sent} that was sent"
    );
}

// ---------------------------------------------------------------------------------------
// Keys

#[rstest]
#[case::spaces("a key with spaces")]
#[case::control_characters("tab\there\r\nnul\0bell\u{7}esc\u{1b}")]
#[case::non_ascii("日本語 🦀 Ελληνικά")]
#[case::looks_like_a_command("k 0 0 1\r\nset x")]
#[case::longest_ascii("k")]
#[case::longest_multibyte("é")]
#[tokio::test]
async fn keys_the_classic_protocol_cannot_carry_are_stored_under_their_exact_bytes(
    #[case] name: &str,
) {
    let addr = shared_server();
    let prefix = "app:";
    let backend = connect(MemcachedConfig::new(addr.clone()).with_key_prefix(prefix)).await;
    let max = backend.capabilities().max_key_bytes.expect("declared");
    assert_eq!(max, MAX_RAW_KEY_BYTES - prefix.len());
    let mut key = format!("{}-{name}", unique("key"));
    if name.chars().count() == 1 {
        // Pad to exactly the maximum with the character itself.
        while key.len() + name.len() <= max {
            key.push_str(name);
        }
        while key.len() < max {
            key.push('x');
        }
        assert_eq!(key.len(), max);
    }
    let value = Bytes::from(format!("value of {key:?}"));
    backend.set(&key, value.clone(), None).await.expect("set");
    assert_eq!(backend.get(&key).await.expect("get"), Some(value));
    assert!(backend.exists(&key).await.expect("exists"));
    // Stored under prefix + key, byte for byte: a raw lookup of exactly those bytes finds it.
    let mut raw = Raw::connect(&addr).await;
    let reply = raw
        .command(format!("mg {} b\r\n", wire_key(prefix, &key)).as_bytes())
        .await;
    assert_eq!(reply, "HD");
    assert!(backend.delete(&key).await.expect("delete"));
    assert!(!backend.exists(&key).await.expect("exists after delete"));
}

#[rstest]
#[case::no_prefix("")]
#[case::prefix("some-app:")]
#[tokio::test]
async fn one_byte_over_the_key_limit_is_invalid_key_before_anything_is_sent(#[case] prefix: &str) {
    let mut server = MemcachedServer::start_with(&[]).expect("own server");
    let backend = connect(MemcachedConfig::new(server.addr_string()).with_key_prefix(prefix)).await;
    let max = MAX_RAW_KEY_BYTES - prefix.len();
    assert_eq!(backend.capabilities().max_key_bytes, Some(max));
    backend
        .set(&"k".repeat(max), Bytes::from_static(b"v"), None)
        .await
        .expect("a key of the maximum length");
    // With the server gone, only a check made before sending can answer InvalidKey.
    server.stop().expect("stop");
    let over = "k".repeat(max + 1);
    let value = Bytes::from_static(b"v");
    assert_eq!(
        kind_of(backend.set(&over, value, None).await),
        ErrorKind::InvalidKey
    );
    assert_eq!(kind_of(backend.get(&over).await), ErrorKind::InvalidKey);
    assert_eq!(kind_of(backend.exists(&over).await), ErrorKind::InvalidKey);
    assert_eq!(kind_of(backend.delete(&over).await), ErrorKind::InvalidKey);
    assert_eq!(kind_of(backend.get("").await), ErrorKind::InvalidKey);
    let too_large = Bytes::from(vec![
        0;
        backend.capabilities().max_value_bytes.expect("max") + 1
    ]);
    assert_eq!(
        kind_of(backend.set("k", too_large, None).await),
        ErrorKind::ValueTooLarge
    );
    assert_eq!(kind_of(backend.get("k").await), ErrorKind::Unavailable);
}

// ---------------------------------------------------------------------------------------
// What memcached itself does: the facts the limits above are computed from

#[tokio::test]
async fn memcached_limits_the_padded_base64_key_to_250_characters() {
    let mut raw = Raw::connect(&shared_server()).await;
    let longest = wire_key("", &"k".repeat(MAX_RAW_KEY_BYTES));
    assert_eq!(longest.len(), 248);
    assert_eq!(
        raw.command(format!("mg {longest} b\r\n").as_bytes()).await,
        "EN"
    );
    let one_more = wire_key("", &"k".repeat(MAX_RAW_KEY_BYTES + 1));
    assert_eq!(one_more.len(), 252);
    assert_eq!(
        raw.command(format!("mg {one_more} b\r\n").as_bytes()).await,
        "CLIENT_ERROR bad command line format"
    );
    // Padding cannot be dropped to win bytes: unpadded base64 is refused.
    let mut raw = Raw::connect(&shared_server()).await;
    let unpadded = wire_key("", "ab");
    assert_eq!(
        raw.command(format!("mg {} b\r\n", unpadded.trim_end_matches('=')).as_bytes())
            .await,
        "CLIENT_ERROR error decoding key"
    );
}

#[tokio::test]
async fn memcached_reads_an_exptime_over_thirty_days_as_a_unix_time() {
    let mut raw = Raw::connect(&shared_server()).await;
    let key = wire_key("", &unique("exptime"));
    let mut set_and_look = async |exptime: u64| {
        let stored = raw
            .command(format!("ms {key} 1 b T{exptime}\r\nv\r\n").as_bytes())
            .await;
        assert_eq!(stored, "HD");
        raw.command(format!("mg {key} b t\r\n").as_bytes()).await
    };
    // The most memcached takes as relative: 30 days from now (a second less if its clock
    // ticked in between).
    let relative = set_and_look(2_592_000).await;
    assert!(
        ["HD t2592000", "HD t2591999"].contains(&relative.as_str()),
        "{relative}"
    );
    // One more is a moment in January 1970: the item is born expired.
    assert_eq!(set_and_look(2_592_001).await, "EN");
}

#[tokio::test]
async fn health_reports_the_server_version() {
    let backend = connect(MemcachedConfig::new(shared_server())).await;
    let report = backend.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.backend_type, "memcached");
    let version = report.details.get("version").expect("a version detail");
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version:?}"
    );
}

// ---------------------------------------------------------------------------------------
// A scripted fake server: replies no memcached should send

/// One reply of the fake server, and whether it closes the connection after it.
#[derive(Clone)]
struct Scripted {
    reply: Vec<u8>,
    close: bool,
}

fn says(reply: &[u8]) -> Scripted {
    Scripted {
        reply: reply.to_vec(),
        close: false,
    }
}

fn says_then_closes(reply: &[u8]) -> Scripted {
    Scripted {
        reply: reply.to_vec(),
        close: true,
    }
}

/// A server that answers `stats settings` like memcached with `-I 1k`, and every other
/// command with the next scripted reply (then `EN`). Returns its address and the number
/// of connections it accepted.
async fn fake_server(script: Vec<Scripted>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    match stream.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line.starts_with("ms ") {
                        let len: usize = line
                            .split(' ')
                            .nth(2)
                            .and_then(|len| len.parse().ok())
                            .unwrap_or(0);
                        let mut data = vec![0; len + 2];
                        if stream.read_exact(&mut data).await.is_err() {
                            return;
                        }
                    }
                    let next = if line == "stats settings\r\n" {
                        says(b"STAT item_size_max 1024\r\nSTAT cas_enabled yes\r\nEND\r\n")
                    } else {
                        script
                            .lock()
                            .expect("lock")
                            .next()
                            .unwrap_or_else(|| says(b"EN\r\n"))
                    };
                    if stream.get_mut().write_all(&next.reply).await.is_err() || next.close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn fake_backend(script: Vec<Scripted>) -> (MemcachedBackend, Arc<AtomicUsize>) {
    let (addr, accepted) = fake_server(script).await;
    let backend =
        connect(MemcachedConfig::new(addr).with_operation_timeout(Duration::from_secs(2))).await;
    (backend, accepted)
}

/// How the backend meets a bad reply to a get: once, or — when the connection broke and
/// it was a pooled one — once more on a new connection, which meets the same reply.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Attempts {
    Once,
    RetriedOnANewConnection,
}

#[rstest]
#[case::value_larger_than_any_item(says(b"VA 99999999\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::value_size_overflowing(
    says(b"VA 999999999999999999999999\r\n"),
    ErrorKind::Protocol,
    Attempts::Once
)]
#[case::value_size_not_a_number(says(b"VA x\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::value_cut_short(
    says_then_closes(b"VA 5\r\nab"),
    ErrorKind::Unavailable,
    Attempts::RetriedOnANewConnection
)]
#[case::value_without_its_crlf(says(b"VA 3\r\nabcXY\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::endless_line(says(&[b'A'; 10_000]), ErrorKind::Protocol, Attempts::Once)]
#[case::bare_newline(says(b"EN\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::binary_garbage(says(b"\xff\xfe\x00\x01\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::the_wrong_success(says(b"HD\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::client_error(
    says(b"CLIENT_ERROR bad data chunk\r\n"),
    ErrorKind::Protocol,
    Attempts::Once
)]
#[case::error(says(b"ERROR\r\n"), ErrorKind::Protocol, Attempts::Once)]
#[case::out_of_memory(
    says(b"SERVER_ERROR out of memory storing object\r\n"),
    ErrorKind::Unavailable,
    Attempts::Once
)]
#[case::closed_without_a_word(
    says_then_closes(b""),
    ErrorKind::Unavailable,
    Attempts::RetriedOnANewConnection
)]
#[tokio::test]
async fn a_get_answered_badly_fails_cleanly_and_its_connection_is_dropped(
    #[case] reply: Scripted,
    #[case] kind: ErrorKind,
    #[case] attempts: Attempts,
) {
    let mut script = vec![reply.clone()];
    if attempts == Attempts::RetriedOnANewConnection {
        script.push(reply);
    }
    script.push(says(b"VA 2\r\nok\r\n"));
    let (backend, accepted) = fake_backend(script).await;
    let err = backend.get("k").await.expect_err("a bad reply is an error");
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.to_string().len() < 600, "message not capped: {err}");
    let used = accepted.load(Ordering::SeqCst);
    // The next operation works, on a new connection: a spoiled one is never reused.
    assert_eq!(
        backend.get("k").await.expect("the next get"),
        Some(Bytes::from_static(b"ok"))
    );
    assert_eq!(accepted.load(Ordering::SeqCst), used + 1);
    let expected_before = match attempts {
        Attempts::Once => 1,
        Attempts::RetriedOnANewConnection => 2,
    };
    assert_eq!(used, expected_before, "connections used by the failing get");
}

#[rstest]
#[case::too_large(
    b"SERVER_ERROR object too large for cache\r\n",
    ErrorKind::ValueTooLarge
)]
#[case::out_of_memory(
    b"SERVER_ERROR out of memory storing object\r\n",
    ErrorKind::Unavailable
)]
#[case::not_stored(b"NS\r\n", ErrorKind::Protocol)]
#[case::client_error(b"CLIENT_ERROR bad command line format\r\n", ErrorKind::Protocol)]
#[tokio::test]
async fn set_error_replies_map_to_kinds(#[case] reply: &[u8], #[case] kind: ErrorKind) {
    let (backend, _) = fake_backend(vec![says(reply)]).await;
    let err = backend
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .expect_err("an error reply");
    assert_eq!(err.kind(), kind, "{err}");
    if kind == ErrorKind::Unavailable {
        assert!(err.message().contains("out of memory"), "{err}");
    }
}

#[rstest]
#[case::delete_hit(b"HD\r\n", Some(true))]
#[case::delete_miss(b"NF\r\n", Some(false))]
#[case::delete_answered_like_a_get(b"EN\r\n", None)]
#[tokio::test]
async fn delete_reads_hd_and_nf_only(#[case] reply: &[u8], #[case] expected: Option<bool>) {
    let (backend, _) = fake_backend(vec![says(reply)]).await;
    match (backend.delete("k").await, expected) {
        (Ok(found), Some(expected)) => assert_eq!(found, expected),
        (Err(err), None) => assert_eq!(err.kind(), ErrorKind::Protocol),
        (other, _) => panic!("delete answered {reply:?}: got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_reply_keeps_its_connection() {
    let (backend, accepted) = fake_backend(vec![says(b"HD\r\n"), says(b"EN\r\n")]).await;
    assert!(backend.exists("a").await.expect("exists"));
    assert!(!backend.exists("b").await.expect("exists"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[rstest]
#[case::not_memcached(b"HTTP/1.1 400 Bad Request\r\n\r\n")]
#[case::error(b"ERROR\r\n")]
#[case::no_item_size(b"STAT pid 1\r\nEND\r\n")]
#[case::endless_stats(&b"STAT x 1\r\n".repeat(2000))]
#[tokio::test]
async fn a_server_that_does_not_answer_like_memcached_fails_connect_with_protocol(
    #[case] reply: &[u8],
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let reply = reply.to_vec();
    tokio::spawn(async move {
        if let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(&reply).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let result = MemcachedBackend::connect(
        MemcachedConfig::new(addr).with_operation_timeout(Duration::from_secs(2)),
    )
    .await;
    assert_eq!(kind_of(result), ErrorKind::Protocol);
}

/// A service that claims an item size memcached would refuse would make every value read
/// a promise of unbounded memory: connecting refuses it.
#[rstest]
#[case::beyond_a_gigabyte(b"STAT item_size_max 18446744073709551615\r\nEND\r\n".as_slice())]
#[case::below_a_kilobyte(b"STAT item_size_max 10\r\nEND\r\n".as_slice())]
#[tokio::test]
async fn an_item_size_memcached_would_refuse_is_a_protocol_error(#[case] settings: &'static [u8]) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.is_ok_and(|read| read > 0) {
                    if stream.get_mut().write_all(settings).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    let err = MemcachedBackend::connect(MemcachedConfig::new(addr))
        .await
        .expect_err("connected to a service claiming an impossible item size");
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
}
