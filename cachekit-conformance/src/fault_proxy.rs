//! An in-process TCP fault proxy: put it between a network backend and its server, then
//! make the network misbehave on cue — latency with jitter, a bandwidth limit, a reset or
//! a close after some bytes, a blackhole, a partition — and heal it again.
//!
//! It knows nothing of the protocol it carries, so it serves HTTP, DynamoDB, Redis and
//! memcached alike. Every fault applies to the bytes forwarded from the moment it is set
//! (a partition also to connections already open).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How the proxied network behaves. The default forwards everything at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Added before each chunk is forwarded, in each direction.
    pub latency: Duration,
    /// A random extra delay between zero and this, on top of `latency`.
    pub jitter: Duration,
    /// Bytes per second each direction of each connection may carry; `None`: no limit.
    pub bandwidth: Option<u64>,
    /// After this many bytes (both directions) a connection is reset (RST).
    pub reset_after_bytes: Option<u64>,
    /// After this many bytes (both directions) a connection is closed cleanly (FIN).
    pub close_after_bytes: Option<u64>,
    /// Nothing is forwarded: requests hang, connections stay open.
    pub blackhole: bool,
    /// New connections are reset at once and open ones are reset: the server is
    /// unreachable (a firewall that rejects) until healed.
    pub partitioned: bool,
}

/// A running proxy. Dropping it stops it and cuts every connection it carries.
#[derive(Debug)]
pub struct FaultProxy {
    local: SocketAddr,
    faults: watch::Sender<Faults>,
    accepted: Arc<AtomicUsize>,
    forwarded: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards each connection to `upstream`.
    /// `seed` drives the jitter.
    pub async fn start(upstream: SocketAddr, seed: u64) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let local = listener.local_addr()?;
        let (faults, watching) = watch::channel(Faults::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let counters = (accepted.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            let mut connection = 0u64;
            let mut links = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                counters.0.fetch_add(1, Ordering::Relaxed);
                connection += 1;
                let watching = watching.clone();
                let forwarded = counters.1.clone();
                let seed = seed ^ connection.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                links.spawn(link(client, upstream, watching, forwarded, seed));
                // Reap finished links so a long run does not pile them up.
                while links.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy {
            local,
            faults,
            accepted,
            forwarded,
            task,
        })
    }

    /// The address clients connect to instead of the server's.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Replaces the faults in effect.
    pub fn set(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// The faults in effect.
    pub fn faults(&self) -> Faults {
        *self.faults.borrow()
    }

    /// Cuts the server off: new connections are reset, open ones are reset.
    pub fn partition(&self) {
        self.faults.send_modify(|faults| faults.partitioned = true);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.set(Faults::default());
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes_forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Makes the next close of `stream` send RST instead of FIN.
fn reset_on_close(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn link(
    client: TcpStream,
    upstream: SocketAddr,
    watching: watch::Receiver<Faults>,
    forwarded: Arc<AtomicU64>,
    seed: u64,
) {
    if watching.borrow().partitioned {
        reset_on_close(&client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset_on_close(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let shared = Arc::new(Shared {
        carried: AtomicU64::new(0),
        forwarded,
        cut: Notify::new(),
    });
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut rng = StdRng::seed_from_u64(seed);
    let up = pump(
        client_read,
        server_write,
        watching.clone(),
        shared.clone(),
        rng.gen(),
    );
    let down = pump(server_read, client_write, watching, shared, rng.gen());
    tokio::join!(up, down);
}

/// What the two directions of one link share.
struct Shared {
    /// Bytes carried by this link, both directions.
    carried: AtomicU64,
    /// Bytes carried by the whole proxy.
    forwarded: Arc<AtomicU64>,
    /// Wakes the other direction when one cuts the link.
    cut: Notify,
}

/// Waits until `faults` says `cut`.
async fn until(watching: &mut watch::Receiver<Faults>, cut: impl Fn(&Faults) -> bool) {
    loop {
        if cut(&watching.borrow_and_update()) {
            return;
        }
        if watching.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Forwards one direction of a link until either side closes or a fault cuts it. A cut
/// resets both connections and wakes the other direction, which then ends too.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut watching: watch::Receiver<Faults>,
    shared: Arc<Shared>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buffer = vec![0u8; 16 * 1024];
    // Dropping a write half sends FIN first, which the peer would read as a clean end:
    // a cut forgets it instead, so the socket closes (with RST) only with its read half.
    let reset_both = |from: &OwnedReadHalf, to: OwnedWriteHalf| {
        reset_on_close(from.as_ref());
        reset_on_close(to.as_ref());
        to.forget();
        shared.cut.notify_one();
    };
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = until(&mut watching, |faults| faults.partitioned) => {
                reset_both(&from, to);
                return;
            }
            () = shared.cut.notified() => {
                to.forget();
                return;
            }
        };
        let read = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        // A blackhole holds the bytes until it is lifted.
        tokio::select! {
            () = until(&mut watching, |faults| !faults.blackhole) => {}
            () = shared.cut.notified() => {
                to.forget();
                return;
            }
        }
        let faults = *watching.borrow();
        let jitter = if faults.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.gen_range(0..=nanos(faults.jitter)))
        };
        let mut delay = faults.latency + jitter;
        if let Some(rate) = faults.bandwidth.filter(|rate| *rate > 0) {
            delay += Duration::from_secs_f64(read as f64 / rate as f64);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let before = shared.carried.fetch_add(read as u64, Ordering::Relaxed);
        let after = before + read as u64;
        // The bytes a limit still lets through, when this chunk crosses it.
        let allowed = |limit: Option<u64>| {
            limit.filter(|limit| after > *limit).map(|limit| {
                usize::try_from(limit.saturating_sub(before))
                    .unwrap_or(read)
                    .min(read)
            })
        };
        let (reset_at, close_at) = (
            allowed(faults.reset_after_bytes),
            allowed(faults.close_after_bytes),
        );
        let passing = reset_at.or(close_at).unwrap_or(read);
        if to.write_all(&buffer[..passing]).await.is_err() {
            return;
        }
        shared
            .forwarded
            .fetch_add(passing as u64, Ordering::Relaxed);
        if reset_at.is_some() {
            reset_both(&from, to);
            return;
        }
        if close_at.is_some() {
            let _ = to.shutdown().await;
            shared.cut.notify_one();
            return;
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
