//! The window's runs: where run folders go (named by their start time), what a replay says, and how Play
//! continues a replayed run from its checkpoint. Shared by the window and `convscope open`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::data::embedded;
use crate::config::TrainConfig;
use crate::protocol::{Pace, Waker, WorkerLink};
use crate::replay::{ReplaySummary, StartLive};
use crate::train::{AUTOSAVE_INTERVAL, ComputePriority, WorkerHandle, WorkerOptions};

/// The folder runs are kept in when `--runs-dir` is not given: `runs` in the user's data folder.
pub(crate) fn default_runs_dir() -> Option<PathBuf> {
    eframe::storage_dir("convscope").map(|dir| dir.join("runs"))
}

/// A new run's folder name: its local start time, e.g. `2026-11-29_14-03-27`.
fn run_folder_name() -> String {
    chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string()
}

/// A new run folder under `--runs-dir` or the default, for a run started now (`None`: nowhere to keep runs).
pub fn new_run_dir(runs_dir: Option<PathBuf>) -> Option<PathBuf> {
    runs_dir.or_else(default_runs_dir).map(|dir| dir.join(run_folder_name()))
}

/// What the window says when it replays `run`.
pub(crate) fn replay_notice(run: &Path, summary: &ReplaySummary) -> String {
    let mut notice = format!(
        "replaying {}: {} recorded snapshots up to step {} — drag the timeline to move every panel",
        run.display(),
        summary.snapshots,
        summary.last_step
    );
    match &summary.checkpoint {
        Some(path) => notice.push_str(&format!("; Play continues training from {}", path.display())),
        None => notice.push_str("; the folder has no checkpoint to continue training from"),
    }
    if let Some(torn) = &summary.torn {
        notice.push_str(&format!("; the record ends early ({torn}), everything before it is here"));
    }
    notice
}

/// How Play continues a replay: a worker started straight from the checkpoint on the embedded digits (a run on
/// other data says what differs; `convscope --data … --resume …` continues it), recording into a new run folder.
pub(crate) fn live_starter(waker: Waker, runs_dir: Option<PathBuf>, pace: Pace) -> StartLive {
    Box::new(move |checkpoint: PathBuf| -> std::io::Result<Box<dyn WorkerLink>> {
        let data = Arc::new(embedded().map_err(|f| std::io::Error::other(f.error.to_string()))?);
        let options = WorkerOptions {
            waker,
            priority: ComputePriority::Background,
            run_dir: new_run_dir(runs_dir),
            autosave: Some(AUTOSAVE_INTERVAL),
            resume: Some(checkpoint),
            // The pace the toolbar shows.
            pace,
            ..WorkerOptions::default()
        };
        Ok(Box::new(WorkerHandle::spawn(TrainConfig::default(), data, options)?))
    })
}
