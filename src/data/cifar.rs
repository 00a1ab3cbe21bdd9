//! CIFAR-10 and CIFAR-100 binary batches: headerless files of fixed-size records, each label
//! byte(s) followed by a 3×32×32 image stored channel-planar (R plane, G plane, B plane, row-major).
//!
//! The files carry no header, so the only size ever trusted is the real file length: it must be a
//! whole number of records, and nothing is allocated beyond what it holds.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::arch::ImageShape;
use crate::data::dataset::{MAX_CLASSES, check_class_count, check_labels, check_same_shape};
use crate::data::idx_dir::{describe_entries, list_dir};
use crate::data::{DEFAULT_TEST_FRACTION, DataError, DataSplit, Dataset, default_class_names};

/// Every CIFAR image is 3×32×32.
pub const CIFAR_SHAPE: ImageShape = ImageShape { channels: 3, height: 32, width: 32 };
const PIXELS: usize = 3 * 32 * 32;
/// The largest record (CIFAR-100: two label bytes).
const MAX_RECORD: usize = PIXELS + 2;
/// A class-name file longer than this is not a class-name file.
const MAX_NAMES_FILE: u64 = 1024 * 1024;

/// The class names of CIFAR-10, used when `batches.meta.txt` is missing.
pub const CIFAR10_CLASS_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const CIFAR10_TEST_FILE: &str = "test_batch.bin";
const CIFAR10_TRAIN_PREFIX: &str = "data_batch_";
const CIFAR100_TRAIN_FILE: &str = "train.bin";
const CIFAR100_TEST_FILE: &str = "test.bin";
const BIN_EXTENSION: &str = ".bin";

/// Which CIFAR binary variant a file holds; they differ only in label bytes per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CifarKind {
    /// One label byte per record: 3073-byte records.
    Cifar10,
    /// A coarse and a fine label byte per record: 3074-byte records. The fine label is used.
    Cifar100,
}

impl CifarKind {
    /// Bytes per record: label bytes plus 3072 pixel bytes.
    pub fn record_len(self) -> usize {
        PIXELS + self.label_bytes()
    }

    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    /// Class count when no class-name file or option says otherwise.
    pub fn default_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    /// The data set's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "CIFAR-10",
            Self::Cifar100 => "CIFAR-100",
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Self::Cifar10 => "1 label byte + 3072 pixel bytes",
            Self::Cifar100 => "2 label bytes (coarse, fine) + 3072 pixel bytes",
        }
    }

    /// The class-name file the official download puts beside the batches.
    pub fn names_file(self) -> &'static str {
        match self {
            Self::Cifar10 => "batches.meta.txt",
            Self::Cifar100 => "fine_label_names.txt",
        }
    }

    fn default_class_names(self, classes: usize) -> Vec<String> {
        match self {
            Self::Cifar10 if classes == CIFAR10_CLASS_NAMES.len() => {
                CIFAR10_CLASS_NAMES.iter().map(|&name| name.to_owned()).collect()
            }
            _ => default_class_names(classes),
        }
    }

    /// Guesses the variant of one file: by CIFAR-10's batch names, then by the class-name file beside
    /// it, then by which record size alone divides its length, then `train.bin`/`test.bin` mean
    /// CIFAR-100; otherwise CIFAR-10 (so a length error then speaks of CIFAR-10 records).
    pub fn of_file(path: &Path, len: u64) -> Self {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if name == CIFAR10_TEST_FILE || name.starts_with(CIFAR10_TRAIN_PREFIX) {
            return Self::Cifar10;
        }
        let names_beside = |kind: Self| path.parent().is_some_and(|dir| dir.join(kind.names_file()).is_file());
        if names_beside(Self::Cifar100) {
            return Self::Cifar100;
        }
        if names_beside(Self::Cifar10) {
            return Self::Cifar10;
        }
        let divides = |kind: Self| len > 0 && len.is_multiple_of(kind.record_len() as u64);
        match (divides(Self::Cifar10), divides(Self::Cifar100)) {
            (true, false) => Self::Cifar10,
            (false, true) => Self::Cifar100,
            _ if name == CIFAR100_TRAIN_FILE || name == CIFAR100_TEST_FILE => Self::Cifar100,
            _ => Self::Cifar10,
        }
    }
}

/// Images (N×3×32×32 bytes) and labels read from CIFAR records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CifarArrays {
    /// N×3×32×32 pixel bytes, channel-planar as stored.
    pub images: Vec<u8>,
    /// One label per image (CIFAR-100: the fine label).
    pub labels: Vec<u8>,
}

impl CifarArrays {
    fn with_capacity(records: usize) -> Self {
        Self { images: Vec::with_capacity(records.saturating_mul(PIXELS)), labels: Vec::with_capacity(records) }
    }
}

/// Parses CIFAR records held in memory; `name` identifies them in error messages.
pub fn parse_cifar_bytes(bytes: &[u8], kind: CifarKind, name: &str) -> Result<CifarArrays, DataError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let records = record_count(len, kind, name)?;
    let mut arrays = CifarArrays::with_capacity(records);
    // Reading from a slice cannot fail; the mapping only satisfies the shared signature.
    append_records(bytes, records, kind, name, &mut arrays, &|source| DataError::Io { path: name.into(), source })?;
    Ok(arrays)
}

/// Reads one CIFAR binary file from disk.
pub fn read_cifar_file(path: &Path, kind: CifarKind) -> Result<CifarArrays, DataError> {
    let (file, records) = open_records(path, kind)?;
    let mut arrays = CifarArrays::with_capacity(records);
    append_file(file, path, records, kind, &mut arrays)?;
    Ok(arrays)
}

/// Loads a CIFAR folder as downloaded: CIFAR-10's `data_batch_*.bin` (+ `test_batch.bin`) or
/// CIFAR-100's `train.bin` (+ `test.bin`). Without the test file a seeded `DEFAULT_TEST_FRACTION`
/// of the training records is held out. `kind` = `None` decides by the file names present.
pub fn load_cifar_dir(
    dir: &Path,
    kind: Option<CifarKind>,
    classes_flag: Option<usize>,
    seed: u64,
) -> Result<DataSplit, DataError> {
    let entries = list_dir(dir)?;
    let kind = match kind {
        Some(kind) => kind,
        None => dir_kind(dir, &entries).ok_or_else(|| DataError::MissingFiles {
            dir: dir.to_path_buf(),
            missing: format!(
                "CIFAR binary batches ({CIFAR10_TRAIN_PREFIX}1{BIN_EXTENSION} … or {CIFAR100_TRAIN_FILE})"
            ),
            found: describe_entries(&entries),
        })?,
    };
    // The official names decide which files are which; `kind` only sets the record size.
    let cifar10_names = has_cifar10_batches(&entries);
    let (train_names, test_name) = if cifar10_names {
        (cifar10_train_files(&entries), CIFAR10_TEST_FILE)
    } else {
        (entries.iter().map(String::as_str).filter(|&entry| entry == CIFAR100_TRAIN_FILE).collect(), CIFAR100_TEST_FILE)
    };
    if train_names.is_empty() {
        let missing = if cifar10_names {
            format!("{CIFAR10_TRAIN_PREFIX}1{BIN_EXTENSION} … (needed because {CIFAR10_TEST_FILE} is present)")
        } else {
            CIFAR100_TRAIN_FILE.to_owned()
        };
        return Err(DataError::MissingFiles { dir: dir.to_path_buf(), missing, found: describe_entries(&entries) });
    }
    let train_files: Vec<PathBuf> = train_names.iter().map(|name| dir.join(name)).collect();
    let test_file = entries.iter().any(|entry| entry == test_name).then(|| dir.join(test_name));
    let (classes, class_names) = class_set(dir, kind, classes_flag)?;
    let train_source = match train_files.as_slice() {
        [only] => only.display().to_string(),
        _ => dir.join(format!("{CIFAR10_TRAIN_PREFIX}*{BIN_EXTENSION}")).display().to_string(),
    };
    let train = read_dataset(&train_files, kind, classes, class_names.clone(), train_source)?;
    match test_file {
        Some(test_file) => {
            let source = test_file.display().to_string();
            let test = read_dataset(&[test_file], kind, classes, class_names, source)?;
            check_same_shape(&train, &test)?;
            Ok(DataSplit { train, test })
        }
        None => train.split(DEFAULT_TEST_FRACTION, seed),
    }
}

/// Loads one CIFAR `.bin` file and holds out a seeded `DEFAULT_TEST_FRACTION` for testing. Class
/// names come from the class-name file beside it when present.
pub fn load_cifar_file(
    path: &Path,
    kind: Option<CifarKind>,
    classes_flag: Option<usize>,
    seed: u64,
) -> Result<DataSplit, DataError> {
    let kind = match kind {
        Some(kind) => kind,
        None => CifarKind::of_file(path, file_len(path)?),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (classes, class_names) = class_set(dir, kind, classes_flag)?;
    let train = read_dataset(&[path.to_path_buf()], kind, classes, class_names, path.display().to_string())?;
    train.split(DEFAULT_TEST_FRACTION, seed)
}

/// The variant a folder's file names point to, if any: CIFAR-10 batches win; a `train.bin` is
/// CIFAR-100 unless only CIFAR-10's name list or record size fits it.
pub(crate) fn dir_kind(dir: &Path, entries: &[String]) -> Option<CifarKind> {
    if has_cifar10_batches(entries) {
        return Some(CifarKind::Cifar10);
    }
    if !entries.iter().any(|entry| entry == CIFAR100_TRAIN_FILE) {
        return None;
    }
    let train = dir.join(CIFAR100_TRAIN_FILE);
    if entries.iter().any(|entry| entry == CifarKind::Cifar100.names_file()) {
        return Some(CifarKind::Cifar100);
    }
    let len = std::fs::metadata(&train).map(|meta| meta.len()).unwrap_or(0);
    let kind = CifarKind::of_file(&train, len);
    Some(kind)
}

fn has_cifar10_batches(entries: &[String]) -> bool {
    entries.iter().any(|entry| entry == CIFAR10_TEST_FILE) || !cifar10_train_files(entries).is_empty()
}

/// `data_batch_<n>.bin` names, in numeric order of `n` (so 10 follows 9).
fn cifar10_train_files(entries: &[String]) -> Vec<&str> {
    let mut numbered: Vec<(u64, &str)> = entries
        .iter()
        .filter_map(|entry| {
            let number = entry.strip_prefix(CIFAR10_TRAIN_PREFIX)?.strip_suffix(BIN_EXTENSION)?.parse().ok()?;
            Some((number, entry.as_str()))
        })
        .collect();
    numbered.sort_unstable();
    numbered.into_iter().map(|(_, name)| name).collect()
}

/// Class count and names: an explicit count wins, then the class-name file, then the default.
fn class_set(dir: &Path, kind: CifarKind, classes_flag: Option<usize>) -> Result<(usize, Vec<String>), DataError> {
    let names_path = dir.join(kind.names_file());
    let names = if names_path.is_file() { Some(read_class_names(&names_path)?) } else { None };
    let file = names_path.display().to_string();
    match (classes_flag, names) {
        (Some(classes), Some(names)) if names.len() != classes => {
            Err(DataError::ClassNamesFileMismatch { file, names: names.len(), classes })
        }
        (_, Some(names)) => Ok((names.len(), names)),
        (Some(classes), None) => {
            // No names file: the folder is what the message names, not a file that is not there.
            check_class_count(classes, &dir.display().to_string())?;
            Ok((classes, kind.default_class_names(classes)))
        }
        (None, None) => Ok((kind.default_classes(), kind.default_class_names(kind.default_classes()))),
    }
}

/// One class name per line; blank lines (the official files end with some) are ignored.
pub fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    let file_name = path.display().to_string();
    let bad = |reason: String| DataError::BadClassNames { file: file_name.clone(), reason };
    let len = file_len(path)?;
    if len > MAX_NAMES_FILE {
        return Err(bad(format!("{len} bytes is far too long for a list of at most {MAX_CLASSES} names")));
    }
    let bytes =
        crate::files::read_regular(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let text = String::from_utf8(bytes).map_err(|error| bad(format!("not UTF-8 text ({error})")))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect();
    if names.is_empty() {
        return Err(bad("it holds no names".to_owned()));
    }
    if names.len() > MAX_CLASSES {
        return Err(bad(format!("{} names, but labels are single bytes so at most {MAX_CLASSES} fit", names.len())));
    }
    Ok(names)
}

/// Reads several files into one data set, sizing the buffers once from the real file lengths.
fn read_dataset(
    files: &[PathBuf],
    kind: CifarKind,
    classes: usize,
    class_names: Vec<String>,
    source: String,
) -> Result<Dataset, DataError> {
    let mut opened = Vec::with_capacity(files.len());
    let mut total = 0usize;
    for path in files {
        let (file, records) = open_records(path, kind)?;
        total = total.saturating_add(records);
        opened.push((file, path, records));
    }
    let mut arrays = CifarArrays::with_capacity(total);
    for (file, path, records) in opened {
        let start = arrays.labels.len();
        append_file(file, path, records, kind, &mut arrays)?;
        // Checked per file so the index in a message is the record's place in that file.
        check_labels(arrays.labels.get(start..).unwrap_or_default(), classes, &path.display().to_string())?;
    }
    Dataset::new(arrays.images, arrays.labels, CIFAR_SHAPE, classes, class_names, source)
}

fn file_len(path: &Path) -> Result<u64, DataError> {
    // A FIFO or device reports a small length here; the read after it (`files::read_regular`) refuses it.
    std::fs::metadata(path).map(|meta| meta.len()).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Opens a file and checks that its length is a whole, non-zero number of records.
fn open_records(path: &Path, kind: CifarKind) -> Result<(File, usize), DataError> {
    let io_error = |source: io::Error| DataError::Io { path: path.to_path_buf(), source };
    let file = crate::files::open_regular(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let records = record_count(len, kind, &path.display().to_string())?;
    Ok((file, records))
}

fn append_file(
    file: File,
    path: &Path,
    records: usize,
    kind: CifarKind,
    arrays: &mut CifarArrays,
) -> Result<(), DataError> {
    let file_name = path.display().to_string();
    let io_error = |source: io::Error| DataError::Io { path: path.to_path_buf(), source };
    append_records(BufReader::new(file), records, kind, &file_name, arrays, &io_error)
}

fn record_count(len: u64, kind: CifarKind, file: &str) -> Result<usize, DataError> {
    if len == 0 {
        return Err(DataError::Empty { file: file.to_owned() });
    }
    let record = kind.record_len();
    let whole = len.is_multiple_of(record as u64);
    match usize::try_from(len / record as u64) {
        Ok(records) if whole => Ok(records),
        _ => Err(DataError::CifarRecordSize {
            file: file.to_owned(),
            len,
            record,
            kind: kind.name(),
            layout: kind.layout(),
        }),
    }
}

/// Appends `records` records from `reader`; the length was checked, so a short read means the file
/// shrank while being read and is reported as truncation.
fn append_records<R: Read>(
    mut reader: R,
    records: usize,
    kind: CifarKind,
    file: &str,
    arrays: &mut CifarArrays,
    wrap_io: &dyn Fn(io::Error) -> DataError,
) -> Result<(), DataError> {
    let mut record = [0u8; MAX_RECORD];
    let record = record.get_mut(..kind.record_len()).unwrap_or_default();
    let label_bytes = kind.label_bytes();
    for index in 0..records {
        reader.read_exact(record).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => DataError::Truncated {
                file: file.to_owned(),
                expected: (records * record.len()) as u64,
                actual: (index * record.len()) as u64,
            },
            _ => wrap_io(error),
        })?;
        let (labels, pixels) = record.split_at(label_bytes);
        // CIFAR-100 records hold (coarse, fine); the fine label is the class.
        arrays.labels.push(labels.last().copied().unwrap_or_default());
        arrays.images.extend_from_slice(pixels);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_support::ScratchDir;

    /// A recognisable record: class k is a square of colour `colour_of(k)` on a grey background,
    /// drawn at an offset that depends on the record index.
    fn draw_record(kind: CifarKind, index: usize, label: u8) -> Vec<u8> {
        let mut record = match kind {
            CifarKind::Cifar10 => vec![label],
            CifarKind::Cifar100 => vec![label / 5, label],
        };
        let [r, g, b] = colour_of(label);
        let offset = index % 8;
        for (channel, colour) in [r, g, b].into_iter().enumerate() {
            for row in 0..32 {
                for col in 0..32 {
                    let inside = (offset..offset + 16).contains(&row) && (offset..offset + 16).contains(&col);
                    record.push(if inside { colour } else { 100 + channel as u8 });
                }
            }
        }
        record
    }

    fn colour_of(label: u8) -> [u8; 3] {
        [label.wrapping_mul(25), 255 - label.wrapping_mul(20), label.wrapping_mul(7) ^ 0x55]
    }

    fn write_records(path: &Path, kind: CifarKind, labels: &[u8]) {
        let bytes: Vec<u8> =
            labels.iter().enumerate().flat_map(|(index, &label)| draw_record(kind, index, label)).collect();
        std::fs::write(path, bytes).expect("write cifar file");
    }

    fn pixel(set: &Dataset, index: usize, channel: usize, row: usize, col: usize) -> u8 {
        set.image(index).expect("image")[channel * 1024 + row * 32 + col]
    }

    #[test]
    fn cifar10_folder_with_test_batch_loads_planes_labels_and_names() -> Result<(), DataError> {
        let dir = ScratchDir::new("cifar10");
        write_records(&dir.path().join("data_batch_1.bin"), CifarKind::Cifar10, &[3, 0, 9]);
        write_records(&dir.path().join("data_batch_2.bin"), CifarKind::Cifar10, &[1, 2]);
        write_records(&dir.path().join("test_batch.bin"), CifarKind::Cifar10, &[5, 6]);
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n").expect("write meta");

        let split = load_cifar_dir(dir.path(), None, None, 1)?;
        assert_eq!(split.train.len(), 5);
        assert_eq!(split.test.len(), 2);
        assert_eq!(split.train.shape(), ImageShape { channels: 3, height: 32, width: 32 });
        assert_eq!(split.train.labels(), [3, 0, 9, 1, 2]);
        assert_eq!(split.test.labels(), [5, 6]);
        assert_eq!(split.train.classes(), 10);
        assert_eq!(split.train.class_names().get(9).map(String::as_str), Some("j"));

        // Record 0 (label 3): square at offset 0, so (row 5, col 7) is inside and (20, 20) outside.
        let [r, g, b] = colour_of(3);
        assert_eq!(pixel(&split.train, 0, 0, 5, 7), r);
        assert_eq!(pixel(&split.train, 0, 1, 5, 7), g);
        assert_eq!(pixel(&split.train, 0, 2, 5, 7), b);
        assert_eq!(pixel(&split.train, 0, 0, 20, 20), 100);
        assert_eq!(pixel(&split.train, 0, 2, 20, 20), 102);
        // Record 2 (label 9) of the first file: offset 2, so (1, 1) is outside and (2, 2) inside.
        assert_eq!(pixel(&split.train, 2, 0, 1, 1), 100);
        assert_eq!(pixel(&split.train, 2, 0, 2, 2), colour_of(9)[0]);
        Ok(())
    }

    #[test]
    fn missing_meta_gives_cifar10_names_and_batches_sort_numerically() -> Result<(), DataError> {
        let dir = ScratchDir::new("cifar10-nometa");
        let labels: Vec<u8> = (0..10).collect();
        write_records(&dir.path().join("data_batch_10.bin"), CifarKind::Cifar10, &[7; 10]);
        write_records(&dir.path().join("data_batch_2.bin"), CifarKind::Cifar10, &labels);
        let split = load_cifar_dir(dir.path(), None, None, 3)?;
        assert_eq!(split.train.len() + split.test.len(), 20);
        assert_eq!(split.test.len(), 4);
        assert_eq!(split.train.class_names().first().map(String::as_str), Some("airplane"));
        assert_eq!(split.train.class_names().last().map(String::as_str), Some("truck"));

        let again = load_cifar_dir(dir.path(), None, None, 3)?;
        assert_eq!(again.test.images(), split.test.images());
        // A bad class count names the folder, not a names file that is not there.
        let error = load_cifar_dir(dir.path(), None, Some(300), 3).expect_err("300 classes");
        let message = error.to_string();
        assert!(message.starts_with(&dir.path().display().to_string()), "{message}");
        assert!(!message.contains("batches.meta.txt"), "{message}");
        Ok(())
    }

    #[test]
    fn partial_record_is_an_error_naming_file_length_and_record_size() {
        let dir = ScratchDir::new("cifar-partial");
        let path = dir.path().join("data_batch_1.bin");
        write_records(&path, CifarKind::Cifar10, &[1, 2]);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(3073 + 1000);
        std::fs::write(&path, &bytes).expect("write");
        let error = load_cifar_dir(dir.path(), None, None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::CifarRecordSize { len: 4073, record: 3073, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("data_batch_1.bin") && message.contains("4073") && message.contains("3073"));

        let error = parse_cifar_bytes(&bytes, CifarKind::Cifar100, "x.bin").expect_err("must fail");
        assert!(matches!(error, DataError::CifarRecordSize { record: 3074, .. }), "{error:?}");
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = ScratchDir::new("cifar-empty");
        let path = dir.path().join("data_batch_1.bin");
        std::fs::write(&path, []).expect("write");
        let error = load_cifar_file(&path, None, None, 1).expect_err("must fail");
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
        assert!(error.to_string().contains("data_batch_1.bin"), "{error}");
    }

    #[test]
    fn labels_are_checked_against_the_class_count_per_file() {
        let dir = ScratchDir::new("cifar-label");
        write_records(&dir.path().join("data_batch_1.bin"), CifarKind::Cifar10, &[1, 2]);
        write_records(&dir.path().join("data_batch_2.bin"), CifarKind::Cifar10, &[1, 12, 2]);
        let error = load_cifar_dir(dir.path(), None, None, 1).expect_err("12 ≥ 10");
        assert!(matches!(error, DataError::LabelOutOfRange { index: 1, value: 12, classes: 10, .. }), "{error:?}");
        assert!(error.to_string().contains("data_batch_2.bin"), "{error}");
        let split = load_cifar_dir(dir.path(), None, Some(13), 1).expect("13 classes fit");
        assert_eq!(split.train.classes(), 13);

        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").expect("write meta");
        let error = load_cifar_dir(dir.path(), None, Some(13), 1).expect_err("meta disagrees");
        assert!(matches!(error, DataError::ClassNamesFileMismatch { names: 2, classes: 13, .. }), "{error:?}");
    }

    #[test]
    fn single_file_is_split_by_seed() -> Result<(), DataError> {
        let dir = ScratchDir::new("cifar-single");
        let path = dir.path().join("my_batch.bin");
        let labels: Vec<u8> = (0..10).cycle().take(30).collect();
        write_records(&path, CifarKind::Cifar10, &labels);
        let split = load_cifar_file(&path, None, None, 5)?;
        assert_eq!((split.train.len(), split.test.len()), (24, 6));
        // Each label travels with its own square colour.
        for set in [&split.train, &split.test] {
            for (index, &label) in set.labels().iter().enumerate() {
                assert_eq!(pixel(set, index, 1, 9, 9), colour_of(label)[1]);
            }
        }
        Ok(())
    }

    #[test]
    fn cifar100_uses_fine_labels_and_fine_names() -> Result<(), DataError> {
        let dir = ScratchDir::new("cifar100");
        let labels: Vec<u8> = (0..100).collect();
        write_records(&dir.path().join("train.bin"), CifarKind::Cifar100, &labels);
        write_records(&dir.path().join("test.bin"), CifarKind::Cifar100, &[99, 42]);
        let names: String = (0..100).map(|class| format!("fine{class}\n")).collect();
        std::fs::write(dir.path().join("fine_label_names.txt"), names).expect("write names");
        std::fs::write(dir.path().join("coarse_label_names.txt"), "c\n").expect("write names");

        assert_eq!(dir_kind(dir.path(), &list_dir(dir.path())?), Some(CifarKind::Cifar100));
        let split = load_cifar_dir(dir.path(), None, None, 1)?;
        assert_eq!(split.train.labels(), labels.as_slice());
        assert_eq!(split.test.labels(), [99, 42]);
        assert_eq!(split.train.classes(), 100);
        assert_eq!(split.test.class_names().get(42).map(String::as_str), Some("fine42"));
        assert_eq!(pixel(&split.test, 1, 2, 3, 3), colour_of(42)[2]);

        // Without the names file the record size alone identifies CIFAR-100.
        std::fs::remove_file(dir.path().join("fine_label_names.txt")).expect("remove");
        assert_eq!(dir_kind(dir.path(), &list_dir(dir.path())?), Some(CifarKind::Cifar100));
        let split = load_cifar_file(&dir.path().join("train.bin"), None, None, 1)?;
        assert_eq!(split.train.classes(), 100);
        assert_eq!(split.train.class_names().get(7).map(String::as_str), Some("7"));
        Ok(())
    }

    #[test]
    fn bad_class_name_files_are_reported() {
        let dir = ScratchDir::new("cifar-names");
        let path = dir.path().join("batches.meta.txt");
        std::fs::write(&path, "\n \n").expect("write");
        let error = read_class_names(&path).expect_err("no names");
        assert!(matches!(error, DataError::BadClassNames { .. }), "{error:?}");
        std::fs::write(&path, [0xff, 0xfe, b'\n']).expect("write");
        let error = read_class_names(&path).expect_err("not UTF-8");
        assert!(error.to_string().contains("UTF-8"), "{error}");
    }
}
