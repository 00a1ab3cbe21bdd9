//! Image folders: one sub-folder of PNG, JPEG, BMP, GIF or WebP files per class, decoded, composited
//! on white, resized to N×N and stored as u8 planes; files that cannot be used are skipped and listed
//! in a `LoadReport` instead of failing the load. Also single probe images.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageDecoder, ImageError, ImageReader, Limits};
use rayon::prelude::*;

use super::detect::LoadOptions;
use super::{DEFAULT_TEST_FRACTION, DataError, DataSplit, Dataset, ImageShape, MAX_CLASSES, describe_entries};

/// The default side length is the folder's most common size, but no larger than this.
pub const MAX_DEFAULT_IMAGE_SIZE: usize = 64;
/// Largest side length an explicit image size may ask for.
pub const MAX_IMAGE_SIZE: usize = 1024;
/// Decoder limits: a bigger picture is skipped as too large rather than decoded.
const MAX_DECODE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// Class folders are searched this deep, which also stops symbolic-link loops.
const MAX_DEPTH: usize = 16;
/// How many skipped entries the summary line names before "and N more".
const LISTED_SKIPS: usize = 3;
/// Decoder messages are cut to this many characters in the summary line.
const MAX_REASON_CHARS: usize = 80;
const TRAIN_FOLDER: &str = "train";
/// Sub-folder names that, next to `train/`, hold the test part.
const TEST_FOLDERS: [&str; 2] = ["test", "val"];

/// Why a file or folder was left out of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The content is not in any image format (decided by content, not by the extension).
    NotAnImage,
    /// An image format this build does not decode (TIFF, AVIF, …).
    Unsupported(String),
    /// A recognised image that fails to decode: truncated or damaged.
    Corrupt(String),
    /// Larger than the decoder's limits.
    TooLarge(String),
    /// The file or folder could not be read.
    Unreadable(String),
    /// A class folder with no files.
    EmptyClassFolder,
    /// A class folder none of whose files could be used.
    NoUsableImages,
    /// A file or folder that is not inside a class folder.
    OutsideClassFolder,
    /// A test class folder whose class has no training images.
    NoTrainingClass,
    /// Nested deeper than the search goes (possibly a link loop).
    TooDeep,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnImage => write!(f, "not an image"),
            Self::Unsupported(detail) => write!(f, "unsupported image format: {detail}"),
            Self::Corrupt(detail) => write!(f, "corrupt: {detail}"),
            Self::TooLarge(detail) => write!(f, "too large: {detail}"),
            Self::Unreadable(detail) => write!(f, "cannot read: {detail}"),
            Self::EmptyClassFolder => write!(f, "empty class folder"),
            Self::NoUsableImages => write!(f, "class folder with no usable image"),
            Self::OutsideClassFolder => write!(f, "not inside a class folder"),
            Self::NoTrainingClass => write!(f, "test class with no training images"),
            Self::TooDeep => write!(f, "nested more than {MAX_DEPTH} folders deep"),
        }
    }
}

/// One file or folder that a load left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Full path of the file or folder.
    pub path: PathBuf,
    pub reason: SkipReason,
    /// A whole folder (an empty class, say) rather than one file.
    pub is_folder: bool,
}

/// What a load did besides returning data: what it skipped and the choices it made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The path the load started from; skipped paths are shown relative to it.
    pub root: PathBuf,
    /// Skipped files and folders, sorted by path.
    pub skipped: Vec<Skipped>,
    /// Decisions worth telling the user: the image size and channels chosen, options ignored.
    pub notes: Vec<String>,
}

impl LoadReport {
    /// An empty report for a load that started at `root`.
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), ..Self::default() }
    }

    /// One line such as "skipped 3 files: a.txt (not an image), b.png (corrupt: …), … and 1 more",
    /// or `None` when nothing was skipped.
    pub fn skipped_summary(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let folders = self.skipped.iter().filter(|skipped| skipped.is_folder).count();
        let files = self.skipped.len() - folders;
        let count = match (files, folders) {
            (files, 0) => plural(files, "file"),
            (0, folders) => plural(folders, "folder"),
            (files, folders) => format!("{} and {}", plural(files, "file"), plural(folders, "folder")),
        };
        let mut listed = self
            .skipped
            .iter()
            .take(LISTED_SKIPS)
            .map(|skipped| format!("{} ({})", self.display_path(&skipped.path), shorten(&skipped.reason.to_string())))
            .collect::<Vec<_>>()
            .join(", ");
        if self.skipped.len() > LISTED_SKIPS {
            listed.push_str(&format!(", … and {} more", self.skipped.len() - LISTED_SKIPS));
        }
        Some(format!("skipped {count}: {listed}"))
    }

    /// `path` relative to the root when it lies inside it, for messages.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .ok()
            .filter(|rest| !rest.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn skip(&mut self, path: &Path, reason: SkipReason, is_folder: bool) {
        self.skipped.push(Skipped { path: path.to_path_buf(), reason, is_folder });
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

/// Loads a folder with one sub-folder per class (sorted by name: the first is class 0, and the
/// folder names are the class names), or `train/` and `test/` (or `val/`) folders that each hold
/// such class folders, the class list coming from `train/`. Without a test part a seeded
/// `DEFAULT_TEST_FRACTION` is held out.
///
/// Images are decoded by content, composited on white, resized to `image_size`² (default: the
/// longer side of the most common size, at most 64) and kept grey or RGB (`channels`; default RGB if
/// any image is stored in colour). Files that are not usable images and class folders left empty
/// are skipped and listed in the report; only a folder without any usable class fails.
pub fn load_image_folder(dir: &Path, options: &LoadOptions) -> Result<(DataSplit, LoadReport), DataError> {
    let image_size = options.image_size.map(check_image_size).transpose()?;
    let channels = options.channels.map(check_channels).transpose()?;
    let mut report = LoadReport::new(dir);
    let listing = list_classes(dir, &mut report)?;

    // Pass 1 reads headers only, to learn sizes and colour before anything is decoded.
    let probes: Vec<Result<Probe, SkipReason>> =
        listing.candidates.par_iter().map(|candidate| probe(&candidate.path)).collect();
    let mut usable = Vec::with_capacity(probes.len());
    let mut sizes: HashMap<(u32, u32), usize> = HashMap::new();
    let mut any_colour = false;
    for (candidate, probe) in listing.candidates.iter().zip(probes) {
        match probe {
            Ok(probe) => {
                *sizes.entry((probe.width, probe.height)).or_default() += 1;
                any_colour |= probe.colour;
                usable.push(candidate);
            }
            Err(reason) => report.skip(&candidate.path, reason, false),
        }
    }
    let side = match image_size {
        Some(side) => side,
        None => {
            // Most common size; ties go to the smaller one so the choice never depends on hashing.
            let common =
                sizes.iter().max_by_key(|&(&(width, height), &count)| (count, std::cmp::Reverse((width, height))));
            let side = common.map_or(MAX_DEFAULT_IMAGE_SIZE, |(&(width, height), _)| {
                usize::try_from(width.max(height)).unwrap_or(MAX_DEFAULT_IMAGE_SIZE).min(MAX_DEFAULT_IMAGE_SIZE)
            });
            if let Some((&(width, height), _)) = common {
                report
                    .notes
                    .push(format!("images resized to {side}×{side} (the most common size is {width}×{height})"));
            }
            side
        }
    };
    let channels = channels.unwrap_or(if any_colour { 3 } else { 1 });
    let shape = ImageShape { channels, height: side, width: side };
    let pixels = shape.pixels();

    // Pass 2 decodes straight into the final buffer: one full-size image per worker at a time.
    let total = usable
        .len()
        .checked_mul(pixels)
        .ok_or_else(|| DataError::BadShape { source_name: dir.display().to_string(), shape })?;
    let mut images = vec![0u8; total];
    let results: Vec<Result<(), SkipReason>> = images
        .par_chunks_mut(pixels)
        .zip(usable.par_iter())
        .map(|(out, candidate)| decode(&candidate.path).map(|image| write_planar(image, shape, out)))
        .collect();
    let mut decoded = Vec::with_capacity(results.len());
    for (candidate, result) in usable.iter().zip(results) {
        decoded.push(result.is_ok());
        if let Err(reason) = result {
            report.skip(&candidate.path, reason, false);
        }
    }

    // Classes are the train folders with at least one decoded image, in name order.
    let mut kept = vec![0usize; listing.class_folders.len()];
    let mut tried = vec![0usize; listing.class_folders.len()];
    for (candidate, &ok) in usable.iter().zip(&decoded) {
        if candidate.part == Part::Train
            && let Some(count) = kept.get_mut(candidate.folder)
        {
            *count += usize::from(ok);
        }
    }
    for candidate in listing.candidates.iter().filter(|candidate| candidate.part == Part::Train) {
        if let Some(count) = tried.get_mut(candidate.folder) {
            *count += 1;
        }
    }
    let mut class_of = vec![None; listing.class_folders.len()];
    let mut class_names = Vec::new();
    for (index, folder) in listing.class_folders.iter().enumerate() {
        match (kept.get(index).copied().unwrap_or(0), tried.get(index).copied().unwrap_or(0)) {
            (0, 0) => report.skip(&folder.path, SkipReason::EmptyClassFolder, true),
            (0, _) => report.skip(&folder.path, SkipReason::NoUsableImages, true),
            _ => {
                if let Some(slot) = class_of.get_mut(index) {
                    *slot = u8::try_from(class_names.len()).ok();
                }
                class_names.push(folder.name.clone());
            }
        }
    }
    let classes = class_names.len();
    if classes == 0 {
        return Err(no_usable_class(dir, &listing, &mut report));
    }
    if classes > MAX_CLASSES {
        return Err(DataError::TooManyClasses { dir: dir.to_path_buf(), classes });
    }
    if let Some(expected) = options.classes.filter(|&expected| expected != classes) {
        return Err(DataError::ClassFolderMismatch {
            dir: dir.to_path_buf(),
            found: classes,
            names: list_names(&class_names),
            classes: expected,
        });
    }

    // Close the gaps left by failures, keeping train items first (the listing put them first).
    let mut labels = Vec::with_capacity(usable.len());
    let mut train_len = 0;
    let mut written = 0usize;
    for (read, (candidate, ok)) in usable.iter().zip(decoded).enumerate() {
        if !ok {
            continue;
        }
        let Some(label) = class_of.get(candidate.folder).copied().flatten() else {
            // Only test files reach here: their class has no training images.
            continue;
        };
        if read != written {
            images.copy_within(read * pixels..(read + 1) * pixels, written * pixels);
        }
        labels.push(label);
        written += 1;
        if candidate.part == Part::Train {
            train_len += 1;
        }
    }
    for folder in &listing.test_folders {
        if class_of.get(folder.class_folder).copied().flatten().is_none() {
            report.skip(&folder.path, SkipReason::NoTrainingClass, true);
        }
    }
    images.truncate(written * pixels);
    report.notes.push(match channels {
        1 => "1 channel (grey)".to_owned(),
        _ => "3 channels (RGB)".to_owned(),
    });
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));

    let test_len = written - train_len;
    let split = match &listing.test_root {
        Some(test_root) if test_len > 0 => {
            let test_images = images.split_off(train_len * pixels);
            images.shrink_to_fit();
            let test_labels = labels.split_off(train_len);
            let train_source = listing.train_root.display().to_string();
            let test_source = test_root.display().to_string();
            let train = Dataset::new(images, labels, shape, classes, class_names.clone(), train_source)?;
            let test = Dataset::new(test_images, test_labels, shape, classes, class_names, test_source)?;
            DataSplit { train, test }
        }
        test_root => {
            if let Some(test_root) = test_root {
                report.notes.push(format!(
                    "{} holds no usable test images, so a seeded share of the training images is held out",
                    report.display_path(test_root)
                ));
            }
            labels.truncate(train_len);
            images.truncate(train_len * pixels);
            let source = listing.train_root.display().to_string();
            Dataset::new(images, labels, shape, classes, class_names, source)?
                .split(DEFAULT_TEST_FRACTION, options.seed)?
        }
    };
    Ok((split, report))
}

/// Decodes one image for classification: composited on white, converted to `shape.channels` (1 or
/// 3) and resized to `shape.height`×`shape.width`; returns C×H×W bytes.
pub fn load_probe_image(path: &Path, shape: ImageShape) -> Result<Vec<u8>, DataError> {
    check_channels(shape.channels)?;
    check_image_size(shape.height)?;
    check_image_size(shape.width)?;
    let image = decode(path).map_err(|reason| DataError::BadImage {
        path: path.to_path_buf(),
        reason: match reason {
            SkipReason::NotAnImage => "not a PNG, JPEG, BMP, GIF or WebP image".to_owned(),
            reason => reason.to_string(),
        },
    })?;
    let mut out = vec![0u8; shape.pixels()];
    write_planar(image, shape, &mut out);
    Ok(out)
}

fn check_image_size(size: usize) -> Result<usize, DataError> {
    if (1..=MAX_IMAGE_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(DataError::BadOption { option: "image size", value: size, allowed: "1 to 1024 pixels" })
    }
}

fn check_channels(channels: usize) -> Result<usize, DataError> {
    match channels {
        1 | 3 => Ok(channels),
        _ => Err(DataError::BadOption { option: "channel count", value: channels, allowed: "1 (grey) or 3 (RGB)" }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Train,
    Test,
}

/// A file that may be an image of the class folder at `folder`.
struct Candidate {
    path: PathBuf,
    folder: usize,
    part: Part,
}

struct ClassFolder {
    name: String,
    path: PathBuf,
}

struct TestFolder {
    path: PathBuf,
    class_folder: usize,
}

/// The class folders and the files under them, train files before test files.
struct Listing {
    train_root: PathBuf,
    test_root: Option<PathBuf>,
    class_folders: Vec<ClassFolder>,
    test_folders: Vec<TestFolder>,
    candidates: Vec<Candidate>,
    /// The root's own entries, for the no-usable-class message.
    root_entries: Vec<String>,
}

struct Entry {
    name: String,
    path: PathBuf,
    is_dir: bool,
}

/// A folder's entries sorted by name, hidden ones (".DS_Store", ".git") left out silently.
fn read_entries(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        if file_name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Follows links, so a linked class folder counts as a folder.
        let is_dir = path.is_dir();
        entries.push((file_name, Entry { name: String::new(), path, is_dir }));
    }
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(entries
        .into_iter()
        .map(|(file_name, entry)| Entry { name: file_name.to_string_lossy().into_owned(), ..entry })
        .collect())
}

fn list_classes(dir: &Path, report: &mut LoadReport) -> Result<Listing, DataError> {
    let root_entries = read_entries(dir).map_err(|source| io_error(dir, source))?;
    let root_names = root_entries.iter().map(|entry| entry.name.clone()).collect();
    let find_dir = |name: &str| root_entries.iter().find(|entry| entry.is_dir && entry.name == name);
    let presplit = find_dir(TRAIN_FOLDER).zip(TEST_FOLDERS.iter().find_map(|&name| find_dir(name)));

    let (train_root, test_root, train_entries) = match presplit {
        Some((train, test)) => {
            for entry in &root_entries {
                if entry.path != train.path && entry.path != test.path {
                    report.skip(&entry.path, SkipReason::OutsideClassFolder, entry.is_dir);
                }
            }
            let train_entries = read_entries(&train.path).map_err(|source| io_error(&train.path, source))?;
            (train.path.clone(), Some(test.path.clone()), train_entries)
        }
        None => (dir.to_path_buf(), None, root_entries),
    };

    let mut class_folders = Vec::new();
    let mut candidates = Vec::new();
    for entry in train_entries {
        if !entry.is_dir {
            report.skip(&entry.path, SkipReason::OutsideClassFolder, false);
            continue;
        }
        let folder = class_folders.len();
        for path in collect_files(&entry.path, report) {
            candidates.push(Candidate { path, folder, part: Part::Train });
        }
        class_folders.push(ClassFolder { name: entry.name, path: entry.path });
    }

    let mut test_folders = Vec::new();
    if let Some(test_root) = &test_root {
        for entry in read_entries(test_root).map_err(|source| io_error(test_root, source))? {
            if !entry.is_dir {
                report.skip(&entry.path, SkipReason::OutsideClassFolder, false);
                continue;
            }
            match class_folders.iter().position(|folder| folder.name == entry.name) {
                Some(class_folder) => {
                    for path in collect_files(&entry.path, report) {
                        candidates.push(Candidate { path, folder: class_folder, part: Part::Test });
                    }
                    test_folders.push(TestFolder { path: entry.path, class_folder });
                }
                None => report.skip(&entry.path, SkipReason::NoTrainingClass, true),
            }
        }
    }
    Ok(Listing { train_root, test_root, class_folders, test_folders, candidates, root_entries: root_names })
}

fn io_error(path: &Path, source: io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}

/// Every file under `dir`, depth first in name order; unreadable folders are reported, not fatal.
fn collect_files(dir: &Path, report: &mut LoadReport) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = pending.pop() {
        let entries = match read_entries(&folder) {
            Ok(entries) => entries,
            Err(error) => {
                report.skip(&folder, SkipReason::Unreadable(error.to_string()), true);
                continue;
            }
        };
        let mut sub_folders = Vec::new();
        for entry in entries {
            if !entry.is_dir {
                files.push(entry.path);
            } else if depth + 1 > MAX_DEPTH {
                report.skip(&entry.path, SkipReason::TooDeep, true);
            } else {
                sub_folders.push((entry.path, depth + 1));
            }
        }
        // Reversed so the stack pops sub-folders in name order.
        pending.extend(sub_folders.into_iter().rev());
    }
    files
}

fn no_usable_class(dir: &Path, listing: &Listing, report: &mut LoadReport) -> DataError {
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut found = if listing.class_folders.is_empty() {
        format!("it has no sub-folders ({})", describe_entries(&listing.root_entries))
    } else {
        let names: Vec<String> = listing.class_folders.iter().map(|folder| folder.name.clone()).collect();
        format!("none of its {} sub-folders ({}) holds a usable image", names.len(), list_names(&names))
    };
    if let Some(summary) = report.skipped_summary() {
        found.push_str(&format!("; {summary}"));
    }
    DataError::NoUsableClass { dir: dir.to_path_buf(), found }
}

fn list_names(names: &[String]) -> String {
    let mut listed = names.iter().take(LISTED_SKIPS * 2).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > LISTED_SKIPS * 2 {
        listed.push_str(&format!(" and {} more", names.len() - LISTED_SKIPS * 2));
    }
    listed
}

/// What a header tells before decoding.
struct Probe {
    width: u32,
    height: u32,
    colour: bool,
}

fn open_reader(path: &Path) -> Result<ImageReader<BufReader<File>>, SkipReason> {
    let unreadable = |error: io::Error| SkipReason::Unreadable(error.to_string());
    let file = File::open(path).map_err(unreadable)?;
    // No extension hint: the content alone decides, so a text file named .png is "not an image".
    let mut reader = ImageReader::new(BufReader::new(file)).with_guessed_format().map_err(unreadable)?;
    if reader.format().is_none() {
        return Err(SkipReason::NotAnImage);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader)
}

fn probe(path: &Path) -> Result<Probe, SkipReason> {
    let decoder = open_reader(path)?.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(SkipReason::Corrupt(format!("the header gives a size of {width}×{height}")));
    }
    Ok(Probe { width, height, colour: decoder.color_type().has_color() })
}

fn decode(path: &Path) -> Result<DynamicImage, SkipReason> {
    let mut decoder = open_reader(path)?.into_decoder().map_err(classify)?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        let (width, height) = decoder.dimensions();
        return Err(SkipReason::TooLarge(format!("{width}×{height}")));
    }
    // Camera JPEGs are often stored sideways with an EXIF note saying so.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn classify(error: ImageError) -> SkipReason {
    match error {
        ImageError::Unsupported(error) => SkipReason::Unsupported(error.to_string()),
        ImageError::Limits(error) => SkipReason::TooLarge(error.to_string()),
        ImageError::IoError(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            SkipReason::Corrupt(format!("cut short ({error})"))
        }
        ImageError::IoError(error) => SkipReason::Unreadable(error.to_string()),
        error => SkipReason::Corrupt(error.to_string()),
    }
}

/// Composites on white, converts to the channel count, resizes, and writes C×H×W into `out`.
///
/// The per-pixel work on the full-size picture goes through `DynamicImage`'s own conversions and
/// resize, which are compiled with the `image` crate's optimisations even in a debug build.
fn write_planar(image: DynamicImage, shape: ImageShape, out: &mut [u8]) {
    let flat = flatten_on_white(image);
    let converted = if shape.channels == 1 {
        // Rec. 709 luma, the same weights as everywhere else in `image`.
        DynamicImage::ImageLuma8(flat.into_luma8())
    } else {
        DynamicImage::ImageRgb8(flat.into_rgb8())
    };
    let (width, height) = (u32::try_from(shape.width).unwrap_or(1), u32::try_from(shape.height).unwrap_or(1));
    let resized = if converted.dimensions() == (width, height) {
        converted
    } else {
        // Triangle (bilinear) widens with the scale factor, so downscaling averages, not aliases.
        converted.resize_exact(width, height, FilterType::Triangle)
    };
    match resized {
        DynamicImage::ImageLuma8(grey) => {
            for (slot, &value) in out.iter_mut().zip(grey.as_raw()) {
                *slot = value;
            }
        }
        other => {
            let rgb = other.into_rgb8();
            let plane = shape.height * shape.width;
            let mut planes = out.chunks_exact_mut(plane.max(1));
            let (Some(red), Some(green), Some(blue)) = (planes.next(), planes.next(), planes.next()) else {
                return;
            };
            for (((pixel, r), g), b) in rgb.as_raw().chunks_exact(3).zip(red).zip(green).zip(blue) {
                if let &[pr, pg, pb] = pixel {
                    (*r, *g, *b) = (pr, pg, pb);
                }
            }
        }
    }
}

/// The image with any transparency composited on a white background (alpha dropped).
fn flatten_on_white(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return image;
    }
    let mut rgba = image.into_rgba8();
    for pixel in rgba.chunks_exact_mut(4) {
        if let [r, g, b, a] = pixel
            && *a != u8::MAX
        {
            let alpha = u32::from(*a);
            let white = 255 * (255 - alpha) + 127;
            for value in [r, g, b] {
                *value = u8::try_from((u32::from(*value) * alpha + white) / 255).unwrap_or(u8::MAX);
            }
            *a = u8::MAX;
        }
    }
    DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;
    use crate::data::test_support::ScratchDir;

    const RED: [u8; 3] = [220, 20, 30];
    const GREEN: [u8; 3] = [20, 200, 40];
    const BLUE: [u8; 3] = [0, 0, 255];

    /// A filled square of `colour` on a light background; `inset` moves its edge so images differ.
    fn square(size: u32, colour: [u8; 3], inset: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            let inside = (inset..size - inset).contains(&x) && (inset..size - inset).contains(&y);
            Rgb(if inside { colour } else { [230, 230, 230] })
        })
    }

    /// A disc of `colour`, a different shape from the square.
    fn disc(size: u32, colour: [u8; 3]) -> RgbImage {
        let centre = size as f32 / 2.0;
        RgbImage::from_fn(size, size, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - centre, y as f32 + 0.5 - centre);
            Rgb(if dx * dx + dy * dy < centre * centre * 0.6 { colour } else { [240, 240, 240] })
        })
    }

    /// Left half fully transparent, right half opaque blue.
    fn half_transparent(size: u32) -> RgbaImage {
        RgbaImage::from_fn(size, size, |x, _| if x < size / 2 { Rgba([255, 0, 0, 0]) } else { Rgba([0, 0, 255, 255]) })
    }

    fn save(image: impl Into<DynamicImage>, path: &Path, format: ImageFormat) {
        image.into().save_with_format(path, format).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    }

    fn make_dir(path: &Path) -> PathBuf {
        std::fs::create_dir_all(path).expect("create folder");
        path.to_path_buf()
    }

    /// The folder of the issue: every format, mixed sizes, transparency, and three things to skip.
    fn build_mixed_folder(root: &Path) -> Vec<PathBuf> {
        let discs = make_dir(&root.join("disc"));
        let squares = make_dir(&root.join("square"));
        make_dir(&root.join("empty"));
        save(disc(20, RED), &discs.join("a.png"), ImageFormat::Png);
        save(disc(20, GREEN), &discs.join("b.jpg"), ImageFormat::Jpeg);
        save(disc(20, BLUE), &discs.join("c.gif"), ImageFormat::Gif);
        save(disc(36, RED), &discs.join("d.bmp"), ImageFormat::Bmp);
        save(disc(20, GREEN), &discs.join("e.webp"), ImageFormat::WebP);
        save(square(20, RED, 3), &squares.join("a.png"), ImageFormat::Png);
        save(square(12, GREEN, 2), &squares.join("b.jpeg"), ImageFormat::Jpeg);
        save(half_transparent(20), &squares.join("c-alpha.png"), ImageFormat::Png);
        save(square(20, BLUE, 5), &squares.join("d.webp"), ImageFormat::WebP);
        // A PNG cut in half, and a stray text file (with an image extension, to prove sniffing).
        save(square(20, BLUE, 4), &squares.join("broken.png"), ImageFormat::Png);
        let whole = std::fs::read(squares.join("broken.png")).expect("read png");
        std::fs::write(squares.join("broken.png"), &whole[..whole.len() / 2]).expect("cut png");
        std::fs::write(squares.join("notes.txt"), "not a picture").expect("write text");
        std::fs::write(squares.join("fake.png"), "also not a picture").expect("write text");
        // Hidden files are ignored silently.
        std::fs::write(squares.join(".DS_Store"), [0u8; 10]).expect("write hidden");
        vec![root.join("empty"), squares.join("broken.png"), squares.join("fake.png"), squares.join("notes.txt")]
    }

    fn all_images(split: &DataSplit) -> Vec<(u8, Vec<u8>)> {
        [&split.train, &split.test]
            .into_iter()
            .flat_map(|set| {
                (0..set.len()).map(move |index| (set.labels()[index], set.image(index).expect("image").to_vec()))
            })
            .collect()
    }

    #[test]
    fn mixed_folder_loads_what_it_can_and_reports_the_rest() -> Result<(), DataError> {
        let dir = ScratchDir::new("image-folder");
        let expected_skips = build_mixed_folder(dir.path());
        let (split, report) = load_image_folder(dir.path(), &LoadOptions { seed: 3, ..LoadOptions::default() })?;

        let skipped: Vec<PathBuf> = report.skipped.iter().map(|skipped| skipped.path.clone()).collect();
        assert_eq!(skipped, expected_skips, "{report:?}");
        let reasons: Vec<String> = report.skipped.iter().map(|skipped| skipped.reason.to_string()).collect();
        assert_eq!(reasons[0], "empty class folder");
        assert!(reasons[1].starts_with("corrupt"), "{}", reasons[1]);
        assert_eq!(reasons[2], "not an image");
        assert_eq!(reasons[3], "not an image");
        let summary = report.skipped_summary().expect("something was skipped");
        assert!(summary.starts_with("skipped 3 files and 1 folder: empty (empty class folder), "), "{summary}");
        assert!(summary.contains("square/broken.png (corrupt"), "{summary}");
        assert!(summary.ends_with(", … and 1 more"), "{summary}");

        assert_eq!(split.train.class_names(), ["disc".to_owned(), "square".to_owned()]);
        assert_eq!(split.train.classes(), 2);
        // 20×20 is the most common size, and there is colour.
        assert_eq!(split.train.shape(), ImageShape { channels: 3, height: 20, width: 20 });
        let images = all_images(&split);
        assert_eq!(images.len(), 9);
        assert_eq!(images.iter().filter(|(label, _)| *label == 0).count(), 5);
        assert_eq!((split.train.len(), split.test.len()), (7, 2));

        // The transparent half became white, the opaque half stayed blue (R, G, B planes).
        let plane = 400;
        let alpha = images
            .iter()
            .find(|(label, image)| *label == 1 && image[0] == 255 && image[2 * plane] == 255 && image[19] == 0)
            .expect("the alpha image is there");
        for row in 0..20 {
            for col in 0..20 {
                let at = row * 20 + col;
                let expected = if col < 10 { [255, 255, 255] } else { BLUE };
                assert_eq!([alpha.1[at], alpha.1[plane + at], alpha.1[2 * plane + at]], expected, "({row}, {col})");
            }
        }
        // The lossless red square keeps its exact colour in the middle.
        assert!(
            images.iter().any(|(label, image)| *label == 1 && image[210] == RED[0] && image[plane + 210] == RED[1])
        );
        Ok(())
    }

    #[test]
    fn options_set_size_and_grey() -> Result<(), DataError> {
        let dir = ScratchDir::new("image-folder-options");
        build_mixed_folder(dir.path());
        let options = LoadOptions { image_size: Some(8), channels: Some(1), seed: 1, classes: Some(2) };
        let (split, report) = load_image_folder(dir.path(), &options)?;
        assert_eq!(split.test.shape(), ImageShape { channels: 1, height: 8, width: 8 });
        assert!(report.notes.iter().any(|note| note.contains("1 channel")), "{:?}", report.notes);
        // White stays white through the grey conversion (weights sum to one).
        let images = all_images(&split);
        assert!(images.iter().any(|(_, image)| image[0] == 255));

        let error = load_image_folder(dir.path(), &LoadOptions { classes: Some(3), ..options }).expect_err("2 ≠ 3");
        assert!(matches!(error, DataError::ClassFolderMismatch { found: 2, classes: 3, .. }), "{error:?}");
        assert!(error.to_string().contains("disc, square"), "{error}");
        let error =
            load_image_folder(dir.path(), &LoadOptions { channels: Some(2), ..options }).expect_err("2 channels");
        assert!(matches!(error, DataError::BadOption { value: 2, .. }), "{error:?}");
        let error = load_image_folder(dir.path(), &LoadOptions { image_size: Some(0), ..options }).expect_err("size 0");
        assert!(matches!(error, DataError::BadOption { value: 0, .. }), "{error:?}");
        Ok(())
    }

    #[test]
    fn grey_images_default_to_one_channel_and_sizes_cap_at_64() -> Result<(), DataError> {
        let dir = ScratchDir::new("image-folder-grey");
        for (class, shade) in [("dark", 40u8), ("light", 200)] {
            let folder = make_dir(&dir.path().join(class));
            for index in 0..5u8 {
                let image = GrayImage::from_fn(100, 80, |x, _| {
                    image::Luma([shade.saturating_add(index).saturating_add((x / 50) as u8)])
                });
                save(image, &folder.join(format!("{index}.png")), ImageFormat::Png);
            }
        }
        let (split, report) = load_image_folder(dir.path(), &LoadOptions::default())?;
        assert_eq!(split.train.shape(), ImageShape { channels: 1, height: 64, width: 64 });
        assert!(report.skipped.is_empty());
        assert_eq!(report.skipped_summary(), None);
        assert!(
            report.notes.iter().any(|note| note.contains("64×64") && note.contains("100×80")),
            "{:?}",
            report.notes
        );
        for (label, image) in all_images(&split) {
            let base = if label == 0 { 40 } else { 200 };
            assert!(image.iter().all(|&value| (base..base + 7).contains(&value)), "label {label}");
        }
        Ok(())
    }

    #[test]
    fn train_and_test_folders_are_used_as_given() -> Result<(), DataError> {
        let dir = ScratchDir::new("image-folder-presplit");
        for (part, count) in [("train", 4u32), ("test", 2)] {
            for (class, colour) in [("blue", BLUE), ("red", RED)] {
                let folder = make_dir(&dir.path().join(part).join(class));
                for index in 0..count {
                    save(square(16, colour, index % 4), &folder.join(format!("{index}.png")), ImageFormat::Png);
                }
            }
        }
        let orphan = make_dir(&dir.path().join("test").join("green"));
        save(square(16, GREEN, 1), &orphan.join("0.png"), ImageFormat::Png);
        std::fs::write(dir.path().join("README.md"), "about").expect("write");

        let (split, report) = load_image_folder(dir.path(), &LoadOptions::default())?;
        assert_eq!((split.train.len(), split.test.len()), (8, 4));
        assert_eq!(split.train.labels(), [0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(split.test.labels(), [0, 0, 1, 1]);
        assert_eq!(split.test.class_names(), ["blue".to_owned(), "red".to_owned()]);
        assert_eq!(split.test.image(3).map(|image| image[8 * 16 + 8]), Some(RED[0]));
        let skipped: Vec<(String, String)> = report
            .skipped
            .iter()
            .map(|skipped| (report.display_path(&skipped.path), skipped.reason.to_string()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("README.md".to_owned(), "not inside a class folder".to_owned()),
                (format!("test{}green", std::path::MAIN_SEPARATOR), "test class with no training images".to_owned())
            ]
        );
        Ok(())
    }

    #[test]
    fn folder_without_a_usable_class_fails_clearly() {
        let dir = ScratchDir::new("image-folder-unusable");
        let notes = make_dir(&dir.path().join("notes"));
        std::fs::write(notes.join("a.txt"), "text").expect("write");
        save(square(8, RED, 1), &notes.join("b.png"), ImageFormat::Png);
        let png = std::fs::read(notes.join("b.png")).expect("read");
        std::fs::write(notes.join("b.png"), &png[..png.len() - 20]).expect("cut");
        make_dir(&dir.path().join("empty"));
        let error = load_image_folder(dir.path(), &LoadOptions::default()).expect_err("nothing usable");
        assert!(matches!(error, DataError::NoUsableClass { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
        assert!(message.contains("none of its 2 sub-folders (empty, notes)"), "{message}");
        assert!(message.contains("notes/a.txt (not an image)"), "{message}");
        assert!(message.contains("skipped 2 files and 2 folders"), "{message}");

        let flat = ScratchDir::new("image-folder-flat");
        save(square(8, RED, 1), &flat.path().join("one.png"), ImageFormat::Png);
        let error = load_image_folder(flat.path(), &LoadOptions::default()).expect_err("no class folders");
        assert!(error.to_string().contains("it has no sub-folders (the folder holds: one.png)"), "{error}");
    }

    #[test]
    fn probe_image_is_composited_converted_and_resized() -> Result<(), DataError> {
        let dir = ScratchDir::new("probe");
        let path = dir.path().join("probe.png");
        save(half_transparent(20), &path, ImageFormat::Png);
        let grey = load_probe_image(&path, ImageShape { channels: 1, height: 10, width: 10 })?;
        assert_eq!(grey.len(), 100);
        assert_eq!(grey[0], 255);
        // Pure blue is dark in Rec. 709 luma: round(0.0722 × 255) = 18.
        assert_eq!(grey[9], 18);
        let rgb = load_probe_image(&path, ImageShape { channels: 3, height: 4, width: 6 })?;
        assert_eq!(rgb.len(), 72);
        assert_eq!((rgb[0], rgb[24], rgb[48]), (255, 255, 255));
        assert_eq!((rgb[5], rgb[29], rgb[53]), (0, 0, 255));

        let text = dir.path().join("probe.txt");
        std::fs::write(&text, "hello").expect("write");
        let error = load_probe_image(&text, ImageShape { channels: 1, height: 4, width: 4 }).expect_err("text");
        assert!(error.to_string().contains("not a PNG, JPEG"), "{error}");
        let error = load_probe_image(&path, ImageShape { channels: 4, height: 4, width: 4 }).expect_err("4 channels");
        assert!(matches!(error, DataError::BadOption { .. }), "{error:?}");
        Ok(())
    }
}
