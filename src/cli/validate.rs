//! `fieldwise validate -f FILE...`: checks FeatureStore and PrismCluster manifests as the API server
//! would, printing each problem in the API server's words. Reads the files (or stdin for `-`) and prints; the judging is
//! `fieldwise_api::validate`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use fieldwise_api::validate::{DocumentReport, Outcome, Report, validate_manifests};

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
        match describe(label, doc) {
            Line::Out(text) => println!("{text}"),
            Line::Err(text) => eprintln!("{text}"),
        }
    }
}

/// What `validate` prints about one document, and where.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Out(String),
    Err(String),
}

/// A rejected object reads as kubectl prints the API server's answer (`The FeatureStore "x" is
/// invalid: <field>: <message>`, one error per line), after where the document is.
fn describe(label: &str, doc: &DocumentReport) -> Line {
    let place = format!("{label}: document {} (line {})", doc.index, doc.line);
    match &doc.outcome {
        Outcome::Valid { resource, name } => {
            Line::Out(format!("{place}: {resource} \"{name}\" is valid"))
        }
        Outcome::Skipped { note } => Line::Err(format!("{place}: {note}")),
        Outcome::Rejected(rejection) => {
            Line::Err(format!("{place}: {}", rejection.kubectl_message()))
        }
        Outcome::Malformed(err) => Line::Err(format!(
            "error: {label}:{}:{}: invalid YAML: {}",
            err.line, err.column, err.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use fieldwise_api::validate::validate_manifests;

    use super::*;

    fn lines(text: &str) -> Vec<Line> {
        let report = validate_manifests(text);
        report
            .documents
            .iter()
            .map(|doc| describe("fs.yaml", doc))
            .collect()
    }

    #[test]
    fn one_error_reads_as_kubectl_prints_it() {
        let text = "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: x\nspec:\n  feastProject: p\n  replicas: 0\n";
        assert_eq!(
            lines(text),
            [Line::Err(
                "fs.yaml: document 1 (line 1): The FeatureStore \"x\" is invalid: spec.replicas: \
                 Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn several_errors_are_one_per_line_as_kubectl_prints_them() {
        let name = "a".repeat(44);
        let text = format!(
            "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: {name}\nspec:\n  feastProject: p\n  replicas: 0\n---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: ok\nspec:\n  feastProject: p\n"
        );
        let expected = format!(
            "fs.yaml: document 1 (line 1): The FeatureStore \"{name}\" is invalid: \n\
             * spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1\n\
             * metadata.name: Forbidden: may have at most 43 characters: the Service \
             feast-<name>-registry-rest fieldwise creates must be a DNS-1035 label of at most 63 characters"
        );
        assert_eq!(
            lines(&text),
            [
                Line::Err(expected),
                Line::Out(
                    "fs.yaml: document 2 (line 8): FeatureStore.feast.dev \"ok\" is valid"
                        .to_owned()
                )
            ]
        );
    }
}
