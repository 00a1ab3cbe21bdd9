//! The metrics panel: loss (raw and smoothed), train and test accuracy and the learning rate, with a vertical
//! marker wherever the user changed something. (Gradient norms have their own panel, `gradflow`.)

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};
use serde::{Deserialize, Serialize};

use crate::app::panels::header;
use crate::app::view::{Marker, TrainingView};
use crate::snapshot::MetricRow;

/// Buckets per drawn series: a longer history is reduced to each bucket's lowest and highest value, so
/// spikes survive while the line stays cheap to draw (two points per bucket, ≈ two per pixel of plot width).
pub const PLOT_BUCKETS: usize = 300;

const HELP: &str = "Loss: the batch loss each step (faint) and its exponential moving average (adjust the \
smoothing). Accuracy: running accuracy on recent training batches and accuracy on the whole test split, evaluated \
every few hundred steps. Learning rate: on a log scale, as you set it. \
Dashed lines mark the steps where you changed the learning rate, an activation, a bias or batch-norm.";

pub const LAYER_COLOURS: [Color32; 8] = [
    Color32::from_rgb(70, 130, 220),
    Color32::from_rgb(235, 140, 40),
    Color32::from_rgb(80, 170, 90),
    Color32::from_rgb(200, 80, 80),
    Color32::from_rgb(150, 100, 200),
    Color32::from_rgb(140, 100, 70),
    Color32::from_rgb(220, 120, 180),
    Color32::from_rgb(120, 120, 120),
];

/// The metrics panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsPanel {
    /// Exponential-moving-average factor for the smoothed loss (0 = raw).
    pub smoothing: f64,
    #[serde(skip)]
    help: bool,
}

impl Default for MetricsPanel {
    fn default() -> Self {
        MetricsPanel { smoothing: 0.95, help: false }
    }
}

/// Reduces `points` (in x order) to at most `2 × buckets` points: every point when few, else the lowest and
/// the highest point of each bucket of consecutive points, in x order. Non-finite values are left out.
pub fn decimate(points: impl ExactSizeIterator<Item = [f64; 2]>, buckets: usize) -> Vec<[f64; 2]> {
    let len = points.len();
    let finite = points.filter(|p| p[1].is_finite());
    if len <= 2 * buckets {
        return finite.collect();
    }
    let per_bucket = len.div_ceil(buckets.max(1));
    let mut out = Vec::with_capacity(2 * buckets);
    let mut bucket: Vec<[f64; 2]> = Vec::with_capacity(per_bucket);
    let flush = |bucket: &mut Vec<[f64; 2]>, out: &mut Vec<[f64; 2]>| {
        let low = bucket.iter().min_by(|a, b| a[1].total_cmp(&b[1])).copied();
        let high = bucket.iter().max_by(|a, b| a[1].total_cmp(&b[1])).copied();
        match (low, high) {
            (Some(low), Some(high)) if low[0] <= high[0] => out.extend([low, high]),
            (Some(low), Some(high)) => out.extend([high, low]),
            _ => {}
        }
        bucket.clear();
    };
    for (i, point) in finite.enumerate() {
        bucket.push(point);
        if (i + 1) % per_bucket == 0 {
            flush(&mut bucket, &mut out);
        }
    }
    flush(&mut bucket, &mut out);
    out
}

/// The exponential moving average of the loss, debiased like TensorBoard's smoothing.
pub fn smoothed(rows: &[MetricRow], factor: f64) -> Vec<f64> {
    let mut average = 0.0;
    let mut weight = 0.0;
    rows.iter()
        .map(|row| {
            let loss = f64::from(row.loss);
            if loss.is_finite() {
                average = factor * average + (1.0 - factor) * loss;
                weight = factor * weight + (1.0 - factor);
            }
            if weight > 0.0 { average / weight } else { loss }
        })
        .collect()
}

/// A decimated plot series of `value` over the rows' steps.
pub fn series(rows: &[MetricRow], value: impl Fn(usize, &MetricRow) -> f64) -> PlotPoints<'static> {
    decimate(rows.iter().enumerate().map(|(i, r)| [r.step as f64, value(i, r)]), PLOT_BUCKETS).into()
}

/// Draws the change markers as dashed vertical lines.
pub fn markers(plot: &mut egui_plot::PlotUi<'_>, markers: &[Marker]) {
    for marker in markers {
        plot.vline(
            VLine::new(marker.label.clone(), marker.step as f64)
                .color(Color32::from_rgba_unmultiplied(200, 160, 60, 160))
                .style(egui_plot::LineStyle::dashed_loose()),
        );
    }
}

impl MetricsPanel {
    /// Draws the plots.
    pub fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView) {
        header(ui, "Metrics", &mut self.help, HELP);
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.999).text("Smoothing")).on_hover_text(
                "Weight of the past in the smoothed loss: 0 shows the raw loss, 0.99 a very smooth trend.",
            );
        });
        let rows = &view.rows;
        let width = (ui.available_width() / 2.0 - 12.0).max(150.0);
        let height = ((ui.available_height() - 40.0) / 2.0).clamp(90.0, 220.0);
        let link = egui::Id::unique("convscope-metrics-x-axis");
        ui.horizontal(|ui| {
            let smooth = smoothed(rows, self.smoothing);
            Plot::new("loss")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .show(ui, |plot| {
                    plot.line(
                        Line::new("loss", series(rows, |_, r| f64::from(r.loss)))
                            .color(Color32::from_rgba_unmultiplied(70, 130, 220, 90)),
                    );
                    plot.line(
                        Line::new("smoothed", series(rows, |i, _| smooth.get(i).copied().unwrap_or(f64::NAN)))
                            .color(Color32::from_rgb(70, 130, 220))
                            .width(2.0),
                    );
                    markers(plot, &view.markers);
                });
            Plot::new("accuracy")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .include_y(0.0)
                .include_y(1.0)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("train", series(rows, |_, r| f64::from(r.train_accuracy)))
                            .color(Color32::from_rgb(70, 130, 220)),
                    );
                    plot.line(
                        Line::new("test", series(rows, |_, r| f64::from(r.test_accuracy)))
                            .color(Color32::from_rgb(235, 140, 40))
                            .width(2.0),
                    );
                    markers(plot, &view.markers);
                });
        });
        let (lr_low, lr_high) =
            rows.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(r.lr), hi.max(r.lr)));
        let (lr_low, lr_high) =
            if lr_low.is_finite() { (lr_low.log10() - 0.5, lr_high.log10() + 0.5) } else { (-3.0, 0.0) };
        ui.horizontal(|ui| {
            Plot::new("learning-rate")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .y_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
                .y_axis_label("learning rate (log)")
                .include_y(lr_low)
                .include_y(lr_high)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("lr", series(rows, |_, r| r.lr.max(1e-30).log10()))
                            .color(Color32::from_rgb(150, 100, 200)),
                    );
                    markers(plot, &view.markers);
                });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_spikes_and_order() {
        let points: Vec<[f64; 2]> =
            (0..10_000).map(|i| [i as f64, if i == 5_123 { 100.0 } else { (i % 7) as f64 }]).collect();
        let drawn = decimate(points.iter().copied(), 100);
        assert!(drawn.len() <= 200);
        assert!(drawn.iter().any(|p| p[1] == 100.0), "the spike survives");
        assert!(drawn.windows(2).all(|w| w[0][0] <= w[1][0]), "x stays in order");
        let few = decimate(points[..50].iter().copied(), 100);
        assert_eq!(few.len(), 50);
    }
}
