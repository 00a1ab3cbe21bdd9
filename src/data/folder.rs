//! Image folders: one sub-folder of PNG, JPEG, BMP, GIF or WebP files per class, decoded, composited
//! on white, resized to N×N and stored as u8 planes; files that cannot be used are skipped and listed
//! in a [`LoadReport`] instead of failing the load. Also single probe images. Listing the folder is
//! `listing.rs`'s job, decoding one file `decode.rs`'s.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use crate::arch::ImageShape;
use crate::data::dataset::MAX_CLASSES;
use crate::data::decode::{Probe, decode, probe, write_planar};
use crate::data::listing::{Candidate, Listing, Part, list_classes, list_names, no_usable_class};
use crate::data::{DEFAULT_TEST_FRACTION, DataError, DataSplit, Dataset, LoadOptions, LoadReport, SkipReason};

/// The default side length is the folder's most common size, but no larger than this.
pub const MAX_DEFAULT_IMAGE_SIZE: usize = 64;
/// Largest side length an explicit image size may ask for.
pub const MAX_IMAGE_SIZE: usize = 1024;

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
    let (usable, shape) = choose_shape(&listing, image_size, channels, &mut report);
    let (images, decoded) = decode_all(dir, &usable, shape, &mut report)?;
    let (class_of, class_names) = decide_classes(dir, &listing, &usable, &decoded, options, &mut report)?;
    let (images, labels, names, train_len) = compact(images, &usable, decoded, &class_of, shape.pixels(), dir);
    for folder in &listing.test_folders {
        if class_of.get(folder.class_folder).copied().flatten().is_none() {
            report.skip(&folder.path, SkipReason::NoTrainingClass, true);
        }
    }
    report.notes.push(match shape.channels {
        1 => "1 channel (grey)".to_owned(),
        _ => "3 channels (RGB)".to_owned(),
    });
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let labelled = Labelled { images, labels, names, train_len, shape, class_names };
    let split = split(labelled, &listing, options.seed, &mut report)?;
    Ok((split, report))
}

/// Pass 1 reads headers only, to learn sizes and colour before anything is decoded: the files that are
/// images, and the shape they will all be resized to.
fn choose_shape<'a>(
    listing: &'a Listing,
    image_size: Option<usize>,
    channels: Option<usize>,
    report: &mut LoadReport,
) -> (Vec<&'a Candidate>, ImageShape) {
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
    let side = image_size.unwrap_or_else(|| {
        // Most common size; ties go to the smaller one so the choice never depends on hashing.
        let common = sizes.iter().max_by_key(|&(&(width, height), &count)| (count, std::cmp::Reverse((width, height))));
        let side = common.map_or(MAX_DEFAULT_IMAGE_SIZE, |(&(width, height), _)| {
            usize::try_from(width.max(height)).unwrap_or(MAX_DEFAULT_IMAGE_SIZE).min(MAX_DEFAULT_IMAGE_SIZE)
        });
        if let Some((&(width, height), _)) = common {
            report.notes.push(format!("images resized to {side}×{side} (the most common size is {width}×{height})"));
        }
        side
    });
    let channels = channels.unwrap_or(if any_colour { 3 } else { 1 });
    (usable, ImageShape { channels, height: side, width: side })
}

/// Pass 2 decodes straight into the final buffer, one full-size image per worker at a time; returns the
/// buffer and which files decoded.
fn decode_all(
    dir: &Path,
    usable: &[&Candidate],
    shape: ImageShape,
    report: &mut LoadReport,
) -> Result<(Vec<u8>, Vec<bool>), DataError> {
    let pixels = shape.pixels();
    let total = usable
        .len()
        .checked_mul(pixels)
        .ok_or_else(|| DataError::BadShape { source_name: dir.display().to_string(), shape })?;
    if let Some(budget) = crate::budget::memory_budget().filter(|budget| total as u64 > budget.bytes) {
        let detail = format!(
            "{} images of {shape} take {}, more than the {} allowed ({})",
            usable.len(),
            crate::budget::bytes(total as u64),
            crate::budget::bytes(budget.bytes),
            budget.source
        );
        return Err(DataError::TooLargeForMemory { dir: dir.to_path_buf(), detail });
    }
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
    Ok((images, decoded))
}

/// Classes are the train folders with at least one decoded image, in name order: each class folder's label
/// (`None` when it has none) and the class names.
fn decide_classes(
    dir: &Path,
    listing: &Listing,
    usable: &[&Candidate],
    decoded: &[bool],
    options: &LoadOptions,
    report: &mut LoadReport,
) -> Result<(Vec<Option<u8>>, Vec<String>), DataError> {
    let mut kept = vec![0usize; listing.class_folders.len()];
    let mut tried = vec![0usize; listing.class_folders.len()];
    for (candidate, &ok) in usable.iter().zip(decoded) {
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
    // A folder the walk already reported (unreadable, say) is not reported a second time as empty.
    let reported: std::collections::HashSet<std::path::PathBuf> =
        report.skipped.iter().filter(|skipped| skipped.is_folder).map(|skipped| skipped.path.clone()).collect();
    let mut class_of = vec![None; listing.class_folders.len()];
    let mut class_names = Vec::new();
    for (index, folder) in listing.class_folders.iter().enumerate() {
        match (kept.get(index).copied().unwrap_or(0), tried.get(index).copied().unwrap_or(0)) {
            (0, 0) if reported.contains(&folder.path) => {}
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
        return Err(no_usable_class(dir, listing, report));
    }
    if classes > MAX_CLASSES {
        return Err(DataError::TooManyClasses { dir: dir.to_path_buf(), classes });
    }
    if let Some(expected) = options.classes.filter(|&expected| expected != classes) {
        let names = list_names(&class_names);
        return Err(DataError::ClassFolderMismatch {
            dir: dir.to_path_buf(),
            found: classes,
            names,
            classes: expected,
        });
    }
    Ok((class_of, class_names))
}

/// Closes the gaps left by failures and by test files of classes without training images, keeping train
/// items first (the listing put them first); returns the images, their labels, their files relative to `dir`
/// and how many are for training.
fn compact(
    mut images: Vec<u8>,
    usable: &[&Candidate],
    decoded: Vec<bool>,
    class_of: &[Option<u8>],
    pixels: usize,
    dir: &Path,
) -> (Vec<u8>, Vec<u8>, Vec<String>, usize) {
    let mut labels = Vec::with_capacity(usable.len());
    let mut names = Vec::with_capacity(usable.len());
    let (mut train_len, mut written) = (0, 0usize);
    for (read, (candidate, ok)) in usable.iter().zip(decoded).enumerate() {
        let Some(label) = class_of.get(candidate.folder).copied().flatten().filter(|_| ok) else { continue };
        if read != written {
            images.copy_within(read * pixels..(read + 1) * pixels, written * pixels);
        }
        labels.push(label);
        names.push(relative_name(&candidate.path, dir));
        written += 1;
        train_len += usize::from(candidate.part == Part::Train);
    }
    images.truncate(written * pixels);
    (images, labels, names, train_len)
}

/// `path` relative to `dir` with `/` between its parts, as a targets file names it (e.g. `3/img_12.png`).
fn relative_name(path: &Path, dir: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Decoded images with their labels, train items first.
struct Labelled {
    images: Vec<u8>,
    labels: Vec<u8>,
    names: Vec<String>,
    train_len: usize,
    shape: ImageShape,
    class_names: Vec<String>,
}

/// The train and test parts: the folder's own test part when it has usable images, else a seeded share of
/// the training images.
fn split(labelled: Labelled, listing: &Listing, seed: u64, report: &mut LoadReport) -> Result<DataSplit, DataError> {
    let Labelled { mut images, mut labels, mut names, train_len, shape, class_names } = labelled;
    let (pixels, classes) = (shape.pixels(), class_names.len());
    let test_len = labels.len() - train_len;
    match &listing.test_root {
        Some(test_root) if test_len > 0 => {
            let test_images = images.split_off(train_len * pixels);
            images.shrink_to_fit();
            let test_labels = labels.split_off(train_len);
            let test_names = names.split_off(train_len.min(names.len()));
            let train_source = listing.train_root.display().to_string();
            let test_source = test_root.display().to_string();
            let train =
                Dataset::new(images, labels, shape, classes, class_names.clone(), train_source)?.with_names(names);
            let test = Dataset::new(test_images, test_labels, shape, classes, class_names, test_source)?
                .with_names(test_names);
            Ok(DataSplit { train, test })
        }
        test_root => {
            if let Some(test_root) = test_root {
                report.notes.push(format!(
                    "{} holds no usable test images, so a seeded share of the training images is held out",
                    report.display_path(test_root)
                ));
            }
            labels.truncate(train_len);
            names.truncate(train_len);
            images.truncate(train_len * pixels);
            let source = listing.train_root.display().to_string();
            let data = Dataset::new(images, labels, shape, classes, class_names, source)?.with_names(names);
            data.split(DEFAULT_TEST_FRACTION, seed)
        }
    }
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

#[cfg(test)]
mod tests;
