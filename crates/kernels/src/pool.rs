//! Max-pooling with a square window and the same stride (floor mode, no padding) on NCHW planes, as burn-flex
//! defines it: the first maximum of a window wins, and a NaN always wins (the last NaN). The forward pass keeps,
//! per output, which cell won (row-major in its window), so the backward pass is a scatter. 2×2 has its own
//! branch-free loop (written out for AVX-512 where the CPU has it); other sizes up to [`MAX_WINDOW`] share a plain
//! one.

/// The largest window side: a winner's index in its window must fit a byte.
pub const MAX_WINDOW: usize = 15;

/// Pools `planes` planes of `h`×`w` values: the outputs, and per output the winning cell (0..4, row-major).
pub fn forward(x: &[f32], planes: usize, h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    forward_sized(x, planes, h, w, 2)
}

/// Pools with a `size`×`size` window and stride (2 ≤ `size` ≤ [`MAX_WINDOW`]): the outputs and the winners.
pub fn forward_sized(x: &[f32], planes: usize, h: usize, w: usize, size: usize) -> (Vec<f32>, Vec<u8>) {
    let outputs = planes * (h / size.max(1)) * (w / size.max(1));
    let (mut out, mut arg) = (vec![0.0f32; outputs], vec![0u8; outputs]);
    forward_into(x, planes, h, w, size, &mut out, &mut arg);
    (out, arg)
}

/// [`forward_sized`] into `out` and `arg` (one value per output each), so that threads pooling parts of the
/// planes write straight into one output.
pub fn forward_into(x: &[f32], planes: usize, h: usize, w: usize, size: usize, out: &mut [f32], arg: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if size == 2 && crate::Isa::Avx512.runs_here() {
        // SAFETY: the CPU runs AVX-512F.
        return unsafe { vector::forward_2x2_avx512(x, planes, h, w, out, arg) };
    }
    if size == 2 {
        forward_2x2(x, planes, h, w, out, arg);
    } else {
        forward_general(x, planes, h, w, size.clamp(1, MAX_WINDOW), out, arg);
    }
}

/// The branch-free 2×2 loop (built for AVX-512 with `target_feature` it ran 1.7–2.4× slower: left generic).
fn forward_2x2(x: &[f32], planes: usize, h: usize, w: usize, out: &mut [f32], arg: &mut [u8]) {
    let (ho, wo) = (h / 2, w / 2);
    for p in 0..planes {
        let xp = &x[p * h * w..(p + 1) * h * w];
        for oh in 0..ho {
            let r0 = &xp[2 * oh * w..2 * oh * w + w];
            let r1 = &xp[(2 * oh + 1) * w..(2 * oh + 1) * w + w];
            let o = &mut out[(p * ho + oh) * wo..(p * ho + oh + 1) * wo];
            let a_ = &mut arg[(p * ho + oh) * wo..(p * ho + oh + 1) * wo];
            // Branch-free select chain (random argmax positions would mispredict a branchy loop); iterators
            // without bounds checks let LLVM vectorise it.
            for ((o, k_out), (p0, p1)) in
                o.iter_mut().zip(a_.iter_mut()).zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)))
            {
                use std::hint::select_unpredictable as sel;
                let (a, b, c, d) = (p0[0], p0[1], p1[0], p1[1]);
                let t = (b > a) | b.is_nan();
                let (m, k) = (sel(t, b, a), t as u8);
                let t = (c > m) | c.is_nan();
                let (m, k) = (sel(t, c, m), sel(t, 2, k));
                let t = (d > m) | d.is_nan();
                let (m, k) = (sel(t, d, m), sel(t, 3, k));
                *o = m;
                *k_out = k;
            }
        }
    }
}

/// The 2×2 loop written out for AVX-512: 16 outputs at a time, each row's even and odd cells pulled apart by
/// permutes, the same select chain on masks (the branch-free loop above vectorises to 4 lanes, and built with
/// AVX-512 enabled it ran slower).
#[cfg(target_arch = "x86_64")]
mod vector {
    #![allow(unsafe_code)]
    use std::arch::x86_64::*;

    use crate::simd::first_lanes as first;

    /// [`super::forward_2x2`] on AVX-512: the same outputs and winners, NaNs and ties included.
    ///
    /// # Safety
    /// The CPU must run AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_2x2_avx512(
        x: &[f32],
        planes: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        arg: &mut [u8],
    ) {
        let (ho, wo) = (h / 2, w / 2);
        assert!(x.len() >= planes * h * w && out.len() >= planes * ho * wo && arg.len() >= planes * ho * wo);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (one, two, three) = (_mm512_set1_epi32(1), _mm512_set1_epi32(2), _mm512_set1_epi32(3));
        for p in 0..planes {
            for oh in 0..ho {
                for ow0 in (0..wo).step_by(16) {
                    let n = (wo - ow0).min(16);
                    let (low, high) = (first(2 * n), first((2 * n).saturating_sub(16)));
                    // SAFETY: the loads read cells 2·ow0 .. 2·(ow0 + n) of rows 2·oh and 2·oh + 1 (masked past
                    // them, and 2·wo ≤ w); the stores write outputs ow0 .. ow0 + n of row oh (asserted above).
                    unsafe {
                        let r0 = x.as_ptr().add(p * h * w + 2 * oh * w + 2 * ow0);
                        let r1 = r0.add(w);
                        let pair = |row: *const f32| {
                            let (lo, hi) = (_mm512_maskz_loadu_ps(low, row), _mm512_maskz_loadu_ps(high, row.add(16)));
                            (_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi))
                        };
                        let ((a, b), (c, d)) = (pair(r0), pair(r1));
                        // t: the candidate beats the best so far, or is NaN (a NaN best stays unless one follows).
                        let beats = |v: __m512, best: __m512| {
                            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
                        };
                        let t = beats(b, a);
                        let (m, k) = (_mm512_mask_blend_ps(t, a, b), _mm512_maskz_mov_epi32(t, one));
                        let t = beats(c, m);
                        let (m, k) = (_mm512_mask_blend_ps(t, m, c), _mm512_mask_blend_epi32(t, k, two));
                        let t = beats(d, m);
                        let (m, k) = (_mm512_mask_blend_ps(t, m, d), _mm512_mask_blend_epi32(t, k, three));
                        let o = (p * ho + oh) * wo + ow0;
                        _mm512_mask_storeu_ps(out.as_mut_ptr().add(o), first(n), m);
                        _mm512_mask_cvtepi32_storeu_epi8(arg.as_mut_ptr().add(o).cast(), first(n), k);
                    }
                }
            }
        }
    }

    /// The input gradient of a 2×2 pool on AVX-512, every cell of `dx` written (the winner's gradient or a zero,
    /// as zeroing then scattering leaves it): 16 outputs at a time, each output's gradient and winner spread
    /// over its two columns by a permute and kept where the winner matches the cell. Zeroing the gradient first
    /// and scattering after went over it twice.
    ///
    /// # Safety
    /// The CPU must run AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_2x2_avx512(
        dy: &[f32],
        arg: &[u8],
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut [std::mem::MaybeUninit<f32>],
    ) {
        let (ho, wo) = (h / 2, w / 2);
        assert!(dy.len() >= planes * ho * wo && arg.len() >= planes * ho * wo && dx.len() >= planes * h * w);
        let spread = [
            _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
            _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15),
        ];
        // The cell each lane stands for, in its window: row 0 then row 1.
        let cells = [
            _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
            _mm512_setr_epi32(2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
        ];
        let d = dx.as_mut_ptr().cast::<f32>();
        for p in 0..planes {
            for oh in 0..ho {
                for ow0 in (0..wo).step_by(16) {
                    let n = (wo - ow0).min(16);
                    let o = (p * ho + oh) * wo + ow0;
                    // SAFETY: the loads read outputs o .. o + n (asserted above; o .. o + 16 where the slice holds
                    // them, else a copy);
                    // the stores write cells 2·ow0 .. 2·(ow0 + n) ≤ w of rows 2·oh and 2·oh + 1 of plane p.
                    unsafe {
                        let g = _mm512_maskz_loadu_ps(first(n), dy.as_ptr().add(o));
                        // Winners past the n-th (the next row's, when in the slice) are read and never stored.
                        let winners = if o + 16 <= arg.len() {
                            _mm512_cvtepu8_epi32(_mm_loadu_si128(arg.as_ptr().add(o).cast()))
                        } else {
                            let mut part = [0u8; 16];
                            part[..n].copy_from_slice(&arg[o..o + n]);
                            _mm512_cvtepu8_epi32(_mm_loadu_si128(part.as_ptr().cast()))
                        };
                        for (half, &index) in spread.iter().enumerate() {
                            let lanes = first((2 * n).saturating_sub(16 * half));
                            if lanes == 0 {
                                continue;
                            }
                            let (g, k) = (_mm512_permutexvar_ps(index, g), _mm512_permutexvar_epi32(index, winners));
                            for (row, &cell) in cells.iter().enumerate() {
                                let won = _mm512_cmpeq_epi32_mask(k, cell);
                                let at = d.add(p * h * w + (2 * oh + row) * w + 2 * ow0 + 16 * half);
                                _mm512_mask_storeu_ps(at, lanes, _mm512_maskz_mov_ps(won, g));
                            }
                        }
                    }
                }
                if w % 2 == 1 {
                    // The last column of an odd width is in no window.
                    for row in [2 * oh, 2 * oh + 1] {
                        dx[p * h * w + row * w + w - 1].write(0.0);
                    }
                }
            }
            // Rows past the last whole window (an odd height) are in none either.
            dx[p * h * w + 2 * ho * w..(p + 1) * h * w].fill(std::mem::MaybeUninit::new(0.0));
        }
    }
}

/// The plain loop for any window.
fn forward_general(x: &[f32], planes: usize, h: usize, w: usize, size: usize, out: &mut [f32], arg: &mut [u8]) {
    let (ho, wo) = (h / size, w / size);
    for p in 0..planes {
        let xp = &x[p * h * w..(p + 1) * h * w];
        for oh in 0..ho {
            for ow in 0..wo {
                let (mut best, mut winner) = (xp[oh * size * w + ow * size], 0u8);
                for i in 0..size {
                    let row = &xp[(oh * size + i) * w + ow * size..(oh * size + i) * w + (ow + 1) * size];
                    for (j, &v) in row.iter().enumerate() {
                        if (v > best) | v.is_nan() && (i, j) != (0, 0) {
                            (best, winner) = (v, (i * size + j) as u8);
                        }
                    }
                }
                out[(p * ho + oh) * wo + ow] = best;
                arg[(p * ho + oh) * wo + ow] = winner;
            }
        }
    }
}

/// The input gradient of a `size`×`size` pool: each output's gradient goes to the cell that won its window
/// (a scatter: the same loop serves every size), zero elsewhere.
pub fn backward_sized(dy: &[f32], arg: &[u8], planes: usize, h: usize, w: usize, size: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; planes * h * w];
    backward_into(dy, arg, planes, h, w, size, &mut dx);
    dx
}

/// [`backward_sized`] into `dx` (`planes·h·w` values, zeroed: only the winners are written).
pub fn backward_into(dy: &[f32], arg: &[u8], planes: usize, h: usize, w: usize, size: usize, dx: &mut [f32]) {
    // A constant window side turns the winner's row and column (k / size, k % size) into shifts and masks.
    match size.clamp(1, MAX_WINDOW) {
        2 => scatter::<2>(dy, arg, planes, h, w, 2, dx),
        3 => scatter::<3>(dy, arg, planes, h, w, 3, dx),
        size => scatter::<0>(dy, arg, planes, h, w, size, dx),
    }
}

/// The scatter for a window side `SIZE` known at compile time (0: `size`, known only at run time).
#[inline(always)]
fn scatter<const SIZE: usize>(dy: &[f32], arg: &[u8], planes: usize, h: usize, w: usize, size: usize, dx: &mut [f32]) {
    let size = if SIZE == 0 { size } else { SIZE };
    let (ho, wo) = (h / size, w / size);
    for p in 0..planes {
        for oh in 0..ho {
            for ow in 0..wo {
                let o = (p * ho + oh) * wo + ow;
                let k = usize::from(arg[o]);
                dx[p * h * w + (oh * size + k / size) * w + ow * size + k % size] = dy[o];
            }
        }
    }
}

/// The input gradient of a `size`×`size` pool over `planes` planes as a new vector, `per` planes to a run, the
/// runs side by side on the current rayon pool's threads: on AVX-512 a 2×2 pool's on rows of 8 or more written
/// whole in one pass, otherwise each run zeroed and scattered into while it is in its thread's cache.
pub fn backward_in_runs(dy: &[f32], arg: &[u8], [planes, h, w]: [usize; 3], size: usize, per: usize) -> Vec<f32> {
    let per = per.max(1);
    let outputs_per_plane = (h / size.max(1)) * (w / size.max(1));
    let outputs_of = |index: usize, count: usize| {
        let first = index * per * outputs_per_plane;
        first..(first + count * outputs_per_plane).min(dy.len().min(arg.len()))
    };
    #[cfg(target_arch = "x86_64")]
    // Rows of 3 outputs or fewer leave most of a vector's lanes idle: there the scatter was faster (7×7 planes
    // 6.9 against 9.8 µs for 512 of them; 8×8 11.1 against 8.7, 28×28 254 against 73).
    if size == 2 && w >= 8 && crate::Isa::Avx512.runs_here() && dy.len().min(arg.len()) >= planes * outputs_per_plane {
        let fill = |index: usize, part: &mut [std::mem::MaybeUninit<f32>]| {
            let count = part.len() / (h * w).max(1);
            let outputs = outputs_of(index, count);
            // SAFETY: the CPU runs AVX-512F; the kernel writes every cell of its `count` planes, which are all of
            // `part` (runs are whole planes).
            unsafe { vector::backward_2x2_avx512(&dy[outputs.clone()], &arg[outputs], count, h, w, part) };
        };
        // SAFETY: `fill` writes every value of its run, as above.
        return unsafe { crate::written_in_runs(planes * h * w, per * h * w, fill) };
    }
    crate::zeroed_then(planes * h * w, per * h * w, |index, part| {
        let count = part.len() / (h * w).max(1);
        let outputs = outputs_of(index, count);
        backward_into(&dy[outputs.clone()], &arg[outputs], count, h, w, size, part);
    })
}

/// The input gradient of a 2×2 pool: each output's gradient goes to the cell that won its window, zero elsewhere.
pub fn backward(dy: &[f32], arg: &[u8], planes: usize, h: usize, w: usize) -> Vec<f32> {
    backward_sized(dy, arg, planes, h, w, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_loop_picks_the_winners_the_2x2_loop_picks_nans_and_ties_included() {
        let (planes, h, w) = (3, 6, 8);
        let mut x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 5) as f32).collect();
        for at in [3, 17, 18, 40, 41, 50] {
            x[at] = f32::NAN;
        }
        let (mut plain, mut plain_arg) = (vec![0.0; planes * (h / 2) * (w / 2)], vec![0; planes * (h / 2) * (w / 2)]);
        forward_general(&x, planes, h, w, 2, &mut plain, &mut plain_arg);
        let same = |(fast, fast_arg): (Vec<f32>, Vec<u8>)| {
            assert_eq!(fast_arg, plain_arg);
            assert!(fast.iter().zip(&plain).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        };
        same(forward(&x, planes, h, w));
        let (mut out, mut arg) = (vec![0.0; plain.len()], vec![0; plain.len()]);
        forward_2x2(&x, planes, h, w, &mut out, &mut arg);
        same((out, arg));
    }

    /// The 2×2 backward that writes every cell against zeroing and scattering: the same bits on rows of 1 to 40
    /// outputs, odd widths and heights (their last column and row in no window), every cell written over a
    /// gradient full of NaNs; and split into runs of planes on two threads, as a step calls it.
    #[test]
    fn the_backward_that_writes_every_cell_leaves_what_the_scatter_leaves() {
        for (w, h) in (1..=81).step_by(4).zip([5, 4, 7, 2, 3, 6].into_iter().cycle()) {
            let planes = 3;
            let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 7) as f32 - 3.0).collect();
            let (_, arg) = forward(&x, planes, h, w);
            let dy: Vec<f32> = (0..arg.len()).map(|i| i as f32 * 0.25 - 1.5).collect();
            let expected = backward(&dy, &arg, planes, h, w);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            #[cfg(target_arch = "x86_64")]
            if crate::Isa::Avx512.runs_here() {
                let mut dx = vec![std::mem::MaybeUninit::new(f32::NAN); planes * h * w];
                // SAFETY: the CPU runs AVX-512F.
                unsafe { vector::backward_2x2_avx512(&dy, &arg, planes, h, w, &mut dx) };
                // SAFETY: every value was initialised (to NaN, then by the kernel).
                let got: Vec<f32> = dx.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(bits(&got), bits(&expected), "{h}×{w}");
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            for per in [1, 2, planes] {
                let got = pool.install(|| backward_in_runs(&dy, &arg, [planes, h, w], 2, per));
                assert_eq!(bits(&got), bits(&expected), "{h}×{w} in runs of {per}");
            }
        }
    }

    #[test]
    fn the_vector_loop_matches_the_plain_one_on_every_row_length() {
        // Rows of 1 to 40 outputs (one and a part of a vector, two and a part), an odd width (its last column
        // left out), ties, NaNs and negative values.
        for w in (2..=80).step_by(3).chain([32, 33, 64]) {
            let (planes, h) = (2, 5);
            let mut x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 7) as f32 - 3.0).collect();
            for at in (0..x.len()).step_by(11) {
                x[at] = f32::NAN;
            }
            let n = planes * (h / 2) * (w / 2);
            let (mut plain, mut plain_arg) = (vec![0.0; n], vec![0; n]);
            forward_general(&x, planes, h, w, 2, &mut plain, &mut plain_arg);
            let (fast, fast_arg) = forward(&x, planes, h, w);
            assert_eq!(fast_arg, plain_arg, "width {w}");
            assert!(fast.iter().zip(&plain).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "width {w}");
        }
    }
}
