//! Connections and the pool that lends them out.
//!
//! A connection goes back to the pool only after a complete, expected reply. One that saw
//! an I/O error, a timeout, an error reply or bytes it could not parse is dropped (closed)
//! instead: after any of those, where the next reply starts in its stream is unknown.
//! A dropped operation future (a timeout, a cancelled task) drops its connection the same
//! way, because the lease owns it. Later operations open new connections, so a backend
//! recovers by itself once the server is back.

use std::io;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::Duration;

use cachekit_core::BackendError;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::protocol::{quote, MAX_REPLY_LINE_BYTES};

/// Values up to this size are copied behind their command line and sent in one write;
/// larger ones are written in place, without the copy.
const COALESCE_BYTES: usize = 16 * 1024;

/// How long a connection may sit idle before the kernel probes it, the time between probes,
/// and how long sent data may stay unacknowledged before the connection is declared dead.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The most a value read allocates before its bytes arrive; larger values grow as they come.
const UPFRONT_VALUE_BYTES: usize = 1024 * 1024;

/// Bytes buffered per connection for reading replies.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Why one exchange on a connection failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The connection broke (reset, closed, refused write): the server or the network is
    /// the problem, and a fresh connection may work.
    Io(io::Error),
    /// The server answered, with an error or with something this client cannot read.
    Reply(BackendError),
}

impl From<BackendError> for ExchangeError {
    fn from(err: BackendError) -> Self {
        ExchangeError::Reply(err)
    }
}

/// One TCP connection to memcached.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    /// Connects within `timeout`.
    pub(crate) async fn open(addr: &str, timeout: Duration) -> Result<Conn, BackendError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(BackendError::unavailable(format!(
                    "cannot connect to memcached at {addr}: {err}"
                ))
                .with_source(err))
            }
            Err(_) => {
                return Err(BackendError::timeout(format!(
                    "cannot connect to memcached at {addr}: no connection within {timeout:?}"
                )))
            }
        };
        // Commands are small and each waits for its reply: Nagle's algorithm would hold
        // the second segment of a set back for a delayed ACK.
        stream.set_nodelay(true).map_err(|err| {
            BackendError::unavailable(format!("cannot configure the connection to {addr}: {err}"))
                .with_source(err)
        })?;
        // A server host that vanished, or a middlebox that dropped an idle flow, would
        // otherwise cost every pooled connection a full operation timeout.
        let socket = SockRef::from(&stream);
        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL);
        socket
            .set_tcp_keepalive(&keepalive)
            .and_then(|()| socket.set_tcp_user_timeout(Some(KEEPALIVE_IDLE)))
            .map_err(|err| {
                BackendError::unavailable(format!(
                    "cannot configure the connection to {addr}: {err}"
                ))
                .with_source(err)
            })?;
        Ok(Conn {
            stream: BufReader::with_capacity(READ_BUFFER_BYTES, stream),
        })
    }

    /// Whether the server already closed this idle connection, or sent something nobody
    /// asked for: either way it must not carry a request.
    ///
    /// A real `recv(MSG_PEEK)` on the non-blocking socket, not tokio's `try_read`: that one
    /// trusts readiness the reactor may not have seen yet (a server restarted a moment ago),
    /// and a delete, which is never repeated, would then fail on a connection known to be dead.
    fn is_spoiled(&self) -> bool {
        if !self.stream.buffer().is_empty() {
            return true;
        }
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        match SockRef::from(self.stream.get_ref()).peek(&mut probe) {
            // Unasked-for bytes, or 0: the peer closed.
            Ok(_) => true,
            Err(err) => err.kind() != io::ErrorKind::WouldBlock,
        }
    }

    /// Sends `head`, then `body` and `tail` if given, as one write when they are small.
    pub(crate) async fn send(&mut self, head: &[u8], body: &[u8], tail: &[u8]) -> io::Result<()> {
        let stream = self.stream.get_mut();
        if body.len() <= COALESCE_BYTES {
            let mut all = Vec::with_capacity(head.len() + body.len() + tail.len());
            all.extend_from_slice(head);
            all.extend_from_slice(body);
            all.extend_from_slice(tail);
            stream.write_all(&all).await
        } else {
            stream.write_all(head).await?;
            stream.write_all(body).await?;
            stream.write_all(tail).await
        }
    }

    /// One reply line without its `\r\n`, at most [`MAX_REPLY_LINE_BYTES`] long.
    pub(crate) async fn read_line(&mut self) -> Result<Vec<u8>, ExchangeError> {
        let mut line = Vec::new();
        loop {
            let available = self.stream.fill_buf().await.map_err(ExchangeError::Io)?;
            if available.is_empty() {
                return Err(ExchangeError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |at| at + 1);
            line.extend_from_slice(&available[..take]);
            self.stream.consume(take);
            if line.len() > MAX_REPLY_LINE_BYTES + 2 {
                return Err(ExchangeError::Reply(BackendError::protocol(format!(
                    "a reply line longer than {MAX_REPLY_LINE_BYTES} bytes: {}",
                    quote(&line)
                ))));
            }
            if newline.is_some() {
                break;
            }
        }
        line.pop();
        if line.pop() != Some(b'\r') {
            return Err(ExchangeError::Reply(BackendError::protocol(format!(
                "a reply line ended by a bare newline: {}",
                quote(&line)
            ))));
        }
        Ok(line)
    }

    /// A data block of `len` bytes and its `\r\n`. The caller has bounded `len`; memory
    /// grows with the bytes that actually arrive, not with the size the server announced.
    pub(crate) async fn read_data(&mut self, len: usize) -> Result<Vec<u8>, ExchangeError> {
        let mut data = Vec::with_capacity((len + 2).min(UPFRONT_VALUE_BYTES));
        let read = (&mut self.stream)
            .take(len as u64 + 2)
            .read_to_end(&mut data)
            .await
            .map_err(ExchangeError::Io)?;
        if read < len + 2 {
            return Err(ExchangeError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed after {read} of {} value bytes",
                    len + 2
                ),
            )));
        }
        if !data.ends_with(b"\r\n") {
            let tail = &data[len..];
            return Err(ExchangeError::Reply(BackendError::protocol(format!(
                "a {len}-byte value not followed by \\r\\n but by {}",
                quote(tail)
            ))));
        }
        data.truncate(len);
        Ok(data)
    }
}

/// Open connections: idle ones wait in a stack, and a semaphore bounds idle plus busy.
#[derive(Debug)]
pub(crate) struct Pool {
    addr: String,
    connect_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection on loan; dropped with it unless [`Lease::release`] hands it back.
#[derive(Debug)]
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    conn: Conn,
    reused: bool,
    _permit: SemaphorePermit<'p>,
}

impl Pool {
    pub(crate) fn new(addr: String, connect_timeout: Duration, max_connections: usize) -> Self {
        Pool {
            addr,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// A connection: an idle one unless `fresh`, else a new one.
    pub(crate) async fn lease(&self, fresh: bool) -> Result<Lease<'_>, BackendError> {
        let permit = self.permits.acquire().await.map_err(|_| {
            // Only a closed semaphore fails, and this pool never closes it.
            BackendError::unavailable("the connection pool is closed")
        })?;
        if !fresh {
            while let Some(conn) = self.take_idle() {
                if !conn.is_spoiled() {
                    return Ok(Lease {
                        pool: self,
                        conn,
                        reused: true,
                        _permit: permit,
                    });
                }
            }
        }
        let conn = Conn::open(&self.addr, self.connect_timeout).await?;
        Ok(Lease {
            pool: self,
            conn,
            reused: false,
            _permit: permit,
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        // A panic while holding this lock cannot leave the Vec half-updated.
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.pop()
    }

    /// Idle connections right now.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

impl Lease<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Whether the connection served an earlier operation (and may have gone stale since).
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// Returns the connection to the pool: only after a complete, expected reply.
    pub(crate) fn release(self) {
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.push(self.conn);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;

    /// A listener that accepts and holds connections until told to drop them.
    async fn holding_server() -> (String, Arc<Mutex<Vec<TcpStream>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                keep.lock().expect("lock").push(stream);
            }
        });
        (addr, held)
    }

    #[tokio::test]
    async fn released_connections_are_reused_and_dropped_ones_are_closed() {
        let (addr, _held) = holding_server().await;
        let pool = Pool::new(addr, Duration::from_secs(1), 2);
        let lease = pool.lease(false).await.expect("lease");
        assert!(!lease.reused());
        lease.release();
        assert_eq!(pool.idle_count(), 1);
        let lease = pool.lease(false).await.expect("lease");
        assert!(lease.reused());
        // Not released: an operation that failed or was cancelled.
        drop(lease);
        assert_eq!(pool.idle_count(), 0);
        let fresh = pool.lease(false).await.expect("lease");
        assert!(!fresh.reused());
    }

    #[tokio::test]
    async fn no_more_than_max_connections_are_open_at_once() {
        let (addr, _held) = holding_server().await;
        let pool = Pool::new(addr, Duration::from_secs(1), 2);
        let first = pool.lease(false).await.expect("lease");
        let _second = pool.lease(false).await.expect("lease");
        let third = tokio::time::timeout(Duration::from_millis(100), pool.lease(false)).await;
        assert!(third.is_err(), "a third connection was opened");
        first.release();
        let third = tokio::time::timeout(Duration::from_millis(100), pool.lease(false)).await;
        assert!(third.is_ok_and(|lease| lease.is_ok_and(|lease| lease.reused())));
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_lent_out() {
        let (addr, held) = holding_server().await;
        let pool = Pool::new(addr, Duration::from_secs(1), 2);
        pool.lease(false).await.expect("lease").release();
        // Wait until the server holds it, then close it from the server's side.
        while held.lock().expect("lock").is_empty() {
            tokio::task::yield_now().await;
        }
        held.lock().expect("lock").clear();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let lease = pool.lease(false).await.expect("lease");
        assert!(!lease.reused(), "a closed connection was reused");
    }

    #[tokio::test]
    async fn an_idle_connection_with_unasked_for_bytes_is_not_lent_out() {
        let (addr, held) = holding_server().await;
        let pool = Pool::new(addr, Duration::from_secs(1), 2);
        pool.lease(false).await.expect("lease").release();
        while held.lock().expect("lock").is_empty() {
            tokio::task::yield_now().await;
        }
        let stream = held.lock().expect("lock").pop().expect("held");
        stream.try_write(b"HD\r\n").expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let lease = pool.lease(false).await.expect("lease");
        assert!(
            !lease.reused(),
            "a connection with a stray reply was reused"
        );
        drop(stream);
    }

    #[tokio::test]
    async fn refused_connections_are_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let err = Conn::open(&format!("127.0.0.1:{port}"), Duration::from_secs(1))
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), cachekit_core::ErrorKind::Unavailable);
    }
}
