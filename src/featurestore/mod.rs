//! The FeatureStore controller: the pure desired graph of a FeatureStore, its status, and the reconciler.

pub mod cached;
pub mod config;
pub mod context;
pub mod controller;
pub mod graph;
pub mod kinds;
pub mod leftovers;
pub mod names;
pub mod references;
pub mod render;
pub mod status;
pub mod trim;

pub use controller::FeatureStoreController;
