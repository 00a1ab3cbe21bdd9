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

impl Pointwise {
    /// f(z), as burn-flex computes it.
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
                    (z.exp() - 1.0) * alpha
                } else {
                    z
                }
            }
            Pointwise::Sigmoid => {
                if z >= 0.0 {
                    1.0 / (1.0 + (-z).exp())
                } else {
                    let e = z.exp();
                    e / (1.0 + e)
                }
            }
            Pointwise::Tanh => z.tanh(),
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
pub(crate) fn forward_run(f: Pointwise, values: &mut [f32]) {
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

pub(crate) fn forward_run_into(f: Pointwise, input: &[f32], output: &mut [f32]) {
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
fn forward_into_plain(f: Pointwise, input: &[f32], output: &mut [f32]) {
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
}
