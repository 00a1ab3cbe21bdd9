//! The run panel: save a checkpoint of the run (Ctrl+S) into its run folder, or open one (Ctrl+O) to continue
//! exactly where it stopped; says where the newest checkpoint is.

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::browse::{Browse, Pick};
use crate::app::panels::{Panel, header};
use crate::app::view::TrainingView;
use crate::history::HISTORY_FILE;
use crate::protocol::Command;

const HELP: &str = "A checkpoint holds everything the run needs to go on exactly: the weights, the optimiser's \
state (momentum, Adam's moments), the step, the order of the coming batches, the random generators and every \
setting, live changes included. Save (Ctrl+S) writes one into this run's folder; one is also written every few \
minutes of training and when the window closes, so a crash loses at most a few minutes. Open (Ctrl+O) continues \
a checkpoint on the data loaded now: its net replaces the running one, and its next steps are exactly the ones it \
would have taken. `convscope train --resume FILE` does the same without a window.";

/// The run panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunPanel {
    /// The checkpoint file in the text field.
    pub path: String,
    #[serde(skip)]
    browse: Browse,
    #[serde(skip)]
    help: bool,
}

impl RunPanel {
    /// Opens the file dialog for a checkpoint (Ctrl+O).
    pub fn ask_open(&mut self, ctx: &egui::Context) {
        if !self.browse.busy() {
            self.browse.open(ctx, "Open checkpoint", &self.path, Pick::File);
        }
    }

    fn open(&mut self, path: PathBuf, out: &mut Outbox) {
        self.path = path.display().to_string();
        out.send(Command::OpenCheckpoint(path));
    }
}

impl Panel for RunPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Run", &mut self.help, HELP);
        if let Some((path, _)) = self.browse.picked() {
            self.open(path, out);
        }
        ui.horizontal_wrapped(|ui| {
            let has_net = !view.layers.is_empty() && !view.reset_pending;
            let save = ui.add_enabled(has_net, egui::Button::new("Save checkpoint"));
            if save.on_hover_text("Write a checkpoint into this run's folder (Ctrl+S)").clicked() {
                out.send(Command::SaveCheckpoint(None));
            }
            let open = ui.add_enabled(!self.browse.busy(), egui::Button::new("Open checkpoint…"));
            if open.on_hover_text("Continue a checkpoint where it stopped (Ctrl+O)").clicked() {
                self.ask_open(ui.ctx());
            }
        });
        ui.horizontal(|ui| {
            let field = egui::TextEdit::singleline(&mut self.path)
                .hint_text("checkpoint file (.ckpt)")
                .desired_width(ui.available_width() - 100.0);
            ui.add(field).on_hover_text("Type a checkpoint's path and press Continue (or use Open checkpoint…)");
            let go = ui.add_enabled(!self.path.trim().is_empty(), egui::Button::new("Continue"));
            if go.on_hover_text("Continue the run in this checkpoint, where it stopped").clicked() {
                self.open(PathBuf::from(self.path.trim()), out);
            }
        });
        self.browse.note_ui(ui);
        if let Some(dir) = &view.runs_dir {
            runs_menu(ui, dir, view.current_run.as_deref(), out);
        }
        if let Some((step, path)) = &view.last_saved {
            let text = RichText::new(format!("last saved: step {step}, {}", path.display())).small();
            ui.add(egui::Label::new(text).wrap());
        }
    }
}

/// The recorded runs in `dir`, newest first (folder names are their start times), with their history's size.
pub fn recorded_runs(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut runs: Vec<(PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|run| std::fs::metadata(run.join(HISTORY_FILE)).ok().map(|m| (run, m.len())))
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    runs
}

/// "Open run…": the runs folder's recorded runs, newest first (the one training now left out); choosing one
/// replays it.
fn runs_menu(ui: &mut egui::Ui, dir: &Path, current: Option<&Path>, out: &mut Outbox) {
    let response = ui.menu_button("Open run…", |ui| {
        // The run training now is not a recorded run yet.
        let runs: Vec<(PathBuf, u64)> =
            recorded_runs(dir).into_iter().filter(|(run, _)| Some(run.as_path()) != current).collect();
        if runs.is_empty() {
            ui.label(format!("no recorded runs in {} yet", dir.display()));
        }
        for (run, bytes) in runs.into_iter().take(30) {
            let name = run.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let label = format!("{name} · {:.1} MB", bytes as f64 / 1e6);
            if ui.button(label).on_hover_text(run.display().to_string()).clicked() {
                out.open_run(run);
                ui.close();
            }
        }
    });
    response.response.on_hover_text(format!(
        "Replay a recorded run from {} (newest first): every panel from its record, the timeline over its \
         snapshots; Play continues it from its newest checkpoint. The run training now stops (and is saved).",
        dir.display()
    ));
}
