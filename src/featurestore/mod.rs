//! The FeatureStore controller: the pure desired graph of a FeatureStore, its status, and the reconciler.

pub mod config;
pub mod context;
pub mod graph;
pub mod names;
pub mod controller;
pub mod kinds;
pub mod references;
pub mod run;
pub mod status;
pub mod render;
