//! `fieldwise-cluster up|down`: the real control plane of `fieldwise_e2e::cluster`, for
//! `e2e/cluster/up` and `e2e/cluster/down` (which build the binaries first).
//!
//! ```text
//! fieldwise-cluster up   [--binaries DIR] [--state DIR]   # prints the kubeconfig path
//! fieldwise-cluster down [--state DIR]
//! ```
//! `--binaries` defaults to `$FIELDWISE_CLUSTER_BIN`, `--state` to `$FIELDWISE_CLUSTER_STATE` or
//! `fieldwise-cluster` in the temporary directory.

use std::{path::PathBuf, process::ExitCode};

use fieldwise_e2e::cluster::{self, BINARIES_VARIABLE, Options};

const USAGE: &str =
    "usage: fieldwise-cluster up [--binaries DIR] [--state DIR] | down [--state DIR]";

struct Arguments {
    command: String,
    binaries: Option<PathBuf>,
    state: PathBuf,
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<Arguments, String> {
    let command = words.next().ok_or(USAGE)?;
    let mut arguments = Arguments {
        command,
        binaries: std::env::var_os(BINARIES_VARIABLE).map(PathBuf::from),
        state: cluster::default_state_dir(),
    };
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--binaries" => arguments.binaries = Some(PathBuf::from(value)),
            "--state" => arguments.state = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(arguments)
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = match parse(std::env::args().skip(1)) {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let outcome = match arguments.command.as_str() {
        "up" => up(&arguments).await,
        "down" => cluster::down(&arguments.state).map_err(|error| error.to_string()),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fieldwise-cluster {}: {message}", arguments.command);
            ExitCode::FAILURE
        }
    }
}

async fn up(arguments: &Arguments) -> Result<(), String> {
    let binaries = arguments.binaries.clone().ok_or_else(|| {
        format!("no binaries: pass --binaries DIR or set {BINARIES_VARIABLE} (e2e/cluster/build prints it)")
    })?;
    let options = Options {
        state: arguments.state.clone(),
        ..Options::new(binaries)
    };
    match cluster::up(&options).await {
        Ok(kubeconfig) => {
            println!("{}", kubeconfig.display());
            Ok(())
        }
        Err(error) => Err(format!(
            "{error}\n  all logs: {}",
            cluster::logs_dir(&options.state).display()
        )),
    }
}
