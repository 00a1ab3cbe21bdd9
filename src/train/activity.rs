//! One pass on the host over a layer's traced pre-activations and activations: their moments and finite
//! ranges, each unit's mean slope f′(z) and largest output. The statistics and the snapshot both read it.

use crate::arch::Activation;
use convscope_kernels::moments::Moments;

use crate::model::slope_of;

/// What one pass over a layer's `[batch, units, height, width]` pre-activations and activations yields.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerActivity {
    /// Mean of the pre-activations z.
    pub pre_mean: f32,
    /// Mean of z².
    pub pre_square_mean: f32,
    /// Mean of the activations f(z).
    pub post_mean: f32,
    /// Mean of f(z)².
    pub post_square_mean: f32,
    /// Smallest and largest finite z (`None` when no value is finite).
    pub pre_range: Option<(f32, f32)>,
    /// How many z are NaN or infinite.
    pub pre_non_finite: u32,
    /// Smallest and largest finite f(z).
    pub post_range: Option<(f32, f32)>,
    /// Per unit (a conv channel or a dense neuron), the mean of f′(z) over the batch and positions.
    pub unit_mean_slope: Vec<f32>,
    /// Per unit, its largest f(z): a ReLU unit with a largest output of zero was silent.
    pub unit_peak: Vec<f32>,
}

impl LayerActivity {
    /// Measures `pre` and `post`, both laid out `[batch, units, height, width]` as `dims` says.
    ///
    /// Slices shorter than `dims` (a caller's mistake) are measured as far as they both go, never read past.
    pub fn measure(activation: Activation, dims: [usize; 4], pre: &[f32], post: &[f32]) -> LayerActivity {
        from_moments(dims, convscope_kernels::moments::measure(dims, pre, post, slope_of(activation)))
    }
}

/// `NaN` (no finite value seen) becomes `None`.
fn range(low: f32, high: f32) -> Option<(f32, f32)> {
    (!low.is_nan() && !high.is_nan()).then_some((low, high))
}

/// The pass itself runs in `crates/kernels` (compiled for the CPU's widest vectors, or fused with the activation
/// in the forward pass); this turns its sums into means per value and per unit.
pub fn from_moments(dims: [usize; 4], m: Moments) -> LayerActivity {
    let units = dims[1];
    let values = m.measured.max(1) as f64;
    // A unit's share of the values measured (all of its batch × positions when the slices are whole).
    let per_unit_values = (m.measured / units.max(1)).max(1) as f64;
    LayerActivity {
        pre_mean: (m.pre_sum / values) as f32,
        pre_square_mean: (m.pre_square / values) as f32,
        post_mean: (m.post_sum / values) as f32,
        post_square_mean: (m.post_square / values) as f32,
        pre_range: range(m.pre_low, m.pre_high),
        pre_non_finite: m.pre_non_finite,
        post_range: range(m.post_low, m.post_high),
        unit_mean_slope: m.unit_slope_sums.iter().map(|&s| (s / per_unit_values) as f32).collect(),
        // A unit whose every output was NaN counts as silent: it carries no signal either way.
        unit_peak: m.unit_peaks.into_iter().map(|p| if p.is_nan() { 0.0 } else { p }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition, value by value, to check the lane-wise pass against.
    fn naive(activation: Activation, dims: [usize; 4], pre: &[f32], post: &[f32]) -> LayerActivity {
        let [batch, units, height, width] = dims;
        let per_unit = height * width;
        let n = pre.len() as f64;
        let mean = |values: &[f32], f: fn(f32) -> f64| values.iter().map(|&v| f(v)).sum::<f64>() / n;
        let finite = |values: &[f32]| crate::snapshot::finite_range(values);
        let mut slopes = vec![0.0_f64; units];
        let mut peaks = vec![f32::NEG_INFINITY; units];
        for b in 0..batch {
            for u in 0..units {
                for i in 0..per_unit {
                    let at = (b * units + u) * per_unit + i;
                    slopes[u] += activation.df(f64::from(pre[at]));
                    peaks[u] = peaks[u].max(post[at]);
                }
            }
        }
        LayerActivity {
            pre_mean: mean(pre, f64::from) as f32,
            pre_square_mean: mean(pre, |v| f64::from(v * v)) as f32,
            post_mean: mean(post, f64::from) as f32,
            post_square_mean: mean(post, |v| f64::from(v * v)) as f32,
            pre_range: finite(pre),
            pre_non_finite: pre.iter().filter(|v| !v.is_finite()).count() as u32,
            post_range: finite(post),
            unit_mean_slope: slopes.iter().map(|s| (s / (batch * per_unit) as f64) as f32).collect(),
            unit_peak: peaks,
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_close(got: &LayerActivity, want: &LayerActivity, what: &str) {
        for (name, g, w) in [
            ("pre mean", got.pre_mean, want.pre_mean),
            ("pre square", got.pre_square_mean, want.pre_square_mean),
            ("post mean", got.post_mean, want.post_mean),
            ("post square", got.post_square_mean, want.post_square_mean),
        ] {
            assert!(close(g, w), "{what}: {name} {g} vs {w}");
        }
        assert_eq!(got.pre_range, want.pre_range, "{what}");
        assert_eq!(got.post_range, want.post_range, "{what}");
        assert_eq!(got.pre_non_finite, want.pre_non_finite, "{what}");
        assert_eq!(got.unit_peak, want.unit_peak, "{what}");
        for (g, w) in got.unit_mean_slope.iter().zip(&want.unit_mean_slope) {
            assert!(close(*g, *w), "{what}: slope {g} vs {w}");
        }
    }

    /// Deterministic values in about [-4, 4], so every activation's regions (and a remainder) are exercised.
    fn values(count: usize) -> Vec<f32> {
        (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0).collect()
    }

    #[test]
    fn the_lane_wise_pass_matches_the_definitions() {
        // 5×5 positions leave a remainder of one after three lanes-worth; the dense shape has one position.
        for dims in [[3, 4, 5, 5], [7, 10, 1, 1], [2, 3, 8, 8]] {
            let pre = values(dims.iter().product());
            for activation in Activation::ALL {
                let post: Vec<f32> = pre.iter().map(|&z| activation.f(f64::from(z)) as f32).collect();
                let got = LayerActivity::measure(activation, dims, &pre, &post);
                assert_close(&got, &naive(activation, dims, &pre, &post), &format!("{activation} {dims:?}"));
            }
        }
    }

    #[test]
    fn non_finite_values_are_counted_and_kept_out_of_the_ranges() {
        let dims = [1, 2, 3, 3];
        let mut pre = values(18);
        pre[4] = f32::NAN;
        pre[11] = f32::INFINITY;
        let post: Vec<f32> = pre.iter().map(|z| z.max(0.0)).collect();
        let got = LayerActivity::measure(Activation::Relu, dims, &pre, &post);
        assert_eq!(got.pre_non_finite, 2);
        let finite: Vec<f32> = pre.iter().copied().filter(|v| v.is_finite()).collect();
        assert_eq!(got.pre_range, crate::snapshot::finite_range(&finite));
        assert!(got.pre_mean.is_nan(), "a NaN poisons the mean, as on the device");

        let nothing_finite = LayerActivity::measure(Activation::Relu, [1, 1, 1, 2], &[f32::NAN; 2], &[f32::NAN; 2]);
        assert_eq!((nothing_finite.pre_range, nothing_finite.post_range), (None, None));
        assert_eq!(nothing_finite.unit_peak, vec![0.0]);
    }
}
