//! The export panel: the folder exported images go to, with Browse… and the export button.

use std::path::PathBuf;

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::browse::{Browse, Pick};
use crate::app::panels::{Panel, header};
use crate::app::view::TrainingView;

const HELP: &str = "Export writes PNG files into the folder: each conv layer's filter grid and weight-gradient \
grid, each filter on its own, and the probe's activation maps of every layer. Each picture carries a caption \
(layer, what, step, activation) and its colour scale; small ones are enlarged to at least 320 pixels across. \
Names follow one scheme, e.g. conv1_filters_step000300_relu.png, the same as `convscope train` writes. \
Timelapse GIF writes the layer shown in the filters panel over every snapshot recorded so far, filters beside \
their gradients with the step in the corner, as conv1_timelapse.gif.";

/// The export panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct ExportPanel {
    /// Folder the exports go to.
    pub export_dir: String,
    #[serde(skip)]
    browse: Browse,
    #[serde(skip)]
    help: bool,
    /// A timelapse is being written (set by the window each frame).
    #[serde(skip)]
    pub timelapse_busy: bool,
}

impl Default for ExportPanel {
    fn default() -> Self {
        let dir = std::env::current_dir()
            .map(|d| d.join("convscope-export"))
            .unwrap_or_else(|_| PathBuf::from("convscope-export"));
        ExportPanel {
            export_dir: dir.display().to_string(),
            browse: Browse::default(),
            help: false,
            timelapse_busy: false,
        }
    }
}

impl Panel for ExportPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Export", &mut self.help, HELP);
        if let Some((path, _)) = self.browse.picked() {
            self.export_dir = path.display().to_string();
        }
        ui.label("Export folder");
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut self.export_dir).desired_width(ui.available_width() - 95.0))
                .on_hover_text("Where exported PNGs go; created if missing. Type a path, or use Browse….");
            if ui
                .add_enabled(!self.browse.busy(), egui::Button::new("Browse…"))
                .on_hover_text("Pick the folder with the system dialog (where one is available)")
                .clicked()
            {
                self.browse.open(ui.ctx(), "Export folder", &self.export_dir, Pick::Folder);
            }
        });
        self.browse.note_ui(ui);
        if ui.button("Export images").on_hover_text("Save the filter grid, the gradient grid, the activation maps and each filter as PNG, named by layer, step and activation").clicked() {
            out.export();
        }
        let recorded = view.timeline.history.is_some() && view.timeline.points.len() >= 2;
        let label = if self.timelapse_busy { "Writing the timelapse…" } else { "Timelapse GIF" };
        let button = ui.add_enabled(recorded && !self.timelapse_busy, egui::Button::new(label)).on_hover_text(
            "Write the shown conv layer's filters and weight gradients over the recorded snapshots as an animated \
             GIF into the export folder (training goes on meanwhile); the same as `convscope timelapse RUN_DIR`",
        );
        if button.clicked() {
            out.timelapse();
        }
    }
}
