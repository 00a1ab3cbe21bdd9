//! The egui window: one struct per panel, a persisted [`State`], and the runtime side that talks to the
//! worker through a [`WorkerLink`]. Holds only plain snapshot data and a command outbox — never burn types.

pub mod link;
pub mod panels;
pub mod series;
pub mod textures;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

pub use link::{FakeWorker, WorkerLink};
use panels::activations::ActivationsPanel;
use panels::controls::ControlsPanel;
use panels::curves::CurvesPanel;
use panels::data::{DataAction, DataPanel};
use panels::diagnosis::DiagnosisPanel;
use panels::filters::FiltersPanel;
use panels::gradflow::GradientFlowPanel;
use panels::histograms::HistogramPanel;
use panels::layers::LayersPanel;
use panels::metrics::MetricsPanel;
use panels::status::{StatusBar, percentile};
use view::{Severity, TrainingView};

use crate::data::DataSplit;
use crate::export::{self, EXPORT_PIXELS_PER_WEIGHT, ExportError};
use crate::train::{Command, RunState, SharedData, TrainConfig};

/// Longest wait between the worker's news and the frame that shows it (about ten frames a second while
/// training; input still repaints at once).
pub const DATA_REPAINT_INTERVAL: Duration = Duration::from_millis(100);

/// How long an informational message stays in the banner.
const INFO_MESSAGE_SECS: f32 = 6.0;

/// What persists between launches: the configuration and every panel's options (never the paused state).
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The configuration the next launch builds its net from.
    pub config: TrainConfig,
    /// Run controls, spec editor, export folder.
    pub controls: ControlsPanel,
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
}

/// Frame statistics written by `--frame-stats`.
#[derive(Debug, Serialize)]
pub struct FrameStats {
    /// Frames measured.
    pub frames: usize,
    /// Median egui CPU time per frame, ms.
    pub cpu_ms_p50: f32,
    /// 95th percentile, ms.
    pub cpu_ms_p95: f32,
    /// Median CPU time of the UI thread per frame (it excludes waiting, e.g. for a software rasteriser), ms.
    pub thread_cpu_ms_p50: f32,
    /// 95th percentile of the same, ms.
    pub thread_cpu_ms_p95: f32,
    /// Training steps during the run.
    pub steps: u64,
    /// Training images per second over the time spent in training steps (what `convscope bench` measures).
    pub images_per_sec: f64,
    /// Images per second over all compute time, test evaluations included.
    pub images_per_sec_with_evaluation: f64,
}

/// The convscope window.
pub struct ConvscopeApp {
    /// Persisted settings and panels.
    pub state: State,
    /// Everything received from the worker.
    pub view: TrainingView,
    worker: Box<dyn WorkerLink>,
    status: StatusBar,
    outbox: Vec<Command>,
    screenshot: Option<(PathBuf, Instant)>,
    screenshot_requested: bool,
    screenshot_done: Arc<std::sync::atomic::AtomicBool>,
    quit_at: Option<Instant>,
    frame_stats: Option<PathBuf>,
}

impl ConvscopeApp {
    /// A window on `worker`, restoring `state`. `data` supplies the probe thumbnails until the worker
    /// announces its net (and data) with [`WorkerEvent::Started`](crate::train::WorkerEvent::Started).
    pub fn new(state: State, worker: Box<dyn WorkerLink>, data: Option<Arc<DataSplit>>) -> Self {
        let mut state = state;
        state.controls.spec_text = state.config.arch.clone();
        state.controls.seed = state.config.seed;
        ConvscopeApp {
            view: TrainingView { data, ..TrainingView::new(state.config.clone()) },
            state,
            worker,
            status: StatusBar::default(),
            outbox: Vec::new(),
            screenshot: None,
            screenshot_requested: false,
            screenshot_done: Arc::default(),
            quit_at: None,
            frame_stats: None,
        }
    }

    /// Saves a screenshot of the window to `path` once `after` has passed, then closes the window.
    pub fn screenshot_after(&mut self, path: PathBuf, after: Duration) {
        self.screenshot = Some((path, Instant::now() + after));
    }

    /// Closes the window after `after`, writing frame statistics to `stats` if given.
    pub fn quit_after(&mut self, after: Duration, stats: Option<PathBuf>) {
        self.quit_at = Some(Instant::now() + after);
        self.frame_stats = stats;
    }

    /// Takes every pending event (never waits).
    fn poll_worker(&mut self) {
        while let Some(event) = self.worker.try_recv() {
            self.view.apply(event);
        }
    }

    /// Files dropped on the window, and finished loads of the data panel.
    fn data_actions(&mut self, ctx: &egui::Context) {
        let dropped: Option<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().find_map(|f| {
                let path = f.path();
                (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
            })
        });
        if let Some(path) = dropped {
            self.state.data.open_dropped(ctx, &path, self.view.input);
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
        match self.state.data.poll() {
            Some(DataAction::Load { data, summary }) => {
                let config = TrainConfig { probe_index: 0, ..self.state.controls.reset_config(&self.view) };
                self.outbox.push(Command::LoadData { data: SharedData(data), config: Box::new(config) });
                self.view.message(Severity::Info, summary);
            }
            Some(DataAction::Probe { pixels, name }) => self.outbox.push(Command::SetProbeImage { pixels, name }),
            Some(DataAction::Failed(message)) => {
                self.view.message(Severity::Warning, format!("{message} (training goes on with the current data)"))
            }
            None => {}
        }
    }

    fn send_outbox(&mut self) {
        for command in self.outbox.drain(..) {
            if matches!(command, Command::Reset(_) | Command::LoadData { .. }) {
                self.view.reset_pending = true;
            }
            self.worker.send(command);
        }
    }

    /// Space, S and R, unless a text field has the keyboard.
    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (space, s, r) =
            ctx.input(|i| (i.key_pressed(egui::Key::Space), i.key_pressed(egui::Key::S), i.key_pressed(egui::Key::R)));
        if space {
            self.outbox.push(if self.view.run_state == RunState::Running { Command::Pause } else { Command::Resume });
        }
        if s {
            self.outbox.push(Command::Step(1));
        }
        if r {
            self.state.controls.request_reset();
        }
    }

    fn banner(&mut self, ui: &mut egui::Ui) {
        if let Some((step, message)) = self.view.diverged.clone() {
            egui::Frame::new().fill(Color32::from_rgb(160, 50, 45)).inner_margin(4.0).show(ui, |ui| {
                ui.label(RichText::new(&message).color(Color32::WHITE).strong());
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new(format!("Training paused at step {}.", step.saturating_sub(1)))
                            .color(Color32::WHITE),
                    );
                    if ui
                        .button("Restore last healthy state")
                        .on_hover_text("Go back to the weights kept before the trouble started; the rate stays")
                        .clicked()
                    {
                        self.outbox.push(Command::RestoreHealthy { halve_lr: false });
                    }
                    if ui
                        .button("Restore and halve the rate")
                        .on_hover_text("Go back to the last healthy weights and continue at half the learning rate")
                        .clicked()
                    {
                        self.outbox.push(Command::RestoreHealthy { halve_lr: true });
                    }
                    if ui.small_button("dismiss").clicked() {
                        self.view.diverged = None;
                    }
                });
            });
        }
        self.view.messages.retain(|m| m.severity != Severity::Info || m.at.elapsed().as_secs_f32() < INFO_MESSAGE_SECS);
        let mut dismiss = None;
        for (index, message) in self.view.messages.iter().enumerate().rev().take(3) {
            let colour = match message.severity {
                Severity::Info => Color32::from_rgb(60, 120, 70),
                Severity::Warning => Color32::from_rgb(150, 110, 30),
                Severity::Error => Color32::from_rgb(160, 50, 45),
            };
            egui::Frame::new().fill(colour).inner_margin(4.0).show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(&message.text).color(Color32::WHITE));
                    if ui.small_button("dismiss").clicked() {
                        dismiss = Some(index);
                    }
                });
            });
        }
        if let Some(index) = dismiss {
            self.view.messages.remove(index);
        }
    }

    fn export(&mut self) {
        let dir = PathBuf::from(self.state.controls.export_dir.trim());
        match export_images(&self.view, &self.state.filters, &dir) {
            Ok(files) => {
                self.view.message(Severity::Info, format!("exported {} images to {}", files.len(), dir.display()))
            }
            Err(error) => self.view.message(Severity::Error, format!("export failed: {error}; training carries on")),
        }
    }

    /// Draws the whole window into `ui` (also what the tests drive).
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        self.poll_worker();
        self.state.histograms.observe(&self.view);
        let ctx = ui.ctx().clone();
        self.shortcuts(&ctx);
        self.data_actions(&ctx);
        let mut export_now = false;
        egui::Panel::top("toolbar").show(ui, |ui| {
            self.state.controls.toolbar_ui(ui, &mut self.view, &mut self.outbox);
            self.banner(ui);
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status.ui(ui, &self.view));
        egui::Panel::left("left").resizable(false).exact_size(450.0).show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("left-scroll").show(ui, |ui| {
                self.state.layers.ui(ui, &mut self.view, &mut self.outbox);
                ui.separator();
                if let Some(config) = self.state.diagnosis.ui(ui, &self.view) {
                    // The spec editor follows, so a later plain reset keeps the experiment's net.
                    self.state.controls.spec_text = config.arch.clone();
                    self.outbox.push(Command::Reset(Box::new(config)));
                }
                ui.separator();
                self.state.data.ui(ui, &self.view);
                ui.separator();
                ui.heading("Training settings");
                self.state.controls.settings_ui(ui, &mut self.view, &mut self.outbox);
                ui.separator();
                export_now = self.state.controls.export_ui(ui).export;
            });
        });
        egui::Panel::right("right").resizable(false).exact_size(275.0).show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("right-scroll").show(ui, |ui| {
                let data = self.view.data.clone();
                let test = data.as_ref().map(|d| &d.test);
                self.state.activations.ui(ui, &mut self.view, test, &mut self.outbox);
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("centre-scroll").show(ui, |ui| {
                self.state.filters.ui(ui, &self.view);
                ui.separator();
                self.state.curves.ui(ui, &self.view);
                ui.separator();
                self.state.gradient_flow.ui(ui, &self.view);
                ui.separator();
                self.state.histograms.ui(ui, &self.view);
                ui.separator();
                self.state.metrics.ui(ui, &self.view);
            });
        });
        if export_now {
            self.export();
        }
        self.send_outbox();
        if !self.view.layers.is_empty() {
            // What persists is the running net's configuration with every live change.
            self.state.config = self.view.live_config();
        }
        self.timers(&ctx);
    }

    fn timers(&mut self, ctx: &egui::Context) {
        if let Some((path, at)) = &self.screenshot {
            if Instant::now() >= *at && !self.screenshot_requested {
                self.screenshot_requested = true;
                let path = path.clone();
                let done = self.screenshot_done.clone();
                let waker = ctx.clone();
                ctx.request_screenshot(move |image| {
                    if let Err(error) = save_screenshot(&image, &path) {
                        eprintln!("convscope: {error}");
                    }
                    done.store(true, std::sync::atomic::Ordering::Release);
                    waker.request_repaint();
                });
            }
            if self.screenshot_done.load(std::sync::atomic::Ordering::Acquire) {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            // The callback does not repaint by itself: keep frames coming until it has run.
            ctx.request_repaint_after(Duration::from_millis(50));
        }
        if let Some(at) = self.quit_at {
            if Instant::now() >= at {
                if let Some(path) = &self.frame_stats {
                    let stats = self.frame_stats();
                    let written = serde_json::to_string(&stats)
                        .map_err(std::io::Error::other)
                        .and_then(|json| std::fs::write(path, json));
                    if let Err(error) = written {
                        eprintln!("convscope: could not write {}: {error}", path.display());
                    }
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Frame-time percentiles and the training throughput seen so far.
    pub fn frame_stats(&self) -> FrameStats {
        let frames = &self.status.all_frames_ms;
        // Skip the first frames: font atlas and texture uploads are start-up cost, not steady state.
        let steady: Vec<f32> = frames.iter().skip(frames.len().min(30)).copied().collect();
        let thread = &self.status.thread_cpu_ms;
        let thread_steady: Vec<f32> = thread.iter().skip(thread.len().min(30)).copied().collect();
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
        self.status.record_frame(frame.info().cpu_usage);
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}

fn save_screenshot(image: &egui::ColorImage, path: &Path) -> Result<(), ExportError> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba).ok_or_else(|| ExportError::Shape {
        what: "the screenshot".into(),
        detail: "pixel count does not match its size".into(),
    })?;
    let rgb = image::DynamicImage::ImageRgba8(buffer).to_rgb8();
    export::write_file(path, &export::encode_png(&rgb, "the screenshot")?)
}

/// Writes the shown layer's filter and gradient grids (with the on-screen scales), every filter as its own
/// PNG, and the probe's activation maps into `dir`; names carry layer, step and activation.
pub fn export_images(view: &TrainingView, filters: &FiltersPanel, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let Some(snapshot) = view.snapshot.as_ref() else {
        return Err(ExportError::Shape { what: "the images".into(), detail: "no snapshot has arrived yet".into() });
    };
    export::create_dir(dir)?;
    let mut written = Vec::new();
    let mut write = |name: String, image: &image::RgbImage| -> Result<(), ExportError> {
        let path = dir.join(name);
        export::write_file(&path, &export::encode_png(image, &path.display().to_string())?)?;
        written.push(path);
        Ok(())
    };
    let step = snapshot.step;
    if let Some(layer) = filters.shown(view) {
        let activation = layer.settings.activation.name();
        let tag = format!("step{step:06}_{activation}");
        let (weight_scale, grad_scale) = filters.scales;
        let channel = Some(filters.channel);
        let grid = export::filters_image(&layer.weights, weight_scale, EXPORT_PIXELS_PER_WEIGHT, filters.rgb, channel)?;
        write(format!("{}_filters_{tag}.png", layer.name), &grid)?;
        if let Some(grads) = &layer.weight_grads {
            let grid = export::filters_image(grads, grad_scale, EXPORT_PIXELS_PER_WEIGHT, filters.rgb, channel)?;
            write(format!("{}_gradients_{tag}.png", layer.name), &grid)?;
        }
        let &[filter_count, channels, kh, kw] = layer.weights.shape.as_slice() else { return Ok(written) };
        let per_filter = channels * kh * kw;
        for filter in 0..filter_count {
            let values =
                layer.weights.data.get(filter * per_filter..(filter + 1) * per_filter).unwrap_or_default().to_vec();
            if let Some(single) = crate::snapshot::FloatArray::new(vec![1, channels, kh, kw], values) {
                let tile =
                    export::filters_image(&single, weight_scale, EXPORT_PIXELS_PER_WEIGHT * 2, filters.rgb, channel)?;
                write(format!("{}_filter{filter:02}_{tag}.png", layer.name), &tile)?;
            }
        }
    }
    for (map, layer) in snapshot.probe.post_activations.iter().zip(&snapshot.layers) {
        let (low, high) = map.finite_range().unwrap_or((0.0, 1.0));
        let grid = export::map_grid(map, low, high, 6)?;
        let name = format!(
            "{}_activations_step{step:06}_{}_probe{}.png",
            layer.name,
            layer.settings.activation.name(),
            snapshot.probe.index
        );
        write(name, &grid)?;
    }
    Ok(written)
}

/// How the window is launched.
pub struct WindowOptions {
    /// Use the wgpu renderer instead of glow.
    pub wgpu: bool,
    /// Compute threads for training.
    pub threads: Option<usize>,
    /// Save a screenshot after this long, then close.
    pub screenshot: Option<(PathBuf, Duration)>,
    /// Close after this long, writing frame statistics to the path if given.
    pub quit_after: Option<(Duration, Option<PathBuf>)>,
    /// Start from the default settings instead of the persisted ones.
    pub fresh: bool,
    /// Build the net but wait for Play or Step.
    pub paused: bool,
    /// Start with this experiment.
    pub preset: Option<&'static crate::train::presets::Preset>,
    /// Load this data in the background and train on it once loaded.
    pub data: Option<PathBuf>,
    /// Where training computes.
    pub backend: crate::train::BackendKind,
}

/// Opens the window and trains the embedded MNIST subset (or the persisted configuration) in it.
pub fn run_window(options: WindowOptions) -> anyhow::Result<()> {
    use anyhow::Context;
    let data = Arc::new(crate::data::embedded_mnist().context("the embedded MNIST subset is damaged")?);
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([900.0, 600.0])
            .with_title("convscope"),
        renderer: if options.wgpu { eframe::Renderer::Wgpu } else { eframe::Renderer::Glow },
        ..Default::default()
    };
    let WindowOptions { threads, screenshot, quit_after, fresh, paused, preset, data: data_path, backend, .. } =
        options;
    eframe::run_native(
        "convscope",
        native,
        Box::new(move |cc| {
            let mut state: State = if fresh {
                State::default()
            } else {
                cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default()
            };
            if let Some(preset) = preset {
                state.config = TrainConfig { seed: state.config.seed, ..preset.config() };
                state.controls.spec_text = state.config.arch.clone();
                state.diagnosis.preset = preset.name.to_owned();
            }
            let mut notice = None;
            // A persisted configuration that no longer fits (or a damaged one) falls back to the defaults.
            let fits =
                state.config.validate().is_ok() && state.config.plan(data.train.shape(), data.train.classes()).is_ok();
            if !fits {
                notice = Some(format!(
                    "the saved settings (spec `{}`) did not fit the data; started from the defaults",
                    state.config.arch
                ));
                state.config = TrainConfig::default();
            }
            let ctx = cc.egui_ctx.clone();
            // New data asks for a frame within DATA_REPAINT_INTERVAL: snapshots and metric batches that arrive
            // close together share one frame, and the renderer leaves the cores to training.
            let waker: crate::train::Waker = Arc::new(move || ctx.request_repaint_after(DATA_REPAINT_INTERVAL));
            let worker = crate::train::WorkerHandle::spawn(
                state.config.clone(),
                data.clone(),
                crate::train::WorkerOptions {
                    threads,
                    waker,
                    start_paused: paused,
                    backend,
                    priority: crate::train::ComputePriority::Background,
                },
            )?;
            let mut app = ConvscopeApp::new(state, Box::new(worker), Some(data));
            if let Some(path) = data_path {
                app.state.data.path = path.display().to_string();
                app.state.data.load(&cc.egui_ctx, path);
            }
            if let Some(text) = notice {
                app.view.message(Severity::Warning, text);
            }
            if let Some((path, after)) = screenshot {
                app.screenshot_after(path, after);
            }
            if let Some((after, stats)) = quit_after {
                app.quit_after(after, stats);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
