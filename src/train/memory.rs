//! The memory a net takes to train, estimated from its plan before anything is built: parameters with their
//! gradients and optimiser state, and one batch's activations as autodiff keeps them for the backward pass
//! (with the unfolded inputs a convolution multiplies). Checked against [`crate::budget`] by every build.

use crate::arch::{LayerKind, NetPlan, Shape};
use crate::budget::{self, Budget};
use crate::config::{OptimizerKind, TrainConfig};
use crate::train::error::{MemoryRefusal, TrainError};

/// Images per batch when the test split is evaluated (the trainer's `EVAL_BATCH`).
const EVAL_BATCH: u64 = 100;
/// Bytes per value (f32).
const VALUE: u64 = 4;
/// Copies of a dense layer's output a step keeps or makes: the pre-activation and the activation, and their
/// gradients on the way back.
const KEPT_PER_DENSE_OUTPUT: u64 = 4;
/// The same for a convolution, whose backward pass also makes channel-last copies and masks (measured: a wide
/// 3×3 layer peaks at about seven copies of its output).
const KEPT_PER_CONV_OUTPUT: u64 = 7;
/// A fixed allowance for the process itself (code, the data's normalisation, snapshots, buffers).
const BASE: u64 = 64 << 20;

/// Where a net's training memory goes, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Weights, their gradients, the optimiser's state and the copies statistics keep.
    pub parameters: u64,
    /// One batch's activations and their gradients (or the evaluation batch's, if larger).
    pub activations: u64,
    /// The same for a single example, to say which batch size would fit.
    pub per_example: u64,
}

impl MemoryEstimate {
    /// The whole estimate.
    pub fn total(&self) -> u64 {
        BASE.saturating_add(self.parameters).saturating_add(self.activations)
    }
}

/// Estimates the memory `plan` takes to train in batches of `batch` with `optimizer`.
pub fn estimate(plan: &NetPlan, batch: usize, optimizer: OptimizerKind) -> MemoryEstimate {
    let (mut parameters, mut train_values, mut eval_values, mut widest_unfold) = (0u64, 0u64, 0u64, 0u64);
    let mut shape_in = plan.input.pixels() as u64;
    for layer in &plan.layers {
        let out = layer.out_shape.len() as u64;
        let (weights, unfolded) = match (layer.kind, layer.in_shape) {
            (LayerKind::Conv { filters, kernel, .. }, Shape::Map { channels, .. }) => {
                let taps = (channels * kernel * kernel) as u64;
                let positions = out / (filters.max(1) as u64);
                // The own 5×5 kernels convolve directly; other sizes unfold the input first (im2col).
                let unfolded = if kernel == 5 { 0 } else { taps.saturating_mul(positions) };
                (taps * filters as u64 + filters as u64, unfolded)
            }
            (LayerKind::Dense { units }, input) => ((input.len() as u64 + 1) * units as u64, 0),
            _ => (0, 0),
        };
        let batch_norm = layer.settings.is_some_and(|settings| settings.batch_norm);
        parameters = parameters.saturating_add(weights + if batch_norm { 4 * out } else { 0 });
        let kept = match layer.kind {
            LayerKind::Conv { .. } => KEPT_PER_CONV_OUTPUT,
            LayerKind::Dense { .. } => KEPT_PER_DENSE_OUTPUT,
            LayerKind::Pool { .. } => 2,
        } + 2 * u64::from(batch_norm);
        train_values = train_values.saturating_add(out.saturating_mul(kept));
        // A convolution's unfolded input (im2col) lives only while that layer runs.
        widest_unfold = widest_unfold.max(unfolded);
        // Evaluation frees each layer's input once the next is computed: the largest layer counts.
        eval_values = eval_values.max(shape_in.saturating_add(out).saturating_add(unfolded));
        shape_in = out;
    }
    let states = match optimizer {
        OptimizerKind::Sgd => 0,
        OptimizerKind::Momentum => 1,
        OptimizerKind::Adam => 2,
    };
    // Weights and gradients, the optimiser's state, and the copies the statistics and checkpoints keep.
    let parameter_copies = 4 + states;
    let per_example = train_values.saturating_add(widest_unfold).saturating_mul(VALUE);
    let activations = per_example.saturating_mul(batch as u64).max(eval_values.saturating_mul(EVAL_BATCH * VALUE));
    MemoryEstimate { parameters: parameters.saturating_mul(parameter_copies * VALUE), activations, per_example }
}

/// Refuses `plan` when its estimate does not fit the process's budget, saying what would fit.
pub fn check_memory(plan: &NetPlan, config: &TrainConfig) -> Result<MemoryEstimate, TrainError> {
    check_memory_within(plan, config, budget::memory_budget())
}

/// [`check_memory`] against a given budget (`None`: no limit).
fn check_memory_within(
    plan: &NetPlan,
    config: &TrainConfig,
    budget: Option<Budget>,
) -> Result<MemoryEstimate, TrainError> {
    let estimate = estimate(plan, config.batch_size, config.optimizer);
    match budget {
        Some(budget) if estimate.total() > budget.bytes => Err(too_much(&estimate, config.batch_size, budget)),
        _ => Ok(estimate),
    }
}

fn too_much(estimate: &MemoryEstimate, batch: usize, budget: Budget) -> TrainError {
    let training_batch = estimate.per_example.saturating_mul(batch as u64);
    let which = if estimate.activations > training_batch {
        format!("the test evaluation's batch of {EVAL_BATCH}")
    } else {
        format!("one batch of {batch}")
    };
    let breakdown = format!(
        "{} for {which}, {} for the weights, gradients and optimiser state",
        budget::bytes(estimate.activations),
        budget::bytes(estimate.parameters)
    );
    // A smaller batch helps only while the evaluation's batch fits, since that one does not shrink.
    let evaluation = estimate.activations.saturating_sub(training_batch);
    let room = budget.bytes.saturating_sub(BASE + estimate.parameters);
    let fitting_batch = if evaluation > room { 0 } else { room.checked_div(estimate.per_example).unwrap_or(0) };
    let fix = if fitting_batch >= 1 && (fitting_batch as usize) < batch {
        format!(
            "use a batch size of {fitting_batch} or less, or fewer filters or units, or pool earlier (or raise the budget with --max-memory if this machine has more free)"
        )
    } else {
        "use fewer filters or units, pool earlier, or smaller images (--image-size) (or raise the budget with --max-memory if this machine has more free)".to_owned()
    };
    TrainError::TooMuchMemory(Box::new(MemoryRefusal { estimate: estimate.total(), breakdown, budget, fix }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ImageShape;

    fn plan(spec: &str, input: ImageShape) -> NetPlan {
        let config = TrainConfig { arch: spec.to_owned(), ..TrainConfig::default() };
        config.plan(input, 10).unwrap()
    }

    const DIGITS: ImageShape = ImageShape { channels: 1, height: 28, width: 28 };

    #[test]
    fn estimates_grow_with_the_batch_and_the_net() {
        let reference = plan("conv 8 5x5, pool 2, conv 16 5x5, pool 2", DIGITS);
        let small = estimate(&reference, 32, OptimizerKind::Momentum);
        assert!(small.total() < 200 << 20, "the reference net is small: {small:?}");
        let big_batch = estimate(&reference, 4096, OptimizerKind::Momentum);
        assert!(big_batch.activations > 60 * small.activations, "{big_batch:?}");
        let adam = estimate(&reference, 32, OptimizerKind::Adam);
        assert!(adam.parameters > small.parameters);
        // The net that once took more than 10 GB at its first step (pooled, so its output layer fits).
        let huge = plan("conv 21000 3x3 pad 1, pool 2", DIGITS);
        assert!(estimate(&huge, 32, OptimizerKind::Momentum).total() > 10 << 30);
    }

    #[test]
    fn over_budget_is_refused_with_a_batch_that_fits() {
        let reference = plan("conv 8 5x5, pool 2, conv 16 5x5, pool 2", DIGITS);
        let config = TrainConfig { batch_size: 4096, ..TrainConfig::default() };
        let budget = Budget { bytes: 200 << 20, source: "--max-memory 200 MiB".into() };
        let message = check_memory_within(&reference, &config, Some(budget.clone())).unwrap_err().to_string();
        assert!(message.contains("more than the 200 MiB allowed (--max-memory 200 MiB)"), "{message}");
        assert!(message.contains("use a batch size of "), "{message}");
        let fits = TrainConfig { batch_size: 32, ..config };
        assert!(check_memory_within(&reference, &fits, Some(budget)).is_ok());
    }
}
