//! Per-layer statistics of a training step — update ratio, mean slope f′(z), dead and saturated units,
//! activation moments against the init scheme's aim — reduced on the device and read back in one go.

use std::collections::VecDeque;

use burn::tensor::Tensor;

use crate::arch::{Activation, ELU_ALPHA, LEAKY_RELU_SLOPE};
use crate::model::{Cnn, Trace};
use crate::snapshot::LayerStats;
use crate::train::trainer::TrainError;

/// A ReLU unit counts as *dead* when its output was zero for every example of this many consecutive
/// statistics batches (every step in `convscope train`, every snapshot in the window).
pub const DEAD_UNIT_WINDOW: usize = 10;

/// A sigmoid or tanh unit counts as *saturated* when its mean slope f′(z) over a batch is below this share of
/// the activation's peak slope (0.25 for sigmoid, 1 for tanh): for sigmoid that is |z| above about 3.7, an
/// output within 0.025 of 0 or 1.
pub const SATURATED_SLOPE_FRACTION: f32 = 0.1;

/// The largest slope of a saturating activation (at z = 0), or `None` for one that does not saturate.
pub fn peak_slope(activation: Activation) -> Option<f32> {
    match activation {
        Activation::Sigmoid => Some(0.25),
        Activation::Tanh => Some(1.0),
        _ => None,
    }
}

/// Which units of each layer produced any output lately: the memory behind the dead-unit count.
#[derive(Debug, Default)]
pub struct UnitTracker {
    layers: Vec<UnitHistory>,
}

#[derive(Debug, Default)]
struct UnitHistory {
    /// The activation the history was recorded under; a switch starts it afresh.
    activation: Option<Activation>,
    /// Per recent batch, whether each unit's output was non-zero anywhere.
    batches: VecDeque<Vec<bool>>,
}

impl UnitTracker {
    /// Forgets everything (after a reset or a restore: the units are not the same units any more).
    pub fn clear(&mut self) {
        self.layers.clear();
    }

    /// Records one batch's activity of layer `layer` and returns the share of units that were silent in
    /// every batch of the window.
    fn record(&mut self, layer: usize, activation: Activation, active: Vec<bool>) -> f32 {
        if self.layers.len() <= layer {
            self.layers.resize_with(layer + 1, UnitHistory::default);
        }
        let Some(history) = self.layers.get_mut(layer) else { return 0.0 };
        let units = active.len();
        if history.activation != Some(activation) || history.batches.front().is_some_and(|b| b.len() != units) {
            history.batches.clear();
            history.activation = Some(activation);
        }
        history.batches.push_back(active);
        while history.batches.len() > DEAD_UNIT_WINDOW {
            history.batches.pop_front();
        }
        let dead = (0..units).filter(|&unit| history.batches.iter().all(|batch| !batch[unit])).count();
        dead as f32 / units.max(1) as f32
    }
}

/// f′(z) elementwise, from the pre-activation and (where cheaper) the activation itself.
fn slope(activation: Activation, pre: Tensor<4>, post: Tensor<4>) -> Tensor<4> {
    match activation {
        Activation::Relu => pre.greater_elem(0.0).float(),
        Activation::LeakyRelu => {
            pre.greater_elem(0.0).float().mul_scalar(1.0 - LEAKY_RELU_SLOPE).add_scalar(LEAKY_RELU_SLOPE)
        }
        // σ′ = σ(1 − σ), tanh′ = 1 − tanh².
        Activation::Sigmoid => post.clone().sub(post.square()),
        Activation::Tanh => post.square().neg().add_scalar(1.0),
        // For z ≤ 0, ELU′ = α·eᶻ = f(z) + α.
        Activation::Elu => {
            let positive = pre.greater_elem(0.0).float();
            let negative_slope = post.add_scalar(ELU_ALPHA);
            positive.clone().add(positive.neg().add_scalar(1.0).mul(negative_slope))
        }
        // GELU′ = Φ(z) + z·φ(z).
        Activation::Gelu => {
            let cdf = pre.clone().div_scalar(std::f64::consts::SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
            let pdf = pre.clone().square().mul_scalar(-0.5).exp().div_scalar((2.0 * std::f64::consts::PI).sqrt());
            cdf.add(pre.mul(pdf))
        }
        Activation::Identity => pre.ones_like(),
    }
}

/// What each layer contributes to the one read-back, in order.
struct Layout {
    units: usize,
    /// Per-unit slope sums follow (hidden layers).
    slopes: bool,
    /// Per-unit activity maxima follow (ReLU layers).
    activity: bool,
    values_per_unit: f32,
}

/// Number of scalar moments read per layer before its per-unit values.
const SCALARS: usize = 7;

/// Statistics of every layer with weights for the step whose forward pass is `trace`; `weights_before` are
/// the flat weights before the update (the model already holds the updated ones).
pub fn layer_stats(
    model: &Cnn,
    trace: &Trace,
    weights_before: &[Tensor<1>],
    grad_norms: &[f32],
    tracker: &mut UnitTracker,
) -> Result<Vec<LayerStats>, TrainError> {
    let mut pieces: Vec<Tensor<1>> = Vec::new();
    let mut layouts = Vec::with_capacity(model.layers.len());
    let parts = trace.inputs.iter().zip(&trace.pre).zip(&trace.post).zip(weights_before);
    for (layer, (((input, pre), post), before)) in model.layers.iter().zip(parts) {
        let Some(after) = layer.flat_weight() else { continue };
        let (input, pre, post) = (input.clone().inner(), pre.clone().inner(), post.clone().inner());
        let [batch, units, height, width] = pre.dims();
        pieces.extend([
            after.clone().sub(before.clone()).square().sum(),
            after.square().sum(),
            pre.clone().mean(),
            pre.clone().square().mean(),
            post.clone().mean(),
            post.clone().square().mean(),
            input.square().mean(),
        ]);
        let activation = layer.settings.activation;
        let slopes = !layer.output;
        let activity = slopes && activation == Activation::Relu;
        if slopes {
            pieces.push(slope(activation, pre, post.clone()).sum_dims(&[0, 2, 3]).reshape([units]));
        }
        if activity {
            // ReLU outputs are never negative: a unit's largest output is zero exactly when it was silent.
            pieces.push(post.max_dims(&[0, 2, 3]).reshape([units]));
        }
        layouts.push(Layout { units, slopes, activity, values_per_unit: (batch * height * width).max(1) as f32 });
    }
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let values = Tensor::cat(pieces, 0)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Readback { what: "the layer statistics", detail: format!("{e:?}") })?;

    let mut rest = values.as_slice();
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        head
    };
    let mut stats = Vec::with_capacity(layouts.len());
    for ((index, layer), layout) in model.layers.iter().enumerate().zip(&layouts) {
        let &[delta_sq, weight_sq, pre_mean, pre_sq, post_mean, post_sq, input_sq] = take(SCALARS) else {
            break;
        };
        let count = layer.weight_shape().iter().product::<usize>().max(1) as f32;
        let grad_norm = grad_norms.get(index).copied().unwrap_or(f32::NAN);
        let activation = layer.settings.activation;
        let (mean_slope, saturated_fraction) = if layout.slopes {
            let per_unit: Vec<f32> = take(layout.units).iter().map(|sum| sum / layout.values_per_unit).collect();
            let mean = per_unit.iter().sum::<f32>() / layout.units.max(1) as f32;
            let saturated = peak_slope(activation).map(|peak| {
                let below = per_unit.iter().filter(|&&s| s < SATURATED_SLOPE_FRACTION * peak).count();
                below as f32 / layout.units.max(1) as f32
            });
            (Some(mean), saturated)
        } else {
            (None, None)
        };
        let dead_fraction = layout
            .activity
            .then(|| take(layout.units).iter().map(|&max| max > 0.0).collect::<Vec<_>>())
            .map(|active| tracker.record(index, activation, active));
        let (fan_in, fan_out) = layer.fans();
        let init_variance = layer.settings.init.variance(fan_in as f64, fan_out as f64) as f32;
        stats.push(LayerStats {
            grad_rms: grad_norm / count.sqrt(),
            weight_rms: (weight_sq / count).sqrt(),
            update_ratio: delta_sq.sqrt() / weight_sq.sqrt().max(f32::MIN_POSITIVE),
            mean_slope,
            dead_fraction,
            saturated_fraction,
            pre_activation_mean: pre_mean,
            pre_activation_var: (pre_sq - pre_mean * pre_mean).max(0.0),
            init_pre_activation_var: fan_in as f32 * init_variance * input_sq,
            activation_mean: post_mean,
            activation_var: (post_sq - post_mean * post_mean).max(0.0),
        });
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_is_dead_only_when_silent_for_the_whole_window() {
        let mut tracker = UnitTracker::default();
        assert_eq!(tracker.record(0, Activation::Relu, vec![true, false]), 0.5);
        for _ in 0..DEAD_UNIT_WINDOW - 1 {
            assert_eq!(tracker.record(0, Activation::Relu, vec![false, false]), 0.5, "unit 0 spoke recently");
        }
        assert_eq!(tracker.record(0, Activation::Relu, vec![false, false]), 1.0, "the window has moved on");
        // Switching the activation starts the memory afresh.
        assert_eq!(tracker.record(0, Activation::Tanh, vec![true, false]), 0.5);
    }
}
