//! The worker's loader threads: data sets and probe images are read and decoded here, off the training
//! thread, so neither training nor the window ever waits for a disk. The result is handed back through a
//! callback (the worker posts it to its own inbox).

use std::path::PathBuf;

use crate::arch::ImageShape;
use crate::data::{self, DataError, LoadOptions};
use crate::protocol::DataRequest;

/// What a loader thread produced.
pub(crate) enum LoadResult {
    /// A data set, or why it could not be loaded.
    Data(Box<Result<data::Loaded, DataError>>),
    /// A probe image's pixels in the data's shape, or why it could not be used.
    Probe {
        /// The file's name, for display.
        name: String,
        /// C×H×W bytes.
        pixels: Result<Vec<u8>, DataError>,
    },
}

/// Loads `request` on a thread named `convscope-data-loader`, the train/test split seeded with `seed`.
pub(crate) fn load_data(
    request: DataRequest,
    seed: u64,
    deliver: impl FnOnce(LoadResult) + Send + 'static,
) -> std::io::Result<()> {
    let options =
        LoadOptions { classes: request.classes, seed, image_size: request.image_size, channels: request.channels };
    spawn("convscope-data-loader", move || {
        deliver(LoadResult::Data(Box::new(data::load_path(&request.path, &options))))
    })
}

/// Decodes `path` as one image of `shape` on a thread named `convscope-probe-loader`.
pub(crate) fn load_probe(
    path: PathBuf,
    shape: ImageShape,
    deliver: impl FnOnce(LoadResult) + Send + 'static,
) -> std::io::Result<()> {
    spawn("convscope-probe-loader", move || {
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        deliver(LoadResult::Probe { name, pixels: data::load_probe_image(&path, shape) });
    })
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(work).map(|_| ())
}
