//! The diagnosis panel: what the hint rules make of the last steps, in plain sentences with their evidence,
//! and the experiment presets with their explanations.

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header};
use crate::app::view::TrainingView;
use crate::diagnose::presets::{self, PRESETS};
use crate::diagnose::{HINT_MIN_STEPS, HINT_WINDOW};
use crate::protocol::Command;

const HELP: &str = "Diagnosis reads the per-layer statistics of the recent steps (gradient norms, update ratio, \
dead and saturated units, activation variance) and says in words what looks wrong, with the numbers, and what to \
try. It looks for vanishing and exploding gradients, dead ReLU units, saturated sigmoid/tanh units, update steps \
far from 1e-3 of the weights, and a loss that stopped falling. Experiments load a ready-made run that shows one \
of these problems; its text says what to watch and which switch gives the comparison.";

/// The diagnosis panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct DiagnosisPanel {
    /// The experiment picked in the menu.
    pub preset: String,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    confirm: bool,
}

impl Default for DiagnosisPanel {
    fn default() -> Self {
        DiagnosisPanel {
            preset: PRESETS.first().map_or(String::new(), |p| p.name.to_owned()),
            help: false,
            confirm: false,
        }
    }
}

impl Panel for DiagnosisPanel {
    /// Draws the hints the worker sent and the experiment menu; loading an experiment resets the net.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Diagnosis", &mut self.help, HELP);
        let rows = view.rows.len();
        let hints = &view.hints;
        if view.diverged.is_some() {
            ui.label(
                RichText::new("Training diverged: the banner above says where and why.")
                    .small()
                    .color(Color32::from_rgb(220, 110, 90)),
            );
        } else if rows < HINT_MIN_STEPS {
            ui.label(RichText::new(format!("Watching… (the rules speak after {HINT_MIN_STEPS} steps)")).small());
        } else if hints.is_empty() {
            ui.label(
                RichText::new(format!("Nothing looks wrong over the last {HINT_WINDOW} steps."))
                    .small()
                    .color(Color32::from_rgb(100, 170, 100)),
            );
        }
        for hint in hints {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.label(RichText::new(hint.rule.id()).small().strong().color(Color32::from_rgb(230, 150, 60)));
                ui.add(egui::Label::new(RichText::new(&hint.sentence).small()).wrap());
            });
        }
        ui.add_space(4.0);
        self.presets_ui(ui, view, out);
    }
}

impl DiagnosisPanel {
    fn presets_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        ui.horizontal(|ui| {
            ui.label("Experiment");
            let combo =
                egui::ComboBox::from_id_salt("preset").selected_text(&self.preset).width(170.0).show_ui(ui, |ui| {
                    for preset in PRESETS {
                        ui.selectable_value(&mut self.preset, preset.name.to_owned(), preset.name)
                            .on_hover_text(preset.question);
                    }
                });
            combo.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Experiment"));
        });
        let Some(preset) = presets::find(&self.preset) else { return };
        ui.label(RichText::new(preset.question).strong().small());
        ui.add(egui::Label::new(RichText::new(preset.explanation).small()).wrap());
        ui.label(
            RichText::new(format!(
                "Runs {} steps or so; the other arm from the start: convscope train --preset {} {}",
                preset.steps,
                preset.name,
                preset.other_arm.flags()
            ))
            .small()
            .italics(),
        );
        // The other arm, live: the same weights go on under the other setting, so the curves show the effect.
        let switch = format!("Switch now: {}", preset.other_arm.describe());
        let weighted = view.weighted_names().len();
        let button = ui.add_enabled(weighted > 0 && !view.reset_pending, egui::Button::new(&switch)).on_hover_text(
            "Make the other arm's change on the running net, keeping its weights: a marker shows where, and the \
             loss, accuracy and panels show what it does",
        );
        if button.clicked() {
            for setting in preset.other_arm.settings(weighted) {
                out.change(setting);
            }
        }
        let fork = format!("Fork A/B: B gets {}", preset.other_arm.describe());
        let fork = ui.add_enabled(weighted > 0 && !view.reset_pending, egui::Button::new(fork)).on_hover_text(
            "Copy the running net into arm B with the other arm's change: both arms train on from here on the same \
             batches, side by side, so the difference is the change alone",
        );
        if fork.clicked() {
            out.send(Command::Fork(preset.other_arm.settings(weighted)));
        }
        if self.confirm {
            ui.horizontal(|ui| {
                ui.label(RichText::new("Reset to this experiment?").color(Color32::from_rgb(220, 160, 60)));
                if ui.button("Load now").clicked() {
                    let current = &view.config;
                    let mut config = preset.config();
                    // The run's plumbing stays as the user has it.
                    config.seed = current.seed;
                    config.snapshot_interval_ms = current.snapshot_interval_ms;
                    config.test_every = current.test_every;
                    config.probe_index = current.probe_index;
                    // An experiment opens as an A/B run from one seed: arm B, its other arm, forked at step 0.
                    let weighted = config.plan(view.input, view.class_names.len()).map(|p| p.weighted().count());
                    out.send(Command::Reset(Box::new(config)));
                    if let Ok(weighted) = weighted {
                        out.send(Command::Fork(preset.other_arm.settings(weighted)));
                    }
                    self.confirm = false;
                }
                if ui.button("Cancel").clicked() {
                    self.confirm = false;
                }
            });
        } else if ui
            .button("Load experiment…")
            .on_hover_text(
                "Reset the net with this experiment's settings (asks first; the curves so far are discarded)",
            )
            .clicked()
        {
            self.confirm = true;
        }
    }
}
