//! Tests of the image-folder loader: sizes, colour, skipped files and splits.

use image::{GrayImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::data::folder::*;
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
    assert!(images.iter().any(|(label, image)| *label == 1 && image[210] == RED[0] && image[plane + 210] == RED[1]));
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
    let error = load_image_folder(dir.path(), &LoadOptions { channels: Some(2), ..options }).expect_err("2 channels");
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
    assert!(report.notes.iter().any(|note| note.contains("64×64") && note.contains("100×80")), "{:?}", report.notes);
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
    let skipped: Vec<(String, String)> =
        report.skipped.iter().map(|skipped| (report.display_path(&skipped.path), skipped.reason.to_string())).collect();
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

#[cfg(unix)]
#[test]
fn links_fifos_and_loops_are_walked_once_and_never_block() -> Result<(), DataError> {
    use std::os::unix::fs::symlink;
    let dir = ScratchDir::new("folder-hostile");
    let train = make_dir(&dir.path().join("train"));
    let test = make_dir(&dir.path().join("test"));
    for (class, colour) in [("a", RED), ("b", BLUE)] {
        let folder = make_dir(&train.join(class));
        for inset in 1..4 {
            save(square(12, colour, inset), &folder.join(format!("{inset}.png")), ImageFormat::Png);
        }
        save(disc(12, colour), &make_dir(&test.join(class)).join("t.png"), ImageFormat::Png);
    }
    let a = train.join("a");
    // Three links back to the folder itself once made 3^16 paths; one into a sibling class, one to the test part
    // (test leakage), a link to one image, and a FIFO named like an image, which blocks any reader for ever.
    for name in ["l1", "l2", "l3"] {
        symlink(".", a.join(name)).expect("link");
    }
    symlink("../b", a.join("to-b")).expect("link");
    symlink("../../test", a.join("to-test")).expect("link");
    symlink("1.png", a.join("again.png")).expect("link");
    std::fs::write(a.join("zero.png"), b"").expect("write");
    let made = std::process::Command::new("mkfifo").arg(a.join("x.png")).status().expect("mkfifo");
    assert!(made.success());
    symlink("../train/b", test.join("c")).expect("link");

    let (split, report) = load_image_folder(dir.path(), &LoadOptions::default())?;
    assert_eq!((split.train.len(), split.test.len()), (6, 2), "{report:?}");
    let images = all_images(&split);
    for (index, image) in images.iter().enumerate() {
        assert!(!images[..index].contains(image), "image {index} is listed twice");
    }
    let reason = |name: &str| {
        let skipped = report.skipped.iter().find(|skipped| skipped.path.ends_with(name));
        skipped.map(|skipped| skipped.reason.to_string()).unwrap_or_else(|| panic!("{name} not reported: {report:?}"))
    };
    assert_eq!(reason("x.png"), "a FIFO (named pipe), not a regular file");
    assert_eq!(reason("zero.png"), "corrupt: the file is empty");
    assert_eq!(reason("l1"), "the same as train/a, reached again through a link");
    assert_eq!(reason("to-b"), "the same as train/b, reached again through a link");
    assert_eq!(reason("again.png"), "the same as train/a/1.png, reached again through a link");
    assert!(reason("test/c").starts_with("the same as train/b"));
    Ok(())
}

#[test]
fn one_class_is_not_a_classifier() {
    let dir = ScratchDir::new("folder-one-class");
    let only = make_dir(&dir.path().join("cats"));
    for inset in 1..5 {
        save(square(10, GREEN, inset), &only.join(format!("{inset}.png")), ImageFormat::Png);
    }
    let error = crate::data::load_path(dir.path(), &LoadOptions::default()).expect_err("one class");
    let message = error.to_string();
    assert!(message.contains("a single class (cats)") && message.contains("add a sub-folder"), "{message}");
}

#[cfg(unix)]
#[test]
fn an_unreadable_class_folder_is_reported_once() -> Result<(), DataError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = ScratchDir::new("folder-unreadable");
    for (class, colour) in [("a", RED), ("b", BLUE)] {
        let folder = make_dir(&dir.path().join(class));
        for inset in 1..4 {
            save(square(12, colour, inset), &folder.join(format!("{inset}.png")), ImageFormat::Png);
        }
    }
    let locked = make_dir(&dir.path().join("locked"));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let readable_anyway = std::fs::read_dir(&locked).is_ok();
    let (_, report) = load_image_folder(dir.path(), &LoadOptions::default())?;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mentions: Vec<_> = report.skipped.iter().filter(|skipped| skipped.path == locked).collect();
    assert_eq!(mentions.len(), 1, "{report:?}");
    // As root (CI) the folder stays readable and is reported empty; elsewhere it is reported unreadable.
    let expected = if readable_anyway { "empty class folder" } else { "cannot read" };
    assert!(mentions[0].reason.to_string().starts_with(expected), "{:?}", mentions[0]);
    Ok(())
}

#[test]
fn files_deleted_between_listing_and_decoding_are_skipped_and_an_emptied_class_is_dropped() -> Result<(), DataError> {
    let scratch = ScratchDir::new("vanishing");
    let root = scratch.path();
    for (class, colour) in [("red", RED), ("green", GREEN), ("blue", BLUE)] {
        let dir = make_dir(&root.join(class));
        for i in 0..4 {
            save(square(12, colour, i), &dir.join(format!("{i}.png")), ImageFormat::Png);
        }
    }
    // The loader's passes one by one, with the folder changing under it between the header pass and decoding.
    let mut report = crate::data::report::LoadReport::new(root);
    let listing = crate::data::listing::list_classes(root, &mut report)?;
    let (usable, shape) = choose_shape(&listing, None, None, &mut report);
    assert_eq!(usable.len(), 12);
    std::fs::remove_dir_all(root.join("blue")).expect("delete a class folder");
    std::fs::remove_file(root.join("red").join("0.png")).expect("delete one image");
    let (_, decoded) = decode_all(root, &usable, shape, &mut report)?;
    assert_eq!(decoded.iter().filter(|ok| !**ok).count(), 5, "the five vanished files failed to decode");
    let vanished: Vec<_> = report.skipped.iter().filter(|s| matches!(s.reason, SkipReason::Unreadable(_))).collect();
    assert_eq!(vanished.len(), 5, "{:?}", report.skipped);
    let options = LoadOptions { classes: None, seed: 1, image_size: None, channels: None };
    let (class_of, names) = decide_classes(root, &listing, &usable, &decoded, &options, &mut report)?;
    assert_eq!(names, ["green", "red"], "the emptied class is dropped, the others stay");
    assert_eq!(class_of.iter().filter(|c| c.is_some()).count(), 2);
    // And the whole load of what is left works, with nothing of the deleted class in it.
    let (split, _) = load_image_folder(root, &options)?;
    assert_eq!(split.train.len() + split.test.len(), 7);
    Ok(())
}

/// A 10×8 4-bit palette PNG whose palette is shorter than its pixels need, with valid checksums: png 0.18.1
/// panics decoding it (an out-of-range slice in its palette expansion). Found by the `image` fuzz target.
const PNG_THAT_PANICS_THE_DECODER: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x00, 0x08, 0x04, 0x03, 0x00, 0x00, 0x00, 0x32, 0xd4, 0x73, 0x85, 0x00, 0x00, 0x00, 0x20, 0x50,
    0x4c, 0x54, 0x45, 0x9f, 0xa9, 0x20, 0x5d, 0xae, 0x40, 0x17, 0xa0, 0x10, 0x3b, 0x53, 0x31, 0x36, 0x0f, 0x20, 0x4e,
    0x00, 0x5c, 0x00, 0x00, 0x20, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x05, 0x00, 0x00, 0x00, 0x48, 0xfd, 0xba,
    0x37, 0x00, 0x00, 0x00, 0x39, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x2c, 0x67, 0xf8, 0xcf, 0xc8, 0xc0, 0xc4,
    0xc0, 0xf0, 0xb6, 0x9b, 0x81, 0x89, 0xe1, 0xcf, 0x5a, 0x86, 0x0d, 0x2c, 0x0c, 0x6b, 0xdd, 0xfe, 0x5c, 0x65, 0xfa,
    0xcd, 0xfa, 0x7f, 0x7d, 0x00, 0x13, 0xc3, 0xff, 0xd5, 0xa2, 0x0c, 0x4c, 0xac, 0x7f, 0x98, 0x03, 0x19, 0x58, 0x18,
    0x42, 0x98, 0x19, 0x18, 0x00, 0x7c, 0x0c, 0x0e, 0x89, 0x50, 0x78, 0x4b, 0x49, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[test]
fn a_file_that_panics_the_decoder_is_skipped_as_corrupt_and_the_rest_loads() -> Result<(), DataError> {
    let scratch = ScratchDir::new("decoder-panic");
    let root = scratch.path();
    for (class, colour) in [("red", RED), ("green", GREEN)] {
        let dir = make_dir(&root.join(class));
        for i in 0..3 {
            save(square(12, colour, i), &dir.join(format!("{i}.png")), ImageFormat::Png);
        }
    }
    let bad = root.join("red").join("bad.png");
    std::fs::write(&bad, PNG_THAT_PANICS_THE_DECODER).expect("write the file");
    let options = LoadOptions { classes: None, seed: 1, image_size: None, channels: None };
    let (split, report) = load_image_folder(root, &options)?;
    assert_eq!(split.train.len() + split.test.len(), 6, "every other image loads");
    let skipped: Vec<_> = report.skipped.iter().filter(|s| s.path == bad).collect();
    assert_eq!(skipped.len(), 1, "{:?}", report.skipped);
    assert!(skipped[0].reason.to_string().contains("decoder failed"), "{}", skipped[0].reason);
    // As a probe image too: an error naming the file, not a crash.
    let shape = crate::arch::ImageShape { channels: 1, height: 12, width: 12 };
    assert!(load_probe_image(&bad, shape).is_err());
    Ok(())
}
