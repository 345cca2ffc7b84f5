//! End-to-end scenarios: the operator, started exactly as `fieldwise run` starts it, against the in-process
//! API emulator with its simulated controllers. Those that need no simulator also run against a real
//! cluster (`<scenario>::on_a_real_cluster`, ignored unless asked for; see e2e/README.md).

mod compat;
mod day2;
mod drift;
mod faults;
mod feast_cases;
mod feast_performance;
mod feast_side_by_side;
mod feast_takeover;
mod harness;
mod leader;
mod lifecycle;
mod metrics_auth;
mod namespaced;
mod olm_bundle;
mod prism;
mod prism_day2;
mod prism_scaling;
mod rbac;
mod references;
mod restricted;
mod samples;
mod scaling;
mod secrets;
mod shared;
mod takeover;
