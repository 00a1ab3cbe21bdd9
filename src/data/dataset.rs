//! The in-memory data set: images and labels as raw bytes, the train/test split, class counts and names,
//! and what the user asked a loader for.

use std::fmt;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::arch::ImageShape;
use crate::data::DataError;

/// Class count of MNIST and Fashion-MNIST, implied by their standard file names.
const STANDARD_CLASSES: usize = 10;
/// Labels are single bytes, so no data set can use more classes than this.
pub(crate) const MAX_CLASSES: usize = 256;
/// How many missing class values a not-dense error lists before summarising.
const LISTED_MISSING_CLASSES: usize = 20;
/// The standard label file names (MNIST, Fashion-MNIST) that imply ten classes.
const STANDARD_LABEL_FILES: [&str; 2] = ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"];

/// What the user asked for; each format uses the parts that apply to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Class count (`--classes K`); by default it comes from the data set.
    pub classes: Option<usize>,
    /// Seed of the train/test split when the data set brings no test part.
    pub seed: u64,
    /// Image folders only: side length N of the N×N images (default: the most common size, ≤ 64).
    pub image_size: Option<usize>,
    /// Image folders only: 1 (grey) or 3 (RGB); default RGB if any image is in colour.
    pub channels: Option<usize>,
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
    /// A number per item for regression, when read from a targets file (`None`: labels only).
    targets: Option<Vec<f32>>,
    /// Image folders: each item's file, relative to the folder given (what a targets file names it by).
    names: Option<Vec<String>>,
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
    /// Names where the data came from (the embedded subset names itself, not its files).
    pub(crate) fn set_source(&mut self, source: &str) {
        source.clone_into(&mut self.source);
    }

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
        Ok(Self { images, labels, shape, classes, class_names, source, targets: None, names: None })
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

    /// Each item's regression target, when a targets file gave them.
    pub fn targets(&self) -> Option<&[f32]> {
        self.targets.as_deref()
    }

    /// Each item's file relative to the folder loaded, for image folders.
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// Names each item by its file (the caller checked the count).
    pub(crate) fn with_names(mut self, names: Vec<String>) -> Self {
        self.names = Some(names);
        self
    }

    /// Attaches one regression target per item (the caller checked the count).
    pub(crate) fn set_targets(&mut self, targets: Vec<f32>) {
        self.targets = Some(targets);
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
        // Targets are attached to a split, never before one (they are indexed train first, then test).
        let Self { mut images, mut labels, shape, classes, class_names, source, targets: _, names } = self;
        let mut names = names.map(|names| order.iter().filter_map(|&i| names.get(i).cloned()).collect::<Vec<_>>());
        let test_names = names.as_mut().map(|names| names.drain(..test_len.min(names.len())).collect());
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
            targets: None,
            names: test_names,
        };
        let source = format!("{source} (train split)");
        let train = Self { images, labels, shape, classes, class_names, source, targets: None, names };
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

/// Fails when the train and test parts hold images of different shapes.
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
