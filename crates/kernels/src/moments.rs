//! One pass over a layer's pre-activations z and activations a = f(z) (both `[batch, units, positions]`):
//! sums of z, z², a, a², the finite ranges, non-finite z, and per unit the sum of the slope f′ and the largest
//! a. convscope's layer statistics read it on every statistics step, so it is compiled for the widest vectors
//! the CPU runs (AVX-512, AVX2) and picked at run time, like the convolution kernels.

use crate::direct::Isa;
#[cfg(target_arch = "x86_64")]
use crate::pointwise::{self, Pointwise};
use crate::simd::{Avx2, Avx512};

mod activated;
mod blocks;
#[cfg(target_arch = "x86_64")]
mod in_registers;

pub use activated::{activate_and_measure, measure_activated};
pub use blocks::{RunFigures, block_examples, measure_run, merge_runs};
#[cfg(target_arch = "x86_64")]
use in_registers::InRegisters;

/// Rounds of lanes summed in f32 before the sums move to f64: few enough that f32 keeps the sums of squares
/// exact to about 1e-5, so a variance taken from them (mean of squares − squared mean) stays meaningful.
const FLUSH_ROUNDS: usize = 64;

/// What the pass yields; ranges are NaN where no finite value came.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Values measured (pairs of z and a).
    pub measured: usize,
    pub pre_sum: f64,
    pub pre_square: f64,
    pub post_sum: f64,
    pub post_square: f64,
    pub pre_low: f32,
    pub pre_high: f32,
    pub post_low: f32,
    pub post_high: f32,
    pub pre_non_finite: u32,
    /// Per unit, Σ f′(z) over the batch and positions.
    pub unit_slope_sums: Vec<f64>,
    /// Per unit, its largest a (NaN when every a was NaN).
    pub unit_peaks: Vec<f32>,
}

impl Moments {
    /// Nothing measured yet, for `units` units.
    fn empty(units: usize) -> Moments {
        Moments {
            measured: 0,
            pre_sum: 0.0,
            pre_square: 0.0,
            post_sum: 0.0,
            post_square: 0.0,
            pre_low: f32::NAN,
            pre_high: f32::NAN,
            post_low: f32::NAN,
            post_high: f32::NAN,
            pre_non_finite: 0,
            unit_slope_sums: vec![0.0; units],
            unit_peaks: vec![f32::NAN; units],
        }
    }
}

/// f′ of a layer's activation, from z and a = f(z): the common ones in forms the vector pass computes itself.
#[derive(Clone, Copy, Debug)]
pub enum Slope {
    /// 1 where z > 0, `below` elsewhere (ReLU: 0; leaky ReLU: its slope).
    Step { below: f32 },
    /// 1 where z > 0, a + α elsewhere (ELU: α·eᶻ = f(z) + α).
    Elu { alpha: f32 },
    /// a − a² (the sigmoid's σ(1 − σ)).
    Logistic,
    /// 1 − a² (tanh).
    Tanh,
    /// 1 (identity).
    One,
    /// Any other, computed value by value.
    Other(fn(f32, f32) -> f32),
}

impl Slope {
    /// f′ at one value: what every vector form must match.
    #[inline(always)]
    pub fn at(self, z: f32, a: f32) -> f32 {
        match self {
            Slope::Step { below } => {
                if z > 0.0 {
                    1.0
                } else {
                    below
                }
            }
            Slope::Elu { alpha } => {
                if z > 0.0 {
                    1.0
                } else {
                    a + alpha
                }
            }
            Slope::Logistic => a - a * a,
            Slope::Tanh => 1.0 - a * a,
            Slope::One => 1.0,
            Slope::Other(f) => f(z, a),
        }
    }
}

/// Measures `pre` and `post` laid out `[batch, units, height, width]` as `dims` says, with `slope.at(z, a)` as f′.
/// Slices shorter than `dims` are measured as far as they both go.
pub fn measure(dims: [usize; 4], pre: &[f32], post: &[f32], slope: Slope) -> Moments {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { measure_avx512(dims, pre, post, slope) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { measure_avx2(dims, pre, post, slope) };
        }
    }
    measure_plain::<Plain, 8>(dims, pre, post, slope)
}

/// One AVX-512 register per running quantity.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn measure_avx512(dims: [usize; 4], pre: &[f32], post: &[f32], slope: Slope) -> Moments {
    measure_plain::<InRegisters<Avx512>, 16>(dims, pre, post, slope)
}

/// One AVX2 register per running quantity: eleven of them fit the sixteen registers (sixteen lanes would spill).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn measure_avx2(dims: [usize; 4], pre: &[f32], post: &[f32], slope: Slope) -> Moments {
    measure_plain::<InRegisters<Avx2>, 8>(dims, pre, post, slope)
}

/// Running sums of one unit's values, lane by lane.
#[derive(Clone, Copy)]
struct Lanes<const L: usize> {
    pre_sum: [f32; L],
    pre_square: [f32; L],
    post_sum: [f32; L],
    post_square: [f32; L],
    slope: [f32; L],
    /// ±∞ until a finite value arrives; a non-finite value enters as NaN, which a comparison never takes.
    pre_low: [f32; L],
    pre_high: [f32; L],
    post_low: [f32; L],
    post_high: [f32; L],
    peak: [f32; L],
    /// Counted in f32, exact to 2²⁴ a lane: flushed with the sums, long before.
    pre_non_finite: [f32; L],
}

impl<const L: usize> Lanes<L> {
    const EMPTY: Lanes<L> = Lanes {
        pre_sum: [0.0; L],
        pre_square: [0.0; L],
        post_sum: [0.0; L],
        post_square: [0.0; L],
        slope: [0.0; L],
        pre_low: [f32::INFINITY; L],
        pre_high: [f32::NEG_INFINITY; L],
        post_low: [f32::INFINITY; L],
        post_high: [f32::NEG_INFINITY; L],
        peak: [f32::NEG_INFINITY; L],
        pre_non_finite: [0.0; L],
    };

    #[inline(always)]
    fn add(&mut self, lane: usize, z: f32, a: f32, slope: f32) {
        self.pre_sum[lane] += z;
        self.pre_square[lane] = z.mul_add(z, self.pre_square[lane]);
        self.post_sum[lane] += a;
        self.post_square[lane] = a.mul_add(a, self.post_square[lane]);
        self.slope[lane] += slope;
        let finite_z = if z.is_finite() { z } else { f32::NAN };
        let finite_a = if a.is_finite() { a } else { f32::NAN };
        // Plain comparisons, not `f32::min`: one vector instruction each, where `min`'s NaN rules cost several.
        self.pre_low[lane] = smaller(finite_z, self.pre_low[lane]);
        self.pre_high[lane] = larger(finite_z, self.pre_high[lane]);
        self.post_low[lane] = smaller(finite_a, self.post_low[lane]);
        self.post_high[lane] = larger(finite_a, self.post_high[lane]);
        self.peak[lane] = larger(a, self.peak[lane]);
        self.pre_non_finite[lane] += if z.is_finite() { 0.0 } else { 1.0 };
    }

    /// Moves the running sums into `m`, lane i's slope sum to `unit_slopes[i]` (each lane a unit of its own), and
    /// starts them again.
    fn flush_per_lane(&mut self, m: &mut Moments, unit_slopes: &mut [f64; L]) {
        unit_slopes.iter_mut().zip(&self.slope).for_each(|(total, &s)| *total += f64::from(s));
        self.flush_sums(m);
    }

    fn flush_sums(&mut self, m: &mut Moments) {
        blocks::BlockSums::take(self, 0).add_to(m);
    }

    /// Folds the lanes' ranges into `m`.
    fn fold_ranges(&self, m: &mut Moments) {
        // f32::min / max skip NaN: a unit or lane without a finite value changes nothing.
        m.pre_low = m.pre_low.min(fold(&self.pre_low, f32::INFINITY, f32::min));
        m.pre_high = m.pre_high.max(fold(&self.pre_high, f32::NEG_INFINITY, f32::max));
        m.post_low = m.post_low.min(fold(&self.post_low, f32::INFINITY, f32::min));
        m.post_high = m.post_high.max(fold(&self.post_high, f32::NEG_INFINITY, f32::max));
    }
}

/// How blocks of consecutive values go into the lanes: lane by lane in plain code, or held in registers from
/// one flush of the sums to the next.
///
/// # Safety
/// Every method needs the implementation's instructions to run on this CPU.
trait AddBlock<const L: usize> {
    /// The lanes as the implementation holds them while adding.
    type Held;
    unsafe fn hold(lanes: &Lanes<L>) -> Self::Held;
    unsafe fn release(held: &Self::Held, lanes: &mut Lanes<L>);
    /// Adds `pre` and `post` (equally long), value i to lane i mod L.
    unsafe fn add_block(held: &mut Self::Held, pre: &[f32], post: &[f32], slope: Slope);
    /// Adds `pre` and a = `f`(`pre`), which goes through `plane` (as long as `pre`) unless the implementation
    /// computes it in registers: the figures [`AddBlock::add_block`] gives for the two.
    #[inline(always)]
    unsafe fn add_activated(held: &mut Self::Held, f: Pointwise, pre: &[f32], plane: &mut [f32], slope: Slope) {
        pointwise::forward_into_plain(f, pre, plane);
        // SAFETY: the caller's CPU runs this implementation.
        unsafe { Self::add_block(held, pre, plane, slope) }
    }
}

/// Lane by lane, left to the compiler (which kept the running vectors on the stack, ~40 cycles a vector).
struct Plain;

impl<const L: usize> AddBlock<L> for Plain {
    type Held = Lanes<L>;
    #[inline(always)]
    unsafe fn hold(lanes: &Lanes<L>) -> Lanes<L> {
        *lanes
    }
    #[inline(always)]
    unsafe fn release(held: &Lanes<L>, lanes: &mut Lanes<L>) {
        *lanes = *held;
    }
    #[inline(always)]
    unsafe fn add_block(lanes: &mut Lanes<L>, pre: &[f32], post: &[f32], slope: Slope) {
        let (mut zs, mut activations) = (pre.chunks_exact(L), post.chunks_exact(L));
        for (zs, activations) in (&mut zs).zip(&mut activations) {
            for lane in 0..L {
                let (z, a) = (zs[lane], activations[lane]);
                lanes.add(lane, z, a, slope.at(z, a));
            }
        }
        for (lane, (&z, &a)) in zs.remainder().iter().zip(activations.remainder()).enumerate() {
            lanes.add(lane, z, a, slope.at(z, a));
        }
    }
}

/// `value` when it is below `current` (a NaN `value` never is).
#[inline(always)]
fn smaller(value: f32, current: f32) -> f32 {
    if value < current { value } else { current }
}

/// `value` when it is above `current` (a NaN `value` never is).
#[inline(always)]
fn larger(value: f32, current: f32) -> f32 {
    if value > current { value } else { current }
}

fn sum<const L: usize>(lanes: &[f32; L]) -> f64 {
    lanes.iter().map(|&v| f64::from(v)).sum()
}

/// The lanes' extreme by `pick`, skipping lanes still at their start value `unset` (NaN when all are).
fn fold<const L: usize>(lanes: &[f32; L], unset: f32, pick: fn(f32, f32) -> f32) -> f32 {
    lanes.iter().copied().filter(|&v| v != unset).fold(f32::NAN, pick)
}

/// The pass: unit by unit where a unit has a map of values per example (convolutions), across units where it
/// has one (dense layers).
#[inline(always)]
fn measure_plain<W: AddBlock<L>, const L: usize>(dims: [usize; 4], pre: &[f32], post: &[f32], slope: Slope) -> Moments {
    let [_, units, height, width] = dims;
    let mut moments = Moments::empty(units);
    if height * width == 1 {
        measure_across_units::<W, L>(dims, pre, post, slope, &mut moments);
    } else {
        measure_unit_by_unit::<W, L>(dims, pre, post, slope, &mut moments);
    }
    moments
}

/// Unit by unit: each unit's values over the whole batch go through one set of lanes, folded once per unit (a
/// 7×7 layer's 49 values per example no longer pay for a fold each), its sums moved to f64 every
/// [`FLUSH_ROUNDS`] rounds. Units go side by side on the compute threads where the layer is large; their figures
/// are merged in unit order, so the thread count changes nothing.
#[inline(always)]
fn measure_unit_by_unit<W: AddBlock<L>, const L: usize>(
    dims: [usize; 4],
    pre: &[f32],
    post: &[f32],
    slope: Slope,
    m: &mut Moments,
) {
    let [batch, units, height, width] = dims;
    let per_unit = (height * width).max(1);
    let available = pre.len().min(post.len()).min(batch * units * per_unit);
    for unit in 0..units {
        let mut examples = Stored { pre, post, units, unit, per_unit, available };
        // SAFETY: `W` runs here, as the entry point that picked it checked.
        let figures = unsafe { unit_figures::<W, _, L>((batch, per_unit), &mut examples, slope) };
        figures.merge_into(m, unit);
    }
}

/// Where a unit's values come from, example by example.
trait Examples {
    /// Adds example `example`'s values of the unit to `held`; returns how many there were.
    ///
    /// # Safety
    /// `W`'s instructions must run on this CPU.
    unsafe fn add<W: AddBlock<L>, const L: usize>(&mut self, held: &mut W::Held, example: usize, slope: Slope)
    -> usize;
}

/// Values already computed: z in `pre`, a in `post`, both `[batch, units, per_unit]` (read as far as `available`).
struct Stored<'a> {
    pre: &'a [f32],
    post: &'a [f32],
    units: usize,
    unit: usize,
    per_unit: usize,
    available: usize,
}

impl Examples for Stored<'_> {
    #[inline(always)]
    unsafe fn add<W: AddBlock<L>, const L: usize>(
        &mut self,
        held: &mut W::Held,
        example: usize,
        slope: Slope,
    ) -> usize {
        let start = (example * self.units + self.unit) * self.per_unit;
        let end = (start + self.per_unit).min(self.available);
        if start >= end {
            return 0;
        }
        // SAFETY: the caller's CPU runs `W`.
        unsafe { W::add_block(held, &self.pre[start..end], &self.post[start..end], slope) };
        end - start
    }
}

/// One unit's figures.
struct UnitFigures {
    /// Its sums, ranges and counts (no per-unit vectors).
    moments: Moments,
    slope: f64,
    peak: f32,
}

impl UnitFigures {
    /// Adds the unit's sums and counts to `m`, widens its ranges, and sets unit `unit`'s slope sum and peak.
    fn merge_into(self, m: &mut Moments, unit: usize) {
        let u = self.moments;
        m.measured += u.measured;
        (m.pre_sum, m.pre_square) = (m.pre_sum + u.pre_sum, m.pre_square + u.pre_square);
        (m.post_sum, m.post_square) = (m.post_sum + u.post_sum, m.post_square + u.post_square);
        m.pre_non_finite += u.pre_non_finite;
        // f32::min / max skip NaN: a unit without a finite value changes nothing.
        (m.pre_low, m.pre_high) = (m.pre_low.min(u.pre_low), m.pre_high.max(u.pre_high));
        (m.post_low, m.post_high) = (m.post_low.min(u.post_low), m.post_high.max(u.post_high));
        if let (Some(slope), Some(peak)) = (m.unit_slope_sums.get_mut(unit), m.unit_peaks.get_mut(unit)) {
            (*slope, *peak) = (self.slope, self.peak);
        }
    }
}

/// Measures one unit over `batch` examples of `per_unit` values, block by block ([`blocks`]): the sums move to
/// f64 after each block, a fixed number of examples that keeps them within [`FLUSH_ROUNDS`] rounds.
///
/// # Safety
/// `W`'s instructions must run on this CPU.
#[inline(always)]
unsafe fn unit_figures<W: AddBlock<L>, E: Examples, const L: usize>(
    (batch, per_unit): (usize, usize),
    examples: &mut E,
    slope: Slope,
) -> UnitFigures {
    let mut total = blocks::UnitTotal::new();
    let block = blocks::examples_per_block(per_unit, L);
    // SAFETY: the caller's CPU runs `W`.
    let ranges = unsafe { blocks::add_blocks::<W, _, L>((0, batch, block), examples, slope, |sums| total.add(&sums)) };
    total.widen(&ranges);
    total.figures()
}

/// Across units, for one value per unit and example (a dense layer, `[batch, units]`): lane i is unit i of a
/// block of L, read from each example's row as one contiguous vector. Unit by unit, a dense unit's 32 values
/// went through one lane and paid for folding all L: the pass cost 12 % of an `mlp` step.
#[inline(always)]
fn measure_across_units<W: AddBlock<L>, const L: usize>(
    [batch, units, ..]: [usize; 4],
    pre: &[f32],
    post: &[f32],
    slope: Slope,
    m: &mut Moments,
) {
    let available = pre.len().min(post.len()).min(batch * units);
    for first in (0..units).step_by(L) {
        let (mut lanes, mut rounds, mut slopes) = (Lanes::<L>::EMPTY, 0, [0.0f64; L]);
        // SAFETY (here and below): as in `measure_unit_by_unit`.
        let mut held = unsafe { W::hold(&lanes) };
        for example in 0..batch {
            let start = example * units + first;
            let end = (start + L.min(units - first)).min(available);
            if start >= end {
                break;
            }
            m.measured += end - start;
            let (zs, activations) = (&pre[start..end], &post[start..end]);
            unsafe { W::add_block(&mut held, zs, activations, slope) };
            rounds += 1;
            if rounds >= FLUSH_ROUNDS {
                unsafe { W::release(&held, &mut lanes) };
                lanes.flush_per_lane(m, &mut slopes);
                held = unsafe { W::hold(&lanes) };
                rounds = 0;
            }
        }
        unsafe { W::release(&held, &mut lanes) };
        lanes.flush_per_lane(m, &mut slopes);
        lanes.fold_ranges(m);
        for (lane, unit) in (first..units.min(first + L)).enumerate() {
            m.unit_slope_sums[unit] = slopes[lane];
            // A lane still at its start value saw no value that was not NaN (as `fold` reads it).
            m.unit_peaks[unit] = fold(&[lanes.peak[lane]], f32::NEG_INFINITY, f32::max);
        }
    }
}

#[cfg(test)]
mod tests;
