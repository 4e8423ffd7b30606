#[cachekit::cache(backend = cachekit_backend_memory::MemoryBackend::new())]
fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
