//! Sums of squares over long f32 slices (a layer's weights, their change over a step, a gradient), added in f32
//! lanes moved to f64 now and then, compiled for the widest vectors the CPU runs: one pass and no allocation,
//! where burn took a subtraction, a square and a sum, each writing a new tensor, on every step's gradient norms
//! and every statistics step's weight figures.

#[cfg(target_arch = "x86_64")]
use crate::direct::Isa;

/// Σ v².
pub fn sum_of_squares(values: &[f32]) -> f64 {
    dispatch(values, None)
}

/// Σ (a − b)², over as many values as the shorter slice has (the difference taken in f32, as burn's was).
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    dispatch(a, Some(b))
}

fn dispatch(a: &[f32], b: Option<&[f32]>) -> f64 {
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
unsafe fn avx512(a: &[f32], b: Option<&[f32]>) -> f64 {
    lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(a: &[f32], b: Option<&[f32]>) -> f64 {
    lanes(a, b)
}

/// Sixteen f32 lanes (one or two registers), value i to lane i mod 16, moved to f64 every [`FLUSH_CHUNKS`]
/// chunks and summed in order at the end: the same figure on every instruction set. (f64 lanes all the way took
/// three times as long: two conversions and two f64 FMAs per sixteen values.)
#[inline(always)]
fn lanes(a: &[f32], b: Option<&[f32]>) -> f64 {
    const L: usize = 16;
    let mut total = [0.0f64; L];
    let mut sums = [0.0f32; L];
    let mut chunks_since_flush = 0;
    let mut add = |chunk: &[f32; L]| {
        for (sum, &v) in sums.iter_mut().zip(chunk) {
            *sum = v.mul_add(v, *sum);
        }
        chunks_since_flush += 1;
        if chunks_since_flush == FLUSH_CHUNKS {
            total.iter_mut().zip(&mut sums).for_each(|(t, s)| *t += f64::from(std::mem::take(s)));
            chunks_since_flush = 0;
        }
    };
    // The last partial chunk, padded with zeros (which add nothing).
    let mut tail = [0.0f32; L];
    match b {
        None => {
            let (chunks, rest) = a.as_chunks::<L>();
            tail[..rest.len()].copy_from_slice(rest);
            chunks.iter().for_each(&mut add);
        }
        Some(b) => {
            let n = a.len().min(b.len());
            let ((chunks_a, rest_a), (chunks_b, rest_b)) = (a[..n].as_chunks::<L>(), b[..n].as_chunks::<L>());
            for (t, (&x, &y)) in tail.iter_mut().zip(rest_a.iter().zip(rest_b)) {
                *t = x - y;
            }
            for (x, y) in chunks_a.iter().zip(chunks_b) {
                add(&std::array::from_fn(|i| x[i] - y[i]));
            }
        }
    }
    add(&tail);
    total.iter().zip(&sums).map(|(&t, &s)| t + f64::from(s)).sum()
}

/// Chunks of sixteen added in f32 before the sums move to f64: few enough that a sum keeps about six digits.
const FLUSH_CHUNKS: usize = 32;

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
            assert!((squared_distance(&a, &b) - distance).abs() <= 1e-6 * distance.max(1.0), "{n}");
            assert_eq!(squared_distance(&a, &b), squared_distance(&b, &a), "{n}: only the first {n} values count");
            // Every instruction set gives the same figure: the lanes are summed in the same order.
            assert_eq!(sum_of_squares(&a), lanes(&a, None), "{n}");
        }
        assert!(sum_of_squares(&[f32::NAN, 1.0]).is_nan());
        // Squares past f32's range overflow, as burn's f32 sums did: a run whose gradients do that has diverged.
        assert_eq!(sum_of_squares(&[3.0e30, 4.0e30]), f64::INFINITY);
    }
}
