//! The `feast.dev/v1` FeatureStore API, wire-compatible with the Feast operator's v1 CRD.

mod authz;
mod cronjob;
pub mod defaults;
mod k8s_schema;
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
