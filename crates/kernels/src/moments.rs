//! One pass over a layer's pre-activations z and activations a = f(z) (both `[batch, units, positions]`):
//! sums of z, z², a, a², the finite ranges, non-finite z, and per unit the sum of the slope f′ and the largest
//! a. convscope's layer statistics read it on every statistics step, so it is compiled for the widest vectors
//! the CPU runs (AVX-512, AVX2) and picked at run time, like the convolution kernels.

use crate::direct::Isa;

/// Independent accumulators per quantity: one AVX-512 register each.
const LANES: usize = 16;

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

/// Measures `pre` and `post` laid out `[batch, units, height, width]` as `dims` says, with `slope(z, a)` as f′.
/// Slices shorter than `dims` are measured as far as they both go.
pub fn measure<F: Fn(f32, f32) -> f32 + Copy>(dims: [usize; 4], pre: &[f32], post: &[f32], slope: F) -> Moments {
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
    measure_plain(dims, pre, post, slope)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn measure_avx512<F: Fn(f32, f32) -> f32 + Copy>(
    dims: [usize; 4],
    pre: &[f32],
    post: &[f32],
    slope: F,
) -> Moments {
    measure_plain(dims, pre, post, slope)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn measure_avx2<F: Fn(f32, f32) -> f32 + Copy>(
    dims: [usize; 4],
    pre: &[f32],
    post: &[f32],
    slope: F,
) -> Moments {
    measure_plain(dims, pre, post, slope)
}

/// Running sums of one unit's values, lane by lane.
#[derive(Clone, Copy)]
struct Lanes {
    pre_sum: [f32; LANES],
    pre_square: [f32; LANES],
    post_sum: [f32; LANES],
    post_square: [f32; LANES],
    slope: [f32; LANES],
    /// ±∞ until a finite value arrives; a non-finite value enters as NaN, which a comparison never takes.
    pre_low: [f32; LANES],
    pre_high: [f32; LANES],
    post_low: [f32; LANES],
    post_high: [f32; LANES],
    peak: [f32; LANES],
    pre_non_finite: [u32; LANES],
}

impl Lanes {
    const EMPTY: Lanes = Lanes {
        pre_sum: [0.0; LANES],
        pre_square: [0.0; LANES],
        post_sum: [0.0; LANES],
        post_square: [0.0; LANES],
        slope: [0.0; LANES],
        pre_low: [f32::INFINITY; LANES],
        pre_high: [f32::NEG_INFINITY; LANES],
        post_low: [f32::INFINITY; LANES],
        post_high: [f32::NEG_INFINITY; LANES],
        peak: [f32::NEG_INFINITY; LANES],
        pre_non_finite: [0; LANES],
    };

    #[inline(always)]
    fn add(&mut self, lane: usize, z: f32, a: f32, slope: f32) {
        self.pre_sum[lane] += z;
        self.pre_square[lane] += z * z;
        self.post_sum[lane] += a;
        self.post_square[lane] += a * a;
        self.slope[lane] += slope;
        let finite_z = if z.is_finite() { z } else { f32::NAN };
        let finite_a = if a.is_finite() { a } else { f32::NAN };
        // Plain comparisons, not `f32::min`: one vector instruction each, where `min`'s NaN rules cost several.
        self.pre_low[lane] = smaller(finite_z, self.pre_low[lane]);
        self.pre_high[lane] = larger(finite_z, self.pre_high[lane]);
        self.post_low[lane] = smaller(finite_a, self.post_low[lane]);
        self.post_high[lane] = larger(finite_a, self.post_high[lane]);
        self.peak[lane] = larger(a, self.peak[lane]);
        self.pre_non_finite[lane] += u32::from(!z.is_finite());
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

fn sum(lanes: &[f32; LANES]) -> f64 {
    lanes.iter().map(|&v| f64::from(v)).sum()
}

/// The lanes' extreme by `pick`, skipping lanes still at their start value `unset` (NaN when all are).
fn fold(lanes: &[f32; LANES], unset: f32, pick: fn(f32, f32) -> f32) -> f32 {
    lanes.iter().copied().filter(|&v| v != unset).fold(f32::NAN, pick)
}

#[inline(always)]
fn measure_plain<F: Fn(f32, f32) -> f32 + Copy>(dims: [usize; 4], pre: &[f32], post: &[f32], slope: F) -> Moments {
    let [batch, units, height, width] = dims;
    let per_unit = (height * width).max(1);
    let mut moments = Moments {
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
    };
    let m = &mut moments;
    // Each (example, unit) pair owns `per_unit` consecutive values.
    let blocks = pre.chunks(per_unit).zip(post.chunks(per_unit)).take(batch * units);
    for (block, (pre_block, post_block)) in blocks.enumerate() {
        let unit = block % units.max(1);
        m.measured += pre_block.len().min(post_block.len());
        let mut lanes = Lanes::EMPTY;
        let mut pre_chunks = pre_block.chunks_exact(LANES);
        let mut post_chunks = post_block.chunks_exact(LANES);
        for (zs, activations) in (&mut pre_chunks).zip(&mut post_chunks) {
            for lane in 0..LANES {
                let (z, a) = (zs[lane], activations[lane]);
                lanes.add(lane, z, a, slope(z, a));
            }
        }
        for (&z, &a) in pre_chunks.remainder().iter().zip(post_chunks.remainder()) {
            lanes.add(0, z, a, slope(z, a));
        }
        m.pre_sum += sum(&lanes.pre_sum);
        m.pre_square += sum(&lanes.pre_square);
        m.post_sum += sum(&lanes.post_sum);
        m.post_square += sum(&lanes.post_square);
        // f32::min / max skip NaN: a unit or lane without a finite value changes nothing.
        m.pre_low = m.pre_low.min(fold(&lanes.pre_low, f32::INFINITY, f32::min));
        m.pre_high = m.pre_high.max(fold(&lanes.pre_high, f32::NEG_INFINITY, f32::max));
        m.post_low = m.post_low.min(fold(&lanes.post_low, f32::INFINITY, f32::min));
        m.post_high = m.post_high.max(fold(&lanes.post_high, f32::NEG_INFINITY, f32::max));
        m.pre_non_finite += lanes.pre_non_finite.iter().sum::<u32>();
        if let (Some(total), Some(peak)) = (m.unit_slope_sums.get_mut(unit), m.unit_peaks.get_mut(unit)) {
            *total += sum(&lanes.slope);
            *peak = peak.max(fold(&lanes.peak, f32::NEG_INFINITY, f32::max));
        }
    }
    moments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_set_gives_the_plain_pass_s_figures() {
        let dims = [3, 5, 7, 5];
        let count = dims.iter().product::<usize>();
        let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0).collect();
        pre[17] = f32::NAN;
        pre[40] = f32::NEG_INFINITY;
        let post: Vec<f32> = pre.iter().map(|z| z.max(0.0)).collect();
        let slope = |z: f32, _: f32| if z > 0.0 { 1.0 } else { 0.0 };
        let plain = measure_plain(dims, &pre, &post, slope);
        assert_eq!(plain.pre_non_finite, 2);
        assert_eq!(plain.measured, count);
        // Sums may round differently with other vector widths; ranges and peaks must agree exactly.
        let dispatched = measure(dims, &pre, &post, slope);
        assert_eq!((dispatched.pre_low, dispatched.pre_high), (plain.pre_low, plain.pre_high));
        assert_eq!((dispatched.post_low, dispatched.post_high), (plain.post_low, plain.post_high));
        assert_eq!(dispatched.unit_peaks, plain.unit_peaks);
        assert!((dispatched.post_sum - plain.post_sum).abs() < 1e-3);
        assert_eq!(dispatched.unit_slope_sums, plain.unit_slope_sums);
    }
}
