//! MemcachedBackend get/set against the same meta commands written by hand on one
//! TcpStream, to the same memcached, in the same run.
//!
//! Rounds alternate between the two so drift on a shared machine hits both alike; the
//! medians' ratio (backend ops/s ÷ raw ops/s) is the figure reported, per value size.
//! What the ratio prices is the backend's own work: key checks and encoding, the pool,
//! the deadline, reply parsing and copying the value into `Bytes`.

use std::time::Instant;

use cachekit_backend_memcached::local::MemcachedServer;
use cachekit_backend_memcached::protocol::wire_key;
use cachekit_backend_memcached::{MemcachedBackend, MemcachedConfig};
use cachekit_core::{Backend, Bytes};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ROUNDS: usize = 7;
const OPS_PER_ROUND: usize = 2000;
const VALUE_SIZES: [usize; 3] = [16, 1024, 100 * 1024];

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// One connection speaking the meta protocol with no checks beyond what the bench needs.
struct Raw {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream: BufReader::new(stream),
            line: String::new(),
        }
    }

    async fn set(&mut self, key: &str, value: &[u8]) {
        let mut request = format!("ms {key} {} b\r\n", value.len()).into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .expect("write");
        self.line.clear();
        self.stream.read_line(&mut self.line).await.expect("read");
        assert_eq!(self.line, "HD\r\n");
    }

    async fn get(&mut self, key: &str) -> Vec<u8> {
        let request = format!("mg {key} b v\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        self.line.clear();
        self.stream.read_line(&mut self.line).await.expect("read");
        let len: usize = self
            .line
            .trim_end()
            .strip_prefix("VA ")
            .and_then(|size| size.parse().ok())
            .expect("a VA line");
        let mut value = vec![0; len + 2];
        self.stream.read_exact(&mut value).await.expect("value");
        value.truncate(len);
        value
    }
}

/// Operations per second of `OPS_PER_ROUND` sequential runs of `$op`.
macro_rules! rate {
    ($op:expr) => {{
        let started = Instant::now();
        for _ in 0..OPS_PER_ROUND {
            $op;
        }
        OPS_PER_ROUND as f64 / started.elapsed().as_secs_f64()
    }};
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("raw_overhead: run with `cargo bench -p cachekit-backend-memcached` to measure");
        return;
    }
    let server = MemcachedServer::start().unwrap_or_else(|why| panic!("{why}"));
    println!("{server}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr = server.addr_string();
        let backend = MemcachedBackend::connect(MemcachedConfig::new(addr.clone()))
            .await
            .expect("connect");
        let mut raw = Raw::connect(&addr).await;
        println!(
            "{:>10}  {:>14} {:>14} {:>6}  {:>14} {:>14} {:>6}",
            "value", "set backend", "set raw", "ratio", "get backend", "get raw", "ratio"
        );
        for size in VALUE_SIZES {
            let value = Bytes::from(vec![0xA5; size]);
            let key = format!("bench-{size}");
            let raw_key = wire_key("", &format!("raw-{key}"));
            let (mut set_backend, mut set_raw, mut get_backend, mut get_raw) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                set_backend.push(rate!(backend
                    .set(&key, value.clone(), None)
                    .await
                    .expect("set")));
                set_raw.push(rate!(raw.set(&raw_key, &value).await));
                get_backend.push(rate!(assert_eq!(
                    backend.get(&key).await.expect("get").map(|v| v.len()),
                    Some(size)
                )));
                get_raw.push(rate!(assert_eq!(raw.get(&raw_key).await.len(), size)));
            }
            let (sb, sr, gb, gr) = (
                median(set_backend),
                median(set_raw),
                median(get_backend),
                median(get_raw),
            );
            println!(
                "{:>9}B  {:>12.0}/s {:>12.0}/s {:>6.2}  {:>12.0}/s {:>12.0}/s {:>6.2}",
                size,
                sb,
                sr,
                sb / sr,
                gb,
                gr,
                gb / gr
            );
        }
    });
}
