//! Element-wise activations whose slope follows from their output alone (ReLU, leaky ReLU, ELU, sigmoid, tanh):
//! the forward in place, and the backward as one pass dz = dy · f′ read off y = f(z). burn's autodiff takes
//! three to six passes for some of these (leaky ReLU and ELU are built from masks, tanh's backward recomputes
//! tanh), each on one thread; these split long slices over the compute threads and are compiled for the widest
//! vectors the CPU runs. Values match burn-flex's to the bit, NaN included (a NaN must reach the loss, so that a
//! diverged run is seen).

use rayon::prelude::*;

use crate::direct::Isa;
use crate::moments::Slope;

/// Slices shorter than this stay on one thread: a split costs more than it saves.
pub(crate) const PARALLEL_FROM: usize = 1 << 15;

/// An activation with its derivative known from its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pointwise {
    Relu,
    /// Slope for negative inputs (greater than zero, so the output's sign is the input's).
    LeakyRelu(f32),
    /// α, greater than zero.
    Elu(f32),
    Sigmoid,
    Tanh,
}

/// eˣ in plain arithmetic that vectorises, the same on every instruction set (libm's `expf` and `tanhf` are a
/// call per value, and a tanh net's activations cost more than its convolutions: ref-mnist with tanh ran at a
/// third of its ReLU speed). Cephes' expf: x = k·ln 2 + r, eʳ from a degree-6 polynomial, 2ᵏ put into the
/// exponent bits; x is first clamped to where eˣ is a normal f32, ∞ above and 0 below (NaN stays NaN). Within
/// 10⁻⁷ of eˣ relative to its size throughout.
#[inline(always)]
pub fn exp(z: f32) -> f32 {
    let x = z.clamp(-87.336_54, 88.722_83);
    let k = x.mul_add(std::f32::consts::LOG2_E, 0.5).floor();
    // ln 2 in two parts, so that k·ln 2 is subtracted without losing r's low bits.
    let r = k.mul_add(2.121_944_4e-4, k.mul_add(-0.693_359_4, x));
    let p = 1.987_569_1e-4_f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_5e-1)
        .mul_add(r, 5e-1);
    let e = p.mul_add(r * r, r) + 1.0;
    // k is within −126..=128 after the clamp (0 for NaN, which `e` carries); 2¹²⁸ is not an f32, so it is 2¹²⁷·2.
    let e = e * f32::from_bits(((k.min(127.0) as i32 + 127) as u32) << 23) * if k > 127.0 { 2.0 } else { 1.0 };
    // Past the clamp: ∞ where eᶻ overflows, 0 where it would be subnormal.
    if z > 88.722_84 {
        f32::INFINITY
    } else if z < -87.336_54 {
        0.0
    } else {
        e
    }
}

/// tanh in plain arithmetic that vectorises: Eigen's rational approximation (odd degree 13 over even degree 6) on
/// z clamped to ±7.905 (±1 from there on, where tanh rounds to it), z itself below 4·10⁻⁴ (NaN stays NaN).
#[inline(always)]
pub fn tanh(z: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = z.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = (-2.760_768_5e-16_f32)
        .mul_add(x2, 2.000_188e-13)
        .mul_add(x2, -8.604_672e-11)
        .mul_add(x2, 5.122_297e-8)
        .mul_add(x2, 1.485_722_4e-5)
        .mul_add(x2, 6.372_619_3e-4)
        .mul_add(x2, 4.893_524_6e-3);
    let q = 1.198_258_4e-6_f32.mul_add(x2, 1.185_347e-4).mul_add(x2, 2.268_434_6e-3).mul_add(x2, 4.893_525e-3);
    if x.abs() < 4e-4 {
        x
    } else if z.abs() >= CLAMP {
        1.0f32.copysign(z)
    } else {
        x * p / q
    }
}

impl Pointwise {
    /// f(z): as burn-flex computes it for ReLU and leaky ReLU; within a few units in the last place of libm's for
    /// the others, in arithmetic the compiler vectorises ([`exp`], [`tanh`]).
    #[inline(always)]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            // `!(z <= 0)` keeps a NaN, as burn's ReLU does.
            Pointwise::Relu => {
                if z.is_nan() || z > 0.0 {
                    z
                } else {
                    0.0
                }
            }
            Pointwise::LeakyRelu(slope) => {
                if z < 0.0 {
                    z * slope
                } else {
                    z
                }
            }
            Pointwise::Elu(alpha) => {
                if z <= 0.0 {
                    (exp(z) - 1.0) * alpha
                } else {
                    z
                }
            }
            Pointwise::Sigmoid => 1.0 / (1.0 + exp(-z)),
            Pointwise::Tanh => tanh(z),
        }
    }

    /// f′ in the form the statistics pass computes it (`moments`): the same slope [`Pointwise::grad`] applies.
    pub fn slope(self) -> Slope {
        match self {
            Pointwise::Relu => Slope::Step { below: 0.0 },
            Pointwise::LeakyRelu(below) => Slope::Step { below },
            Pointwise::Elu(alpha) => Slope::Elu { alpha },
            Pointwise::Sigmoid => Slope::Logistic,
            Pointwise::Tanh => Slope::Tanh,
        }
    }

    /// dy · f′(z), from the output y = f(z) (the sign of y is the sign of z for every one of these).
    #[inline(always)]
    pub fn grad(self, y: f32, dy: f32) -> f32 {
        match self {
            Pointwise::Relu => {
                if y.is_nan() || y > 0.0 {
                    dy
                } else {
                    0.0
                }
            }
            Pointwise::LeakyRelu(slope) => {
                if y < 0.0 {
                    dy * slope
                } else {
                    dy
                }
            }
            // f′ = α·e^z = y + α where z ≤ 0.
            Pointwise::Elu(alpha) => {
                if y <= 0.0 {
                    dy * (y + alpha)
                } else {
                    dy
                }
            }
            Pointwise::Sigmoid => dy * y * (1.0 - y),
            Pointwise::Tanh => dy * (1.0 - y * y),
        }
    }
}

/// Replaces every z in `values` by f(z).
pub fn forward_in_place(f: Pointwise, values: &mut [f32]) {
    let run = run_length(values.len());
    if run >= values.len() {
        return forward_run(f, values);
    }
    values.par_chunks_mut(run).for_each(|part| forward_run(f, part));
}

/// f(z) for every z in `input` into `output` (as long), side by side on the threads where it is long.
pub(crate) fn forward_into(f: Pointwise, input: &[f32], output: &mut [f32]) {
    let run = run_length(input.len());
    if run >= input.len() {
        return forward_run_into(f, input, output);
    }
    output
        .par_chunks_mut(run)
        .zip(input.par_chunks(run))
        .for_each(|(output, input)| forward_run_into(f, input, output));
}

/// f(z) for every z in `input`, as a new vector: for an input that others still read. Each thread zeroes and
/// writes its run while it is in its cache (a zeroed allocation, then the map, read and wrote it twice).
pub fn forward_to_vec(f: Pointwise, input: &[f32]) -> Vec<f32> {
    let run = run_length(input.len());
    crate::zeroed_then(input.len(), run, |index, output| {
        let start = index * run;
        forward_run_into(f, &input[start..start + output.len()], output);
    })
}

/// Replaces every dy in `grads` by dy · f′, read off the outputs `outputs` (the same length).
pub fn backward_in_place(f: Pointwise, outputs: &[f32], grads: &mut [f32]) {
    let n = outputs.len().min(grads.len());
    let (outputs, grads) = (&outputs[..n], &mut grads[..n]);
    let run = run_length(n);
    if run >= n {
        return backward_run(f, outputs, grads);
    }
    grads.par_chunks_mut(run).zip(outputs.par_chunks(run)).for_each(|(g, y)| backward_run(f, y, g));
}

/// Values per thread: all of them below [`PARALLEL_FROM`], else an even share of the current rayon pool's threads.
fn run_length(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    if n < PARALLEL_FROM || threads < 2 { n.max(1) } else { n.div_ceil(threads) }
}

/// `f` over one run, on the widest vectors this CPU runs (the match is hoisted so each loop vectorises).
fn forward_run(f: Pointwise, values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { forward_avx512(f, values) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { forward_avx2(f, values) };
        }
    }
    forward_plain(f, values);
}

fn forward_run_into(f: Pointwise, input: &[f32], output: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `forward_run`.
        if Isa::Avx512.runs_here() {
            return unsafe { forward_into_avx512(f, input, output) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { forward_into_avx2(f, input, output) };
        }
    }
    forward_into_plain(f, input, output);
}

fn backward_run(f: Pointwise, outputs: &[f32], grads: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `forward_run`.
        if Isa::Avx512.runs_here() {
            return unsafe { backward_avx512(f, outputs, grads) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { backward_avx2(f, outputs, grads) };
        }
    }
    backward_plain(f, outputs, grads);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn forward_avx512(f: Pointwise, values: &mut [f32]) {
    forward_plain(f, values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(f: Pointwise, values: &mut [f32]) {
    forward_plain(f, values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn forward_into_avx512(f: Pointwise, input: &[f32], output: &mut [f32]) {
    forward_into_plain(f, input, output);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_into_avx2(f: Pointwise, input: &[f32], output: &mut [f32]) {
    forward_into_plain(f, input, output);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn backward_avx512(f: Pointwise, outputs: &[f32], grads: &mut [f32]) {
    backward_plain(f, outputs, grads);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_avx2(f: Pointwise, outputs: &[f32], grads: &mut [f32]) {
    backward_plain(f, outputs, grads);
}

/// One loop per activation, so that the branch-free ones become vector selects.
#[inline(always)]
fn forward_plain(f: Pointwise, values: &mut [f32]) {
    fn each(values: &mut [f32], f: impl Fn(f32) -> f32) {
        values.iter_mut().for_each(|v| *v = f(*v));
    }
    match f {
        Pointwise::Relu => each(values, |z| Pointwise::Relu.apply(z)),
        Pointwise::LeakyRelu(slope) => each(values, |z| Pointwise::LeakyRelu(slope).apply(z)),
        Pointwise::Elu(alpha) => each(values, |z| Pointwise::Elu(alpha).apply(z)),
        Pointwise::Sigmoid => each(values, |z| Pointwise::Sigmoid.apply(z)),
        Pointwise::Tanh => each(values, |z| Pointwise::Tanh.apply(z)),
    }
}

#[inline(always)]
pub(crate) fn forward_into_plain(f: Pointwise, input: &[f32], output: &mut [f32]) {
    fn each(input: &[f32], output: &mut [f32], f: impl Fn(f32) -> f32) {
        output.iter_mut().zip(input).for_each(|(y, &z)| *y = f(z));
    }
    match f {
        Pointwise::Relu => each(input, output, |z| Pointwise::Relu.apply(z)),
        Pointwise::LeakyRelu(slope) => each(input, output, |z| Pointwise::LeakyRelu(slope).apply(z)),
        Pointwise::Elu(alpha) => each(input, output, |z| Pointwise::Elu(alpha).apply(z)),
        Pointwise::Sigmoid => each(input, output, |z| Pointwise::Sigmoid.apply(z)),
        Pointwise::Tanh => each(input, output, |z| Pointwise::Tanh.apply(z)),
    }
}

#[inline(always)]
fn backward_plain(f: Pointwise, outputs: &[f32], grads: &mut [f32]) {
    fn each(outputs: &[f32], grads: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        grads.iter_mut().zip(outputs).for_each(|(g, &y)| *g = f(y, *g));
    }
    match f {
        Pointwise::Relu => each(outputs, grads, |y, g| Pointwise::Relu.grad(y, g)),
        Pointwise::LeakyRelu(slope) => each(outputs, grads, |y, g| Pointwise::LeakyRelu(slope).grad(y, g)),
        Pointwise::Elu(alpha) => each(outputs, grads, |y, g| Pointwise::Elu(alpha).grad(y, g)),
        Pointwise::Sigmoid => each(outputs, grads, |y, g| Pointwise::Sigmoid.grad(y, g)),
        Pointwise::Tanh => each(outputs, grads, |y, g| Pointwise::Tanh.grad(y, g)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Pointwise; 5] =
        [Pointwise::Relu, Pointwise::LeakyRelu(0.01), Pointwise::Elu(1.0), Pointwise::Sigmoid, Pointwise::Tanh];

    /// Long enough to be split over threads, with NaN, ±∞, ±0 and both signs.
    fn inputs() -> Vec<f32> {
        let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-30, -1e-30, 88.0, -104.0];
        (0..PARALLEL_FROM * 2 + 13)
            .map(|i| special.get(i % 997).copied().unwrap_or(((i as f32) * 0.618).sin() * 6.0))
            .collect()
    }

    #[test]
    fn split_and_vectorised_runs_match_the_scalar_definition_bit_for_bit() {
        for f in ALL {
            let z = inputs();
            let mut y = z.clone();
            forward_in_place(f, &mut y);
            for (a, b) in y.iter().zip(z.iter().map(|&z| f.apply(z))) {
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{f:?}: {a} vs {b}");
            }
            let copied = forward_to_vec(f, &z);
            assert!(copied.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()), "{f:?}: into = in place");
            let dy: Vec<f32> = (0..z.len()).map(|i| ((i as f32) * 0.37).cos()).collect();
            let mut dz = dy.clone();
            backward_in_place(f, &y, &mut dz);
            for ((a, &y), &g) in dz.iter().zip(&y).zip(&dy) {
                let b = f.grad(y, g);
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{f:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn slopes_are_the_derivatives() {
        for f in ALL {
            for z in [-2.5f32, -0.3, 0.4, 1.7] {
                let h = 1e-3;
                let numeric = (f.apply(z + h) - f.apply(z - h)) / (2.0 * h);
                let analytic = f.grad(f.apply(z), 1.0);
                assert!((numeric - analytic).abs() < 2e-3, "{f:?} at {z}: {numeric} vs {analytic}");
                // The statistics' form of the slope is the same slope.
                let measured = f.slope().at(z, f.apply(z));
                assert!((measured - analytic).abs() < 1e-6, "{f:?} at {z}: slope {measured} vs {analytic}");
            }
        }
    }

    #[test]
    fn a_nan_input_stays_nan_and_passes_its_gradient() {
        for f in ALL {
            assert!(f.apply(f32::NAN).is_nan(), "{f:?}");
        }
        assert_eq!(Pointwise::Relu.grad(f32::NAN, 2.0), 2.0);
        assert_eq!(Pointwise::Relu.grad(0.0, 2.0), 0.0);
    }

    /// The vectorising exp and tanh against f64's over the whole range an activation sees, every 2⁻¹⁰ from −100 to
    /// 100 and the edges: within 2·10⁻⁷ of the true value relative to its size (exp), absolutely for the sigmoid
    /// and 4·10⁻⁷ for tanh (a few units in the last place near ±1), the limits and the infinities right, NaN kept.
    #[test]
    fn exp_and_tanh_are_as_accurate_as_f32_needs() {
        let (mut exp_error, mut tanh_error, mut sigmoid_error) = (0.0f64, 0.0f64, 0.0f64);
        for i in -102_400..=102_400 {
            let z = i as f32 / 1024.0;
            let exact = f64::from(z).exp();
            if (-87.0..88.7).contains(&z) {
                exp_error = exp_error.max((f64::from(exp(z)) - exact).abs() / exact);
            }
            tanh_error = tanh_error.max((f64::from(tanh(z)) - f64::from(z).tanh()).abs());
            let sigmoid = Pointwise::Sigmoid.apply(z);
            sigmoid_error = sigmoid_error.max((f64::from(sigmoid) - 1.0 / (1.0 + (-f64::from(z)).exp())).abs());
        }
        assert!(exp_error < 2e-7, "exp: {exp_error}");
        assert!(tanh_error < 4e-7, "tanh: {tanh_error}");
        assert!(sigmoid_error < 2e-7, "sigmoid: {sigmoid_error}");
        println!("exp {exp_error:e} (relative), tanh {tanh_error:e}, sigmoid {sigmoid_error:e}");
        for tiny in [1e-3_f32, 3e-4, 1e-6, 1e-30] {
            assert!(((tanh(tiny) - tiny) / tiny).abs() < 1e-6, "tanh keeps small inputs' digits: {tiny}");
        }
        assert_eq!((tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (1.0, -1.0));
        assert_eq!((Pointwise::Sigmoid.apply(f32::INFINITY), Pointwise::Sigmoid.apply(f32::NEG_INFINITY)), (1.0, 0.0));
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(88.72).is_finite() && exp(88.73) == f32::INFINITY, "overflow where f32's range ends");
        assert!(exp(-87.3) > 0.0 && exp(-87.4) == 0.0, "and zero below the normal range");
        assert!(exp(f32::NAN).is_nan() && tanh(f32::NAN).is_nan() && Pointwise::Sigmoid.apply(f32::NAN).is_nan());
        assert!(Pointwise::Elu(1.0).apply(f32::NEG_INFINITY) == -1.0);
    }
}
