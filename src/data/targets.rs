//! Regression targets: a number per image, computed from its pixels (a digit's slant, its ink) or read from a
//! CSV of `index,target` rows, where indices count the training part first, then the test part, or — for an
//! image folder — `file,target` rows naming each image by its path in the folder.

use std::collections::HashMap;
use std::path::Path;

use crate::arch::ImageShape;
use crate::data::{DataError, DataSplit};
use crate::files::read_regular;
use crate::task::Target;

/// How many missing indices a targets error lists before summarising.
const LISTED_MISSING: usize = 10;

/// Intensity of pixel (x, y): the mean over channels, so colour images work too.
fn intensity(image: &[u8], shape: ImageShape, x: usize, y: usize) -> f64 {
    let plane = shape.height * shape.width;
    let sum: u32 =
        (0..shape.channels).filter_map(|c| image.get(c * plane + y * shape.width + x)).map(|&v| u32::from(v)).sum();
    f64::from(sum) / shape.channels.max(1) as f64
}

/// The image's slant: −μ₁₁ / μ₀₂ of its intensity (x to the right, y down), the horizontal shear that would
/// stand its ink upright. Positive when the top leans right, negative when it leans left, 0 for a blank image.
pub fn slant(image: &[u8], shape: ImageShape) -> f32 {
    let (mut mass, mut sum_x, mut sum_y) = (0.0, 0.0, 0.0);
    let points = || (0..shape.height).flat_map(|y| (0..shape.width).map(move |x| (x, y)));
    for (x, y) in points() {
        let v = intensity(image, shape, x, y);
        mass += v;
        sum_x += v * x as f64;
        sum_y += v * y as f64;
    }
    if mass <= 0.0 {
        return 0.0;
    }
    let (cx, cy) = (sum_x / mass, sum_y / mass);
    let (mut mu11, mut mu02) = (0.0, 0.0);
    for (x, y) in points() {
        let v = intensity(image, shape, x, y);
        mu11 += v * (x as f64 - cx) * (y as f64 - cy);
        mu02 += v * (y as f64 - cy).powi(2);
    }
    if mu02 <= 1e-9 { 0.0 } else { (-mu11 / mu02) as f32 }
}

/// The image's mean intensity in [0, 1].
pub fn ink(image: &[u8], shape: ImageShape) -> f32 {
    let pixels = shape.pixels().max(1);
    (image.iter().map(|&v| f64::from(v)).sum::<f64>() / (pixels as f64 * 255.0)) as f32
}

/// The targets of every training and every test item for `target`: computed from the pixels, or the ones a
/// targets file attached (`None` when `target` is [`Target::File`] and no file was given).
pub fn targets_of(split: &DataSplit, target: Target) -> Option<(Vec<f32>, Vec<f32>)> {
    let compute = |data: &crate::data::Dataset, f: fn(&[u8], ImageShape) -> f32| -> Vec<f32> {
        (0..data.len()).map(|i| data.image(i).map_or(0.0, |image| f(image, data.shape()))).collect()
    };
    match target {
        Target::Slant => Some((compute(&split.train, slant), compute(&split.test, slant))),
        Target::Ink => Some((compute(&split.train, ink), compute(&split.test, ink))),
        Target::File => Some((split.train.targets()?.to_vec(), split.test.targets()?.to_vec())),
    }
}

/// Reads `path` (rows `index,target`, an optional header) and attaches a target to every item of `split`:
/// index `i` is training item `i` below the training part's length, else test item `i − train`. Refuses, naming
/// the line, an index that is not a whole number or is out of range, a target that is not a finite number, a
/// repeated index and a row without two fields; and names the indices no row gives a target.
pub fn attach_targets(split: &mut DataSplit, path: &Path) -> Result<(), DataError> {
    let bytes = read_regular(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let total = split.train.len() + split.test.len();
    let names = match (split.train.names(), split.test.names()) {
        (Some(train), Some(test)) => Some(FileNames::new(train.iter().chain(test))),
        _ => None,
    };
    let targets = parse_targets(&bytes, total, names.as_ref(), path)?;
    let (train, test) = targets.split_at(split.train.len());
    split.train.set_targets(train.to_vec());
    split.test.set_targets(test.to_vec());
    Ok(())
}

/// An image folder's files, train then test, to find an example by the name a targets file gives it: its path
/// in the folder (`3/img_12.png`), or its file name alone when no other image has it.
struct FileNames {
    by_path: HashMap<String, usize>,
    /// `None` where two images share the name.
    by_file_name: HashMap<String, Option<usize>>,
    example: String,
}

impl FileNames {
    fn new<'a>(names: impl Iterator<Item = &'a String>) -> FileNames {
        let (mut by_path, mut by_file_name) = (HashMap::new(), HashMap::new());
        let mut example = String::new();
        for (index, name) in names.enumerate() {
            if example.is_empty() {
                example.clone_from(name);
            }
            by_path.insert(name.clone(), index);
            let file_name = name.rsplit('/').next().unwrap_or(name).to_owned();
            by_file_name.entry(file_name).and_modify(|seen| *seen = None).or_insert(Some(index));
        }
        FileNames { by_path, by_file_name, example }
    }

    fn find(&self, name: &str) -> Result<usize, String> {
        let name = name.trim_start_matches("./");
        if let Some(&index) = self.by_path.get(name) {
            return Ok(index);
        }
        match self.by_file_name.get(name) {
            Some(Some(index)) => Ok(*index),
            Some(None) => Err(format!("several images are called `{name}`: give its path in the folder")),
            None => Err(format!(
                "no image `{name}` in the data (images are named by their path in the folder, e.g. `{}`)",
                self.example
            )),
        }
    }
}

fn parse_targets(bytes: &[u8], total: usize, names: Option<&FileNames>, path: &Path) -> Result<Vec<f32>, DataError> {
    let bad = |line: usize, problem: String| DataError::TargetLine { path: path.to_path_buf(), line, problem };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut targets = vec![f32::NAN; total];
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(row + 1, |p| p.line() as usize);
            bad(line, format!("not readable as CSV ({e})"))
        })?;
        let line = record.position().map_or(row + 1, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let (Some(index), Some(value), 2) = (record.get(0), record.get(1), record.len()) else {
            return Err(bad(line, format!("expected two fields `index,target`, found {}", record.len())));
        };
        // A first row whose target is not a number is a header such as `index,target` or `file,target`.
        if row == 0 && value.parse::<f32>().is_err() {
            continue;
        }
        let index = match (index.parse::<usize>(), names) {
            (Ok(index), _) => index,
            (Err(_), Some(names)) => names.find(index).map_err(|problem| bad(line, problem))?,
            (Err(_), None) => return Err(bad(line, format!("the index `{index}` is not a whole number ≥ 0"))),
        };
        let value: f32 = value.parse().map_err(|_| bad(line, format!("the target `{value}` is not a number")))?;
        if !value.is_finite() {
            return Err(bad(line, format!("the target {value} is not finite: give a number")));
        }
        let slot = targets.get_mut(index).ok_or_else(|| {
            bad(
                line,
                format!("there is no example {index}: the data has {total} (indices 0 to {})", total.saturating_sub(1)),
            )
        })?;
        if let Some(first) = seen.insert(index, line) {
            return Err(bad(
                line,
                format!("index {index} appears again (first on line {first}): give one target per example"),
            ));
        }
        *slot = value;
    }
    let missing: Vec<usize> = (0..total).filter(|&i| targets.get(i).is_some_and(|t| t.is_nan())).collect();
    if !missing.is_empty() {
        // An image folder's examples are listed by file: an index means nothing to its owner.
        let name = |i: &usize| {
            names
                .and_then(|n| n.by_path.iter().find(|&(_, &at)| at == *i))
                .map_or(i.to_string(), |(name, _)| name.clone())
        };
        let mut listed: Vec<String> = missing.iter().take(LISTED_MISSING).map(name).collect();
        if missing.len() > LISTED_MISSING {
            listed.push("…".to_owned());
        }
        return Err(DataError::TargetsMissing {
            path: path.to_path_buf(),
            missing: missing.len(),
            total,
            listed: listed.join(", "),
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape { channels: 1, height: 9, width: 9 };

    /// A one-pixel-wide stroke from the bottom at `bottom_x` to the top at `top_x`.
    fn stroke(bottom_x: f64, top_x: f64) -> Vec<u8> {
        let mut image = vec![0u8; SHAPE.pixels()];
        for y in 0..SHAPE.height {
            let t = (SHAPE.height - 1 - y) as f64 / (SHAPE.height - 1) as f64;
            let x = (bottom_x + (top_x - bottom_x) * t).round() as usize;
            image[y * SHAPE.width + x] = 255;
        }
        image
    }

    #[test]
    fn slant_is_positive_leaning_right_negative_leaning_left_and_zero_upright() {
        assert!(slant(&stroke(2.0, 6.0), SHAPE) > 0.3);
        assert!(slant(&stroke(6.0, 2.0), SHAPE) < -0.3);
        assert!(slant(&stroke(4.0, 4.0), SHAPE).abs() < 1e-6);
        assert_eq!(slant(&[0; 81], SHAPE), 0.0);
        assert!((ink(&[255; 81], SHAPE) - 1.0).abs() < 1e-6);
    }

    fn parse(text: &str) -> Result<Vec<f32>, String> {
        parse_targets(text.as_bytes(), 3, None, Path::new("t.csv")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_targets_file_with_a_header_gives_every_example_its_number() {
        assert_eq!(parse("index,target\n2, 0.5\n0,-1\n\n1,3e2\n"), Ok(vec![-1.0, 300.0, 0.5]));
    }

    #[test]
    fn bad_rows_are_refused_naming_the_line() {
        for (text, expected) in [
            ("0,1\n1,x\n2,3\n", "t.csv: line 2: the target `x` is not a number"),
            ("0,1\n1,NaN\n2,3\n", "t.csv: line 2: the target NaN is not finite"),
            ("0,1\n1,2\n0,3\n", "t.csv: line 3: index 0 appears again (first on line 1)"),
            ("0,1\n1,2\n7,3\n", "t.csv: line 3: there is no example 7: the data has 3"),
            ("0,1\n-1,2\n", "t.csv: line 2: the index `-1` is not a whole number"),
            ("0,1,5\n", "t.csv: line 1: expected two fields"),
            ("0,1\n2,2\n", "t.csv: gives no target for 1 of the 3 examples (indices 1)"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }
}
