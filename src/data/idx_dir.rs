//! IDX folders (MNIST, Fashion-MNIST, EMNIST): which file names a folder uses, loading its train and test
//! pairs, and the embedded MNIST subset compiled into the binary.

use std::io;
use std::path::{Path, PathBuf};

use crate::arch::ImageShape;
use crate::data::dataset::{check_class_count, check_labels, check_same_shape};
use crate::data::emnist;
use crate::data::{
    DataError, DataSplit, Dataset, EmnistSplit, IdxArray, default_class_names, infer_classes, parse_idx_bytes,
    read_idx_file,
};

/// Share of the training file held out for testing when a folder has no `t10k-…` pair.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// How many folder entries a missing-file error lists before summarising.
const LISTED_ENTRIES: usize = 10;

pub(crate) const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub(crate) const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub(crate) const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub(crate) const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

const EMBEDDED_SOURCE: &str = "embedded MNIST subset";
const EMBEDDED_TRAIN_IMAGES: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/train-images-idx3-ubyte.gz"));
const EMBEDDED_TRAIN_LABELS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/train-labels-idx1-ubyte.gz"));
const EMBEDDED_TEST_IMAGES: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/t10k-images-idx3-ubyte.gz"));
const EMBEDDED_TEST_LABELS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist/t10k-labels-idx1-ubyte.gz"));
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
    train_set.set_source(EMBEDDED_SOURCE);
    test_set.set_source(EMBEDDED_SOURCE);
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
