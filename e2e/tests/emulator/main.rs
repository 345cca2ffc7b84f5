//! The emulator's own tests, in one binary: a test binary links every dependency, and one per
//! file cost a link and about 57 MB of disk each. Filter by module, e.g.
//! `cargo test -p fieldwise-e2e --test emulator conformance_apply::`.

mod conformance_apply;
mod conformance_crud;
mod conformance_custom;
mod conformance_defaults;
mod conformance_events;
mod conformance_kubectl;
mod conformance_lifecycle;
mod conformance_more;
mod conformance_names;
mod conformance_nulls;
mod conformance_openapi;
mod conformance_pod_security;
mod conformance_protobuf;
mod conformance_quantities;
mod conformance_reviews;
mod conformance_scale_noop;
mod conformance_takeover;
mod conformance_validation;
mod conformance_watch_history;
mod controller_events_recorder;
mod controller_kube_rs;
mod controller_lease;
mod controller_metadata;
mod differential_real;
mod differential_smd;
mod kubectl_cli;
mod prism_cluster;
mod sim_controllers;
mod sim_faults;
mod ssa_oracle;
mod ssa_semantics;
mod target;
