//! The layouts the direct kernels read: zero-padded images, weights with a channel axis last (in the lanes),
//! dY with its channels last, and the L × L block transposes between channel-major and pixel-major data.
// Raw pointers in the vector copies, bounds asserted or sliced before them.
#![allow(unsafe_code)]

use crate::Geom;

/// The weight [co][ci][kh][kw] laid out [ci][kh][kw][co], the output channels last (the forward kernels).
pub(super) fn transpose_w(w: &[f32], co: usize, ci: usize, kh: usize, kw: usize) -> Vec<f32> {
    let k = ci * kh * kw;
    let mut wt = vec![0.0f32; k * co];
    for c in 0..co {
        for r in 0..k {
            wt[r * co + c] = w[c * k + r];
        }
    }
    wt
}

/// The weight [co][ci][kh][kw] laid out [co][kh][kw][ci], the input channels in the lanes for dX; `flip` turns
/// each filter by 180° (dX at stride 1 runs the forward kernel over dY with the flipped filters).
pub(super) fn input_channels_last(g: &Geom, w: &[f32], flip: bool) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut wt = vec![0.0f32; g.co * taps * g.ci];
    for (c, filters) in w.chunks_exact(g.ci * taps).enumerate().take(g.co) {
        for (d, filter) in filters.chunks_exact(taps).enumerate() {
            for (t, &value) in filter.iter().enumerate() {
                // Tap (i, j) of a flipped filter is tap (kh − 1 − i, kw − 1 − j) of the filter: index taps − 1 − t.
                let at = if flip { taps - 1 - t } else { t };
                wt[(c * taps + at) * g.ci + d] = value;
            }
        }
    }
    wt
}

#[cfg(target_arch = "x86_64")]
pub(crate) use vector::*;

#[cfg(target_arch = "x86_64")]
mod vector {
    use crate::simd::Vector;

    /// Zero-padded copy of one image: [c][hp][wpp] with the data at (pad, pad). Only the data is written: `out`
    /// must hold zeros around it, as a fresh zeroed buffer does and one only ever written by this function with the
    /// same geometry still does (clearing the whole buffer for every image was most of a `wide` step's memset).
    /// Rows are copied a vector at a time: `copy_from_slice` called `memmove` once per row (a 14-wide row costs the
    /// call more than the copy: 1.6 % of a `wide` step).
    ///
    /// # Safety
    /// The CPU must run `S`'s instruction set.
    #[inline(always)]
    pub(crate) unsafe fn pad_image<S: Vector>(
        x: &[f32],
        c: usize,
        h: usize,
        w: usize,
        pad: usize,
        hp: usize,
        wpp: usize,
        out: &mut [f32],
    ) {
        for ch in 0..c {
            for r in 0..h {
                let src = &x[(ch * h + r) * w..(ch * h + r + 1) * w];
                let d0 = (ch * hp + r + pad) * wpp + pad;
                let dst = &mut out[d0..d0 + w];
                // SAFETY: `src` and `dst` hold `w` values each.
                unsafe { S::copy(src.as_ptr(), dst.as_mut_ptr(), w) };
            }
        }
    }

    /// dY [b][co][pixel] into [b][pixel][cpad]: L × L blocks (L channels × L pixels) transposed in registers,
    /// the pixels past the last whole block a gathered vector of channels at a time, the channels past the last
    /// whole vector one by one (the value-by-value loop was about 7 % of `wide`'s dW).
    ///
    /// # Safety
    /// The CPU must run `S`'s vectors.
    #[inline(always)]
    pub(crate) unsafe fn transpose_channels<S: Vector>(
        dy: &[f32],
        images: usize,
        co: usize,
        pixels: usize,
        cpad: usize,
        dyt: &mut [f32],
    ) {
        let whole = co / S::L * S::L;
        assert!(dy.len() >= images * co * pixels && dyt.len() >= images * pixels * cpad && cpad >= co);
        assert!(i32::try_from(pixels * S::L).is_ok());
        for b in 0..images {
            let (src, out) = (&dy[b * co * pixels..(b + 1) * co * pixels], &mut dyt[b * pixels * cpad..]);
            let whole_pixels = pixels / S::L * S::L;
            for c0 in (0..whole).step_by(S::L) {
                for p0 in (0..whole_pixels).step_by(S::L) {
                    // SAFETY: the block reads src[(c0 + i)·pixels + p0 + j] and writes out[(p0 + j)·cpad + c0 + i]
                    // for i, j < L, within c0 + L ≤ co ≤ cpad and p0 + L ≤ pixels.
                    unsafe {
                        let block = src.as_ptr().add(c0 * pixels + p0);
                        S::transpose_store(block, pixels, out.as_mut_ptr().add(p0 * cpad + c0), cpad, S::L);
                    }
                }
                for p in whole_pixels..pixels {
                    // SAFETY: lane i reads src[(c0 + i)·pixels + p] with c0 + i < co and p < pixels, and the
                    // store writes out[p·cpad + c0 .. + L] with c0 + L ≤ co ≤ cpad (asserted above).
                    unsafe {
                        S::store(
                            out.as_mut_ptr().add(p * cpad + c0),
                            S::gather(src.as_ptr().add(c0 * pixels + p), pixels),
                        )
                    };
                }
            }
            for c in whole..co {
                for (p, &v) in src[c * pixels..(c + 1) * pixels].iter().enumerate() {
                    out[p * cpad + c] = v;
                }
            }
        }
    }

    /// One output row from its block buffer: `yt` [pixel][channel] (whole vectors of pixels) to `wo` values of
    /// each of `channels` planes, the first at `out`, the next `plane` values on; L × L blocks transposed in
    /// registers (the scalar copy took about 5 % of `wide`'s second layer, 64 channels × 14 pixels a row;
    /// a gather per channel lost to it).
    ///
    /// # Safety
    /// The CPU runs `S`; `channels` is a multiple of L; `yt` holds `wo.div_ceil(L)·L·channels` values;
    /// `out + c·plane + wo` is writable for each c < channels.
    #[inline(always)]
    pub(crate) unsafe fn transpose_row<S: Vector>(yt: &[f32], channels: usize, wo: usize, out: *mut f32, plane: usize) {
        debug_assert!(yt.len() >= wo.div_ceil(S::L) * S::L * channels && channels.is_multiple_of(S::L));
        for ow0 in (0..wo).step_by(S::L) {
            let n = S::L.min(wo - ow0);
            for c0 in (0..channels).step_by(S::L) {
                // SAFETY: as the caller promises.
                unsafe {
                    let (block, to) = (yt.as_ptr().add(ow0 * channels + c0), out.add(c0 * plane + ow0));
                    if n > 2 {
                        S::transpose_store(block, channels, to, plane, n);
                    } else {
                        // A block for one or two pixels costs more than copying them.
                        for c in 0..S::L {
                            for p in 0..n {
                                *to.add(c * plane + p) = *block.add(p * channels + c);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::direct::Isa;
    use crate::simd::{Avx2, Avx512};

    /// [`transpose_row`] for `S`, compiled with its instruction set.
    macro_rules! row_with {
        ($name:ident, $s:ty, $features:literal) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(yt: &[f32], channels: usize, wo: usize, out: &mut [f32], plane: usize) {
                assert!(out.len() >= (channels - 1) * plane + wo);
                // SAFETY: the caller checked the CPU; the sizes as asserted here and by the test.
                unsafe { transpose_row::<$s>(yt, channels, wo, out.as_mut_ptr(), plane) }
            }
        };
    }
    row_with!(row_avx512, Avx512, "avx512f");
    row_with!(row_avx2, Avx2, "avx2");

    #[target_feature(enable = "avx512f")]
    unsafe fn channels_avx512(dy: &[f32], images: usize, co: usize, pixels: usize, cpad: usize, out: &mut [f32]) {
        // SAFETY: the caller checked the CPU.
        unsafe { transpose_channels::<Avx512>(dy, images, co, pixels, cpad, out) }
    }
    #[target_feature(enable = "avx2")]
    unsafe fn channels_avx2(dy: &[f32], images: usize, co: usize, pixels: usize, cpad: usize, out: &mut [f32]) {
        // SAFETY: the caller checked the CPU.
        unsafe { transpose_channels::<Avx2>(dy, images, co, pixels, cpad, out) }
    }

    /// Every row width from 1 to 40 pixels (one pixel, a part of a vector, whole vectors and a part), one to
    /// three vectors of channels, against the value-by-value definitions; the values between planes and past
    /// the row stay untouched.
    #[test]
    fn block_transposes_move_every_value_where_the_plain_loop_does() {
        let mut checked = Vec::new();
        for (isa, lanes) in [(Isa::Avx512, 16usize), (Isa::Avx2, 8)] {
            if !isa.runs_here() {
                continue;
            }
            checked.push(isa);
            for wo in 1_usize..=40 {
                for channels in [lanes, 2 * lanes, 3 * lanes] {
                    let yt: Vec<f32> = (0..wo.div_ceil(lanes) * lanes * channels).map(|i| i as f32).collect();
                    let plane = wo + 3;
                    let mut out = vec![-1.0; channels * plane];
                    // SAFETY: the CPU runs `isa`; `yt` holds whole vectors of pixels; `out` every plane's row.
                    unsafe {
                        match isa {
                            Isa::Avx512 => row_avx512(&yt, channels, wo, &mut out, plane),
                            Isa::Avx2 => row_avx2(&yt, channels, wo, &mut out, plane),
                        }
                    }
                    for c in 0..channels {
                        for p in 0..plane {
                            let expected = if p < wo { yt[p * channels + c] } else { -1.0 };
                            assert_eq!(out[c * plane + p], expected, "{isa:?} row of {wo}, channel {c}, pixel {p}");
                        }
                    }
                }
                // dY [b][co][pixel] to [b][pixel][cpad], with channels past the last whole vector.
                let (images, co, cpad) = (2, lanes + 3, 2 * lanes);
                let dy: Vec<f32> = (0..images * co * wo).map(|i| i as f32).collect();
                let mut out = vec![-1.0; images * wo * cpad];
                // SAFETY: the CPU runs `isa`.
                unsafe {
                    match isa {
                        Isa::Avx512 => channels_avx512(&dy, images, co, wo, cpad, &mut out),
                        Isa::Avx2 => channels_avx2(&dy, images, co, wo, cpad, &mut out),
                    }
                }
                for b in 0..images {
                    for p in 0..wo {
                        for c in 0..cpad {
                            let expected = if c < co { dy[(b * co + c) * wo + p] } else { -1.0 };
                            assert_eq!(out[(b * wo + p) * cpad + c], expected, "{isa:?} dY of {wo}, pixel {p}");
                        }
                    }
                }
            }
        }
        println!("block transposes checked on {checked:?}");
    }
}
