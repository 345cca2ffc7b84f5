//! `fieldwise olm-bundle`: write the OLM `registry+v1` bundle of a release.

use std::{path::PathBuf, process::ExitCode};

use crate::deploy::{files::write_files, olm::bundle_files};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release version (MAJOR.MINOR.PATCH): CSV version and operator image tag.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub version: String,
    /// The bundle directory (manifests/, metadata/, tests/scorecard/, bundle.Dockerfile).
    #[arg(long, default_value = "deploy/olm/bundle")]
    pub output: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    let written = bundle_files(&args.version)
        .map_err(|e| e.to_string())
        .and_then(|files| {
            write_files(&args.output, &files)
                .map_err(|e| format!("cannot write {}: {e}", args.output.display()))
        });
    match written {
        Ok(()) => {
            println!(
                "wrote the {} bundle to {}",
                args.version,
                args.output.display()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("fieldwise olm-bundle: {message}");
            ExitCode::FAILURE
        }
    }
}
