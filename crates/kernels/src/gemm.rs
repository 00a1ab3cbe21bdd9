//! im2col + gemm conv2d kernels (f32, NCHW, any stride, square zero padding, dilation 1, groups 1): the portable
//! path, on any CPU, and the one for strides above 1. Shapes: x [B, Ci, H, W], w [Co, Ci, KH, KW],
//! y [B, Co, Ho, Wo], Ho = (H + 2p − KH) / s + 1.
// The `gemm` crate's entry point takes raw pointers and strides; every call below passes slices whose lengths
// cover the strided extents (checked by the shape arithmetic of `Geom` and by the gradient tests).
#![allow(unsafe_code)]
#![allow(clippy::too_many_arguments)]

use std::cell::RefCell;

use crate::Geom;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local scratch buffer of at least `len` floats (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Output vector of `len` floats (every element is overwritten by the caller; zeroing is cheap next to a gemm).
fn out_vec(len: usize) -> Vec<f32> {
    vec![0.0; len]
}

/// cols[K, HWo] for one image: row (c, i, j) holds x[c, oh·s+i-p, ow·s+j-p] (0 outside).
pub fn im2col(g: &Geom, x: &[f32], cols: &mut [f32]) {
    if g.stride > 1 {
        return im2col_strided(g, x, cols);
    }
    let (ho, wo, p) = (g.ho(), g.wo(), g.pad);
    let hw = ho * wo;
    let mut r = 0;
    for c in 0..g.ci {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[r * hw..(r + 1) * hw];
                // valid ow: 0 <= ow + j - p < W
                let ow0 = p.saturating_sub(j).min(wo);
                let ow1 = (g.w + p).saturating_sub(j).min(wo).max(ow0);
                for oh in 0..ho {
                    let dst = &mut row[oh * wo..(oh + 1) * wo];
                    let ih = oh + i;
                    if ih < p || ih - p >= g.h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[(ih - p) * g.w..(ih - p + 1) * g.w];
                    dst[..ow0].fill(0.0);
                    dst[ow1..].fill(0.0);
                    // A map narrower than the padding leaves no valid column for some taps (ow0 = ow1): then
                    // ow0 + j may fall short of p.
                    let iw0 = (ow0 + j).saturating_sub(p).min(g.w);
                    dst[ow0..ow1].copy_from_slice(&src[iw0..iw0 + (ow1 - ow0)]);
                }
                r += 1;
            }
        }
    }
}

/// The input row or column output position `o` reads for window tap `tap` at stride s (`None` in the padding).
fn source(o: usize, tap: usize, g: &Geom, size: usize) -> Option<usize> {
    (o * g.stride + tap).checked_sub(g.pad).filter(|&at| at < size)
}

/// The output positions `o0..o1` whose tap `tap` reads inside a side of `size` (0 ≤ o·s + tap − p < size), and the
/// input position `o0` reads.
fn valid(tap: usize, g: &Geom, size: usize, outputs: usize) -> (usize, usize, usize) {
    let s = g.stride.max(1);
    let first = g.pad.saturating_sub(tap).div_ceil(s).min(outputs);
    let last = (size + g.pad).checked_sub(tap + 1).map_or(0, |end| end / s + 1).min(outputs).max(first);
    (first, last, (first * s + tap).saturating_sub(g.pad).min(size))
}

/// [`im2col`] for stride > 1: each row a strided copy between its zero margins (value-by-value gathers that
/// checked every position were a third of a stride-2 net's step; splitting the input into its s × s phases
/// first, so that each row is a plain copy, measured slower still on 7-wide rows).
fn im2col_strided(g: &Geom, x: &[f32], cols: &mut [f32]) {
    let (ho, wo, s) = (g.ho(), g.wo(), g.stride);
    let mut rows = cols.chunks_exact_mut(ho * wo);
    for c in 0..g.ci {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (ow0, ow1, iw0) = valid(j, g, g.w, wo);
                for (oh, dst) in row.chunks_exact_mut(wo).enumerate() {
                    let Some(ih) = source(oh, i, g, g.h) else {
                        dst.fill(0.0);
                        continue;
                    };
                    dst[..ow0].fill(0.0);
                    dst[ow1..].fill(0.0);
                    let src = xc[ih * g.w + iw0..(ih + 1) * g.w].iter().step_by(s);
                    dst[ow0..ow1].iter_mut().zip(src).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }
}

/// dx[Ci, H, W] += col2im(dcols[K, HWo]).
pub fn col2im_add(g: &Geom, dcols: &[f32], dx: &mut [f32]) {
    if g.stride > 1 {
        return col2im_add_strided(g, dcols, dx);
    }
    let (ho, wo, p) = (g.ho(), g.wo(), g.pad);
    let hw = ho * wo;
    let mut r = 0;
    for c in 0..g.ci {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &dcols[r * hw..(r + 1) * hw];
                let ow0 = p.saturating_sub(j).min(wo);
                let ow1 = (g.w + p).saturating_sub(j).min(wo).max(ow0);
                for oh in 0..ho {
                    let ih = oh + i;
                    if ih < p || ih - p >= g.h {
                        continue;
                    }
                    let src = &row[oh * wo + ow0..oh * wo + ow1];
                    let iw0 = (ow0 + j).saturating_sub(p).min(g.w);
                    let dst = &mut dxc[(ih - p) * g.w + iw0..(ih - p) * g.w + iw0 + (ow1 - ow0)];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += *s;
                    }
                }
                r += 1;
            }
        }
    }
}

/// [`col2im_add`] for stride > 1: each row a strided add (in the same order on every run).
fn col2im_add_strided(g: &Geom, dcols: &[f32], dx: &mut [f32]) {
    let (ho, wo, s) = (g.ho(), g.wo(), g.stride);
    let mut rows = dcols.chunks_exact(ho * wo);
    for c in 0..g.ci {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (ow0, ow1, iw0) = valid(j, g, g.w, wo);
                for (oh, src) in row.chunks_exact(wo).enumerate() {
                    let Some(ih) = source(oh, i, g, g.h) else { continue };
                    let dst = dxc[ih * g.w + iw0..(ih + 1) * g.w].iter_mut().step_by(s);
                    dst.zip(&src[ow0..ow1]).for_each(|(d, &v)| *d += v);
                }
            }
        }
    }
}

/// Row-major C[m,n] (= or +=) A·B with arbitrary strides (the `gemm` crate, no threads).
pub(crate) unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// y = conv(x, w) + bias.
pub fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = out_vec(g.b * g.co * g.hw_out());
    forward_into(g, x, w, bias, &mut y);
    y
}

/// [`forward`] into `y` (`b·co·ho·wo` values; every one is written).
pub fn forward_into(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (k, hw) = (g.k(), g.hw_out());
    with_scratch(k * hw, |cols| {
        for b in 0..g.b {
            forward_image(g, b, x, w, bias, y, cols);
        }
    });
}

/// [`forward_into`] that keeps each image's im2col matrix in `cols` (`g.b` × K × HWo values) for
/// [`weight_grad_from_cols`]: a strided layer's backward no longer gathers the same columns again.
pub fn forward_into_keeping_cols(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    cols: &mut [f32],
) {
    let per_image = g.k() * g.hw_out();
    for (b, cols) in cols.chunks_exact_mut(per_image).take(g.b).enumerate() {
        forward_image(g, b, x, w, bias, y, cols);
    }
}

/// Image `b`'s columns into `cols`, then y_b[Co, HW] = w[Co, K] · cols[K, HW] (+ bias).
fn forward_image(g: &Geom, b: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], cols: &mut [f32]) {
    let (k, hw) = (g.k(), g.hw_out());
    im2col(g, &x[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()], cols);
    let yb = &mut y[b * g.co * hw..(b + 1) * g.co * hw];
    if let Some(bias) = bias {
        for (c, row) in yb.chunks_exact_mut(hw).enumerate() {
            row.fill(bias[c]);
        }
    }
    // SAFETY: the matrices lie within `yb`, `w` and `cols`, whose lengths the geometry gives.
    unsafe {
        mm(
            g.co,
            hw,
            k,
            yb.as_mut_ptr(),
            hw as isize,
            bias.is_some(),
            w.as_ptr(),
            k as isize,
            1,
            cols.as_ptr(),
            hw as isize,
            1,
        );
    }
}

/// dW[Co, K] = Σ_b dy_b[Co, HW] · cols_bᵀ.
pub fn weight_grad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, hw) = (g.k(), g.hw_out());
    let mut dw = vec![0.0f32; g.co * k];
    with_scratch(k * hw, |cols| {
        for b in 0..g.b {
            im2col(g, &x[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()], cols);
            add_image_weight_grad(g, b, cols, dy, &mut dw);
        }
    });
    dw
}

/// [`weight_grad`] from the columns [`forward_into_keeping_cols`] kept (the same figures).
pub fn weight_grad_from_cols(g: &Geom, cols: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0f32; g.co * g.k()];
    for (b, cols) in cols.chunks_exact(g.k() * g.hw_out()).take(g.b).enumerate() {
        add_image_weight_grad(g, b, cols, dy, &mut dw);
    }
    dw
}

/// dW (= for image 0, += after) dy_b[Co, HW] · cols_bᵀ.
fn add_image_weight_grad(g: &Geom, b: usize, cols: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (k, hw) = (g.k(), g.hw_out());
    let dyb = &dy[b * g.co * hw..(b + 1) * g.co * hw];
    // SAFETY: the matrices lie within `dw`, `dyb` and `cols`, whose lengths the geometry gives.
    unsafe {
        mm(
            g.co,
            k,
            hw,
            dw.as_mut_ptr(),
            k as isize,
            b > 0,
            dyb.as_ptr(),
            hw as isize,
            1,
            // rhs[hw][r] = cols[r][hw]
            cols.as_ptr(),
            1,
            hw as isize,
        );
    }
}

/// dX = col2im(wᵀ · dy_b) per image.
pub fn input_grad(g: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; g.b * g.ci * g.hw_in()];
    input_grad_into(g, w, dy, &mut dx);
    dx
}

/// [`input_grad`] into `dx` (`b·ci·h·w` values, zeroed: the columns are added into it).
pub fn input_grad_into(g: &Geom, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (k, hw) = (g.k(), g.hw_out());
    with_scratch(k * hw, |dcols| {
        for b in 0..g.b {
            let dyb = &dy[b * g.co * hw..(b + 1) * g.co * hw];
            // dcols[K, HW] = wᵀ[K, Co] · dy_b[Co, HW]
            unsafe {
                mm(
                    k,
                    hw,
                    g.co,
                    dcols.as_mut_ptr(),
                    hw as isize,
                    false,
                    w.as_ptr(),
                    1,
                    k as isize,
                    dyb.as_ptr(),
                    hw as isize,
                    1,
                );
            }
            col2im_add(g, dcols, &mut dx[b * g.ci * g.hw_in()..(b + 1) * g.ci * g.hw_in()]);
        }
    });
}

/// db[Co] = Σ_{b,hw} dy: channels side by side on the current rayon pool's threads where dY is long (it ran on
/// one, about 2.5 % of a ref-mnist step at two threads), each channel's planes summed in image order either way,
/// so the figures do not depend on the thread count.
pub fn bias_grad(g: &Geom, dy: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let hw = g.hw_out();
    let channel = |c: usize| {
        let mut total = 0.0f32;
        for b in 0..g.b {
            let Some(plane) = dy.get((b * g.co + c) * hw..(b * g.co + c + 1) * hw) else { break };
            // 16 independent partial sums so the reduction vectorises.
            let mut part = [0.0f32; 16];
            let mut chunks = plane.chunks_exact(16);
            for ch in &mut chunks {
                for l in 0..16 {
                    part[l] += ch[l];
                }
            }
            let tail: f32 = chunks.remainder().iter().sum();
            total += part.iter().sum::<f32>() + tail;
        }
        total
    };
    if dy.len() >= crate::pointwise::PARALLEL_FROM && rayon::current_num_threads() > 1 {
        (0..g.co).into_par_iter().map(channel).collect()
    } else {
        (0..g.co).map(channel).collect()
    }
}
