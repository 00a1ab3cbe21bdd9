//! The toolbar: play / pause / step / reset (it asks first), the learning rate, and where the run stands.

use eframe::egui::{self, Color32, RichText, Role, WidgetInfo};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::Panel;
use crate::app::view::TrainingView;
use crate::config::Setting;
use crate::protocol::{Command, Pace, RunState, WATCHABLE_PACE};

/// Smallest and largest learning rate the slider offers (the typed value accepts any positive number).
pub const LR_RANGE: (f64, f64) = (1e-5, 10.0);

const HELP: &str = "Play trains continuously, at the pace chosen next to it (slow enough to watch, or full \
speed); Step runs one step and pauses; the learning rate is on a log slider from 1e-5 to 10 (÷2 and ×2 step it \
exactly; too small and training crawls, too large and the loss jumps around or explodes); Reset builds the net again from its \
seed and spec (it asks first; the Training settings rebuild with another seed or spec). Shortcuts: Space \
play/pause, S step, R reset — ignored while you type in a field. Every change applies from the next step, without \
touching the weights, and is marked on the plots.";

/// Paces the pace menu offers, in steps a second (slow motion to fast).
const PACE_CHOICES: [f32; 7] = [1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 300.0];

/// The toolbar.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct ToolbarPanel {
    /// How fast training runs (persisted: the next launch trains at the same pace).
    pub pace: Pace,
    /// The paced rate to go back to from full speed.
    pub watch_rate: f32,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    confirm_reset: bool,
    #[serde(skip)]
    pending_lr: Option<f64>,
    /// Whether Fork A/B may be offered (no arm B yet); set by the window, which knows the whole run even while
    /// this panel is shown arm B's view.
    #[serde(skip)]
    pub fork_allowed: bool,
}

impl Default for ToolbarPanel {
    fn default() -> Self {
        let watch_rate = match WATCHABLE_PACE {
            Pace::PerSecond(rate) => rate,
            Pace::Full => 30.0,
        };
        ToolbarPanel {
            pace: WATCHABLE_PACE,
            watch_rate,
            help: false,
            confirm_reset: false,
            pending_lr: None,
            fork_allowed: true,
        }
    }
}

impl ToolbarPanel {
    /// The pace menu and the one-click switch between watching and full speed.
    fn pace_ui(&mut self, ui: &mut egui::Ui, out: &mut Outbox) {
        let before = self.pace;
        let label = match self.pace {
            Pace::Full => "full speed".to_owned(),
            Pace::PerSecond(rate) => format!("{rate} steps/s"),
        };
        let combo = egui::ComboBox::from_id_salt("pace").selected_text(label).width(92.0).show_ui(ui, |ui| {
            for rate in PACE_CHOICES {
                ui.selectable_value(&mut self.pace, Pace::PerSecond(rate), format!("{rate} steps/s"));
            }
            ui.selectable_value(&mut self.pace, Pace::Full, "full speed");
        });
        combo.response.widget_info(|| WidgetInfo::labeled(Role::ComboBox, true, "Pace"));
        combo.response.on_hover_text("How fast training runs: slow enough to watch each step, or as fast as the machine goes. Step (S) always runs one step at once.");
        let (toggle, hover) = match self.pace {
            Pace::Full => ("Watch", "Back to a watchable pace"),
            Pace::PerSecond(_) => ("Full speed", "Train as fast as the machine goes (the window keeps up)"),
        };
        if ui.button(toggle).on_hover_text(hover).clicked() {
            self.pace = match self.pace {
                Pace::Full => Pace::PerSecond(self.watch_rate),
                Pace::PerSecond(_) => Pace::Full,
            };
        }
        if let Pace::PerSecond(rate) = self.pace {
            self.watch_rate = rate;
        }
        if self.pace != before {
            out.send(Command::SetPace(self.pace));
        }
    }

    /// Whether the reset confirmation is showing.
    pub fn confirm_reset_pending(&self) -> bool {
        self.confirm_reset
    }

    /// Asks for a reset (shows the confirmation).
    pub fn ask_reset(&mut self) {
        self.confirm_reset = true;
    }

    fn run_buttons(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        if view.run_state == RunState::Running {
            if ui.button("Pause").on_hover_text("Stop after the current step (Space)").clicked() {
                out.send(Command::Pause);
            }
        } else if ui.button("Play").on_hover_text("Train continuously (Space)").clicked() {
            out.send(Command::Resume);
        }
        if ui.button("Step").on_hover_text("Run one training step, then pause (S)").clicked() {
            out.send(Command::Step(1));
        }
        if ui.button("Reset…").on_hover_text("Build the net again from its seed and spec (R); asks first").clicked() {
            self.confirm_reset = true;
        }
        let fork = ui.add_enabled(self.fork_allowed && !view.layers.is_empty(), egui::Button::new("Fork A/B"));
        let fork = fork.on_hover_text(
            "Copy the run as it stands into arm B (weights, optimiser state, batch order, step): change B's settings, \
             and both arms train on from here on the same batches, so any difference comes from what you changed",
        );
        if fork.clicked() {
            out.send(Command::Fork(Vec::new()));
        }
    }

    fn learning_rate(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        // Exact, predictable steps beside the slider: a few pixels of drag can be a decade.
        for (label, factor, hover) in [("÷2", 0.5, "Halve the learning rate"), ("×2", 2.0, "Double the learning rate")]
        {
            if ui.small_button(label).on_hover_text(hover).clicked() {
                let lr = (view.config.lr * factor).clamp(LR_RANGE.0, LR_RANGE.1);
                if lr != view.config.lr {
                    out.change(Setting::LearningRate(lr));
                }
            }
        }
        let mut lr = self.pending_lr.unwrap_or(view.config.lr);
        // Six decades need room: 25 px a decade rather than 17, and the toolbar still fits one line at 1280.
        ui.spacing_mut().slider_width = 150.0;
        let slider = ui
            .add(
                egui::Slider::new(&mut lr, LR_RANGE.0..=LR_RANGE.1)
                    .logarithmic(true)
                    .text("Learning rate")
                    .custom_formatter(|v, _| format!("{v:.2e}"))
                    // A typed rate is one change, made when the field lets go (see `edit_number`).
                    .update_while_editing(false),
            )
            .on_hover_text("Step size of each update (log scale); click the number to type one.");
        if slider.changed() {
            self.pending_lr = Some(lr);
        }
        // Send once the drag ends, so a slide is one change (and one marker), not fifty.
        if let Some(lr) = self.pending_lr
            && !slider.dragged()
        {
            self.pending_lr = None;
            if lr != view.config.lr {
                out.change(Setting::LearningRate(lr));
            }
        }
    }

    fn where_it_stands(ui: &mut egui::Ui, view: &TrainingView) {
        let running = view.run_state == RunState::Running;
        let state = if running {
            RichText::new("• training").color(Color32::from_rgb(80, 170, 80))
        } else {
            RichText::new("paused")
        };
        ui.label(state);
        if let Some(message) = &view.warmup {
            ui.spinner();
            ui.label(RichText::new(message).color(Color32::from_rgb(220, 160, 60))).on_hover_text(
                "The GPU backend compiles its kernels on the first steps; training starts when they are ready.",
            );
        }
        ui.label(format!("step {}", view.step));
        if let Some(restored) = view.restored {
            // The newest row is the step that blew up; the restored weights have figures of their own.
            let text = match restored.figures {
                Some((loss, accuracy)) => format!("restored · loss {loss:.4} · train {:.1} %", 100.0 * accuracy),
                None => "restored".to_owned(),
            };
            ui.label(text).on_hover_text(format!(
                "The last healthy weights are back: the loss they gave on their own batch, and the train accuracy \
                 then. Step {} is the first from them.",
                restored.next_step
            ));
        } else if let Some(row) = view.rows.last()
            && let Some(train) = row.train_regression
        {
            ui.label(format!("epoch {} · loss {:.4} · train R² {:.3}", row.epoch, row.loss, train.r2));
            let test = row.test_regression.map_or(f32::NAN, |m| m.r2);
            ui.label(format!("test R² {test:.3} @{}", row.test_step)).on_hover_text(
                "R² on the whole test split (1 is perfect, 0 no better than always answering the mean), measured with the weights of the step after the @",
            );
        } else if let Some(row) = view.rows.last() {
            ui.label(format!("epoch {} · loss {:.4} · train {:.1} %", row.epoch, row.loss, 100.0 * row.train_accuracy));
            // The test split is measured every few hundred steps: say when, so an old figure is not read as new.
            let test = format!("test {:.1} % @{}", 100.0 * row.test_accuracy, row.test_step);
            ui.label(test).on_hover_text(
                "Accuracy on the whole test split, measured with the weights of the step after the @; it is evaluated every few hundred steps, within a small share of the training time",
            );
        }
    }
}

impl Panel for ToolbarPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        // Wraps onto a second line in a narrow window rather than cutting off where the run stands.
        ui.horizontal_wrapped(|ui| {
            self.run_buttons(ui, view, out);
            self.pace_ui(ui, out);
            ui.separator();
            self.learning_rate(ui, view, out);
            ui.separator();
            header_help(ui, &mut self.help);
            ui.separator();
            Self::where_it_stands(ui, view);
        });
        if self.confirm_reset {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new("Reset the net? The weights and the curves so far are discarded.")
                        .color(Color32::from_rgb(220, 160, 60)),
                );
                if ui.button("Reset now").clicked() {
                    out.send(Command::Reset(Box::new(view.live_config())));
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
}

fn header_help(ui: &mut egui::Ui, open: &mut bool) {
    let button = ui.selectable_label(*open, "?").on_hover_text("What am I looking at? (controls)");
    if button.clicked() {
        *open = !*open;
    }
    button.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, *open, "Controls help"));
}
