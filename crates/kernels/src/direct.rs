//! Direct (no im2col) conv kernels, register-blocked, written as plain Rust on fixed-size arrays and
//! compiled for AVX-512 (runtime-detected; callers fall back to im2col+gemm without it).
//!
//! forward:  16 output columns (one zmm) × CB output channels of accumulators per output row; per kernel
//!           tap one unaligned load of the padded input row and CB broadcast-FMAs.
//! dX:       the same forward kernel on dY padded by k-1-p with flipped, transposed weights.
//! dW:       dY transposed to [b][oh][ow][co] so output channels are the vector lanes; per output pixel
//!           one load of dY and KH·KW broadcast-FMAs into KH·KW accumulators.
// Intrinsics-free, but the AVX-512 entry points are `unsafe fn`s with `#[target_feature]`, called only after
// runtime detection, and they index through raw pointers in the innermost loops.
#![allow(unsafe_code)]
// Index loops over fixed-size register blocks are what the vectoriser turns into FMAs; the kernels take the
// whole geometry as arguments.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use crate::Geom;

pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

const L: usize = 16;

/// Zero-padded copy of one image: [c][hp][wpp] with the data at (pad, pad).
fn pad_image(x: &[f32], c: usize, h: usize, w: usize, pad: usize, hp: usize, wpp: usize, out: &mut [f32]) {
    out.fill(0.0);
    for ch in 0..c {
        for r in 0..h {
            let src = &x[(ch * h + r) * w..(ch * h + r + 1) * w];
            let d0 = (ch * hp + r + pad) * wpp + pad;
            out[d0..d0 + w].copy_from_slice(src);
        }
    }
}

/// y[b][co][oh][ow] = bias[co] + Σ_{ci,i,j} wt[(ci,i,j)][co] · xpad[b][ci][oh+i][ow+j].
/// `wt` is the weight laid out [ci][kh][kw][co].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fwd_impl<const CB: usize>(
    b_count: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let ho = h + 2 * pad + 1 - kh;
    let wo = w + 2 * pad + 1 - kw;
    let blocks = wo.div_ceil(L);
    let hp = h + 2 * pad;
    let wpp = blocks * L + kw - 1;
    let mut xpad = vec![0.0f32; ci * hp * wpp];
    for b in 0..b_count {
        pad_image(&x[b * ci * h * w..(b + 1) * ci * h * w], ci, h, w, pad, hp, wpp, &mut xpad);
        let yb = &mut y[b * co * ho * wo..(b + 1) * co * ho * wo];
        debug_assert!(co.is_multiple_of(CB));
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::*;
            for co0 in (0..co).step_by(CB) {
                for oh in 0..ho {
                    for blk in 0..blocks {
                        let ow0 = blk * L;
                        let mut acc = [_mm512_setzero_ps(); CB];
                        if let Some(bias) = bias {
                            for c in 0..CB {
                                acc[c] = _mm512_set1_ps(bias[co0 + c]);
                            }
                        }
                        for c_in in 0..ci {
                            for i in 0..kh {
                                let base = (c_in * hp + oh + i) * wpp + ow0;
                                assert!(base + kw - 1 + L <= xpad.len());
                                let row = xpad.as_ptr().add(base);
                                let wbase = (c_in * kh + i) * kw * co + co0;
                                assert!(wbase + (kw - 1) * co + CB <= wt.len());
                                let wp = wt.as_ptr().add(wbase);
                                for j in 0..kw {
                                    let xv = _mm512_loadu_ps(row.add(j));
                                    let wj = wp.add(j * co);
                                    for c in 0..CB {
                                        acc[c] = _mm512_fmadd_ps(_mm512_set1_ps(*wj.add(c)), xv, acc[c]);
                                    }
                                }
                            }
                        }
                        let n = L.min(wo - ow0);
                        let mask: __mmask16 = if n == L { 0xffff } else { ((1u32 << n) - 1) as u16 };
                        for c in 0..CB {
                            let d = ((co0 + c) * ho + oh) * wo + ow0;
                            assert!(d + n <= yb.len());
                            _mm512_mask_storeu_ps(yb.as_mut_ptr().add(d), mask, acc[c]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn fwd_avx512(
    b: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    match co {
        c if c % 16 == 0 => fwd_impl::<16>(b, ci, h, w, co, kh, kw, pad, x, wt, bias, y),
        c if c % 8 == 0 => fwd_impl::<8>(b, ci, h, w, co, kh, kw, pad, x, wt, bias, y),
        c if c % 4 == 0 => fwd_impl::<4>(b, ci, h, w, co, kh, kw, pad, x, wt, bias, y),
        c if c % 2 == 0 => fwd_impl::<2>(b, ci, h, w, co, kh, kw, pad, x, wt, bias, y),
        _ => fwd_impl::<1>(b, ci, h, w, co, kh, kw, pad, x, wt, bias, y),
    }
}

fn transpose_w(w: &[f32], co: usize, ci: usize, kh: usize, kw: usize) -> Vec<f32> {
    // [co][ci][kh][kw] -> [ci][kh][kw][co]
    let k = ci * kh * kw;
    let mut wt = vec![0.0f32; k * co];
    for c in 0..co {
        for r in 0..k {
            wt[r * co + c] = w[c * k + r];
        }
    }
    wt
}

pub fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let wt = transpose_w(w, g.co, g.ci, g.kh, g.kw);
    let mut y = vec![0.0f32; g.b * g.co * g.hw_out()];
    #[cfg(target_arch = "x86_64")]
    unsafe {
        fwd_avx512(g.b, g.ci, g.h, g.w, g.co, g.kh, g.kw, g.pad, x, &wt, bias, &mut y)
    };
    y
}

/// dX = full correlation of dY (padded k-1-p) with the flipped kernel, channels swapped.
pub fn input_grad(g: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    // w2[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j]; as "wt" layout [co][i][j][ci].
    let (kh, kw) = (g.kh, g.kw);
    let mut wt = vec![0.0f32; g.co * kh * kw * g.ci];
    for c in 0..g.co {
        for d in 0..g.ci {
            for i in 0..kh {
                for j in 0..kw {
                    wt[((c * kh + i) * kw + j) * g.ci + d] =
                        w[((c * g.ci + d) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    let mut dx = vec![0.0f32; g.b * g.ci * g.hw_in()];
    #[cfg(target_arch = "x86_64")]
    unsafe {
        fwd_avx512(g.b, g.co, g.ho(), g.wo(), g.ci, kh, kw, kh - 1 - g.pad, dy, &wt, None, &mut dx)
    };
    dx
}

/// dW[co][ci][i][j] = Σ_{b,oh,ow} dY[b][co][oh][ow] · xpad[b][ci][oh+i][ow+j]; co in the 16 vector lanes
/// (padded), KH·KW zmm accumulators per (ci, co block).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dw_avx512_impl<const KH: usize, const KW: usize>(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    use std::arch::x86_64::*;
    let (ho, wo) = (g.ho(), g.wo());
    let hp = g.h + 2 * g.pad;
    let wpp = g.w + 2 * g.pad;
    let cblocks = g.co.div_ceil(L);
    let cpad = cblocks * L;
    let mut dyt = vec![0.0f32; g.b * ho * wo * cpad];
    for b in 0..g.b {
        for c in 0..g.co {
            let src = &dy[(b * g.co + c) * ho * wo..(b * g.co + c + 1) * ho * wo];
            for (p, &v) in src.iter().enumerate() {
                dyt[(b * ho * wo + p) * cpad + c] = v;
            }
        }
    }
    let mut xpad = vec![0.0f32; g.ci * hp * wpp];
    let mut acc_all = vec![[[0.0f32; L]; 25]; g.ci * cblocks];
    assert!(KH * KW <= 25);
    assert!((ho - 1 + KH - 1) * wpp + wo - 1 + KW - 1 < hp * wpp);
    for b in 0..g.b {
        pad_image(&x[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()], g.ci, g.h, g.w, g.pad, hp, wpp, &mut xpad);
        for c_in in 0..g.ci {
            let xp = unsafe { xpad.as_ptr().add(c_in * hp * wpp) };
            for cb in 0..cblocks {
                let slot = &mut acc_all[c_in * cblocks + cb];
                unsafe {
                    let mut a: [__m512; 25] = [_mm512_setzero_ps(); 25];
                    for t in 0..KH * KW {
                        a[t] = _mm512_loadu_ps(slot[t].as_ptr());
                    }
                    let dp = dyt.as_ptr().add(b * ho * wo * cpad + cb * L);
                    for oh in 0..ho {
                        for ow in 0..wo {
                            let dv = _mm512_loadu_ps(dp.add((oh * wo + ow) * cpad));
                            let xo = xp.add(oh * wpp + ow);
                            for i in 0..KH {
                                for j in 0..KW {
                                    a[i * KW + j] =
                                        _mm512_fmadd_ps(_mm512_set1_ps(*xo.add(i * wpp + j)), dv, a[i * KW + j]);
                                }
                            }
                        }
                    }
                    for t in 0..KH * KW {
                        _mm512_storeu_ps(slot[t].as_mut_ptr(), a[t]);
                    }
                }
            }
        }
    }
    let mut dw = vec![0.0f32; g.co * g.k()];
    for c_in in 0..g.ci {
        for cb in 0..cblocks {
            let a = &acc_all[c_in * cblocks + cb];
            for l in 0..L {
                let c = cb * L + l;
                if c >= g.co {
                    break;
                }
                for t in 0..KH * KW {
                    dw[(c * g.ci + c_in) * KH * KW + t] = a[t][l];
                }
            }
        }
    }
    dw
}

/// Only 5×5 kernels in this prototype.
pub fn weight_grad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(g.kh == 5 && g.kw == 5, "prototype: 5×5 only");
    #[cfg(target_arch = "x86_64")]
    unsafe {
        dw_avx512_impl::<5, 5>(g, x, dy)
    }
}
