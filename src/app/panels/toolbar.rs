//! The toolbar: play / pause / step / reset (it asks first), the learning rate, and where the run stands.

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::Panel;
use crate::app::view::TrainingView;
use crate::config::Setting;
use crate::protocol::{Command, RunState};

/// Smallest and largest learning rate the slider offers (the typed value accepts any positive number).
pub const LR_RANGE: (f64, f64) = (1e-5, 10.0);

const HELP: &str = "Play trains continuously; Step runs one step and pauses; Reset builds the net again from its \
seed and spec (it asks first; the Training settings rebuild with another seed or spec). Shortcuts: Space \
play/pause, S step, R reset — ignored while you type in a field. Every change applies from the next step, without \
touching the weights, and is marked on the plots.";

/// The toolbar.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolbarPanel {
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    confirm_reset: bool,
    #[serde(skip)]
    pending_lr: Option<f64>,
}

impl ToolbarPanel {
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
    }

    fn learning_rate(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let mut lr = self.pending_lr.unwrap_or(view.config.lr);
        let slider = ui
            .add(
                egui::Slider::new(&mut lr, LR_RANGE.0..=LR_RANGE.1)
                    .logarithmic(true)
                    .text("Learning rate")
                    .custom_formatter(|v, _| format!("{v:.2e}")),
            )
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
        if let Some(row) = view.rows.last() {
            ui.label(format!(
                "epoch {} · loss {:.4} · train {:.1} % · test {:.1} %",
                row.epoch,
                row.loss,
                100.0 * row.train_accuracy,
                100.0 * row.test_accuracy
            ));
        }
    }
}

impl Panel for ToolbarPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        ui.horizontal(|ui| {
            self.run_buttons(ui, view, out);
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
