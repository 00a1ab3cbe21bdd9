//! 2×2, stride 2 max-pooling (floor mode, no padding) on NCHW planes, as burn-flex defines it: the first
//! maximum of a window wins, and a NaN always wins (the last NaN). The forward pass keeps, per output, which of
//! the four cells won, so the backward pass is a scatter.

/// Pools `planes` planes of `h`×`w` values: the outputs, and per output the winning cell (0..4, row-major).
pub fn forward(x: &[f32], planes: usize, h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0.0f32; planes * ho * wo];
    let mut arg = vec![0u8; planes * ho * wo];
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
    (out, arg)
}

/// The input gradient: each output's gradient goes to the cell that won its window, zero elsewhere.
pub fn backward(dy: &[f32], arg: &[u8], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0.0f32; planes * h * w];
    for p in 0..planes {
        for oh in 0..ho {
            for ow in 0..wo {
                let o = (p * ho + oh) * wo + ow;
                let k = usize::from(arg[o]);
                dx[p * h * w + (2 * oh + k / 2) * w + 2 * ow + k % 2] = dy[o];
            }
        }
    }
    dx
}
