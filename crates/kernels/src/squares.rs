//! Sums of squares over long f32 slices (a layer's weights, their change over a step, a gradient), added in f32
//! lanes moved to f64 now and then, compiled for the widest vectors the CPU runs: one pass and no allocation,
//! where burn took a subtraction, a square and a sum, each writing a new tensor, on every step's gradient norms
//! and every statistics step's weight figures.

#[cfg(target_arch = "x86_64")]
use crate::direct::Isa;

/// Σ v².
pub fn sum_of_squares(values: &[f32]) -> f64 {
    dispatch(values, None).0
}

/// (Σ (a − b)², Σ a²) in one pass over both, over as many values as the shorter slice has (the difference taken
/// in f32, as burn's was): a weight's change over a step and its size.
pub fn distance_and_norm(a: &[f32], b: &[f32]) -> (f64, f64) {
    let n = a.len().min(b.len());
    let (distance, norm) = dispatch(&a[..n], Some(b));
    (distance, norm.unwrap_or(0.0))
}

/// Σ a² without `b`; with it, Σ (a − b)² and Σ a².
fn dispatch(a: &[f32], b: Option<&[f32]>) -> (f64, Option<f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { avx512(a, b) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { avx2(a, b) };
        }
    }
    lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(a: &[f32], b: Option<&[f32]>) -> (f64, Option<f64>) {
    lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(a: &[f32], b: Option<&[f32]>) -> (f64, Option<f64>) {
    lanes(a, b)
}

/// Values per chunk, value i to lane i mod [`LANES`]: four AVX-512 registers (eight AVX2 ones), so that four
/// chains of FMAs run side by side (one chain waited on the FMA's latency: a quarter of the speed).
const LANES: usize = 64;

/// Chunks added in f32 before the sums move to f64: few enough that a sum keeps about six digits.
const FLUSH_CHUNKS: usize = 32;

/// Adds `v²` to the f32 lanes. (Plain functions inlined into the `target_feature` entry points: a closure there
/// lost the FMA.)
#[inline(always)]
fn add_squares(sums: &mut [f32; LANES], v: &[f32; LANES]) {
    for (sum, &v) in sums.iter_mut().zip(v) {
        *sum = v.mul_add(v, *sum);
    }
}

/// Moves a group's f32 lanes into the f64 totals.
#[inline(always)]
fn flush(totals: &mut [f64; LANES], sums: &[f32; LANES]) {
    for (total, &sum) in totals.iter_mut().zip(sums) {
        *total += f64::from(sum);
    }
}

/// Sums of squares in f32 lanes, one group of [`FLUSH_CHUNKS`] chunks at a time (the lanes stay in registers),
/// each group moved to f64 and the lanes summed in order at the end: the same figure on every instruction set.
/// The last partial chunk is a group of its own, padded with zeros (which add nothing). (f64 lanes all the way
/// took three times as long: two conversions and two f64 FMAs per sixteen values.) With `b`, Σ (a − b)² and
/// Σ a² in the same pass.
#[inline(always)]
fn lanes(a: &[f32], b: Option<&[f32]>) -> (f64, Option<f64>) {
    let mut norm = [0.0f64; LANES];
    let mut tail = [0.0f32; LANES];
    let Some(b) = b else {
        let (chunks, rest) = a.as_chunks::<LANES>();
        for group in chunks.chunks(FLUSH_CHUNKS) {
            let mut sums = [0.0f32; LANES];
            for chunk in group {
                add_squares(&mut sums, chunk);
            }
            flush(&mut norm, &sums);
        }
        tail[..rest.len()].copy_from_slice(rest);
        let mut sums = [0.0f32; LANES];
        add_squares(&mut sums, &tail);
        flush(&mut norm, &sums);
        return (in_order(&norm), None);
    };
    let mut distance = [0.0f64; LANES];
    let n = a.len().min(b.len());
    let ((chunks_a, rest_a), (chunks_b, rest_b)) = (a[..n].as_chunks::<LANES>(), b[..n].as_chunks::<LANES>());
    for (group_a, group_b) in chunks_a.chunks(FLUSH_CHUNKS).zip(chunks_b.chunks(FLUSH_CHUNKS)) {
        let (mut distances, mut squares) = ([0.0f32; LANES], [0.0f32; LANES]);
        for (x, y) in group_a.iter().zip(group_b) {
            add_squares(&mut distances, &std::array::from_fn(|i| x[i] - y[i]));
            add_squares(&mut squares, x);
        }
        flush(&mut distance, &distances);
        flush(&mut norm, &squares);
    }
    let (mut distances, mut squares) = ([0.0f32; LANES], [0.0f32; LANES]);
    for (t, (&x, &y)) in tail.iter_mut().zip(rest_a.iter().zip(rest_b)) {
        *t = x - y;
    }
    add_squares(&mut distances, &tail);
    tail = [0.0; LANES];
    tail[..rest_a.len()].copy_from_slice(rest_a);
    add_squares(&mut squares, &tail);
    flush(&mut distance, &distances);
    flush(&mut norm, &squares);
    (in_order(&distance), Some(in_order(&norm)))
}

/// The lanes' totals summed in lane order.
#[inline(always)]
fn in_order(totals: &[f64; LANES]) -> f64 {
    totals.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_the_plain_definition() {
        for n in [0, 1, 15, 16, 17, 100, 1000, 100_000] {
            let a: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 3.0).collect();
            let b: Vec<f32> = (0..n + 3).map(|i| (i as f32 * 0.1).sin()).collect();
            let plain: f64 = a.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let distance: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum();
            assert!((sum_of_squares(&a) - plain).abs() <= 1e-6 * plain.max(1.0), "{n}");
            let (both, reversed) = (distance_and_norm(&a, &b), distance_and_norm(&b, &a));
            assert!((both.0 - distance).abs() <= 1e-6 * distance.max(1.0), "{n}");
            assert_eq!(both.0, reversed.0, "{n}: only the first {n} values count");
            assert_eq!(both.1, sum_of_squares(&a), "{n}: the norm in the same pass is the same figure");
            // Every instruction set gives the same figures: the lanes are summed in the same order.
            assert_eq!(sum_of_squares(&a), lanes(&a, None).0, "{n}");
            assert_eq!(Some(both.1), lanes(&a, Some(&b)).1, "{n}");
            assert_eq!(both.0, lanes(&a, Some(&b)).0, "{n}");
        }
        assert!(sum_of_squares(&[f32::NAN, 1.0]).is_nan());
        // Squares past f32's range overflow, as burn's f32 sums did: a run whose gradients do that has diverged.
        assert_eq!(sum_of_squares(&[3.0e30, 4.0e30]), f64::INFINITY);
    }
}
