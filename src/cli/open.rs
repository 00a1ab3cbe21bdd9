//! `convscope open RUN`: a recorded run in the window, every panel working from the record and the timeline
//! over its snapshots; nothing trains.

use std::path::PathBuf;

use clap::Args;

use crate::app::{Launched, Restored, WindowOptions};
use crate::cli::failure::Failure;
use crate::cli::runs::{live_starter, replay_notice};
use crate::cli::window::seconds;
use crate::protocol::Waker;
use crate::replay::Replay;

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
        Some(path) => Some((path.clone(), seconds(args.screenshot_after, "--screenshot-after")?)),
        None => None,
    };
    let notice = replay_notice(&args.run, &summary);
    let runs_dir = args.runs_dir.clone();
    let launch = Box::new(move |restored: Restored, waker: Waker| -> anyhow::Result<Launched> {
        let worker = Box::new(replay.continue_with(live_starter(waker, runs_dir, restored.pace)));
        Ok(Launched { worker, config: restored.config, pace: restored.pace, notice: Some(notice), runs: None })
    });
    let options = WindowOptions {
        wgpu: false,
        screenshot,
        quit_after: None,
        fresh: true,
        set_settings_aside: false,
        preset: None,
        frame_log: None,
    };
    crate::app::run_window(options, launch).map_err(Failure::internal)
}
