//! An in-process Kubernetes API emulator whose server-side apply follows the real kube-apiserver, and
//! fieldwise's end-to-end scenarios.

pub mod cluster;
pub mod emulator;
pub mod faults;
pub mod sim;
pub mod ssa;
pub mod testkit;

pub use emulator::{Emulator, EmulatorHandle, Options};
