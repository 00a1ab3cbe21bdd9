//! Format detection: one entry point, `load_path`, that tells an IDX folder, a CIFAR folder or file
//! and an image folder apart by their file names and contents, and loads whichever it finds.

use std::fmt;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::cifar::{self, CifarKind};
use crate::data::folder;
use crate::data::idx_dir::{self, describe_entries, has_idx_files, list_dir};
use crate::data::{DataError, DataSplit, EmnistSplit, IdxLayout, LoadOptions, LoadReport};

/// Bytes read from a file's start to recognise an image format.
const SNIFF_LEN: usize = 16;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The kind of data set a path held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// MNIST-style IDX files (MNIST, Fashion-MNIST, …).
    Idx,
    /// EMNIST's IDX files for one split.
    Emnist(EmnistSplit),
    /// CIFAR-10 binary batches.
    Cifar10,
    /// CIFAR-100 binary files (fine labels).
    Cifar100,
    /// One sub-folder of images per class.
    ImageFolder,
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idx => write!(f, "an IDX data set"),
            Self::Emnist(split) => write!(f, "EMNIST ({})", split.name()),
            Self::Cifar10 => write!(f, "CIFAR-10"),
            Self::Cifar100 => write!(f, "CIFAR-100"),
            Self::ImageFolder => write!(f, "an image folder"),
        }
    }
}

impl From<CifarKind> for DataFormat {
    fn from(kind: CifarKind) -> Self {
        match kind {
            CifarKind::Cifar10 => Self::Cifar10,
            CifarKind::Cifar100 => Self::Cifar100,
        }
    }
}

/// A loaded data set with what happened on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The train and test parts.
    pub split: DataSplit,
    /// What was skipped and decided on the way (empty for IDX and CIFAR, but for ignored options).
    pub report: LoadReport,
    /// What the path turned out to hold.
    pub format: DataFormat,
}

impl Loaded {
    /// One line about what `path` held, e.g. "IDX from ~/mnist: 8000 train and 2000 test images of 1×28×28,
    /// 10 classes" (the command line and the window word it the same).
    pub fn describe(&self, path: &Path) -> String {
        let (train, test) = (&self.split.train, &self.split.test);
        format!(
            "{} from {}: {} train and {} test images of {}, {} classes",
            self.format,
            path.display(),
            train.len(),
            test.len(),
            train.shape(),
            train.classes()
        )
    }
}

/// How a path will be loaded, decided before any data is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    IdxDir { dir: PathBuf, layout: IdxLayout },
    CifarDir(CifarKind),
    CifarFile(CifarKind),
    ImageFolder,
}

/// Loads whatever data set `path` holds:
/// - a folder with `train-images-idx3-ubyte[.gz]` or EMNIST's `emnist-<split>-…` files: IDX;
/// - a folder with `data_batch_*.bin` / `test_batch.bin`: CIFAR-10; with `train.bin`: CIFAR-100
///   (or CIFAR-10, when only its record size fits);
/// - a single `.bin` file: CIFAR, by record size; a single IDX file: its folder, with that file's
///   naming (how one EMNIST split is picked from a folder holding several);
/// - any other folder with sub-folders: an image folder.
///
/// A single image file is refused with a message pointing to probes.
pub fn load_path(path: &Path, options: &LoadOptions) -> Result<Loaded, DataError> {
    let plan = plan(path)?;
    let mut report = LoadReport::new(path);
    let (split, format) = match plan {
        Plan::IdxDir { dir, layout } => {
            let split = idx_dir::load_idx_layout(&dir, layout, options.classes, options.seed)?;
            let format = match layout {
                IdxLayout::Mnist => DataFormat::Idx,
                IdxLayout::Emnist(split) => DataFormat::Emnist(split),
            };
            (split, format)
        }
        Plan::CifarDir(kind) => (cifar::load_cifar_dir(path, Some(kind), options.classes, options.seed)?, kind.into()),
        Plan::CifarFile(kind) => {
            (cifar::load_cifar_file(path, Some(kind), options.classes, options.seed)?, kind.into())
        }
        Plan::ImageFolder => {
            let (split, folder_report) = folder::load_image_folder(path, options).map_err(|error| match error {
                // An extracted archive often adds one folder level; say where the data really is.
                DataError::NoUsableClass { .. } => nested_data_set(path).unwrap_or(error),
                error => error,
            })?;
            report = folder_report;
            (split, DataFormat::ImageFolder)
        }
    };
    if split.train.classes() < 2 {
        let name = split.train.class_names().first().cloned().unwrap_or_default();
        let fix = match format {
            DataFormat::ImageFolder => "add a sub-folder of images for each other class",
            _ => "its labels must take at least two values (check --classes)",
        };
        return Err(DataError::OneClass { path: path.to_path_buf(), name, fix });
    }
    if format != DataFormat::ImageFolder && (options.image_size.is_some() || options.channels.is_some()) {
        let shape = split.train.shape();
        report.notes.push(format!(
            "the image size and channel options apply to image folders only; {format} images stay {shape}"
        ));
    }
    Ok(Loaded { split, report, format })
}

/// The format `path` would load as, without loading it.
pub fn detect_format(path: &Path) -> Result<DataFormat, DataError> {
    Ok(match plan(path)? {
        Plan::IdxDir { layout: IdxLayout::Mnist, .. } => DataFormat::Idx,
        Plan::IdxDir { layout: IdxLayout::Emnist(split), .. } => DataFormat::Emnist(split),
        Plan::CifarDir(kind) | Plan::CifarFile(kind) => kind.into(),
        Plan::ImageFolder => DataFormat::ImageFolder,
    })
}

fn plan(path: &Path) -> Result<Plan, DataError> {
    let metadata = std::fs::metadata(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    if metadata.is_dir() {
        return plan_dir(path);
    }
    if let Some(kind) = crate::files::special_kind(&metadata) {
        return Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
            found: format!("it is {kind}, not a file or folder, so it is not read"),
        });
    }
    plan_file(path, metadata.len())
}

fn plan_dir(dir: &Path) -> Result<Plan, DataError> {
    let entries = list_dir(dir)?;
    if has_idx_files(dir, &entries) {
        let layout = idx_dir::choose_idx_layout(dir)?;
        return Ok(Plan::IdxDir { dir: dir.to_path_buf(), layout });
    }
    if let Some(kind) = cifar::dir_kind(dir, &entries) {
        return Ok(Plan::CifarDir(kind));
    }
    if entries.iter().any(|entry| !entry.starts_with('.') && dir.join(entry).is_dir()) {
        return Ok(Plan::ImageFolder);
    }
    Err(DataError::UnknownFormat { path: dir.to_path_buf(), found: describe_entries(&entries) })
}

fn plan_file(path: &Path, len: u64) -> Result<Plan, DataError> {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    if let Some(layout) = IdxLayout::of_file_name(name) {
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return Ok(Plan::IdxDir { dir: dir.to_path_buf(), layout });
    }
    let mut start = [0u8; SNIFF_LEN];
    let sniffed = read_start(path, &mut start)?;
    let start = start.get(..sniffed).unwrap_or_default();
    if image::guess_format(start).is_ok() {
        return Err(DataError::SingleImage { path: path.to_path_buf() });
    }
    let is_bin = name.ends_with(".bin");
    let whole_records = [CifarKind::Cifar10, CifarKind::Cifar100]
        .iter()
        .any(|kind| len > 0 && len.is_multiple_of(kind.record_len() as u64));
    if is_bin || whole_records && !start.starts_with(&GZIP_MAGIC) && !start.starts_with(&[0, 0, 8]) {
        // A `.bin` of the wrong length still goes to the CIFAR reader, whose error names the sizes.
        return Ok(Plan::CifarFile(CifarKind::of_file(path, len)));
    }
    let found = if start.starts_with(&GZIP_MAGIC) || start.starts_with(&[0, 0, 8]) {
        "a single IDX file: pass the folder holding the train-images and train-labels files".to_owned()
    } else {
        format!("a file of {len} bytes in no known format")
    };
    Err(DataError::UnknownFormat { path: path.to_path_buf(), found })
}

fn read_start(path: &Path, buf: &mut [u8]) -> Result<usize, DataError> {
    let io_error = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut file = crate::files::open_regular(path).map_err(io_error)?;
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    Ok(filled)
}

/// A sub-folder of `dir` that is itself an IDX or CIFAR data set, as an error saying to pass it.
fn nested_data_set(dir: &Path) -> Option<DataError> {
    let entries = list_dir(dir).ok()?;
    entries.iter().map(|entry| dir.join(entry)).filter(|inner| inner.is_dir()).find_map(|inner| {
        let format = match plan_dir(&inner).ok()? {
            Plan::IdxDir { layout: IdxLayout::Mnist, .. } => DataFormat::Idx,
            Plan::IdxDir { layout: IdxLayout::Emnist(split), .. } => DataFormat::Emnist(split),
            Plan::CifarDir(kind) => kind.into(),
            Plan::CifarFile(_) | Plan::ImageFolder => return None,
        };
        Some(DataError::NestedDataSet { dir: dir.to_path_buf(), inner, format: format.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::data::test_support::{ScratchDir, asset_path};

    fn cifar_bytes(kind: CifarKind, labels: &[u8]) -> Vec<u8> {
        labels
            .iter()
            .flat_map(|&label| {
                let mut record = if kind == CifarKind::Cifar100 { vec![0, label] } else { vec![label] };
                record.extend(std::iter::repeat_n(label.wrapping_mul(20), 3072));
                record
            })
            .collect()
    }

    fn write_png(path: &Path, size: u32, shade: u8) {
        image::RgbImage::from_pixel(size, size, image::Rgb([shade, 255 - shade, 9])).save(path).expect("write png");
    }

    #[test]
    fn idx_folder_is_detected_and_folder_options_noted() -> Result<(), DataError> {
        let dir = ScratchDir::new("detect-idx");
        for name in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
            std::fs::copy(asset_path(name), dir.path().join(name)).expect("copy asset");
        }
        let loaded = load_path(dir.path(), &LoadOptions { seed: 4, ..LoadOptions::default() })?;
        assert_eq!(loaded.format, DataFormat::Idx);
        assert_eq!((loaded.split.train.len(), loaded.split.test.len()), (6400, 1600));
        assert!(loaded.report.notes.is_empty() && loaded.report.skipped.is_empty());

        let with_size = load_path(dir.path(), &LoadOptions { image_size: Some(32), ..LoadOptions::default() })?;
        assert!(with_size.report.notes.iter().any(|note| note.contains("stay 1×28×28")), "{:?}", with_size.report);
        // One file of the pair selects its folder.
        let by_file = load_path(&dir.path().join("train-labels-idx1-ubyte.gz"), &LoadOptions::default())?;
        assert_eq!(by_file.format, DataFormat::Idx);
        assert_eq!(detect_format(dir.path())?, DataFormat::Idx);
        Ok(())
    }

    #[test]
    fn lone_test_files_lead_to_a_missing_train_files_message() {
        let dir = ScratchDir::new("detect-lone-test");
        std::fs::copy(
            asset_path("t10k-labels-idx1-ubyte.gz"),
            dir.path().join("emnist-digits-test-labels-idx1-ubyte.gz"),
        )
        .expect("copy asset");
        let error = load_path(dir.path(), &LoadOptions::default()).expect_err("no training files");
        assert!(matches!(error, DataError::MissingFiles { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("missing emnist-digits-train-images-idx3-ubyte[.gz] and"), "{message}");
    }

    #[test]
    fn cifar_folders_and_files_are_detected() -> Result<(), DataError> {
        let dir = ScratchDir::new("detect-cifar");
        let ten = dir.path().join("ten");
        std::fs::create_dir(&ten).expect("mkdir");
        std::fs::write(ten.join("data_batch_1.bin"), cifar_bytes(CifarKind::Cifar10, &[0, 1, 2, 3, 4])).expect("write");
        let loaded = load_path(&ten, &LoadOptions::default())?;
        assert_eq!(loaded.format, DataFormat::Cifar10);
        assert_eq!(loaded.split.train.shape(), ImageShape { channels: 3, height: 32, width: 32 });
        assert_eq!(loaded.split.train.len() + loaded.split.test.len(), 5);

        let hundred = dir.path().join("hundred");
        std::fs::create_dir(&hundred).expect("mkdir");
        std::fs::write(hundred.join("train.bin"), cifar_bytes(CifarKind::Cifar100, &[0, 55, 99, 3, 4])).expect("write");
        assert_eq!(load_path(&hundred, &LoadOptions::default())?.format, DataFormat::Cifar100);

        // A lone file of either kind, under any name, is told apart by its record size.
        let single = dir.path().join("mine.bin");
        std::fs::write(&single, cifar_bytes(CifarKind::Cifar100, &[7, 8, 9, 10, 11])).expect("write");
        let loaded = load_path(&single, &LoadOptions::default())?;
        assert_eq!(loaded.format, DataFormat::Cifar100);
        let mut labels: Vec<u8> =
            loaded.split.train.labels().iter().chain(loaded.split.test.labels()).copied().collect();
        labels.sort_unstable();
        assert_eq!(labels, [7, 8, 9, 10, 11]);

        let odd = dir.path().join("odd.bin");
        std::fs::write(&odd, [1u8; 5000]).expect("write");
        let error = load_path(&odd, &LoadOptions::default()).expect_err("not whole records");
        assert!(matches!(error, DataError::CifarRecordSize { len: 5000, .. }), "{error:?}");
        Ok(())
    }

    #[test]
    fn image_folder_is_detected_and_single_images_refused() -> Result<(), DataError> {
        let dir = ScratchDir::new("detect-images");
        for class in ["a", "b"] {
            let folder = dir.path().join(class);
            std::fs::create_dir(&folder).expect("mkdir");
            for index in 0..3u8 {
                write_png(&folder.join(format!("{index}.png")), 8, index * 50);
            }
        }
        std::fs::write(dir.path().join("a").join("junk.txt"), "x").expect("write");
        let loaded = load_path(dir.path(), &LoadOptions::default())?;
        assert_eq!(loaded.format, DataFormat::ImageFolder);
        assert_eq!(loaded.report.skipped.len(), 1);
        assert_eq!(loaded.split.train.len() + loaded.split.test.len(), 6);

        // Named like a data file, but the content is a PNG.
        let image = dir.path().join("a").join("0.png");
        let renamed = dir.path().join("picture.bin");
        std::fs::copy(&image, &renamed).expect("copy");
        for path in [image, renamed] {
            let error = load_path(&path, &LoadOptions::default()).expect_err("single image");
            assert!(matches!(error, DataError::SingleImage { .. }), "{error:?}");
            assert!(error.to_string().contains("probe"), "{error}");
        }
        Ok(())
    }

    #[test]
    fn unknown_and_nested_data_sets_get_pointed_messages() {
        let dir = ScratchDir::new("detect-unknown");
        std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
        let error = load_path(dir.path(), &LoadOptions::default()).expect_err("nothing here");
        assert!(matches!(error, DataError::UnknownFormat { .. }), "{error:?}");
        assert!(error.to_string().contains("notes.txt"), "{error}");
        let error = load_path(&dir.path().join("notes.txt"), &LoadOptions::default()).expect_err("a text file");
        assert!(error.to_string().contains("5 bytes in no known format"), "{error}");
        let error = load_path(&dir.path().join("missing"), &LoadOptions::default()).expect_err("no such path");
        assert!(matches!(error, DataError::Io { .. }), "{error:?}");
        // Devices and FIFOs are named for what they are, and never opened (a FIFO would block the load).
        #[cfg(unix)]
        {
            let error = load_path(Path::new("/dev/zero"), &LoadOptions::default()).expect_err("a device");
            assert!(error.to_string().contains("it is a character device, not a file or folder"), "{error}");
            let fifo = dir.path().join("data.bin");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
            let error = load_path(&fifo, &LoadOptions::default()).expect_err("a FIFO");
            assert!(error.to_string().contains("FIFO (named pipe)"), "{error}");
            std::fs::remove_file(fifo).expect("remove");
        }

        let inner = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&inner).expect("mkdir");
        std::fs::write(inner.join("data_batch_1.bin"), cifar_bytes(CifarKind::Cifar10, &[1, 2])).expect("write");
        let error = load_path(dir.path(), &LoadOptions::default()).expect_err("one level too high");
        assert!(matches!(error, DataError::NestedDataSet { .. }), "{error:?}");
        assert!(error.to_string().contains("cifar-10-batches-bin looks like CIFAR-10"), "{error}");
    }
}
