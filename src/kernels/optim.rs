//! SGD (momentum, weight decay) and Adam as burn [`Optimizer`]s that update each parameter in one pass on flex
//! (`convscope_kernels::update`): burn's `Sgd` wrote a fresh tensor for each of its five or six ops, and burn-flex
//! copied each once more to align it — a third of `mlp`'s step at two threads; its `Adam` took a dozen ops, some
//! of them scalar loops in burn-flex — six sevenths of `mlp`'s step. The velocity and the moments are updated
//! where they lie; the weights come out the same to the bit as burn's. Each update also measures its own size
//! (Σ ΔW², Σ W²), kept on this thread for the statistics ([`take_step_sizes`]), which then skip two passes over
//! the weights.
//!
//! The state is recorded under burn's names (`<param>.momentum.velocity`; `<param>.momentum.{time, moment_1,
//! moment_2}`), so checkpoints and healthy states written by either optimizer load into the other. Other
//! backends and element types run the same arithmetic as tensor ops.

use std::cell::RefCell;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource, join_path};
use burn::tensor::{DType, Device, Tensor};
use convscope_kernels::update::{self, Adam, Moments, Sgd, StepSize, Velocity};

use super::autodiff::flex;
use super::{KernelChoice, fell_back, kernel_choice};

/// SGD with optional momentum (no dampening, no Nesterov: PyTorch's defaults) and L2 weight decay.
#[derive(Clone, Debug)]
pub struct FusedSgd {
    momentum: Option<f32>,
    decay: Option<f32>,
}

impl FusedSgd {
    pub fn new(momentum: Option<f64>, decay: Option<f64>) -> FusedSgd {
        FusedSgd { momentum: momentum.map(|m| m as f32), decay: decay.map(|d| d as f32) }
    }
}

/// A parameter's velocity (with momentum; `None` for plain SGD and before the first step).
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    velocity: Option<Tensor<D>>,
}

/// Where burn's `SgdState { momentum: Option<MomentumState { velocity }> }` records its tensor.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            out.push_tensor(&join_path(prefix, MOMENTUM), VELOCITY, velocity.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let velocity =
            src.take_tensor(&join_path(prefix, MOMENTUM), VELOCITY).map(|data| Tensor::from_data(data, device));
        Some(SgdState { velocity })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let sgd = Sgd { lr: lr as f32, momentum: self.momentum, decay: self.decay };
        // A velocity left from before momentum was switched off is dropped, as burn's optimizer would.
        let velocity = state.and_then(|state| state.velocity).filter(|_| sgd.momentum.is_some());
        let (tensor, velocity) = match flex_parts(&tensor, &grad) {
            Some((w, g)) => fused(sgd, &w, &g, velocity),
            None => {
                fell_back();
                by_tensor_ops(sgd, tensor, grad, velocity)
            }
        };
        (tensor, Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState { velocity: state.velocity.map(|velocity| velocity.to_device(device)) }
    }
}

/// The weights and gradient as contiguous flex f32 tensors, unless another backend, element type or
/// `CONVSCOPE_KERNELS=burn` rules the fused update out.
fn flex_parts<const D: usize>(tensor: &Tensor<D>, grad: &Tensor<D>) -> Option<(FlexTensor, FlexTensor)> {
    if kernel_choice() == KernelChoice::Burn || tensor.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return None;
    }
    let w = tensor.clone().try_into_primitive::<Flex>().ok()?.to_contiguous();
    let g = grad.clone().try_into_primitive::<Flex>().ok()?.to_contiguous();
    let readable = w.as_slice::<f32>().is_some() && g.as_slice::<f32>().is_some();
    (readable && w.layout().shape() == g.layout().shape()).then_some((w, g))
}

/// One pass: the new weights in a fresh buffer (the model's old ones may still be held elsewhere), the velocity
/// in its own where no one else holds it.
fn fused<const D: usize>(
    sgd: Sgd,
    w: &FlexTensor,
    g: &FlexTensor,
    velocity: Option<Tensor<D>>,
) -> (Tensor<D>, Option<Tensor<D>>) {
    let shape = w.layout().shape().to_vec();
    // Both readable and of one shape (`flex_parts`).
    let (weights, grads) = (w.as_slice::<f32>().unwrap_or_default(), g.as_slice::<f32>().unwrap_or_default());
    let (out, size, velocity) = match (sgd.momentum, velocity.and_then(|v| in_place(v, w))) {
        (None, _) => {
            let (out, size) = update::step(sgd, weights, grads, Velocity::None);
            (out, size, None)
        }
        (Some(_), Some(mut previous)) => {
            let (out, size) = update::step(sgd, weights, grads, Velocity::Running(previous.storage_mut::<f32>()));
            (out, size, Some(previous))
        }
        (Some(_), _) => {
            let mut fresh = vec![0.0f32; weights.len()];
            let (out, size) = update::step(sgd, weights, grads, Velocity::Fresh(&mut fresh));
            (out, size, Some(flex(fresh, shape.clone())))
        }
    };
    (updated(out, shape, size), velocity.map(Tensor::from_primitive::<Flex>))
}

/// A kept quantity (a velocity, a moment) as a flex f32 tensor of the weights' shape covering its whole buffer,
/// to update where it lies; `None` where it is not one (then the update starts it afresh).
fn in_place<const D: usize>(kept: Tensor<D>, weights: &FlexTensor) -> Option<FlexTensor> {
    let kept = kept.try_into_primitive::<Flex>().ok()?;
    (kept.dtype() == DType::F32 && kept.layout().shape() == weights.layout().shape()).then(|| whole(kept))
}

/// The new weights as a tensor, their step's size recorded for the statistics.
fn updated<const D: usize>(values: Vec<f32>, shape: Vec<usize>, size: StepSize) -> Tensor<D> {
    let updated = flex(values, shape);
    record_step_size(&updated, size);
    Tensor::from_primitive::<Flex>(updated)
}

/// The gradient with the L2 penalty added (`w·decay + g`, burn's order), as tensor ops.
fn decayed<const D: usize>(tensor: &Tensor<D>, grad: Tensor<D>, decay: Option<f32>) -> Tensor<D> {
    match decay {
        Some(decay) => tensor.clone().mul_scalar(decay).add(grad),
        None => grad,
    }
}

/// `t` as a tensor that covers its whole buffer in order, so that its storage is exactly its values (a copy
/// only if it was a view).
fn whole(t: FlexTensor) -> FlexTensor {
    let values = t.layout().shape().iter().product::<usize>();
    match t.layout().contiguous_offsets() {
        Some((0, end)) if end == values && t.bytes().len() == values * size_of::<f32>() => t,
        _ => {
            let copy = t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_default();
            flex(copy, t.layout().shape().to_vec())
        }
    }
}

/// The same arithmetic as tensor ops, for every other backend (burn's order: w·decay + g, g + v·m, w − v·lr).
fn by_tensor_ops<const D: usize>(
    sgd: Sgd,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
) -> (Tensor<D>, Option<Tensor<D>>) {
    let grad = decayed(&tensor, grad, sgd.decay);
    let velocity = sgd.momentum.map(|m| match velocity {
        Some(previous) => grad.clone().add(previous.mul_scalar(m)),
        None => grad.clone(),
    });
    let direction = velocity.clone().unwrap_or(grad);
    (tensor.sub(direction.mul_scalar(sgd.lr)), velocity)
}

/// Adam (burn's, without AMSGrad) with optional L2 weight decay, one pass a parameter on flex.
#[derive(Clone, Debug)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    decay: Option<f32>,
}

impl FusedAdam {
    /// burn's `AdamConfig` defaults (β₁ 0.9, β₂ 0.999, ε 1e-5), with `decay` as its weight decay.
    pub fn new(decay: Option<f64>) -> FusedAdam {
        FusedAdam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-5, decay: decay.map(|d| d as f32) }
    }
}

/// A parameter's step count and moments, recorded as burn's `AdamState { momentum: AdaptiveMomentumState }`.
#[derive(Clone)]
pub struct AdamState<const D: usize> {
    time: usize,
    moment_1: Tensor<D>,
    moment_2: Tensor<D>,
}

impl<const D: usize> RecordState for AdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        let prefix = join_path(prefix, MOMENTUM);
        out.push_scalar(&prefix, "time", burn_pack::Scalar::from(self.time));
        out.push_tensor(&prefix, "moment_1", self.moment_1.clone().into_data());
        out.push_tensor(&prefix, "moment_2", self.moment_2.clone().into_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let prefix = join_path(prefix, MOMENTUM);
        let time = usize::try_from(src.take_scalar(&prefix, "time")?).ok()?;
        let moment_1 = Tensor::from_data(src.take_tensor(&prefix, "moment_1")?, device);
        let moment_2 = Tensor::from_data(src.take_tensor(&prefix, "moment_2")?, device);
        Some(AdamState { time, moment_1, moment_2 })
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let FusedAdam { beta_1, beta_2, epsilon, decay } = *self;
        let adam = Adam { lr: lr as f32, beta_1, beta_2, epsilon, decay };
        let time = state.as_ref().map_or(1, |state| state.time + 1);
        let moments = state.map(|state| (state.moment_1, state.moment_2));
        let (tensor, [moment_1, moment_2]) = match flex_parts(&tensor, &grad) {
            Some((w, g)) => adam_fused(adam, time, &w, &g, moments),
            None => {
                fell_back();
                adam_by_tensor_ops(adam, time, tensor, grad, moments)
            }
        };
        (tensor, Some(AdamState { time, moment_1, moment_2 }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        let AdamState { time, moment_1, moment_2 } = state;
        AdamState { time, moment_1: moment_1.to_device(device), moment_2: moment_2.to_device(device) }
    }
}

/// One pass: the new weights in a fresh buffer, the moments in their own where no one else holds them.
fn adam_fused<const D: usize>(
    adam: Adam,
    time: usize,
    w: &FlexTensor,
    g: &FlexTensor,
    moments: Option<(Tensor<D>, Tensor<D>)>,
) -> (Tensor<D>, [Tensor<D>; 2]) {
    let shape = w.layout().shape().to_vec();
    let (weights, grads) = (w.as_slice::<f32>().unwrap_or_default(), g.as_slice::<f32>().unwrap_or_default());
    let time = i32::try_from(time).unwrap_or(i32::MAX);
    let (out, size, [first, second]) = match moments.and_then(|(m1, m2)| in_place(m1, w).zip(in_place(m2, w))) {
        Some((mut m1, mut m2)) => {
            let moments = Moments::Running(m1.storage_mut::<f32>(), m2.storage_mut::<f32>());
            let (out, size) = update::adam_step(adam, time, weights, grads, moments);
            (out, size, [m1, m2])
        }
        None => {
            let (mut m1, mut m2) = (vec![0.0f32; weights.len()], vec![0.0f32; weights.len()]);
            let (out, size) = update::adam_step(adam, time, weights, grads, Moments::Fresh(&mut m1, &mut m2));
            (out, size, [flex(m1, shape.clone()), flex(m2, shape.clone())])
        }
    };
    (updated(out, shape, size), [first, second].map(Tensor::from_primitive::<Flex>))
}

/// burn's Adam as tensor ops, for every other backend.
fn adam_by_tensor_ops<const D: usize>(
    adam: Adam,
    time: usize,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
) -> (Tensor<D>, [Tensor<D>; 2]) {
    let grad = decayed(&tensor, grad, adam.decay);
    let (factor_1, factor_2) = (1.0 - adam.beta_1, 1.0 - adam.beta_2);
    let (moment_1, moment_2) = match moments {
        Some((m1, m2)) => (
            m1.mul_scalar(adam.beta_1).add(grad.clone().mul_scalar(factor_1)),
            m2.mul_scalar(adam.beta_2).add(grad.square().mul_scalar(factor_2)),
        ),
        None => (grad.clone().mul_scalar(factor_1), grad.square().mul_scalar(factor_2)),
    };
    let time = i32::try_from(time).unwrap_or(i32::MAX);
    let correction_2 = (1.0 - adam.beta_2.powi(time)).sqrt();
    let combined = correction_2 / (1.0 - adam.beta_1.powi(time));
    let direction =
        moment_1.clone().mul_scalar(combined).div(moment_2.clone().sqrt().add_scalar(adam.epsilon * correction_2));
    (tensor.sub(direction.mul_scalar(adam.lr)), [moment_1, moment_2])
}

thread_local! {
    static STEP_SIZES: RefCell<Vec<(usize, StepSize)>> = const { RefCell::new(Vec::new()) };
}

/// The address of a tensor's first value where it covers its buffer from the start: what identifies an updated
/// weight from the moment the optimizer writes it to the statistics' reading of the same buffer.
fn address(t: &FlexTensor) -> Option<usize> {
    matches!(t.layout().contiguous_offsets(), Some((0, _))).then(|| t.bytes().as_ptr() as usize)
}

fn record_step_size(updated: &FlexTensor, size: StepSize) {
    if let Some(address) = address(updated) {
        STEP_SIZES.with(|sizes| sizes.borrow_mut().push((address, size)));
    }
}

/// The sizes of the updates made on this thread since the last call, emptied: call it before a step's update to
/// forget older ones, and after it to read the step's.
pub fn take_step_sizes() -> StepSizes {
    StepSizes(STEP_SIZES.with(|sizes| std::mem::take(&mut *sizes.borrow_mut())))
}

/// The sizes of one optimizer step's updates, by the updated tensor.
#[derive(Debug, Default)]
pub struct StepSizes(Vec<(usize, StepSize)>);

impl StepSizes {
    /// (Σ (W′ − W)², Σ W′²) of the update that wrote `updated` (a view of the whole tensor, e.g. flattened);
    /// `None` where no fused update did (another backend, or an optimizer other than SGD).
    pub fn of<const D: usize>(&self, updated: &Tensor<D>) -> Option<(f64, f64)> {
        let flex = updated.clone().try_into_primitive::<Flex>().ok()?;
        let address = address(&flex)?;
        self.0.iter().find(|(at, _)| *at == address).map(|(_, size)| (size.distance, size.norm))
    }
}
