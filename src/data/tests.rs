//! Tests of the IDX folder loader, class inference and the train/test split.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::idx_dir::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use crate::data::test_support::{ScratchDir, asset_path, gunzip_asset};
use crate::data::*;

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
    let mut parts: Vec<&[u8]> =
        first.train.images().chunks_exact(MNIST_PIXELS).chain(first.test.images().chunks_exact(MNIST_PIXELS)).collect();
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
    let images: Vec<u8> = (0..labels.len()).flat_map(|index| (0..6).map(move |pos| (index * 10 + pos) as u8)).collect();
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
fn a_split_of_sixty_thousand_deals_every_image_to_exactly_one_side() -> Result<(), DataError> {
    // Each image carries its own index in its first two bytes, so where it went can be read back.
    let shape = ImageShape { channels: 1, height: 28, width: 28 };
    let mut images = vec![0u8; 60_000 * 784];
    for (index, image) in images.chunks_exact_mut(784).enumerate() {
        image[..2].copy_from_slice(&(index as u16).to_le_bytes());
    }
    let set = Dataset::new(images, vec![1; 60_000], shape, 10, default_class_names(10), "big".into())?;
    let split = set.split(DEFAULT_TEST_FRACTION, 4)?;
    assert_eq!((split.train.len(), split.test.len()), (48_000, 12_000));
    let index_of = |part: &Dataset, item: usize| {
        let image = part.image(item).unwrap();
        u16::from_le_bytes([image[0], image[1]])
    };
    let mut seen = vec![0u8; 60_000];
    for part in [&split.train, &split.test] {
        for item in 0..part.len() {
            seen[usize::from(index_of(part, item))] += 1;
        }
    }
    assert!(seen.iter().all(|&count| count == 1), "every image once, on one side");
    // Seeded and shuffled: the test side is not simply the tail.
    assert!((0..100).any(|item| index_of(&split.test, item) < 48_000));
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
