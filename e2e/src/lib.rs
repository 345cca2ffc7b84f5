//! An in-process Kubernetes API emulator whose server-side apply follows the real kube-apiserver, and
//! fieldwise's end-to-end scenarios. "spec §N" here and in the emulator's tests is a section of
//! `docs/ssa-semantics.md`, the emulator's contract.

pub mod cluster;
pub mod differential;
pub mod emulator;
pub mod faults;
pub mod pod_security;
pub mod procfs;
pub mod sim;
pub mod ssa;
pub mod testkit;

pub use emulator::{Emulator, EmulatorHandle, Options};
