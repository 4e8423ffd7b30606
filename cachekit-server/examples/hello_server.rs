//! The throughput baseline for `cargo xtask bench`: the same axum + tokio setup as
//! `cachekit-server`, answering `GET /cache/{key}` with a fixed 64-byte body and no backend.

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

async fn fixed(Path(_key): Path<String>) -> &'static [u8] {
    &[0x5a; 64]
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "hello_server listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, Router::new().route("/cache/{key}", get(fixed))).await
}
