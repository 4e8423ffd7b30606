struct Connection;

#[cachekit::cache(backend = cachekit_backend_memory::MemoryBackend::new())]
async fn lookup(connection: &Connection, id: u64) -> u64 {
    let _ = connection;
    id
}

fn main() {}
