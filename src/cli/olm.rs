//! `fieldwise olm-bundle`: write the OLM `registry+v1` bundle of a release.

use std::{path::PathBuf, process::ExitCode};

use crate::deploy::{
    files::write_files,
    olm::{CREATED_AT, Release, release_bundle_files},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release version (MAJOR.MINOR.PATCH): CSV version and operator image tag.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub version: String,
    /// The bundle directory (manifests/, metadata/, tests/scorecard/, bundle.Dockerfile).
    #[arg(long, default_value = "deploy/olm/bundle")]
    pub output: PathBuf,
    /// The release this one upgrades from in the channel (the CSV's `spec.replaces`).
    #[arg(long, value_name = "VERSION")]
    pub replaces: Option<String>,
    /// When the release was made (RFC 3339), the CSV's `createdAt`.
    #[arg(long, default_value = CREATED_AT)]
    pub created_at: String,
    /// The pushed operator image's digest (`sha256:…`): the CSV then names the image by digest.
    #[arg(long, value_name = "DIGEST")]
    pub operator_digest: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let release = Release {
        version: args.version.clone(),
        replaces: args.replaces,
        created_at: args.created_at,
        operator_digest: args.operator_digest,
    };
    let written = release_bundle_files(&release)
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
