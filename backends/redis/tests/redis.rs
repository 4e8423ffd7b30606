//! What only a real Redis server can show: a restart mid-run, refused credentials, a full
//! memory, a slow server, ACL users and database numbers. Each test starts its own
//! `redis-server` on a loopback port.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cachekit_backend_redis::local::RedisServer;
use cachekit_backend_redis::{RedisBackend, RedisConfig};
use cachekit_core::{Backend, BackendError, Bytes, ErrorKind};

fn server(args: &[&str]) -> RedisServer {
    RedisServer::start_with(args).expect("start redis-server")
}

async fn connect(url: &str) -> Result<RedisBackend, BackendError> {
    let mut config = RedisConfig::new(url);
    config.connect_timeout = Duration::from_secs(2);
    config.operation_timeout = Duration::from_secs(2);
    RedisBackend::connect(config).await
}

fn with_credentials(server: &RedisServer, credentials: &str, db: u8) -> String {
    format!("redis://{credentials}@127.0.0.1:{}/{db}", server.port())
}

/// How many authentication failures the server logged (`ACL LOG`, reason `auth`).
async fn refused_authentications(backend: &RedisBackend) -> u64 {
    let log: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut backend.connection())
        .await
        .expect("ACL LOG");
    log.iter()
        .filter(|entry| {
            entry
                .get("reason")
                .and_then(|reason| redis::from_redis_value_ref::<String>(reason).ok())
                == Some("auth".to_owned())
        })
        .map(|entry| {
            entry
                .get("count")
                .and_then(|count| redis::from_redis_value_ref::<u64>(count).ok())
                .expect("an ACL LOG entry has a count")
        })
        .sum()
}

/// The first answer `get(key)` gives within `limit`, retrying every 50 ms meanwhile; each
/// failure before it must be of one of the `allowed` kinds.
async fn first_answer(
    cache: &RedisBackend,
    key: &str,
    limit: Duration,
    allowed: &[ErrorKind],
) -> Option<Bytes> {
    let deadline = Instant::now() + limit;
    loop {
        match cache.get(key).await {
            Ok(answer) => return answer,
            Err(err) if Instant::now() < deadline => {
                assert!(allowed.contains(&err.kind()), "while recovering: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("no answer within {limit:?}: {err}"),
        }
    }
}

#[tokio::test]
async fn a_restarted_server_fails_calls_as_unavailable_then_the_same_backend_recovers() {
    let mut server = server(&[]);
    let cache = connect(server.url()).await.expect("connect");
    cache
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .expect("set");

    server.stop();
    for (operation, outcome) in [
        ("get", cache.get("k").await.map(|_| ())),
        ("set", cache.set("k", Bytes::from_static(b"w"), None).await),
        ("delete", cache.delete("k").await.map(|_| ())),
        ("exists", cache.exists("k").await.map(|_| ())),
    ] {
        let err = outcome.expect_err(operation);
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{operation}: {err}");
    }
    assert!(!cache.health_check().await.healthy);

    server.restart().expect("restart on the same port");
    let answer = first_answer(
        &cache,
        "k",
        Duration::from_secs(10),
        &[ErrorKind::Unavailable],
    )
    .await;
    assert_eq!(
        answer, None,
        "persistence is off: the restarted server is empty"
    );
    cache
        .set("k", Bytes::from_static(b"again"), None)
        .await
        .expect("set after recovery");
    assert_eq!(
        cache.get("k").await.expect("get"),
        Some(Bytes::from_static(b"again"))
    );
    assert!(cache.health_check().await.healthy);
}

#[tokio::test]
async fn a_wrong_password_is_auth_tried_once_and_never_printed() {
    let server = server(&["--requirepass", "right-horse"]);
    let wrong = with_credentials(&server, ":battery-staple", 0);
    let err = connect(&wrong)
        .await
        .expect_err("a wrong password connects");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("battery-staple"), "{err}");
    assert!(!format!("{:?}", RedisConfig::new(&wrong)).contains("battery-staple"));

    let missing = format!("redis://127.0.0.1:{}", server.port());
    let err = connect(&missing).await.expect_err("no password connects");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    let right = connect(&with_credentials(&server, ":right-horse", 0))
        .await
        .expect("the right password connects");
    // One refused AUTH for the wrong password, none for the missing one (its commands
    // are refused with NOAUTH instead): the failed attempt was not repeated.
    assert_eq!(refused_authentications(&right).await, 1);
    let report = right.health_check().await;
    assert!(report.healthy);
    assert!(report
        .details
        .values()
        .all(|value| !value.contains("right-horse")));
}

#[tokio::test]
async fn an_acl_user_is_confined_to_its_keys_and_a_database_number_is_honoured() {
    let server = server(&[
        "--user", "cache", "on", ">pw", "~app:*", "&*", "+@all", "--user", "admin", "on", ">root",
        "~*", "&*", "+@all",
    ]);
    let confined = RedisBackend::connect(
        RedisConfig::new(with_credentials(&server, "cache:pw", 3)).with_key_prefix("app:"),
    )
    .await
    .expect("the ACL user connects");
    confined
        .set("k", Bytes::from_static(b"in db 3"), None)
        .await
        .expect("set under the user's prefix");

    let admin_db0 = connect(&with_credentials(&server, "admin:root", 0))
        .await
        .expect("admin connects");
    assert_eq!(
        admin_db0.get("app:k").await.expect("get"),
        None,
        "db 0 is another database"
    );
    let admin_db3 = connect(&with_credentials(&server, "admin:root", 3))
        .await
        .expect("admin connects to db 3");
    assert_eq!(
        admin_db3.get("app:k").await.expect("get"),
        Some(Bytes::from_static(b"in db 3"))
    );

    let outside = RedisBackend::connect(RedisConfig::new(with_credentials(&server, "cache:pw", 3)))
        .await
        .expect("connects without a prefix");
    let err = outside
        .set("elsewhere", Bytes::from_static(b"x"), None)
        .await
        .expect_err("a key outside the user's pattern is refused");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

#[tokio::test]
async fn a_full_server_without_eviction_refuses_writes_as_unavailable_and_says_so() {
    let server = server(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let cache = connect(server.url()).await.expect("connect");
    assert!(
        !cache.capabilities().may_evict,
        "noeviction is declared as no eviction"
    );
    let value = Bytes::from(vec![7u8; 64 * 1024]);
    let mut refused = None;
    for index in 0..1000 {
        if let Err(err) = cache
            .set(&format!("fill{index}"), value.clone(), None)
            .await
        {
            refused = Some((index, err));
            break;
        }
    }
    let (index, err) = refused.expect("4 MiB of memory holds less than 64 MiB of values");
    assert!(index > 0, "the first write already failed: {err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.message().contains("OOM"),
        "the server's own words are kept: {err}"
    );
    assert!(cache
        .get("fill0")
        .await
        .expect("reads still work")
        .is_some());
}

#[tokio::test]
async fn an_evicting_server_is_declared_as_one() {
    let server = server(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let cache = connect(server.url()).await.expect("connect");
    assert!(cache.capabilities().may_evict);
    let unbounded = self::server(&[]);
    let cache = connect(unbounded.url()).await.expect("connect");
    assert!(!cache.capabilities().may_evict);
}

#[tokio::test]
async fn a_server_stalled_past_the_deadline_is_a_timeout() {
    let server = server(&["--enable-debug-command", "yes"]);
    let mut config = RedisConfig::new(server.url());
    config.operation_timeout = Duration::from_millis(300);
    let cache = RedisBackend::connect(config).await.expect("connect");
    for (key, value) in [("a", "first"), ("b", "second")] {
        cache
            .set(key, Bytes::from(value), None)
            .await
            .expect("set before the stall");
    }
    let staller = connect(server.url())
        .await
        .expect("connect a second client");
    let stall = tokio::spawn(async move {
        // Blocks the whole (single-threaded) server for 2 s.
        let _: Result<String, _> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("2")
            .query_async(&mut staller.connection())
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = cache
        .get("k")
        .await
        .expect_err("answered during DEBUG SLEEP");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline was not kept"
    );
    stall.await.expect("the stall ends");
    // The late answer to the timed-out GET must not be taken for a later command's.
    assert_eq!(
        cache.get("a").await.expect("get"),
        Some(Bytes::from("first"))
    );
    assert_eq!(
        cache.get("b").await.expect("get"),
        Some(Bytes::from("second"))
    );
}

#[tokio::test]
async fn a_reconnect_the_server_refuses_is_tried_again_once_it_accepts() {
    let server = server(&["--requirepass", "old-pw"]);
    let cache = connect(&with_credentials(&server, ":old-pw", 0))
        .await
        .expect("connect");
    cache
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .expect("set");
    let admin = connect(&with_credentials(&server, ":old-pw", 0))
        .await
        .expect("admin connects");
    let admin_says = |args: &'static [&'static str]| {
        let mut connection = admin.connection();
        async move {
            let _: redis::Value = redis::cmd(args[0])
                .arg(&args[1..])
                .query_async(&mut connection)
                .await
                .unwrap_or_else(|err| panic!("{args:?}: {err}"));
        }
    };
    // A password rotation the backend's configuration has not caught up with: its
    // connection is dropped and reconnecting is refused.
    admin_says(&["CONFIG", "SET", "requirepass", "new-pw"]).await;
    admin_says(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]).await;
    for _ in 0..3 {
        let err = cache
            .get("k")
            .await
            .expect_err("the old password still works");
        assert!(
            matches!(err.kind(), ErrorKind::Auth | ErrorKind::Unavailable),
            "{err}"
        );
    }
    admin_says(&["CONFIG", "SET", "requirepass", "old-pw"]).await;
    let answer = first_answer(
        &cache,
        "k",
        Duration::from_secs(5),
        &[ErrorKind::Auth, ErrorKind::Unavailable],
    )
    .await;
    assert_eq!(answer, Some(Bytes::from_static(b"v")));
}

#[tokio::test]
async fn a_database_the_server_does_not_have_is_an_invalid_argument() {
    let server = server(&["--databases", "4"]);
    let err = connect(&format!("redis://127.0.0.1:{}/9", server.port()))
        .await
        .expect_err("SELECT 9 on a 4-database server");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let err = connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect_err("connected to nothing");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_bad_url_is_an_invalid_argument_that_keeps_the_password_out() {
    for url in [
        "redis://:hunter2@",
        "memcached://:hunter2@127.0.0.1",
        "redis://:hunter2@127.0.0.1/notadb",
    ] {
        let err = connect(url).await.expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{url}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

/// Writes a private CA and a certificate for 127.0.0.1 signed by it into `dir`, with the
/// `openssl` command line tool.
fn private_ca(dir: &std::path::Path) -> Result<(), String> {
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n")
        .map_err(|err| err.to_string())?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=cachekit test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for step in steps {
        let output = std::process::Command::new("openssl")
            .args(step)
            .current_dir(dir)
            .output()
            .map_err(|err| {
                format!("cannot run openssl ({err}); install it (`apt-get install openssl`)")
            })?;
        if !output.status.success() {
            return Err(format!(
                "openssl {step:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(())
}

#[tokio::test]
async fn rediss_reaches_a_tls_server_that_a_private_ca_vouches_for() {
    let dir = std::env::temp_dir().join(format!("cachekit-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    private_ca(&dir).expect("make a private CA");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let server = server(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let ca_pem = std::fs::read(&ca).expect("read the CA");

    let cache = RedisBackend::connect(RedisConfig::new(&url).with_root_certificates_pem(ca_pem))
        .await
        .expect("TLS with the private CA trusted");
    cache
        .set("k", Bytes::from_static(b"over tls"), None)
        .await
        .expect("set");
    assert_eq!(
        cache.get("k").await.expect("get"),
        Some(Bytes::from_static(b"over tls"))
    );

    let err = connect(&url)
        .await
        .expect_err("a certificate nobody vouches for is accepted");
    assert_eq!(
        err.kind(),
        ErrorKind::Auth,
        "an untrusted server is not retried: {err}"
    );
    let plain = connect(&format!("redis://127.0.0.1:{}", server.port()))
        .await
        .expect_err("plain text to a TLS port");
    assert_eq!(plain.kind(), ErrorKind::Unavailable, "{plain}");
    let _ = std::fs::remove_dir_all(&dir);
}
