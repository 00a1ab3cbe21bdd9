//! The `convscope` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use convscope::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(command) => cli::run(command),
        None => cli::run_window(&cli.window),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            ExitCode::from(failure.code)
        }
    }
}
