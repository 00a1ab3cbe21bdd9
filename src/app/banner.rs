//! The banner under the toolbar: a divergence with its way back (restore the last healthy state, optionally at
//! half the rate), and the latest messages, each dismissable.

use eframe::egui::{self, Color32, RichText};

use crate::app::outbox::Outbox;
use crate::app::view::{Dismiss, Severity, TrainingView};
use crate::protocol::Command;

/// Shows the banner; returns what the user dismissed.
pub fn show(ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) -> Option<Dismiss> {
    let mut dismiss = None;
    if let Some((step, message)) = view.diverged.clone() {
        egui::Frame::new().fill(Color32::from_rgb(160, 50, 45)).inner_margin(4.0).show(ui, |ui| {
            ui.label(RichText::new(&message).color(Color32::WHITE).strong());
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!("Training paused at step {}.", step.saturating_sub(1))).color(Color32::WHITE),
                );
                if ui
                    .button("Restore last healthy state")
                    .on_hover_text("Go back to the weights kept before the trouble started; the rate stays")
                    .clicked()
                {
                    out.send(Command::RestoreHealthy { halve_lr: false });
                }
                if ui
                    .button("Restore and halve the rate")
                    .on_hover_text("Go back to the last healthy weights and continue at half the learning rate")
                    .clicked()
                {
                    out.send(Command::RestoreHealthy { halve_lr: true });
                }
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(Dismiss::Divergence);
                }
            });
        });
    }
    for (index, message) in view.messages.iter().enumerate().rev().take(3) {
        let colour = match message.severity {
            Severity::Info => Color32::from_rgb(60, 120, 70),
            Severity::Warning => Color32::from_rgb(150, 110, 30),
            Severity::Error => Color32::from_rgb(160, 50, 45),
        };
        egui::Frame::new().fill(colour).inner_margin(4.0).show(ui, |ui| {
            // Long messages (paths, commands to copy) wrap rather than run off the window.
            ui.horizontal_wrapped(|ui| {
                ui.add(egui::Label::new(RichText::new(&message.text).color(Color32::WHITE)).wrap());
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(Dismiss::Message(index));
                }
            });
        });
    }
    dismiss
}
