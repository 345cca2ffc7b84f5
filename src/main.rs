use std::process::ExitCode;

fieldwise::jemalloc!();

fn main() -> ExitCode {
    fieldwise::cli::main()
}
