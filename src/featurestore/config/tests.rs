//! Tests of the feature_store.yaml documents against the Feast operator's behaviour (spec §3), comparing parsed
//! values, never bytes.

mod client_tests;
mod errors;
mod extras_tests;
mod fixtures;
mod lineage_tests;
mod server;
