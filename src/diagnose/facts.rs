//! What the rules read: the recent metric rows and layer statistics of a run, summarised as medians, with the
//! thresholds that define a dead or saturated unit (the worker's statistics count units by these too).

use crate::arch::Activation;
use crate::snapshot::{LayerInfo, LayerStats, MetricRow};

/// Recent steps the rules look at (medians over them, so one noisy batch does not decide).
pub const HINT_WINDOW: usize = 50;
/// Steps a run needs before any rule speaks: the first steps of every run look odd.
pub const HINT_MIN_STEPS: usize = 20;

/// A ReLU unit counts as *dead* when its output was zero for every example of this many consecutive
/// statistics batches (every step in `convscope train`, every snapshot in the window).
pub const DEAD_UNIT_WINDOW: usize = 10;

/// A sigmoid or tanh unit counts as *saturated* when its mean slope f′(z) over a batch is below this share of
/// the activation's peak slope ([`Activation::peak_slope`]): for sigmoid that is |z| above about 3.7, an
/// output within 0.025 of 0 or 1.
pub const SATURATED_SLOPE_FRACTION: f32 = 0.1;

/// Median of the finite values (NaN when there are none).
pub fn median(mut values: Vec<f32>) -> f32 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f32::NAN;
    }
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

/// A layer with weights, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// Its name, e.g. `conv1`.
    pub name: &'a str,
    /// Its current nonlinearity.
    pub activation: Activation,
    /// Whether it is the output layer.
    pub output: bool,
}

/// The recent history of a run, ready for the rules: layers with weights and the last rows.
pub struct Facts<'a> {
    /// Layers with weights, input to output.
    pub layers: Vec<Layer<'a>>,
    /// Every row given, oldest first.
    pub rows: &'a [MetricRow],
    /// The last [`HINT_WINDOW`] rows.
    pub recent: &'a [MetricRow],
    /// The learning rate of the newest row.
    pub lr: f64,
    /// The statistics of the newest rows that have them, newest first (at most [`HINT_WINDOW`]).
    stats_rows: Vec<&'a [LayerStats]>,
}

impl<'a> Facts<'a> {
    /// The facts of `rows` (oldest first) for the net described by `layers` (all layers, as the worker lists
    /// them), or `None` while the run is too young or too small for any rule.
    pub fn new(rows: &'a [MetricRow], layers: &'a [LayerInfo]) -> Option<Facts<'a>> {
        let layers: Vec<Layer> = layers
            .iter()
            .filter_map(|info| {
                info.settings.map(|s| Layer { name: &info.name, activation: s.activation, output: info.output })
            })
            .collect();
        if rows.len() < HINT_MIN_STEPS || layers.len() < 2 {
            return None;
        }
        let recent = &rows[rows.len().saturating_sub(HINT_WINDOW)..];
        let stats_rows =
            rows.iter().rev().filter(|r| !r.stats.is_empty()).take(HINT_WINDOW).map(|r| r.stats.as_slice()).collect();
        Some(Facts { layers, rows, recent, lr: recent.last().map_or(f64::NAN, |r| r.lr), stats_rows })
    }

    /// The newest statistics of every layer (empty when none were taken).
    pub fn latest(&self) -> &'a [LayerStats] {
        self.stats_rows.first().copied().unwrap_or(&[])
    }

    /// Median weight-gradient norm of layer `layer` over the recent rows.
    pub fn grad_norm(&self, layer: usize) -> f32 {
        median(self.recent.iter().filter_map(|r| r.grad_norms.get(layer).copied()).collect())
    }

    /// Median of one statistic of layer `layer` over the recent rows that have statistics.
    pub fn stat_median(&self, layer: usize, pick: impl Fn(&LayerStats) -> f32) -> f32 {
        median(self.stats_rows.iter().filter_map(|s| s.get(layer).map(&pick)).collect())
    }

    /// The hidden layers with their indices.
    pub fn hidden(&self) -> impl Iterator<Item = (usize, &Layer<'a>)> {
        self.layers.iter().enumerate().filter(|(_, l)| !l.output)
    }

    /// The index of the output layer (the last layer with weights).
    pub fn output(&self) -> usize {
        self.layers.len() - 1
    }

    /// The hidden layer with the largest share picked from its newest statistics, when at least `threshold`.
    pub fn worst_hidden(&self, pick: impl Fn(&LayerStats) -> Option<f32>, threshold: f32) -> Option<(usize, f32)> {
        let latest = self.latest();
        self.hidden()
            .filter_map(|(i, _)| latest.get(i).and_then(&pick).map(|share| (i, share)))
            .filter(|&(_, share)| share >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}
