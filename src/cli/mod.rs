//! The `fieldwise` command line: one subcommand per module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod crds;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod manifests;
pub mod olm;
pub mod render;
pub mod run;
pub mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "fieldwise",
    version,
    about = "A server-side-apply Kubernetes operator for Feast feature stores"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every CustomResourceDefinition fieldwise serves, as multi-document YAML.
    Crds(crds::Args),
    /// Run fieldwise end to end with no cluster: emulator, simulated controllers, operator, a sample FeatureStore.
    #[cfg(feature = "emulator")]
    Demo(demo::Args),
    /// Serve the in-process Kubernetes API emulator on loopback and write a kubeconfig for it.
    #[cfg(feature = "emulator")]
    Emulator(emulator::Args),
    /// Print the kustomize install's generated manifests (RBAC, Deployment, ...) or write them all.
    Manifests(manifests::Args),
    /// Write the OLM registry+v1 bundle of a release.
    OlmBundle(olm::Args),
    /// Print the objects fieldwise would apply for the FeatureStores in the files, without a cluster.
    Render(render::Args),
    /// Run the operator against the cluster of KUBECONFIG or the in-cluster configuration.
    Run(run::Args),
    /// Check FeatureStore and PrismCluster manifests against the same schema and CEL rules the API server applies.
    Validate(validate::Args),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds(args) => crds::run(args),
        #[cfg(feature = "emulator")]
        Command::Demo(args) => demo::run(args),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => emulator::run(args),
        Command::Manifests(args) => manifests::run(args),
        Command::OlmBundle(args) => olm::run(args),
        Command::Render(args) => render::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
    }
}
