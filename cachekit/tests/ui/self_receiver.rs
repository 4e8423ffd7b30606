struct Service;

impl Service {
    #[cachekit::cache(backend = cachekit_backend_memory::MemoryBackend::new())]
    async fn lookup(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
