//! The project's own conv2d, max-pool and dense layer for the flex CPU backend, plugged into burn's autodiff via its
//! public `Backward` trait: direct register-blocked AVX-512 or AVX2 kernels where the CPU has them (3×3, 5×5 and
//! 7×7 filters; at a stride above 1 the forward, dW, and dX on AVX-512), im2col plus the `gemm` crate elsewhere.
//! burn-flex's conv builds its weight gradient as a convolution with a 28×28 "kernel" and its max-pool is scalar;
//! these take a ref-mnist step from ≈3,950 to ≈16,500 images/s at one thread (see the README). Any other case —
//! another backend, gradient checkpointing — goes to burn's own ops, and `CONVSCOPE_KERNELS=burn` forces that for
//! comparisons. The activations whose slope follows from their output run as one op each, forward and backward
//! (`pointwise`), and so does a dense layer (`linear`).

mod autodiff;
use autodiff::After;
mod linear;
mod optim;
mod pointwise;

use std::cell::Cell;
use std::sync::OnceLock;

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Tensor};

pub use convscope_kernels::Isa;
pub use convscope_kernels::moments::{Moments, Slope};
pub use convscope_kernels::pointwise::Pointwise;
pub use optim::{FusedAdam, FusedSgd, StepSizes, take_step_sizes};

/// Which kernels run the convolutions and the 2×2 pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// Direct kernels for this instruction set on 5×5 filters, im2col + gemm for other filter sizes.
    Direct(Isa),
    /// im2col + gemm everywhere (CPUs without AVX2, or `CONVSCOPE_KERNELS=gemm`).
    Gemm,
    /// burn-flex's own ops (`CONVSCOPE_KERNELS=burn`).
    Burn,
}

impl KernelChoice {
    /// The fastest kernels this CPU runs.
    pub fn best() -> KernelChoice {
        Isa::best().map_or(KernelChoice::Gemm, KernelChoice::Direct)
    }

    /// What `CONVSCOPE_KERNELS` names (`burn`, `gemm`, `avx2`, `avx512`); an instruction set this CPU lacks,
    /// or anything else, gives the best.
    pub fn from_name(name: &str) -> KernelChoice {
        match name {
            "burn" => KernelChoice::Burn,
            "gemm" => KernelChoice::Gemm,
            "avx2" if Isa::Avx2.runs_here() => KernelChoice::Direct(Isa::Avx2),
            "avx512" if Isa::Avx512.runs_here() => KernelChoice::Direct(Isa::Avx512),
            _ => KernelChoice::best(),
        }
    }

    /// Its name, as `CONVSCOPE_KERNELS` and `convscope bench` spell it.
    pub fn name(self) -> &'static str {
        match self {
            KernelChoice::Direct(Isa::Avx512) => "avx512",
            KernelChoice::Direct(Isa::Avx2) => "avx2",
            KernelChoice::Gemm => "gemm",
            KernelChoice::Burn => "burn",
        }
    }
}

/// The kernels in use: `CONVSCOPE_KERNELS=burn|gemm|avx2|avx512` if set, else the fastest this CPU runs.
pub fn kernel_choice() -> KernelChoice {
    static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        std::env::var("CONVSCOPE_KERNELS").map_or_else(|_| KernelChoice::best(), |name| KernelChoice::from_name(&name))
    })
}

/// conv2d with square `stride` and zero `padding`: the project's kernels on flex, burn's otherwise.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Tensor<4> {
    conv2d_using(kernel_choice(), x, weight, bias, stride, padding)
}

/// A dense layer, y = x·W + b (x `[batch, inputs]`, W `[inputs, outputs]`): the project's op on flex (one
/// autodiff node; its products on the `gemm` crate), burn's `linear` otherwise or with `CONVSCOPE_KERNELS=burn`.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    linear_using(kernel_choice(), x, weight, bias)
}

/// [`linear`] with the kernels named (tests compare it against burn's).
pub fn linear_using(choice: KernelChoice, x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    match choice {
        KernelChoice::Burn => burn::tensor::module::linear(x, weight, bias),
        KernelChoice::Direct(_) | KernelChoice::Gemm => linear::linear_custom(x, weight, bias),
    }
}

/// [`conv2d`] with the kernels named (tests compare each against burn's).
pub fn conv2d_using(
    choice: KernelChoice,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    conv2d_pooled_using(choice, x, weight, bias, [stride, padding], None)
}

/// [`max_pool2d`] of [`conv2d`] with a `pool`×`pool` window, as one op where the project's kernels run it: each
/// thread convolves a few images into a buffer that stays in its cache and pools them from there, so the
/// convolution's output is never stored whole. The same values and gradients as the two ops.
pub fn conv2d_pooled(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    [stride, padding]: [usize; 2],
    pool: usize,
) -> Tensor<4> {
    conv2d_pooled_using(kernel_choice(), x, weight, bias, [stride, padding], Some(pool))
}

/// [`conv2d_pooled`] with the kernels named, the pool optional.
pub fn conv2d_pooled_using(
    choice: KernelChoice,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: [usize; 2],
    pool: Option<usize>,
) -> Tensor<4> {
    conv2d_after(choice, (x, weight, bias), geometry, After { pool, measure: None }).0
}

/// [`conv2d`] on a statistics step, for a layer whose activation `f` runs after it as its own op (after its
/// `pool`, where given, which runs in the same op as in [`conv2d_pooled`]): the layer is measured inside the op
/// too (its pre-activations z and activations f(z), as [`measure_activated`] measures them, to the bit), each
/// thread measuring the images it convolved while they are in its cache. Gives the output (pooled where asked,
/// before `f`), the figures and the convolution's `[batch, filters, height, width]`; where the project's kernels
/// do not run (another backend or element type, `CONVSCOPE_KERNELS=burn`), the convolution's output alone,
/// unpooled, for the caller to measure and pool.
pub fn conv2d_measured(
    conv: (Tensor<4>, Tensor<4>, Option<Tensor<1>>),
    geometry: [usize; 2],
    pool: Option<usize>,
    f: Pointwise,
) -> Result<(Tensor<4>, Moments, [usize; 4]), Box<Tensor<4>>> {
    conv2d_measured_using(kernel_choice(), conv, geometry, pool, f)
}

/// [`conv2d_measured`] with the kernels named.
pub fn conv2d_measured_using(
    choice: KernelChoice,
    (x, weight, bias): (Tensor<4>, Tensor<4>, Option<Tensor<1>>),
    [stride, padding]: [usize; 2],
    pool: Option<usize>,
    f: Pointwise,
) -> Result<(Tensor<4>, Moments, [usize; 4]), Box<Tensor<4>>> {
    let ([b, ci, h, w], [co, _, kh, kw]) = (x.dims(), weight.dims());
    let g = convscope_kernels::Geom { b, ci, h, w, co, kh, kw, pad: padding, stride };
    let dims = [b, co, g.ho(), g.wo()];
    let after = After { pool, measure: Some(f) };
    match conv2d_after(choice, (x, weight, bias), [stride, padding], after) {
        (pooled, Some(moments)) => Ok((pooled, moments, dims)),
        (unpooled, None) => Err(Box::new(unpooled)),
    }
}

/// The convolution and what `after` asks, on the kernels `choice` names where the CPU runs them; see
/// [`autodiff::conv2d_custom`] for what comes back where figures were asked and none came.
fn conv2d_after(
    choice: KernelChoice,
    (x, weight, bias): (Tensor<4>, Tensor<4>, Option<Tensor<1>>),
    [stride, padding]: [usize; 2],
    after: After,
) -> (Tensor<4>, Option<Moments>) {
    // Direct kernels only where the CPU runs them.
    let choice = match choice {
        KernelChoice::Direct(isa) if !isa.runs_here() => KernelChoice::Gemm,
        other => other,
    };
    if stride > 0 && choice != KernelChoice::Burn {
        return autodiff::conv2d_custom(x, weight, bias, [padding, stride], choice, after);
    }
    burn_conv2d_after((x, weight, bias), [stride, padding], after, |y, size| max_pool2d_using(choice, y, size))
}

/// burn's conv2d, then `pool` with the window `after` names — unless `after` asks for figures, which burn's ops
/// cannot take: the convolution's output then comes back alone, unpooled, for the caller to measure and pool.
fn burn_conv2d_after(
    (x, weight, bias): (Tensor<4>, Tensor<4>, Option<Tensor<1>>),
    [stride, padding]: [usize; 2],
    after: After,
    pool: impl FnOnce(Tensor<4>, usize) -> Tensor<4>,
) -> (Tensor<4>, Option<Moments>) {
    let y = burn_conv2d(x, weight, bias, stride, padding);
    match after.pool.filter(|_| after.measure.is_none()) {
        Some(size) => (pool(y, size), None),
        None => (y, None),
    }
}

/// Runs `read` on the values of flex f32 tensors where they lie (each made contiguous first if it was not), in
/// memory order; `None` on another backend or element type, and with `CONVSCOPE_KERNELS=burn`: the caller then
/// reads them back through burn.
pub fn read_in_place<const D: usize, const N: usize, R>(
    tensors: [&Tensor<D>; N],
    read: impl FnOnce([&[f32]; N]) -> R,
) -> Option<R> {
    if kernel_choice() == KernelChoice::Burn {
        return None;
    }
    let mut flex = Vec::with_capacity(N);
    for t in tensors {
        let x = (t.dtype() == DType::F32).then(|| t.clone().try_into_primitive::<Flex>().ok()).flatten()?;
        // Contiguous and covering its whole buffer, so its storage holds exactly its values in order.
        flex.push(x.to_contiguous());
    }
    Some(read(std::array::from_fn(|i| flex[i].storage::<f32>())))
}

/// Sums of squares over flex f32 tensors, each read in place in one pass (`convscope_kernels::squares`): for
/// each pair with a `b`, Σ(a − b)² then Σa²; without, Σa². `None` where [`read_in_place`] gives none.
pub fn sums_of_squares(pairs: &[(Tensor<1>, Option<Tensor<1>>)]) -> Option<Vec<f64>> {
    use convscope_kernels::squares::{distance_and_norm, sum_of_squares};
    let mut sums = Vec::with_capacity(2 * pairs.len());
    for (a, b) in pairs {
        match b {
            None => sums.push(read_in_place([a], |[a]| sum_of_squares(a))?),
            Some(b) => {
                let (distance, norm) = read_in_place([a, b], |[a, b]| distance_and_norm(a, b))?;
                sums.extend([distance, norm]);
            }
        }
    }
    Some(sums)
}

thread_local! {
    static FALLBACKS: Cell<u64> = const { Cell::new(0) };
}

/// How many times on this thread an op that was to run the project's kernels ran burn's instead (an input they
/// do not take: another backend or element type, a pool window over 15). The kernel tests assert that it stays
/// put, so that they never compare burn with burn.
pub fn fallbacks_on_this_thread() -> u64 {
    FALLBACKS.with(Cell::get)
}

fn fell_back() {
    FALLBACKS.with(|count| count.set(count.get() + 1));
}

/// burn's own conv2d (the fallback for everything the project's kernels do not take).
fn burn_conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Tensor<4> {
    burn::tensor::module::conv2d(x, weight, bias, ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1))
}

/// burn's own max-pool with a square window and the same stride (the fallback).
fn burn_max_pool2d(x: Tensor<4>, size: usize) -> Tensor<4> {
    burn::tensor::module::max_pool2d(x, MaxPoolOptions::new([size, size]))
}

/// Max-pooling with a square window and the same stride (floor mode): the project's kernels on flex (a
/// branch-free one for 2×2, a plain one for 3×3 up to 15×15).
pub fn max_pool2d(x: Tensor<4>, size: usize) -> Tensor<4> {
    max_pool2d_using(kernel_choice(), x, size)
}

/// [`max_pool2d`] with the kernels named.
pub fn max_pool2d_using(choice: KernelChoice, x: Tensor<4>, size: usize) -> Tensor<4> {
    if choice != KernelChoice::Burn { autodiff::max_pool_custom(x, size) } else { burn_max_pool2d(x, size) }
}

/// The activation `f` as one op on flex — in place, its backward one pass read off the output —; any other
/// backend, or `CONVSCOPE_KERNELS=burn`, goes to `otherwise` (burn's own activation).
pub fn pointwise<const D: usize>(
    f: Pointwise,
    x: Tensor<D>,
    otherwise: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    pointwise_using(kernel_choice(), f, x, otherwise)
}

/// The activation `f` as [`pointwise`] does it, measuring the layer (`[batch, units, height, width]`, or a dense
/// layer's `[batch, units]`) in the same pass with `f.slope()` as f′: the output and the layer's figures. Another
/// backend or element type, or `CONVSCOPE_KERNELS=burn`, gets `x` back untouched, for the caller to activate and
/// measure apart.
pub fn pointwise_measured<const D: usize>(f: Pointwise, x: Tensor<D>) -> Result<(Tensor<D>, Moments), Box<Tensor<D>>> {
    if kernel_choice() == KernelChoice::Burn { Err(Box::new(x)) } else { pointwise::pointwise_measured(f, x) }
}

/// A layer's `[batch, units, height, width]` as the statistics pass takes it: a dense layer's `[batch, units]` as
/// `[batch, units, 1, 1]` maps, any other shape as one run of values.
pub fn as_maps(shape: &[usize]) -> [usize; 4] {
    match *shape {
        [batch, units, height, width] => [batch, units, height, width],
        [batch, units] => [batch, units, 1, 1],
        _ => [1, 1, 1, shape.iter().product()],
    }
}

/// The figures of a layer whose activation is the identity (its output is its pre-activation, `dims` as
/// [`pointwise_measured`] takes them), read in place with f′ = 1; `None` where [`read_in_place`] gives none.
pub fn measure_identity<const D: usize>(x: &Tensor<D>, dims: [usize; 4]) -> Option<Moments> {
    let x = x.clone().inner();
    read_in_place([&x], |[z]| convscope_kernels::moments::measure(dims, z, z, Slope::One))
}

/// The figures of a layer whose activations are `f` of `x` (`dims` as [`pointwise_measured`] takes them),
/// measured without storing those activations; `None` where [`read_in_place`] gives none.
pub fn measure_activated<const D: usize>(f: Pointwise, x: &Tensor<D>, dims: [usize; 4]) -> Option<Moments> {
    let x = x.clone().inner();
    read_in_place([&x], |[z]| convscope_kernels::moments::measure_activated(f, dims, z))
}

/// [`pointwise`] with the kernels named.
pub fn pointwise_using<const D: usize>(
    choice: KernelChoice,
    f: Pointwise,
    x: Tensor<D>,
    otherwise: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if choice == KernelChoice::Burn { otherwise(x) } else { pointwise::pointwise_custom(f, x, otherwise) }
}
