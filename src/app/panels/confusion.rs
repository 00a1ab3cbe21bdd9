//! The confusion panel: the test split's confusion matrix at the last evaluation (counts, or each row as shares
//! of its class), colour-coded; a click on a cell shows the images of that mistake, and a click on one of them
//! makes it the probe.

use eframe::egui::{self, Color32, RichText, Sense};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header};
use crate::app::textures::{self, TextureSlot};
use crate::app::view::TrainingView;
use crate::protocol::{Command, Thumbnail};
use crate::render::colormap;
use crate::snapshot::Confusion;

const HELP: &str = "Rows are the true class of each test image, columns what the net predicted, after the last \
evaluation of the whole test split. The diagonal holds the right answers; everything else is a mistake, and the \
brightest off-diagonal cells are the classes the net confuses most (a 4 taken for a 9). Colours are each row's \
shares, so a rare class is as visible as a common one; Show switches the numbers between counts and row %. Click \
a cell to see up to 8 of its images; click one to make it the probe and watch what the layers make of it.";

/// Largest cell side, in points; cells shrink to fit the panel.
const MAX_CELL: f32 = 30.0;
/// Cells narrower than this carry no number.
const MIN_CELL_WITH_TEXT: f32 = 18.0;

/// The confusion panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfusionPanel {
    /// Numbers as row shares (%) instead of counts.
    pub shares: bool,
    /// The cell whose images are shown: (true class, predicted class).
    #[serde(skip)]
    pub selected: Option<(usize, usize)>,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    examples: Vec<TextureSlot>,
}

impl Panel for ConfusionPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Confusion matrix", &mut self.help, HELP);
        let Some(confusion) = view.confusion.as_deref() else {
            ui.label("Waiting for the first evaluation of the test split…");
            return;
        };
        ui.horizontal(|ui| {
            ui.label(format!("test split after step {}", confusion.step));
            ui.selectable_value(&mut self.shares, false, "counts");
            ui.selectable_value(&mut self.shares, true, "row %");
            if confusion.unscored > 0 {
                let text = format!("{} images with non-finite outputs are in no cell", confusion.unscored);
                ui.label(RichText::new(text).small().color(Color32::from_rgb(220, 80, 80)));
            }
        });
        self.matrix_ui(ui, view, confusion);
        self.examples_ui(ui, view, confusion, out);
    }
}

/// A class's short name for the axes.
fn short_name(view: &TrainingView, class: usize) -> String {
    let name = view.class_names.get(class).cloned().unwrap_or_else(|| class.to_string());
    name.chars().take(4).collect()
}

impl ConfusionPanel {
    /// The grid: predicted classes across, true classes down, one painted cell each.
    fn matrix_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, confusion: &Confusion) {
        let classes = confusion.classes;
        let label_width = 34.0;
        let available = ui.available_width().min(ui.clip_rect().width()) - label_width - 8.0;
        let cell = (available / classes.max(1) as f32).clamp(4.0, MAX_CELL);
        let with_text = cell >= MIN_CELL_WITH_TEXT;
        let size = egui::vec2(label_width + cell * classes as f32, 14.0 + cell * classes as f32);
        let (rect, response) = ui.allocate_exact_size(size, Sense::click());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Table, true, "confusion matrix"));
        let painter = ui.painter_at(rect);
        let origin = rect.min + egui::vec2(label_width, 14.0);
        let font = egui::FontId::monospace((cell * 0.42).clamp(7.0, 11.0));
        for class in 0..classes {
            let offset = (class as f32 + 0.5) * cell;
            if with_text || class % 5 == 0 {
                let name = short_name(view, class);
                let top = egui::pos2(origin.x + offset, rect.min.y + 7.0);
                painter.text(top, egui::Align2::CENTER_CENTER, &name, font.clone(), Color32::GRAY);
                let left = egui::pos2(rect.min.x + label_width - 4.0, origin.y + offset);
                painter.text(left, egui::Align2::RIGHT_CENTER, name, font.clone(), Color32::GRAY);
            }
        }
        for true_class in 0..classes {
            let total = confusion.row_total(true_class).max(1) as f32;
            for predicted in 0..classes {
                let count = confusion.at(true_class, predicted);
                let share = count as f32 / total;
                let min = origin + egui::vec2(predicted as f32 * cell, true_class as f32 * cell);
                let cell_rect = egui::Rect::from_min_size(min, egui::vec2(cell - 1.0, cell - 1.0));
                let [r, g, b] = colormap::sequential(share.sqrt());
                painter.rect_filled(cell_rect, 1.0, Color32::from_rgb(r, g, b));
                if self.selected == Some((true_class, predicted)) {
                    painter.rect_stroke(cell_rect, 1.0, (2.0, Color32::WHITE), egui::StrokeKind::Inside);
                }
                if with_text && count > 0 {
                    let text = if self.shares { format!("{:.0}", 100.0 * share) } else { count.to_string() };
                    let colour = if share > 0.5 { Color32::BLACK } else { Color32::WHITE };
                    painter.text(cell_rect.center(), egui::Align2::CENTER_CENTER, text, font.clone(), colour);
                }
            }
        }
        let cell_at = |pos: egui::Pos2| {
            let at = (pos - origin) / cell;
            (at.x >= 0.0 && at.y >= 0.0 && (at.x as usize) < classes && (at.y as usize) < classes)
                .then_some((at.y as usize, at.x as usize))
        };
        if let Some((true_class, predicted)) = response.hover_pos().and_then(cell_at) {
            let count = confusion.at(true_class, predicted);
            let share = 100.0 * count as f32 / confusion.row_total(true_class).max(1) as f32;
            let names = (short_name(view, true_class), short_name(view, predicted));
            response.clone().on_hover_text(format!(
                "true {} predicted as {}: {count} images ({share:.1} % of the {}s); click to see them",
                names.0, names.1, names.0
            ));
        }
        if response.clicked()
            && let Some(cell) = response.interact_pointer_pos().and_then(cell_at)
        {
            self.selected = Some(cell);
        }
    }

    /// The selected cell's images; a click makes one the probe.
    fn examples_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, confusion: &Confusion, out: &mut Outbox) {
        let Some((true_class, predicted)) =
            self.selected.filter(|&(t, p)| t < confusion.classes && p < confusion.classes)
        else {
            return;
        };
        let names = (short_name(view, true_class), short_name(view, predicted));
        if true_class == predicted {
            ui.label(format!("{} of the {}s were right.", confusion.at(true_class, predicted), names.0));
            return;
        }
        let examples: Vec<_> = confusion.examples_of(true_class, predicted).collect();
        ui.label(format!(
            "true {} predicted as {}: {} images{}",
            names.0,
            names.1,
            confusion.at(true_class, predicted),
            if examples.is_empty() {
                String::new()
            } else {
                format!(", the first {} (click one to probe it)", examples.len())
            }
        ));
        self.examples.resize_with(examples.len(), TextureSlot::default);
        ui.horizontal_wrapped(|ui| {
            for (slot, example) in self.examples.iter_mut().zip(&examples) {
                let key = textures::key(&[view.run_generation, confusion.step, example.test_index as u64]);
                let thumbnail = Thumbnail { shape: view.input, pixels: example.pixels.clone() };
                if let Some(texture) = slot.get(ui.ctx(), "confusion-example", key, || textures::thumbnail(&thumbnail))
                {
                    let image = egui::Image::new(texture)
                        .fit_to_exact_size(egui::vec2(32.0, 32.0))
                        .alt_text(format!("mistaken test image {}", example.test_index));
                    let selected = view.config.probe_index == example.test_index;
                    if ui.add(egui::Button::image(image).selected(selected)).clicked() {
                        out.send(Command::SetProbe(example.test_index));
                    }
                }
            }
        });
    }
}
