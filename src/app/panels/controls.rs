//! The run controls: play / pause / step / reset with its confirmation, the learning rate, the optimiser
//! settings, the seed, the architecture-spec editor, and the export folder.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::app::panels::{Pick, spawn_dialog};
use crate::app::view::TrainingView;
use crate::train::{Command, OptimizerKind, RunState, TrainConfig};

/// Smallest and largest learning rate the slider offers (the typed value accepts any positive number).
pub const LR_RANGE: (f64, f64) = (1e-5, 10.0);

const HELP: &str = "Play trains continuously; Step runs one step and pauses; Reset builds a new net from the seed \
and the spec (it asks first). Shortcuts: Space play/pause, S step, R reset — ignored while you type in a field. \
Every change applies from the next step, without touching the weights, and is marked on the plots.";

/// What the controls asked the app to do besides sending commands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ControlActions {
    /// Export the images now.
    pub export: bool,
}

/// The controls panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct ControlsPanel {
    /// Folder the exports go to.
    pub export_dir: String,
    /// The spec being edited (applied on Rebuild).
    pub spec_text: String,
    /// The seed for the next reset.
    pub seed: u64,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    confirm_reset: bool,
    #[serde(skip)]
    pending_lr: Option<f64>,
    #[serde(skip)]
    browse: Option<Receiver<Option<PathBuf>>>,
    #[serde(skip)]
    spec_check: Option<(String, Result<String, String>)>,
}

impl Default for ControlsPanel {
    fn default() -> Self {
        ControlsPanel {
            export_dir: default_export_dir(),
            spec_text: TrainConfig::default().arch,
            seed: TrainConfig::default().seed,
            help: false,
            confirm_reset: false,
            pending_lr: None,
            browse: None,
            spec_check: None,
        }
    }
}

fn default_export_dir() -> String {
    std::env::current_dir()
        .map(|d| d.join("convscope-export"))
        .unwrap_or_else(|_| PathBuf::from("convscope-export"))
        .display()
        .to_string()
}

impl ControlsPanel {
    /// The configuration a reset would build: the live one with this panel's seed and spec. With the same
    /// spec the layers keep their current activations; a new spec starts from the run-wide activation.
    pub fn reset_config(&self, view: &TrainingView) -> TrainConfig {
        let live = view.live_config();
        if self.spec_text.trim() == view.config.arch.trim() {
            TrainConfig { seed: self.seed, ..live }
        } else {
            TrainConfig { seed: self.seed, arch: self.spec_text.clone(), layer_activations: Vec::new(), ..live }
        }
    }

    /// Whether the reset confirmation is showing.
    pub fn confirm_reset_pending(&self) -> bool {
        self.confirm_reset
    }

    /// Asks for a reset (shows the confirmation).
    pub fn request_reset(&mut self) {
        self.confirm_reset = true;
    }

    /// Play / pause / step / reset and the learning rate, in one row.
    pub fn toolbar_ui(&mut self, ui: &mut egui::Ui, view: &mut TrainingView, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let running = view.run_state == RunState::Running;
            if running {
                if ui.button("Pause").on_hover_text("Stop after the current step (Space)").clicked() {
                    out.push(Command::Pause);
                }
            } else if ui.button("Play").on_hover_text("Train continuously (Space)").clicked() {
                out.push(Command::Resume);
            }
            if ui.button("Step").on_hover_text("Run one training step, then pause (S)").clicked() {
                out.push(Command::Step(1));
            }
            if ui.button("Reset…").on_hover_text("Build a new net from the seed and the spec (R); asks first").clicked() {
                self.confirm_reset = true;
            }
            ui.separator();
            let mut lr = self.pending_lr.unwrap_or(view.config.lr);
            let slider = ui
                .add(egui::Slider::new(&mut lr, LR_RANGE.0..=LR_RANGE.1).logarithmic(true).text("Learning rate").custom_formatter(|v, _| format!("{v:.2e}")))
                .on_hover_text("Step size of each update, on a log scale from 1e-5 to 10; click the number to type one. Too small: training crawls. Too large: the loss jumps around or explodes.");
            if slider.changed() {
                self.pending_lr = Some(lr);
            }
            // Send once the drag ends, so a slide is one change (and one marker), not fifty.
            if let Some(lr) = self.pending_lr
                && !slider.dragged()
            {
                self.pending_lr = None;
                if lr != view.config.lr {
                    view.config.lr = lr;
                    out.push(Command::SetLearningRate(lr));
                }
            }
            ui.separator();
            header_help(ui, &mut self.help);
            ui.separator();
            let running_label = if running { RichText::new("• training").color(Color32::from_rgb(80, 170, 80)) } else { RichText::new("paused") };
            ui.label(running_label);
            if let Some(message) = &view.warmup {
                ui.spinner();
                ui.label(RichText::new(message).color(Color32::from_rgb(220, 160, 60))).on_hover_text(
                    "The GPU backend compiles its kernels on the first steps; training starts when they are ready.",
                );
            }
            ui.label(format!("step {}", view.step));
            if let Some(row) = view.rows.last() {
                ui.label(format!("epoch {} · loss {:.4} · train {:.1} % · test {:.1} %", row.epoch, row.loss, 100.0 * row.train_accuracy, 100.0 * row.test_accuracy));
            }
        });
        if self.confirm_reset {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new("Reset the net? The weights and the curves so far are discarded.")
                        .color(Color32::from_rgb(220, 160, 60)),
                );
                if ui.button("Reset now").clicked() {
                    out.push(Command::Reset(Box::new(self.reset_config(view))));
                    self.confirm_reset = false;
                }
                if ui.button("Cancel").clicked() {
                    self.confirm_reset = false;
                }
            });
        }
        if self.help {
            ui.label(RichText::new(HELP).small());
        }
    }

    /// Optimiser, batch, seed and the spec editor.
    pub fn settings_ui(&mut self, ui: &mut egui::Ui, view: &mut TrainingView, out: &mut Vec<Command>) {
        egui::Grid::new("settings").num_columns(2).spacing([8.0, 4.0]).show(ui, |ui| {
            ui.label("Optimiser");
            let mut optimizer = view.config.optimizer;
            egui::ComboBox::from_id_salt("optimizer").selected_text(optimizer.name()).show_ui(ui, |ui| {
                for kind in OptimizerKind::ALL {
                    ui.selectable_value(&mut optimizer, kind, kind.name());
                }
            })
            .response
            .on_hover_text("SGD: w ← w − lr·g. Momentum: keeps a running velocity of past gradients (0.9 by default). Adam: per-weight step sizes from gradient moments. Switching starts the new one with fresh state.");
            if optimizer != view.config.optimizer {
                view.config.optimizer = optimizer;
                out.push(Command::SetOptimizer(optimizer));
            }
            ui.end_row();

            ui.label("Momentum");
            let enabled = view.config.optimizer == OptimizerKind::Momentum;
            let widget = egui::DragValue::new(&mut view.config.momentum).range(0.0..=0.999).speed(0.01);
            let hover = "How much of the previous update carries over into the next (SGD with momentum only).";
            if committed(ui.add_enabled(enabled, widget).on_hover_text(hover)) {
                out.push(Command::SetMomentum(view.config.momentum));
            }
            ui.end_row();

            ui.label("Weight decay");
            let widget = egui::DragValue::new(&mut view.config.weight_decay).range(0.0..=1.0).speed(1e-4).max_decimals(6);
            let hover = "L2 penalty added to every gradient: pulls weights toward zero. 0 turns it off; 5e-4 is a common value.";
            if committed(ui.add(widget).on_hover_text(hover)) {
                out.push(Command::SetWeightDecay(view.config.weight_decay));
            }
            ui.end_row();

            ui.label("Batch size");
            let widget = egui::DragValue::new(&mut view.config.batch_size).range(1..=crate::train::config::MAX_BATCH_SIZE).speed(1.0);
            let hover = "Examples averaged per step. Larger batches give smoother gradients but fewer updates per epoch.";
            if committed(ui.add(widget).on_hover_text(hover)) {
                out.push(Command::SetBatchSize(view.config.batch_size));
            }
            ui.end_row();

            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed).speed(1.0))
                .on_hover_text("Seed for the weights and the shuffling at the next reset: the same seed rebuilds the same net.");
            ui.end_row();
        });
        ui.add_space(4.0);
        let label = ui.label("Architecture");
        label.clone().on_hover_text("Layers separated by commas: conv FILTERS KxK [pad P] [stride S], pool N, dense UNITS; or a preset: ref-mnist, deep6, wide, mlp. The output layer is added for you.");
        let edit = ui.add(
            egui::TextEdit::singleline(&mut self.spec_text)
                .font(egui::TextStyle::Monospace)
                .desired_width(f32::INFINITY)
                .hint_text("conv 8 5x5, pool 2, …"),
        );
        edit.labelled_by(label.id).on_hover_text("Validated as you type; Rebuild starts a new net with it.");
        let verdict = self.check_spec(view);
        match verdict {
            Ok(summary) => {
                ui.label(RichText::new(format!("valid: {summary}")).small().color(Color32::from_rgb(90, 170, 90)));
                if ui
                    .button("Rebuild with this spec")
                    .on_hover_text("Reset with this spec and the seed above (asks first)")
                    .clicked()
                {
                    self.confirm_reset = true;
                }
            }
            Err(error) => {
                ui.label(RichText::new(error).small().monospace().color(Color32::from_rgb(220, 90, 80)));
            }
        }
    }

    /// Validates the spec against the data, caching the verdict until the text changes.
    fn check_spec(&mut self, view: &TrainingView) -> Result<String, String> {
        // The verdict depends on the text and on the data it has to fit.
        let key = format!("{} @ {} / {}", self.spec_text, view.input, view.class_names.len());
        if let Some((checked, verdict)) = &self.spec_check
            && *checked == key
        {
            return verdict.clone();
        }
        let classes = view.class_names.len().max(1);
        // Checked exactly as a rebuild would build it, per-layer activations included.
        let verdict = self
            .reset_config(view)
            .plan(view.input, classes)
            .map(|plan| {
                let shapes: Vec<String> = plan.layers.iter().map(|l| format!("{} {}", l.name, l.out_shape)).collect();
                shapes.join(" › ")
            })
            .map_err(|e| e.to_string());
        self.spec_check = Some((key, verdict.clone()));
        verdict
    }

    /// The export folder with Browse… and the export button.
    pub fn export_ui(&mut self, ui: &mut egui::Ui) -> ControlActions {
        let mut actions = ControlActions::default();
        if let Some(rx) = &self.browse {
            match rx.try_recv() {
                Ok(picked) => {
                    if let Some(path) = picked {
                        self.export_dir = path.display().to_string();
                    }
                    self.browse = None;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => self.browse = None,
            }
        }
        ui.label("Export folder");
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut self.export_dir).desired_width(ui.available_width() - 80.0))
                .on_hover_text("Where exported PNGs go; created if missing. Type a path, or use Browse….");
            let browsing = self.browse.is_some();
            if ui
                .add_enabled(!browsing, egui::Button::new("Browse…"))
                .on_hover_text("Pick the folder with the system dialog (where one is available)")
                .clicked()
            {
                self.browse = Some(spawn_dialog(ui.ctx().clone(), "Export folder", &self.export_dir, Pick::Folder));
            }
        });
        if ui.button("Export images").on_hover_text("Save the filter grid, the gradient grid, the activation maps and each filter as PNG, named by layer, step and activation").clicked() {
            actions.export = true;
        }
        actions
    }
}

/// Whether a drag value's change is final: typed, or released after a drag (not every frame of the drag).
fn committed(response: egui::Response) -> bool {
    (response.changed() && !response.dragged()) || response.drag_stopped()
}

fn header_help(ui: &mut egui::Ui, open: &mut bool) {
    let button = ui.selectable_label(*open, "?").on_hover_text("What am I looking at? (controls)");
    if button.clicked() {
        *open = !*open;
    }
    button.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, *open, "Controls help"));
}
