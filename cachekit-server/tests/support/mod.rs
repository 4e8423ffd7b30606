//! A raw HTTP/1.1 client for tests that need to control every byte and every stall.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One parsed response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A keep-alive connection that sends raw bytes and parses `Content-Length` responses.
pub struct RawConnection {
    reader: BufReader<TcpStream>,
}

impl RawConnection {
    pub async fn connect(addr: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawConnection {
            reader: BufReader::new(stream),
        }
    }

    pub fn from_stream(stream: TcpStream) -> RawConnection {
        RawConnection {
            reader: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.expect("write");
    }

    /// The next response, or `None` if the server closed the connection first.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line).await.ok()? == 0 {
            return None;
        }
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.ok()?;
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// The response to `request`, which must get one.
    pub async fn exchange(&mut self, request: &[u8]) -> RawResponse {
        self.send(request).await;
        self.response().await.expect("a response")
    }

    /// Reads and discards until the server closes the connection (end of stream or reset),
    /// returning how long that took and the bytes read; `Err` with the bytes read if it is
    /// still open after `bound`.
    pub async fn closed_within(&mut self, bound: Duration) -> Result<(Duration, usize), usize> {
        let started = Instant::now();
        let mut read = 0;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let left = bound.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.reader.read(&mut buffer)).await {
                Err(_still_open) => return Err(read),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok((started.elapsed(), read)),
                Ok(Ok(n)) => read += n,
            }
        }
    }

    pub fn into_stream(self) -> TcpStream {
        self.reader.into_inner()
    }
}

/// A `GET /cache/{key}` request that keeps the connection open.
pub fn get_request(key: &str) -> Vec<u8> {
    format!("GET /cache/{key} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// A `PUT /cache/{key}` request with `value` as its body.
pub fn put_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "PUT /cache/{key} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        value.len()
    )
    .into_bytes();
    request.extend_from_slice(value);
    request
}
