//! Training: the synchronous [`Trainer`] (one step at a time), the [`Driver`] every front end runs it
//! through, and the worker thread that drives it behind a [`WorkerHandle`] — [`Command`](crate::protocol::Command)s
//! in, [`WorkerEvent`](crate::protocol::WorkerEvent)s out. Never imports egui: the UI wakes through a plain
//! callback. This file only names the parts.

pub mod activity;
pub mod cadence;
mod capture;
pub mod checkpoint;
mod device;
pub mod driver;
pub mod error;
mod fork;
mod loader;
pub mod memory;
mod regression;
mod seeds;
pub mod stats;
pub mod step;
mod targets;
mod tensors;
pub mod threads;
pub mod trainer;
mod worker;

pub use checkpoint::{Checkpoint, checkpoint_file_name, read_checkpoint};
pub use device::autodiff_device;
pub use driver::{Driven, Driver, Evaluation};
pub use error::{CheckpointError, TrainError};
pub use memory::{MemoryEstimate, check_memory};
pub use step::StepOutcome;
pub use threads::{ComputePriority, check_threads, with_compute_threads};
pub use trainer::Trainer;
pub use worker::{
    AUTOSAVE_INTERVAL, AUTOSAVES_KEPT, METRICS_FLUSH_INTERVAL, PROBE_THUMBNAILS, WorkerHandle, WorkerOptions,
};
