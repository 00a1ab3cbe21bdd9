//! One step of an optimiser — SGD (weight decay, momentum) or Adam — over a parameter in one pass, with the
//! step's size measured on the way: burn's optimisers ran each part as a tensor op writing a fresh tensor (five to
//! six passes over the weights a step for SGD, a dozen for Adam, some of them scalar loops in burn-flex), and the
//! statistics then read the weights twice more for ‖ΔW‖ and ‖W‖.
//!
//! The arithmetic is burn's, operation for operation (SGD: w·decay + g, then g + m·v, then w − v·lr; Adam: the
//! moments, then m₁·c / (√m₂ + ε·c₂), then w − that·lr; each rounded to f32), so the weights come out the same to
//! the bit.

use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::direct::Isa;

/// The settings of one SGD update.
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

/// The settings of one Adam update (burn's, without AMSGrad).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// The L2 penalty added to the gradient (`decay · w`), if any.
    pub decay: Option<f32>,
}

/// A parameter's first and second moments, as the update finds them.
pub enum Moments<'a> {
    /// The first step: both written from the (decayed) gradient.
    Fresh(&'a mut [f32], &'a mut [f32]),
    /// A later step: read and updated in place.
    Running(&'a mut [f32], &'a mut [f32]),
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

/// An output value, written once.
type Out = MaybeUninit<f32>;

/// What an update keeps per value besides the weight: up to two running quantities (a velocity; Adam's
/// moments), an empty slice for one it does not keep.
type State<'a> = [&'a mut [f32]; 2];

/// One block's weights, gradients, kept quantities and outputs.
type Block<'a> = (&'a [f32], &'a [f32], State<'a>, &'a mut [Out]);

/// Per value: (w, g, the kept quantities) → (the step's direction, the kept quantities' new values).
trait Rule: Fn(f32, f32, [f32; 2]) -> (f32, [f32; 2]) + Copy + Send + Sync {}
impl<F: Fn(f32, f32, [f32; 2]) -> (f32, [f32; 2]) + Copy + Send + Sync> Rule for F {}

/// The gradient with the L2 penalty added: w·decay + g, burn's order.
fn decayed(decay: Option<f32>) -> impl Fn(f32, f32) -> f32 + Copy {
    move |w, g| match decay {
        Some(d) => w * d + g,
        None => g,
    }
}

/// The new weights, w − lr · v (with v the decayed gradient, through the momentum if any), in a fresh buffer
/// written once (not zeroed first), the velocity updated, and the step's size. `grads` and the velocity are as
/// long as `weights`. Large parameters are split over the compute threads by fixed blocks.
pub fn step(sgd: Sgd, weights: &[f32], grads: &[f32], velocity: Velocity<'_>) -> (Vec<f32>, StepSize) {
    let Sgd { lr, momentum, decay } = sgd;
    let m = momentum.unwrap_or(0.0);
    let decayed = decayed(decay);
    match velocity {
        Velocity::None => {
            apply(weights, grads, [&mut [], &mut []], (lr, Flush::No), move |w, g, _| (decayed(w, g), [0.0; 2]))
        }
        Velocity::Fresh(v) => apply(weights, grads, [v, &mut []], (lr, Flush::No), move |w, g, _| {
            let g = decayed(w, g);
            (g, [g, 0.0])
        }),
        // burn's momentum without dampening: g·(1 − 0) + v·m (the product with one changes nothing).
        Velocity::Running(v) => apply(weights, grads, [v, &mut []], (lr, Flush::No), move |w, g, [v, _]| {
            let v = decayed(w, g) + v * m;
            (v, [v, 0.0])
        }),
    }
}

/// Adam's new weights at step `time` (1 for the first; burn counts the same way), the moments updated in place,
/// and the step's size; as [`step`] otherwise.
pub fn adam_step(adam: Adam, time: i32, weights: &[f32], grads: &[f32], moments: Moments<'_>) -> (Vec<f32>, StepSize) {
    let Adam { lr, beta_1, beta_2, epsilon, decay } = adam;
    let (factor_1, factor_2) = (1.0 - beta_1, 1.0 - beta_2);
    let correction_2 = (1.0 - beta_2.powi(time)).sqrt();
    let combined = correction_2 / (1.0 - beta_1.powi(time));
    let floor = epsilon * correction_2;
    let decayed = decayed(decay);
    let direction = move |m1: f32, m2: f32| (m1 * combined) / (m2.sqrt() + floor);
    match moments {
        Moments::Fresh(m1, m2) => apply(weights, grads, [m1, m2], (lr, Flush::Subnormals), move |w, g, _| {
            let g = decayed(w, g);
            let (m1, m2) = (g * factor_1, (g * g) * factor_2);
            (direction(m1, m2), [m1, m2])
        }),
        Moments::Running(m1, m2) => apply(weights, grads, [m1, m2], (lr, Flush::Subnormals), move |w, g, [m1, m2]| {
            let g = decayed(w, g);
            let (m1, m2) = (m1 * beta_1 + g * factor_1, m2 * beta_2 + (g * g) * factor_2);
            (direction(m1, m2), [m1, m2])
        }),
    }
}

/// `rule` over every value, by blocks (side by side on the compute threads for large parameters), into a fresh
/// buffer.
fn apply(
    weights: &[f32],
    grads: &[f32],
    state: State<'_>,
    (lr, flush): (f32, Flush),
    rule: impl Rule,
) -> (Vec<f32>, StepSize) {
    let n = weights.len();
    assert!(grads.len() == n, "optimiser step: {n} weights and {} gradients", grads.len());
    for kept in &state {
        assert!(kept.is_empty() || kept.len() == n, "optimiser step: {} kept values for {n} weights", kept.len());
    }
    let mut updated = Vec::with_capacity(n);
    let [mut first, mut second] = state;
    let mut out = &mut updated.spare_capacity_mut()[..n];
    let mut blocks: Vec<Block<'_>> = Vec::with_capacity(n.div_ceil(BLOCK));
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let (a, b) = (if first.is_empty() { 0 } else { len }, if second.is_empty() { 0 } else { len });
        let (part_1, rest_1) = std::mem::take(&mut first).split_at_mut(a);
        let (part_2, rest_2) = std::mem::take(&mut second).split_at_mut(b);
        let (part_out, rest_out) = std::mem::take(&mut out).split_at_mut(len);
        (first, second, out) = (rest_1, rest_2, rest_out);
        blocks.push((&weights[start..start + len], &grads[start..start + len], [part_1, part_2], part_out));
    }
    let sums: Vec<[[f64; LANES]; 2]> = if n > BLOCK && rayon::current_num_threads() > 1 {
        blocks.into_par_iter().map(|(w, g, state, o)| flush.around(|| dispatch(w, g, state, o, lr, rule))).collect()
    } else {
        blocks.into_iter().map(|(w, g, state, o)| flush.around(|| dispatch(w, g, state, o, lr, rule))).collect()
    };
    // SAFETY: every block wrote each value of its part of the first n (`run` writes every output).
    unsafe { updated.set_len(n) };
    let mut totals = [[0.0f64; LANES]; 2];
    for block in &sums {
        for (total, part) in totals.iter_mut().zip(block) {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
        }
    }
    (updated, StepSize { distance: totals[0].iter().sum(), norm: totals[1].iter().sum() })
}

/// Whether a block runs with subnormal values flushed to zero. Adam squares its gradients: a gradient below about
/// 1e-19 gives a subnormal square, and on x86 each product, root and quotient that meets one is a microcode
/// assist (a 100k-weight update 40 → 537 µs). Flushed (MXCSR's DAZ and FTZ, for the block only, the thread's mode
/// restored after), such a value is zero; it only ever met ε·c₂ (at least about 1e-8) in a sum, so the weights
/// are the same, and a moment differs from burn's only where burn's was below 1.2e-38.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    No,
    Subnormals,
}

impl Flush {
    fn around<R>(self, work: impl FnOnce() -> R) -> R {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = self;
        #[cfg(target_arch = "x86_64")]
        if self == Flush::Subnormals {
            let _restore = FlushedSubnormals::set();
            return work();
        }
        work()
    }
}

/// DAZ and FTZ set on this thread while it lives; the mode before comes back when it is dropped (a panic too).
#[cfg(target_arch = "x86_64")]
struct FlushedSubnormals {
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
impl FlushedSubnormals {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
    const BITS: u32 = (1 << 15) | (1 << 6);

    fn set() -> FlushedSubnormals {
        let mut saved = 0u32;
        // SAFETY: stmxcsr stores the 32-bit control word to the address given, a live local; ldmxcsr loads one
        // with only the two flush bits added, which changes no exception mask or rounding mode.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
            let flushed = saved | Self::BITS;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &flushed, options(nostack, preserves_flags));
        }
        FlushedSubnormals { saved }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for FlushedSubnormals {
    fn drop(&mut self) {
        // SAFETY: loads the control word `set` read on this thread.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack, preserves_flags)) };
    }
}

/// One block on the widest instruction set the CPU runs (the arithmetic is the same on each: no FMA contracts
/// the update, only the squares use it).
fn dispatch(w: &[f32], g: &[f32], state: State<'_>, out: &mut [Out], lr: f32, rule: impl Rule) -> [[f64; LANES]; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { avx512(w, g, state, out, lr, rule) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { avx2(w, g, state, out, lr, rule) };
        }
    }
    run(w, g, state, out, lr, rule)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(
    w: &[f32],
    g: &[f32],
    state: State<'_>,
    out: &mut [Out],
    lr: f32,
    rule: impl Rule,
) -> [[f64; LANES]; 2] {
    run(w, g, state, out, lr, rule)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(w: &[f32], g: &[f32], state: State<'_>, out: &mut [Out], lr: f32, rule: impl Rule) -> [[f64; LANES]; 2] {
    run(w, g, state, out, lr, rule)
}

/// Runs `rule` over every value, writes w − direction · lr, keeps the quantities `state` holds, and sums the
/// squares of the change and of the result in f32 lanes, moved to f64 every [`FLUSH_CHUNKS`] chunks. A quantity
/// not kept (an empty slice) reads as zeros. The last partial chunk runs padded with zeros, whose results are
/// dropped and whose lanes add nothing to the sums.
#[inline(always)]
fn run(w: &[f32], g: &[f32], state: State<'_>, out: &mut [Out], lr: f32, rule: impl Rule) -> [[f64; LANES]; 2] {
    // One loop for each number of kept quantities, so that no value asks whether they are kept.
    match state.each_ref().map(|kept| !kept.is_empty()) {
        [false, false] => run_keeping::<0>(w, g, state, out, lr, rule),
        [true, false] => run_keeping::<1>(w, g, state, out, lr, rule),
        _ => run_keeping::<2>(w, g, state, out, lr, rule),
    }
}

#[inline(always)]
fn run_keeping<const K: usize>(
    w: &[f32],
    g: &[f32],
    state: State<'_>,
    out: &mut [Out],
    lr: f32,
    rule: impl Rule,
) -> [[f64; LANES]; 2] {
    let mut totals = [[0.0f64; LANES]; 2];
    let mut sums = [[0.0f32; LANES]; 2];
    let [first, second] = state;
    let ((wc, w_rest), (gc, g_rest)) = (w.as_chunks::<LANES>(), g.as_chunks::<LANES>());
    let (oc, o_rest) = out.as_chunks_mut::<LANES>();
    let (mut scratch_1, mut scratch_2) = ([0.0f32; LANES], [0.0f32; LANES]);
    let mut firsts = first.as_chunks_mut::<LANES>().0.iter_mut();
    let mut seconds = second.as_chunks_mut::<LANES>().0.iter_mut();
    for (index, ((w, g), o)) in wc.iter().zip(gc).zip(oc.iter_mut()).enumerate() {
        let a = if K >= 1 { firsts.next().unwrap_or(&mut scratch_1) } else { &mut scratch_1 };
        let b = if K >= 2 { seconds.next().unwrap_or(&mut scratch_2) } else { &mut scratch_2 };
        let mut new = [0.0f32; LANES];
        chunk(w, g, [a, b], &mut new, &mut sums, LANES, lr, rule);
        for (o, v) in o.iter_mut().zip(new) {
            o.write(v);
        }
        if index % FLUSH_CHUNKS == FLUSH_CHUNKS - 1 {
            flush(&mut totals, &mut sums);
        }
    }
    let len = w_rest.len();
    if len > 0 {
        let (mut tw, mut tg, mut ta, mut tb) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        tw[..len].copy_from_slice(w_rest);
        tg[..len].copy_from_slice(g_rest);
        let at = w.len() - len;
        if K >= 1 {
            ta[..len].copy_from_slice(&first[at..]);
        }
        if K >= 2 {
            tb[..len].copy_from_slice(&second[at..]);
        }
        let mut new = [0.0f32; LANES];
        chunk(&tw, &tg, [&mut ta, &mut tb], &mut new, &mut sums, len, lr, rule);
        for (o, &v) in o_rest.iter_mut().zip(&new[..len]) {
            o.write(v);
        }
        if K >= 1 {
            first[at..].copy_from_slice(&ta[..len]);
        }
        if K >= 2 {
            second[at..].copy_from_slice(&tb[..len]);
        }
    }
    flush(&mut totals, &mut sums);
    totals
}

/// One chunk of the update, lane by lane; lanes from `len` on are padding and add nothing to the sums.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk(
    w: &[f32; LANES],
    g: &[f32; LANES],
    [a, b]: [&mut [f32; LANES]; 2],
    out: &mut [f32; LANES],
    sums: &mut [[f32; LANES]; 2],
    len: usize,
    lr: f32,
    rule: impl Rule,
) {
    for i in 0..LANES {
        let (d, now) = rule(w[i], g[i], [a[i], b[i]]);
        a[i] = now[0];
        b[i] = now[1];
        let updated = w[i] - d * lr;
        out[i] = updated;
        let (change, size) = if i < len { (updated - w[i], updated) } else { (0.0, 0.0) };
        sums[0][i] = change.mul_add(change, sums[0][i]);
        sums[1][i] = size.mul_add(size, sums[1][i]);
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
                        if n <= BLOCK {
                            let mut again = vec![MaybeUninit::new(0.0f32); n];
                            let mut v_again = if first { vec![f32::NAN; n] } else { v0.clone() };
                            let state: State<'_> =
                                if momentum.is_some() { [&mut v_again, &mut []] } else { [&mut [], &mut []] };
                            let rule = |w: f32, g: f32, [v, _]: [f32; 2]| {
                                let g = sgd.decay.map_or(g, |d| w * d + g);
                                match (momentum, first) {
                                    (None, _) => (g, [0.0; 2]),
                                    (Some(_), true) => (g, [g, 0.0]),
                                    (Some(m), false) => (g + v * m, [g + v * m, 0.0]),
                                }
                            };
                            let plain = run(&w, &g, state, &mut again, sgd.lr, rule);
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

    /// burn's `Adam::step` (no AMSGrad), one tensor op at a time.
    fn adam_reference(adam: Adam, time: i32, w: &[f32], g: &[f32], moments: Option<(&[f32], &[f32])>) -> [Vec<f32>; 3] {
        let g: Vec<f32> = match adam.decay {
            Some(d) => w.iter().zip(g).map(|(w, g)| w * d + g).collect(),
            None => g.to_vec(),
        };
        let (f1, f2) = (1.0 - adam.beta_1, 1.0 - adam.beta_2);
        let square: Vec<f32> = g.iter().map(|g| g * g).collect();
        let (m1, m2): (Vec<f32>, Vec<f32>) = match moments {
            None => (g.iter().map(|g| g * f1).collect(), square.iter().map(|s| s * f2).collect()),
            Some((m1, m2)) => (
                m1.iter().zip(&g).map(|(m, g)| m * adam.beta_1 + g * f1).collect(),
                m2.iter().zip(&square).map(|(m, s)| m * adam.beta_2 + s * f2).collect(),
            ),
        };
        let c2 = (1.0 - adam.beta_2.powi(time)).sqrt();
        let combined = c2 / (1.0 - adam.beta_1.powi(time));
        let direction: Vec<f32> =
            m1.iter().zip(&m2).map(|(m1, m2)| (m1 * combined) / (m2.sqrt() + adam.epsilon * c2)).collect();
        let updated = w.iter().zip(&direction).map(|(w, d)| w - d * adam.lr).collect();
        [updated, m1, m2]
    }

    #[test]
    fn an_adam_update_is_burns_to_the_bit() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for n in [1, 65, 2049, BLOCK + 3, 2 * BLOCK + 100] {
            let (w, g) = (values(n, 0.1), values(n, 0.7));
            let (m1_0, m2_0): (Vec<f32>, Vec<f32>) = (values(n, 0.3), values(n, 0.5).iter().map(|v| v * v).collect());
            for decay in [None, Some(1e-3)] {
                let adam = Adam { lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-5, decay };
                for (time, first) in [(1, true), (7, false)] {
                    let previous = (!first).then_some((&m1_0[..], &m2_0[..]));
                    let [want, want_1, want_2] = adam_reference(adam, time, &w, &g, previous);
                    let (mut m1, mut m2) =
                        if first { (vec![f32::NAN; n], vec![f32::NAN; n]) } else { (m1_0.clone(), m2_0.clone()) };
                    let moments =
                        if first { Moments::Fresh(&mut m1, &mut m2) } else { Moments::Running(&mut m1, &mut m2) };
                    let (out, size) = adam_step(adam, time, &w, &g, moments);
                    let case = format!("n {n}, decay {decay:?}, time {time}");
                    assert_eq!(bits(&out), bits(&want), "{case}");
                    assert_eq!((bits(&m1), bits(&m2)), (bits(&want_1), bits(&want_2)), "{case}");
                    let distance: f64 = out.iter().zip(&w).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                    assert!((size.distance - distance).abs() <= 1e-6 * distance, "{case}");
                }
            }
        }
    }

    #[test]
    fn adam_flushes_subnormal_squares_and_leaves_the_thread_s_mode_as_it_was() {
        let n = 3 * BLOCK + 5;
        let w = values(n, 0.1);
        // Gradients whose squares (and whose moments' squares) are subnormal.
        let g: Vec<f32> = values(n, 0.7).iter().map(|v| v * 1e-21).collect();
        let adam = Adam { lr: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-5, decay: None };
        let (mut m1, mut m2) = (vec![0.0; n], vec![0.0; n]);
        let (out, _) = adam_step(adam, 1, &w, &g, Moments::Fresh(&mut m1, &mut m2));
        let [want, _, want_2] = adam_reference(adam, 1, &w, &g, None);
        assert!(want_2.iter().any(|&v| v != 0.0 && v.is_subnormal()), "the case has subnormal moments");
        assert!(m2.iter().all(|&v| v == 0.0), "flushed to zero");
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // The caller's mode is back: a subnormal product is still subnormal here.
        let tiny = std::hint::black_box(1e-30f32) * std::hint::black_box(1e-10f32);
        assert!(tiny.is_subnormal(), "{tiny}");
    }
}
