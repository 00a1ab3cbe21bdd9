//! The command line: argument parsing and printing around the library. `convscope` opens the window,
//! `convscope train` trains headless and writes images, `metrics.csv` and a JSON summary, `convscope bench`
//! times the training step, `convscope timelapse` turns a recorded run into a GIF and `convscope open` replays one. Every command drives the
//! same [`Driver`](crate::train::Driver) as the window.
//! Exit codes: 0 success, 1 internal failure, 2 bad input, 3 training diverged, 4 the output could not be
//! written (disk full, folder not writable), 130 / 143 stopped by SIGINT / SIGTERM (after writing what it had).

mod bench;
mod command;
mod compare;
mod data;
mod failure;
mod interrupt;
mod open;
mod runs;
mod timelapse;
mod train;
mod window;

pub use bench::BenchArgs;
pub use command::{Cli, CliCommand, run};
pub use compare::CompareArgs;
pub use data::DataFlags;
pub use failure::Failure;
pub use open::OpenArgs;
pub use timelapse::TimelapseArgs;
pub use train::TrainArgs;
pub use window::{RendererArg, WindowArgs};
