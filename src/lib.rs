//! fieldwise: a server-side-apply Kubernetes operator for Feast feature stores.
//!
//! The binary (`src/main.rs`) is a thin shell around [`cli::main`]; everything it runs lives here so the
//! end-to-end scenarios can drive the operator through exactly the code path `fieldwise run` uses.

pub mod cli;
pub mod deploy;
pub mod featurestore;
pub mod leader;
