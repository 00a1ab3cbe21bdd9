//! Colour maps shared by the window and the exporters: a signed diverging map for weights and gradients
//! and a sequential map for activations. Pure functions from values to RGB.

/// Blue for negative, white for zero, red for positive, saturating at `±scale`.
///
/// For a weight-gradient tile, red (positive ∂loss/∂w) means the next step pushes that weight down, blue up.
pub fn diverging(value: f32, scale: f32) -> [u8; 3] {
    if !value.is_finite() {
        // Non-finite values must stand out rather than vanish into a colour of the scale.
        return [255, 0, 255];
    }
    let t = if scale > 0.0 { (value / scale).clamp(-1.0, 1.0) } else { 0.0 };
    // Endpoints: a deep blue (33, 102, 172) and a deep red (178, 24, 43), as in ColorBrewer's RdBu.
    let (end, t) = if t < 0.0 { ([33.0, 102.0, 172.0], -t) } else { ([178.0, 24.0, 43.0], t) };
    let mix = |e: f32| (255.0 + (e - 255.0) * t).round().clamp(0.0, 255.0) as u8;
    [mix(end[0]), mix(end[1]), mix(end[2])]
}

/// A perceptually ordered dark-to-bright map (viridis, 9 control points) for `t` in `[0, 1]`.
pub fn sequential(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    if !t.is_finite() {
        return [255, 0, 255];
    }
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let lower = (x.floor() as usize).min(STOPS.len() - 2);
    let frac = x - lower as f32;
    let (a, b) = (STOPS[lower], STOPS[lower + 1]);
    let mix = |i: usize| (a[i] + (b[i] - a[i]) * frac).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Maps `value` in `[low, high]` to `[0, 1]` (0.5 when the range is empty).
pub fn unit(value: f32, low: f32, high: f32) -> f32 {
    if high > low { ((value - low) / (high - low)).clamp(0.0, 1.0) } else { 0.5 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_is_white_at_zero_and_saturates() {
        assert_eq!(diverging(0.0, 1.0), [255, 255, 255]);
        assert_eq!(diverging(5.0, 1.0), [178, 24, 43]);
        assert_eq!(diverging(-1.0, 1.0), [33, 102, 172]);
        assert_eq!(diverging(f32::NAN, 1.0), [255, 0, 255]);
        let half = diverging(0.5, 1.0);
        assert!(half[0] > half[2], "positive values lean red: {half:?}");
    }

    #[test]
    fn sequential_runs_dark_to_bright() {
        let lum = |c: [u8; 3]| u32::from(c[0]) * 3 + u32::from(c[1]) * 6 + u32::from(c[2]);
        let steps: Vec<u32> = (0..=10).map(|i| lum(sequential(i as f32 / 10.0))).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    }
}
