//! The A/B strip under the toolbar while a fork runs: what arm B does differently, a one-line verdict, which
//! arm the settings edit, and closing either arm. Forking itself is a toolbar button (an exact copy) and the
//! Diagnosis panel's preset button (the preset's other arm).

use eframe::egui::{self, Color32, RichText};

use crate::app::outbox::Outbox;
use crate::app::panels::Panel;
use crate::app::view::TrainingView;
use crate::protocol::{Arm, Command};

/// Arm A's and arm B's colours in the A/B strip (the plots draw B dashed in A's colours).
pub const ARM_COLOURS: [Color32; 2] = [Color32::from_rgb(90, 150, 230), Color32::from_rgb(240, 150, 60)];

/// The A/B strip. Not persisted: a comparison lives as long as its run.
#[derive(Debug, Default)]
pub struct ComparePanel {
    /// The arm the settings panels and the learning rate edit.
    pub target: Arm,
}

impl ComparePanel {
    /// The arm edits go to: B only while there is one.
    pub fn editing(&self, view: &TrainingView) -> Arm {
        if view.arm_b.is_some() { self.target } else { Arm::A }
    }
}

impl Panel for ComparePanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let Some(b) = view.arm_b.as_deref() else {
            self.target = Arm::A;
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("A/B").strong().color(ARM_COLOURS[1]));
            ui.label(format!("forked at step {}, same batches since;", view.fork_step.unwrap_or(0)));
            let differences = view.arm_differences();
            let what = if differences.is_empty() { "nothing yet (change B's settings)".to_owned() } else { differences.join(", ") };
            ui.label(RichText::new(format!("B: {what}")).color(ARM_COLOURS[1]));
            ui.separator();
            ui.label("Settings edit").on_hover_text(
                "Which arm the learning rate, the Layers table and the Settings panel change; the other arm keeps its own",
            );
            for arm in Arm::BOTH {
                let label = RichText::new(format!("arm {}", arm.name())).color(ARM_COLOURS[usize::from(arm == Arm::B)]);
                ui.selectable_value(&mut self.target, arm, label);
            }
            ui.separator();
            if ui.button("Close A").on_hover_text("Keep arm B as the run (A's curves up to the fork stay)").clicked() {
                out.send(Command::CloseArm(Arm::A));
            }
            if ui.button("Close B").on_hover_text("Drop arm B and go back to one run").clicked() {
                out.send(Command::CloseArm(Arm::B));
            }
        });
        let verdict = view.verdict().unwrap_or_else(|| "step or play: both arms train on the same batches".into());
        let state = match &b.diverged {
            Some((step, _)) => format!(" · B diverged at step {step}"),
            None => String::new(),
        };
        ui.label(RichText::new(format!("{verdict}{state}")).strong());
        ui.horizontal_wrapped(|ui| {
            for (arm, arm_view) in [(Arm::A, view), (Arm::B, b)] {
                let colour = ARM_COLOURS[usize::from(arm == Arm::B)];
                let said = arm_line(arm_view);
                ui.label(RichText::new(format!("{}: {said}", arm.name())).small().color(colour));
            }
        });
    }
}

/// What one arm's probe prediction and hints say, in one short line.
fn arm_line(view: &TrainingView) -> String {
    let probe = view.live_snapshot().map(|s| &s.probe).and_then(|probe| {
        if let Some((prediction, _)) = probe.regression {
            return Some(format!("probe: predicted {prediction:.3}"));
        }
        let (class, p) = probe.probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        let name = view.class_names.get(class).cloned().unwrap_or_else(|| class.to_string());
        Some(format!("probe: {name} ({:.0} %)", 100.0 * p))
    });
    let hints: Vec<String> = view
        .hints
        .iter()
        .map(|h| match &h.layer {
            Some(layer) => format!("{} ({layer})", h.rule.id()),
            None => h.rule.id().to_owned(),
        })
        .collect();
    let hints = if hints.is_empty() { "no hints".to_owned() } else { format!("hints: {}", hints.join(", ")) };
    probe.into_iter().chain([hints]).collect::<Vec<_>>().join(" · ")
}
