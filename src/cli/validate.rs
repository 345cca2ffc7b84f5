//! `fieldwise validate -f FILE...`: checks FeatureStore and PrismCluster manifests as the API server
//! would, printing each problem in the API server's words. Reads the files (or stdin for `-`) and prints; the judging is
//! `fieldwise_api::validate`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use fieldwise_api::validate::{Outcome, Report, validate_manifests};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files to check (multi-document allowed); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    pub filename: Vec<PathBuf>,
}

/// Exit 0 when every FeatureStore and PrismCluster is valid, 1 when any is rejected or any input is unreadable or malformed.
pub fn run(args: Args) -> ExitCode {
    let mut all_valid = true;
    for path in &args.filename {
        let label = if path.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        match read(path) {
            Ok(text) => {
                let report = validate_manifests(&text);
                print_report(&label, &report);
                all_valid &= report.is_valid();
            }
            Err(err) => {
                eprintln!("error: {label}: {err}");
                all_valid = false;
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

fn print_report(label: &str, report: &Report) {
    for doc in &report.documents {
        let place = format!("{label}: document {} (line {})", doc.index, doc.line);
        match &doc.outcome {
            Outcome::Valid { resource, name } => {
                println!("{place}: {resource} \"{name}\" is valid")
            }
            Outcome::Skipped { note } => eprintln!("{place}: {note}"),
            Outcome::Rejected(rejection) => eprintln!("{place}: {rejection}"),
            Outcome::Malformed(err) => eprintln!(
                "error: {label}:{}:{}: invalid YAML: {}",
                err.line, err.column, err.message
            ),
        }
    }
}
