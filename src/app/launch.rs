//! Opening the window: the native options, restoring the saved [`State`], and handing the restored
//! configuration to the launcher that starts the worker (the caller's: the window never builds one itself).

use std::path::PathBuf;
use std::time::Duration;

use eframe::egui;

use crate::app::stored;
use crate::app::view::Severity;
use crate::app::window::{ConvscopeApp, State};
use crate::config::TrainConfig;
use crate::protocol::{Pace, Waker, WorkerLink};

/// Longest wait between the worker's news and the frame that shows it (about ten frames a second while
/// training; input still repaints at once).
pub const DATA_REPAINT_INTERVAL: Duration = Duration::from_millis(100);

/// How the window is launched.
pub struct WindowOptions {
    /// Use the wgpu renderer instead of glow.
    pub wgpu: bool,
    /// Save a screenshot after this long, then close.
    pub screenshot: Option<(PathBuf, Duration)>,
    /// Close after this long, writing frame statistics to the path if given.
    pub quit_after: Option<(Duration, Option<PathBuf>)>,
    /// Start from the default settings instead of the persisted ones.
    pub fresh: bool,
    /// Also move the settings file aside before eframe reads it (`--fresh`: egui's state and the window size
    /// start from the defaults too; a replay only leaves the saved training settings unused).
    pub set_settings_aside: bool,
    /// The experiment the run starts with, to select in the Diagnosis menu.
    pub preset: Option<String>,
    /// Append a line of frame statistics to this file every minute.
    pub frame_log: Option<PathBuf>,
}

/// What the window restored from its last session, for the launcher to start from.
pub struct Restored {
    /// The configuration of the last run, with every live change.
    pub config: TrainConfig,
    /// The pace the user last trained at.
    pub pace: Pace,
}

/// A started worker: its link, the configuration and pace it runs, and anything to tell the user about it.
pub struct Launched {
    /// The worker.
    pub worker: Box<dyn WorkerLink>,
    /// The configuration its first net is built from.
    pub config: TrainConfig,
    /// How fast it trains.
    pub pace: Pace,
    /// E.g. that the saved settings did not fit and the defaults were used.
    pub notice: Option<String>,
    /// The runs folder and how to open a recorded run from it (`None`: no Runs menu).
    pub runs: Option<crate::app::window::Runs>,
}

/// Starts the worker from what was restored; the waker asks the window for a frame.
pub type Launcher = Box<dyn FnOnce(Restored, Waker) -> anyhow::Result<Launched>>;

/// Opens the window, restores the saved settings (unless `fresh`) and starts training through `launch`.
pub fn run_window(options: WindowOptions, launch: Launcher) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([900.0, 600.0])
            .with_title("convscope"),
        renderer: if options.wgpu { eframe::Renderer::Wgpu } else { eframe::Renderer::Glow },
        ..Default::default()
    };
    let WindowOptions { screenshot, quit_after, fresh, set_settings_aside, preset, frame_log, .. } = options;
    // Checked before eframe reads it: a damaged value would otherwise fail the start-up every time.
    let settings_notices =
        stored::settings_path().map(|path| stored::check_settings(&path, set_settings_aside)).unwrap_or_default();
    eframe::run_native(
        stored::APP_ID,
        native,
        Box::new(move |cc| {
            let mut state: State = if fresh {
                State::default()
            } else {
                cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default()
            };
            let ctx = cc.egui_ctx.clone();
            // New data asks for a frame within DATA_REPAINT_INTERVAL: snapshots and metric batches that arrive
            // close together share one frame, and the renderer leaves the cores to training.
            let waker: Waker = std::sync::Arc::new(move || ctx.request_repaint_after(DATA_REPAINT_INTERVAL));
            let restored = Restored { config: state.config.clone(), pace: state.toolbar.pace };
            let launched = launch(restored, waker)?;
            state.config = launched.config;
            state.toolbar.pace = launched.pace;
            if let Some(preset) = preset {
                state.diagnosis.preset = preset;
            }
            let mut app = ConvscopeApp::new(state, launched.worker);
            if let Some(runs) = launched.runs {
                app.keep_runs(runs);
            }
            for text in settings_notices.into_iter().chain(launched.notice) {
                app.view.message(Severity::Warning, text);
            }
            if let Some((path, after)) = screenshot {
                app.screenshot_after(path, after);
            }
            if let Some((after, stats)) = quit_after {
                app.quit_after(after, stats);
            }
            if let Some(path) = frame_log {
                app.log_frames(path, Duration::from_secs(60));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
