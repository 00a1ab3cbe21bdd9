//! The data flags `train` and the window share, and loading them for a headless run.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::failure::Failure;
use crate::data::{self, DataSplit, LoadOptions};
use crate::protocol::DataRequest;

/// Where the data comes from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataFlags {
    /// Your data (--image-size, --channels and --classes describe it, so they need it): a folder of IDX files (MNIST, Fashion-MNIST, EMNIST), CIFAR-10/100 binary batches, or an image
    /// folder with one sub-folder per class. Default: the embedded MNIST subset.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Image folders: resize every image to N×N (default: the most common size, at most 64).
    #[arg(long, value_name = "N", requires = "data")]
    pub image_size: Option<usize>,
    /// Image folders: 1 for grey, 3 for RGB (default: 3 when any image is in colour).
    #[arg(long, value_name = "C", requires = "data")]
    pub channels: Option<usize>,
    /// Number of classes, for label files without a standard name whose labels are not 0..K−1.
    #[arg(long, value_name = "K", requires = "data")]
    pub classes: Option<usize>,
    /// Regression targets for --task regression:file: a CSV of `index,target` rows (a header is optional),
    /// one per example, indices counting the training part first, then the test part (the embedded subset:
    /// 0–7999 train, 8000–9999 test); for an image folder also `file,target`, the image named by its path in
    /// the folder (e.g. `3/img_12.png`).
    #[arg(long, value_name = "FILE.csv")]
    pub targets: Option<PathBuf>,
}

impl DataFlags {
    /// The window's request for `--data`, if given.
    pub fn request(&self) -> Option<DataRequest> {
        let path = self.data.clone()?;
        Some(DataRequest { path, image_size: self.image_size, channels: self.channels, classes: self.classes })
    }

    /// Loads `--data` (whatever its format), or the embedded subset; reports what was loaded and skipped on
    /// stderr. The train/test split of a data set without a test part is seeded with `seed`.
    pub fn load(&self, seed: u64) -> Result<DataSplit, Failure> {
        let mut split = match &self.data {
            None => embedded()?,
            Some(path) => {
                let options =
                    LoadOptions { classes: self.classes, seed, image_size: self.image_size, channels: self.channels };
                let loaded = data::load_path(path, &options)
                    .with_context(|| format!("could not load --data {}", path.display()))
                    .map_err(Failure::bad_input)?;
                report(&loaded, path);
                loaded.split
            }
        };
        if let Some(targets) = &self.targets {
            data::targets::attach_targets(&mut split, targets)
                .context("could not read --targets")
                .map_err(Failure::bad_input)?;
        }
        Ok(split)
    }
}

/// The embedded MNIST subset (damaged only if the binary is).
pub fn embedded() -> Result<DataSplit, Failure> {
    data::embedded_mnist().context("the embedded MNIST subset is damaged").map_err(Failure::internal)
}

fn report(loaded: &data::Loaded, path: &Path) {
    if let Some(summary) = loaded.report.skipped_summary() {
        eprintln!("convscope: {summary}");
    }
    for note in &loaded.report.notes {
        eprintln!("convscope: {note}");
    }
    eprintln!("convscope: {}", loaded.describe(path));
}
