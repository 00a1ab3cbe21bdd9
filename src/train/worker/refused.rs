//! Why the worker refused a command: one error type, its text the `Rejected` event's reason.

use std::path::PathBuf;

use crate::data::DataError;
use crate::train::error::TrainError;

/// Why the worker refused a command; sent to the window as the `Rejected` event's reason.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{source_name}: the net does not fit this data: {error}")]
    DoesNotFit { source_name: String, error: TrainError },
    #[error("step needs at least one step")]
    NoSteps,
    #[error("nothing is loading")]
    NothingLoading,
    #[error("could not start the loader: {0}")]
    Loader(std::io::Error),
    #[error("a data set arrived for a probe request")]
    WrongLoad,
    #[error("there is no run folder to save into: name a file")]
    NoRunFolder,
    #[error(
        "no copy of the run from step {step} or before is kept (the oldest is from step {oldest}): fork from a later step"
    )]
    NotKept { step: u64, oldest: u64 },
    #[error("step {step} is ahead of the run (at step {now})")]
    AheadOfRun { step: u64, now: u64 },
    #[error("repeat over 1 to {most} seeds, for at least one step each (asked: {seeds} seeds, {steps} steps)")]
    SeedRequest { seeds: u32, steps: u64, most: u32 },
    #[error("there is no arm B: fork the run first")]
    NoArmB,
    #[error("could not create the run folder {}: {source}", path.display())]
    RunFolder { path: PathBuf, source: std::io::Error },
}
