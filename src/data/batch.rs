//! Turning a `Dataset` into training batches: seeded epoch shuffling, pixel normalisation,
//! random-shift augmentation and filling reusable N×C×H×W f32 buffers.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{DataError, Dataset};

/// Pixel bytes are scaled into [0, 1] by this before normalising.
const PIXEL_SCALE: f32 = 255.0;
/// Smallest standard deviation used, so a constant data set cannot cause a division by zero.
const MIN_STD: f32 = 1e-6;

/// Maps a pixel byte to `(pixel / 255 − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: f32,
    pub std: f32,
}

impl Normalization {
    /// Mean and standard deviation of `pixel / 255` over every pixel of `dataset` (use the train set).
    pub fn from_dataset(dataset: &Dataset) -> Self {
        let pixels = dataset.images();
        if pixels.is_empty() {
            return Self::none();
        }
        // Integer sums are exact: even 2^32 pixels of 255² stay far below u64::MAX.
        let (sum, sum_of_squares) = pixels.iter().fold((0u64, 0u64), |(sum, squares), &pixel| {
            let pixel = u64::from(pixel);
            (sum + pixel, squares + pixel * pixel)
        });
        let count = pixels.len() as f64;
        let scale = f64::from(PIXEL_SCALE);
        let mean = sum as f64 / count / scale;
        let variance = (sum_of_squares as f64 / count / (scale * scale) - mean * mean).max(0.0);
        Self { mean: mean as f32, std: (variance.sqrt() as f32).max(MIN_STD) }
    }

    /// Only scales to [0, 1], so a zero background stays exactly 0.
    pub fn none() -> Self {
        Self { mean: 0.0, std: 1.0 }
    }

    pub fn apply(&self, pixel: u8) -> f32 {
        (f32::from(pixel) / PIXEL_SCALE - self.mean) / self.std.max(MIN_STD)
    }

    /// All 256 possible outputs, so a batch costs one table look-up per pixel.
    fn table(&self) -> [f32; 256] {
        let mut table = [0.0; 256];
        for (pixel, value) in (0..=u8::MAX).zip(table.iter_mut()) {
            *value = self.apply(pixel);
        }
        table
    }
}

/// Random-translation augmentation: each image moves by up to `max_pixels` in x and y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub max_pixels: usize,
}

/// Hands out batches of indices from seeded per-epoch permutations.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    cursor: usize,
    epoch: usize,
}

impl BatchSampler {
    /// A sampler over `0..len`; the same `seed` always yields the same sequence of batches.
    pub fn new(len: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut rng);
        Self { rng, order, cursor: 0, epoch: 0 }
    }

    /// The next `batch_size` indices (all of them if `batch_size` exceeds the data set).
    ///
    /// A batch never mixes two epochs: when too few indices are left for a full batch, the short
    /// tail is dropped and a freshly shuffled epoch begins, so every batch has the same size.
    pub fn next_indices(&mut self, batch_size: usize) -> Vec<usize> {
        let size = batch_size.min(self.order.len());
        if size == 0 {
            return Vec::new();
        }
        if self.order.len() - self.cursor < size {
            self.start_next_epoch();
        }
        let end = self.cursor + size;
        let batch = self.order.get(self.cursor..end).map(<[usize]>::to_vec).unwrap_or_default();
        self.cursor = end;
        // Count the epoch as soon as it is used up, not only when the next batch is drawn.
        if self.cursor == self.order.len() {
            self.start_next_epoch();
        }
        batch
    }

    /// Number of completed epochs (permutations used up or cut short).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    fn start_next_epoch(&mut self) {
        self.epoch += 1;
        self.cursor = 0;
        self.order.shuffle(&mut self.rng);
    }

    /// Everything that decides the batches still to come, for a checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState { order: self.order.clone(), cursor: self.cursor, epoch: self.epoch, rng: RngState::of(&self.rng) }
    }

    /// The sampler `state` describes, over a data set of `len` examples; `None` when the state does not
    /// belong to such a data set (its order is not a permutation of `0..len`, or its cursor is past it).
    pub fn from_state(state: SamplerState, len: usize) -> Option<BatchSampler> {
        let mut seen = vec![false; len];
        let permutation =
            state.order.len() == len && state.order.iter().all(|&i| i < len && !std::mem::replace(&mut seen[i], true));
        (permutation && state.cursor <= len).then(|| BatchSampler {
            rng: state.rng.restore(),
            order: state.order,
            cursor: state.cursor,
            epoch: state.epoch,
        })
    }
}

/// A [`BatchSampler`]'s state: the epoch's order, how far into it, and the generator of the next orders.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamplerState {
    /// The current epoch's permutation of the training indices.
    pub order: Vec<usize>,
    /// Indices of `order` already used.
    pub cursor: usize,
    /// Completed epochs.
    pub epoch: usize,
    /// The generator that shuffles the next epochs.
    pub rng: RngState,
}

/// A ChaCha8 generator's exact position: its seed, stream and word position (the next value it gives is the
/// same after [`RngState::restore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    /// The 256-bit seed.
    pub seed: [u8; 32],
    /// The stream number.
    pub stream: u64,
    /// 32-bit words already consumed.
    pub word_pos: u128,
}

impl RngState {
    /// Where `rng` stands.
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos() }
    }

    /// A generator standing exactly there.
    pub fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// Clears `images_out` / `labels_out` and fills them with the items at `indices`, images in
/// N×C×H×W order, normalised and optionally shifted. The buffers keep their capacity between
/// calls, so a steady batch size allocates nothing. On error the buffers are left empty.
pub fn fill_batch(
    dataset: &Dataset,
    indices: &[usize],
    norm: &Normalization,
    shift: Option<(&Shift, &mut ChaCha8Rng)>,
    images_out: &mut Vec<f32>,
    labels_out: &mut Vec<i64>,
) -> Result<(), DataError> {
    images_out.clear();
    labels_out.clear();
    // Check every index first so a bad one leaves no half-filled batch behind.
    if let Some(&index) = indices.iter().find(|&&index| index >= dataset.len()) {
        return Err(DataError::IndexOutOfRange { source_name: dataset.source().to_owned(), index, len: dataset.len() });
    }
    let shape = dataset.shape();
    let values = indices.len().checked_mul(shape.pixels()).ok_or_else(|| DataError::IndexOutOfRange {
        source_name: dataset.source().to_owned(),
        index: indices.len(),
        len: dataset.len(),
    })?;
    images_out.reserve(values);
    labels_out.reserve(indices.len());

    let table = norm.table();
    let mut shift = shift.filter(|(shift, _)| shift.max_pixels > 0);
    for &index in indices {
        let (Some(image), Some(label)) = (dataset.image(index), dataset.label(index)) else {
            // Unreachable after the check above; kept as an error rather than a panic.
            images_out.clear();
            labels_out.clear();
            return Err(DataError::IndexOutOfRange {
                source_name: dataset.source().to_owned(),
                index,
                len: dataset.len(),
            });
        };
        match shift.as_mut() {
            None => images_out.extend(image.iter().map(|&pixel| lookup(&table, pixel))),
            Some((shift, rng)) => {
                let reach = shift.max_pixels.min(shape.height.max(shape.width));
                let reach = i64::try_from(reach).unwrap_or(i64::MAX);
                let dy = rng.random_range(-reach..=reach);
                let dx = rng.random_range(-reach..=reach);
                let plane = shape.height * shape.width;
                for channel in image.chunks_exact(plane.max(1)) {
                    push_shifted(channel, shape.height, shape.width, (dy, dx), &table, images_out);
                }
            }
        }
        labels_out.push(i64::from(label));
    }
    Ok(())
}

fn lookup(table: &[f32; 256], pixel: u8) -> f32 {
    table.get(usize::from(pixel)).copied().unwrap_or_default()
}

/// For one axis of length `len` moved by `shift`: first destination position, first source
/// position and how many positions carry over; the rest is vacated.
fn overlap(len: usize, shift: i64) -> (usize, usize, usize) {
    let magnitude = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX).min(len);
    let kept = len - magnitude;
    if shift >= 0 { (magnitude, 0, kept) } else { (0, magnitude, kept) }
}

/// Appends one H×W channel moved by (`dy`, `dx`); vacated pixels get the value of a raw 0.
fn push_shifted(
    channel: &[u8],
    height: usize,
    width: usize,
    (dy, dx): (i64, i64),
    table: &[f32; 256],
    out: &mut Vec<f32>,
) {
    let background = lookup(table, 0);
    let (row_dest, row_src, rows_kept) = overlap(height, dy);
    let (col_dest, col_src, cols_kept) = overlap(width, dx);
    let blank_rows_after = height - row_dest - rows_kept;
    let blank_cols_after = width - col_dest - cols_kept;

    out.extend(std::iter::repeat_n(background, row_dest * width));
    for source_row in channel.chunks_exact(width.max(1)).skip(row_src).take(rows_kept) {
        out.extend(std::iter::repeat_n(background, col_dest));
        let kept = source_row.iter().skip(col_src).take(cols_kept);
        out.extend(kept.map(|&pixel| lookup(table, pixel)));
        out.extend(std::iter::repeat_n(background, blank_cols_after));
    }
    out.extend(std::iter::repeat_n(background, blank_rows_after * width));
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::data::{ImageShape, embedded_mnist};

    fn mnist_train() -> Dataset {
        embedded_mnist().expect("embedded MNIST").train
    }

    fn one_epoch(sampler: &mut BatchSampler, batch_size: usize, batches: usize) -> Vec<usize> {
        (0..batches).flat_map(|_| sampler.next_indices(batch_size)).collect()
    }

    #[test]
    fn a_restored_sampler_draws_the_same_batches_across_epochs() {
        let mut sampler = BatchSampler::new(100, 3);
        one_epoch(&mut sampler, 7, 20); // part way into the second epoch
        let state = sampler.state();
        let json = serde_json::to_string(&state).unwrap();
        let mut restored = BatchSampler::from_state(serde_json::from_str(&json).unwrap(), 100).unwrap();
        assert_eq!(one_epoch(&mut restored, 7, 40), one_epoch(&mut sampler, 7, 40), "the next three epochs");
        assert_eq!(restored.epoch(), sampler.epoch());
        // A state from another data set is refused.
        assert!(BatchSampler::from_state(state.clone(), 99).is_none());
        let mut twice = state;
        twice.order[1] = twice.order[0];
        assert!(BatchSampler::from_state(twice, 100).is_none());
    }

    #[test]
    fn every_index_appears_once_per_epoch() {
        let mut sampler = BatchSampler::new(100, 3);
        let first = one_epoch(&mut sampler, 10, 10);
        assert_eq!(sampler.epoch(), 1);
        let second = one_epoch(&mut sampler, 10, 10);
        assert_eq!(sampler.epoch(), 2);
        for epoch in [&first, &second] {
            let mut sorted = epoch.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        }
        assert_ne!(first, second, "each epoch is reshuffled");
        assert_ne!(first, (0..100).collect::<Vec<_>>(), "the first epoch is shuffled too");
    }

    #[test]
    fn same_seed_gives_the_same_batches() {
        let mut a = BatchSampler::new(50, 11);
        let mut b = BatchSampler::new(50, 11);
        let mut c = BatchSampler::new(50, 12);
        let from_a = one_epoch(&mut a, 7, 20);
        assert_eq!(from_a, one_epoch(&mut b, 7, 20));
        assert_ne!(from_a, one_epoch(&mut c, 7, 20));
    }

    #[test]
    fn short_tail_is_dropped_and_batches_never_straddle_epochs() {
        let mut sampler = BatchSampler::new(10, 5);
        let first = sampler.next_indices(4);
        let second = sampler.next_indices(4);
        assert_eq!(sampler.epoch(), 0);
        // Only 2 left: the third batch comes whole from a new epoch.
        let third = sampler.next_indices(4);
        assert_eq!(sampler.epoch(), 1);
        assert_eq!(third.len(), 4);
        let old_epoch: HashSet<usize> = first.iter().chain(&second).copied().collect();
        assert_eq!(old_epoch.len(), 8);
        let third_set: HashSet<usize> = third.iter().copied().collect();
        assert_eq!(third_set.len(), 4, "no repeats inside a batch");
    }

    #[test]
    fn batch_size_can_change_between_calls() {
        let mut sampler = BatchSampler::new(20, 9);
        let mut seen = HashSet::new();
        for size in [3, 5, 1, 8] {
            let batch = sampler.next_indices(size);
            assert_eq!(batch.len(), size);
            seen.extend(batch);
        }
        assert_eq!(seen.len(), 17, "one epoch, no index twice");
        assert_eq!(sampler.epoch(), 0);
        let next = sampler.next_indices(6);
        assert_eq!(next.len(), 6);
        assert_eq!(sampler.epoch(), 1);
        // Larger than the data set: the whole set, once.
        let all = sampler.next_indices(50);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert!(sampler.next_indices(0).is_empty());
        assert!(BatchSampler::new(0, 1).next_indices(4).is_empty());
    }

    #[test]
    fn no_normalisation_keeps_background_at_zero() {
        let train = mnist_train();
        let norm = Normalization::none();
        assert_eq!(norm.apply(0), 0.0);
        assert_eq!(norm.apply(255), 1.0);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &[0, 5], &norm, None, &mut images, &mut labels).expect("fill");
        assert_eq!(images.len(), 2 * 28 * 28);
        assert_eq!(labels, vec![i64::from(train.labels()[0]), i64::from(train.labels()[5])]);
        let first = train.image(0).expect("image");
        for (&pixel, &value) in first.iter().zip(&images) {
            if pixel == 0 {
                assert_eq!(value, 0.0);
            } else {
                assert!((value - f32::from(pixel) / 255.0).abs() < 1e-6);
            }
        }
        assert!(images.iter().all(|value| (0.0..=1.0).contains(value)));
    }

    #[test]
    fn dataset_normalisation_centres_a_large_batch() {
        let train = mnist_train();
        let norm = Normalization::from_dataset(&train);
        assert!(norm.mean > 0.05 && norm.mean < 0.3, "{norm:?}");
        assert!(norm.std > 0.2 && norm.std < 0.5, "{norm:?}");
        let indices = BatchSampler::new(train.len(), 4).next_indices(2000);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &indices, &norm, None, &mut images, &mut labels).expect("fill");
        let count = images.len() as f64;
        let mean = images.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
        let variance = images.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / count;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((variance.sqrt() - 1.0).abs() < 0.05, "std {}", variance.sqrt());
    }

    #[test]
    fn buffers_are_reused_without_reallocating() {
        let train = mnist_train();
        let norm = Normalization::none();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &[1, 2, 3], &norm, None, &mut images, &mut labels).expect("fill");
        let (image_ptr, label_ptr) = (images.as_ptr(), labels.as_ptr());
        fill_batch(&train, &[4, 5, 6], &norm, None, &mut images, &mut labels).expect("fill");
        assert_eq!((images.as_ptr(), labels.as_ptr()), (image_ptr, label_ptr));
        assert_eq!(labels.len(), 3);
        assert_eq!(labels[0], i64::from(train.labels()[4]));
    }

    #[test]
    fn out_of_range_index_is_an_error_and_leaves_buffers_empty() {
        let train = mnist_train();
        let (mut images, mut labels) = (vec![1.0], vec![1]);
        let error = fill_batch(&train, &[0, 8000], &Normalization::none(), None, &mut images, &mut labels)
            .expect_err("must fail");
        assert!(matches!(error, DataError::IndexOutOfRange { index: 8000, len: 8000, .. }), "{error:?}");
        assert!(images.is_empty() && labels.is_empty());
    }

    #[test]
    fn zero_shift_is_the_identity() {
        let train = mnist_train();
        let norm = Normalization::from_dataset(&train);
        let indices: Vec<usize> = (0..64).collect();
        let (mut plain, mut plain_labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &indices, &norm, None, &mut plain, &mut plain_labels).expect("fill");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let no_shift = Shift { max_pixels: 0 };
        let (mut shifted, mut shifted_labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &indices, &norm, Some((&no_shift, &mut rng)), &mut shifted, &mut shifted_labels)
            .expect("fill");
        assert_eq!(shifted, plain);
        assert_eq!(shifted_labels, plain_labels);
    }

    #[test]
    fn shift_moves_pixels_without_creating_ink() {
        let train = mnist_train();
        let norm = Normalization::none();
        let indices: Vec<usize> = (0..64).collect();
        let (mut plain, mut labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &indices, &norm, None, &mut plain, &mut labels).expect("fill");
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let shift = Shift { max_pixels: 2 };
        let (mut shifted, mut shifted_labels) = (Vec::new(), Vec::new());
        fill_batch(&train, &indices, &norm, Some((&shift, &mut rng)), &mut shifted, &mut shifted_labels).expect("fill");
        assert_eq!(shifted.len(), plain.len());
        assert_eq!(shifted_labels, labels);
        let mut moved = 0;
        for (original, moved_image) in plain.chunks_exact(784).zip(shifted.chunks_exact(784)) {
            let before: f32 = original.iter().sum();
            let after: f32 = moved_image.iter().sum();
            assert!(after <= before + 1e-3, "{after} > {before}");
            if original != moved_image {
                moved += 1;
            }
        }
        assert!(moved > 32, "only {moved} of 64 images moved");
    }

    #[test]
    fn shift_moves_a_known_pixel_by_the_drawn_offset() -> Result<(), DataError> {
        // Two channels of 5×5 with a single lit pixel at (2, 2) in each.
        let shape = ImageShape { channels: 2, height: 5, width: 5 };
        let mut image = vec![0u8; 50];
        image[12] = 255;
        image[25 + 12] = 255;
        let dataset = Dataset::new(image, vec![0], shape, 1, vec!["only".into()], "toy".into())?;
        let shift = Shift { max_pixels: 2 };
        let mut offsets = HashSet::new();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            fill_batch(&dataset, &[0], &Normalization::none(), Some((&shift, &mut rng)), &mut images, &mut labels)?;
            let lit: Vec<usize> =
                images.iter().enumerate().filter(|&(_, &value)| value > 0.5).map(|(position, _)| position).collect();
            // The dot stays inside a 2-pixel border, so it is never lost, and both channels agree.
            assert_eq!(lit.len(), 2, "{lit:?}");
            assert_eq!(lit[1], lit[0] + 25);
            let (row, col) = (lit[0] / 5, lit[0] % 5);
            offsets.insert((row as i64 - 2, col as i64 - 2));
        }
        assert_eq!(offsets.len(), 25, "every offset in [-2, 2]² occurs: {offsets:?}");
        Ok(())
    }

    #[test]
    fn a_shift_beyond_the_image_is_capped_at_its_side() -> Result<(), DataError> {
        let shape = ImageShape { channels: 1, height: 2, width: 3 };
        let dataset = Dataset::new(vec![9; 6], vec![0], shape, 1, vec!["x".into()], "toy".into())?;
        let shift = Shift { max_pixels: usize::MAX };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let (mut emptied, mut kept_some) = (0, 0);
        for _ in 0..40 {
            fill_batch(&dataset, &[0], &Normalization::none(), Some((&shift, &mut rng)), &mut images, &mut labels)?;
            assert_eq!(images.len(), 6);
            // Every pixel is the image's own value or the vacated background, never anything else.
            assert!(images.iter().all(|&v| v == 0.0 || v == 9.0 / 255.0), "{images:?}");
            let left = images.iter().filter(|&&v| v > 0.0).count();
            emptied += usize::from(left == 0);
            kept_some += usize::from(left > 0);
        }
        // The offset is drawn up to the image's side (not to usize::MAX): some draws move it out entirely,
        // some keep part of it.
        assert!(emptied > 0 && kept_some > 0, "{emptied} emptied, {kept_some} kept part");
        Ok(())
    }
}
