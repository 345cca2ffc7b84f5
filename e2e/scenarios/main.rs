//! End-to-end scenarios: the operator, started exactly as `fieldwise run` starts it, against the in-process
//! API emulator with its simulated controllers.

mod drift;
mod faults;
mod harness;
mod lifecycle;
mod samples;
mod scaling;
