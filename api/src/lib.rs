//! fieldwise's custom resource types, their defaults and their validation. Plain data and pure functions:
//! no I/O happens in this crate (apart from `reference`, which only the tests use to find the Feast
//! operator's reference corpus).

mod crds;
pub mod prism;
pub mod quantity;
#[doc(hidden)]
pub mod reference;
pub mod schema;
pub mod v1;
pub mod validate;

pub use crds::{RETIRED_VERSION_MESSAGE, crd_yaml, crds, crds_yaml};
