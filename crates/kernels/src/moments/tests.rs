//! The moments pass against plain definitions: vector against plain lanes, across units against unit by unit.

use super::*;

#[test]
fn every_instruction_set_gives_the_plain_pass_s_figures() {
    let dims = [3, 5, 7, 5];
    let count = dims.iter().product::<usize>();
    let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0).collect();
    pre[17] = f32::NAN;
    pre[40] = f32::NEG_INFINITY;
    let post: Vec<f32> = pre.iter().map(|z| z.max(0.0)).collect();
    let slope = Slope::Step { below: 0.0 };
    let plain = measure_plain::<Plain, 16>(dims, &pre, &post, slope);
    assert_eq!(plain.pre_non_finite, 2);
    assert_eq!(plain.measured, count);
    // Sums may round differently with other vector widths; ranges and peaks must agree exactly.
    let dispatched = measure(dims, &pre, &post, slope);
    assert_eq!((dispatched.pre_low, dispatched.pre_high), (plain.pre_low, plain.pre_high));
    assert_eq!((dispatched.post_low, dispatched.post_high), (plain.post_low, plain.post_high));
    assert_eq!(dispatched.unit_peaks, plain.unit_peaks);
    assert!((dispatched.post_sum - plain.post_sum).abs() < 1e-3);
    assert_eq!(dispatched.unit_slope_sums, plain.unit_slope_sums);
}

/// Each vector pass against the plain pass with as many lanes: the same operations lane by lane, so the
/// same figures to the bit, for every slope form, tails, non-finite values and layers of both layouts.
#[test]
#[cfg(target_arch = "x86_64")]
fn vector_passes_give_the_plain_pass_s_figures_to_the_bit() {
    let slopes = [
        Slope::Step { below: 0.0 },
        Slope::Step { below: 0.01 },
        Slope::Elu { alpha: 1.0 },
        Slope::Logistic,
        Slope::Tanh,
        Slope::One,
        Slope::Other(|z, a| z * 0.5 + a),
    ];
    let mut checked = Vec::new();
    let shapes = [[3, 5, 7, 5], [9, 20, 1, 1], [2, 3, 16, 16], [2, 2, 30, 30], [4, 3, 1, 5]];
    // Shifted by 10, no value is 0 (what a masked-off lane reads) nor on the far side of it.
    for (dims, shift) in shapes.into_iter().flat_map(|dims| [(dims, 0.0), (dims, 10.0)]) {
        let count = dims.iter().product::<usize>();
        let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0 + shift).collect();
        pre[count / 3] = f32::NAN;
        pre[count / 2] = f32::NEG_INFINITY;
        let mut post: Vec<f32> = pre.iter().map(|z| z.tanh() + shift).collect();
        post[count / 4] = f32::INFINITY;
        for slope in slopes {
            let figures = |m: Moments| format!("{m:?}");
            if Isa::Avx512.runs_here() {
                let plain = measure_plain::<Plain, 16>(dims, &pre, &post, slope);
                // SAFETY: the CPU runs AVX-512, as just checked.
                let vector = unsafe { measure_avx512(dims, &pre, &post, slope) };
                assert_eq!(figures(vector), figures(plain), "AVX-512, {dims:?}, {slope:?}");
                checked.push("AVX-512");
            }
            if Isa::Avx2.runs_here() {
                let plain = measure_plain::<Plain, 8>(dims, &pre, &post, slope);
                // SAFETY: the CPU runs AVX2, as just checked.
                let vector = unsafe { measure_avx2(dims, &pre, &post, slope) };
                assert_eq!(figures(vector), figures(plain), "AVX2, {dims:?}, {slope:?}");
                checked.push("AVX2");
            }
        }
    }
    checked.sort_unstable();
    checked.dedup();
    println!("moments checked on {checked:?}");
}

#[test]
fn dense_layers_measured_across_units_give_the_unit_by_unit_figures() {
    // 37 units: two full blocks of 16 and a partial one; 70 examples: a flush in between; a short slice.
    for (dims, cut) in [([70, 37, 1, 1], 0), ([5, 3, 1, 1], 0), ([9, 20, 1, 1], 7)] {
        let count = dims.iter().product::<usize>() - cut;
        let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0).collect();
        pre[4] = f32::NAN;
        pre[count - 1] = f32::INFINITY;
        let post: Vec<f32> = pre.iter().map(|z| z.max(0.0)).collect();
        let slope = Slope::Step { below: 0.0 };
        let empty = || measure_plain::<Plain, 16>([0, dims[1], 2, 2], &[], &[], slope);
        let (mut across, mut by_unit) = (empty(), empty());
        measure_across_units::<Plain, 16>(dims, &pre, &post, slope, &mut across);
        measure_unit_by_unit::<Plain, 16>(dims, &pre, &post, slope, &mut by_unit);
        assert_eq!(across.measured, count);
        assert_eq!(across.measured, by_unit.measured);
        assert_eq!(across.pre_non_finite, by_unit.pre_non_finite);
        assert_eq!((across.pre_low, across.pre_high), (by_unit.pre_low, by_unit.pre_high));
        assert_eq!((across.post_low, across.post_high), (by_unit.post_low, by_unit.post_high));
        assert_eq!(across.unit_slope_sums, by_unit.unit_slope_sums);
        let bits = |m: &Moments| m.unit_peaks.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&across), bits(&by_unit));
        // Sums in another order: equal up to rounding (or both NaN or the same infinity).
        let close = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-3 * b.abs().max(1.0);
        assert!(close(across.pre_square, by_unit.pre_square) && close(across.post_sum, by_unit.post_sum));
        assert!(close(across.post_square, by_unit.post_square) && !across.post_sum.is_finite());
        assert_eq!(measure(dims, &pre, &post, slope).unit_peaks.len(), dims[1]);
    }
}
