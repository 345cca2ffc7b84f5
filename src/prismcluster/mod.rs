//! The PrismCluster controller: the Prism data layer's backends, admin, proxy, pattern runners,
//! ingress and observability from one resource (ADR-059), on the shared runtime.

pub mod controller;
pub mod graph;
pub mod inputs;
pub mod kinds;
pub mod names;
pub mod render;
pub mod status;

pub use controller::PrismClusterController;
