//! Per-layer statistics of a training step — update ratio, mean slope f′(z), dead and saturated units,
//! activation moments against the init scheme's aim — from one host pass over the traced activations and
//! a few sums reduced on the device.

use std::collections::VecDeque;

use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::arch::Activation;
use crate::diagnose::{DEAD_UNIT_WINDOW, SATURATED_SLOPE_FRACTION};
use crate::kernels::{StepSizes, read_in_place};
use crate::model::{Cnn, LayerValues, Trace};
use crate::snapshot::LayerStats;
use crate::train::activity::{self, LayerActivity};
use crate::train::error::{TrainError, readback};

/// Which units of each layer produced any output lately: the memory behind the dead-unit count.
#[derive(Debug, Default, Clone)]
pub struct UnitTracker {
    layers: Vec<UnitHistory>,
}

#[derive(Debug, Default, Clone)]
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

/// One layer's traced tensors, read to the host once and measured in one pass: the statistics and the
/// snapshot's histogram and range both come from here.
#[derive(Debug)]
pub struct HostLayer {
    /// The pre-activations, `[batch, units, height, width]` (dense layers: height = width = 1), read to the host
    /// where a snapshot wants them; empty otherwise (the statistics are measured where the values lie).
    pub pre: Vec<f32>,
    pub activity: LayerActivity,
}

/// Measures every layer's pre-activations and activations: where they lie on flex, read back to the host
/// elsewhere; `keep_pre` (a snapshot's histograms) also reads the pre-activations back. Returns the host layers
/// and the layers' inputs, which stay on the device.
pub fn read_trace(model: &Cnn, trace: Trace, keep_pre: bool) -> Result<(Vec<HostLayer>, Vec<Tensor<4>>), TrainError> {
    let layers: Vec<_> = model
        .layers
        .iter()
        .zip(trace.layers)
        .map(|(layer, values)| (if layer.output { Activation::Identity } else { layer.settings.activation }, values))
        .collect();
    let read = |(activation, values): (Activation, LayerValues)| {
        let (pre, post) = match values {
            LayerValues::Kept { pre, post } => (pre, post),
            // Measured in the forward pass (never on a snapshot's step, whose histograms need the values).
            LayerValues::Measured { moments, dims } => {
                return Ok(HostLayer { pre: Vec::new(), activity: activity::from_moments(dims, moments) });
            }
        };
        let dims = pre.dims();
        let measure = |z: &[f32], a: &[f32]| LayerActivity::measure(activation, dims, z, a);
        // In place, the read-back of a step's activations cost more than measuring them (deep6: 16 MB).
        if let Some(activity) = read_in_place([&pre, &post], |[z, a]| measure(z, a)) {
            let pre = if keep_pre { to_host("the pre-activations", pre)? } else { Vec::new() };
            return Ok(HostLayer { pre, activity });
        }
        let pre = to_host("the pre-activations", pre)?;
        let activity = measure(&pre, &to_host("the activations", post)?);
        Ok(HostLayer { pre, activity })
    };
    // Side by side on the compute threads, each layer read and measured by one of them while it is in its cache
    // (a layer's pass is one thread's, so its sums do not depend on the thread count); layers measured in the
    // pass have nothing left to read, and moving their figures to another thread only cost time.
    let layers = if layers.iter().any(|(_, values)| matches!(values, LayerValues::Kept { .. })) {
        layers.into_par_iter().map(read).collect::<Result<Vec<_>, TrainError>>()?
    } else {
        layers.into_iter().map(read).collect::<Result<Vec<_>, TrainError>>()?
    };
    Ok((layers, trace.inputs))
}

/// For each pair, Σ(a − b)² then Σa² with a `b`, Σa² without: one pass each on flex, read in place; burn's
/// ops read back in one go elsewhere.
pub(super) fn square_sums(
    pairs: Vec<(Tensor<1>, Option<Tensor<1>>)>,
    what: &'static str,
) -> Result<Vec<f32>, TrainError> {
    if let Some(sums) = crate::kernels::sums_of_squares(&pairs) {
        return Ok(sums.into_iter().map(|s| s as f32).collect());
    }
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let pieces = pairs
        .into_iter()
        .flat_map(|(a, b)| match b {
            Some(b) => vec![a.clone().sub(b), a],
            None => vec![a],
        })
        .map(|d| d.square().sum())
        .collect();
    readback(what, Tensor::cat(pieces, 0).into_data())
}

/// `tensor` (a trace's, outside the autodiff graph) read back to the host.
fn to_host(what: &'static str, tensor: Tensor<4>) -> Result<Vec<f32>, TrainError> {
    readback(what, tensor.into_data())
}

/// (‖ΔW‖², ‖W‖², the input's mean square) of each layer (NaN for layers without weights). Where nothing pools the
/// previous layer's activations on their way in, they are the input, and their mean square was measured in the
/// pass: one serial pass over the input fewer (about 1.5 % of a small net's step at two threads).
fn layer_sums(
    model: &Cnn,
    host: &[HostLayer],
    inputs: &[Tensor<4>],
    (weights_before, step_sizes): (&[Tensor<1>], &StepSizes),
) -> Result<Vec<[f32; 3]>, TrainError> {
    let measured_input: Vec<Option<f32>> = (0..model.layers.len())
        .map(|index| {
            let previous = index.checked_sub(1)?;
            let unpooled = model.layers.get(previous).is_some_and(|layer| layer.pools_after.is_empty());
            host.get(previous).filter(|_| unpooled).map(|h| h.activity.post_square_mean)
        })
        .collect();
    let (mut pairs, mut input_counts, mut weighted) = (Vec::new(), Vec::new(), Vec::new());
    for ((layer, (input, before)), measured) in
        model.layers.iter().zip(inputs.iter().zip(weights_before)).zip(&measured_input)
    {
        let after = layer.flat_weight();
        // ‖ΔW‖² and ‖W‖² as the fused update measured them, or else from one pass over the weights.
        let measured_step = after.as_ref().and_then(|after| step_sizes.of(after));
        weighted.push(after.as_ref().map(|_| measured_step));
        let Some(after) = after else { continue };
        if measured_step.is_none() {
            pairs.push((after, Some(before.clone())));
        }
        if measured.is_none() {
            let input = input.clone().flatten::<1>(0, 3);
            input_counts.push(input.dims()[0].max(1) as f32);
            pairs.push((input, None));
        }
    }
    let mut scalars = square_sums(pairs, "the layer statistics")?.into_iter();
    let mut counts = input_counts.into_iter();
    let mut device = Vec::with_capacity(model.layers.len());
    for (&weighted, measured) in weighted.iter().zip(&measured_input) {
        let Some(measured_step) = weighted else {
            // No weights, nothing summed.
            device.push([f32::NAN; 3]);
            continue;
        };
        let (delta_sq, weight_sq) = match measured_step {
            Some((delta_sq, weight_sq)) => (delta_sq as f32, weight_sq as f32),
            None => match (scalars.next(), scalars.next()) {
                (Some(delta_sq), Some(weight_sq)) => (delta_sq, weight_sq),
                _ => break,
            },
        };
        let input_sq = match measured {
            Some(mean_square) => *mean_square,
            None => scalars.next().unwrap_or(f32::NAN) / counts.next().unwrap_or(1.0),
        };
        device.push([delta_sq, weight_sq, input_sq]);
    }
    Ok(device)
}

/// Statistics of every layer with weights for the step whose forward pass gave `host` and `inputs`;
/// `weights_before` are the flat weights before the update (the model already holds the updated ones), read only
/// for layers whose update `step_sizes` did not measure.
pub fn layer_stats(
    model: &Cnn,
    host: &[HostLayer],
    inputs: &[Tensor<4>],
    weights_before: &[Tensor<1>],
    step_sizes: &StepSizes,
    grad_norms: &[f32],
    tracker: &mut UnitTracker,
) -> Result<Vec<LayerStats>, TrainError> {
    let device = layer_sums(model, host, inputs, (weights_before, step_sizes))?;
    let mut stats = Vec::with_capacity(host.len());
    for ((index, layer), (host, &[delta_sq, weight_sq, input_sq])) in
        model.layers.iter().enumerate().zip(host.iter().zip(&device))
    {
        let activity = &host.activity;
        let count = layer.weight_shape().iter().product::<usize>().max(1) as f32;
        let grad_norm = grad_norms.get(index).copied().unwrap_or(f32::NAN);
        let activation = layer.settings.activation;
        let units = activity.unit_mean_slope.len().max(1) as f32;
        let hidden = !layer.output;
        let mean_slope = hidden.then(|| activity.unit_mean_slope.iter().sum::<f32>() / units);
        let saturated_fraction = activation.peak_slope().filter(|_| hidden).map(|peak| {
            let below = activity.unit_mean_slope.iter().filter(|&&s| s < SATURATED_SLOPE_FRACTION * peak).count();
            below as f32 / units
        });
        // ReLU outputs are never negative: a unit's largest output is zero exactly when it was silent.
        let dead_fraction = (hidden && activation == Activation::Relu).then(|| {
            let active = activity.unit_peak.iter().map(|&peak| peak > 0.0).collect();
            tracker.record(index, activation, active)
        });
        let (fan_in, fan_out) = layer.fans();
        let init_variance = layer.settings.init.variance(fan_in as f64, fan_out as f64) as f32;
        let (pre_mean, post_mean) = (activity.pre_mean, activity.post_mean);
        stats.push(LayerStats {
            grad_rms: grad_norm / count.sqrt(),
            weight_rms: (weight_sq / count).sqrt(),
            update_ratio: delta_sq.sqrt() / weight_sq.sqrt().max(f32::MIN_POSITIVE),
            mean_slope,
            dead_fraction,
            saturated_fraction,
            pre_activation_mean: pre_mean,
            pre_activation_var: (activity.pre_square_mean - pre_mean * pre_mean).max(0.0),
            init_pre_activation_var: fan_in as f32 * init_variance * input_sq,
            activation_mean: post_mean,
            activation_var: (activity.post_square_mean - post_mean * post_mean).max(0.0),
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
