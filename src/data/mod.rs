//! Labelled image data sets: the [`Dataset`] type, loaders for IDX folders (MNIST, Fashion-MNIST, EMNIST),
//! CIFAR batches and image folders, format detection, the embedded MNIST subset, and batching. Each loader
//! lives in its own module; this file only names them.

pub mod batch;
pub mod cifar;
pub mod dataset;
mod decode;
pub mod detect;
pub mod emnist;
pub mod error;
pub mod folder;
#[cfg(test)]
mod fuzz;
pub mod idx;
pub mod idx_dir;
mod listing;
pub mod report;
pub mod targets;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use crate::arch::ImageShape;
pub use cifar::{CifarArrays, CifarKind, load_cifar_dir, load_cifar_file, parse_cifar_bytes, read_cifar_file};
pub use dataset::{DataSplit, Dataset, LoadOptions, default_class_names, infer_classes};
pub use detect::{DataFormat, Loaded, detect_format, load_path};
pub use emnist::EmnistSplit;
pub use error::DataError;
pub use folder::{load_image_folder, load_probe_image};
pub use idx::{IdxArray, parse_idx_bytes, read_idx_file};
pub use idx_dir::{DEFAULT_TEST_FRACTION, IdxLayout, choose_idx_layout, embedded_mnist, load_idx_dir, load_idx_layout};
pub use report::{LoadReport, SkipReason, Skipped};
