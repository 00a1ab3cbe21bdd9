//! One step of SGD — weight decay, momentum, the update — over a parameter in one pass, with the step's size
//! measured on the way: burn's `Sgd` ran each of those as a tensor op writing a fresh tensor (five to six passes
//! over the weights a step), and the statistics then read the weights twice more for ‖ΔW‖ and ‖W‖.
//!
//! The arithmetic is burn's, operation for operation (w·decay + g, then g + m·v, then w − v·lr, each rounded to
//! f32), so the weights come out the same to the bit.

use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::direct::Isa;

/// The settings of one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f32,
    /// The momentum factor (no dampening, no Nesterov), or plain SGD.
    pub momentum: Option<f32>,
    /// The L2 penalty added to the gradient (`decay · w`), if any.
    pub decay: Option<f32>,
}

/// A parameter's velocity, as the update finds it.
pub enum Velocity<'a> {
    /// Plain SGD: there is none.
    None,
    /// The first step with momentum: written with the (decayed) gradient, as burn starts it.
    Fresh(&'a mut [f32]),
    /// A later step: read and updated in place.
    Running(&'a mut [f32]),
}

/// Σ (w′ − w)² and Σ w′² over the updated values: the step's size and the new weights' size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepSize {
    pub distance: f64,
    pub norm: f64,
}

/// Values per chunk, value i to lane i mod [`LANES`] (as in `squares`).
const LANES: usize = 64;
/// Chunks whose squares are added in f32 before they move to f64.
const FLUSH_CHUNKS: usize = 32;
/// Values per block, each block's sums kept apart and added in block order: blocks are what the threads share,
/// and the sums do not depend on how many threads there are.
const BLOCK: usize = 16 * FLUSH_CHUNKS * LANES;

/// The new weights, w − lr · v (with v the decayed gradient, through the momentum if any), in a fresh buffer
/// written once (not zeroed first), the velocity updated, and the step's size. `grads` and the velocity are as
/// long as `weights`. Large parameters are split over the compute threads by fixed blocks.
pub fn step(sgd: Sgd, weights: &[f32], grads: &[f32], velocity: Velocity<'_>) -> (Vec<f32>, StepSize) {
    let n = weights.len();
    assert!(grads.len() == n, "sgd::step: {n} weights and {} gradients", grads.len());
    let mut updated = Vec::with_capacity(n);
    let size = step_into(sgd, weights, grads, velocity, &mut updated.spare_capacity_mut()[..n]);
    // SAFETY: `step_into` wrote each of the first n values (every block writes every value of its part).
    unsafe { updated.set_len(n) };
    (updated, size)
}

fn step_into(sgd: Sgd, weights: &[f32], grads: &[f32], velocity: Velocity<'_>, out: &mut [Out]) -> StepSize {
    let n = weights.len();
    let (kind, velocity) = match velocity {
        Velocity::None => (Kind::Plain, &mut [][..]),
        Velocity::Fresh(v) => (Kind::Fresh, v),
        Velocity::Running(v) => (Kind::Running, v),
    };
    assert!(kind == Kind::Plain || velocity.len() == n, "sgd::step: a velocity of {} values for {n}", velocity.len());
    let mut sums = [[0.0f64; LANES]; 2];
    if n > BLOCK && rayon::current_num_threads() > 1 {
        let blocks: Vec<[[f64; LANES]; 2]> = if kind == Kind::Plain {
            (weights.par_chunks(BLOCK), grads.par_chunks(BLOCK), out.par_chunks_mut(BLOCK))
                .into_par_iter()
                .map(|(w, g, o)| dispatch(sgd, kind, w, g, &mut [], o))
                .collect()
        } else {
            (
                weights.par_chunks(BLOCK),
                grads.par_chunks(BLOCK),
                velocity.par_chunks_mut(BLOCK),
                out.par_chunks_mut(BLOCK),
            )
                .into_par_iter()
                .map(|(w, g, v, o)| dispatch(sgd, kind, w, g, v, o))
                .collect()
        };
        for block in &blocks {
            add_lanes(&mut sums, block);
        }
    } else {
        for (start, end) in (0..n).step_by(BLOCK).map(|start| (start, (start + BLOCK).min(n))) {
            let v = if kind == Kind::Plain { &mut [][..] } else { &mut velocity[start..end] };
            let block = dispatch(sgd, kind, &weights[start..end], &grads[start..end], v, &mut out[start..end]);
            add_lanes(&mut sums, &block);
        }
    }
    StepSize { distance: sums[0].iter().sum(), norm: sums[1].iter().sum() }
}

/// An output value, written once.
type Out = MaybeUninit<f32>;

fn add_lanes(sums: &mut [[f64; LANES]; 2], block: &[[f64; LANES]; 2]) {
    for (sum, part) in sums.iter_mut().zip(block) {
        for (s, p) in sum.iter_mut().zip(part) {
            *s += p;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Fresh,
    Running,
}

/// One block on the widest instruction set the CPU runs (the arithmetic is the same on each: no FMA contracts
/// the update, only the squares use it).
fn dispatch(sgd: Sgd, kind: Kind, w: &[f32], g: &[f32], v: &mut [f32], out: &mut [Out]) -> [[f64; LANES]; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { avx512(sgd, kind, w, g, v, out) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { avx2(sgd, kind, w, g, v, out) };
        }
    }
    block(sgd, kind, w, g, v, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(sgd: Sgd, kind: Kind, w: &[f32], g: &[f32], v: &mut [f32], out: &mut [Out]) -> [[f64; LANES]; 2] {
    block(sgd, kind, w, g, v, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(sgd: Sgd, kind: Kind, w: &[f32], g: &[f32], v: &mut [f32], out: &mut [Out]) -> [[f64; LANES]; 2] {
    block(sgd, kind, w, g, v, out)
}

/// The update over one block, one specialised loop per combination of decay and velocity (a branch per value
/// kept the loop from vectorising).
#[inline(always)]
fn block(sgd: Sgd, kind: Kind, w: &[f32], g: &[f32], v: &mut [f32], out: &mut [Out]) -> [[f64; LANES]; 2] {
    let Sgd { lr, momentum, decay } = sgd;
    let m = momentum.unwrap_or(0.0);
    match (decay, kind) {
        (None, Kind::Plain) => run(w, g, v, out, |_, g, _| (g, None), lr),
        (None, Kind::Fresh) => run(w, g, v, out, |_, g, _| (g, Some(g)), lr),
        (None, Kind::Running) => run(w, g, v, out, |_, g, v| running(g, v, m), lr),
        (Some(d), Kind::Plain) => run(w, g, v, out, |w, g, _| (w * d + g, None), lr),
        (Some(d), Kind::Fresh) => run(w, g, v, out, |w, g, _| fresh(w * d + g), lr),
        (Some(d), Kind::Running) => run(w, g, v, out, |w, g, v| running(w * d + g, v, m), lr),
    }
}

#[inline(always)]
fn fresh(g: f32) -> (f32, Option<f32>) {
    (g, Some(g))
}

/// burn's momentum without dampening: g·(1 − 0) + v·m (the product with one changes nothing).
#[inline(always)]
fn running(g: f32, v: f32, m: f32) -> (f32, Option<f32>) {
    let v = g + v * m;
    (v, Some(v))
}

/// Runs `direction` (w, g, v → the step's direction and the new velocity, if kept) over every value, writes
/// w − direction · lr, and sums the squares of the change and of the result in f32 lanes, moved to f64 every
/// [`FLUSH_CHUNKS`] chunks. Without a velocity (`v` empty) each chunk reads zeros from a scratch array. The last
/// partial chunk runs padded with zeros, which change nothing and add nothing.
#[inline(always)]
fn run(
    w: &[f32],
    g: &[f32],
    v: &mut [f32],
    out: &mut [Out],
    direction: impl Fn(f32, f32, f32) -> (f32, Option<f32>) + Copy,
    lr: f32,
) -> [[f64; LANES]; 2] {
    let mut totals = [[0.0f64; LANES]; 2];
    let mut sums = [[0.0f32; LANES]; 2];
    let keeps_velocity = !v.is_empty();
    let ((wc, w_rest), (gc, g_rest)) = (w.as_chunks::<LANES>(), g.as_chunks::<LANES>());
    let (oc, o_rest) = out.as_chunks_mut::<LANES>();
    let mut scratch = [0.0f32; LANES];
    let mut velocity_chunks = if keeps_velocity { v.as_chunks_mut::<LANES>().0 } else { &mut [][..] }.iter_mut();
    for (index, ((w, g), o)) in wc.iter().zip(gc).zip(oc.iter_mut()).enumerate() {
        let v = if keeps_velocity { velocity_chunks.next().unwrap_or(&mut scratch) } else { &mut scratch };
        chunk(w, g, v, o, &mut sums, direction, lr);
        if index % FLUSH_CHUNKS == FLUSH_CHUNKS - 1 {
            flush(&mut totals, &mut sums);
        }
    }
    let len = w_rest.len();
    if len > 0 {
        let (mut tw, mut tg, mut tv) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        let mut to = [MaybeUninit::new(0.0f32); LANES];
        tw[..len].copy_from_slice(w_rest);
        tg[..len].copy_from_slice(g_rest);
        if keeps_velocity {
            tv[..len].copy_from_slice(&v[v.len() - len..]);
        }
        chunk(&tw, &tg, &mut tv, &mut to, &mut sums, direction, lr);
        o_rest.copy_from_slice(&to[..len]);
        if keeps_velocity {
            let at = v.len() - len;
            v[at..].copy_from_slice(&tv[..len]);
        }
    }
    flush(&mut totals, &mut sums);
    totals
}

/// One chunk of the update, lane by lane.
#[inline(always)]
fn chunk(
    w: &[f32; LANES],
    g: &[f32; LANES],
    v: &mut [f32; LANES],
    out: &mut [Out; LANES],
    sums: &mut [[f32; LANES]; 2],
    direction: impl Fn(f32, f32, f32) -> (f32, Option<f32>),
    lr: f32,
) {
    for i in 0..LANES {
        let (d, kept) = direction(w[i], g[i], v[i]);
        if let Some(kept) = kept {
            v[i] = kept;
        }
        let updated = w[i] - d * lr;
        out[i].write(updated);
        let change = updated - w[i];
        sums[0][i] = change.mul_add(change, sums[0][i]);
        sums[1][i] = updated.mul_add(updated, sums[1][i]);
    }
}

/// Moves the f32 lanes into the f64 totals and clears them.
#[inline(always)]
fn flush(totals: &mut [[f64; LANES]; 2], sums: &mut [[f32; LANES]; 2]) {
    for (total, sum) in totals.iter_mut().zip(sums.iter_mut()) {
        for (t, s) in total.iter_mut().zip(sum.iter_mut()) {
            *t += f64::from(*s);
            *s = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 * 0.618_034 + seed).fract() - 0.5) * 2.0).collect()
    }

    /// burn's `Sgd::step`, one tensor op at a time.
    fn reference(sgd: Sgd, w: &[f32], g: &[f32], v: Option<&[f32]>) -> (Vec<f32>, Option<Vec<f32>>) {
        let g: Vec<f32> = match sgd.decay {
            Some(d) => w.iter().zip(g).map(|(w, g)| w * d + g).collect(),
            None => g.to_vec(),
        };
        let velocity = sgd.momentum.map(|m| match v {
            Some(v) => g.iter().zip(v).map(|(g, v)| g * 1.0 + v * m).collect::<Vec<f32>>(),
            None => g.clone(),
        });
        let direction = velocity.as_ref().unwrap_or(&g);
        (w.iter().zip(direction).map(|(w, d)| w - d * sgd.lr).collect(), velocity)
    }

    #[test]
    fn an_update_is_burns_to_the_bit_and_measures_its_size() {
        for n in [0, 1, 63, 64, 65, 2049, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let (w, g, v0) = (values(n, 0.1), values(n, 0.7), values(n, 0.3));
            for momentum in [None, Some(0.9)] {
                for decay in [None, Some(5e-4)] {
                    let sgd = Sgd { lr: 0.05, momentum, decay };
                    for first in [true, false] {
                        let previous = (!first && momentum.is_some()).then_some(&v0[..]);
                        let (want, want_v) = reference(sgd, &w, &g, previous);
                        let mut v = if first { vec![f32::NAN; n] } else { v0.clone() };
                        let velocity = match (momentum, first) {
                            (None, _) => Velocity::None,
                            (Some(_), true) => Velocity::Fresh(&mut v),
                            (Some(_), false) => Velocity::Running(&mut v),
                        };
                        let (out, size) = step(sgd, &w, &g, velocity);
                        let case = format!("n {n}, {sgd:?}, first {first}");
                        assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{case}");
                        if let Some(want_v) = want_v {
                            assert!(v.iter().zip(&want_v).all(|(a, b)| a.to_bits() == b.to_bits()), "{case}");
                        }
                        let distance: f64 = out.iter().zip(&w).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                        let norm: f64 = out.iter().map(|&a| f64::from(a).powi(2)).sum();
                        assert!((size.distance - distance).abs() <= 1e-6 * distance.max(1e-12), "{case}");
                        assert!((size.norm - norm).abs() <= 1e-6 * norm.max(1e-12), "{case}");
                        // The plain loop gives the same figures as the instruction-set entry points.
                        let mut again = vec![MaybeUninit::new(0.0f32); n];
                        let mut v_again = v0.clone();
                        let kind = match (momentum, first) {
                            (None, _) => Kind::Plain,
                            (Some(_), true) => Kind::Fresh,
                            (Some(_), false) => Kind::Running,
                        };
                        let vs = if kind == Kind::Plain { &mut [][..] } else { &mut v_again[..] };
                        if n <= BLOCK {
                            let plain = block(sgd, kind, &w, &g, vs, &mut again);
                            let sums = [plain[0].iter().sum::<f64>(), plain[1].iter().sum::<f64>()];
                            assert_eq!(sums, [size.distance, size.norm], "{case}");
                            let again: Vec<u32> = again.iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect();
                            assert_eq!(again, out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{case}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_step_size_does_not_depend_on_the_thread_count() {
        let n = 5 * BLOCK + 99;
        let (w, g) = (values(n, 0.2), values(n, 0.9));
        let sgd = Sgd { lr: 0.01, momentum: None, decay: Some(1e-3) };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
            let (out, size) = pool.install(|| step(sgd, &w, &g, Velocity::None));
            (size, out)
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.0, two.0);
        assert_eq!(one.1, two.1);
        assert!(one.0.distance > 0.0 && one.0.norm > 0.0);
    }

    #[test]
    fn non_finite_values_carry_through() {
        let (w, g) = ([1.0, f32::NAN, 2.0], [f32::INFINITY, 0.0, 1.0]);
        let (out, size) = step(Sgd { lr: 0.1, momentum: None, decay: None }, &w, &g, Velocity::None);
        assert_eq!(out[0], f32::NEG_INFINITY);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 1.9);
        assert!(size.distance.is_nan() && size.norm.is_nan());
    }
}
