//! The `convscope` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use convscope::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        eprintln!(
            "convscope: the live window is not part of this build yet; train headless with `convscope train` \
             (see `convscope train --help`) or time the trainer with `convscope bench`"
        );
        return ExitCode::SUCCESS;
    };
    match cli::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
