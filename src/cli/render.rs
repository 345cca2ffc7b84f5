//! `fieldwise render -f FILE...`: the objects fieldwise would apply for the FeatureStores and
//! PrismClusters in the files.

use std::{io::Read, path::PathBuf, process::ExitCode};

use crate::{
    featurestore::context::ImageDefaults,
    render::{Input, RenderOptions, render_with},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files (multi-document); `-` reads standard input. Secrets, ConfigMaps, claims, CRDs
    /// (ServiceMonitor, KEDA) and other FeatureStores and PrismClusters in them stand for the
    /// cluster state. Generated passwords are shown as a placeholder.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Show the Secrets fieldwise makes decoded, for review: their values in clear text under
    /// `stringData`, the server configuration's feature_store.yaml as YAML. Not for `kubectl apply`.
    #[arg(long)]
    pub decode: bool,
}

pub fn run(args: Args) -> ExitCode {
    let mut inputs = Vec::new();
    for path in &args.files {
        match read(path) {
            Ok(text) => inputs.push(Input {
                source_name: path.display().to_string(),
                text,
            }),
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let options = RenderOptions {
        decode_secrets: args.decode,
    };
    match render_with(
        &inputs,
        &ImageDefaults::from_env(|name| std::env::var(name).ok()),
        options,
    ) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &PathBuf) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}
