//! The data panel: what the net trains on, and opening other data — a folder or file typed, picked with the
//! native dialog or dropped on the window. The worker loads it on a thread of its own, so training and
//! painting go on; the panel shows the load under way and can cancel it. Also the user's own image as the
//! probe.

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::browse::{Browse, Pick};
use crate::app::panels::{Panel, header};
use crate::app::view::TrainingView;
use crate::config::TrainConfig;
use crate::protocol::{Command, DataRequest};

const HELP: &str = "Train on your own data: a folder of IDX files (MNIST, Fashion-MNIST, EMNIST, gzip or raw), \
CIFAR-10 / CIFAR-100 binary batches, or a folder of images with one sub-folder per class (PNG, JPEG, BMP, GIF, \
WebP; train/ and test/ sub-folders are used when present). Type the path, Browse, or drop a folder on the \
window. It loads in the background: the current run goes on, and if the data cannot be used the message says \
which file and why. The net is rebuilt for the new image size, colour and class count. Files that are not \
usable images are skipped and listed. Drop a single image (or use Probe image…) to see how the net classifies it.";

/// File extensions taken as a single image to probe (anything else dropped is opened as data).
const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif"];

/// The data panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DataPanel {
    /// The path in the text field.
    pub path: String,
    /// Image folders: side of the square images (0: the most common size, at most 64).
    pub image_size: usize,
    /// Image folders: 1 grey, 3 RGB, 0 from the images.
    pub channels: usize,
    /// Class count for label files whose labels are not 0..K−1 (0: from the data).
    pub classes: usize,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    browse: Browse,
}

impl DataPanel {
    /// Opens `path` as the user dropped it: a single image becomes the probe, anything else is loaded as data.
    pub fn open_dropped(&mut self, path: &Path, view: &TrainingView, out: &mut Outbox) {
        let is_image = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image {
            out.send(Command::LoadProbeImage(path.to_path_buf()));
        } else {
            self.path = path.display().to_string();
            self.load(path.to_path_buf(), view, out);
        }
    }

    /// Asks the worker to load `path` as a data set and train a net on it like the running one.
    pub fn load(&mut self, path: PathBuf, view: &TrainingView, out: &mut Outbox) {
        let request = DataRequest {
            path,
            image_size: (self.image_size > 0).then_some(self.image_size),
            channels: (self.channels > 0).then_some(self.channels),
            classes: (self.classes > 0).then_some(self.classes),
        };
        let config = TrainConfig { probe_index: 0, ..view.live_config() };
        out.send(Command::LoadData { request, config: Box::new(config) });
    }

    fn picked(&mut self, view: &TrainingView, out: &mut Outbox) {
        match self.browse.picked() {
            Some((path, Pick::Folder)) => {
                self.path = path.display().to_string();
                self.load(path, view, out);
            }
            Some((path, Pick::File)) => self.open_dropped(&path, view, out),
            None => {}
        }
    }
}

impl Panel for DataPanel {
    /// Draws the panel.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Data", &mut self.help, HELP);
        self.picked(view, out);
        ui.label(
            RichText::new(format!(
                "{}: {} train / {} test, {}, {} classes",
                view.data_source,
                view.train_len,
                view.test_len,
                view.input,
                view.class_names.len()
            ))
            .small(),
        );
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("folder or file to train on")
                    .desired_width(ui.available_width() - 60.0),
            )
            .on_hover_text("An IDX folder, CIFAR binary batches, or a folder with one sub-folder of images per class");
            let busy = view.loading.is_some();
            if ui.add_enabled(!busy && !self.path.trim().is_empty(), egui::Button::new("Open")).clicked() {
                let path = PathBuf::from(self.path.trim());
                self.load(path, view, out);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let browsing = self.browse.busy() || view.loading.is_some();
            if ui.add_enabled(!browsing, egui::Button::new("Open data…")).on_hover_text("Pick a data folder with the system dialog").clicked() {
                self.browse.open(ui.ctx(), "Open data", &self.path, Pick::Folder);
            }
            if ui.add_enabled(!browsing, egui::Button::new("Probe image…")).on_hover_text("Pick one image to classify: it is resized and converted like the training data and becomes the probe").clicked() {
                self.browse.open(ui.ctx(), "Probe image", &self.path, Pick::File);
            }
            ui.add(egui::DragValue::new(&mut self.image_size).range(0..=256).prefix("size ").custom_formatter(|v, _| if v == 0.0 { "auto".into() } else { format!("{v}") }))
                .on_hover_text("Image folders: resize to N×N (auto: the most common size, at most 64)");
            let channels = egui::ComboBox::from_id_salt("channels").width(60.0).selected_text(match self.channels { 1 => "grey", 3 => "RGB", _ => "auto" }).show_ui(ui, |ui| {
                ui.selectable_value(&mut self.channels, 0, "auto");
                ui.selectable_value(&mut self.channels, 1, "grey");
                ui.selectable_value(&mut self.channels, 3, "RGB");
            }).response;
            channels.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Channels"));
            channels.on_hover_text("Image folders: grey or colour (auto: colour when any image is)");
            ui.add(egui::DragValue::new(&mut self.classes).range(0..=256).prefix("classes ").custom_formatter(|v, _| if v == 0.0 { "auto".into() } else { format!("{v}") }))
                .on_hover_text("The class count, for label files whose labels are not 0..K−1 (auto: from the data)");
        });
        self.browse.note_ui(ui);
        if let Some(what) = &view.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new(format!("{what}…")).small());
                if ui
                    .small_button("Cancel")
                    .on_hover_text("Stop waiting for this load; training goes on as it is")
                    .clicked()
                {
                    out.send(Command::CancelLoad);
                }
            });
        }
    }
}
