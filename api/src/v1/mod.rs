//! The `feast.dev/v1` FeatureStore API, wire-compatible with the Feast operator's v1 CRD.
//!
//! The CRD to install or validate against is [`crate::crds`], not `FeatureStore::crd()`: `crds()`
//! finishes the derived schema (no `nullable`, int-or-string spelled out, object metadata declared) so
//! that it matches the Feast CRD, which `tests/feast_compat.rs` checks field by field.
//! Defaults for `status.applied` and derived values live in [`defaults`].

mod authz;
mod cronjob;
pub mod defaults;
pub(crate) mod k8s_schema;
mod openlineage;
mod persistence;
mod refs;
mod services;
mod spec;
mod status;

pub use authz::*;
pub use cronjob::*;
pub use openlineage::*;
pub use persistence::*;
pub use refs::*;
pub use services::*;
pub use spec::*;
pub use status::*;
