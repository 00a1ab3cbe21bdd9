//! The top-level command line and its dispatch.

use clap::{Parser, Subcommand};

use crate::cli::bench::{BenchArgs, run_bench};
use crate::cli::compare::{CompareArgs, run_compare};
use crate::cli::failure::Failure;
use crate::cli::open::{OpenArgs, run_open};
use crate::cli::timelapse::{TimelapseArgs, run_timelapse};
use crate::cli::train::{TrainArgs, run_train};
use crate::cli::window::{WindowArgs, run_window};

/// Train a convolutional network and watch it learn.
#[derive(Debug, Parser)]
#[command(name = "convscope", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, convscope opens its window.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Window options (used when no command is given).
    #[command(flatten)]
    pub window: Box<WindowArgs>,
}

/// The headless commands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Train without a window, write filter images, metrics.csv and config.json, print a JSON summary.
    Train(Box<TrainArgs>),
    /// Train arm A against arm B over several seeds (a pair shares its seed), print mean ± spread and the paired
    /// difference as JSON, write compare.csv and compare.png.
    Compare(Box<CompareArgs>),
    /// Time the app's own training step on ref-mnist with the default settings.
    Bench(BenchArgs),
    /// Turn a recorded run's filters and weight gradients into an animated GIF, one frame per snapshot.
    Timelapse(TimelapseArgs),
    /// Show a recorded run in the window: every panel from the record, a timeline over its snapshots.
    Open(OpenArgs),
}

/// Runs what the command line asks for: a headless command, or the window.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Some(CliCommand::Train(args)) => run_train(&args),
        Some(CliCommand::Compare(args)) => run_compare(&args),
        Some(CliCommand::Bench(args)) => run_bench(&args),
        Some(CliCommand::Timelapse(args)) => run_timelapse(&args),
        Some(CliCommand::Open(args)) => run_open(&args),
        None => run_window(&cli.window),
    }
}
