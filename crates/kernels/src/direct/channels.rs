//! The forward kernel with output channels in the vector lanes, for rows that leave the column kernel's lanes
//! idle: a 14-wide map fills 14 of AVX-512's 16 lanes, a 10-wide one 10. Here each accumulator holds one output
//! pixel for a vector of channels, each block is V channel vectors × P pixels of one output row with P picked
//! to fit the row, and per tap V weight loads and P broadcast inputs feed V·P FMAs (with one channel vector at
//! stride 1, three taps at a time input by input, so each broadcast feeds up to three FMAs). The block's results go
//! through a small [pixel][channel] buffer that is transposed to NCHW once per output row, which is why it only
//! pays where each output sums many taps. It serves dX as well (the forward kernel on dY), and it is the direct
//! forward at strides above 1 (each pixel's inputs `stride` apart in the padded row). A strided dX runs the same
//! blocks phase by phase: the dX pixels one stride apart take the same taps and read adjacent dY values.
// Same conventions as `direct.rs`: raw pointers in the innermost loops, bounds asserted before them.
#![allow(unsafe_code, clippy::needless_range_loop, clippy::too_many_arguments)]

use super::Isa;
use crate::Geom;

/// Taps (input channels × kernel rows × columns) each output sums below which the column kernel stays: the
/// transpose costs about what a few taps do, and a one-channel 5×5 layer (25 taps) ran at 39 % of the FMA peak
/// this way against the column kernel's 71 %.
const MIN_TAPS: usize = 64;

/// Most pixels per block for `vectors` channel vectors: accumulators, the weights and a broadcast within the
/// registers (32 on AVX-512, 16 on AVX2).
fn max_pixels(isa: Isa, vectors: usize) -> usize {
    match (isa, vectors) {
        (Isa::Avx512, _) => 14,
        (Isa::Avx2, 1) => 12,
        (Isa::Avx2, _) => 6,
    }
}

/// Channel vectors per block for the `channels` in the lanes: two where they come in pairs of vectors (each
/// broadcast feeds two FMAs).
fn vectors(isa: Isa, channels: usize) -> usize {
    if channels.is_multiple_of(2 * isa.lanes()) { 2 } else { 1 }
}

/// Pixels per block for a row of `wo`: the fewest computed (the last block of a row may run past it), then
/// the widest block; at least 4 where the row has them (each block loads its weights once: blocks of 2 for a
/// 26-wide row made an AVX2 dX 2.4× slower than 9), at least 2.
fn pixels(wo: usize, most: usize) -> usize {
    let fewest = wo.clamp(2, 4).min(most);
    (fewest..=most.max(fewest)).min_by_key(|&p| (wo.div_ceil(p) * p, usize::MAX - p)).unwrap_or(fewest)
}

/// Lanes the column kernel fills for a row of `wo` outputs: its blocks are whole vectors of columns.
fn column_lanes_used(isa: Isa, wo: usize) -> f64 {
    let span = match isa {
        Isa::Avx512 => 16,
        // AVX2's column kernel takes two vectors per block, or one for rows of at most one vector.
        Isa::Avx2 if wo <= 8 => 8,
        Isa::Avx2 => 16,
    };
    wo as f64 / (wo.div_ceil(span) * span) as f64
}

/// Whether this kernel takes `g` (a square filter the direct forward takes): whole vectors of output channels,
/// enough taps per output, and at stride 1 fewer idle lanes than the column kernel's (which takes no other).
pub(super) fn takes(isa: Isa, g: &Geom) -> bool {
    let wo = g.wo();
    if !g.co.is_multiple_of(isa.lanes()) || g.ci * g.kh * g.kw < MIN_TAPS || wo == 0 {
        return false;
    }
    if g.stride > 1 {
        // The column kernel takes no stride: the choice is against im2col + gemm, which this beats.
        return true;
    }
    let p = pixels(wo, max_pixels(isa, vectors(isa, g.co)));
    let used = wo as f64 / (wo.div_ceil(p) * p) as f64;
    used > column_lanes_used(isa, wo) + margin(isa)
}

/// Whether the strided dX below takes `g`: a stride above 1, whole vectors of input channels (dX's lanes), and
/// enough taps per input pixel (output channels × the taps of its phase, about k²/s²).
/// AVX-512 only: with AVX2's separate broadcast loads it lost to gemm + col2im (16 → 32 3×3 stride 2 on 13×13
/// maps: 418 against 312 µs; on AVX-512 237 against 318).
pub(super) fn takes_strided_input_grad(isa: Isa, g: &Geom) -> bool {
    let phase_taps = g.kh.div_ceil(g.stride) * g.kw.div_ceil(g.stride);
    let shape = g.ci.is_multiple_of(isa.lanes()) && g.co * phase_taps >= MIN_TAPS && g.ho() > 0 && g.wo() > 0;
    isa == Isa::Avx512 && g.stride > 1 && shape
}

/// Pixels of one phase in a row of `w` at stride `s` (at most).
fn phase_pixels(w: usize, s: usize) -> usize {
    w.div_ceil(s.max(1))
}

/// How many more of the lanes this kernel must fill than the column kernel does to take a shape. AVX2 has no
/// broadcast inside an FMA, so each FMA here costs a broadcast load more: with 8 lanes it lost where the column
/// kernel fills 7 of 8 (a 14-wide 5×5 or 3×3 layer: 476 → 726 and 1,686 → 2,141 µs) and won from 5 of 8 down
/// (a 10-wide one: 150 → 100 µs). AVX-512 folds the broadcast into the FMA and wins wherever it fills more.
fn margin(isa: Isa) -> f64 {
    match isa {
        Isa::Avx512 => 0.0,
        Isa::Avx2 => 0.25,
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod vector {
    use super::{Geom, Isa, max_pixels, phase_pixels, pixels, vectors};
    use crate::direct::layout::{pad_image, transpose_row};
    use crate::simd::{Avx2, Avx512, Vector};

    /// The block once for each listed value of `q` below the bound, `q` a constant in each copy.
    macro_rules! unrolled {
        ($q:ident < $n:expr; [$($value:literal)*] $body:block) => {
            $({
                let $q: usize = $value;
                if $q < $n $body
            })*
        };
    }

    /// G adjacent taps of a kernel row for P pixels at stride 1, input by input: each input value is broadcast
    /// once and feeds every pixel whose window holds it at one of these taps (the G taps' weights stay in
    /// registers). Tap by tap, each FMA took a broadcast load of its own, and with one channel vector (one FMA
    /// per broadcast) the loads, not the FMAs, set the pace on a CPU with two FMA units; G = 3 keeps the unrolled
    /// block small enough that the accumulators stay in registers.
    #[inline(always)]
    unsafe fn tap_group<S: Vector, const V: usize, const P: usize, const G: usize>(
        xs: *const f32,
        ws: *const f32,
        co: usize,
        acc: &mut [[S::V; P]; V],
    ) {
        unsafe {
            let mut wv = [[S::zero(); V]; G];
            for t in 0..G {
                for v in 0..V {
                    wv[t][v] = S::load(ws.add(t * co + v * S::L));
                }
            }
            // Written out for each q (P + G − 1 ≤ 16): as a loop the compiler kept it rolled for P = 14 and indexed
            // the accumulators in memory (2.5× slower).
            unrolled!(q < P + G - 1; [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15] {
                let input = S::splat(*xs.add(q));
                for t in 0..G {
                    if q >= t && q - t < P {
                        for v in 0..V {
                            acc[v][q - t] = S::fmadd(wv[t][v], input, acc[v][q - t]);
                        }
                    }
                }
            });
        }
    }

    /// y[b][co][oh][ow] = bias[co] + Σ_{ci,i,j} wt[(ci,i,j)][co] · xpad[b][ci][oh+i][ow+j], `wt` laid out
    /// [ci][kh][kw][co]; blocks of V channel vectors × P pixels.
    #[inline(always)]
    unsafe fn fwd_impl<S: Vector, const V: usize, const P: usize>(
        g: &Geom,
        x: &[f32],
        wt: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let Geom { b: b_count, ci, h, w, co, kh, kw, pad, stride } = *g;
        let (ho, wo) = (g.ho(), g.wo());
        let blocks = wo.div_ceil(P);
        let row = blocks * P;
        let hp = h + 2 * pad;
        // Wide enough for the last block's last tap and for the padded image (a stride may skip its end).
        let wpp = ((row - 1) * stride + kw).max(w + 2 * pad);
        let mut xpad = vec![0.0f32; ci * hp * wpp];
        // One output row's blocks, [ow (whole blocks)][co]: small enough to stay in L1 for its transpose.
        let mut yt = vec![0.0f32; row.div_ceil(S::L) * S::L * co];
        assert!(co.is_multiple_of(V * S::L) && wt.len() >= ci * kh * kw * co && y.len() >= b_count * co * ho * wo);
        assert!(bias.is_none_or(|bias| bias.len() >= co));
        // The last tap of a row's last block reads xpad[ci - 1][(ho - 1)·stride + kh - 1][(row - 1)·stride + kw - 1].
        assert!((ho - 1) * stride + kh <= hp && stride >= 1);
        for b in 0..b_count {
            // SAFETY: this kernel runs on `S`'s instruction set.
            unsafe { pad_image::<S>(&x[b * ci * h * w..(b + 1) * ci * h * w], ci, h, w, pad, hp, wpp, &mut xpad) };
            for oh in 0..ho {
                for ow0 in (0..row).step_by(P) {
                    for co0 in (0..co).step_by(V * S::L) {
                        // SAFETY: the asserts above bound every offset: c_in < ci, oh·stride + i < hp, (ow0 + p)·stride
                        // + j < wpp, co0 + V·L ≤ co, and the stores stay within row·co.
                        unsafe {
                            let mut acc = [[S::zero(); P]; V];
                            if let Some(bias) = bias {
                                for v in 0..V {
                                    acc[v] = [S::load(bias.as_ptr().add(co0 + v * S::L)); P];
                                }
                            }
                            for c_in in 0..ci {
                                for i in 0..kh {
                                    let xs = xpad.as_ptr().add((c_in * hp + oh * stride + i) * wpp + ow0 * stride);
                                    let ws = wt.as_ptr().add((c_in * kh + i) * kw * co + co0);
                                    if V == 1 && stride == 1 {
                                        // Taps three at a time, input by input (see `tap_group`).
                                        let mut j = 0;
                                        while j + 3 <= kw {
                                            tap_group::<S, V, P, 3>(xs.add(j), ws.add(j * co), co, &mut acc);
                                            j += 3;
                                        }
                                        match kw - j {
                                            2 => tap_group::<S, V, P, 2>(xs.add(j), ws.add(j * co), co, &mut acc),
                                            1 => tap_group::<S, V, P, 1>(xs.add(j), ws.add(j * co), co, &mut acc),
                                            _ => {}
                                        }
                                        continue;
                                    }
                                    for j in 0..kw {
                                        let mut wv = [S::zero(); V];
                                        for v in 0..V {
                                            wv[v] = S::load(ws.add(j * co + v * S::L));
                                        }
                                        for p in 0..P {
                                            let input = S::splat(*xs.add(j + p * stride));
                                            for v in 0..V {
                                                acc[v][p] = S::fmadd(wv[v], input, acc[v][p]);
                                            }
                                        }
                                    }
                                }
                            }
                            for p in 0..P {
                                for v in 0..V {
                                    S::store(yt.as_mut_ptr().add((ow0 + p) * co + co0 + v * S::L), acc[v][p]);
                                }
                            }
                        }
                    }
                }
                // SAFETY: yt holds whole vectors of pixels (the gathers stay within it), and each store the
                // first pixels of row oh of a plane of image b (asserted above).
                unsafe { transpose_row::<S>(&yt, co, wo, y.as_mut_ptr().add(b * co * ho * wo + oh * wo), ho * wo) };
            }
        }
    }

    /// dX of a strided layer: dx[b][ci][y][x] = Σ_{co,i,j} w[co][ci][i][j] · dy[b][co][oy][ox] over the taps with
    /// y = oy·s + i − pad and x = ox·s + j − pad. Output pixels fall into s × s phases ((y + pad) mod s, (x + pad)
    /// mod s); a phase's pixels take only the taps of that phase, and P of them in a row (s apart) read P
    /// adjacent values of a dY row: the forward's blocks, input channels in the lanes. `wt` is laid out
    /// [co][kh][kw][ci]. dY is copied into a zero border wide enough for every tap that falls outside it.
    #[inline(always)]
    unsafe fn strided_dx_impl<S: Vector, const V: usize, const P: usize>(
        g: &Geom,
        dy: &[f32],
        wt: &[f32],
        dx: &mut [f32],
    ) {
        let Geom { b: b_count, ci, h, w, co, kh, kw, pad, stride: s } = *g;
        let (ho, wo) = (g.ho(), g.wo());
        // dY row oy is stored at oy + border: the lowest index a tap asks for is −⌈(k − 1 − pad)/s⌉.
        let border = (kh.max(kw) - 1).saturating_sub(pad).div_ceil(s);
        let hp = border + ((h - 1 + pad) / s).max(ho - 1) + 1;
        // A row's last block may run P − 1 phase pixels past the row.
        let wpp = border + ((w - 1 + pad) / s).max(wo - 1) + P + 1;
        let mut dyp = vec![0.0f32; co * hp * wpp];
        let row_len = w.div_ceil(s) * s + P * s;
        // One dX row, [x (room for a whole last block of each phase)][ci].
        let mut row = vec![0.0f32; row_len.max(w.div_ceil(S::L) * S::L) * ci];
        assert!(ci.is_multiple_of(V * S::L) && wt.len() >= co * kh * kw * ci && dx.len() >= b_count * ci * h * w);
        assert!(dy.len() >= b_count * co * ho * wo && s >= 2);
        for b in 0..b_count {
            // SAFETY: this kernel runs on `S`'s instruction set.
            unsafe {
                pad_image::<S>(&dy[b * co * ho * wo..(b + 1) * co * ho * wo], co, ho, wo, border, hp, wpp, &mut dyp)
            };
            for y in 0..h {
                let row_phase = (y + pad) % s;
                for col_phase in 0..s {
                    // The first x of this phase, and how many there are in the row.
                    let first = (col_phase + s - pad % s) % s;
                    if first >= w {
                        continue;
                    }
                    let count = (w - first).div_ceil(s);
                    for q0 in (0..count).step_by(P) {
                        let x0 = first + q0 * s;
                        for ci0 in (0..ci).step_by(V * S::L) {
                            // SAFETY: every dY index is (y + pad − i)/s + border ∈ [0, hp) by rows and
                            // (x0 + pad − j)/s + border + p < wpp by columns (border and wpp above); the weights
                            // stay within co·kh·kw·ci, the row buffer within row_len·ci.
                            unsafe {
                                let mut acc = [[S::zero(); P]; V];
                                for c in 0..co {
                                    for i in (row_phase..kh).step_by(s) {
                                        let oy = (y + pad + border * s - i) / s;
                                        let dyr = dyp.as_ptr().add((c * hp + oy) * wpp);
                                        for j in (col_phase..kw).step_by(s) {
                                            let ox = (x0 + pad + border * s - j) / s;
                                            let ws = wt.as_ptr().add(((c * kh + i) * kw + j) * ci + ci0);
                                            let mut wv = [S::zero(); V];
                                            for v in 0..V {
                                                wv[v] = S::load(ws.add(v * S::L));
                                            }
                                            for p in 0..P {
                                                let grad = S::splat(*dyr.add(ox + p));
                                                for v in 0..V {
                                                    acc[v][p] = S::fmadd(wv[v], grad, acc[v][p]);
                                                }
                                            }
                                        }
                                    }
                                }
                                for p in 0..P {
                                    for v in 0..V {
                                        S::store(row.as_mut_ptr().add((x0 + p * s) * ci + ci0 + v * S::L), acc[v][p]);
                                    }
                                }
                            }
                        }
                    }
                }
                // SAFETY: `row` holds whole vectors of pixels, each store the first pixels of row y of a plane
                // of image b (asserted above).
                unsafe { transpose_row::<S>(&row, ci, w, dx.as_mut_ptr().add(b * ci * h * w + y * w), h * w) };
            }
        }
    }

    /// Dispatches on the block's channel vectors and pixels (V, P) to the kernel compiled for them.
    macro_rules! dispatch {
        ($f:ident, $s:ty, $args:tt, $v:expr, $p:expr; $($vv:literal: [$($pp:literal)*])*) => {
            match ($v, $p) {
                $($(($vv, $pp) => $f::<$s, $vv, $pp> $args,)*)*
                // Not reached (`pixels` stays within `max_pixels`); one vector × 2 pixels fits any row.
                _ => $f::<$s, 1, 2> $args,
            }
        };
    }

    #[target_feature(enable = "avx512f,fma")]
    unsafe fn fwd_avx512(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        let v = vectors(Isa::Avx512, g.co);
        let p = pixels(g.wo(), max_pixels(Isa::Avx512, v));
        unsafe {
            dispatch!(fwd_impl, Avx512, (g, x, wt, bias, y), v, p;
                1: [2 3 4 5 6 7 8 9 10 11 12 13 14]
                2: [2 3 4 5 6 7 8 9 10 11 12 13 14])
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn fwd_avx2(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        let v = vectors(Isa::Avx2, g.co);
        let p = pixels(g.wo(), max_pixels(Isa::Avx2, v));
        unsafe {
            dispatch!(fwd_impl, Avx2, (g, x, wt, bias, y), v, p;
                1: [2 3 4 5 6 7 8 9 10 11 12]
                2: [2 3 4 5 6])
        }
    }

    /// dX of a strided layer, every value of `dx` written; `wt` is the weight laid out [co][kh][kw][ci]. AVX-512
    /// only ([`super::takes_strided_input_grad`]).
    ///
    /// # Safety
    /// The CPU must run AVX-512F, and [`super::takes_strided_input_grad`] must take `g`.
    #[target_feature(enable = "avx512f,fma")]
    pub(crate) unsafe fn strided_input_grad(g: &Geom, dy: &[f32], wt: &[f32], dx: &mut [f32]) {
        let v = vectors(Isa::Avx512, g.ci);
        let p = pixels(phase_pixels(g.w, g.stride), max_pixels(Isa::Avx512, v));
        unsafe {
            dispatch!(strided_dx_impl, Avx512, (g, dy, wt, dx), v, p;
                1: [2 3 4 5 6 7 8 9 10 11 12 13 14]
                2: [2 3 4 5 6 7 8 9 10 11 12 13 14])
        }
    }

    /// # Safety
    /// `isa` must run on this CPU, and [`super::takes`] must take `g`.
    pub(crate) unsafe fn forward(isa: Isa, g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        unsafe {
            match isa {
                Isa::Avx512 => fwd_avx512(g, x, wt, bias, y),
                Isa::Avx2 => fwd_avx2(g, x, wt, bias, y),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fit_the_row() {
        assert_eq!(pixels(14, 14), 14);
        assert_eq!(pixels(28, 14), 14);
        assert_eq!(pixels(10, 14), 10);
        assert_eq!(pixels(24, 14), 12);
        assert_eq!(pixels(24, 6), 6);
        assert_eq!(pixels(1, 14), 2);
        assert_eq!(pixels(3, 14), 3);
        assert_eq!(pixels(15, 12), 5);
        assert_eq!(pixels(17, 12), 9);
        assert_eq!(pixels(26, 12), 9);
        assert_eq!(pixels(26, 14), 13);
        assert_eq!(pixels(26, 6), 4);
    }
}
