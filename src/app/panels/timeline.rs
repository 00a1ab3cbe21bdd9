//! The timeline under the toolbar: a slider over the run's recorded snapshots that moves every panel (filters,
//! gradients, activation maps and curves, layer ranges) to that step, with a cursor on the plots over time;
//! ← and → step through them and Live returns; Fork here forks arm B from the step shown. Training goes on
//! meanwhile.

use eframe::egui::{self, RichText};

use crate::app::outbox::{Outbox, Show};
use crate::app::panels::Panel;
use crate::app::view::TrainingView;
use crate::protocol::Command;

/// The timeline bar.
#[derive(Debug, Default)]
pub struct TimelinePanel;

/// Where ← (`-1`) or → (`+1`) goes from what `view` shows: through the recorded snapshots, and past the last
/// one back to live.
pub fn step_through(view: &TrainingView, delta: i64) -> Option<Show> {
    let count = view.timeline.points.len();
    if count == 0 {
        return None;
    }
    let now = view.timeline.shown.unwrap_or(count) as i64;
    let next = (now + delta).clamp(0, count as i64) as usize;
    (next != now as usize).then_some(if next == count { Show::Live } else { Show::Recorded(next) })
}

impl Panel for TimelinePanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let points = &view.timeline.points;
        if points.is_empty() {
            return;
        }
        let live = points.len();
        let shown = view.timeline.shown.unwrap_or(live);
        ui.horizontal(|ui| {
            ui.label("Timeline").on_hover_text(
                "Every recorded snapshot of this run: drag to move every panel to that step (← and → step \
                 through them); training goes on meanwhile. Live shows the newest again.",
            );
            if ui.add_enabled(shown > 0, egui::Button::new("‹").small()).on_hover_text("Earlier snapshot (←)").clicked()
                && let Some(show) = step_through(view, -1)
            {
                out.show(show);
            }
            let mut index = shown;
            ui.spacing_mut().slider_width = (ui.available_width() - 260.0).max(120.0);
            let slider = ui.add(egui::Slider::new(&mut index, 0..=live).show_value(false));
            slider.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Slider, true, "Timeline"));
            if index != shown {
                out.show(if index == live { Show::Live } else { Show::Recorded(index) });
            }
            if ui
                .add_enabled(shown < live, egui::Button::new("›").small())
                .on_hover_text("Later snapshot (→)")
                .clicked()
                && let Some(show) = step_through(view, 1)
            {
                out.show(show);
            }
            match view.timeline.shown_step() {
                Some(step) => {
                    let text =
                        RichText::new(format!("showing step {step}")).color(egui::Color32::from_rgb(230, 190, 90));
                    ui.label(text);
                    if ui.button("Live").on_hover_text("Show the newest snapshot again").clicked() {
                        out.show(Show::Live);
                    }
                    let fork = ui.add_enabled(view.arm_b.is_none(), egui::Button::new("Fork here"));
                    if fork
                        .on_hover_text(
                            "Arm B becomes the run as it was at this step (weights, optimiser state, batch order), \
                             rebuilt from the nearest copy kept before it. Change B's settings, then Play: B catches \
                             up with A on the same batches while A waits, and both train on in lockstep",
                        )
                        .clicked()
                    {
                        out.send(Command::ForkAt { step, changes: Vec::new() });
                    }
                }
                None => {
                    ui.label(RichText::new(format!("live · {live} recorded")).small());
                }
            }
        });
    }
}
