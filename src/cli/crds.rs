//! `fieldwise crds`: print every CustomResourceDefinition fieldwise serves.

use std::io::Write;
use std::process::ExitCode;

/// `fieldwise crds` takes no options.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Writes [`fieldwise_api::crds_yaml`] to stdout; the output is what `crds/` holds.
pub fn run(_args: Args) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(fieldwise_api::crds_yaml().as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fieldwise crds: cannot write to stdout: {err}");
            ExitCode::FAILURE
        }
    }
}
