//! `convscope open RUN`: a recorded run in the window, every panel working from the record and the timeline
//! over its snapshots; nothing trains.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::app::{Launched, Restored, WindowOptions};
use crate::cli::data::embedded;
use crate::cli::failure::Failure;
use crate::cli::window::new_run_dir;
use crate::config::TrainConfig;
use crate::protocol::{Waker, WorkerLink};
use crate::replay::Replay;
use crate::train::{AUTOSAVE_INTERVAL, ComputePriority, WorkerHandle, WorkerOptions};

/// Options of `convscope open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// A run folder (a window run's, or a `train --out` folder) or its history.bin.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Save a PNG of the window after --screenshot-after seconds, then close it.
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Seconds before --screenshot is taken.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub screenshot_after: f64,
    /// Where a continued run keeps its folder [default: the user's data folder, as for the window].
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
}

/// Opens the window on the recorded run.
pub fn run_open(args: &OpenArgs) -> Result<(), Failure> {
    // A record that cannot be read fails here, before a window opens.
    let (replay, summary) = Replay::open(&args.run).map_err(Failure::bad_input)?;
    let screenshot = match &args.screenshot {
        Some(path) => {
            let after = Duration::try_from_secs_f64(args.screenshot_after).map_err(|_| {
                Failure::bad_input(anyhow::anyhow!("--screenshot-after must be a non-negative number of seconds"))
            })?;
            Some((path.clone(), after))
        }
        None => None,
    };
    let mut notice = format!(
        "replaying {}: {} recorded snapshots up to step {} — drag the timeline to move every panel",
        args.run.display(),
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
    let runs_dir = args.runs_dir.clone();
    let launch = Box::new(move |restored: Restored, waker: Waker| -> anyhow::Result<Launched> {
        // Play continues the run from its newest checkpoint, on the embedded digits (a run on other data says
        // what differs, and `convscope --data … --resume …` continues it).
        let pace = restored.pace;
        let start = Box::new(move |checkpoint: PathBuf| -> std::io::Result<Box<dyn WorkerLink>> {
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
        });
        let worker = Box::new(replay.continue_with(start));
        Ok(Launched { worker, config: restored.config, pace: restored.pace, notice: Some(notice) })
    });
    let options = WindowOptions { wgpu: false, screenshot, quit_after: None, fresh: true, preset: None };
    crate::app::run_window(options, launch).map_err(Failure::internal)
}
