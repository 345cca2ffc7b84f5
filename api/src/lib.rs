//! fieldwise's custom resource types, their defaults and their validation. Plain data and pure functions:
//! no I/O happens in this crate.

mod crds;
pub mod prism;
pub mod schema;
pub mod v1;
pub mod validate;

pub use crds::{crd_yaml, crds, crds_yaml};
