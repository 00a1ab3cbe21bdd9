//! EMNIST's IDX file names and class sets, and the two fixes its files need on load: images stored
//! transposed, and the letters split's labels starting at 1.

use crate::arch::ImageShape;
use crate::data::DataError;

/// Digits, then capital letters, as EMNIST orders its classes.
const DIGITS: &str = "0123456789";
const CAPITALS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER_CASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// The lower-case letters that balanced and bymerge keep apart from their capitals.
const DISTINCT_LOWER_CASE: &str = "abdefghnqrt";

/// One of EMNIST's six splits; each has its own class set and file-name prefix `emnist-<split>-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmnistSplit {
    Balanced,
    ByClass,
    ByMerge,
    Digits,
    Letters,
    Mnist,
}

impl EmnistSplit {
    /// Every split, in the order folder scans report them.
    pub const ALL: [Self; 6] = [Self::Balanced, Self::ByClass, Self::ByMerge, Self::Digits, Self::Letters, Self::Mnist];

    /// The split's name as it appears in the file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Balanced => "balanced",
            Self::ByClass => "byclass",
            Self::ByMerge => "bymerge",
            Self::Digits => "digits",
            Self::Letters => "letters",
            Self::Mnist => "mnist",
        }
    }

    /// Number of classes after loading (letters: 26, because its labels are shifted down by one).
    pub fn classes(self) -> usize {
        match self {
            Self::Balanced | Self::ByMerge => 47,
            Self::ByClass => 62,
            Self::Digits | Self::Mnist => 10,
            Self::Letters => 26,
        }
    }

    /// Class names in label order: digits, then letters as the split defines them.
    pub fn class_names(self) -> Vec<String> {
        let chars = |set: &str| set.chars().map(String::from).collect::<Vec<_>>();
        match self {
            Self::Digits | Self::Mnist => chars(DIGITS),
            Self::ByClass => [DIGITS, CAPITALS, LOWER_CASE].into_iter().flat_map(chars).collect(),
            Self::Balanced | Self::ByMerge => {
                [DIGITS, CAPITALS, DISTINCT_LOWER_CASE].into_iter().flat_map(chars).collect()
            }
            // Letters merges each capital with its lower case into one class.
            Self::Letters => {
                CAPITALS.chars().zip(LOWER_CASE.chars()).map(|(upper, lower)| format!("{upper}{lower}")).collect()
            }
        }
    }

    /// Smallest label the split's files use. Letters labels run 1..=26 with class 0 unused; they are
    /// shifted down by this much on load so that classes are dense, 0..=25.
    pub fn label_offset(self) -> u8 {
        match self {
            Self::Letters => 1,
            _ => 0,
        }
    }

    /// The split a file name belongs to and the rest of the name after `emnist-<split>-`.
    pub(crate) fn parse_file_name(name: &str) -> Option<(Self, &str)> {
        let rest = name.strip_prefix("emnist-")?;
        Self::ALL.into_iter().find_map(|split| {
            let tail = rest.strip_prefix(split.name())?.strip_prefix('-')?;
            Some((split, tail))
        })
    }
}

/// Shifts letters-style labels down by `split.label_offset()`, failing on a label below it.
pub(crate) fn shift_labels(labels: &mut [u8], split: EmnistSplit, file: &str) -> Result<(), DataError> {
    let offset = split.label_offset();
    if offset == 0 {
        return Ok(());
    }
    for (index, label) in labels.iter_mut().enumerate() {
        *label = label.checked_sub(offset).ok_or_else(|| DataError::LabelBelowOffset {
            file: file.to_owned(),
            index,
            value: *label,
            offset,
            split: split.name(),
        })?;
    }
    Ok(())
}

/// EMNIST stores each image column by column; transposing every image makes it display upright.
/// Returns the upright shape (height and width swap, which only matters for non-square images).
pub(crate) fn transpose_images(images: &mut [u8], shape: ImageShape) -> ImageShape {
    let ImageShape { channels, height, width } = shape;
    let plane = height.saturating_mul(width);
    if plane == 0 {
        return shape;
    }
    let mut scratch = vec![0u8; plane];
    for stored in images.chunks_exact_mut(plane) {
        // The file's row r, column c is the image's row c, column r.
        for (row, stored_row) in stored.chunks_exact(width).enumerate() {
            for (col, &pixel) in stored_row.iter().enumerate() {
                if let Some(slot) = scratch.get_mut(col * height + row) {
                    *slot = pixel;
                }
            }
        }
        stored.copy_from_slice(&scratch);
    }
    ImageShape { channels, height: width, width: height }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_match_class_counts() {
        for split in EmnistSplit::ALL {
            assert_eq!(split.class_names().len(), split.classes(), "{split:?}");
        }
        assert_eq!(EmnistSplit::Balanced.class_names().last().map(String::as_str), Some("t"));
        assert_eq!(EmnistSplit::Letters.class_names().first().map(String::as_str), Some("Aa"));
    }

    #[test]
    fn file_names_parse_to_split_and_rest() {
        assert_eq!(
            EmnistSplit::parse_file_name("emnist-byclass-train-images-idx3-ubyte.gz"),
            Some((EmnistSplit::ByClass, "train-images-idx3-ubyte.gz"))
        );
        assert_eq!(EmnistSplit::parse_file_name("emnist-bymergex-train"), None);
        assert_eq!(EmnistSplit::parse_file_name("train-images-idx3-ubyte"), None);
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // Two 2×3 images stored transposed.
        let mut images = vec![1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60];
        let shape = transpose_images(&mut images, ImageShape { channels: 1, height: 2, width: 3 });
        assert_eq!(shape, ImageShape { channels: 1, height: 3, width: 2 });
        assert_eq!(images, vec![1, 4, 2, 5, 3, 6, 10, 40, 20, 50, 30, 60]);
    }

    #[test]
    fn letters_labels_shift_down_and_zero_is_rejected() {
        let mut labels = vec![1, 26, 3];
        shift_labels(&mut labels, EmnistSplit::Letters, "l").expect("valid letters labels");
        assert_eq!(labels, vec![0, 25, 2]);
        let mut digits = vec![0, 9];
        shift_labels(&mut digits, EmnistSplit::Digits, "d").expect("digits are not shifted");
        assert_eq!(digits, vec![0, 9]);
        let error = shift_labels(&mut [2, 0], EmnistSplit::Letters, "letters.idx").expect_err("0 is not a letter");
        assert!(matches!(error, DataError::LabelBelowOffset { index: 1, value: 0, .. }), "{error:?}");
        assert!(error.to_string().starts_with("letters.idx"), "{error}");
    }
}
