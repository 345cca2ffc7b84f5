//! `fieldwise manifests`: print the kustomize install's generated manifests, or write them all under a
//! directory (`--output deploy` regenerates the committed files).

use std::{io::Write, path::PathBuf, process::ExitCode};

use crate::deploy::files::{Part, generated_files, write_files};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The part to print (ignored with --output).
    #[arg(value_enum, default_value = "rbac")]
    pub part: Part,
    /// Write every generated file under this directory (the repository's `deploy/`) instead of printing.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The operator image tag.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub version: String,
}

pub fn run(args: Args) -> ExitCode {
    let result = match &args.output {
        Some(root) => generated_files(&args.version)
            .map_err(|e| e.to_string())
            .and_then(|files| {
                write_files(root, &files)
                    .map_err(|e| format!("cannot write under {}: {e}", root.display()))
            }),
        None => args
            .part
            .yaml(&args.version)
            .map_err(|e| e.to_string())
            .and_then(|yaml| {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(yaml.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| e.to_string())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fieldwise manifests: {message}");
            ExitCode::FAILURE
        }
    }
}
