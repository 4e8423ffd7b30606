#[cachekit::cache(backend = cachekit_backend_memory::MemoryBackend::new(), strict)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
