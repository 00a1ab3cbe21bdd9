//! Labelled image data sets: loading IDX folders (MNIST, Fashion-MNIST, EMNIST) and the embedded
//! MNIST subset, class counts, train/test splits, and the `DataError` type shared by the whole data
//! layer. CIFAR files, image folders and format detection live in their own modules.

pub mod batch;
pub mod cifar;
pub mod detect;
pub mod emnist;
pub mod folder;
#[cfg(test)]
mod fuzz;
pub mod idx;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use cifar::{CifarArrays, CifarKind, load_cifar_dir, load_cifar_file, parse_cifar_bytes, read_cifar_file};
pub use detect::{DataFormat, LoadOptions, Loaded, detect_format, load_path};
pub use emnist::EmnistSplit;
pub use folder::{LoadReport, SkipReason, Skipped, load_image_folder, load_probe_image};
pub use idx::{IdxArray, parse_idx_bytes, read_idx_file};

/// Share of the training file held out for testing when a folder has no `t10k-…` pair.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// Class count of MNIST and Fashion-MNIST, implied by their standard file names.
const STANDARD_CLASSES: usize = 10;
/// Labels are single bytes, so no data set can use more classes than this.
pub(crate) const MAX_CLASSES: usize = 256;
/// How many folder entries a missing-file error lists before summarising.
const LISTED_ENTRIES: usize = 10;
/// How many missing class values a not-dense error lists before summarising.
const LISTED_MISSING_CLASSES: usize = 20;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const STANDARD_LABEL_FILES: [&str; 2] = [TRAIN_LABELS, TEST_LABELS];

const EMBEDDED_SOURCE: &str = "embedded MNIST subset";
const EMBEDDED_TRAIN_IMAGES: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/train-images-idx3-ubyte.gz"));
const EMBEDDED_TRAIN_LABELS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/train-labels-idx1-ubyte.gz"));
const EMBEDDED_TEST_IMAGES: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/t10k-images-idx3-ubyte.gz"));
const EMBEDDED_TEST_LABELS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/t10k-labels-idx1-ubyte.gz"));

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
        "{file}: label {value} at index {index} is out of range for {classes} classes (use --classes K if the data set has more)"
    )]
    LabelOutOfRange { file: String, index: usize, value: u8, classes: usize },

    #[error(
        "{file}: labels run from 0 to {max_label} but class values {missing} never occur, so the class count is unclear — pass --classes K (K > {max_label}) to set it"
    )]
    NotDense { file: String, max_label: u8, missing: String },

    #[error("{file}: holds no labels, so the class count cannot be inferred — pass --classes K")]
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

    #[error("{option} {value} is out of range: use {allowed}")]
    BadOption { option: &'static str, value: usize, allowed: &'static str },

    #[error("{}: cannot use the image: {reason}", path.display())]
    BadImage { path: PathBuf, reason: String },
}

/// Channel-first size of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Values per image, `channels × height × width` (saturating; `Dataset::new` rejects overflow).
    pub fn pixels(&self) -> usize {
        self.checked_pixels().unwrap_or(usize::MAX)
    }

    fn checked_pixels(&self) -> Option<usize> {
        self.channels.checked_mul(self.height)?.checked_mul(self.width)
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// Images and labels held as raw bytes; images are N×C×H×W so one image is one contiguous slice.
#[derive(Clone)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    shape: ImageShape,
    classes: usize,
    class_names: Vec<String>,
    source: String,
}

/// A training set and the test set it is measured against.
#[derive(Debug, Clone)]
pub struct DataSplit {
    pub train: Dataset,
    pub test: Dataset,
}

impl fmt::Debug for Dataset {
    // The pixel bytes would drown any debug output, so only the summary is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Builds a data set after checking that the images, labels, shape and classes agree.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        shape: ImageShape,
        classes: usize,
        class_names: Vec<String>,
        source: String,
    ) -> Result<Self, DataError> {
        let pixels = shape
            .checked_pixels()
            .filter(|&pixels| pixels > 0)
            .ok_or_else(|| DataError::BadShape { source_name: source.clone(), shape })?;
        if labels.len().checked_mul(pixels) != Some(images.len()) {
            return Err(DataError::ImageBytesMismatch {
                source_name: source,
                image_bytes: images.len(),
                labels: labels.len(),
                pixels,
            });
        }
        check_class_count(classes, &source)?;
        if class_names.len() != classes {
            return Err(DataError::ClassNamesMismatch { source_name: source, names: class_names.len(), classes });
        }
        check_labels(&labels, classes, &source)?;
        Ok(Self { images, labels, shape, classes, class_names, source })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The `index`-th image as C×H×W bytes, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let pixels = self.shape.pixels();
        let start = index.checked_mul(pixels)?;
        self.images.get(start..start.checked_add(pixels)?)
    }

    pub fn label(&self, index: usize) -> Option<u8> {
        self.labels.get(index).copied()
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All images, N×C×H×W bytes.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// Where the data came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Shuffles with `seed` and moves the first `round(len × test_fraction)` items to the test part.
    pub fn split(self, test_fraction: f64, seed: u64) -> Result<DataSplit, DataError> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(DataError::BadFraction { source_name: self.source, fraction: test_fraction });
        }
        let len = self.len();
        // Exact for any realistic length; the clamp keeps a rounding surprise inside 0..=len.
        let test_len = ((len as f64 * test_fraction).round() as usize).min(len);
        let train_len = len - test_len;
        if test_len == 0 || train_len == 0 {
            return Err(DataError::EmptySplit {
                source_name: self.source,
                len,
                fraction: test_fraction,
                train: train_len,
                test: test_len,
            });
        }

        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        // Reordering in place and then moving only the test part out keeps the peak at about 1.2× the
        // images instead of the 2× that copying both parts would cost (CIFAR-10 alone is 150 MB).
        let Self { mut images, mut labels, shape, classes, class_names, source } = self;
        let pixels = shape.pixels();
        gather_in_place(&mut images, &mut labels, &order, pixels, &source)?;
        let test_bytes = test_len.saturating_mul(pixels);
        let test_images = images.drain(..test_bytes.min(images.len())).collect::<Vec<u8>>();
        let test_labels = labels.drain(..test_len.min(labels.len())).collect::<Vec<u8>>();
        images.shrink_to_fit();
        labels.shrink_to_fit();
        let test = Self {
            images: test_images,
            labels: test_labels,
            shape,
            classes,
            class_names: class_names.clone(),
            source: format!("{source} (held-out test split)"),
        };
        let train = Self { images, labels, shape, classes, class_names, source: format!("{source} (train split)") };
        Ok(DataSplit { train, test })
    }
}

/// Reorders items so that item `i` becomes the old item `order[i]`, moving one image at a time
/// around each cycle of the permutation, so no second copy of the images is needed.
fn gather_in_place(
    images: &mut [u8],
    labels: &mut [u8],
    order: &[usize],
    pixels: usize,
    source: &str,
) -> Result<(), DataError> {
    let len = labels.len();
    let total = images.len();
    let out_of_range = |index: usize| DataError::IndexOutOfRange { source_name: source.to_owned(), index, len };
    let range = |index: usize| {
        let start = index.checked_mul(pixels).ok_or_else(|| out_of_range(index))?;
        let end = start.checked_add(pixels).filter(|&end| end <= total).ok_or_else(|| out_of_range(index))?;
        Ok::<_, DataError>(start..end)
    };
    let mut placed = vec![false; order.len()];
    let mut held_image = vec![0u8; pixels];
    for start in 0..order.len() {
        if placed.get(start).copied().unwrap_or(true) {
            continue;
        }
        held_image.copy_from_slice(images.get(range(start)?).ok_or_else(|| out_of_range(start))?);
        let held_label = labels.get(start).copied().ok_or_else(|| out_of_range(start))?;
        let mut slot = start;
        loop {
            if let Some(done) = placed.get_mut(slot) {
                *done = true;
            }
            let from = order.get(slot).copied().ok_or_else(|| out_of_range(slot))?;
            let slot_range = range(slot)?;
            if from == start {
                images.get_mut(slot_range).ok_or_else(|| out_of_range(slot))?.copy_from_slice(&held_image);
                *labels.get_mut(slot).ok_or_else(|| out_of_range(slot))? = held_label;
                break;
            }
            images.copy_within(range(from)?, slot_range.start);
            let label = labels.get(from).copied().ok_or_else(|| out_of_range(from))?;
            *labels.get_mut(slot).ok_or_else(|| out_of_range(slot))? = label;
            slot = from;
        }
    }
    Ok(())
}

/// Class names used when a data set brings none: the decimal class index ("0", "1", …).
pub fn default_class_names(classes: usize) -> Vec<String> {
    (0..classes).map(|class| class.to_string()).collect()
}

/// Decides how many classes a label file describes, then checks every label against that count.
///
/// An explicit `--classes` wins; otherwise the standard MNIST / Fashion-MNIST label file names
/// mean 10 classes; otherwise the labels must be dense, 0..K−1 with every value present.
pub fn infer_classes(labels: &[u8], file_name: &str, classes_flag: Option<usize>) -> Result<usize, DataError> {
    let classes = match classes_flag {
        Some(classes) => {
            check_class_count(classes, file_name)?;
            classes
        }
        None if is_standard_label_file(file_name) => STANDARD_CLASSES,
        None => dense_class_count(labels, file_name)?,
    };
    check_labels(labels, classes, file_name)?;
    Ok(classes)
}

/// True for the standard label file names, with or without `.gz`, ignoring any folder part.
fn is_standard_label_file(file_name: &str) -> bool {
    let base = Path::new(file_name).file_name().and_then(|name| name.to_str()).unwrap_or(file_name);
    let stem = base.strip_suffix(".gz").unwrap_or(base);
    STANDARD_LABEL_FILES.contains(&stem)
}

/// K = max label + 1, provided every value below K occurs at least once.
fn dense_class_count(labels: &[u8], file_name: &str) -> Result<usize, DataError> {
    let Some(&max_label) = labels.iter().max() else {
        return Err(DataError::NoLabels { file: file_name.to_owned() });
    };
    let mut present = [false; MAX_CLASSES];
    for &label in labels {
        if let Some(seen) = present.get_mut(usize::from(label)) {
            *seen = true;
        }
    }
    let missing: Vec<usize> =
        (0..=usize::from(max_label)).filter(|&class| !present.get(class).copied().unwrap_or(false)).collect();
    if missing.is_empty() {
        return Ok(usize::from(max_label) + 1);
    }
    let mut listed =
        missing.iter().take(LISTED_MISSING_CLASSES).map(|class| class.to_string()).collect::<Vec<_>>().join(", ");
    if missing.len() > LISTED_MISSING_CLASSES {
        listed.push_str(&format!(" and {} more", missing.len() - LISTED_MISSING_CLASSES));
    }
    Err(DataError::NotDense { file: file_name.to_owned(), max_label, missing: listed })
}

pub(crate) fn check_class_count(classes: usize, file: &str) -> Result<(), DataError> {
    if (1..=MAX_CLASSES).contains(&classes) {
        Ok(())
    } else {
        Err(DataError::BadClassCount { file: file.to_owned(), classes })
    }
}

/// Fails on the first label that is not below `classes`.
pub(crate) fn check_labels(labels: &[u8], classes: usize, file: &str) -> Result<(), DataError> {
    match labels.iter().enumerate().find(|&(_, &label)| usize::from(label) >= classes) {
        Some((index, &value)) => Err(DataError::LabelOutOfRange { file: file.to_owned(), index, value, classes }),
        None => Ok(()),
    }
}

/// Which file names an IDX folder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxLayout {
    /// MNIST and Fashion-MNIST: `train-images-idx3-ubyte`, `t10k-images-idx3-ubyte`, ….
    Mnist,
    /// EMNIST: `emnist-<split>-train-images-idx3-ubyte`, `emnist-<split>-test-images-idx3-ubyte`, ….
    Emnist(EmnistSplit),
}

impl IdxLayout {
    /// The name stems of (train images, train labels, test images, test labels).
    fn stems(self) -> [String; 4] {
        match self {
            Self::Mnist => [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS].map(str::to_owned),
            Self::Emnist(split) => {
                let name = split.name();
                [EMNIST_TRAIN_IMAGES, EMNIST_TRAIN_LABELS, EMNIST_TEST_IMAGES, EMNIST_TEST_LABELS]
                    .map(|part| format!("emnist-{name}-{part}"))
            }
        }
    }

    /// The layout a single IDX file's name belongs to, if any.
    pub fn of_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".gz").unwrap_or(name);
        if [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS].contains(&stem) {
            return Some(Self::Mnist);
        }
        let (split, part) = EmnistSplit::parse_file_name(stem)?;
        [EMNIST_TRAIN_IMAGES, EMNIST_TRAIN_LABELS, EMNIST_TEST_IMAGES, EMNIST_TEST_LABELS]
            .contains(&part)
            .then_some(Self::Emnist(split))
    }
}

/// EMNIST names its test files `test-…` where MNIST uses `t10k-…`.
const EMNIST_TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const EMNIST_TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const EMNIST_TEST_IMAGES: &str = "test-images-idx3-ubyte";
const EMNIST_TEST_LABELS: &str = "test-labels-idx1-ubyte";

/// Picks the layout of an IDX folder from its file names: MNIST names win; otherwise the one EMNIST
/// split with files there. Several EMNIST splits are an error (the official download holds all
/// six in one folder), and a folder with neither reports the missing MNIST names.
pub fn choose_idx_layout(dir: &Path) -> Result<IdxLayout, DataError> {
    let entries = list_dir(dir)?;
    choose_layout_from(dir, &entries)
}

fn choose_layout_from(dir: &Path, entries: &[String]) -> Result<IdxLayout, DataError> {
    // Any of a layout's four files claims the folder, so a lone test file leads to a message about
    // the missing training files of the right data set.
    let has_files = |layout: IdxLayout| layout.stems().iter().any(|stem| find_idx_file(dir, entries, stem).is_some());
    if has_files(IdxLayout::Mnist) {
        return Ok(IdxLayout::Mnist);
    }
    let splits: Vec<EmnistSplit> =
        EmnistSplit::ALL.into_iter().filter(|&split| has_files(IdxLayout::Emnist(split))).collect();
    match splits.as_slice() {
        [] => Ok(IdxLayout::Mnist),
        &[split] => Ok(IdxLayout::Emnist(split)),
        [first, ..] => {
            let [train_images, ..] = IdxLayout::Emnist(*first).stems();
            Err(DataError::EmnistAmbiguous {
                dir: dir.to_path_buf(),
                splits: splits.iter().map(|split| split.name()).collect::<Vec<_>>().join(", "),
                example: find_idx_file(dir, entries, &train_images).unwrap_or_else(|| dir.join(train_images)),
            })
        }
    }
}

/// True when the folder holds any MNIST or EMNIST IDX file, i.e. `load_idx_dir` applies.
pub(crate) fn has_idx_files(dir: &Path, entries: &[String]) -> bool {
    entries.iter().any(|entry| IdxLayout::of_file_name(entry).is_some() && dir.join(entry).is_file())
}

/// Loads an MNIST-style folder: the `train-…` pair is required, the `t10k-…` pair optional; without
/// it a seeded `DEFAULT_TEST_FRACTION` of the training file is held out for testing. EMNIST folders
/// (`emnist-<split>-…` names) load the same way, see `load_idx_layout`.
pub fn load_idx_dir(dir: &Path, classes_flag: Option<usize>, seed: u64) -> Result<DataSplit, DataError> {
    let entries = list_dir(dir)?;
    let layout = choose_layout_from(dir, &entries)?;
    load_layout(dir, &entries, layout, classes_flag, seed)
}

/// Loads an IDX folder with the given file names. For EMNIST the class count and names come from
/// the split, images are transposed to stand upright, and letters labels are shifted from 1..=26
/// down to 0..=25 (so class 0 is "Aa", not an unused slot).
pub fn load_idx_layout(
    dir: &Path,
    layout: IdxLayout,
    classes_flag: Option<usize>,
    seed: u64,
) -> Result<DataSplit, DataError> {
    let entries = list_dir(dir)?;
    load_layout(dir, &entries, layout, classes_flag, seed)
}

fn load_layout(
    dir: &Path,
    entries: &[String],
    layout: IdxLayout,
    classes_flag: Option<usize>,
    seed: u64,
) -> Result<DataSplit, DataError> {
    let [train_images_stem, train_labels_stem, test_images_stem, test_labels_stem] = layout.stems();
    let train_images_path = find_idx_file(dir, entries, &train_images_stem);
    let train_labels_path = find_idx_file(dir, entries, &train_labels_stem);
    let (train_images_path, train_labels_path) = match (train_images_path, train_labels_path) {
        (Some(images), Some(labels)) => (images, labels),
        (images, labels) => {
            let missing = [(&train_images_stem, images.is_none()), (&train_labels_stem, labels.is_none())]
                .into_iter()
                .filter(|&(_, is_missing)| is_missing)
                .map(|(stem, _)| format!("{stem}[.gz]"))
                .collect::<Vec<_>>()
                .join(" and ");
            return Err(missing_files(dir, missing, entries));
        }
    };
    let test_paths =
        match (find_idx_file(dir, entries, &test_images_stem), find_idx_file(dir, entries, &test_labels_stem)) {
            (Some(images), Some(labels)) => Some((images, labels)),
            (None, None) => None,
            // Half a test pair is almost certainly a failed download; better to say so than ignore it.
            (Some(_), None) => {
                let missing = format!("{test_labels_stem}[.gz] (needed because {test_images_stem} is present)");
                return Err(missing_files(dir, missing, entries));
            }
            (None, Some(_)) => {
                let missing = format!("{test_images_stem}[.gz] (needed because {test_labels_stem} is present)");
                return Err(missing_files(dir, missing, entries));
            }
        };

    let mut train = LabelledArrays::read(&train_images_path, &train_labels_path)?;
    let emnist = match layout {
        IdxLayout::Emnist(split) => Some(split),
        IdxLayout::Mnist => None,
    };
    let classes = match emnist {
        Some(split) => {
            train.fix_emnist(split)?;
            let classes = classes_flag.unwrap_or(split.classes());
            check_class_count(classes, &train.labels_file)?;
            check_labels(&train.labels.data, classes, &train.labels_file)?;
            classes
        }
        None => infer_classes(&train.labels.data, &train.labels_file, classes_flag)?,
    };
    let class_names = match emnist {
        Some(split) if classes == split.classes() => split.class_names(),
        _ => default_class_names(classes),
    };
    let train_set = train.into_dataset(classes, class_names.clone())?;
    match test_paths {
        Some((test_images_path, test_labels_path)) => {
            let mut test = LabelledArrays::read(&test_images_path, &test_labels_path)?;
            if let Some(split) = emnist {
                test.fix_emnist(split)?;
            }
            check_labels(&test.labels.data, classes, &test.labels_file)?;
            let test_set = test.into_dataset(classes, class_names)?;
            check_same_shape(&train_set, &test_set)?;
            Ok(DataSplit { train: train_set, test: test_set })
        }
        None => train_set.split(DEFAULT_TEST_FRACTION, seed),
    }
}

/// The embedded 8000 / 2000 MNIST subset, parsed from bytes compiled into the binary.
pub fn embedded_mnist() -> Result<DataSplit, DataError> {
    let parse = |bytes: &[u8], stem: &str| {
        let file = format!("{EMBEDDED_SOURCE}: {stem}.gz");
        parse_idx_bytes(bytes, &file).map(|array| (array, file))
    };
    let (train_images, train_images_file) = parse(EMBEDDED_TRAIN_IMAGES, TRAIN_IMAGES)?;
    let (train_labels, train_labels_file) = parse(EMBEDDED_TRAIN_LABELS, TRAIN_LABELS)?;
    let (test_images, test_images_file) = parse(EMBEDDED_TEST_IMAGES, TEST_IMAGES)?;
    let (test_labels, test_labels_file) = parse(EMBEDDED_TEST_LABELS, TEST_LABELS)?;

    let train = LabelledArrays::new(train_images, train_images_file, train_labels, train_labels_file)?;
    let test = LabelledArrays::new(test_images, test_images_file, test_labels, test_labels_file)?;
    let classes = infer_classes(&train.labels.data, TRAIN_LABELS, None)?;
    check_labels(&test.labels.data, classes, &test.labels_file)?;
    let mut train_set = train.into_dataset(classes, default_class_names(classes))?;
    let mut test_set = test.into_dataset(classes, default_class_names(classes))?;
    check_same_shape(&train_set, &test_set)?;
    train_set.source = EMBEDDED_SOURCE.to_owned();
    test_set.source = EMBEDDED_SOURCE.to_owned();
    Ok(DataSplit { train: train_set, test: test_set })
}

/// A parsed images file and its labels file, validated against each other but not yet a data set.
struct LabelledArrays {
    images: IdxArray,
    images_file: String,
    shape: ImageShape,
    labels: IdxArray,
    labels_file: String,
}

impl LabelledArrays {
    fn read(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        let images = read_idx_file(images_path)?;
        let labels = read_idx_file(labels_path)?;
        Self::new(images, images_path.display().to_string(), labels, labels_path.display().to_string())
    }

    fn new(images: IdxArray, images_file: String, labels: IdxArray, labels_file: String) -> Result<Self, DataError> {
        let (image_count, height, width) = match images.dims.as_slice() {
            &[count, height, width] => (count, height, width),
            dims => {
                return Err(DataError::BadRank {
                    file: images_file,
                    dims: dims.to_vec(),
                    expected: "3 dimensions (count × height × width) for an images file",
                });
            }
        };
        let label_count = match labels.dims.as_slice() {
            &[count] => count,
            dims => {
                return Err(DataError::BadRank {
                    file: labels_file,
                    dims: dims.to_vec(),
                    expected: "1 dimension (count) for a labels file",
                });
            }
        };
        if image_count != label_count {
            return Err(DataError::CountMismatch {
                images_file,
                images: image_count,
                labels_file,
                labels: label_count,
            });
        }
        Ok(Self {
            images,
            images_file,
            // IDX image files are greyscale: one channel.
            shape: ImageShape { channels: 1, height, width },
            labels,
            labels_file,
        })
    }

    /// Undoes EMNIST's storage quirks: transposed images and, for letters, labels starting at 1.
    fn fix_emnist(&mut self, split: EmnistSplit) -> Result<(), DataError> {
        emnist::shift_labels(&mut self.labels.data, split, &self.labels_file)?;
        self.shape = emnist::transpose_images(&mut self.images.data, self.shape);
        Ok(())
    }

    fn into_dataset(self, classes: usize, class_names: Vec<String>) -> Result<Dataset, DataError> {
        Dataset::new(self.images.data, self.labels.data, self.shape, classes, class_names, self.images_file)
    }
}

pub(crate) fn check_same_shape(train: &Dataset, test: &Dataset) -> Result<(), DataError> {
    if train.shape == test.shape {
        Ok(())
    } else {
        Err(DataError::ShapeMismatch {
            train_file: train.source.clone(),
            train: train.shape,
            test_file: test.source.clone(),
            test: test.shape,
        })
    }
}

/// File names in `dir`, sorted so messages are stable.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, DataError> {
    let io_error = |source: io::Error| DataError::Io { path: dir.to_path_buf(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The uncompressed file if present (cheaper to read), else the `.gz` one.
fn find_idx_file(dir: &Path, entries: &[String], stem: &str) -> Option<PathBuf> {
    let gz_name = format!("{stem}.gz");
    [stem, gz_name.as_str()]
        .into_iter()
        .find(|name| entries.iter().any(|entry| entry == name))
        .map(|name| dir.join(name))
}

fn missing_files(dir: &Path, missing: String, entries: &[String]) -> DataError {
    DataError::MissingFiles { dir: dir.to_path_buf(), missing, found: describe_entries(entries) }
}

/// "the folder is empty" or "the folder holds: a, b, … and 4 more", for error messages.
pub(crate) fn describe_entries(entries: &[String]) -> String {
    if entries.is_empty() {
        "the folder is empty".to_owned()
    } else {
        let mut listed = entries.iter().take(LISTED_ENTRIES).cloned().collect::<Vec<_>>().join(", ");
        if entries.len() > LISTED_ENTRIES {
            listed.push_str(&format!(" and {} more", entries.len() - LISTED_ENTRIES));
        }
        format!("the folder holds: {listed}")
    }
}

/// Helpers shared by the data layer's tests: scratch folders and the real asset files.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use flate2::read::GzDecoder;

    static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

    /// A fresh folder under the system temp dir, removed again on drop.
    pub(crate) struct ScratchDir(PathBuf);

    impl ScratchDir {
        pub(crate) fn new(tag: &str) -> Self {
            let unique = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("convscope-data-test-{}-{tag}-{unique}", std::process::id()));
            // A leftover from an earlier crashed run with the same pid must not leak into this one.
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create scratch dir");
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn asset_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist").join(name)
    }

    /// Decompresses a real asset independently of the code under test.
    pub(crate) fn gunzip_asset(name: &str) -> Vec<u8> {
        let compressed = std::fs::read(asset_path(name)).expect("read asset");
        let mut raw = Vec::new();
        GzDecoder::new(compressed.as_slice()).read_to_end(&mut raw).expect("gunzip asset");
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{ScratchDir, asset_path, gunzip_asset};
    use super::*;

    const MNIST_PIXELS: usize = 28 * 28;

    fn copy_asset(dir: &Path, name: &str) {
        std::fs::copy(asset_path(name), dir.join(name)).expect("copy asset");
    }

    #[test]
    fn embedded_mnist_has_the_documented_shape() -> Result<(), DataError> {
        let split = embedded_mnist()?;
        assert_eq!(split.train.len(), 8000);
        assert_eq!(split.test.len(), 2000);
        for set in [&split.train, &split.test] {
            assert_eq!(set.shape(), ImageShape { channels: 1, height: 28, width: 28 });
            assert_eq!(set.classes(), 10);
            assert_eq!(set.class_names(), default_class_names(10).as_slice());
            assert!(set.labels().iter().all(|&label| label < 10));
            assert_eq!(set.images().len(), set.len() * MNIST_PIXELS);
            assert_eq!(set.source(), "embedded MNIST subset");
        }
        assert_eq!(split.train.class_names().first().map(String::as_str), Some("0"));
        assert_eq!(split.train.class_names().last().map(String::as_str), Some("9"));
        Ok(())
    }

    #[test]
    fn embedded_mnist_matches_the_asset_bytes() -> Result<(), DataError> {
        let split = embedded_mnist()?;
        let raw_labels = gunzip_asset("train-labels-idx1-ubyte.gz");
        let raw_images = gunzip_asset("train-images-idx3-ubyte.gz");
        let expected_labels = raw_labels.get(8..18).expect("ten labels");
        let expected_first_sum: u64 =
            raw_images.get(16..16 + MNIST_PIXELS).expect("first image").iter().map(|&pixel| u64::from(pixel)).sum();
        assert_eq!(split.train.labels().get(..10), Some(expected_labels));
        let first_sum: u64 = split.train.image(0).expect("first image").iter().map(|&pixel| u64::from(pixel)).sum();
        assert_eq!(first_sum, expected_first_sum);
        assert!(first_sum > 0, "a digit has ink");

        let raw_test_labels = gunzip_asset("t10k-labels-idx1-ubyte.gz");
        assert_eq!(Some(split.test.labels()), raw_test_labels.get(8..));
        // Every digit occurs in both parts.
        for class in 0..10u8 {
            assert!(split.train.labels().contains(&class));
            assert!(split.test.labels().contains(&class));
        }
        Ok(())
    }

    #[test]
    fn dataset_accessors_stop_at_the_end() -> Result<(), DataError> {
        let split = embedded_mnist()?;
        assert!(split.train.image(7999).is_some());
        assert!(split.train.image(8000).is_none());
        assert!(split.train.image(usize::MAX).is_none());
        assert!(split.train.label(8000).is_none());
        assert!(!split.train.is_empty());
        Ok(())
    }

    #[test]
    fn folder_with_train_pair_only_is_split_by_seed() -> Result<(), DataError> {
        let dir = ScratchDir::new("train-only");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        copy_asset(dir.path(), "train-labels-idx1-ubyte.gz");

        let first = load_idx_dir(dir.path(), None, 7)?;
        assert_eq!(first.train.len(), 6400);
        assert_eq!(first.test.len(), 1600);
        assert_eq!(first.train.classes(), 10);

        let again = load_idx_dir(dir.path(), None, 7)?;
        assert_eq!(again.train.labels(), first.train.labels());
        assert_eq!(again.test.images(), first.test.images());

        let other = load_idx_dir(dir.path(), None, 8)?;
        assert_ne!(other.test.images(), first.test.images());

        // The two parts partition the file: together they hold exactly its images.
        let whole = read_idx_file(&dir.path().join("train-images-idx3-ubyte.gz"))?;
        let mut original: Vec<&[u8]> = whole.data.chunks_exact(MNIST_PIXELS).collect();
        let mut parts: Vec<&[u8]> = first
            .train
            .images()
            .chunks_exact(MNIST_PIXELS)
            .chain(first.test.images().chunks_exact(MNIST_PIXELS))
            .collect();
        original.sort_unstable();
        parts.sort_unstable();
        assert_eq!(parts, original);
        Ok(())
    }

    #[test]
    fn folder_with_both_pairs_uses_the_test_files() -> Result<(), DataError> {
        let dir = ScratchDir::new("both-pairs");
        for name in [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ] {
            copy_asset(dir.path(), name);
        }
        let split = load_idx_dir(dir.path(), None, 1)?;
        let embedded = embedded_mnist()?;
        assert_eq!(split.train.images(), embedded.train.images());
        assert_eq!(split.test.labels(), embedded.test.labels());
        Ok(())
    }

    #[test]
    fn raw_folder_loads_the_same_as_gzip() -> Result<(), DataError> {
        let dir = ScratchDir::new("raw-folder");
        for stem in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
            let raw = gunzip_asset(&format!("{stem}.gz"));
            std::fs::write(dir.path().join(stem), raw).expect("write raw");
        }
        let split = load_idx_dir(dir.path(), None, 1)?;
        let embedded = embedded_mnist()?;
        assert_eq!(split.train.images(), embedded.train.images());
        assert_eq!(split.train.labels(), embedded.train.labels());
        assert_eq!(split.test.images(), embedded.test.images());
        Ok(())
    }

    #[test]
    fn missing_train_files_are_listed_with_folder_contents() {
        let dir = ScratchDir::new("missing-files");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::MissingFiles { .. }), "{error:?}");
        let message = error.to_string();
        // Only the absent file is named as missing; the listing shows what is there instead.
        assert!(message.contains("missing train-labels-idx1-ubyte[.gz];"), "{message}");
        assert!(message.contains("notes.txt, train-images-idx3-ubyte.gz"), "{message}");

        for index in 0..12 {
            std::fs::write(dir.path().join(format!("extra-{index:02}")), "x").expect("write");
        }
        let message = load_idx_dir(dir.path(), None, 1).expect_err("must fail").to_string();
        assert!(message.contains("and 4 more"), "{message}");
    }

    #[test]
    fn half_a_test_pair_is_an_error() {
        let dir = ScratchDir::new("half-pair");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        copy_asset(dir.path(), "train-labels-idx1-ubyte.gz");
        copy_asset(dir.path(), "t10k-images-idx3-ubyte.gz");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::MissingFiles { .. }), "{error:?}");
        assert!(error.to_string().contains("t10k-labels-idx1-ubyte"), "{error}");
    }

    #[test]
    fn image_and_label_counts_must_match() {
        let dir = ScratchDir::new("count-mismatch");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        // 2000 test labels posing as the training labels.
        std::fs::copy(asset_path("t10k-labels-idx1-ubyte.gz"), dir.path().join("train-labels-idx1-ubyte.gz"))
            .expect("copy");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::CountMismatch { images: 8000, labels: 2000, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("train-images-idx3-ubyte.gz has 8000 images"), "{message}");
        assert!(message.contains("train-labels-idx1-ubyte.gz has 2000 labels"), "{message}");
    }

    #[test]
    fn label_out_of_range_names_file_index_and_value() {
        let dir = ScratchDir::new("label-range");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        let mut labels = gunzip_asset("train-labels-idx1-ubyte.gz");
        let bad_index = 1234;
        *labels.get_mut(8 + bad_index).expect("label byte") = 10;
        std::fs::write(dir.path().join(TRAIN_LABELS), labels).expect("write");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::LabelOutOfRange { index: 1234, value: 10, classes: 10, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("train-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("label 10 at index 1234"), "{message}");
        assert!(message.contains("--classes"), "{message}");

        // The flag lifts the standard-name rule for data sets with more classes.
        let split = load_idx_dir(dir.path(), Some(11), 1).expect("11 classes fit");
        assert_eq!(split.train.classes(), 11);
        assert_eq!(split.test.class_names().len(), 11);
    }

    #[test]
    fn images_must_be_three_dimensional() {
        let dir = ScratchDir::new("bad-rank");
        copy_asset(dir.path(), "train-labels-idx1-ubyte.gz");
        // A labels file where the images should be: rank 1.
        std::fs::copy(asset_path("t10k-labels-idx1-ubyte.gz"), dir.path().join("train-images-idx3-ubyte.gz"))
            .expect("copy");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::BadRank { .. }), "{error:?}");
        assert!(error.to_string().contains("[2000]"), "{error}");
    }

    #[test]
    fn train_and_test_image_sizes_must_match() {
        let dir = ScratchDir::new("shape-mismatch");
        copy_asset(dir.path(), "train-images-idx3-ubyte.gz");
        copy_asset(dir.path(), "train-labels-idx1-ubyte.gz");
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
        images.extend_from_slice(&[0; 18]);
        std::fs::write(dir.path().join(TEST_IMAGES), images).expect("write");
        std::fs::write(dir.path().join(TEST_LABELS), [0, 0, 8, 1, 0, 0, 0, 2, 1, 2]).expect("write");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::ShapeMismatch { .. }), "{error:?}");
        assert!(error.to_string().contains(TEST_IMAGES), "{error}");
    }

    #[test]
    fn standard_label_names_mean_ten_classes() -> Result<(), DataError> {
        // Only three classes occur, but the standard name fixes the count.
        let labels = [0, 1, 2, 1];
        for name in [
            "train-labels-idx1-ubyte",
            "train-labels-idx1-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "/some/folder/t10k-labels-idx1-ubyte",
        ] {
            assert_eq!(infer_classes(&labels, name, None)?, 10, "{name}");
        }
        assert_eq!(infer_classes(&labels, "my-labels.idx", None)?, 3);
        Ok(())
    }

    #[test]
    fn dense_labels_give_max_plus_one() -> Result<(), DataError> {
        let labels: Vec<u8> = (0..26).chain(0..26).rev().collect();
        assert_eq!(infer_classes(&labels, "letters.idx", None)?, 26);
        Ok(())
    }

    #[test]
    fn sparse_labels_need_the_classes_flag() -> Result<(), DataError> {
        let labels = [0, 1, 4, 4, 6];
        let error = infer_classes(&labels, "sparse.idx", None).expect_err("must fail");
        assert!(matches!(error, DataError::NotDense { max_label: 6, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("sparse.idx"), "{message}");
        assert!(message.contains("2, 3, 5"), "{message}");
        assert!(message.contains("--classes K"), "{message}");

        assert_eq!(infer_classes(&labels, "sparse.idx", Some(7))?, 7);
        assert_eq!(infer_classes(&labels, "sparse.idx", Some(12))?, 12);
        let error = infer_classes(&labels, "sparse.idx", Some(5)).expect_err("6 ≥ 5");
        assert!(matches!(error, DataError::LabelOutOfRange { index: 4, value: 6, classes: 5, .. }), "{error:?}");
        let error = infer_classes(&labels, "sparse.idx", Some(0)).expect_err("zero classes");
        assert!(matches!(error, DataError::BadClassCount { .. }), "{error:?}");
        let error = infer_classes(&[], "none.idx", None).expect_err("no labels");
        assert!(matches!(error, DataError::NoLabels { .. }), "{error:?}");
        Ok(())
    }

    #[test]
    fn dataset_new_checks_its_inputs() {
        let shape = ImageShape { channels: 1, height: 2, width: 2 };
        let names = default_class_names(3);
        let ok = Dataset::new(vec![0; 8], vec![0, 2], shape, 3, names.clone(), "t".into());
        assert!(ok.is_ok());
        let short = Dataset::new(vec![0; 7], vec![0, 2], shape, 3, names.clone(), "t".into());
        assert!(matches!(short, Err(DataError::ImageBytesMismatch { .. })));
        let bad_label = Dataset::new(vec![0; 8], vec![0, 3], shape, 3, names.clone(), "t".into());
        assert!(matches!(bad_label, Err(DataError::LabelOutOfRange { index: 1, value: 3, .. })));
        let bad_names = Dataset::new(vec![0; 8], vec![0, 2], shape, 3, vec![], "t".into());
        assert!(matches!(bad_names, Err(DataError::ClassNamesMismatch { .. })));
        let huge = ImageShape { channels: usize::MAX, height: 2, width: 2 };
        let overflow = Dataset::new(vec![], vec![], huge, 3, names, "t".into());
        assert!(matches!(overflow, Err(DataError::BadShape { .. })));
    }

    /// The split as first written: shuffle, then copy out both parts. The in-place split must agree.
    fn reference_split(set: &Dataset, fraction: f64, seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let len = set.len();
        let test_len = ((len as f64 * fraction).round() as usize).min(len);
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let gather = |indices: &[usize]| {
            let images = indices.iter().flat_map(|&index| set.image(index).expect("image").to_vec()).collect();
            let labels = indices.iter().map(|&index| set.label(index).expect("label")).collect();
            (images, labels)
        };
        let (test_images, test_labels) = gather(&order[..test_len]);
        let (train_images, train_labels) = gather(&order[test_len..]);
        (train_images, train_labels, test_images, test_labels)
    }

    #[test]
    fn in_place_split_matches_the_copying_split() -> Result<(), DataError> {
        let shape = ImageShape { channels: 2, height: 3, width: 1 };
        for len in [2usize, 3, 10, 97] {
            let images: Vec<u8> = (0..len * 6).map(|value| (value * 7 % 251) as u8).collect();
            let labels: Vec<u8> = (0..len).map(|index| (index % 5) as u8).collect();
            let set = Dataset::new(images, labels, shape, 5, default_class_names(5), "s".into())?;
            for (fraction, seed) in [(0.2, 0), (0.5, 1), (0.3, 99), (0.9, 7)] {
                let Ok(split) = set.clone().split(fraction, seed) else { continue };
                let (train_images, train_labels, test_images, test_labels) = reference_split(&set, fraction, seed);
                assert_eq!(split.train.images(), train_images.as_slice(), "len {len} seed {seed}");
                assert_eq!(split.train.labels(), train_labels.as_slice());
                assert_eq!(split.test.images(), test_images.as_slice());
                assert_eq!(split.test.labels(), test_labels.as_slice());
                assert_eq!(split.test.source(), "s (held-out test split)");
                assert_eq!(split.train.source(), "s (train split)");
            }
        }
        Ok(())
    }

    fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
        let mut bytes = vec![0, 0, 8, u8::try_from(dims.len()).expect("few dims")];
        for dim in dims {
            bytes.extend_from_slice(&dim.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        std::fs::write(path, bytes).expect("write idx");
    }

    /// An EMNIST split with 3×2 images stored transposed: pixel value = 10·index + stored position.
    fn write_emnist(dir: &Path, split: &str, labels: &[u8], part: &str) {
        let count = u32::try_from(labels.len()).expect("few");
        let images: Vec<u8> =
            (0..labels.len()).flat_map(|index| (0..6).map(move |pos| (index * 10 + pos) as u8)).collect();
        write_idx(&dir.join(format!("emnist-{split}-{part}-images-idx3-ubyte")), &[count, 3, 2], &images);
        write_idx(&dir.join(format!("emnist-{split}-{part}-labels-idx1-ubyte")), &[count], labels);
    }

    #[test]
    fn emnist_letters_are_transposed_and_shifted() -> Result<(), DataError> {
        let dir = ScratchDir::new("emnist-letters");
        write_emnist(dir.path(), "letters", &[1, 26, 3, 2], "train");
        write_emnist(dir.path(), "letters", &[5, 1], "test");
        let split = load_idx_dir(dir.path(), None, 1)?;
        assert_eq!(split.train.labels(), [0, 25, 2, 1]);
        assert_eq!(split.test.labels(), [4, 0]);
        assert_eq!(split.train.classes(), 26);
        assert_eq!(split.train.class_names().get(25).map(String::as_str), Some("Zz"));
        // Stored 3 rows × 2 columns [[0,1],[2,3],[4,5]]; upright it is 2 × 3 [[0,2,4],[1,3,5]].
        assert_eq!(split.train.shape(), ImageShape { channels: 1, height: 2, width: 3 });
        assert_eq!(split.train.image(1), Some([10, 12, 14, 11, 13, 15].as_slice()));
        assert_eq!(split.test.image(0), Some([0, 2, 4, 1, 3, 5].as_slice()));

        let mut zero = std::fs::read(dir.path().join("emnist-letters-train-labels-idx1-ubyte")).expect("read");
        *zero.last_mut().expect("label") = 0;
        std::fs::write(dir.path().join("emnist-letters-train-labels-idx1-ubyte"), zero).expect("write");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("0 is no letter");
        assert!(matches!(error, DataError::LabelBelowOffset { index: 3, .. }), "{error:?}");
        Ok(())
    }

    #[test]
    fn emnist_split_without_test_pair_is_split_by_seed_and_named() -> Result<(), DataError> {
        let dir = ScratchDir::new("emnist-balanced");
        let labels: Vec<u8> = (0..47).collect();
        write_emnist(dir.path(), "balanced", &labels, "train");
        let split = load_idx_dir(dir.path(), None, 2)?;
        assert_eq!((split.train.len(), split.test.len()), (38, 9));
        assert_eq!(split.train.classes(), 47);
        assert_eq!(split.train.class_names().get(10).map(String::as_str), Some("A"));
        Ok(())
    }

    #[test]
    fn several_emnist_splits_need_a_file_path() -> Result<(), DataError> {
        let dir = ScratchDir::new("emnist-several");
        write_emnist(dir.path(), "digits", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "train");
        write_emnist(dir.path(), "letters", &[1, 2, 3, 4, 5], "train");
        let error = load_idx_dir(dir.path(), None, 1).expect_err("ambiguous");
        assert!(matches!(error, DataError::EmnistAmbiguous { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("digits, letters"), "{message}");
        assert!(message.contains("emnist-digits-train-images-idx3-ubyte"), "{message}");

        let chosen = dir.path().join("emnist-letters-train-images-idx3-ubyte");
        let loaded = load_path(&chosen, &LoadOptions::default())?;
        assert_eq!(loaded.format, DataFormat::Emnist(EmnistSplit::Letters));
        assert_eq!(loaded.split.train.len() + loaded.split.test.len(), 5);
        Ok(())
    }

    #[test]
    fn split_of_sixty_thousand_is_fast() -> Result<(), DataError> {
        let shape = ImageShape { channels: 1, height: 28, width: 28 };
        let images = vec![3u8; 60_000 * 784];
        let set = Dataset::new(images, vec![1; 60_000], shape, 10, default_class_names(10), "big".into())?;
        let start = std::time::Instant::now();
        let split = set.split(DEFAULT_TEST_FRACTION, 4)?;
        assert_eq!(split.test.len(), 12_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
        Ok(())
    }

    #[test]
    fn split_rejects_fractions_that_leave_a_part_empty() -> Result<(), DataError> {
        let shape = ImageShape { channels: 1, height: 1, width: 1 };
        let tiny = Dataset::new(vec![5, 6], vec![0, 1], shape, 2, default_class_names(2), "tiny".into())?;
        let error = tiny.clone().split(0.1, 3).expect_err("0.2 rounds to 0 test items");
        assert!(matches!(error, DataError::EmptySplit { test: 0, .. }), "{error:?}");
        assert!(error.to_string().starts_with("tiny"), "{error}");
        let error = tiny.clone().split(1.0, 3).expect_err("nothing left to train on");
        assert!(matches!(error, DataError::BadFraction { .. }), "{error:?}");
        let error = tiny.clone().split(f64::NAN, 3).expect_err("not a fraction");
        assert!(matches!(error, DataError::BadFraction { .. }), "{error:?}");
        let split = tiny.split(0.5, 3)?;
        assert_eq!((split.train.len(), split.test.len()), (1, 1));
        // Each label travels with its own pixel.
        for part in [&split.train, &split.test] {
            assert_eq!(part.images(), [part.labels()[0] + 5]);
        }
        Ok(())
    }
}
