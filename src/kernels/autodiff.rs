//! The autodiff plumbing: `conv2d_custom` and `max_pool_custom` as differentiable ops on burn 0.22's
//! dispatched `Tensor<D>`, built from the direct or im2col+gemm kernels, plugged into burn-autodiff through
//! its public `Backward` trait.
//!
//! Path: `Tensor<4>::try_into_primitive::<Autodiff<Flex>>()` (burn feature `extension`) gives the
//! `AutodiffTensor<Flex>`; `Backward::prepare([node guards]).compute_bound().stateful()` records the
//! op; the backward gets dY from `Gradients::consume::<Flex>` and registers dX/dW/db.
//! Anything that is not Flex/Autodiff<Flex> (or not f32) falls back to burn's `conv2d`, and says so
//! (`fallbacks_on_this_thread`).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Bytes, DType, Shape, Tensor};

use convscope_kernels::moments::{self, Moments, RunFigures};
use convscope_kernels::pointwise::Pointwise;
use convscope_kernels::{Geom, Isa, direct, gemm as kernels, pool};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

use super::KernelChoice;

pub(super) type Ad = Autodiff<Flex, NoCheckpointing>;

fn geom(x: &FlexTensor, w: &FlexTensor, [pad, stride]: [usize; 2]) -> Geom {
    let xs = x.layout().shape();
    let ws = w.layout().shape();
    Geom { b: xs[0], ci: xs[1], h: xs[2], w: xs[3], co: ws[0], kh: ws[2], kw: ws[3], pad, stride }
}

pub(super) fn flex(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(v), Layout::contiguous(Shape::from(shape)), DType::F32)
}

/// The instruction set of the direct kernels, if they were chosen (each falls back to gemm where slower).
fn direct_isa(choice: KernelChoice) -> Option<Isa> {
    match choice {
        KernelChoice::Direct(isa) => Some(isa),
        _ => None,
    }
}

/// Contiguous runs of images, one per compute thread (the kernels themselves are single-threaded).
fn batch_chunks(g: &Geom) -> Vec<(usize, usize)> {
    let threads = rayon::current_num_threads().clamp(1, g.b.max(1));
    let per = g.b.div_ceil(threads).max(1);
    (0..g.b).step_by(per).map(|start| (start, per.min(g.b - start))).collect()
}

/// `n` zeros: written by the compute threads side by side when `n` is large.
fn zeroed(n: usize) -> Vec<f32> {
    const PARALLEL_FROM: usize = 1 << 16;
    let threads = rayon::current_num_threads();
    if n < PARALLEL_FROM || threads < 2 {
        return vec![0.0; n];
    }
    convscope_kernels::zeroed(n, n.div_ceil(threads))
}

/// Runs `run` on each chunk of the batch in parallel, with the chunk's geometry, its slice of `input`
/// (`in_per_image` values each) and its part of the output (`out_per_image` values each, zeroed), which every
/// chunk writes in place: no copy joins the parts.
fn by_batch(
    g: &Geom,
    input: (&[f32], usize),
    out_per_image: usize,
    run: impl Fn(&Geom, &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    by_chunks(&batch_chunks(g), g, input, out_per_image, run).0
}

/// [`by_batch`] over the given `chunks` (contiguous, of one size but the last), with what `run` gives for each.
fn by_chunks<R: Send + Sync>(
    chunks: &[(usize, usize)],
    g: &Geom,
    (input, in_per_image): (&[f32], usize),
    out_per_image: usize,
    run: impl Fn(&Geom, &[f32], &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let per = chunks.first().map_or(g.b, |&(_, count)| count);
    let results: Vec<OnceLock<R>> = chunks.iter().map(|_| OnceLock::new()).collect();
    // Each thread zeroes its images' outputs and writes them while they are in its cache.
    let y = convscope_kernels::zeroed_then(g.b * out_per_image, per.max(1) * out_per_image, |index, part| {
        let (start, count) = chunks.get(index).copied().unwrap_or((0, g.b));
        let result = run(&Geom { b: count, ..*g }, &input[start * in_per_image..(start + count) * in_per_image], part);
        if let Some(slot) = results.get(index) {
            // Each chunk runs once, so its slot is empty here.
            let _ = slot.set(result);
        }
    });
    (y, results.into_iter().filter_map(OnceLock::into_inner).collect())
}

/// Runs `run` on each chunk of the batch in parallel and sums the outputs (a gradient summed over the batch).
fn sum_by_batch(
    g: &Geom,
    (x, x_per_image): (&[f32], usize),
    (dy, dy_per_image): (&[f32], usize),
    run: impl Fn(&Geom, &[f32], &[f32]) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let chunks = batch_chunks(g);
    if chunks.len() <= 1 {
        return run(g, x, dy);
    }
    let parts: Vec<Vec<f32>> = chunks
        .par_iter()
        .map(|&(start, count)| {
            let xs = &x[start * x_per_image..(start + count) * x_per_image];
            let dys = &dy[start * dy_per_image..(start + count) * dy_per_image];
            run(&Geom { b: count, ..*g }, xs, dys)
        })
        .collect();
    parts
        .into_iter()
        .reduce(|mut total, part| {
            total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_default()
}

/// A strided layer's im2col columns (K × HWo per image) are kept for its backward up to this many values.
const KEPT_COLUMNS_MAX: usize = 1 << 22;

/// The im2col columns a strided layer's forward kept for its weight gradient.
type Columns = Option<Arc<Vec<f32>>>;

/// What a convolution fused with the max-pool after it keeps for its backward: the pool's winners, the
/// convolution's output shape and the window side.
#[derive(Debug, Clone)]
struct Pooled {
    winners: Arc<Vec<u8>>,
    conv_shape: Vec<usize>,
    size: usize,
}

/// What runs inside a convolution's op after it: a `pool`×`pool` max-pool, and the measuring of the layer's
/// pre-activations and activations `measure`(z) (a statistics step, where the activation runs after the pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct After {
    pub pool: Option<usize>,
    pub measure: Option<Pointwise>,
}

/// What a convolution's forward gives: its output (pooled where asked), what its backward keeps, and the layer's
/// figures where asked.
struct Forward {
    y: FlexTensor,
    columns: Columns,
    pooled: Option<Pooled>,
    moments: Option<Moments>,
}

impl Forward {
    /// From the convolution's whole output `y`: measured (from the threads' `parts`, where they measured theirs),
    /// then pooled, as `after` asks.
    fn from_parts(y: Vec<f32>, g: &Geom, columns: Columns, after: After, parts: Vec<Option<RunFigures>>) -> Forward {
        let dims = [g.b, g.co, g.ho(), g.wo()];
        let parts: Option<Vec<RunFigures>> = parts.into_iter().collect();
        let moments = after.measure.map(|f| match parts {
            Some(parts) if !parts.is_empty() => moments::merge_runs(g.co, &parts),
            _ => moments::measure_activated(f, dims, &y),
        });
        let y = flex(y, dims.to_vec());
        let Some(size) = after.pool else {
            return Forward { y, columns, pooled: None, moments };
        };
        let (pooled, winners) = pool_fwd(&y, size);
        let pooled_state = Pooled { winners: Arc::new(winners), conv_shape: dims.to_vec(), size };
        Forward { y: pooled, columns, pooled: Some(pooled_state), moments }
    }
}

/// y = conv(x, w) + b, pooled and measured as `after` asks (see [`conv_then_pool`]); with `for_backward`, a
/// strided layer that goes to im2col + gemm also keeps its columns, so its weight gradient does not gather them
/// again (on a net of two stride-2 layers im2col was 28 % of a step). One the direct kernels take keeps none: its
/// dW is direct too wherever the filters have a direct dW.
fn fwd(
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
    (pad_stride, choice): ([usize; 2], KernelChoice),
    for_backward: bool,
    after: After,
) -> Forward {
    let (x, w) = (x.to_contiguous(), w.to_contiguous());
    let g = geom(&x, &w, pad_stride);
    let bias = b.map(|b| b.to_contiguous());
    let bias = bias.as_ref().map(|b| b.storage::<f32>());
    let (xv, wv, direct) = (x.storage::<f32>(), w.storage::<f32>(), direct_isa(choice));
    let (per_image, y_per) = (g.k() * g.hw_out(), g.co * g.hw_out());
    // Measured, each thread measures the images it convolved (chunks of whole statistics blocks) while they are
    // in its cache; where such chunks would leave a thread idle, the whole output is measured after.
    let (chunks, measure) = match after.measure.map(|f| (f, block_chunks(&g))) {
        Some((f, Some(chunks))) => (chunks, Some(f)),
        _ => (batch_chunks(&g), None),
    };
    let measured_part =
        |count: usize, ys: &[f32]| measure.map(|f| moments::measure_run(f, [count, g.co, g.ho(), g.wo()], ys));
    let direct_forward = direct.is_some_and(|isa| direct::direct_ops(isa, &g).forward);
    if for_backward && g.stride > 1 && !direct_forward && g.b * per_image <= KEPT_COLUMNS_MAX {
        let per = chunks.first().map_or(g.b, |&(_, count)| count).max(1);
        // Zeroed by the threads side by side (zeroed by one, a fresh megabyte cost the second thread its gain).
        let (mut y, mut columns) = (zeroed(g.b * y_per), zeroed(g.b * per_image));
        let parts: Vec<Option<RunFigures>> =
            (y.par_chunks_mut(per * y_per).zip(columns.par_chunks_mut(per * per_image)))
                .zip(&chunks)
                .map(|((ys, cs), &(start, count))| {
                    let xs = &xv[start * g.ci * g.hw_in()..(start + count) * g.ci * g.hw_in()];
                    kernels::forward_into_keeping_cols(&Geom { b: count, ..g }, xs, wv, bias, ys, cs);
                    measured_part(count, ys)
                })
                .collect();
        return Forward::from_parts(y, &g, Some(Arc::new(columns)), after, parts);
    }
    if let (Some(size), true) = (after.pool, after.measure.is_none() || measure.is_some()) {
        let (pooled, winners, moments) = conv_then_pool(&g, (xv, wv, bias), direct, (size, measure), &chunks);
        let pooled_shape = vec![g.b, g.co, g.ho() / size, g.wo() / size];
        let conv_shape = vec![g.b, g.co, g.ho(), g.wo()];
        let pooled_state = Pooled { winners: Arc::new(winners), conv_shape, size };
        return Forward { y: flex(pooled, pooled_shape), columns: None, pooled: Some(pooled_state), moments };
    }
    let (y, parts) = by_chunks(&chunks, &g, (xv, g.ci * g.hw_in()), y_per, |gs, xs, ys| {
        match direct {
            Some(isa) => direct::forward_into(isa, gs, xs, wv, bias, ys),
            None => kernels::forward_into(gs, xs, wv, bias, ys),
        }
        measured_part(gs.b, ys)
    });
    Forward::from_parts(y, &g, None, after, parts)
}

/// Values of convolution output a run of images leaves in a thread's cache before it is pooled (256 kB: half
/// of a core's L2 on the machines measured, the rest for the input and the weights).
const POOLED_RUN_VALUES: usize = 1 << 16;

/// The batch's split over the threads where each thread measures the images it convolved: chunks of a whole
/// number of the statistics' blocks (so the parts' figures merge into the whole pass's). `None` where that would
/// leave a thread idle (a map small enough for blocks of many images).
fn block_chunks(g: &Geom) -> Option<Vec<(usize, usize)>> {
    let chunks = batch_chunks(g);
    let block = moments::block_examples(g.ho() * g.wo());
    let per = chunks.first().map_or(g.b, |&(_, count)| count).next_multiple_of(block);
    let aligned: Vec<(usize, usize)> =
        (0..g.b).step_by(per.max(1)).map(|start| (start, per.min(g.b - start))).collect();
    (aligned.len() == chunks.len()).then_some(aligned)
}

/// maxpool(conv(x, w) + b), the pool's winners and, where `measure` asks, the layer's figures (its
/// pre-activations z and activations `measure`(z)): each thread convolves its images (`chunks`) a few at a time
/// into a scratch buffer that stays in its cache, measures and pools them from there: the convolution's output is
/// never stored whole, zeroed first, nor read back by a pool op. The same values as the two ops one after the
/// other, and the same figures as measuring the whole output (the runs start at multiples of the statistics'
/// blocks).
fn conv_then_pool(
    g: &Geom,
    (x, w, bias): (&[f32], &[f32], Option<&[f32]>),
    isa: Option<Isa>,
    (size, measure): (usize, Option<Pointwise>),
    chunks: &[(usize, usize)],
) -> (Vec<f32>, Vec<u8>, Option<Moments>) {
    let (ho, wo) = (g.ho(), g.wo());
    let (conv_per_image, x_per_image) = (g.co * ho * wo, g.ci * g.hw_in());
    let per_image = g.co * (ho / size) * (wo / size);
    let per = chunks.first().map_or(g.b, |&(_, count)| count).max(1);
    let (mut out, mut arg) = (vec![0.0f32; g.b * per_image], vec![0u8; g.b * per_image]);
    let mut run = (POOLED_RUN_VALUES / conv_per_image.max(1)).max(1);
    if measure.is_some() {
        let block = moments::block_examples(ho * wo);
        run = (run / block).max(1) * block;
    }
    let convolve_chunk = |out: &mut [f32], arg: &mut [u8], (start, count): (usize, usize)| {
        let xs = &x[start * x_per_image..(start + count) * x_per_image];
        let mut figures = Vec::new();
        let pool_run = |first: usize, y: &[f32]| {
            let images = y.len() / conv_per_image.max(1);
            if let Some(f) = measure {
                figures.push(moments::measure_run(f, [images, g.co, ho, wo], y));
            }
            let outputs = first * per_image..(first + images) * per_image;
            pool::forward_into(y, images * g.co, ho, wo, size, &mut out[outputs.clone()], &mut arg[outputs]);
        };
        direct::forward_in_runs(isa, &Geom { b: count, ..*g }, xs, w, bias, run, pool_run);
        figures
    };
    // A pool wider than the map leaves no outputs (and chunks of zero values, which cannot be split).
    let figures: Vec<RunFigures> = if chunks.len() <= 1 || per_image == 0 {
        convolve_chunk(&mut out, &mut arg, (0, g.b))
    } else {
        let parts: Vec<Vec<RunFigures>> =
            (out.par_chunks_mut(per * per_image).zip(arg.par_chunks_mut(per * per_image)))
                .zip(chunks)
                .map(|((out, arg), &chunk)| convolve_chunk(out, arg, chunk))
                .collect();
        parts.into_iter().flatten().collect()
    };
    let moments = measure.map(|_| moments::merge_runs(g.co, &figures));
    (out, arg, moments)
}

/// The convolution's output gradient from the incoming one: itself, or where the op was fused with its pool,
/// the pool's backward of it.
fn unpooled(dy: FlexTensor, pooled: Option<Pooled>) -> FlexTensor {
    match pooled {
        Some(Pooled { winners, conv_shape, size }) => pool_bwd(dy, &winners, &conv_shape, size),
        None => dy,
    }
}

#[derive(Debug)]
struct ConvBias;
#[derive(Debug)]
struct ConvNoBias;

/// dX, dW, db from the saved x, w and the incoming dY.
fn conv_grads(
    x: FlexTensor,
    w: FlexTensor,
    dy: FlexTensor,
    pad_stride: [usize; 2],
    choice: KernelChoice,
    columns: &Columns,
    [need_x, need_w, need_b]: [bool; 3],
) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
    let (x, w, dy) = (x.to_contiguous(), w.to_contiguous(), dy.to_contiguous());
    let g = geom(&x, &w, pad_stride);
    let dyv: &[f32] = dy.storage();
    let direct = direct_isa(choice);
    let dx = need_x.then(|| {
        let wv = w.storage::<f32>();
        let v = by_batch(&g, (dyv, g.co * g.hw_out()), g.ci * g.hw_in(), |gs, dys, dxs| match direct {
            Some(isa) => direct::input_grad_into(isa, gs, wv, dys, dxs),
            None => kernels::input_grad_into(gs, wv, dys, dxs),
        });
        flex(v, vec![g.b, g.ci, g.h, g.w])
    });
    let dw = need_w.then(|| {
        let dy_part = (dyv, g.co * g.hw_out());
        let v = match columns {
            // The same chunks and per-image products as from x: the same figures.
            Some(cols) => sum_by_batch(&g, (cols, g.k() * g.hw_out()), dy_part, kernels::weight_grad_from_cols),
            None => sum_by_batch(&g, (x.storage(), g.ci * g.hw_in()), dy_part, |gs, xs, dys| match direct {
                Some(isa) => direct::weight_grad(isa, gs, xs, dys),
                None => kernels::weight_grad(gs, xs, dys),
            }),
        };
        flex(v, vec![g.co, g.ci, g.kh, g.kw])
    });
    let db = need_b.then(|| flex(kernels::bias_grad(&g, dyv), vec![g.co]));
    (dx, dw, db)
}

impl Backward<Flex, 3> for ConvBias {
    type State = (NodeId, NodeId, [usize; 2], KernelChoice, Columns, Option<Pooled>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [nx, nw, nb] = ops.parents;
        let (xs, ws, pad_stride, choice, columns, pooled) = ops.state;
        let dy = unpooled(grads.consume::<Flex>(&ops.node), pooled);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(xs);
        let w = checkpointer.retrieve_node_output::<FlexTensor>(ws);
        let (dx, dw, db) =
            conv_grads(x, w, dy, pad_stride, choice, &columns, [nx.is_some(), nw.is_some(), nb.is_some()]);
        if let (Some(n), Some(g)) = (nx, dx) {
            grads.register::<Flex>(n.id, g);
        }
        if let (Some(n), Some(g)) = (nw, dw) {
            grads.register::<Flex>(n.id, g);
        }
        if let (Some(n), Some(g)) = (nb, db) {
            grads.register::<Flex>(n.id, g);
        }
    }
}

impl Backward<Flex, 2> for ConvNoBias {
    type State = (NodeId, NodeId, [usize; 2], KernelChoice, Columns, Option<Pooled>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [nx, nw] = ops.parents;
        let (xs, ws, pad_stride, choice, columns, pooled) = ops.state;
        let dy = unpooled(grads.consume::<Flex>(&ops.node), pooled);
        let x = checkpointer.retrieve_node_output::<FlexTensor>(xs);
        let w = checkpointer.retrieve_node_output::<FlexTensor>(ws);
        let (dx, dw, _) = conv_grads(x, w, dy, pad_stride, choice, &columns, [nx.is_some(), nw.is_some(), false]);
        if let (Some(n), Some(g)) = (nx, dx) {
            grads.register::<Flex>(n.id, g);
        }
        if let (Some(n), Some(g)) = (nw, dw) {
            grads.register::<Flex>(n.id, g);
        }
    }
}

pub(super) type AdPrim = <Ad as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// A weighted op's input, weights and bias as the primitives the own kernels take.
pub(super) enum Operands {
    /// On Autodiff<Flex> (NoCheckpointing): the op is recorded for the backward pass.
    Tracked(AdPrim, AdPrim, Option<AdPrim>),
    /// On plain Flex.
    Plain(FlexTensor, FlexTensor, Option<FlexTensor>),
}

/// `x`, `w` and `bias` as [`Operands`]: Autodiff<Flex> first, then plain Flex; `None` for anything else (another
/// backend, or a bias on another one than the rest), which goes to burn's op.
pub(super) fn operands<const D: usize, const E: usize>(
    x: &Tensor<D>,
    w: &Tensor<E>,
    bias: &Option<Tensor<1>>,
) -> Option<Operands> {
    if let (Ok(xp), Ok(wp)) = (x.clone().try_into_primitive::<Ad>(), w.clone().try_into_primitive::<Ad>()) {
        let bias = bias.clone().map(|b| b.try_into_primitive::<Ad>()).transpose().ok()?;
        return Some(Operands::Tracked(xp, wp, bias));
    }
    let (Ok(xp), Ok(wp)) = (x.clone().try_into_primitive::<Flex>(), w.clone().try_into_primitive::<Flex>()) else {
        return None;
    };
    let bias = bias.clone().map(|b| b.try_into_primitive::<Flex>()).transpose().ok()?;
    Some(Operands::Plain(xp, wp, bias))
}

fn ad_conv(
    x: AdPrim,
    w: AdPrim,
    b: Option<AdPrim>,
    conv: ([usize; 2], KernelChoice),
    after: After,
) -> (AdPrim, Option<Moments>) {
    let (pad_stride, choice) = conv;
    match b {
        Some(b) => {
            match ConvBias.prepare::<NoCheckpointing>([x.node(), w.node(), b.node()]).compute_bound().stateful() {
                OpsKind::Tracked(mut prep) => {
                    let xs = prep.checkpoint(&x);
                    let ws = prep.checkpoint(&w);
                    let f = fwd(x.primitive(), w.primitive(), Some(b.primitive()), conv, true, after);
                    (prep.finish((xs, ws, pad_stride, choice, f.columns, f.pooled), f.y), f.moments)
                }
                OpsKind::UnTracked(prep) => {
                    let f = fwd(x.primitive(), w.primitive(), Some(b.primitive()), conv, false, after);
                    (prep.finish(f.y), f.moments)
                }
            }
        }
        None => match ConvNoBias.prepare::<NoCheckpointing>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let ws = prep.checkpoint(&w);
                let f = fwd(x.primitive(), w.primitive(), None, conv, true, after);
                (prep.finish((xs, ws, pad_stride, choice, f.columns, f.pooled), f.y), f.moments)
            }
            OpsKind::UnTracked(prep) => {
                let f = fwd(x.primitive(), w.primitive(), None, conv, false, after);
                (prep.finish(f.y), f.moments)
            }
        },
    }
}

/// conv2d, square `stride`, dilation 1, groups 1, zero padding `pad` on every side, f32 (strides above 1 run
/// im2col + gemm), then what `after` asks in the same op (see [`conv_then_pool`]): the output pooled, and the
/// layer's figures. Where the figures are asked and none come back (another backend or element type: burn's
/// conv2d ran), the output is the convolution's alone, not pooled, for the caller to measure and pool.
pub fn conv2d_custom(
    x: Tensor<4>,
    w: Tensor<4>,
    bias: Option<Tensor<1>>,
    [pad, stride]: [usize; 2],
    choice: KernelChoice,
    after: After,
) -> (Tensor<4>, Option<Moments>) {
    let burn_conv = |x, w, bias| {
        super::fell_back();
        super::burn_conv2d_after((x, w, bias), [stride, pad], after, max_pool_custom)
    };
    if let Some(size) = after.pool.filter(|size| !(2..=pool::MAX_WINDOW).contains(size)) {
        // A window the pool kernels do not take: the convolution alone, then the pool op (which goes to burn's).
        let (y, moments) = conv2d_custom(x, w, bias, [pad, stride], choice, After { pool: None, ..after });
        return match (moments, after.measure) {
            (None, Some(_)) => (y, None),
            (moments, _) => (max_pool_custom(y, size), moments),
        };
    }
    if x.dtype() != burn::tensor::DType::F32 || w.dtype() != burn::tensor::DType::F32 {
        return burn_conv(x, w, bias);
    }
    match operands(&x, &w, &bias) {
        Some(Operands::Tracked(xp, wp, bp)) => {
            let (y, moments) = ad_conv(xp, wp, bp, ([pad, stride], choice), after);
            (Tensor::from_primitive::<Ad>(y), moments)
        }
        Some(Operands::Plain(xp, wp, bp)) => {
            let f = fwd(&xp, &wp, bp.as_ref(), ([pad, stride], choice), false, after);
            (Tensor::from_primitive::<Flex>(f.y), f.moments)
        }
        None => burn_conv(x, w, bias),
    }
}

// --- size×size / stride size max-pool (floor mode, no padding) ------------------------------------------

/// Planes per compute thread for a pool over `planes` planes: one run each, or all of them on one thread when
/// the whole is too small to be worth a split (or has no output).
fn planes_per_thread(planes: usize, outputs_per_plane: usize) -> usize {
    const WORTH_SPLITTING: usize = 4096;
    let threads = rayon::current_num_threads().clamp(1, planes.max(1));
    if outputs_per_plane == 0 || planes * outputs_per_plane < WORTH_SPLITTING {
        return planes.max(1);
    }
    planes.div_ceil(threads).max(1)
}

/// Forward on a flex tensor: output and the winners, runs of planes pooled in parallel.
fn pool_fwd(x: &FlexTensor, size: usize) -> (FlexTensor, Vec<u8>) {
    let x = x.to_contiguous();
    let s = x.layout().shape().to_vec();
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    let per_plane = (h / size) * (w / size);
    let (mut out, mut arg) = (zeroed(planes * per_plane), vec![0u8; planes * per_plane]);
    let per = planes_per_thread(planes, per_plane);
    if per >= planes {
        pool::forward_into(x.storage(), planes, h, w, size, &mut out, &mut arg);
    } else {
        let xs: &[f32] = x.storage();
        (out.par_chunks_mut(per * per_plane).zip(arg.par_chunks_mut(per * per_plane)))
            .zip(xs.par_chunks(per * h * w))
            .for_each(|((o, a), xs)| pool::forward_into(xs, o.len() / per_plane, h, w, size, o, a));
    }
    (flex(out, vec![s[0], s[1], h / size, w / size]), arg)
}

fn pool_bwd(dy: FlexTensor, arg: &[u8], in_shape: &[usize], size: usize) -> FlexTensor {
    let dy = dy.to_contiguous();
    let (planes, h, w) = (in_shape[0] * in_shape[1], in_shape[2], in_shape[3]);
    let per = planes_per_thread(planes, (h / size) * (w / size));
    flex(pool::backward_in_runs(dy.storage(), arg, [planes, h, w], size, per), in_shape.to_vec())
}

#[derive(Debug)]
struct Pool;

impl Backward<Flex, 1> for Pool {
    type State = (std::sync::Arc<Vec<u8>>, Vec<usize>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(n) = nx {
            let (arg, shape, size) = ops.state;
            grads.register::<Flex>(n.id, pool_bwd(dy, &arg, &shape, size));
        }
    }
}

/// `size`×`size` max-pool with stride `size` (what `max_pool2d(x, MaxPoolOptions::new([size, size]))` does);
/// 2 ≤ `size` ≤ [`pool::MAX_WINDOW`], others go to burn.
pub fn max_pool_custom(x: Tensor<4>, size: usize) -> Tensor<4> {
    if x.dtype() == burn::tensor::DType::F32 && (2..=pool::MAX_WINDOW).contains(&size) {
        if let Ok(xp) = x.clone().try_into_primitive::<Ad>() {
            let shape = xp.primitive().layout().shape().to_vec();
            let y = match Pool.prepare::<NoCheckpointing>([xp.node()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let (y, arg) = pool_fwd(xp.primitive(), size);
                    prep.finish((std::sync::Arc::new(arg), shape, size), y)
                }
                OpsKind::UnTracked(prep) => prep.finish(pool_fwd(xp.primitive(), size).0),
            };
            return Tensor::from_primitive::<Ad>(y);
        }
        if let Ok(xp) = x.clone().try_into_primitive::<Flex>() {
            return Tensor::from_primitive::<Flex>(pool_fwd(&xp, size).0);
        }
    }
    super::fell_back();
    super::burn_max_pool2d(x, size)
}
