//! The `prism.io/v1alpha1` PrismCluster API: the whole Prism data-layer stack (backends, admin, proxy,
//! pattern runners, ingress, observability) from one resource, as designed in ADR-059, with what the
//! Go prototype added (per-pattern HPA or KEDA autoscaling).
//!
//! Defaults live in one place: the Rust types. Every defaulted field is a plain (non-`Option`) field
//! with a serde default, and schemars writes the same value into the CRD schema as `default`, so the
//! API server fills exactly what deserialising a raw manifest here fills (`api/tests/prism_samples.rs`
//! checks both ways). The controller and `fieldwise render` therefore read defaults straight off the
//! types. Defaults that depend on another field (a pattern's image, a backend's image from its
//! version, KEDA's polling and cooldown, which exist only with `scaler: keda`) are methods instead.
//!
//! The CRD to install or validate against is [`crate::crds`], not `PrismCluster::crd()`.

mod admin;
mod backends;
mod cluster;
pub mod defaults;
mod exposure;
mod pattern;
mod proxy;
pub mod rules;
mod schema;
mod status;

pub use admin::*;
pub use backends::*;
pub use cluster::*;
pub use exposure::*;
pub use pattern::*;
pub use proxy::*;
pub use status::*;

/// The API group.
pub const GROUP: &str = "prism.io";
/// The served (and stored) version.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "PrismCluster";
