//! The data layer's one error type: every message names the file and says what was wrong.

use std::io;
use std::path::PathBuf;

use crate::arch::ImageShape;

/// Everything that can go wrong while loading or slicing data; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error("{file}: corrupt gzip stream: {source} (re-download the file, or test it with `gzip -t`)")]
    Gzip { file: String, source: io::Error },

    #[error("{file}: the file is empty")]
    Empty { file: String },

    #[error(
        "{file}: bad magic number 0x{found:08x}: an IDX file starts with two zero bytes, a type byte (0x08 = u8) and a dimension count — is this really an IDX file?"
    )]
    BadMagic { file: String, found: u32 },

    #[error(
        "{file}: IDX element type 0x{type_byte:02x} ({type_name}) is not supported: only unsigned bytes (0x08) are"
    )]
    UnsupportedType { file: String, type_byte: u8, type_name: &'static str },

    #[error("{file}: the header declares {count} dimensions, but a u8 IDX file has 1 to 4 (labels have 1, images 3)")]
    BadDimCount { file: String, count: usize },

    #[error("{file}: dimension {axis} of {dims:?} is zero, so the file holds no items")]
    ZeroDimension { file: String, axis: usize, dims: Vec<usize> },

    #[error(
        "{file}: the header dimensions {dims:?} multiply to more bytes than this machine can address — the header is corrupt"
    )]
    Overflow { file: String, dims: Vec<usize> },

    #[error("{file}: truncated header: it needs {expected} bytes but the file holds {actual}")]
    HeaderTruncated { file: String, expected: usize, actual: usize },

    #[error("{file}: truncated: the header promises {expected} bytes of data but the file holds {actual}")]
    Truncated { file: String, expected: u64, actual: u64 },

    #[error("{file}: trailing data: the header promises {expected} bytes of data but the file holds at least {actual}")]
    TrailingData { file: String, expected: u64, actual: u64 },

    #[error("{file}: dimensions {dims:?} have the wrong rank: expected {expected}")]
    BadRank { file: String, dims: Vec<usize>, expected: &'static str },

    #[error("{images_file} has {images} images but {labels_file} has {labels} labels")]
    CountMismatch { images_file: String, images: usize, labels_file: String, labels: usize },

    #[error(
        "{test_file} holds {test} images but {train_file} holds {train}: train and test images must be the same size"
    )]
    ShapeMismatch { train_file: String, train: ImageShape, test_file: String, test: ImageShape },

    #[error(
        "{file}: label {value} at index {index} is out of range for {classes} classes (if the data set has more, set the class count: --classes K, or classes in the window's Data panel)"
    )]
    LabelOutOfRange { file: String, index: usize, value: u8, classes: usize },

    #[error(
        "{file}: labels run from 0 to {max_label} but class values {missing} never occur, so the class count is unclear — set it with --classes K (K > {max_label}), or classes in the window's Data panel"
    )]
    NotDense { file: String, max_label: u8, missing: String },

    #[error(
        "{file}: holds no labels, so the class count cannot be inferred — set it with --classes K, or classes in the window's Data panel"
    )]
    NoLabels { file: String },

    #[error("{file}: {classes} classes is out of range: labels are single bytes, so use 1 to 256 (--classes K)")]
    BadClassCount { file: String, classes: usize },

    #[error("{}: missing {missing}; {found}", dir.display())]
    MissingFiles { dir: PathBuf, missing: String, found: String },

    #[error("{source_name}: image shape {shape} holds no pixels or too many to address")]
    BadShape { source_name: String, shape: ImageShape },

    #[error("{source_name}: {image_bytes} image bytes do not make {labels} images of {pixels} pixels (one per label)")]
    ImageBytesMismatch { source_name: String, image_bytes: usize, labels: usize, pixels: usize },

    #[error("{source_name}: {names} class names were given for {classes} classes")]
    ClassNamesMismatch { source_name: String, names: usize, classes: usize },

    #[error("{source_name}: index {index} is out of range for a data set of {len} items")]
    IndexOutOfRange { source_name: String, index: usize, len: usize },

    #[error("{source_name}: test fraction {fraction} must lie strictly between 0 and 1")]
    BadFraction { source_name: String, fraction: f64 },

    #[error(
        "{source_name}: splitting {len} items with test fraction {fraction} leaves {train} train and {test} test items, but both parts need at least one"
    )]
    EmptySplit { source_name: String, len: usize, fraction: f64, train: usize, test: usize },

    #[error(
        "{file}: {len} bytes is not a whole number of {record}-byte {kind} records ({layout}), so the file is cut short or is not a {kind} binary batch — re-download it"
    )]
    CifarRecordSize { file: String, len: u64, record: usize, kind: &'static str, layout: &'static str },

    #[error("{file}: cannot use it as a class-name list: {reason} (expected one class name per line)")]
    BadClassNames { file: String, reason: String },

    #[error(
        "{file} lists {names} class names but {classes} classes were asked for (--classes K): drop the option or fix the file"
    )]
    ClassNamesFileMismatch { file: String, names: usize, classes: usize },

    #[error(
        "{file}: label {value} at index {index} is below {offset}: EMNIST {split} labels start at {offset}, so the file is corrupt or belongs to another split"
    )]
    LabelBelowOffset { file: String, index: usize, value: u8, offset: u8, split: &'static str },

    #[error(
        "{}: holds several EMNIST splits ({splits}): pass the path of one split's train-images file instead, e.g. {}",
        dir.display(),
        example.display()
    )]
    EmnistAmbiguous { dir: PathBuf, splits: String, example: PathBuf },

    #[error(
        "{}: no usable class: an image folder needs one sub-folder per class holding PNG, JPEG, BMP, GIF or WebP images, but {found}",
        dir.display()
    )]
    NoUsableClass { dir: PathBuf, found: String },

    #[error(
        "{}: {classes} class folders hold images, but labels are single bytes so at most 256 classes fit — merge or remove class folders",
        dir.display()
    )]
    TooManyClasses { dir: PathBuf, classes: usize },

    #[error(
        "{}: {found} class folders hold images ({names}) but {classes} classes were asked for (--classes K): drop the option or add or remove class folders",
        dir.display()
    )]
    ClassFolderMismatch { dir: PathBuf, found: usize, names: String, classes: usize },

    #[error(
        "{}: a single image is not a data set: pass a folder with one sub-folder of images per class (to classify one image, open it as a probe)",
        path.display()
    )]
    SingleImage { path: PathBuf },

    #[error(
        "{}: not a recognised data set ({found}); expected an IDX folder (train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], or EMNIST's emnist-<split>-… names), a CIFAR binary folder or .bin file, or a folder with one sub-folder of images per class",
        path.display()
    )]
    UnknownFormat { path: PathBuf, found: String },

    #[error("{}: holds no data set itself, but its sub-folder {} looks like {format}: pass that folder instead", dir.display(), inner.display())]
    NestedDataSet { dir: PathBuf, inner: PathBuf, format: String },

    #[error(
        "{}: stopped listing after {limit} files and folders, far more than an image data set here holds — pass the folder that holds the class folders",
        dir.display()
    )]
    TooManyEntries { dir: PathBuf, limit: usize },

    #[error(
        "{}: holds a single class ({name}), but a classifier needs at least two — {fix}",
        path.display()
    )]
    OneClass { path: PathBuf, name: String, fix: &'static str },

    #[error(
        "{}: {detail} — use a smaller --image-size, or raise the budget with --max-memory if this machine has more free",
        dir.display()
    )]
    TooLargeForMemory { dir: PathBuf, detail: String },

    #[error("{option} {value} is out of range: use {allowed}")]
    BadOption { option: &'static str, value: usize, allowed: &'static str },

    #[error("{}: cannot use the image: {reason}", path.display())]
    BadImage { path: PathBuf, reason: String },

    #[error("{}: line {line}: {problem}", path.display())]
    TargetLine { path: PathBuf, line: usize, problem: String },

    #[error(
        "{}: gives no target for {missing} of the {total} examples (indices {listed}) — every example needs one row `index,target` (indices count the training part first, then the test part)",
        path.display()
    )]
    TargetsMissing { path: PathBuf, missing: usize, total: usize, listed: String },
}
