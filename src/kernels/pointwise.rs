//! The activations whose slope follows from their output (ReLU, leaky ReLU, ELU, sigmoid, tanh) as one
//! differentiable op each on flex: the forward in place where nothing else holds the pre-activation, the backward
//! one pass over dY and the saved output. burn's autodiff builds leaky ReLU and ELU from three to six ops and
//! recomputes tanh and sigmoid in their backward, all on one thread.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor};

use convscope_kernels::moments::{self, Moments};
use convscope_kernels::pointwise::{self, Pointwise};

use super::autodiff::{Ad, AdPrim, flex};

/// `x` contiguous, with the caller's handle gone, so that it is unique where nothing else holds it.
fn owned_contiguous(x: FlexTensor) -> FlexTensor {
    let contiguous = x.to_contiguous();
    drop(x);
    contiguous
}

/// Applies `values` to a copy of `x` or, when `x` is unique, to `x` itself.
fn in_place_or_copy(x: FlexTensor, values: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut x = owned_contiguous(x);
    if let Some(storage) = x.try_storage_mut::<f32>() {
        values(storage);
        return x;
    }
    let mut copy = x.storage::<f32>().to_vec();
    values(&mut copy);
    flex(copy, x.layout().shape().to_vec())
}

/// f(x): in place when nothing else holds `x`, else into a new tensor in the same pass.
fn forward(f: Pointwise, x: FlexTensor) -> FlexTensor {
    let mut x = owned_contiguous(x);
    if let Some(storage) = x.try_storage_mut::<f32>() {
        pointwise::forward_in_place(f, storage);
        return x;
    }
    flex(pointwise::forward_to_vec(f, x.storage::<f32>()), x.layout().shape().to_vec())
}

/// The op's backward; its state is the output.
#[derive(Debug)]
struct Activation(Pointwise);

impl Backward<Flex, 1> for Activation {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(n) = nx {
            let y = ops.state.to_contiguous();
            let dz = in_place_or_copy(dy, |g| pointwise::backward_in_place(self.0, y.storage(), g));
            grads.register::<Flex>(n.id, dz);
        }
    }
}

/// [`forward`] that also measures the layer (`moments::activate_and_measure`): in place where nothing else
/// holds `x`, else on a copy that becomes the output.
fn forward_measured(f: Pointwise, x: FlexTensor) -> (FlexTensor, Moments) {
    let mut x = owned_contiguous(x);
    let shape = x.layout().shape().to_vec();
    let dims = super::as_maps(&shape);
    if let Some(storage) = x.try_storage_mut::<f32>() {
        let measured = moments::activate_and_measure(f, dims, storage);
        return (x, measured);
    }
    let mut copy = x.storage::<f32>().to_vec();
    let measured = moments::activate_and_measure(f, dims, &mut copy);
    (flex(copy, shape), measured)
}

/// The activation op on autodiff (as [`ad_forward`]), measuring the layer on the way.
fn ad_forward_measured(f: Pointwise, x: AdPrim) -> (AdPrim, Moments) {
    match Activation(f).prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, measured) = forward_measured(f, x.into_primitive());
            (prep.finish(y.clone(), y), measured)
        }
        OpsKind::UnTracked(prep) => {
            let (y, measured) = forward_measured(f, x.into_primitive());
            (prep.finish(y), measured)
        }
    }
}

/// `f` on an f32 flex tensor `[batch, units, height, width]` or `[batch, units]` (with or without autodiff), the
/// layer measured on the way; any other tensor comes back untouched.
pub fn pointwise_measured<const D: usize>(f: Pointwise, x: Tensor<D>) -> Result<(Tensor<D>, Moments), Box<Tensor<D>>> {
    if x.dtype() != DType::F32 {
        return Err(Box::new(x));
    }
    // As in `pointwise_custom`: `x` is dropped before the op so that its storage can be reused in place.
    if let Ok(xp) = x.clone().try_into_primitive::<Ad>() {
        drop(x);
        let (y, measured) = ad_forward_measured(f, xp);
        return Ok((Tensor::from_primitive::<Ad>(y), measured));
    }
    if let Ok(xp) = x.clone().try_into_primitive::<Flex>() {
        drop(x);
        let (y, measured) = forward_measured(f, xp);
        return Ok((Tensor::from_primitive::<Flex>(y), measured));
    }
    Err(Box::new(x))
}

fn ad_forward(f: Pointwise, x: AdPrim) -> AdPrim {
    match Activation(f).prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(f, x.into_primitive());
            prep.finish(y.clone(), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(f, x.into_primitive())),
    }
}

/// `f` on an f32 flex tensor (with or without autodiff); any other tensor goes to `otherwise` (burn's op).
pub fn pointwise_custom<const D: usize>(
    f: Pointwise,
    x: Tensor<D>,
    otherwise: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        super::fell_back();
        return otherwise(x);
    }
    // The probes are clones; `x` is dropped before the op so that its storage can be reused in place.
    if let Ok(xp) = x.clone().try_into_primitive::<Ad>() {
        drop(x);
        return Tensor::from_primitive::<Ad>(ad_forward(f, xp));
    }
    if let Ok(xp) = x.clone().try_into_primitive::<Flex>() {
        drop(x);
        return Tensor::from_primitive::<Flex>(forward(f, xp));
    }
    super::fell_back();
    otherwise(x)
}
