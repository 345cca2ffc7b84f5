use std::process::ExitCode;

// jemalloc: a third less operator CPU than glibc malloc in a cold start at 1000 FeatureStores
// (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options ([`fieldwise::JEMALLOC_OPTIONS`]), read from the `malloc_conf` symbol
/// (prefixed `_rjem_` by tikv-jemalloc-sys); `_RJEM_MALLOC_CONF` in the environment still overrides them.
#[unsafe(export_name = "_rjem_malloc_conf")]
#[used]
static MALLOC_CONF: MallocConf = MallocConf(concat!(fieldwise::jemalloc_options!(), "\0").as_ptr());

/// A NUL-terminated C string, as jemalloc reads `malloc_conf`.
#[repr(transparent)]
struct MallocConf(*const u8);

// SAFETY: it points at a string literal, immutable and alive for the whole program.
unsafe impl Sync for MallocConf {}

fn main() -> ExitCode {
    fieldwise::cli::main()
}
