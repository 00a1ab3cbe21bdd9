//! Moving data between the host and burn: a batch of images and its targets (one-hot or numbers) as tensors, logits counted
//! against labels, and a layer's weights read back with their shape.

use burn::tensor::{Device, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::data::batch::{Normalization, Shift, fill_batch};
use crate::model::WeightedLayer;
use crate::snapshot::FloatArray;
use crate::task::TargetScale;
use crate::train::error::{TrainError, readback};

/// A layer's weights read back to the host with their shape.
pub(crate) fn weight_array(layer: &WeightedLayer) -> Result<FloatArray, TrainError> {
    let values = match (&layer.conv_weight, &layer.dense_weight) {
        (Some(w), _) => readback("weights", w.val().inner().into_data())?,
        (None, Some(w)) => readback("weights", w.val().inner().into_data())?,
        (None, None) => Vec::new(),
    };
    let (got, shape) = (values.len(), layer.weight_shape());
    FloatArray::new(shape.clone(), values).ok_or_else(|| TrainError::Readback {
        what: "weights",
        detail: format!("{} values for {}'s shape {shape:?}", got, layer.name),
    })
}

/// What a batch's targets are: one-hot rows over the classes, or one number per example from `values`
/// (indexed like the data set), scaled for the loss.
#[derive(Clone, Copy)]
pub(crate) enum BatchTargets<'a> {
    /// One-hot `[b, classes]`.
    OneHot(usize),
    /// `[b, 1]`, each example's value through the scale.
    Values(&'a [f32], TargetScale),
}

/// Images `[b, c, h, w]`, targets (`[b, classes]` one-hot, or `[b, 1]` numbers) and the labels of `indices` in
/// `data`.
pub(crate) fn make_batch(
    data: &Dataset,
    indices: &[usize],
    normalization: &Normalization,
    shift: Option<(&Shift, &mut ChaCha8Rng)>,
    targets: BatchTargets<'_>,
    device: &Device,
) -> Result<(Tensor<4>, Tensor<2>, Vec<i64>), TrainError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    fill_batch(data, indices, normalization, shift, &mut images, &mut labels)?;
    let shape = data.shape();
    let batch = indices.len();
    let targets = match targets {
        BatchTargets::OneHot(classes) => {
            let mut one_hot = vec![0.0_f32; batch * classes];
            for (row, &label) in labels.iter().enumerate() {
                if let Some(cell) = usize::try_from(label).ok().and_then(|l| one_hot.get_mut(row * classes + l)) {
                    *cell = 1.0;
                }
            }
            TensorData::new(one_hot, [batch, classes])
        }
        BatchTargets::Values(values, scale) => {
            let scaled = indices.iter().map(|&i| values.get(i).map_or(f32::NAN, |&t| scale.to_model(t))).collect();
            TensorData::new(scaled, [batch, 1])
        }
    };
    let images =
        Tensor::<4>::from_data(TensorData::new(images, [batch, shape.channels, shape.height, shape.width]), device);
    Ok((images, Tensor::<2>::from_data(targets, device), labels))
}

/// The predicted class of each row of `logits` (`[batch, classes]`, row-major): its largest value, or `None`
/// for a row with a non-finite value.
pub(crate) fn predictions(logits: &[f32], classes: usize) -> impl Iterator<Item = Option<usize>> + '_ {
    logits.chunks(classes.max(1)).map(|row| {
        row.iter().all(|v| v.is_finite()).then(|| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
                .0
        })
    })
}

/// How many rows of `logits` (`[batch, classes]`, row-major) have their largest value at the label; a row
/// with a non-finite value counts as wrong.
pub(crate) fn count_correct(logits: &[f32], labels: &[i64], classes: usize) -> usize {
    predictions(logits, classes)
        .zip(labels)
        .filter(|(predicted, label)| predicted.map(|p| p as i64) == Some(**label))
        .count()
}
