//! The worker's options: backend, threads, pace, run folder, autosave, resume, where its data came from, and how
//! it wakes the window.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::BackendKind;
use crate::protocol::{DataOrigin, Pace, Waker};
use crate::train::threads::ComputePriority;

/// Options for [`WorkerHandle::spawn`].
pub struct WorkerOptions {
    /// Backend to compute on.
    pub backend: BackendKind,
    /// Compute threads (`None`: rayon's default).
    pub threads: Option<usize>,
    /// Scheduling of the compute threads.
    pub priority: ComputePriority,
    /// Wait for [`Command::Resume`] or [`Command::Step`] before the first step.
    pub start_paused: bool,
    /// How fast to train while running (the window starts at a watchable pace).
    pub pace: Pace,
    /// The run folder: where checkpoints go unless a file is named, and where the run's history is recorded
    /// (`None`: no history, and only named checkpoint files).
    pub run_dir: Option<PathBuf>,
    /// Checkpoint a running net into the run folder this often, and when the worker stops (`None`: never).
    pub autosave: Option<Duration>,
    /// Start from this checkpoint instead of building a net from the configuration.
    pub resume: Option<PathBuf>,
    /// Where the data given to [`WorkerHandle::spawn`] came from, recorded in the run folder (`data.json`) so
    /// Play on a replay of the run loads the same data (`None`: not recorded).
    pub data_origin: Option<DataOrigin>,
    /// The data given to `spawn` only stands in: first load `data_origin`'s data set on a loader thread, then
    /// build (or resume) on it. Without a data set to load this does nothing.
    pub data_pending: bool,
    /// Called whenever events were sent.
    pub waker: Waker,
    /// For fault tests: the first net's step with this number panics once (see [`Trainer::inject_panic_at`]).
    #[doc(hidden)]
    pub panic_at_step: Option<u64>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            backend: BackendKind::default(),
            threads: None,
            priority: ComputePriority::Normal,
            start_paused: false,
            pace: Pace::Full,
            run_dir: None,
            autosave: None,
            resume: None,
            data_origin: None,
            data_pending: false,
            waker: Arc::new(|| {}),
            panic_at_step: None,
        }
    }
}
