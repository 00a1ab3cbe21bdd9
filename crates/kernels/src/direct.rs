//! Direct (no im2col) conv kernels, register-blocked, written once over a small vector trait and compiled
//! for AVX-512 (16 lanes) and for AVX2 (8 lanes), the instruction set picked at run time ([`Isa`]).
//!
//! forward:  NB vectors of output columns × CB output channels of accumulators per output row (AVX-512 1 × up
//!           to 16, AVX2 2 × 4); per kernel tap NB unaligned loads of the padded input row and CB broadcasts.
//!           Rows that would leave lanes idle (14 of 16 for a 14-wide map) put output channels in the lanes
//!           instead (`direct/channels.rs`).
//! dX:       the same forward kernel on dY padded by k-1-p with flipped, transposed weights.
//! dW:       dY transposed to [b][oh][ow][co] so output channels are the vector lanes; per output pixel
//!           one load of dY and broadcast-FMAs into one accumulator per kernel tap (AVX2 has 16 registers,
//!           so it takes the 5×5 taps a row at a time).
//!
//! Off x86-64 there is no direct kernel: every entry point computes the same result with im2col + gemm.
// The vector entry points are `unsafe fn`s with `#[target_feature]`, called only after runtime detection,
// and they index through raw pointers in the innermost loops.
#![allow(unsafe_code)]
// Index loops over fixed-size register blocks are what the compiler unrolls into FMAs; the kernels take the
// whole geometry as arguments.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]
// Off x86-64 only the gemm fallbacks remain, and the helpers the vector kernels use go unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables, unused_mut))]

use crate::Geom;

mod channels;
pub(crate) mod layout;

use layout::{input_channels_last, transpose_w};

/// A vector instruction set the direct kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16 f32 lanes, 32 registers.
    Avx512,
    /// 8 f32 lanes, 16 registers (with FMA).
    Avx2,
}

impl Isa {
    /// Whether this CPU runs it.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            match self {
                Isa::Avx512 => fma && std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => fma && std::arch::is_x86_feature_detected!("avx2"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    /// f32 lanes in one vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }

    /// The widest instruction set this CPU runs, if any.
    pub fn best() -> Option<Isa> {
        [Isa::Avx512, Isa::Avx2].into_iter().find(|isa| isa.runs_here())
    }
}

// Where the direct kernels beat im2col + gemm, measured per op on ref-mnist's and `wide`'s layers, an RGB first
// layer and 16/32-channel layers:
// - forward and dX for square 3×3, 5×5 and 7×7 filters (3×3: deep6 3,080 → 3,830 images/s at one thread, 3,720 →
//   4,230 at two; a CIFAR-sized 3×3 net 1,650 → 1,820), dW for 3×3, 5×5 and 7×7 (3×3 dW: deep6 3,870 →
//   4,700 images/s at one thread with AVX-512; 7×7 one kernel row at a time, 16 → 32 channels on 14×14 maps
//   6.3 → 2.9 ms on AVX-512 and 3.5 ms on AVX2, 8 → 16 by output rows 1.2 → 0.73 ms);
// - dX only into 8 or more channels: it runs the forward kernel with the input channels as outputs, and with
//   fewer each load feeds too few FMAs;
// - dW only with 2 or more input channels (a one-channel image is gemm's best case: 0.75 ms against 1.45 ms for
//   `wide`'s first layer), for 5×5 with 16 or more output channels, for 3×3 and 7×7 with a whole vector of them (8 on
//   AVX2: deep6's 8 → 8 layers make a 300-step AVX2 `train` 12 % faster than leaving them to gemm);
// - with AVX2, forward and dX only while input × output channels ≤ 1,024: for `wide`'s 32 → 64 layer gemm's
//   larger blocking wins (7.9 against 8.7 ms with gemm's AVX2 microkernels), for 32 → 16 the direct kernel
//   does (2.2 against 3.3 ms).
// - strided layers (any stride): the forward by the channel-lane kernel where it takes the shape (whole vectors
//   of filters, 64 taps or more per output; against im2col + gemm, 16 → 32 3×3 stride 2 on 13×13 maps 320 →
//   138 µs, 32 → 64 on 16×16 1,160 → 820), dW as at stride 1 (322 → 130 and 1,372 → 786 µs), dX split into
//   the stride's phases on AVX-512 (318 → 237 and 1,159 → 853 µs; gemm and col2im elsewhere).
// Shapes the kernels are not written for go to gemm too: an empty output, and for dX padding of a whole
// kernel or more (its own padding, kh − 1 − pad, would be negative).

/// 5×5 filters and at least one output pixel, any stride.
fn direct_shape(g: &Geom) -> bool {
    g.kh == 5 && g.kw == 5 && fits_strided(g)
}

/// At least one output pixel, and stride 1 (what the column kernel, dX and dW by rows are written for).
fn fits(g: &Geom) -> bool {
    fits_strided(g) && g.stride == 1
}

/// At least one output pixel, any stride (the channel-lane forward and dW take one).
fn fits_strided(g: &Geom) -> bool {
    g.h + 2 * g.pad >= g.kh && g.w + 2 * g.pad >= g.kw && g.stride >= 1
}

/// A square 3×3, 5×5 or 7×7 filter, the sizes the direct kernels are written for.
fn square(g: &Geom) -> bool {
    g.kh == g.kw && matches!(g.kh, 3 | 5 | 7)
}

fn takes_forward(isa: Isa, g: &Geom) -> bool {
    let columns = fits(g) && (isa == Isa::Avx512 || g.ci * g.co <= 1024);
    square(g) && (columns || (fits_strided(g) && g.stride > 1 && channels::takes(isa, g)))
}

fn takes_input_grad(isa: Isa, g: &Geom) -> bool {
    if g.stride > 1 {
        return square(g) && fits_strided(g) && channels::takes_strided_input_grad(isa, g);
    }
    takes_forward(isa, g) && g.ci >= 8 && g.pad < g.kh
}

fn takes_weight_grad(isa: Isa, g: &Geom) -> bool {
    let three = g.kh == 3 && g.kw == 3 && fits_strided(g) && g.co >= isa.lanes();
    let seven = g.kh == 7 && g.kw == 7 && fits_strided(g) && g.co >= isa.lanes();
    (three || seven || (direct_shape(g) && g.co >= 16)) && g.ci >= 2
}

/// dW by output rows (`dw_rows`) where it measured faster, per op at one thread with 16 images: up to three
/// input channels always (3→32 5×5: 748 µs against the direct kernel's 1,145 on AVX-512, 1,133 against 1,450 on
/// AVX2), up to eight where the direct kernel does not take the shape (ref-mnist's 1→8 5×5: 63 µs against
/// gemm's 116–136; 8→8 3×3 on AVX-512: 197–239 against 445–545). At 8→16 the direct kernel won (65–88 against
/// 116).
fn takes_weight_grad_by_rows(isa: Isa, g: &Geom) -> bool {
    square(g) && fits(g) && (g.ci <= 3 || (g.ci <= 8 && !takes_weight_grad(isa, g)))
}

/// Which of a convolution's three ops the direct kernels for `isa` run (the others go to im2col + gemm): what
/// the tests check, so a rule change that sends a shape to gemm cannot pass unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectOps {
    /// y = conv(x, w).
    pub forward: bool,
    /// dX.
    pub input_grad: bool,
    /// dW.
    pub weight_grad: bool,
}

/// The ops of `g` the direct kernels for `isa` take on this CPU.
pub fn direct_ops(isa: Isa, g: &Geom) -> DirectOps {
    let here = isa.runs_here();
    DirectOps {
        forward: here && takes_forward(isa, g),
        input_grad: here && takes_input_grad(isa, g),
        weight_grad: here && (takes_weight_grad(isa, g) || takes_weight_grad_by_rows(isa, g)),
    }
}

/// Which of the direct forward and dX put output channels in the vector lanes ([`channels`]) rather than
/// columns: rows that leave the column kernel's lanes idle (the tests check both layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLanes {
    /// y = conv(x, w).
    pub forward: bool,
    /// dX.
    pub input_grad: bool,
}

/// Where `isa`'s direct forward and dX for `g` hold output channels in the lanes.
pub fn channel_lanes(isa: Isa, g: &Geom) -> ChannelLanes {
    let ops = direct_ops(isa, g);
    ChannelLanes {
        forward: ops.forward && channels::takes(isa, g),
        // A strided dX is always the channel-lane kernel.
        input_grad: ops.input_grad && (g.stride > 1 || channels::takes(isa, &flipped(g))),
    }
}

/// dX's geometry as a forward convolution: dY's channels in, the input's out, padded so the output is x's size.
fn flipped(g: &Geom) -> Geom {
    Geom { b: g.b, ci: g.co, h: g.ho(), w: g.wo(), co: g.ci, kh: g.kh, kw: g.kw, pad: g.kh - 1 - g.pad, stride: 1 }
}

/// y = conv(x, w) + bias: the direct kernel for `isa` where it is the faster, else im2col + gemm.
pub fn forward(isa: Isa, g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0f32; g.b * g.co * g.hw_out()];
    forward_into(isa, g, x, w, bias, &mut y);
    y
}

/// [`forward`] into `y` (`b·co·ho·wo` values, zeroed; every one is written), so that threads working on
/// parts of a batch write straight into one output.
pub fn forward_into(isa: Isa, g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    if !isa.runs_here() || !takes_forward(isa, g) {
        return crate::gemm::forward_into(g, x, w, bias, y);
    }
    let wt = transpose_w(w, g.co, g.ci, g.kh, g.kw);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `runs_here` checked the CPU features the entry points are compiled for.
    unsafe {
        vector::forward(isa, g, x, &wt, bias, y)
    };
}

/// [`forward_into`] (`isa` `None`: im2col + gemm) a run of `run` images at a time into one scratch buffer, each
/// run's outputs (`n·co·ho·wo` values, n ≤ `run`) handed to `then(first image, outputs)` while they are in the
/// cache: a layer whose output is only pooled never stores it whole. The same values as [`forward_into`] (an image's outputs
/// do not depend on the others).
pub fn forward_in_runs(
    isa: Option<Isa>,
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    run: usize,
    mut then: impl FnMut(usize, &[f32]),
) {
    let (run, per_in, per_out) = (run.clamp(1, g.b.max(1)), g.ci * g.hw_in(), g.co * g.hw_out());
    let direct = isa.filter(|&isa| isa.runs_here() && takes_forward(isa, g));
    // The weights laid out once for every run.
    let wt = if direct.is_some() { transpose_w(w, g.co, g.ci, g.kh, g.kw) } else { Vec::new() };
    let mut scratch = vec![0.0f32; run * per_out];
    for start in (0..g.b).step_by(run) {
        let count = run.min(g.b - start);
        let (gs, xs) = (Geom { b: count, ..*g }, &x[start * per_in..(start + count) * per_in]);
        let y = &mut scratch[..count * per_out];
        match direct {
            // SAFETY: `runs_here` checked the CPU features the entry points are compiled for.
            #[cfg(target_arch = "x86_64")]
            Some(isa) => unsafe { vector::forward(isa, &gs, xs, &wt, bias, y) },
            _ => crate::gemm::forward_into(&gs, xs, w, bias, y),
        }
        then(start, y);
    }
}

/// dX = full correlation of dY (padded k-1-p) with the flipped kernel, channels swapped (direct where faster).
pub fn input_grad(isa: Isa, g: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; g.b * g.ci * g.hw_in()];
    input_grad_into(isa, g, w, dy, &mut dx);
    dx
}

/// [`input_grad`] into `dx` (`b·ci·h·w` values, zeroed).
pub fn input_grad_into(isa: Isa, g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if !isa.runs_here() || !takes_input_grad(isa, g) {
        return crate::gemm::input_grad_into(g, w, dy, dx);
    }
    if g.stride > 1 {
        let wt = input_channels_last(g, w, false);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `runs_here` checked the CPU features, `takes_input_grad` the shape (AVX-512 only).
        unsafe {
            channels::vector::strided_input_grad(g, dy, &wt, dx)
        };
        return;
    }
    // The forward kernel over dY with w2[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j], as its "wt" layout.
    let wt = input_channels_last(g, w, true);
    let flipped = flipped(g);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `forward`.
    unsafe {
        vector::forward(isa, &flipped, dy, &wt, None, dx)
    };
}

/// dW[co][ci][i][j] = Σ_{b,oh,ow} dY[b][co][oh][ow] · xpad[b][ci][oh+i][ow+j] (direct where faster).
pub fn weight_grad(isa: Isa, g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if isa.runs_here() && takes_weight_grad_by_rows(isa, g) {
        // SAFETY: `runs_here` checked the CPU features, `takes` the shape.
        return unsafe { crate::dw_rows::weight_grad(isa, g, x, dy) };
    }
    if !isa.runs_here() || !takes_weight_grad(isa, g) {
        return crate::gemm::weight_grad(g, x, dy);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `forward`.
    unsafe {
        vector::weight_grad(isa, g, x, dy)
    }
    #[cfg(not(target_arch = "x86_64"))]
    crate::gemm::weight_grad(g, x, dy)
}

#[cfg(target_arch = "x86_64")]
mod vector {
    use super::layout::{pad_image, transpose_channels};
    use super::{Geom, Isa};
    use crate::simd::{Avx2, Avx512, Vector};

    /// y[b][co][oh][ow] = bias[co] + Σ_{ci,i,j} wt[(ci,i,j)][co] · xpad[b][ci][oh+i][ow+j].
    /// `wt` is the weight laid out [ci][kh][kw][co]. Each block of output is NB vectors of columns × CB
    /// channels: per tap NB input loads and CB weight broadcasts feed NB·CB FMAs.
    #[inline(always)]
    unsafe fn fwd_impl<S: Vector, const CB: usize, const NB: usize>(
        g: &Geom,
        x: &[f32],
        wt: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let Geom { b: b_count, ci, h, w, co, kh, kw, pad, .. } = *g;
        let (ho, wo) = (g.ho(), g.wo());
        let span = S::L * NB;
        let blocks = wo.div_ceil(span);
        let hp = h + 2 * pad;
        let wpp = blocks * span + kw - 1;
        let mut xpad = vec![0.0f32; ci * hp * wpp];
        debug_assert!(co.is_multiple_of(CB));
        for b in 0..b_count {
            // SAFETY: this kernel runs on `S`'s instruction set.
            unsafe { pad_image::<S>(&x[b * ci * h * w..(b + 1) * ci * h * w], ci, h, w, pad, hp, wpp, &mut xpad) };
            let yb = &mut y[b * co * ho * wo..(b + 1) * co * ho * wo];
            for co0 in (0..co).step_by(CB) {
                for oh in 0..ho {
                    for blk in 0..blocks {
                        let ow0 = blk * span;
                        // SAFETY: every pointer below is bounds-checked by the assert before it.
                        unsafe {
                            let mut acc = [[S::zero(); NB]; CB];
                            if let Some(bias) = bias {
                                for c in 0..CB {
                                    acc[c] = [S::splat(bias[co0 + c]); NB];
                                }
                            }
                            for c_in in 0..ci {
                                for i in 0..kh {
                                    let base = (c_in * hp + oh + i) * wpp + ow0;
                                    assert!(base + kw - 1 + span <= xpad.len());
                                    let row = xpad.as_ptr().add(base);
                                    let wbase = (c_in * kh + i) * kw * co + co0;
                                    assert!(wbase + (kw - 1) * co + CB <= wt.len());
                                    let wp = wt.as_ptr().add(wbase);
                                    for j in 0..kw {
                                        let mut xv = [S::zero(); NB];
                                        for v in 0..NB {
                                            xv[v] = S::load(row.add(j + v * S::L));
                                        }
                                        let wj = wp.add(j * co);
                                        for c in 0..CB {
                                            let weight = S::splat(*wj.add(c));
                                            for v in 0..NB {
                                                acc[c][v] = S::fmadd(weight, xv[v], acc[c][v]);
                                            }
                                        }
                                    }
                                }
                            }
                            for v in 0..NB {
                                let start = ow0 + v * S::L;
                                if start >= wo {
                                    break;
                                }
                                let n = S::L.min(wo - start);
                                for c in 0..CB {
                                    let d = ((co0 + c) * ho + oh) * wo + start;
                                    assert!(d + n <= yb.len());
                                    S::store_first(yb.as_mut_ptr().add(d), n, acc[c][v]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    unsafe fn fwd_avx512(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        type S = Avx512;
        unsafe {
            match g.co {
                c if c % 16 == 0 => fwd_impl::<S, 16, 1>(g, x, wt, bias, y),
                c if c % 8 == 0 => fwd_impl::<S, 8, 1>(g, x, wt, bias, y),
                c if c % 4 == 0 => fwd_impl::<S, 4, 1>(g, x, wt, bias, y),
                c if c % 2 == 0 => fwd_impl::<S, 2, 1>(g, x, wt, bias, y),
                _ => fwd_impl::<S, 1, 1>(g, x, wt, bias, y),
            }
        }
    }

    /// Blocks of 2 column vectors × 4 channels: 8 accumulators, 2 input vectors and a broadcast fit AVX2's 16
    /// registers, and each tap's 6 loads feed 8 FMAs (1 × 8 channels needs 9 loads for 8; 3 × 4 spills; wide's
    /// second layer 10.6 → 8.6 ms). Rows of at most one vector (a 7×7 map) take 1 vector × 8 channels instead:
    /// two vectors would compute 16 columns for 7.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fwd_avx2(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        type S = Avx2;
        unsafe {
            match g.co {
                c if c % 8 == 0 && g.wo() <= S::L => fwd_impl::<S, 8, 1>(g, x, wt, bias, y),
                c if c % 4 == 0 => fwd_impl::<S, 4, 2>(g, x, wt, bias, y),
                c if c % 2 == 0 => fwd_impl::<S, 2, 2>(g, x, wt, bias, y),
                _ => fwd_impl::<S, 1, 2>(g, x, wt, bias, y),
            }
        }
    }

    /// # Safety
    /// `isa` must run on this CPU.
    pub(super) unsafe fn forward(isa: Isa, g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        unsafe {
            if super::channels::takes(isa, g) {
                return super::channels::vector::forward(isa, g, x, wt, bias, y);
            }
            match isa {
                Isa::Avx512 => fwd_avx512(g, x, wt, bias, y),
                Isa::Avx2 => fwd_avx2(g, x, wt, bias, y),
            }
        }
    }

    /// dW for KH×KW filters: co in the vector lanes (padded to whole passes of `VECTORS` vectors), one
    /// accumulator per tap and vector for `ROWS` kernel rows at a time, kept per (ci, co vector) across the
    /// batch. 5×5 on AVX-512 takes all five rows (25 accumulators of 32 registers); AVX2 one kernel row and two
    /// channel vectors per pass (10 accumulators): each broadcast input value then feeds two FMAs (dW of
    /// ref-mnist's second layer 0.60 → 0.39 ms, `wide`'s second 10.2 → 6.3 ms). 3×3 takes all three rows and
    /// one channel vector on both (9 accumulators).
    #[inline(always)]
    unsafe fn dw_impl<S: Vector, const KH: usize, const KW: usize, const ROWS: usize, const VECTORS: usize>(
        g: &Geom,
        x: &[f32],
        dy: &[f32],
    ) -> Vec<f32> {
        const MAX_ACCUMULATORS: usize = 25;
        const MAX_VECTORS: usize = 2;
        let taps = ROWS * KW;
        assert!(KH.is_multiple_of(ROWS) && taps * VECTORS <= MAX_ACCUMULATORS);
        assert!(VECTORS <= MAX_VECTORS);
        let l = S::L;
        let (ho, wo) = (g.ho(), g.wo());
        assert!(ho > 0 && wo > 0);
        let hp = g.h + 2 * g.pad;
        let wpp = g.w + 2 * g.pad;
        let cblocks = g.co.div_ceil(l * VECTORS) * VECTORS;
        let cpad = cblocks * l;
        let mut dyt = vec![0.0f32; g.b * ho * wo * cpad];
        // SAFETY: the caller's target features run S's vectors.
        unsafe { transpose_channels::<S>(dy, g.b, g.co, ho * wo, cpad, &mut dyt) };
        let mut xpad = vec![0.0f32; g.ci * hp * wpp];
        // [ci][co vector][tap][lane]
        let mut sums = vec![0.0f32; g.ci * cblocks * KH * KW * l];
        let stride = g.stride;
        assert!(((ho - 1) * stride + KH - 1) * wpp + (wo - 1) * stride + KW - 1 < hp * wpp);
        assert!(cblocks.is_multiple_of(VECTORS));
        assert!(dyt.len() >= g.b * ho * wo * cpad && sums.len() == g.ci * cblocks * KH * KW * l);
        for b in 0..g.b {
            // SAFETY: this kernel runs on `S`'s instruction set.
            unsafe {
                pad_image::<S>(
                    &x[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()],
                    g.ci,
                    g.h,
                    g.w,
                    g.pad,
                    hp,
                    wpp,
                    &mut xpad,
                )
            };
            for c_in in 0..g.ci {
                for cb in (0..cblocks).step_by(VECTORS) {
                    for i0 in (0..KH).step_by(ROWS) {
                        // SAFETY: the asserts above bound every offset: taps < KH·KW, channel vectors < cblocks
                        // (a whole number of passes), pixels < ho·wo, and the padded input covers (oh·stride + i,
                        // ow·stride + j) for every tap.
                        unsafe {
                            let slot = |v: usize| ((c_in * cblocks + cb + v) * KH * KW + i0 * KW) * l;
                            let mut a = [S::zero(); MAX_ACCUMULATORS];
                            for v in 0..VECTORS {
                                for t in 0..taps {
                                    a[v * taps + t] = S::load(sums.as_ptr().add(slot(v) + t * l));
                                }
                            }
                            let xp = xpad.as_ptr().add(c_in * hp * wpp + i0 * wpp);
                            let dp = dyt.as_ptr().add(b * ho * wo * cpad + cb * l);
                            for oh in 0..ho {
                                for ow in 0..wo {
                                    let mut dv = [S::zero(); MAX_VECTORS];
                                    for v in 0..VECTORS {
                                        dv[v] = S::load(dp.add((oh * wo + ow) * cpad + v * l));
                                    }
                                    let xo = xp.add((oh * wpp + ow) * stride);
                                    for i in 0..ROWS {
                                        for j in 0..KW {
                                            let xs = S::splat(*xo.add(i * wpp + j));
                                            for v in 0..VECTORS {
                                                let t = v * taps + i * KW + j;
                                                a[t] = S::fmadd(xs, dv[v], a[t]);
                                            }
                                        }
                                    }
                                }
                            }
                            for v in 0..VECTORS {
                                for t in 0..taps {
                                    S::store(sums.as_mut_ptr().add(slot(v) + t * l), a[v * taps + t]);
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut dw = vec![0.0f32; g.co * g.k()];
        for c_in in 0..g.ci {
            for cb in 0..cblocks {
                let block = &sums[(c_in * cblocks + cb) * KH * KW * l..][..KH * KW * l];
                for lane in 0..l {
                    let c = cb * l + lane;
                    if c >= g.co {
                        break;
                    }
                    for t in 0..KH * KW {
                        dw[(c * g.ci + c_in) * KH * KW + t] = block[t * l + lane];
                    }
                }
            }
        }
        dw
    }

    #[target_feature(enable = "avx512f,fma")]
    unsafe fn dw_avx512(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
        unsafe {
            match g.kh {
                3 => dw_impl::<Avx512, 3, 3, 3, 1>(g, x, dy),
                7 if g.co > Avx512::L => dw_impl::<Avx512, 7, 7, 1, 2>(g, x, dy),
                7 => dw_impl::<Avx512, 7, 7, 1, 1>(g, x, dy),
                _ => dw_impl::<Avx512, 5, 5, 5, 1>(g, x, dy),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dw_avx2(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
        unsafe {
            match g.kh {
                3 => dw_impl::<Avx2, 3, 3, 3, 1>(g, x, dy),
                7 => dw_impl::<Avx2, 7, 7, 1, 1>(g, x, dy),
                _ => dw_impl::<Avx2, 5, 5, 1, 2>(g, x, dy),
            }
        }
    }

    /// # Safety
    /// `isa` must run on this CPU, and the filters must be 3×3, 5×5 or 7×7.
    pub(super) unsafe fn weight_grad(isa: Isa, g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
        unsafe {
            match isa {
                Isa::Avx512 => dw_avx512(g, x, dy),
                Isa::Avx2 => dw_avx2(g, x, dy),
            }
        }
    }
}
