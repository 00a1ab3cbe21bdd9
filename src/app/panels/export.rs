//! The export panel: the folder exported images go to, with Browse… and the export button.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, Pick, spawn_dialog};
use crate::app::view::TrainingView;

/// The export panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct ExportPanel {
    /// Folder the exports go to.
    pub export_dir: String,
    #[serde(skip)]
    browse: Option<Receiver<Option<PathBuf>>>,
}

impl Default for ExportPanel {
    fn default() -> Self {
        let dir = std::env::current_dir()
            .map(|d| d.join("convscope-export"))
            .unwrap_or_else(|_| PathBuf::from("convscope-export"));
        ExportPanel { export_dir: dir.display().to_string(), browse: None }
    }
}

impl Panel for ExportPanel {
    fn ui(&mut self, ui: &mut egui::Ui, _view: &TrainingView, out: &mut Outbox) {
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
            out.export();
        }
    }
}
