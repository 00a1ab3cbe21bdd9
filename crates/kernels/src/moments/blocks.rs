//! A unit's figures block by block: each block of examples goes through fresh lanes, and the blocks' figures are
//! added in example order. Blocks are a fixed number of examples, set by the unit's map size alone, so a layer
//! measured in runs of examples — while a fused convolution's output is still in a thread's cache — gives the
//! figures the whole-layer pass gives, to the bit, whichever thread measured which run.

use super::{AddBlock, Examples, FLUSH_ROUNDS, Lanes, Moments, Slope, UnitFigures, larger, smaller, sum};
use crate::pointwise::Pointwise;

/// The widest lane count of any pass (AVX-512's sixteen floats): block figures keep their lanes' ranges in
/// arrays this long, the lanes past the pass's own at their start values.
const MAX_LANES: usize = 16;

/// Examples in one block of a unit with `per_unit` values an example, measured `lanes` values at a time: the
/// largest power of two no greater than the examples that first reach [`FLUSH_ROUNDS`] rounds (so a block
/// stays under twice that many). A power of two, so blocks tile any split of a batch into halves or quarters.
pub(super) fn examples_per_block(per_unit: usize, lanes: usize) -> usize {
    let rounds = per_unit.div_ceil(lanes.max(1)).max(1);
    1 << FLUSH_ROUNDS.div_ceil(rounds).ilog2()
}

/// [`examples_per_block`] for the pass this CPU runs: a run of examples measured apart must start at a multiple
/// of it for its figures to be the whole pass's.
pub fn block_examples(per_unit: usize) -> usize {
    examples_per_block(per_unit, lanes_here())
}

/// The lanes of the pass [`super::measure`] picks on this CPU.
fn lanes_here() -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::Avx512.runs_here() {
        return 16;
    }
    8
}

/// One unit's sums over one block of examples, moved from its lanes to f64.
#[derive(Debug, Clone, Copy)]
pub struct BlockSums {
    measured: usize,
    pre_sum: f64,
    pre_square: f64,
    post_sum: f64,
    post_square: f64,
    slope: f64,
    pre_non_finite: u32,
}

impl BlockSums {
    /// Moves the lanes' sums out, leaving them at zero for the next block.
    pub(super) fn take<const L: usize>(lanes: &mut Lanes<L>, measured: usize) -> BlockSums {
        let sums = BlockSums {
            measured,
            pre_sum: sum(&lanes.pre_sum),
            pre_square: sum(&lanes.pre_square),
            post_sum: sum(&lanes.post_sum),
            post_square: sum(&lanes.post_square),
            slope: sum(&lanes.slope),
            pre_non_finite: sum(&lanes.pre_non_finite) as u32,
        };
        (lanes.pre_sum, lanes.pre_square, lanes.post_sum, lanes.post_square, lanes.slope, lanes.pre_non_finite) =
            ([0.0; L], [0.0; L], [0.0; L], [0.0; L], [0.0; L], [0.0; L]);
        sums
    }

    /// Adds the sums of z, z², a, a² and the non-finite count to `m` (the slope and count are the caller's).
    pub(super) fn add_to(&self, m: &mut Moments) {
        (m.pre_sum, m.pre_square) = (m.pre_sum + self.pre_sum, m.pre_square + self.pre_square);
        (m.post_sum, m.post_square) = (m.post_sum + self.post_sum, m.post_square + self.post_square);
        m.pre_non_finite += self.pre_non_finite;
    }
}

/// One unit's lanes' ranges and peaks over some examples, as they are (folded only at the end).
#[derive(Debug, Clone, Copy)]
pub struct LaneRanges {
    pre_low: [f32; MAX_LANES],
    pre_high: [f32; MAX_LANES],
    post_low: [f32; MAX_LANES],
    post_high: [f32; MAX_LANES],
    peak: [f32; MAX_LANES],
}

impl LaneRanges {
    const EMPTY: LaneRanges = LaneRanges {
        pre_low: [f32::INFINITY; MAX_LANES],
        pre_high: [f32::NEG_INFINITY; MAX_LANES],
        post_low: [f32::INFINITY; MAX_LANES],
        post_high: [f32::NEG_INFINITY; MAX_LANES],
        peak: [f32::NEG_INFINITY; MAX_LANES],
    };

    fn of<const L: usize>(lanes: &Lanes<L>) -> LaneRanges {
        let mut ranges = LaneRanges::EMPTY;
        let n = L.min(MAX_LANES);
        ranges.pre_low[..n].copy_from_slice(&lanes.pre_low[..n]);
        ranges.pre_high[..n].copy_from_slice(&lanes.pre_high[..n]);
        ranges.post_low[..n].copy_from_slice(&lanes.post_low[..n]);
        ranges.post_high[..n].copy_from_slice(&lanes.post_high[..n]);
        ranges.peak[..n].copy_from_slice(&lanes.peak[..n]);
        ranges
    }

    /// Widens these lanes by `later`'s, which came after them: a lane keeps the first extreme it met, as when
    /// one set of lanes ran through both.
    fn widen(&mut self, later: &LaneRanges) {
        for lane in 0..MAX_LANES {
            self.pre_low[lane] = smaller(later.pre_low[lane], self.pre_low[lane]);
            self.pre_high[lane] = larger(later.pre_high[lane], self.pre_high[lane]);
            self.post_low[lane] = smaller(later.post_low[lane], self.post_low[lane]);
            self.post_high[lane] = larger(later.post_high[lane], self.post_high[lane]);
            self.peak[lane] = larger(later.peak[lane], self.peak[lane]);
        }
    }
}

/// A unit's figures so far: blocks' sums added in example order, ranges widened in example order.
pub(super) struct UnitTotal {
    moments: Moments,
    slope: f64,
    ranges: LaneRanges,
}

impl UnitTotal {
    pub(super) fn new() -> UnitTotal {
        UnitTotal { moments: Moments::empty(0), slope: 0.0, ranges: LaneRanges::EMPTY }
    }

    /// Adds the next block's sums to the f64 totals.
    pub(super) fn add(&mut self, block: &BlockSums) {
        block.add_to(&mut self.moments);
        self.moments.measured += block.measured;
        self.slope += block.slope;
    }

    pub(super) fn widen(&mut self, later: &LaneRanges) {
        self.ranges.widen(later);
    }

    pub(super) fn figures(self) -> UnitFigures {
        let (mut moments, r) = (self.moments, &self.ranges);
        // f32::min / max skip NaN: a lane without a finite value changes nothing.
        moments.pre_low = extreme(r.pre_low, f32::INFINITY, smaller);
        moments.pre_high = extreme(r.pre_high, f32::NEG_INFINITY, larger);
        moments.post_low = extreme(r.post_low, f32::INFINITY, smaller);
        moments.post_high = extreme(r.post_high, f32::NEG_INFINITY, larger);
        UnitFigures { moments, slope: self.slope, peak: extreme(r.peak, f32::NEG_INFINITY, larger) }
    }
}

/// The lanes' extreme by `pick` (halves against halves, which vectorises), NaN where every lane is still at its
/// start value `unset`. Lanes hold no NaN, so any order gives the same extreme.
#[inline(always)]
fn extreme(mut lanes: [f32; MAX_LANES], unset: f32, pick: fn(f32, f32) -> f32) -> f32 {
    let mut width = MAX_LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] = pick(lanes[lane + width], lanes[lane]);
        }
    }
    if lanes[0] == unset { f32::NAN } else { lanes[0] }
}

/// Measures examples `first..end` of one unit through one set of lanes, handing on their sums each `block`
/// examples (then starting them again); returns the lanes' ranges.
///
/// # Safety
/// `W`'s instructions must run on this CPU.
#[inline(always)]
pub(super) unsafe fn add_blocks<W: AddBlock<L>, E: Examples, const L: usize>(
    (first, end, block): (usize, usize, usize),
    examples: &mut E,
    slope: Slope,
    mut each: impl FnMut(BlockSums),
) -> LaneRanges {
    let mut lanes = Lanes::<L>::EMPTY;
    let mut start = first;
    while start < end {
        let stop = end.min(start + block.max(1));
        // SAFETY (here and below): the caller's CPU runs `W`.
        let mut held = unsafe { W::hold(&lanes) };
        let mut measured = 0;
        for example in start..stop {
            measured += unsafe { examples.add::<W, L>(&mut held, example, slope) };
        }
        unsafe { W::release(&held, &mut lanes) };
        each(BlockSums::take(&mut lanes, measured));
        start = stop;
    }
    LaneRanges::of(&lanes)
}

/// A run of examples' values of every unit, `[examples, units, per_unit]`, activated plane by plane into a buffer
/// of one plane as they are measured.
struct RunPlanes<'a> {
    values: &'a [f32],
    units: usize,
    unit: usize,
    per_unit: usize,
    f: Pointwise,
    plane: Vec<f32>,
}

impl Examples for RunPlanes<'_> {
    #[inline(always)]
    unsafe fn add<W: AddBlock<L>, const L: usize>(
        &mut self,
        held: &mut W::Held,
        example: usize,
        slope: Slope,
    ) -> usize {
        let start = (example * self.units + self.unit) * self.per_unit;
        let Some(z) = self.values.get(start..start + self.per_unit) else {
            return 0;
        };
        // SAFETY: the caller's CPU runs `W`.
        unsafe { W::add_activated(held, self.f, z, &mut self.plane, slope) };
        self.per_unit
    }
}

/// A run's figures: per unit, its blocks' sums in example order (`[unit][block]`) and its lanes' ranges.
#[derive(Debug, Clone)]
pub struct RunFigures {
    units: usize,
    blocks: Vec<BlockSums>,
    ranges: Vec<LaneRanges>,
}

/// Measures a run of examples of a layer, `values` holding their pre-activations `[examples, units, height,
/// width]` (`dims`), with a = `f`(z) — the figures [`super::measure_activated`] gives for those examples alone,
/// kept block by block. The run's first example must be a multiple of [`block_examples`] in the layer for
/// [`merge_runs`] to give the whole layer's figures.
pub fn measure_run(f: Pointwise, dims: [usize; 4], values: &[f32]) -> RunFigures {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if crate::Isa::Avx512.runs_here() {
            return unsafe { run_avx512(f, dims, values) };
        }
        if crate::Isa::Avx2.runs_here() {
            return unsafe { run_avx2(f, dims, values) };
        }
    }
    // SAFETY: plain code runs anywhere.
    unsafe { run_with::<super::Plain, 8>(f, dims, values) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn run_avx512(f: Pointwise, dims: [usize; 4], values: &[f32]) -> RunFigures {
    unsafe { run_with::<super::InRegisters<crate::simd::Avx512>, 16>(f, dims, values) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(f: Pointwise, dims: [usize; 4], values: &[f32]) -> RunFigures {
    unsafe { run_with::<super::InRegisters<crate::simd::Avx2>, 8>(f, dims, values) }
}

/// # Safety
/// `W`'s instructions must run on this CPU.
#[inline(always)]
unsafe fn run_with<W: AddBlock<L>, const L: usize>(f: Pointwise, dims: [usize; 4], values: &[f32]) -> RunFigures {
    let [examples, units, height, width] = dims;
    let per_unit = height * width;
    let block = examples_per_block(per_unit, L);
    let (mut blocks, mut ranges) = (Vec::with_capacity(units * examples.div_ceil(block)), Vec::with_capacity(units));
    let mut plane = vec![0.0; per_unit];
    for unit in 0..units {
        let mut planes = RunPlanes { values, units, unit, per_unit, f, plane: std::mem::take(&mut plane) };
        // SAFETY: the caller's CPU runs `W`.
        ranges.push(unsafe {
            add_blocks::<W, _, L>((0, examples, block), &mut planes, f.slope(), |sums| blocks.push(sums))
        });
        plane = planes.plane;
    }
    RunFigures { units, blocks, ranges }
}

/// The layer's figures from its runs' (in example order): what the whole-layer pass gives where each run
/// started at a multiple of [`block_examples`].
pub fn merge_runs(units: usize, runs: &[RunFigures]) -> Moments {
    let mut moments = Moments::empty(units);
    for unit in 0..units {
        let mut total = UnitTotal::new();
        for run in runs.iter().filter(|run| run.units == units) {
            let per_unit = run.blocks.len() / units.max(1);
            run.blocks[unit * per_unit..(unit + 1) * per_unit].iter().for_each(|block| total.add(block));
            if let Some(ranges) = run.ranges.get(unit) {
                total.widen(ranges);
            }
        }
        total.figures().merge_into(&mut moments, unit);
    }
    moments
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer measured in runs (each starting at a multiple of the block, as a fused convolution splits its
    /// batch over threads and runs) and merged gives the whole-layer pass's figures to the bit, for maps whose
    /// block is one example or many, a short last run, non-finite values and several activations.
    #[test]
    fn runs_merged_give_the_whole_pass_s_figures() {
        let activations = [Pointwise::Relu, Pointwise::LeakyRelu(0.01), Pointwise::Tanh];
        for [batch, units, height, width] in [[32, 3, 8, 8], [37, 2, 24, 24], [19, 4, 3, 5], [9, 5, 14, 14]] {
            let count = batch * units * height * width;
            let mut pre: Vec<f32> =
                (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.45) * 6.0 + 1e-3 * i as f32).collect();
            if batch % 2 == 1 {
                // Finite values elsewhere, so the sums are compared too.
                pre[count / 3] = f32::NAN;
                pre[count / 2] = f32::INFINITY;
            }
            let per_image = units * height * width;
            let block = block_examples(height * width);
            for f in activations {
                let whole = super::super::measure_activated(f, [batch, units, height, width], &pre);
                for run in [block, 2 * block, 3 * block, batch] {
                    let runs: Vec<RunFigures> = (0..batch)
                        .step_by(run)
                        .map(|start| {
                            let images = run.min(batch - start);
                            let values = &pre[start * per_image..(start + images) * per_image];
                            measure_run(f, [images, units, height, width], values)
                        })
                        .collect();
                    let merged = merge_runs(units, &runs);
                    let label = format!("{f:?}, {batch}x{units}x{height}x{width}, runs of {run}");
                    assert_eq!(format!("{merged:?}"), format!("{whole:?}"), "{label}");
                    assert_eq!(merged.measured, count, "{label}");
                }
            }
        }
    }

    /// The run pass in registers (ReLU's activations computed there, its slope counted) gives plain code's
    /// figures lane for lane, on each instruction set this CPU runs, non-finite values included.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_run_pass_in_registers_is_plain_code_s() {
        let activations = [Pointwise::Relu, Pointwise::LeakyRelu(0.01), Pointwise::Sigmoid];
        for dims in [[8, 3, 6, 6], [5, 2, 13, 13], [4, 2, 3, 3]] {
            let count: usize = dims.iter().product();
            let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.45) * 6.0).collect();
            for f in activations {
                for non_finite in [false, true] {
                    if non_finite {
                        (pre[count / 3], pre[count / 2]) = (f32::NAN, f32::NEG_INFINITY);
                    }
                    let label = format!("{f:?} {dims:?}, non-finite {non_finite}");
                    // SAFETY: each pass runs only where the CPU has its instructions; plain code anywhere.
                    unsafe {
                        if crate::Isa::Avx512.runs_here() {
                            let plain = run_with::<super::super::Plain, 16>(f, dims, &pre);
                            assert_eq!(format!("{:?}", run_avx512(f, dims, &pre)), format!("{plain:?}"), "{label}");
                        }
                        if crate::Isa::Avx2.runs_here() {
                            let plain = run_with::<super::super::Plain, 8>(f, dims, &pre);
                            assert_eq!(format!("{:?}", run_avx2(f, dims, &pre)), format!("{plain:?}"), "{label}");
                        }
                    }
                }
            }
        }
    }

    /// A unit's extreme is its lanes' (their order does not matter), NaN where no lane took a value.
    #[test]
    fn a_unit_s_extreme_skips_lanes_that_took_nothing() {
        let mut lanes = [f32::INFINITY; MAX_LANES];
        assert!(extreme(lanes, f32::INFINITY, smaller).is_nan());
        (lanes[3], lanes[11], lanes[15]) = (2.5, -7.0, 1.0);
        assert_eq!(extreme(lanes, f32::INFINITY, smaller), -7.0);
        let mut highs = [f32::NEG_INFINITY; MAX_LANES];
        (highs[0], highs[9]) = (-3.0, -1.5);
        assert_eq!(extreme(highs, f32::NEG_INFINITY, larger), -1.5);
        // A peak of +∞ (an infinite activation) is a value, not a lane left unset.
        highs[4] = f32::INFINITY;
        assert_eq!(extreme(highs, f32::NEG_INFINITY, larger), f32::INFINITY);
    }

    #[test]
    fn blocks_are_powers_of_two_under_twice_the_flush_rounds() {
        assert_eq!(examples_per_block(576, 16), 2); // 36 rounds: 2 examples reach 64 (72 rounds)
        assert_eq!(examples_per_block(64, 16), 16);
        assert_eq!(examples_per_block(196, 16), 4); // 13 rounds: 5 examples reach 64; 4 a block
        assert_eq!(examples_per_block(1, 8), 64);
        assert_eq!(examples_per_block(10_000, 16), 1);
    }
}
