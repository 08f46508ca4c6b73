//! The `bohai` binary: see `bohai --help`.

/// jemalloc rather than glibc malloc: records are allocated on one thread and freed on another
/// (the checking pool, librdkafka's), which glibc handles poorly. The workspace builds it with
/// `unprefixed_malloc_on_supported_platforms`, so that librdkafka's own `malloc` and `free`
/// (a message, its payload copy and each of its headers) are jemalloc's too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    bohai_hub::cli::main()
}
