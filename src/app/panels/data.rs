//! The data panel: what the net trains on, and opening other data — a folder or file typed, picked with the
//! native dialog or dropped on the window — loaded on a thread of its own so training and painting go on; plus
//! the user's own image as the probe.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Instant;

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::panels::{Pick, header, spawn_dialog};
use crate::app::view::TrainingView;
use crate::data::{self, DataSplit, ImageShape, LoadOptions};

const HELP: &str = "Train on your own data: a folder of IDX files (MNIST, Fashion-MNIST, EMNIST, gzip or raw), \
CIFAR-10 / CIFAR-100 binary batches, or a folder of images with one sub-folder per class (PNG, JPEG, BMP, GIF, \
WebP; train/ and test/ sub-folders are used when present). Type the path, Browse, or drop a folder on the \
window. It loads in the background: the current run goes on, and if the data cannot be used the message says \
which file and why. The net is rebuilt for the new image size, colour and class count. Files that are not \
usable images are skipped and listed. Drop a single image (or use Probe image…) to see how the net classifies it.";

/// File extensions taken as a single image to probe (anything else dropped is opened as data).
const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif"];

/// What the panel asks the app to do.
#[derive(Debug)]
pub enum DataAction {
    /// Train on this data (announce what was skipped, if anything).
    Load {
        /// The loaded data.
        data: Arc<DataSplit>,
        /// A line about what was loaded, skipped and decided.
        summary: String,
    },
    /// Use these pixels (in the current data's shape) as the probe.
    Probe {
        /// C×H×W bytes.
        pixels: Vec<u8>,
        /// The file name.
        name: String,
    },
    /// Loading failed: the message names the file and the fault.
    Failed(String),
}

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
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    browse: Option<(Receiver<Option<PathBuf>>, Pick)>,
    #[serde(skip)]
    job: Option<(Receiver<DataAction>, PathBuf, Instant)>,
}

impl DataPanel {
    /// Whether a load is under way.
    pub fn loading(&self) -> bool {
        self.job.is_some()
    }

    /// Opens `path` as the user dropped it: a single image becomes the probe, anything else is loaded as data.
    pub fn open_dropped(&mut self, ctx: &egui::Context, path: &Path, shape: ImageShape) {
        let is_image = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image {
            self.probe(ctx, path.to_path_buf(), shape);
        } else {
            self.path = path.display().to_string();
            self.load(ctx, path.to_path_buf());
        }
    }

    /// Starts loading `path` as a data set on a loader thread.
    pub fn load(&mut self, ctx: &egui::Context, path: PathBuf) {
        let options = LoadOptions {
            classes: None,
            seed: 1,
            image_size: (self.image_size > 0).then_some(self.image_size),
            channels: (self.channels > 0).then_some(self.channels),
        };
        self.spawn(ctx, "convscope-data-loader", path, move |path| match data::load_path(path, &options) {
            Err(error) => DataAction::Failed(error.to_string()),
            Ok(loaded) => {
                let mut lines = vec![format!(
                    "loaded {} from {}: {} train and {} test images of {}, {} classes",
                    loaded.format,
                    path.display(),
                    loaded.split.train.len(),
                    loaded.split.test.len(),
                    loaded.split.train.shape(),
                    loaded.split.train.classes()
                )];
                lines.extend(loaded.report.skipped_summary());
                DataAction::Load { data: Arc::new(loaded.split), summary: lines.join("; ") }
            }
        });
    }

    /// Starts decoding `path` as a probe image of `shape` on a loader thread.
    pub fn probe(&mut self, ctx: &egui::Context, path: PathBuf, shape: ImageShape) {
        self.spawn(ctx, "convscope-probe-loader", path, move |path| match data::load_probe_image(path, shape) {
            Err(error) => DataAction::Failed(error.to_string()),
            Ok(pixels) => {
                let name =
                    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
                DataAction::Probe { pixels, name }
            }
        });
    }

    /// Runs `work` on `path` on a named loader thread; [`DataPanel::poll`] collects its action.
    fn spawn(
        &mut self,
        ctx: &egui::Context,
        thread: &str,
        path: PathBuf,
        work: impl FnOnce(&Path) -> DataAction + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel();
        let waker = ctx.clone();
        let job_path = path.clone();
        let spawned = std::thread::Builder::new().name(thread.into()).spawn(move || {
            tx.send(work(&path)).ok();
            waker.request_repaint();
        });
        if let Err(error) = spawned {
            let (tx, failed) = mpsc::channel();
            tx.send(DataAction::Failed(format!("could not start the loader: {error}"))).ok();
            self.job = Some((failed, job_path, Instant::now()));
        } else {
            self.job = Some((rx, job_path, Instant::now()));
        }
    }

    /// Collects a finished load (never waits).
    pub fn poll(&mut self) -> Option<DataAction> {
        let (rx, path, _) = self.job.as_ref()?;
        let action = match rx.try_recv() {
            Ok(action) => action,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => {
                DataAction::Failed(format!("loading {} stopped unexpectedly", path.display()))
            }
        };
        self.job = None;
        Some(action)
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView) {
        header(ui, "Data", &mut self.help, HELP);
        if let Some((rx, pick)) = &self.browse {
            match rx.try_recv() {
                Ok(picked) => {
                    let pick = *pick;
                    self.browse = None;
                    if let Some(path) = picked {
                        match pick {
                            Pick::Folder => {
                                self.path = path.display().to_string();
                                self.load(ui.ctx(), path);
                            }
                            Pick::File => self.open_dropped(ui.ctx(), &path, view.input),
                        }
                    }
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.browse = None,
            }
        }
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
            let busy = self.job.is_some();
            if ui.add_enabled(!busy && !self.path.trim().is_empty(), egui::Button::new("Open")).clicked() {
                let path = PathBuf::from(self.path.trim());
                self.load(ui.ctx(), path);
            }
        });
        ui.horizontal(|ui| {
            let browsing = self.browse.is_some() || self.job.is_some();
            if ui.add_enabled(!browsing, egui::Button::new("Open data…")).on_hover_text("Pick a data folder with the system dialog").clicked() {
                self.browse = Some((spawn_dialog(ui.ctx().clone(), "Open data", &self.path, Pick::Folder), Pick::Folder));
            }
            if ui.add_enabled(!browsing, egui::Button::new("Probe image…")).on_hover_text("Pick one image to classify: it is resized and converted like the training data and becomes the probe").clicked() {
                self.browse = Some((spawn_dialog(ui.ctx().clone(), "Probe image", &self.path, Pick::File), Pick::File));
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
        });
        if let Some((_, path, started)) = &self.job {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(
                    RichText::new(format!("loading {} ({:.0} s)…", path.display(), started.elapsed().as_secs_f32()))
                        .small(),
                );
            });
        }
    }
}
