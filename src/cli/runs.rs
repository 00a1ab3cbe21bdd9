//! The window's runs: where run folders go (named by their start time), what a replay says, and how Play
//! continues a replayed run from its checkpoint. Shared by the window and `convscope open`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::data::embedded;
use crate::config::TrainConfig;
use crate::data::targets::attach_targets;
use crate::history::read_data_origin;
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

/// How Play continues a replay: a worker started straight from the checkpoint, on the data the run folder
/// names (`data.json`; the embedded digits when it names none, as in runs recorded before it did), recording
/// into a new run folder. Data other than the digits is loaded on the worker's loader thread, so the window
/// never waits for it; a run whose data has moved says so, and what to do.
pub(crate) fn live_starter(waker: Waker, runs_dir: Option<PathBuf>, pace: Pace) -> StartLive {
    Box::new(move |checkpoint: PathBuf| -> std::io::Result<Box<dyn WorkerLink>> {
        let folder = checkpoint.parent().unwrap_or(Path::new("."));
        let origin = read_data_origin(folder).map_err(std::io::Error::other)?;
        let mut data = embedded().map_err(|f| std::io::Error::other(f.error.to_string()))?;
        if let Some(targets) = origin.as_ref().filter(|o| o.request.is_none()).and_then(|o| o.targets.as_ref()) {
            attach_targets(&mut data, targets)
                .map_err(|error| std::io::Error::other(format!("{}: {error}", targets.display())))?;
        }
        let options = WorkerOptions {
            waker,
            priority: ComputePriority::Background,
            run_dir: new_run_dir(runs_dir),
            autosave: Some(AUTOSAVE_INTERVAL),
            resume: Some(checkpoint),
            data_pending: origin.as_ref().is_some_and(|o| o.request.is_some()),
            data_origin: origin,
            // The pace the toolbar shows.
            pace,
            ..WorkerOptions::default()
        };
        Ok(Box::new(WorkerHandle::spawn(TrainConfig::default(), Arc::new(data), options)?))
    })
}
