//! The fault proxy against a real TCP echo server on loopback: each fault does what it
//! says, and healing brings the same connection (or a new one) back.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use cachekit_conformance::fault_proxy::{FaultProxy, Faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// An echo server: every byte a connection sends comes back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn proxied() -> (FaultProxy, TcpStream) {
    let proxy = FaultProxy::start(echo_server().await, 7)
        .await
        .expect("proxy");
    let stream = TcpStream::connect(proxy.local_addr())
        .await
        .expect("connect");
    (proxy, stream)
}

async fn read_exactly(stream: &mut TcpStream, len: usize) -> std::io::Result<Vec<u8>> {
    let mut got = vec![0u8; len];
    stream.read_exact(&mut got).await?;
    Ok(got)
}

/// Reads until the connection ends; the bytes read and how it ended.
async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return (got, Ok(())),
            Ok(read) => got.extend_from_slice(&buffer[..read]),
            Err(err) => return (got, Err(err)),
        }
    }
}

#[tokio::test]
async fn without_faults_every_byte_goes_through_both_ways_unchanged() {
    let (proxy, mut stream) = proxied().await;
    let payload: Vec<u8> = (0..200_000u32).map(|n| (n * 31 % 251) as u8).collect();
    let (mut reader, mut writer) = stream.split();
    let send = async {
        writer.write_all(&payload).await.expect("send");
    };
    let mut echoed = vec![0u8; payload.len()];
    let receive = async {
        reader.read_exact(&mut echoed).await.expect("echo");
    };
    tokio::join!(send, receive);
    assert!(echoed == payload);
    assert_eq!(proxy.bytes_forwarded(), 2 * payload.len() as u64);
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let (proxy, mut stream) = proxied().await;
    let latency = Duration::from_millis(40);
    proxy.set(Faults {
        latency,
        jitter: Duration::from_millis(5),
        ..Faults::default()
    });
    let started = Instant::now();
    stream.write_all(b"ping").await.expect("send");
    assert_eq!(read_exactly(&mut stream, 4).await.expect("echo"), b"ping");
    assert!(started.elapsed() >= latency * 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_bandwidth_limit_spreads_bytes_over_time() {
    let (proxy, mut stream) = proxied().await;
    proxy.set(Faults {
        bandwidth: Some(100_000),
        ..Faults::default()
    });
    let started = Instant::now();
    let payload = vec![7u8; 10_000];
    stream.write_all(&payload).await.expect("send");
    assert_eq!(
        read_exactly(&mut stream, payload.len())
            .await
            .expect("echo"),
        payload
    );
    // 10 kB each way at 100 kB/s.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_reset_after_some_bytes_cuts_the_connection_with_rst() {
    let (proxy, mut stream) = proxied().await;
    proxy.set(Faults {
        reset_after_bytes: Some(15),
        ..Faults::default()
    });
    stream.write_all(b"0123456789").await.expect("send");
    let (got, ended) = read_to_end(&mut stream).await;
    // 10 bytes up, then 5 of the 10 echoed before the limit of 15.
    assert_eq!(got, b"01234");
    let err = ended.expect_err("a reset, not a clean close");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn a_close_after_some_bytes_ends_the_stream_cleanly() {
    let (proxy, mut stream) = proxied().await;
    proxy.set(Faults {
        close_after_bytes: Some(15),
        ..Faults::default()
    });
    stream.write_all(b"0123456789").await.expect("send");
    let (got, ended) = read_to_end(&mut stream).await;
    assert_eq!(got, b"01234");
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn a_blackhole_holds_requests_until_healed_on_the_same_connection() {
    let (proxy, mut stream) = proxied().await;
    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    stream.write_all(b"held").await.expect("send");
    let mut buffer = [0u8; 4];
    let waited = timeout(Duration::from_millis(150), stream.read(&mut buffer)).await;
    assert!(
        waited.is_err(),
        "an answer came through the blackhole: {waited:?}"
    );
    proxy.heal();
    assert_eq!(
        read_exactly(&mut stream, 4).await.expect("echo after heal"),
        b"held"
    );
}

#[tokio::test]
async fn a_partition_resets_open_and_new_connections_until_healed() {
    let (proxy, mut open) = proxied().await;
    open.write_all(b"a").await.expect("send");
    assert_eq!(read_exactly(&mut open, 1).await.expect("echo"), b"a");
    proxy.partition();
    let (_, ended) = read_to_end(&mut open).await;
    assert_eq!(ended.expect_err("reset").kind(), ErrorKind::ConnectionReset);
    let mut refused = TcpStream::connect(proxy.local_addr())
        .await
        .expect("connect");
    let _ = refused.write_all(b"b").await;
    let (got, _) = read_to_end(&mut refused).await;
    assert!(got.is_empty());
    proxy.heal();
    let mut healed = TcpStream::connect(proxy.local_addr())
        .await
        .expect("connect");
    healed.write_all(b"c").await.expect("send");
    assert_eq!(
        read_exactly(&mut healed, 1).await.expect("echo after heal"),
        b"c"
    );
}
