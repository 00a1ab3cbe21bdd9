//! A dense layer, y = x·W + b, as one differentiable op on flex (`convscope_kernels::dense`), where burn's
//! `linear` recorded a matmul and a broadcast add and burn-flex copied each fresh output once more to align it
//! (on `mlp`, whose 784 → 128 weight gradient is 400 kB, that copy alone was about 1.7 % of the CPU time).
//! Anything else — another backend or element type — goes to burn's `linear`, and says so.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use convscope_kernels::dense::{self, Dense};

use super::autodiff::{Ad, AdPrim, Operands, flex, operands};

/// The layer's sizes from x `[batch, inputs]` and W `[inputs, outputs]`.
fn sizes(x: &FlexTensor, w: &FlexTensor) -> Dense {
    let (xs, ws) = (x.layout().shape(), w.layout().shape());
    Dense { batch: xs[0], inputs: xs[1], outputs: ws[1] }
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> FlexTensor {
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let d = sizes(&x, &w);
    let b = b.map(|b| b.to_contiguous());
    let y = dense::forward(d, x.storage(), w.storage(), b.as_ref().map(|b| b.storage::<f32>()));
    flex(y, vec![d.batch, d.outputs])
}

#[derive(Debug)]
struct DenseBias;
#[derive(Debug)]
struct DenseNoBias;

/// dX, dW, db as the parents need them, from the saved x and W and the incoming dY.
fn dense_grads(
    x: FlexTensor,
    w: FlexTensor,
    dy: FlexTensor,
    [need_x, need_w, need_b]: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let (x, w, dy) = (x.to_contiguous(), w.to_contiguous(), dy.to_contiguous());
    let d = sizes(&x, &w);
    let dyv: &[f32] = dy.storage();
    [
        need_x.then(|| flex(dense::input_grad(d, w.storage(), dyv), vec![d.batch, d.inputs])),
        need_w.then(|| flex(dense::weight_grad(d, x.storage(), dyv), vec![d.inputs, d.outputs])),
        need_b.then(|| flex(dense::bias_grad(d, dyv), vec![d.outputs])),
    ]
}

impl Backward<Flex, 3> for DenseBias {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [nx, nw, nb] = ops.parents;
        let (xs, ws) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(xs);
        let w = checkpointer.retrieve_node_output::<FlexTensor>(ws);
        let [dx, dw, db] = dense_grads(x, w, dy, [nx.is_some(), nw.is_some(), nb.is_some()]);
        for (parent, gradient) in [(nx, dx), (nw, dw), (nb, db)] {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

impl Backward<Flex, 2> for DenseNoBias {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [nx, nw] = ops.parents;
        let (xs, ws) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(xs);
        let w = checkpointer.retrieve_node_output::<FlexTensor>(ws);
        let [dx, dw, _] = dense_grads(x, w, dy, [nx.is_some(), nw.is_some(), false]);
        for (parent, gradient) in [(nx, dx), (nw, dw)] {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

fn ad_linear(x: AdPrim, w: AdPrim, b: Option<AdPrim>) -> AdPrim {
    match b {
        Some(b) => {
            match DenseBias.prepare::<NoCheckpointing>([x.node(), w.node(), b.node()]).compute_bound().stateful() {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&x), prep.checkpoint(&w));
                    prep.finish(state, forward(x.primitive(), w.primitive(), Some(b.primitive())))
                }
                OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), w.primitive(), Some(b.primitive()))),
            }
        }
        None => match DenseNoBias.prepare::<NoCheckpointing>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&w));
                prep.finish(state, forward(x.primitive(), w.primitive(), None))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), w.primitive(), None)),
        },
    }
}

/// y = x·W + b for x `[batch, inputs]` and W `[inputs, outputs]` (burn's `linear` layout), f32 on flex, with
/// or without autodiff; anything else runs burn's `linear`.
pub fn linear_custom(x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    let burn_linear = |x, w, bias| {
        super::fell_back();
        burn::tensor::module::linear(x, w, bias)
    };
    let f32s = [x.dtype(), w.dtype()].into_iter().chain(bias.as_ref().map(|b| b.dtype()));
    // Sizes that do not match go to burn's op too, which reports them as it does.
    let ([_, inputs], [rows, outputs]) = (x.dims(), w.dims());
    let matched = inputs == rows && bias.as_ref().is_none_or(|b| b.dims() == [outputs]);
    if !matched || f32s.into_iter().any(|dtype| dtype != burn::tensor::DType::F32) {
        return burn_linear(x, w, bias);
    }
    match operands(&x, &w, &bias) {
        Some(Operands::Tracked(xp, wp, bp)) => Tensor::from_primitive::<Ad>(ad_linear(xp, wp, bp)),
        Some(Operands::Plain(xp, wp, bp)) => Tensor::from_primitive::<Flex>(forward(&xp, &wp, bp.as_ref())),
        None => burn_linear(x, w, bias),
    }
}
