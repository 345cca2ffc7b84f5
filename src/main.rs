use std::process::ExitCode;

fn main() -> ExitCode {
    fieldwise::cli::main()
}
