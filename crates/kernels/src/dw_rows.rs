//! The weight gradient of a layer with few filters — a first layer: one to three input channels, 8 or 32 filters
//! — vectorised along each output row. The direct dW kernel puts the output channels in the lanes, which 8
//! filters fill only half of on AVX-512, and im2col + gemm copies a 25-value column per output pixel for a
//! product with only 8 rows: here the lanes are output columns, so any filter count fills them.
//!
//! dW[co][ci][i][j] = Σ_{b,oh,ow} dY[b][co][oh][ow] · xpad[b][ci][oh+i][ow+j]: for one input channel and one
//! filter row i, CB filters × KW taps accumulate in registers over the whole batch, from one dY vector per
//! filter and one (unaligned) input vector per tap; each accumulator is summed across its lanes once, at the end.

use crate::Geom;
use crate::direct::Isa;
use crate::direct::layout::pad_image;
use crate::simd::{Avx2, Avx512, Vector};

/// dW `[co][ci][kh][kw]` of `g`.
///
/// # Safety
/// `isa` must run on this CPU, the filters must be square 3×3, 5×5 or 7×7, and `g` must have an output pixel.
pub(crate) unsafe fn weight_grad(isa: Isa, g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    unsafe {
        match isa {
            Isa::Avx512 => avx512(g, x, dy),
            Isa::Avx2 => avx2(g, x, dy),
        }
    }
}

/// Filters per pass: CB·KW accumulators, CB dY vectors and one input vector fit AVX-512's 32 registers.
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    unsafe {
        match g.kw {
            3 => rows::<Avx512, 3, 4>(g, x, dy),
            5 => rows::<Avx512, 5, 4>(g, x, dy),
            _ => rows::<Avx512, 7, 3>(g, x, dy),
        }
    }
}

/// As [`avx512`] within AVX2's 16 registers.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    unsafe {
        match g.kw {
            3 => rows::<Avx2, 3, 3>(g, x, dy),
            5 => rows::<Avx2, 5, 2>(g, x, dy),
            _ => rows::<Avx2, 7, 1>(g, x, dy),
        }
    }
}

// Plain index loops over the accumulators: with iterators over them LLVM kept the 5×5 and 7×7 accumulators in
// memory (2.6× slower).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn rows<S: Vector, const KW: usize, const CB: usize>(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, kh) = (S::L, g.kh);
    let (ho, wo) = (g.ho(), g.wo());
    let (hp, wpp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let plane = hp * wpp;
    let mut xpad = vec![0.0f32; g.b * g.ci * plane];
    for b in 0..g.b {
        let image = &x[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()];
        // SAFETY: this kernel runs on `S`'s instruction set.
        unsafe {
            pad_image::<S>(image, g.ci, g.h, g.w, g.pad, hp, wpp, &mut xpad[b * g.ci * plane..(b + 1) * g.ci * plane])
        };
    }
    let (full, rest) = (wo / l * l, wo % l);
    let mut dw = vec![0.0f32; g.co * g.ci * kh * KW];
    // Every read below stays inside its row of `xpad` or `dy`: input vectors for tap j cover columns up to
    // wo − 1 + j ≤ wo + KW − 2 = wpp − 1 (the partial ones read only their first `rest` lanes), dY vectors up to
    // wo − 1, and input rows oh + i ≤ ho + kh − 2 = hp − 1.
    assert!(wo > 0 && ho > 0 && KW == g.kw && wpp == wo + KW - 1 && hp == ho + kh - 1);
    assert!(xpad.len() == g.b * g.ci * plane && dy.len() >= g.b * g.co * ho * wo && x.len() >= g.b * g.ci * g.hw_in());
    for c_in in 0..g.ci {
        for first in (0..g.co).step_by(CB) {
            // The last block may have fewer filters: its spare slots read the last filter and are not kept.
            let filter = |c: usize| (first + c).min(g.co - 1);
            for i in 0..kh {
                // SAFETY: the offsets are bounded as the asserts above state.
                let sums = unsafe {
                    let mut acc = [[S::zero(); KW]; CB];
                    for b in 0..g.b {
                        for oh in 0..ho {
                            let xrow = xpad.as_ptr().add(((b * g.ci + c_in) * hp + oh + i) * wpp);
                            let dyrow = |c: usize| dy.as_ptr().add(((b * g.co + filter(c)) * ho + oh) * wo);
                            let mut ow = 0;
                            while ow < full {
                                let d: [S::V; CB] = std::array::from_fn(|c| S::load(dyrow(c).add(ow)));
                                for j in 0..KW {
                                    let xv = S::load(xrow.add(ow + j));
                                    for c in 0..CB {
                                        acc[c][j] = S::fmadd(xv, d[c], acc[c][j]);
                                    }
                                }
                                ow += l;
                            }
                            if rest > 0 {
                                let d: [S::V; CB] = std::array::from_fn(|c| S::load_first(dyrow(c).add(full), rest));
                                for j in 0..KW {
                                    let xv = S::load_first(xrow.add(full + j), rest);
                                    for c in 0..CB {
                                        acc[c][j] = S::fmadd(xv, d[c], acc[c][j]);
                                    }
                                }
                            }
                        }
                    }
                    acc.map(|taps| taps.map(|v| S::sum(v)))
                };
                for (c, taps) in sums.iter().enumerate().take(g.co - first) {
                    let at = (((first + c) * g.ci + c_in) * kh + i) * KW;
                    dw[at..at + KW].copy_from_slice(taps);
                }
            }
        }
    }
    dw
}
