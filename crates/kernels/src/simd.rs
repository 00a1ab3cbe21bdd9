//! The handful of vector operations the direct kernels use, over AVX-512 and AVX2 registers, so that each
//! kernel is written once for both widths.

// Index loops over fixed arrays of registers unroll into straight-line shuffles.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

/// The vector operations. Every method is `inline(always)`: it must melt into the `#[target_feature]` entry point that calls it.
pub(crate) trait Vector {
    /// f32 lanes per vector.
    const L: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(v: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// a·b + c
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Stores the first `n` lanes (n ≤ L).
    unsafe fn store_first(p: *mut f32, n: usize, v: Self::V);
    /// Loads the first `n` lanes (n ≤ L), zero in the others; memory past them is not touched.
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V;
    /// The sum of the lanes, always added in the same order.
    unsafe fn sum(v: Self::V) -> f32;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// Lane by lane `v > 0 ? yes : no` (so `no` where v is NaN).
    unsafe fn where_positive(v: Self::V, yes: Self::V, no: Self::V) -> Self::V;
    /// Lane by lane `v > 0 ? acc + 1 : acc`: what adding `where_positive(v, 1, 0)` gives, in one instruction
    /// fewer where the ISA masks an add.
    unsafe fn add_one_where_positive(acc: Self::V, v: Self::V) -> Self::V;
    /// Lane by lane `a < b ? a : b` (so `b` where either is NaN), as `minps` does.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// Lane by lane `a > b ? a : b` (so `b` where either is NaN), as `maxps` does.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `v` with NaN in its non-finite lanes, and 1 in those lanes of the second vector (0 elsewhere).
    unsafe fn finite_or_nan(v: Self::V) -> (Self::V, Self::V);
    /// Whether no lane is ±∞ or NaN.
    unsafe fn all_finite(v: Self::V) -> bool;
    /// `v` in the first `n` lanes (n ≤ L), `fill` in the others.
    unsafe fn keep_first(n: usize, v: Self::V, fill: f32) -> Self::V;
    /// Lane i holds `p[i·stride]` (stride·(L − 1) < 2³¹).
    unsafe fn gather(p: *const f32, stride: usize) -> Self::V;
    /// Transposes the L × L block whose row i is the L values at `src + i·src_stride`: its column c, the values
    /// `src[i·src_stride + c]` for i < n (n ≤ L), goes to `dst + c·dst_stride`. In registers: a gather per
    /// column (or a scalar copy) cost several times more.
    unsafe fn transpose_store(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize, n: usize);
    /// Copies `n` values from `src` to `dst` a vector at a time, the last partial vector masked: inlined where
    /// `copy_from_slice` called `memmove`, which on a short row or plane costs more than the copy.
    #[inline(always)]
    unsafe fn copy(src: *const f32, dst: *mut f32, n: usize) {
        let whole = n - n % Self::L;
        // SAFETY: the caller's `src` and `dst` hold `n` values each: whole vectors up to `whole`, the rest masked.
        unsafe {
            for at in (0..whole).step_by(Self::L) {
                Self::store(dst.add(at), Self::load(src.add(at)));
            }
            if whole < n {
                Self::store_first(dst.add(whole), n - whole, Self::load_first(src.add(whole), n - whole));
            }
        }
    }
}

/// Lanes 0..n of a 16-lane mask (all of them from n = 16 on).
#[inline(always)]
pub(crate) fn first_lanes(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 }
}

pub(crate) struct Avx512;
pub(crate) struct Avx2;

impl Vector for Avx512 {
    const L: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, n: usize, v: __m512) {
        let mask = first_lanes(n);
        unsafe { _mm512_mask_storeu_ps(p, mask, v) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
        let mask = first_lanes(n);
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn where_positive(v: __m512, yes: __m512, no: __m512) -> __m512 {
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps()), no, yes) }
    }
    #[inline(always)]
    unsafe fn add_one_where_positive(acc: __m512, v: __m512) -> __m512 {
        unsafe {
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps());
            _mm512_mask_add_ps(acc, positive, acc, _mm512_set1_ps(1.0))
        }
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn finite_or_nan(v: __m512) -> (__m512, __m512) {
        unsafe {
            // |v| < ∞ is false for ±∞ and NaN alike.
            let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(f32::INFINITY));
            (
                _mm512_mask_blend_ps(finite, _mm512_set1_ps(f32::NAN), v),
                _mm512_maskz_mov_ps(!finite, _mm512_set1_ps(1.0)),
            )
        }
    }
    #[inline(always)]
    unsafe fn all_finite(v: __m512) -> bool {
        // v − v is 0 where v is finite, NaN elsewhere; NaN is unordered.
        unsafe { _mm512_cmp_ps_mask::<_CMP_ORD_Q>(_mm512_sub_ps(v, v), _mm512_setzero_ps()) == 0xffff }
    }
    #[inline(always)]
    unsafe fn keep_first(n: usize, v: __m512, fill: f32) -> __m512 {
        let mask = first_lanes(n);
        unsafe { _mm512_mask_blend_ps(mask, _mm512_set1_ps(fill), v) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, stride: usize) -> __m512 {
        unsafe {
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            _mm512_i32gather_ps::<4>(_mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride as i32)), p)
        }
    }
    #[inline(always)]
    unsafe fn transpose_store(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize, n: usize) {
        unsafe {
            // Plain loops over fixed arrays (unrolled in the caller): closures would not inherit its target
            // features, and their intrinsics would become calls.
            let mut r = [_mm512_setzero_ps(); 16];
            for i in 0..16 {
                r[i] = _mm512_loadu_ps(src.add(i * src_stride));
            }
            // Pairs of rows interleaved, then quadruples: u[4k + m]'s 128-bit lane j holds rows 4k..4k+3 of
            // column 4j + m.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let mut u = [_mm512_setzero_ps(); 16];
            for k in 0..4 {
                for h in 0..2 {
                    let (a, b) = (t[4 * k + h], t[4 * k + h + 2]);
                    u[4 * k + 2 * h] = _mm512_shuffle_ps::<0x44>(a, b);
                    u[4 * k + 2 * h + 1] = _mm512_shuffle_ps::<0xEE>(a, b);
                }
            }
            // Then the 128-bit lanes: column 4j + m takes lane j of u[m], u[4 + m], u[8 + m], u[12 + m].
            let (mut x, mut y) = ([_mm512_setzero_ps(); 8], [_mm512_setzero_ps(); 8]);
            for m in 0..4 {
                x[2 * m] = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
                x[2 * m + 1] = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
                y[2 * m] = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
                y[2 * m + 1] = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            }
            let mask = first_lanes(n);
            for c in 0..16 {
                let (j, m) = (c / 4, c % 4);
                // Lanes 0 and 2 of j's pair sit in the even x/y, 1 and 3 in the odd ones.
                let (a, b) = (x[2 * m + j % 2], y[2 * m + j % 2]);
                let v = if j < 2 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) };
                _mm512_mask_storeu_ps(dst.add(c * dst_stride), mask, v);
            }
        }
    }
}

impl Vector for Avx2 {
    const L: usize = 8;
    type V = __m256;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, n: usize, v: __m256) {
        unsafe {
            if n >= 8 {
                _mm256_storeu_ps(p, v);
            } else {
                // Lane i is stored where its mask element has the top bit set: i < n.
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
                _mm256_maskstore_ps(p, mask, v);
            }
        }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
        unsafe {
            // As in `store_first`: lane i is loaded where i < n, the others are zero.
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes);
            _mm256_maskload_ps(p, mask)
        }
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        unsafe {
            let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
            _mm_cvtss_f32(_mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1)))
        }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn where_positive(v: __m256, yes: __m256, no: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(no, yes, _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_setzero_ps())) }
    }
    #[inline(always)]
    unsafe fn add_one_where_positive(acc: __m256, v: __m256) -> __m256 {
        // All ones where positive: the AND keeps 1.0 there and +0 elsewhere.
        unsafe {
            _mm256_add_ps(acc, _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0)))
        }
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn finite_or_nan(v: __m256) -> (__m256, __m256) {
        unsafe {
            let magnitude = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)));
            // All ones where |v| < ∞, which is false for ±∞ and NaN alike.
            let finite = _mm256_cmp_ps::<_CMP_LT_OQ>(magnitude, _mm256_set1_ps(f32::INFINITY));
            (_mm256_blendv_ps(_mm256_set1_ps(f32::NAN), v, finite), _mm256_andnot_ps(finite, _mm256_set1_ps(1.0)))
        }
    }
    #[inline(always)]
    unsafe fn all_finite(v: __m256) -> bool {
        // As for AVX-512: v − v is NaN exactly where v is not finite.
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_ORD_Q>(_mm256_sub_ps(v, v), _mm256_setzero_ps())) == 0xff }
    }
    #[inline(always)]
    unsafe fn keep_first(n: usize, v: __m256, fill: f32) -> __m256 {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let first = _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes);
            _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(first))
        }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, stride: usize) -> __m256 {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_i32gather_ps::<4>(p, _mm256_mullo_epi32(lanes, _mm256_set1_epi32(stride as i32)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_store(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize, n: usize) {
        unsafe {
            let mut r = [_mm256_setzero_ps(); 8];
            for i in 0..8 {
                r[i] = _mm256_loadu_ps(src.add(i * src_stride));
            }
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4k + m]'s 128-bit lane j holds rows 4k..4k+3 of column 4j + m.
            let mut u = [_mm256_setzero_ps(); 8];
            for k in 0..2 {
                for h in 0..2 {
                    let (a, b) = (t[4 * k + h], t[4 * k + h + 2]);
                    u[4 * k + 2 * h] = _mm256_shuffle_ps::<0x44>(a, b);
                    u[4 * k + 2 * h + 1] = _mm256_shuffle_ps::<0xEE>(a, b);
                }
            }
            for c in 0..8 {
                let (j, m) = (c / 4, c % 4);
                let v = if j == 0 {
                    _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m])
                } else {
                    _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m])
                };
                Self::store_first(dst.add(c * dst_stride), n, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    /// The values `add_one_where_positive` is checked on: signed zeros, infinities, NaN, tiny and large values.
    const VALUES: [f32; 16] = [
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        2.5,
        -2.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e30,
        -1e30,
        7.0,
        -7.0,
        0.5,
        -0.5,
        3.0,
    ];

    /// Adding one where positive in one step gives, bit for bit, what adding `where_positive(v, 1, 0)` gives.
    fn one_where_positive_matches<V: Vector>() {
        let mut accumulators = [0.0f32; 16];
        accumulators[1] = 5.0;
        accumulators[2] = -0.0;
        for values in VALUES.chunks_exact(V::L) {
            for acc in accumulators.chunks_exact(V::L) {
                let (mut fused, mut blended) = ([0.0f32; 16], [0.0f32; 16]);
                // SAFETY: the callers checked that the CPU runs `V`; every pointer holds V::L values.
                unsafe {
                    let (a, v) = (V::load(acc.as_ptr()), V::load(values.as_ptr()));
                    V::store(fused.as_mut_ptr(), V::add_one_where_positive(a, v));
                    V::store(blended.as_mut_ptr(), V::add(a, V::where_positive(v, V::splat(1.0), V::zero())));
                }
                assert_eq!(fused.map(f32::to_bits), blended.map(f32::to_bits), "{values:?} onto {acc:?}");
            }
        }
    }

    #[test]
    fn adding_one_where_positive_is_adding_the_step() {
        if Isa::Avx512.runs_here() {
            one_where_positive_matches::<Avx512>();
        }
        if Isa::Avx2.runs_here() {
            one_where_positive_matches::<Avx2>();
        }
    }
}
