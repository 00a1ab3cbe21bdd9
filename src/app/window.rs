//! The window itself: the persisted [`State`] (every panel's options), the runtime side that talks to the
//! worker through a [`WorkerLink`], and one frame: take the worker's news, let each panel draw and ask, then
//! apply and send what was asked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::app::banner;
use crate::app::exporting::export_images;
use crate::app::outbox::{Outbox, Show};
use crate::app::panels::Panel;
use crate::app::panels::activations::ActivationsPanel;
use crate::app::panels::compare::ComparePanel;
use crate::app::panels::confusion::ConfusionPanel;
use crate::app::panels::curves::CurvesPanel;
use crate::app::panels::data::DataPanel;
use crate::app::panels::diagnosis::DiagnosisPanel;
use crate::app::panels::export::ExportPanel;
use crate::app::panels::filters::FiltersPanel;
use crate::app::panels::gradflow::GradientFlowPanel;
use crate::app::panels::histograms::HistogramPanel;
use crate::app::panels::layers::LayersPanel;
use crate::app::panels::metrics::MetricsPanel;
use crate::app::panels::regression::RegressionPanel;
use crate::app::panels::run::RunPanel;
use crate::app::panels::settings::SettingsPanel;
use crate::app::panels::status::StatusBar;
use crate::app::panels::status::percentile;
use crate::app::panels::timeline::{TimelinePanel, step_through};
use crate::app::panels::toolbar::ToolbarPanel;
use crate::app::timers::{FrameLog, FrameStats, Timers};
use crate::app::view::{Severity, TrainingView};
use crate::config::TrainConfig;
use crate::protocol::{Arm, Command, RunState, WorkerLink};

/// What persists between launches: the configuration and every panel's options (never the paused state).
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The configuration the next launch builds its net from.
    pub config: TrainConfig,
    /// Run controls and the learning rate.
    pub toolbar: ToolbarPanel,
    /// Optimiser settings, seed and the spec editor.
    pub settings: SettingsPanel,
    /// The export folder.
    pub export: ExportPanel,
    /// Checkpoints: save and open.
    pub run: RunPanel,
    /// The layer table.
    pub layers: LayersPanel,
    /// Filters and gradients.
    pub filters: FiltersPanel,
    /// Probe and activation maps.
    pub activations: ActivationsPanel,
    /// Activation curves.
    pub curves: CurvesPanel,
    /// Metric plots.
    pub metrics: MetricsPanel,
    /// Gradient norms per layer over time.
    pub gradient_flow: GradientFlowPanel,
    /// Hints and experiment presets.
    pub diagnosis: DiagnosisPanel,
    /// Opening other data and probe images.
    pub data: DataPanel,
    /// Weight and gradient magnitudes over time.
    pub histograms: HistogramPanel,
    /// The test split's confusion matrix.
    pub confusion: ConfusionPanel,
    /// A regression's predictions against its targets.
    pub regression: RegressionPanel,
}

impl State {
    /// The centre column, top to bottom. A regression's scatter is its first question, right under the filters;
    /// a classifier's confusion matrix comes last.
    fn centre_panels(&mut self, regression: bool) -> [&mut dyn Panel; 6] {
        if regression {
            [
                &mut self.filters,
                &mut self.regression,
                &mut self.curves,
                &mut self.gradient_flow,
                &mut self.histograms,
                &mut self.metrics,
            ]
        } else {
            [
                &mut self.filters,
                &mut self.curves,
                &mut self.gradient_flow,
                &mut self.histograms,
                &mut self.metrics,
                &mut self.confusion,
            ]
        }
    }
}

/// Opens a recorded run: the link that replays it (and can continue it), and what to tell the user.
pub type RunOpener = Box<dyn FnMut(&std::path::Path) -> anyhow::Result<(Box<dyn WorkerLink>, String)>>;

/// Where the window's runs are kept, and how to open one (the Run panel lists them, newest first).
pub struct Runs {
    /// The folder holding one folder per run.
    pub dir: PathBuf,
    /// Opens one of them.
    pub open: RunOpener,
    /// The folder the run training now records into (left out of the list).
    pub current: Option<PathBuf>,
}

/// The convscope window.
pub struct ConvscopeApp {
    /// Persisted settings and panels.
    pub state: State,
    /// Everything received from the worker.
    pub view: TrainingView,
    worker: Box<dyn WorkerLink>,
    status: StatusBar,
    outbox: Outbox,
    timers: Timers,
    /// Opens recorded runs from the runs folder.
    runs: Option<Runs>,
    /// The A/B strip, and which arm edits go to.
    compare: ComparePanel,
    /// A timelapse being written on its own thread: what it says when done.
    timelapse: Option<std::sync::mpsc::Receiver<Result<String, String>>>,
}

impl ConvscopeApp {
    /// A window on `worker`, restoring `state`; it shows the run once the worker announces its net.
    pub fn new(state: State, worker: Box<dyn WorkerLink>) -> Self {
        ConvscopeApp {
            view: TrainingView::new(state.config.clone()),
            state,
            worker,
            status: StatusBar::default(),
            outbox: Outbox::default(),
            timers: Timers::default(),
            runs: None,
            compare: ComparePanel::default(),
            timelapse: None,
        }
    }

    /// Lists the runs in `runs.dir` in the Run panel and opens the one chosen through `runs.open`.
    pub fn keep_runs(&mut self, runs: Runs) {
        self.view.runs_dir = Some(runs.dir.clone());
        self.view.current_run.clone_from(&runs.current);
        self.runs = Some(runs);
    }

    /// Replaces the worker with a replay of the run at `path`; the one training now stops (saving as it closes).
    fn open_run(&mut self, path: &std::path::Path) {
        let Some(runs) = self.runs.as_mut() else { return };
        match (runs.open)(path) {
            Ok((link, notice)) => {
                self.worker = link;
                // The run that was training is a recorded run now (a continued replay records elsewhere).
                self.view.current_run = None;
                self.view.message(Severity::Info, notice);
            }
            Err(error) => {
                self.view.message(Severity::Warning, format!("cannot open the run {}: {error:#}", path.display()))
            }
        }
    }

    /// Saves a screenshot of the window to `path` once `after` has passed, then closes the window.
    pub fn screenshot_after(&mut self, path: PathBuf, after: Duration) {
        self.timers.screenshot = Some((path, Instant::now() + after));
    }

    /// Closes the window after `after`, writing frame statistics to `stats` if given.
    pub fn quit_after(&mut self, after: Duration, stats: Option<PathBuf>) {
        self.timers.quit_at = Some(Instant::now() + after);
        self.timers.frame_stats = stats;
    }

    /// Appends a line of frame statistics (of the frames since the last line) to `path` every `every`.
    pub fn log_frames(&mut self, path: PathBuf, every: Duration) {
        self.timers.frame_log = Some(FrameLog { path, every, next_at: Instant::now() + every, from_frame: 0 });
    }

    /// Records one frame's CPU time for the status line and `--frame-stats`.
    pub fn record_frame(&mut self, cpu_usage: Option<f32>) {
        self.status.record_frame(cpu_usage);
    }

    /// Takes every pending event (never waits).
    fn poll_worker(&mut self) {
        while let Some(event) = self.worker.try_recv() {
            self.view.apply(event);
        }
    }

    /// Files dropped on the window: a folder is loaded as data, an image becomes the probe.
    fn dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Option<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().find_map(|f| {
                let path = f.path();
                (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
            })
        });
        if let Some(path) = dropped {
            self.state.data.open_dropped(&path, &self.view, &mut self.outbox);
        }
        if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
            let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop")));
            let rect = ctx.content_rect();
            painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(160));
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drop a data folder to train on it, or an image to classify it",
                egui::FontId::proportional(22.0),
                egui::Color32::WHITE,
            );
        }
    }

    /// Ctrl+S and Ctrl+O always; Space, S and R unless a text field has the keyboard.
    fn shortcuts(&mut self, ctx: &egui::Context) {
        let shortcut = |key| egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, key);
        // Taken first, so the S of Ctrl+S does not also step.
        let (save, open) = ctx
            .input_mut(|i| (i.consume_shortcut(&shortcut(egui::Key::S)), i.consume_shortcut(&shortcut(egui::Key::O))));
        if save {
            self.outbox.send(Command::SaveCheckpoint(None));
        }
        if open {
            self.state.run.ask_open(ctx);
        }
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (left, right) = ctx.input(|i| (i.key_pressed(egui::Key::ArrowLeft), i.key_pressed(egui::Key::ArrowRight)));
        for delta in [(left, -1), (right, 1)].into_iter().filter_map(|(pressed, d)| pressed.then_some(d)) {
            if let Some(show) = step_through(&self.view, delta) {
                self.outbox.show(show);
            }
        }
        let (space, s, r) =
            ctx.input(|i| (i.key_pressed(egui::Key::Space), i.key_pressed(egui::Key::S), i.key_pressed(egui::Key::R)));
        if space {
            let running = self.view.run_state == RunState::Running;
            self.outbox.send(if running { Command::Pause } else { Command::Resume });
        }
        if s {
            self.outbox.send(Command::Step(1));
        }
        if r {
            self.state.toolbar.ask_reset();
        }
    }

    /// Shows a recorded snapshot (read back from the history) or the live one.
    fn show(&mut self, show: Show) {
        match show {
            Show::Live => self.view.go_live(),
            Show::Recorded(index) => match self.view.timeline.load(index) {
                Ok(snapshot) => self.view.show_recorded(index, snapshot),
                Err(error) => self.view.message(Severity::Warning, format!("cannot show that snapshot: {error}")),
            },
        }
    }

    /// Writes the timelapse of the recorded snapshots on a thread of its own (a long run's history takes a
    /// second or more to read and encode); the window hears back through a channel and wakes for it.
    fn start_timelapse(&mut self, ctx: &egui::Context) {
        let Some(history) = self.view.timeline.history.clone() else { return };
        let layer = self.state.filters.shown(&self.view).map(|l| l.name.clone());
        let dir = PathBuf::from(self.state.export.export_dir.trim());
        let (sender, receiver) = std::sync::mpsc::channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("convscope-timelapse".into()).spawn(move || {
            let gif = crate::timelapse::Animation::Gif;
            let written = crate::timelapse::timelapse_of_history(&history, layer.as_deref(), (1, 10), gif)
                .map_err(|e| e.to_string())
                .and_then(|made| {
                    let path = dir.join(format!("{}_timelapse.gif", made.layer));
                    crate::export::create_dir(&dir)
                        .and_then(|()| crate::export::write_file(&path, &made.bytes))
                        .map(|()| format!("wrote {} ({} frames of {})", path.display(), made.frames, made.layer))
                        .map_err(|e| e.to_string())
                });
            sender.send(written).ok();
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => self.timelapse = Some(receiver),
            Err(error) => self.view.message(Severity::Error, format!("could not start the timelapse: {error}")),
        }
    }

    /// Tells what the timelapse thread did, once it is done.
    fn poll_timelapse(&mut self) {
        let Some(receiver) = &self.timelapse else { return };
        let outcome = match receiver.try_recv() {
            Ok(outcome) => outcome,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err("the timelapse thread ended early".into()),
        };
        self.timelapse = None;
        match outcome {
            Ok(text) => self.view.message(Severity::Info, text),
            Err(error) => self.view.message(Severity::Error, format!("timelapse failed: {error}; training carries on")),
        }
    }

    /// Applies what the panels asked for to the view (ahead of the worker) and sends it; exports if asked.
    fn send_outbox(&mut self, ctx: &egui::Context) {
        if let Some(show) = self.outbox.take_show() {
            self.show(show);
        }
        if let Some(path) = self.outbox.take_open_run() {
            self.open_run(&path);
        }
        if self.outbox.take_timelapse() {
            self.start_timelapse(ctx);
        }
        let (commands, export) = self.outbox.take();
        let to_b = self.compare.editing(&self.view) == Arm::B;
        for command in commands {
            // While the settings edit arm B, every live change is B's.
            let command = match command {
                Command::Change(setting) if to_b => Command::ChangeB(setting),
                other => other,
            };
            self.view.request(&command);
            self.worker.send(command);
        }
        if export {
            let dir = PathBuf::from(self.state.export.export_dir.trim());
            match export_images(&self.view, &self.state.filters, &dir) {
                Ok(files) => {
                    self.view.message(Severity::Info, format!("exported {} images to {}", files.len(), dir.display()))
                }
                Err(error) => {
                    self.view.message(Severity::Error, format!("export failed: {error}; training carries on"))
                }
            }
        }
    }

    /// Draws the whole window into `ui` (also what the tests drive).
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        self.poll_worker();
        self.poll_timelapse();
        self.state.export.timelapse_busy = self.timelapse.is_some();
        self.state.toolbar.fork_allowed = self.view.arm_b.is_none();
        self.view.expire_messages();
        self.state.histograms.observe(&self.view);
        let ctx = ui.ctx().clone();
        self.shortcuts(&ctx);
        self.dropped_files(&ctx);
        let (state, view, out) = (&mut self.state, &self.view, &mut self.outbox);
        // The panels that edit settings show the arm they edit.
        let edited = match (self.compare.editing(view), view.arm_b.as_deref()) {
            (Arm::B, Some(b)) => b,
            _ => view,
        };
        let compare = &mut self.compare;
        let dismissed = egui::Panel::top("toolbar")
            .show(ui, |ui| {
                state.toolbar.ui(ui, edited, out);
                TimelinePanel.ui(ui, view, out);
                compare.ui(ui, view, out);
                banner::show(ui, view, out)
            })
            .inner;
        egui::Panel::bottom("status").show(ui, |ui| self.status.ui(ui, view, out));
        // The side columns start in proportion to the window and can be dragged; the centre keeps the rest.
        // (The left column scrolls vertically only: a horizontal scroll would give its rows unbounded width.)
        let total = ui.available_width();
        let (left, right) = ((total * 0.33).clamp(300.0, 450.0), (total * 0.2).clamp(200.0, 275.0));
        let left_panel = egui::Panel::left("left").resizable(true).default_size(left);
        left_panel.size_range(240.0..=(total * 0.37).max(260.0)).show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("left-scroll").show(ui, |ui| {
                // Content wraps to the column rather than widening it (a side panel grows to fit its content).
                ui.set_max_width(ui.available_width());
                let left: [(&mut dyn Panel, &TrainingView); 6] = [
                    (&mut state.layers, edited),
                    (&mut state.diagnosis, view),
                    (&mut state.data, view),
                    (&mut state.settings, edited),
                    (&mut state.run, view),
                    (&mut state.export, view),
                ];
                for (index, (panel, view)) in left.into_iter().enumerate() {
                    if index > 0 {
                        ui.separator();
                    }
                    panel.ui(ui, view, out);
                }
            });
        });
        let right_panel = egui::Panel::right("right").resizable(true).default_size(right);
        right_panel.size_range(180.0..=(total * 0.35).max(200.0)).show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("right-scroll").show(ui, |ui| state.activations.ui(ui, view, out));
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("centre-scroll").show(ui, |ui| {
                for (index, panel) in state.centre_panels(view.config.task.is_regression()).into_iter().enumerate() {
                    if index > 0 {
                        ui.separator();
                    }
                    panel.ui(ui, view, out);
                }
            });
        });
        self.view.dismiss(dismissed);
        self.send_outbox(&ctx);
        if !self.view.layers.is_empty() {
            // What persists is the running net's configuration with every live change.
            self.state.config = self.view.live_config();
        }
        let stats = self.timers.quit_due().then(|| self.frame_stats());
        self.timers.tick(&ctx, stats);
        if let Some(from) = self.timers.frame_log_due() {
            let stats = self.frame_stats_from(from);
            self.timers.log_frames(stats, self.status.all_frames_ms.len());
        }
    }

    /// Frame-time percentiles and the training throughput seen so far.
    pub fn frame_stats(&self) -> FrameStats {
        // Skip the first frames: font atlas and texture uploads are start-up cost, not steady state.
        self.frame_stats_from(30)
    }

    /// The same over the frames from the `first`-th on.
    fn frame_stats_from(&self, first: usize) -> FrameStats {
        let frames = &self.status.all_frames_ms;
        let steady: Vec<f32> = frames.iter().skip(frames.len().min(first)).copied().collect();
        let thread = &self.status.thread_cpu_ms;
        let thread_steady: Vec<f32> = thread.iter().skip(thread.len().min(first)).copied().collect();
        let (steps, seconds, with_eval) = match (&self.view.first_row, self.view.rows.last()) {
            (Some(first), Some(last)) => {
                (last.step - first.step, last.step_secs - first.step_secs, last.elapsed_secs - first.elapsed_secs)
            }
            _ => (0, 0.0, 0.0),
        };
        let rate =
            |secs: f64| if secs > 0.0 { (steps as f64 * self.view.config.batch_size as f64) / secs } else { 0.0 };
        FrameStats {
            frames: steady.len(),
            cpu_ms_p50: percentile(steady.iter().copied(), 50.0).unwrap_or(f32::NAN),
            cpu_ms_p95: percentile(steady.iter().copied(), 95.0).unwrap_or(f32::NAN),
            thread_cpu_ms_p50: percentile(thread_steady.iter().copied(), 50.0).unwrap_or(f32::NAN),
            thread_cpu_ms_p95: percentile(thread_steady.iter().copied(), 95.0).unwrap_or(f32::NAN),
            steps,
            images_per_sec: rate(seconds),
            images_per_sec_with_evaluation: rate(with_eval),
        }
    }
}

impl eframe::App for ConvscopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.record_frame(frame.info().cpu_usage);
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}
