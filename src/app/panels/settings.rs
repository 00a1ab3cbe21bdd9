//! Training settings: the optimiser and its numbers, the batch size, the init (live before the first step),
//! and the next net's seed and architecture spec (validated as it is typed) with the rebuild that uses them.

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, edit_number};
use crate::app::view::TrainingView;
use crate::arch::Init;
use crate::config::{MAX_BATCH_SIZE, OptimizerKind, Setting, TrainConfig};
use crate::protocol::Command;
use crate::task::{Target, Task};

/// The settings panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsPanel {
    /// The spec being edited (applied on Rebuild).
    pub spec_text: String,
    /// The seed for the next rebuild.
    pub seed: u64,
    /// The net whose spec and seed the fields last took over.
    #[serde(skip)]
    seen_run: u64,
    #[serde(skip)]
    confirm_rebuild: bool,
    /// A task picked but not yet confirmed (it needs a new net: the output layer changes).
    #[serde(skip)]
    pending_task: Option<Task>,
    /// An init picked after the first step: the next rebuild's.
    #[serde(skip)]
    next_init: Option<Init>,
    #[serde(skip)]
    drafts: Drafts,
    #[serde(skip)]
    spec_check: Option<(String, Result<String, String>)>,
}

/// Numbers being dragged or typed, not yet committed.
#[derive(Default)]
struct Drafts {
    momentum: Option<f64>,
    weight_decay: Option<f64>,
    grad_clip: Option<f64>,
    batch_size: Option<usize>,
}

impl Default for SettingsPanel {
    fn default() -> Self {
        SettingsPanel {
            spec_text: TrainConfig::default().arch,
            seed: TrainConfig::default().seed,
            seen_run: 0,
            confirm_rebuild: false,
            pending_task: None,
            next_init: None,
            drafts: Drafts::default(),
            spec_check: None,
        }
    }
}

impl SettingsPanel {
    /// The configuration a rebuild would build: the live one with this panel's seed and spec. With the same
    /// spec the layers keep their current activations; a new spec starts from the run-wide activation.
    pub fn rebuild_config(&self, view: &TrainingView) -> TrainConfig {
        let live = view.live_config();
        let init = self.next_init.or(live.init);
        if self.spec_text.trim() == view.config.arch.trim() {
            TrainConfig { seed: self.seed, init, ..live }
        } else {
            TrainConfig { seed: self.seed, init, arch: self.spec_text.clone(), layer_activations: Vec::new(), ..live }
        }
    }

    fn optimiser_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
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
            out.change(Setting::Optimizer(optimizer));
        }
        ui.end_row();

        ui.label("Momentum");
        let enabled = view.config.optimizer == OptimizerKind::Momentum;
        let hover = "How much of the previous update carries over into the next (SGD with momentum only).";
        let style = (0.0..=0.999, 0.01);
        if let Some(m) = edit_number(ui, &mut self.drafts.momentum, view.config.momentum, enabled, style, hover) {
            out.change(Setting::Momentum(m));
        }
        ui.end_row();

        ui.label("Weight decay");
        let hover =
            "L2 penalty added to every gradient: pulls weights toward zero. 0 turns it off; 5e-4 is a common value.";
        let style = (0.0..=1.0, 1e-4);
        if let Some(w) = edit_number(ui, &mut self.drafts.weight_decay, view.config.weight_decay, true, style, hover) {
            out.change(Setting::WeightDecay(w));
        }
        ui.end_row();

        ui.label("Gradient clip");
        let hover = "Clip each parameter's gradient to at most this L2 norm before the update: a seat belt against exploding gradients (the gradient-flow view shows the raw norms). 0 turns it off; 1 is a common value.";
        let style = (0.0..=1000.0, 0.01);
        if let Some(c) = edit_number(ui, &mut self.drafts.grad_clip, view.config.grad_clip, true, style, hover) {
            out.change(Setting::GradientClip(c));
        }
        ui.end_row();

        ui.label("Batch size");
        let hover = "Examples averaged per step. Larger batches give smoother gradients but fewer updates per epoch.";
        let style = (1..=MAX_BATCH_SIZE, 1.0);
        if let Some(b) = edit_number(ui, &mut self.drafts.batch_size, view.config.batch_size, true, style, hover) {
            out.change(Setting::BatchSize(b));
        }
        ui.end_row();

        ui.label("Seed");
        ui.add(egui::DragValue::new(&mut self.seed).speed(1.0)).on_hover_text(
            "Seed for the weights and the shuffling at the next rebuild: the same seed rebuilds the same net.",
        );
        ui.end_row();

        self.init_ui(ui, view, out);
        self.task_ui(ui, view);
    }

    /// How the weights are drawn: a live change before the first step (a net at step 0, or arm B of a fork made
    /// there, so the arms differ by their init alone), else the next rebuild's.
    fn init_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        const CHOICES: [Init; 6] = [
            Init::He,
            Init::Xavier,
            Init::Uniform,
            Init::Normal { std: 0.01 },
            Init::Normal { std: 0.1 },
            Init::Normal { std: 1.0 },
        ];
        ui.label("Init");
        let live = view.step == 0;
        let shown = if live { view.config.init } else { self.next_init.or(view.config.init) };
        let name = Init::describe;
        let mut chosen = shown;
        let when = if live {
            "Before the first step the net is drawn again from the same seed: the same random draws at another scale (fork at step 0 to compare two inits)."
        } else {
            "The weights have trained, so the choice applies at the next rebuild (Rebuild with this spec, below)."
        };
        let combo = egui::ComboBox::from_id_salt("init")
            .selected_text(if live || self.next_init.is_none() {
                name(shown)
            } else {
                format!("{} (next)", name(shown))
            })
            .show_ui(ui, |ui| {
                for init in CHOICES {
                    ui.selectable_value(&mut chosen, Some(init), name(Some(init)));
                }
            });
        combo.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Init"));
        combo.response.on_hover_text(format!("How the starting weights are drawn (biases start at 0). he: σ = √(2/fan_in), for ReLU; xavier: σ = √(2/(fan_in + fan_out)), for sigmoid and tanh; uniform: ±1/√fan_in (PyTorch's default); normal:σ the same σ in every layer, whatever its size — 0.01 lets a deep net's signal vanish, 1 makes it explode. By activation: he for the ReLU family, xavier for the others. {when}"));
        if let Some(init) = chosen.filter(|_| chosen != shown) {
            if live {
                out.change(Setting::Init(init));
            } else {
                self.next_init = Some(init);
            }
        }
        ui.end_row();
    }

    /// What the net predicts: classes, or a number per image (a new net, after asking).
    fn task_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView) {
        let label = ui.label("Task");
        let current = view.config.task;
        let mut chosen = self.pending_task.unwrap_or(current);
        let mut tasks = vec![Task::Classification, Task::Regression(Target::Slant), Task::Regression(Target::Ink)];
        // A targets file can only come from the command line; offer it only when this run has one.
        if current == Task::Regression(Target::File) {
            tasks.push(current);
        }
        let combo = egui::ComboBox::from_id_salt("task").selected_text(chosen.name()).show_ui(ui, |ui| {
            for task in tasks {
                ui.selectable_value(&mut chosen, task, task.name());
            }
        });
        combo.response.labelled_by(label.id).on_hover_text(
            "Classification: the digit's class. Regression: one number per image — slant (how far the digit leans, \
             negative to the left) or ink (its mean intensity, 0…1) — learnt with an identity output, which can \
             reach any target, and MSE on standardised targets (mean 0, std 1), which keeps the loss and the \
             gradients near 1 whatever the targets' units; its learning rate starts at 0.0003, as MSE's gradient \
             grows with the error. Switching builds a new net.",
        );
        if chosen != self.pending_task.unwrap_or(current) {
            self.pending_task = (chosen != current).then_some(chosen);
        }
        ui.end_row();
    }

    /// The configuration for a new net that predicts `task` (see [`TrainConfig::switch_task`]).
    pub fn task_config(&self, view: &TrainingView, task: Task) -> TrainConfig {
        let mut config = self.rebuild_config(view);
        config.switch_task(task);
        config
    }

    fn spec_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let label = ui.label("Architecture");
        label.clone().on_hover_text("Layers separated by commas: conv FILTERS KxK [pad P] [stride S], pool N, dense UNITS; or a preset: ref-mnist, deep6, wide, mlp. The output layer is added for you.");
        let edit = ui.add(
            egui::TextEdit::singleline(&mut self.spec_text)
                .font(egui::TextStyle::Monospace)
                .desired_width(f32::INFINITY)
                .hint_text("conv 8 5x5, pool 2, …"),
        );
        edit.labelled_by(label.id).on_hover_text("Validated as you type; Rebuild starts a new net with it.");
        match self.check_spec(view) {
            Ok(summary) => {
                let valid = RichText::new(format!("valid: {summary}")).small().color(Color32::from_rgb(90, 170, 90));
                ui.add(egui::Label::new(valid).wrap());
                let rebuild = ui
                    .button("Rebuild with this spec")
                    .on_hover_text("Start a new net with this spec and the seed above (asks first)");
                if rebuild.clicked() {
                    self.confirm_rebuild = true;
                }
            }
            Err(error) => {
                ui.add(
                    egui::Label::new(RichText::new(error).small().monospace().color(Color32::from_rgb(220, 90, 80)))
                        .wrap(),
                );
            }
        }
        if self.confirm_rebuild {
            // Asked right under the button that asked for it.
            ui.label(
                RichText::new("Rebuild the net? The weights and the curves so far are discarded.")
                    .color(Color32::from_rgb(220, 160, 60)),
            );
            ui.horizontal(|ui| {
                if ui.button("Rebuild now").clicked() {
                    out.send(Command::Reset(Box::new(self.rebuild_config(view))));
                    self.confirm_rebuild = false;
                }
                if ui.button("Cancel").clicked() {
                    self.confirm_rebuild = false;
                }
            });
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
            .rebuild_config(view)
            .plan(view.input, classes)
            .map(|plan| {
                let shapes: Vec<String> = plan.layers.iter().map(|l| format!("{} {}", l.name, l.out_shape)).collect();
                shapes.join(" › ")
            })
            .map_err(|e| e.to_string());
        self.spec_check = Some((key, verdict.clone()));
        verdict
    }
}

impl Panel for SettingsPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        if self.seen_run != view.run_generation {
            // A new net (a reset, an experiment, new data): the fields show what it was built from.
            self.seen_run = view.run_generation;
            self.spec_text.clone_from(&view.config.arch);
            self.seed = view.config.seed;
            self.next_init = None;
        }
        ui.heading("Training settings");
        egui::Grid::new("settings").num_columns(2).spacing([8.0, 4.0]).show(ui, |ui| self.optimiser_ui(ui, view, out));
        if let Some(task) = self.pending_task {
            ui.label(
                RichText::new(format!("Switch to {task}? A new net is built; the curves so far are discarded."))
                    .color(Color32::from_rgb(220, 160, 60)),
            );
            ui.horizontal(|ui| {
                if ui.button("Switch task").clicked() {
                    out.send(Command::Reset(Box::new(self.task_config(view, task))));
                    self.pending_task = None;
                }
                if ui.button("Cancel").clicked() {
                    self.pending_task = None;
                }
            });
        }
        ui.add_space(4.0);
        self.spec_ui(ui, view, out);
    }
}
