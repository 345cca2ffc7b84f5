//! fieldwise: a server-side-apply Kubernetes operator for Feast feature stores and Prism data-layer
//! clusters. Controllers (`featurestore/`, `prismcluster/`) run on the shared runtime (`runtime/`).
//!
//! The binary (`src/main.rs`) is a thin shell around [`cli::main`]; everything it runs lives here so the
//! end-to-end scenarios can drive the operator through exactly the code path `fieldwise run` uses.

pub mod cli;
pub mod deploy;
pub mod featurestore;
pub mod leader;
pub mod metrics_access;
pub mod prismcluster;
pub mod render;
pub mod runtime;
pub mod security;
pub mod settings;

/// The literal behind [`JEMALLOC_OPTIONS`] (a macro, so that `src/main.rs` can append the C string's
/// NUL for jemalloc's `malloc_conf` symbol).
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

/// The jemalloc options the `fieldwise` binary ships with (the benchmark runs its operator with them).
pub const JEMALLOC_OPTIONS: &str = jemalloc_options!();
