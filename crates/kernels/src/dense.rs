//! A dense layer's products on the `gemm` crate — y = x·W + b, dX = dY·Wᵀ, dW = xᵀ·dY and db — each output split
//! over the compute threads by its rows, never along the summed dimension: every output value is one thread's
//! sum, and the split is fixed by the shape and the thread count. Row-major throughout, W `[inputs, outputs]`.

use rayon::prelude::*;

use crate::gemm::mm;

/// A dense layer's sizes: `batch` rows of `inputs` values in, `outputs` values out per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// Multiply-adds below which one thread computes the whole product (about 10 µs of work): handing part of it to
/// another thread costs more than it saves (ref-mnist's 256 → 10 output layer).
const SPLIT_FROM: usize = 1 << 20;

/// A zeroed `rows × per_row` output whose every value sums `summed` products, `fill`ed in runs of whole rows
/// side by side (`fill(first_row, part)`).
fn by_rows(rows: usize, per_row: usize, summed: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * per_row];
    if per_row == 0 || rows == 0 {
        return out;
    }
    let small = rows * per_row * summed < SPLIT_FROM;
    let threads = if small { 1 } else { rayon::current_num_threads().clamp(1, rows) };
    let run = rows.div_ceil(threads);
    out.par_chunks_mut(run * per_row).enumerate().for_each(|(index, part)| fill(index * run, part));
    out
}

/// y = x·W (+ `bias` on every row): `[batch, outputs]`. `x` holds `batch × inputs` values, `w` `inputs × outputs`.
pub fn forward(d: Dense, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert!(x.len() >= d.batch * d.inputs && w.len() >= d.inputs * d.outputs, "dense forward: short operands");
    assert!(bias.is_none_or(|b| b.len() >= d.outputs), "dense forward: short bias");
    by_rows(d.batch, d.outputs, d.inputs, |first, part| {
        let rows = part.len() / d.outputs;
        if let Some(bias) = bias {
            part.chunks_exact_mut(d.outputs).for_each(|row| row.copy_from_slice(&bias[..d.outputs]));
        }
        // SAFETY: rows `first..first + rows` of x and the whole of w lie within the slices (checked above);
        // `part` holds `rows × outputs` values.
        unsafe {
            mm(
                rows,
                d.outputs,
                d.inputs,
                part.as_mut_ptr(),
                d.outputs as isize,
                bias.is_some(),
                x.as_ptr().add(first * d.inputs),
                d.inputs as isize,
                1,
                w.as_ptr(),
                d.outputs as isize,
                1,
            );
        }
    })
}

/// dX = dY·Wᵀ: `[batch, inputs]`.
pub fn input_grad(d: Dense, w: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(dy.len() >= d.batch * d.outputs && w.len() >= d.inputs * d.outputs, "dense dX: short operands");
    by_rows(d.batch, d.inputs, d.outputs, |first, part| {
        let rows = part.len() / d.inputs.max(1);
        // SAFETY: rows `first..first + rows` of dY and the whole of w lie within the slices (checked above); Wᵀ
        // is read through its strides.
        unsafe {
            mm(
                rows,
                d.inputs,
                d.outputs,
                part.as_mut_ptr(),
                d.inputs as isize,
                false,
                dy.as_ptr().add(first * d.outputs),
                d.outputs as isize,
                1,
                w.as_ptr(),
                1,
                d.outputs as isize,
            );
        }
    })
}

/// dW = xᵀ·dY: `[inputs, outputs]`, each value summed over the whole batch by one thread.
pub fn weight_grad(d: Dense, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(x.len() >= d.batch * d.inputs && dy.len() >= d.batch * d.outputs, "dense dW: short operands");
    by_rows(d.inputs, d.outputs, d.batch, |first, part| {
        let rows = part.len() / d.outputs.max(1);
        // SAFETY: columns `first..first + rows` of x (read as xᵀ through its strides) and the whole of dY lie
        // within the slices (checked above).
        unsafe {
            mm(
                rows,
                d.outputs,
                d.batch,
                part.as_mut_ptr(),
                d.outputs as isize,
                false,
                x.as_ptr().add(first),
                1,
                d.inputs as isize,
                dy.as_ptr(),
                d.outputs as isize,
                1,
            );
        }
    })
}

/// db = Σ over the batch of dY's rows, added row after row.
pub fn bias_grad(d: Dense, dy: &[f32]) -> Vec<f32> {
    let mut db = vec![0.0f32; d.outputs];
    for row in dy.chunks_exact(d.outputs.max(1)).take(d.batch) {
        db.iter_mut().zip(row).for_each(|(total, &g)| *total += g);
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The products value by value in f64, to check the gemm calls' strides against.
    #[test]
    fn products_match_their_definitions() {
        for d in [
            Dense { batch: 3, inputs: 5, outputs: 4 },
            Dense { batch: 32, inputs: 784, outputs: 128 },
            Dense { batch: 1, inputs: 7, outputs: 1 },
        ] {
            let value = |i: usize, scale: f32| ((i as f32 * 0.618_034).fract() - 0.5) * scale;
            let x: Vec<f32> = (0..d.batch * d.inputs).map(|i| value(i, 2.0)).collect();
            let w: Vec<f32> = (0..d.inputs * d.outputs).map(|i| value(i + 7, 0.5)).collect();
            let dy: Vec<f32> = (0..d.batch * d.outputs).map(|i| value(i + 3, 1.0)).collect();
            let b: Vec<f32> = (0..d.outputs).map(|i| value(i + 11, 1.0)).collect();
            let close = |got: &[f32], want: &[f64], what: &str| {
                assert_eq!(got.len(), want.len(), "{what} {d:?}");
                for (g, w) in got.iter().zip(want) {
                    assert!((f64::from(*g) - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what} {d:?}: {g} against {w}");
                }
            };
            let (bi, bo, n) = (d.batch, d.outputs, d.inputs);
            let y: Vec<f64> = (0..bi * bo)
                .map(|at| {
                    let (r, o) = (at / bo, at % bo);
                    f64::from(b[o]) + (0..n).map(|i| f64::from(x[r * n + i]) * f64::from(w[i * bo + o])).sum::<f64>()
                })
                .collect();
            close(&forward(d, &x, &w, Some(&b)), &y, "y");
            let dx: Vec<f64> = (0..bi * n)
                .map(|at| {
                    let (r, i) = (at / n, at % n);
                    (0..bo).map(|o| f64::from(dy[r * bo + o]) * f64::from(w[i * bo + o])).sum::<f64>()
                })
                .collect();
            close(&input_grad(d, &w, &dy), &dx, "dX");
            let dw: Vec<f64> = (0..n * bo)
                .map(|at| {
                    let (i, o) = (at / bo, at % bo);
                    (0..bi).map(|r| f64::from(x[r * n + i]) * f64::from(dy[r * bo + o])).sum::<f64>()
                })
                .collect();
            close(&weight_grad(d, &x, &dy), &dw, "dW");
            let db: Vec<f64> = (0..bo).map(|o| (0..bi).map(|r| f64::from(dy[r * bo + o])).sum::<f64>()).collect();
            close(&bias_grad(d, &dy), &db, "db");
        }
    }
}
