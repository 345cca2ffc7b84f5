//! fieldwise: a server-side-apply Kubernetes operator for Feast feature stores.
//!
//! The binary (`src/main.rs`) is a thin shell around [`cli::main`]; everything it runs lives here so the
//! end-to-end scenarios can drive the operator through exactly the code path `fieldwise run` uses.

pub mod cli;
pub mod deploy;
pub mod featurestore;
pub mod leader;

/// The literal behind [`JEMALLOC_OPTIONS`] (a macro, so that [`jemalloc!`] can append the C string's NUL).
///
/// `dirty_decay_ms` returns freed pages to the kernel after ~100 ms instead of over ~10 s: an operator's
/// memory peaks in bursts (a restart lists every object and reconciles every FeatureStore within
/// seconds), and the pages held back from such a burst were ~11 MiB of the resident peak at 1000
/// FeatureStores. `muzzy_decay_ms:0` skips the lazily-freed state, whose pages still count as resident.
#[macro_export]
macro_rules! jemalloc_options {
    () => {
        "dirty_decay_ms:100,muzzy_decay_ms:0"
    };
}

/// The jemalloc options `fieldwise` ships with (see [`jemalloc!`]).
pub const JEMALLOC_OPTIONS: &str = jemalloc_options!();

/// Makes jemalloc the binary's allocator, with [`JEMALLOC_OPTIONS`]. Expand it once at the top level of
/// the binary.
///
/// jemalloc is faster here than glibc malloc (a third less operator CPU in a cold start at 1000
/// FeatureStores, `docs/PERFORMANCE.md`). It reads its options from the `malloc_conf` symbol (prefixed
/// `_rjem_` by tikv-jemalloc-sys); the `_RJEM_MALLOC_CONF` environment variable still overrides them.
#[macro_export]
macro_rules! jemalloc {
    () => {
        #[global_allocator]
        static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

        #[unsafe(export_name = "_rjem_malloc_conf")]
        #[used]
        static MALLOC_CONF: $crate::CString =
            $crate::CString(concat!($crate::jemalloc_options!(), "\0").as_ptr());
    };
}

/// A NUL-terminated C string in a static, as jemalloc's `malloc_conf` symbol is read.
#[repr(transparent)]
pub struct CString(pub *const u8);

// SAFETY: it points at a string literal, immutable and alive for the whole program.
unsafe impl Sync for CString {}
